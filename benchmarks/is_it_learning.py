"""Is it learning? The default recipe's linear probe against random weights and a frame-shuffled control.

Pre-trains the embedded default (`deepspeed launchers/pretrain.py` with no model options) into a temporary
folder, then scores on new videos of the embedded dataset's generator (linear probe and k-NN, the same evaluation
as `launchers/evaluate.py`):
  * the trained teacher on clips in order;
  * the same architecture with random weights (the baseline);
  * the trained teacher fed frame-shuffled clips (the control: the classes are motions, so order matters);
  * the run's exported student, printed beside the teacher (in shorter runs it often probes higher) but not judged:
    the teacher is what a run evaluates and pushes by default (`launchers/push_to_hub.py --which student` for
    the other).
Every encoder sees its clips at the frame stride the run trained at (the config's `frame_stride`). Each encoder's
top-1 on each motion's scored videos is printed too (which motions the features confuse).
Goals: trained - random >= 15 points of linear-probe top-1, and trained > shuffled. Exit status 1 if missed.

The gap moves by several points from one pre-training seed to the next (over ten runs of the default, 11.9 to 19.6
points, a standard deviation of 2.2; random weights drawn with each seed probe 53-58%; BENCHMARKS.md), so
`--pretrain_seeds N` (default 5) pre-trains N runs of the same recipe with seeds 0..N-1 (`--seed`), scores each
against random weights drawn with its seed, and judges the goals on the mean over runs (printed with each run and
the standard deviation).

The probe set is `--probe_videos_per_class` (default 100) videos per class from the same generator with another
seed, compressed the same way and built once in the work folder; the probe is fitted on one half and scored on
the other (400 + 400 videos: one video is 0.25 points; with 40 per class the probe is starved of data and
both encoders score lower, see BENCHMARKS.md). `--probe_videos_per_class 0` scores on the held-out half
of the embedded dataset itself (12 videos per class, so 48 scored videos and 2 points each: too coarse to
resolve the goal). Runs that already finished in the work folder are scored again without pre-training (a
finished run trained with other arguments is an error naming them).

    python benchmarks/is_it_learning.py                   # the default recipe as it is, five runs
    python benchmarks/is_it_learning.py --pretrain_args "--max_steps 1000 --micro_batch_size 8"
    python benchmarks/is_it_learning.py --workdir runs/default    # score finished runs again
    python benchmarks/is_it_learning.py --pretrain_seeds 1        # one run (seed 0) only
    python benchmarks/is_it_learning.py --pretrain_args "--frame_stride 2"    # the demo's sampling until 2026-12-06
    python benchmarks/is_it_learning.py --pretrain_args "--micro_batch_size 4 --max_steps 200"  # demo before 2026-12-07
    python benchmarks/is_it_learning.py --pretrain_args "--config_overrides FIELDS,drop_path_rate=0.1"  # sessions 36-37
    python benchmarks/is_it_learning.py --pretrain_args "--config_overrides FIELDS"  # the demo of session 35
    python benchmarks/is_it_learning.py --pretrain_args "--config_overrides FIELDS --final_momentum 1.0"  # session 34
(FIELDS: `DEMO_OVERRIDES` of `vidrop/training/arguments.py` less its last two, `drop_path_rate=0.1,drop_pattern=tube`.)
"""

import argparse
import shlex
import sys

import numpy as np
import torch
from probing import add_probe_arguments, mean_probe, probe_dataset
from runs import pretrain, work_folder

from vidrop import VidropConfig, VidropModel
from vidrop.evaluation import mean_per_class, vidrop_features

ENCODERS = ("trained", "random weights (baseline)", "trained, frame-shuffled clips (control)",
            "trained student (not judged)")


def score_run(output, seed, dataset, probe_seeds):
    """Probe rows `{encoder: {"linear_probe_top1", "knn_top1", "videos"}}` of one run's teacher, random weights
    drawn with `seed`, the teacher on frame-shuffled clips and the run's exported student, all on clips at the
    run's frame stride (every model's config has it)."""
    trained = VidropModel.from_pretrained(output / "teacher")
    torch.manual_seed(seed)
    random_weights = VidropModel(trained.config)
    student = VidropModel.from_pretrained(output / "student")
    models, shuffles = (trained, random_weights, trained, student), (False, False, True, False)
    return {name: mean_probe(lambda d, a, m=model: vidrop_features(m, d, a), dataset, probe_seeds,
                             shuffle_frames=shuffle)
            for name, model, shuffle in zip(ENCODERS, models, shuffles)}


