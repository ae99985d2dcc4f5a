"""Is it learning? The default recipe's linear probe against random weights and a frame-shuffled control.

Pre-trains the embedded default (`deepspeed launchers/pretrain.py` with no model options) into a temporary
folder, then scores on a held-out half of the embedded dataset (linear probe and k-NN, the same evaluation as
`launchers/evaluate.py`):
  * the trained teacher on clips in order;
  * the same architecture with random weights (the baseline);
  * the trained teacher fed frame-shuffled clips (the control: the classes are motions, so order matters).
Goals: trained - random >= 15 points of linear-probe top-1, and trained > shuffled. Exit status 1 if missed.

The embedded dataset holds 12 videos per class, so a held-out half scores 48 videos (one video is 2 points).
`--probe_videos_per_class N` scores on N more videos per class from the same generator instead (another seed,
compressed the same way, built once in the work folder; the probe is fitted on one half and scored on the other).
A work folder that already holds a finished run is scored again without pre-training.

    python benchmarks/is_it_learning.py                   # the default recipe as it is
    python benchmarks/is_it_learning.py --pretrain_args "--max_steps 1000 --micro_batch_size 8"
    python benchmarks/is_it_learning.py --workdir runs/default --probe_videos_per_class 40
"""

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from vidrop import VidropModel
from vidrop.data import build_embedded_dataset
from vidrop.evaluation import EvalArguments, evaluate_features, vidrop_features
from vidrop.training.launch import deepspeed_command

ROOT = Path(__file__).resolve().parents[1]


def probe_dataset(folder, videos_per_class):
    """A labelled dataset of `videos_per_class` new videos per class (seed 1; the embedded one is seed 0),
    compressed as the embedded one is, built once under `folder`."""
    dataset = folder / f"probe-{videos_per_class}"
    if not (dataset / "stats.json").exists():
        build_embedded_dataset(dataset, videos_per_class=videos_per_class, seed=1)
    return str(dataset)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain_args", default="", help="extra launchers/pretrain.py options")
    parser.add_argument("--seeds", type=int, default=3, help="probe split seeds (the mean is reported)")
    parser.add_argument("--workdir", default=None, help="where to pre-train (default: a temporary folder)")
    parser.add_argument("--probe_videos_per_class", type=int, default=0,
                        help="score on this many new videos per class (default 0: the held-out half of the "
                             "embedded dataset)")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp())
    workdir.mkdir(parents=True, exist_ok=True)
    output = workdir / "outputs" / "demo"
    command = deepspeed_command(ROOT / "launchers" / "pretrain.py", "--output_dir", output,
                                *shlex.split(args.pretrain_args))
    if not (output / "summary.json").exists():
        subprocess.run(command, check=True, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dataset = str(workdir / "outputs" / "data" / "synthetic")
    if args.probe_videos_per_class:
        dataset = probe_dataset(workdir / "outputs" / "data", args.probe_videos_per_class)

    trained = VidropModel.from_pretrained(output / "teacher")
    torch.manual_seed(0)
    random_weights = VidropModel(trained.config)
    rows = {}
    for name, model, shuffle in (("trained", trained, False), ("random weights (baseline)", random_weights, False),
                                 ("trained, frame-shuffled clips (control)", trained, True)):
        scores = []
        for seed in range(args.seeds):
            eval_args = EvalArguments(model=str(output / "teacher"), train_dataset=dataset, seed=seed,
                                      shuffle_frames=shuffle, device="cuda" if torch.cuda.is_available() else "cpu")
            scores.append(evaluate_features(lambda d, m=model, a=eval_args: vidrop_features(m, d, a), eval_args))
        rows[name] = {k: sum(s[k] for s in scores) / len(scores) for k in ("linear_probe_top1", "knn_top1")}
        rows[name]["videos"] = (scores[0]["num_train_videos"], scores[0]["num_eval_videos"])
    print(f"command: {shlex.join(command)}")
    print(f"features: {eval_args.feature_type}, mean over {args.seeds} probe split seeds; {dataset}: "
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
