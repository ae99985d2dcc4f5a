"""ViDROP's default recipe against `transformers.VideoMAEForPreTraining` at equal wall-clock on the same data.

Both pre-train the same backbone (the default recipe's: ViT-T width, 6 blocks, 8 x 64^2 clips, tubelets
2 x 8 x 8) on the embedded dataset on this machine. ViDROP runs its default recipe through the launcher,
checkpointing at four points; VideoMAE (the baseline: its decoder, 90% tube masking, normalised-pixel loss,
AdamW) trains in plain PyTorch on the same clip stream for the same number of seconds, its encoder
snapshotted at the same times. Every snapshot is probed afterwards (linear probe and k-NN on a held-out half,
`vidrop.evaluation`; probing time is not training time): ViDROP with its CLS and mean patch features, VideoMAE
with mean patch features (it has no CLS token); each also with its random initial weights, the floor that
learning has to clear. The probe set is that of `benchmarks/is_it_learning.py` (`--probe_videos_per_class`, default
100 new videos per class of the embedded generator).

    python benchmarks/peer_videomae.py
    python benchmarks/peer_videomae.py --pretrain_args "--max_steps 800 --save_steps 200"
"""

import argparse
import copy
import json
import shlex
import sys
import time

import torch
from probing import add_probe_arguments, mean_probe, probe_dataset
from runs import pretrain, work_folder
from torchdata.stateful_dataloader import StatefulDataLoader
from transformers import VideoMAEConfig, VideoMAEForPreTraining

from vidrop import VidropModel
from vidrop.ablation.report import loss_curve
from vidrop.data import ClipStream, MultiCrop
from vidrop.evaluation import extract_features, vidrop_features
from vidrop.tokens import make_keep_indices
from vidrop.training.export import export_from_checkpoint


def train_vidrop(workdir, pretrain_args, name="vidrop"):
    """The default recipe through the launcher into `workdir/name` (reused once it finished, as every learning
    benchmark's runs are) -> `([(seconds, step, teacher folder)]` at its checkpoints, summary, command)."""
    output, command = pretrain(workdir, name, 0, "--save_steps", 50, *shlex.split(pretrain_args))
    wall = {step: seconds for step, seconds, _ in loss_curve(output)}
    points = []
    for tag in sorted(p.name for p in (output / "checkpoints").glob("step-*")):
        step = int(tag.split("-")[1])
        export_from_checkpoint(output, tag, workdir / f"{name}-exports" / tag)
        points.append((wall[step], step, workdir / f"{name}-exports" / tag / "teacher"))
    return points, json.loads((output / "summary.json").read_text()), shlex.join(command)


def videomae_model(config):
    """`VideoMAEForPreTraining` with the ViDROP backbone's sizes (encoder) and a 4-block decoder of the same width."""
    mae = VideoMAEConfig(
        image_size=config.image_size, patch_size=config.patch_size, num_frames=config.num_frames,
        tubelet_size=config.tubelet_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
        decoder_hidden_size=config.hidden_size, decoder_num_hidden_layers=4,
        decoder_num_attention_heads=config.num_attention_heads, decoder_intermediate_size=config.intermediate_size,
        attn_implementation="sdpa",
    )
    return VideoMAEForPreTraining(mae)


