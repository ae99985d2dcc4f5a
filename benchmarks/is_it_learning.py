"""Is it learning? The default recipe's linear probe against random weights and a frame-shuffled control.

Pre-trains the embedded default (`deepspeed launchers/pretrain.py` with no model options) into a temporary
folder, then scores on new videos of the embedded dataset's generator (linear probe and k-NN, the same evaluation
as `launchers/evaluate.py`):
  * the trained teacher on clips in order;
  * the same architecture with random weights (the baseline);
  * the trained teacher fed frame-shuffled clips (the control: the classes are motions, so order matters).
Goals: trained - random >= 15 points of linear-probe top-1, and trained > shuffled. Exit status 1 if missed.

The probe set is `--probe_videos_per_class` (default 100) videos per class from the same generator with another
seed, compressed the same way and built once in the work folder; the probe is fitted on one half and scored on
the other (400 + 400 videos: one video is 0.25 points; with 40 per class the probe is starved of data and
both encoders score lower, see BENCHMARKS.md). `--probe_videos_per_class 0` scores on the held-out half
of the embedded dataset itself (12 videos per class, so 48 scored videos and 2 points each: too coarse to
resolve the goal). A work folder that already holds a finished run is scored again without pre-training.

    python benchmarks/is_it_learning.py                   # the default recipe as it is
    python benchmarks/is_it_learning.py --pretrain_args "--max_steps 1000 --micro_batch_size 8"
    python benchmarks/is_it_learning.py --workdir runs/default    # score a finished run again
"""

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from probing import add_probe_arguments, mean_probe, probe_dataset

from vidrop import VidropModel
from vidrop.evaluation import vidrop_features
from vidrop.training.launch import deepspeed_command

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain_args", default="", help="extra launchers/pretrain.py options")
    parser.add_argument("--workdir", default=None, help="where to pre-train (default: a temporary folder)")
    add_probe_arguments(parser)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp())
    workdir.mkdir(parents=True, exist_ok=True)
    output = workdir / "outputs" / "demo"
    command = deepspeed_command(ROOT / "launchers" / "pretrain.py", "--output_dir", output,
                                *shlex.split(args.pretrain_args))
    if not (output / "summary.json").exists():
        subprocess.run(command, check=True, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dataset = probe_dataset(workdir / "outputs" / "data", args.probe_videos_per_class)

    trained = VidropModel.from_pretrained(output / "teacher")
    torch.manual_seed(0)
    random_weights = VidropModel(trained.config)
    rows = {}
    for name, model, shuffle in (("trained", trained, False), ("random weights (baseline)", random_weights, False),
                                 ("trained, frame-shuffled clips (control)", trained, True)):
        rows[name] = mean_probe(lambda d, a, m=model: vidrop_features(m, d, a), dataset, args.seeds,
                                shuffle_frames=shuffle)
    print(f"command: {shlex.join(command)}")
    print(f"features: both (CLS and mean patch), mean over {args.seeds} probe split seeds; {dataset}: "
          f"{rows['trained']['videos'][0]} + {rows['trained']['videos'][1]} videos (fitted + scored)")
    print(f"{'encoder':<42} {'linear probe %':>14} {'k-NN %':>8}")
    for name, row in rows.items():
        print(f"{name:<42} {row['linear_probe_top1']:>14.1f} {row['knn_top1']:>8.1f}")
    trained_top1 = rows["trained"]["linear_probe_top1"]
    gain = trained_top1 - rows["random weights (baseline)"]["linear_probe_top1"]
    order = trained_top1 - rows["trained, frame-shuffled clips (control)"]["linear_probe_top1"]
    print(f"trained - random: {gain:+.1f} points (goal >= +15): {'met' if gain >= 15 else 'MISSED'}")
    print(f"trained - shuffled: {order:+.1f} points (goal > 0): {'met' if order > 0 else 'MISSED'}")
    return 0 if gain >= 15 and order > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
