"""Sparse encoder cost: student forward + backward time at drop rates 0.5, 0.75, 0.9 against dense (rate 0).

Claim (issue 2): time(r) <= 1.15 x (1 - r) x time(0) for ViT-S, 16 frames at 224x224, batch 2.

    python benchmarks/sparse_encoder_cost.py                 # CPU, fp32
    python benchmarks/sparse_encoder_cost.py --bf16          # on a GPU machine
"""

import argparse
import math
import sys

import torch
from timing import add_common_arguments, median_seconds, setup

from vidrop import VidropConfig, VidropModel
from vidrop.tokens import make_keep_indices


def main():
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--preset", default="small")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--drop_rates", type=float, nargs="+", default=[0.5, 0.75, 0.9])
    args = parser.parse_args()
    device, autocast = setup(args)

    config = VidropConfig.from_preset(args.preset, num_frames=args.frames, image_size=args.size)
    model = VidropModel(config).to(device).train()
    clips = torch.randn(args.batch, args.frames, 3, args.size, args.size, device=device)
    grid = (args.frames // config.tubelet_size, args.size // config.patch_size, args.size // config.patch_size)
    generator = torch.Generator().manual_seed(args.seed)

    def step_at(drop_rate):
        keep = make_keep_indices(grid, args.batch, drop_rate, "random", generator).to(device)

        def step():
            model.zero_grad(set_to_none=True)
            with autocast():
                out = model(clips, keep_indices=keep if drop_rate > 0 else None).last_hidden_state
            out.float().square().mean().backward()

        return step

    print(f"ViDROP {args.preset}: {args.batch} x {args.frames} frames x {args.size}^2, {math.prod(grid)} tokens, "
          f"device {device}, bf16 {args.bf16}, threads {torch.get_num_threads()}, median of {args.repeats}")
    dense = median_seconds(step_at(0.0), args.repeats, device=device)
    print(f"{'drop rate':>9} {'kept':>6} {'fwd+bwd s':>10} {'ratio':>7} {'goal':>7}  verdict")
    print(f"{0.0:>9.2f} {math.prod(grid):>6} {dense:>10.3f} {1.0:>7.3f} {1.0:>7.3f}  baseline (dense)")
    failures = 0
    for rate in args.drop_rates:
        seconds = median_seconds(step_at(rate), args.repeats, device=device)
        ratio, goal = seconds / dense, 1.15 * (1 - rate)
        failures += ratio > goal
        kept = max(1, round(math.prod(grid) * (1 - rate)))
        verdict = "ok" if ratio <= goal else "MISSED"
        print(f"{rate:>9.2f} {kept:>6} {seconds:>10.3f} {ratio:>7.3f} {goal:>7.3f}  {verdict}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