def train_videomae(config, dataset, seconds, snapshot_times, batch_size, learning_rate, seed, warmup_steps=20):
    """VideoMAE for `seconds` -> `[(seconds, step, encoder copy)]` at the first step past each snapshot time."""
    torch.manual_seed(seed)
    model = videomae_model(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.05, betas=(0.9, 0.95))
    crop = MultiCrop(global_size=config.image_size, num_small_crops=0, num_global_crops=1, flip_probability=0.0)
    stream = ClipStream(dataset, crop, num_frames=config.num_frames, frame_stride=config.frame_stride, seed=seed)
    loader = StatefulDataLoader(stream, batch_size=batch_size)
    generator = torch.Generator().manual_seed(seed)
    grid = config.token_grid
    snapshots, pending, step, start = [], list(snapshot_times), 0, time.perf_counter()
    while pending:
        for batch in loader:
            clips = batch["global_views"][:, 0]  # (B, T, C, H, W)
            keep = make_keep_indices(grid, clips.shape[0], 0.9, "tube", generator)  # visible tokens (B, K)
            masked = torch.ones(clips.shape[0], grid[0] * grid[1] * grid[2], dtype=torch.bool)
            masked.scatter_(1, keep, False)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate * min(1.0, (step + 1) / warmup_steps)
            loss = model(clips, bool_masked_pos=masked).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            elapsed = time.perf_counter() - start
            while pending and elapsed >= pending[0]:
                pending.pop(0)
                snapshots.append((elapsed, step, copy.deepcopy(model.videomae).eval()))
            if not pending or elapsed >= seconds:
                break
        stream.set_epoch(stream.epoch + 1)
    return snapshots


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain_args", default="", help="extra launchers/pretrain.py options for ViDROP")
    parser.add_argument("--videomae_learning_rate", type=float, default=5e-4)
    parser.add_argument("--workdir", default=None, help="where to pre-train (default: a temporary folder)")
    add_probe_arguments(parser)
    args = parser.parse_args()
    workdir = work_folder(args.workdir)
    points, summary, command = train_vidrop(workdir, args.pretrain_args)
    dataset = str(workdir / "outputs" / "data" / "synthetic")
    probe_set = probe_dataset(workdir / "outputs" / "data", args.probe_videos_per_class)
    config = VidropModel.from_pretrained(points[-1][2]).config
    budget = points[-1][0]
    seed = 0
    mae = train_videomae(config, dataset, budget, [p[0] for p in points],
                         summary["arguments"]["train"]["micro_batch_size"], args.videomae_learning_rate, seed=seed)

    def mae_features(encoder):
        return lambda d, a: extract_features(
            lambda x: encoder(x).last_hidden_state, d, config.num_frames, config.image_size, has_cls_token=False,
            feature_type="mean_patch", frame_stride=a.frame_stride or config.frame_stride, num_clips=a.num_clips)

    def probe_row(name, seconds, step, features_of, feature_type):
        """Probe one snapshot, print its row, return its linear-probe top-1."""
        scores = mean_probe(features_of, probe_set, args.seeds, feature_type)
        print(f"{name:<10} {seconds:>8.1f} {step:>6} {scores['linear_probe_top1']:>14.1f} {scores['knn_top1']:>8.1f}")
        return scores["linear_probe_top1"]

    def vidrop_of(model):
        return lambda d, a: vidrop_features(model, d, a)

    print(f"ViDROP: {command}")
    print(f"VideoMAEForPreTraining: same backbone, 4-block decoder, 90% tube masking, AdamW lr "
          f"{args.videomae_learning_rate:g}, same micro batch and clip stream, plain PyTorch, CPU fp32")
    print(f"probes: mean over {args.seeds} held-out splits of {probe_set}; {torch.get_num_threads()} threads; "
          "step 0: random weights")
    print(f"{'model':<10} {'seconds':>8} {'step':>6} {'linear probe %':>14} {'k-NN %':>8}")
    torch.manual_seed(0)
    probe_row("ViDROP", 0.0, 0, vidrop_of(VidropModel(config)), "both")
    vidrop_curve = [(seconds, probe_row("ViDROP", seconds, step, vidrop_of(VidropModel.from_pretrained(folder)),
                                        "both"))
                    for seconds, step, folder in points]
    torch.manual_seed(seed)  # the initial weights of train_videomae's model
    mae_final = probe_row("VideoMAE", 0.0, 0, mae_features(videomae_model(config).videomae.eval()), "mean_patch")
    for seconds, step, encoder in mae:
        mae_final = probe_row("VideoMAE", seconds, step, mae_features(encoder), "mean_patch")
    reached = next((seconds for seconds, top1 in vidrop_curve if top1 >= mae_final), None)
    print("ViDROP reaches VideoMAE's final linear-probe accuracy after "
          + (f"{reached:.1f} s ({reached / budget:.2f} of VideoMAE's time)" if reached is not None
             else "- (not reached)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
