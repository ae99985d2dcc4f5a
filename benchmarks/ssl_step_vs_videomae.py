"""One ViDROP training step against one `transformers.VideoMAEForPreTraining` step, same backbone, clip, batch.

Both steps are forward + backward + AdamW step (+ the EMA teacher update for ViDROP), on the same clips:
ViDROP with its default configuration (2 global views with 75% of tokens dropped and half the kept ones
masked, 2 small crops, EMA teacher, DINO + iBOT heads), VideoMAE with its default decoder and 90% tube
masking. Token plans and masks are drawn outside the timed region (the data pipeline makes them).

    python benchmarks/ssl_step_vs_videomae.py                  # ViT-B, 16 x 224^2, batch 2, CPU fp32
    python benchmarks/ssl_step_vs_videomae.py --bf16           # on a GPU machine
"""

import argparse
import sys

import torch
from timing import add_common_arguments, median_seconds, setup
from transformers import VideoMAEConfig, VideoMAEForPreTraining

from vidrop import VidropConfig
from vidrop.data import SSLCollator
from vidrop.ssl import SelfDistillation
from vidrop.tokens import make_keep_indices


def vidrop_step(config, clips, device, autocast, seed):
    """A timed closure running one ViDROP step on `clips` `(B, T, C, H, W)` (views cut from them)."""
    model = SelfDistillation(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    small = config.small_crop_size
    samples = [
        {
            "global_views": torch.stack([clip, clip.flip(-1)]),  # two global views of the clip
            "small_views": torch.stack([clip[..., i * 16 : i * 16 + small, i * 16 : i * 16 + small]
                                        for i in range(config.num_small_crops)]),
        }
        for clip in clips.cpu()
    ]
    batch = {k: v.to(device) for k, v in SSLCollator(config, seed=seed)(samples).items()}

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss, _ = model(batch)
        loss.backward()
        optimizer.step()
        model.update_teacher(0.996)

    return step


def videomae_step(config, clips, device, autocast, seed, mask_ratio=0.9):
    """A timed closure running one `VideoMAEForPreTraining` step with tube masking at `mask_ratio`."""
    mae_config = VideoMAEConfig(
        image_size=config.image_size,
        num_frames=config.num_frames,
        tubelet_size=config.tubelet_size,
        patch_size=config.patch_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        attn_implementation="sdpa",
    )
    model = VideoMAEForPreTraining(mae_config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    grid = config.token_grid
    generator = torch.Generator().manual_seed(seed)
    keep = make_keep_indices(grid, clips.shape[0], mask_ratio, "tube", generator)  # visible tokens
    bool_masked_pos = torch.ones(clips.shape[0], grid[0] * grid[1] * grid[2], dtype=torch.bool)
    bool_masked_pos.scatter_(1, keep, False)
    bool_masked_pos = bool_masked_pos.to(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = model(clips, bool_masked_pos=bool_masked_pos).loss
        loss.backward()
        optimizer.step()

    return step


def main():
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--preset", default="base", help="backbone size of both models")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument(
        "--also_drop_rates", type=float, nargs="*", default=[0.9],
        help="also time ViDROP at these drop rates (0.9 keeps as many tokens as VideoMAE's visible ones)",
    )
    args = parser.parse_args()
    device, autocast = setup(args)

    config = VidropConfig.from_preset(args.preset)
    clips = torch.randn(args.batch, config.num_frames, 3, config.image_size, config.image_size, device=device)
    print(f"backbone {args.preset} ({config.hidden_size} wide, {config.num_hidden_layers} blocks), "
          f"batch {args.batch} x "
          f"{config.num_frames} x {config.image_size}^2, device {device}, bf16 {args.bf16}, "
          f"threads {torch.get_num_threads()}, median of {args.repeats}")
    baseline = median_seconds(videomae_step(config, clips, device, autocast, args.seed), args.repeats, device=device)
    print(f"{'model':<44} {'s/step':>8} {'s/clip':>8} {'ratio':>7}")
    name = "VideoMAEForPreTraining, 90% masked (baseline)"
    print(f"{name:<44} {baseline:>8.3f} {baseline / args.batch:>8.3f} {1:>7.3f}")
    for drop_rate in [config.drop_rate] + args.also_drop_rates:
        variant = VidropConfig.from_preset(args.preset, drop_rate=drop_rate)
        ours = median_seconds(vidrop_step(variant, clips, device, autocast, args.seed), args.repeats, device=device)
        name = f"ViDROP, drop {drop_rate:g}" + (" (default)" if drop_rate == config.drop_rate else "")
        print(f"{name:<44} {ours:>8.3f} {ours / args.batch:>8.3f} {ours / baseline:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