def print_per_class(scores):
    """The linear probe's top-1 on each class's scored videos, per encoder (mean over runs and probe splits):
    which motions the features tell apart and which they confuse."""
    short = ("trained", "random", "shuffled", "student")
    means = [mean_per_class([s[encoder]["linear_probe_per_class_top1"] for s in scores]) for encoder in ENCODERS]
    print(f"{'linear probe top-1 by class %':<30}" + "".join(f"{name:>10}" for name in short))
    for name in means[0]:
        print(f"{name:<30}" + "".join(f"{by_class[name]:>10.1f}" for by_class in means))


def spread(values):
    """` (std S over N runs)` of per-run values, or nothing for one run."""
    return f" (std {values.std(ddof=1):.1f} over {len(values)} runs)" if len(values) > 1 else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain_args", default="", help="extra launchers/pretrain.py options")
    parser.add_argument("--pretrain_seeds", type=int, default=5,
                        help="pre-training runs with seeds 0..N-1; the goals are judged on their mean")
    parser.add_argument("--workdir", default=None, help="where to pre-train (default: a temporary folder)")
    add_probe_arguments(parser)
    args = parser.parse_args()
    if args.pretrain_seeds < 1:
        parser.error(f"--pretrain_seeds {args.pretrain_seeds}: allowed: 1 or more")
    workdir = work_folder(args.workdir)
    runs = [pretrain(workdir, "outputs/demo", seed, *shlex.split(args.pretrain_args))
            for seed in range(args.pretrain_seeds)]
    dataset = probe_dataset(workdir / "outputs" / "data", args.probe_videos_per_class)
    scores = [score_run(output, seed, dataset, args.seeds) for seed, (output, _) in enumerate(runs)]
    stride = VidropConfig.from_pretrained(runs[0][0]).frame_stride  # every run has the same --pretrain_args

    for seed, (_, command) in enumerate(runs):
        print(f"command (seed {seed}): {shlex.join(command)}")
    videos = scores[0][ENCODERS[0]]["videos"]
    print(f"features: both (CLS and mean patch) of clips at frame stride {stride}, mean over "
          f"{args.seeds} probe split seeds; {dataset}: "
          f"{videos[0]} + {videos[1]} videos (fitted + scored); {len(runs)} pre-training run(s)")
    top1 = {name: np.array([s[name]["linear_probe_top1"] for s in scores]) for name in ENCODERS}
    knn = {name: np.array([s[name]["knn_top1"] for s in scores]) for name in ENCODERS}
    print(f"{'encoder':<42} {'linear probe %':>14} {'k-NN %':>8}" + ("   per run (linear)" if len(runs) > 1 else ""))
    for name in ENCODERS:
        per_run = "   " + " / ".join(f"{v:.1f}" for v in top1[name]) if len(runs) > 1 else ""
        print(f"{name:<42} {top1[name].mean():>14.1f} {knn[name].mean():>8.1f}{per_run}")
    print_per_class(scores)
    gains = top1[ENCODERS[0]] - top1[ENCODERS[1]]
    student_gains = top1[ENCODERS[3]] - top1[ENCODERS[1]]
    orders = top1[ENCODERS[0]] - top1[ENCODERS[2]]
    gain, order = gains.mean(), orders.mean()
    print(f"trained - random: {gain:+.1f} points{spread(gains)} (goal >= +15): {'met' if gain >= 15 else 'MISSED'}")
    print(f"student - random: {student_gains.mean():+.1f} points{spread(student_gains)} (the exported teacher is "
          "the judged encoder)")
    print(f"trained - shuffled: {order:+.1f} points{spread(orders)} (goal > 0): {'met' if order > 0 else 'MISSED'}")
    return 0 if gain >= 15 and order > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
