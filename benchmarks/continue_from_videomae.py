"""Continued pre-training from a VideoMAE checkpoint against the same ViDROP budget from random weights.

On the embedded dataset: a `VideoMAEForPreTraining` with the default recipe's backbone (ViT-T width, 6 blocks,
8 x 64^2 clips) is pre-trained for `--videomae_seconds` (plain PyTorch, as in `peer_videomae.py`) and saved as a
`transformers` folder. ViDROP then continues from that folder (`pretrain.py --init_from`, converted on the fly,
a new CLS token) with the default recipe; the baseline is the same recipe and number of steps from random
weights. Linear probe and k-NN (mean over held-out splits of the probe set of `benchmarks/is_it_learning.py`):
the VideoMAE encoder before continuing (mean patch features; its CLS token is new), after continuing, and the
random-initialised run.

    python benchmarks/continue_from_videomae.py
    python benchmarks/continue_from_videomae.py --videomae_seconds 300 --pretrain_args "--max_steps 400"
"""

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import torch
from peer_videomae import train_videomae, train_vidrop
from probing import add_probe_arguments, mean_probe, probe_dataset

from vidrop import VidropModel
from vidrop.conversion import convert
from vidrop.evaluation import vidrop_features
from vidrop.models import ARCHITECTURE_FIELDS, VidropConfig
from vidrop.training.arguments import DEMO_OVERRIDES, parse_overrides


def ssl_overrides():
    """The default recipe's overrides outside the architecture (a continued model keeps the source's)."""
    fields = {k: v for k, v in parse_overrides(DEMO_OVERRIDES).items() if k not in ARCHITECTURE_FIELDS}
    return ",".join(f"{k}={v}" for k, v in fields.items())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain_args", default="", help="extra launchers/pretrain.py options for both ViDROP runs")
    parser.add_argument("--videomae_seconds", type=float, default=120.0, help="VideoMAE pre-training budget")
    parser.add_argument("--videomae_learning_rate", type=float, default=5e-4)
    add_probe_arguments(parser)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp())

    scratch, scratch_summary, command = train_vidrop(workdir, args.pretrain_args, "scratch")  # builds the dataset
    dataset = str(workdir / "outputs" / "data" / "synthetic")
    config = VidropConfig.from_pretrained(scratch[-1][2])  # VideoMAE's clips: the same size and frame stride
    batch_size = scratch_summary["arguments"]["train"]["micro_batch_size"]
    (mae_seconds, mae_steps, encoder), = train_videomae(config, dataset, args.videomae_seconds, [args.videomae_seconds],
                                                        batch_size, args.videomae_learning_rate, seed=0)
    encoder.save_pretrained(workdir / "videomae")
    continued, _, _ = train_vidrop(
        workdir, f"{args.pretrain_args} --init_from {workdir / 'videomae'} --config_overrides {ssl_overrides()}",
        "continued",
    )

    print(f"VideoMAE: VideoMAEForPreTraining, {mae_steps} steps in {mae_seconds:.0f} s (AdamW lr "
          f"{args.videomae_learning_rate:g}, 90% tube masking, micro batch {batch_size}), saved as VideoMAEModel")
    print(f"ViDROP from scratch: {command}")
    print(f"ViDROP continued: the same with --init_from the VideoMAE folder and --config_overrides {ssl_overrides()}")
    probe_set = probe_dataset(workdir / "outputs" / "data", args.probe_videos_per_class)
    print(f"probes: mean over {args.seeds} held-out splits of {probe_set} (chance 12.5%); "
          f"{torch.get_num_threads()} threads")
    print(f"{'model':<44} {'features':<10} {'linear probe %':>14} {'k-NN %':>8}")
    before = convert(workdir / "videomae")[0]
    rows = [("VideoMAE, before continuing", before, "mean_patch")]
    for label, points in (("ViDROP continued from VideoMAE", continued), ("ViDROP from random (baseline)", scratch)):
        _, step, folder = points[-1]
        model = VidropModel.from_pretrained(folder)
        rows += [(f"{label}, {step} steps", model, "mean_patch"), (f"{label}, {step} steps", model, "both")]
    for label, model, feature_type in rows:
        scores = mean_probe(lambda d, a, m=model: vidrop_features(m, d, a), probe_set, args.seeds, feature_type)
        print(f"{label:<44} {feature_type:<10} {scores['linear_probe_top1']:>14.1f} {scores['knn_top1']:>8.1f}")
    print(f"(work folder {workdir}; pretrain args {shlex.quote(args.pretrain_args)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
