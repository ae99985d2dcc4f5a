"""How learnable is the embedded task? The default recipe's backbone trained with labels, against a small 3D CNN.

The "is it learning" goal asks self-supervised features of the default backbone (ViT-T width, 6 blocks, 8 x 64^2
clips, tubelets 2 x 8 x 8) to beat random weights by 15 points on the embedded motion classes. This measures
what the same backbone reaches when it is given the labels (an upper bound for a frozen-feature probe at the
same budget), and a small 3D CNN on the same clips as the baseline (convolutions carry the locality prior that
motion needs). Videos are rendered in memory by the embedded dataset's own generator
(`vidrop.data.synthetic.render_motion`; training and test videos from different seeds); clips are the recipe's
8 frames at stride 2, normalised as the data pipeline does. Test top-1 on 16 held-out videos per class
(chance 12.5%).

    python benchmarks/supervised_ceiling.py                          # 64 training videos per class
    python benchmarks/supervised_ceiling.py --videos_per_class 12    # the embedded dataset's size
"""

import argparse
import sys
import time

import numpy as np
import torch
from torch import nn

from vidrop import VidropConfig
from vidrop.data.synthetic import MOTIONS, render_motion
from vidrop.models import VidropForVideoClassification
from vidrop.training.arguments import DEMO_OVERRIDES, parse_overrides

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
CLIP_STARTS = (0, 8, 16)  # three clips of 8 frames at stride 2 from each 32-frame video


def render(seed, videos_per_class):
    """`(N, clips, T, C, S, S)` normalised clips and `(N,)` labels of freshly rendered videos."""
    clips, labels = [], []
    for label, motion in enumerate(MOTIONS):
        for i in range(videos_per_class):
            frames = torch.from_numpy(render_motion(motion, np.random.default_rng([seed, label, i])))  # (32, S, S, 3)
            views = [frames[s : s + 16 : 2].permute(0, 3, 1, 2).float() / 255 for s in CLIP_STARTS]  # (8, 3, S, S)
            clips.append(torch.stack([(v - MEAN) / STD for v in views]))
            labels.append(label)
    return torch.stack(clips), torch.tensor(labels)


class Conv3dBaseline(nn.Module):
    """Three strided 3D convolutions, global pooling and a linear classifier (about 0.16 M parameters)."""

    def __init__(self, num_labels):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, 32, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2)), nn.ReLU(),
            nn.Conv3d(32, 64, 3, stride=(1, 2, 2), padding=1), nn.ReLU(),
            nn.Conv3d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool3d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(64, num_labels)

    def forward(self, pixel_values):  # (B, T, C, S, S) -> (B, num_labels)
        return self.classifier(self.features(pixel_values.transpose(1, 2)))


class Logits(nn.Module):
    """A `VidropForVideoClassification` that returns its logits tensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):  # (B, T, C, S, S) -> (B, num_labels)
        return self.model(pixel_values).logits


def train_and_test(model, train, test, steps, batch, learning_rate, eval_every, seed):
    """AdamW on random clips of the training videos; test top-1 (middle clip) every `eval_every` steps."""
    (train_x, train_y), (test_x, test_y) = train, test
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.05)
    scores, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        videos = torch.randint(len(train_y), (batch,), generator=generator)
        clips = torch.randint(train_x.shape[1], (batch,), generator=generator)
        loss = nn.functional.cross_entropy(model(train_x[videos, clips]), train_y[videos])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % eval_every == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                top1 = (model(test_x[:, 1]).argmax(-1) == test_y).float().mean().item() * 100
            model.train()
            scores.append((step, time.perf_counter() - start, loss.item(), top1))
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos_per_class", type=int, default=64)
    parser.add_argument("--vit_steps", type=int, default=400)
    parser.add_argument("--cnn_steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    train, test = render(1, args.videos_per_class), render(2, 16)
    config = VidropConfig.from_preset("tiny", **parse_overrides(DEMO_OVERRIDES), num_labels=len(MOTIONS))
    runs = {
        "3D CNN (baseline)": (Conv3dBaseline(len(MOTIONS)), args.cnn_steps),
        "default backbone (ViT), supervised": (Logits(VidropForVideoClassification(config)), args.vit_steps),
    }
    print(f"{args.videos_per_class} training videos per class x {len(CLIP_STARTS)} clips, 16 test videos per class, "
          f"batch {args.batch}, CPU fp32, {torch.get_num_threads()} threads; test top-1 % (chance 12.5)")
    final = {}
    for name, (model, steps) in runs.items():
        scores = train_and_test(model, train, test, steps, args.batch, 3e-4, max(steps // 10, 1), args.seed)
        print(f"{name}:")
        for step, seconds, loss, top1 in scores:
            print(f"  step {step:>5} {seconds:>7.1f} s  train loss {loss:.3f}  test top-1 {top1:5.1f}")
        final[name] = scores[-1][3]
    baseline, ours = final.values()
    print(f"final test top-1: ViT {ours:.1f}% against the 3D CNN's {baseline:.1f}% (chance 12.5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
