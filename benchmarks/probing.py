"""Shared probing for the learning benchmarks: the probe set and the mean of a probe over held-out splits."""

from dataclasses import replace
from pathlib import Path

from vidrop.data import build_embedded_dataset
from vidrop.evaluation import EvalArguments, evaluate_features, mean_per_class


def add_probe_arguments(parser):
    """`--seeds` and `--probe_videos_per_class`, the options of `mean_probe` and `probe_dataset`."""
    parser.add_argument("--seeds", type=int, default=3, help="probe split seeds (the mean is reported)")
    parser.add_argument("--probe_videos_per_class", type=int, default=100,
                        help="score on this many new videos per class of the embedded generator, built once in "
                             "the work folder (0: the held-out half of the embedded dataset, 48 videos)")


def probe_dataset(data_folder, videos_per_class):
    """The labelled dataset to probe on: `data_folder/synthetic` (the embedded dataset, which pre-training built)
    when `videos_per_class` is 0, else `videos_per_class` new videos per class of the same generator (seed 1;
    the embedded one is seed 0), compressed as the embedded one is, built once under `data_folder`."""
    data_folder = Path(data_folder)
    if not videos_per_class:
        return str(data_folder / "synthetic")
    dataset = data_folder / f"probe-{videos_per_class}"
    if not (dataset / "stats.json").exists():
        build_embedded_dataset(dataset, videos_per_class=videos_per_class, seed=1)
    return str(dataset)


def mean_probe(features_of, dataset, seeds, feature_type="both", shuffle_frames=False):
    """Linear probe and k-NN of `features_of(dataset, eval_args)`, mean over `seeds` splits of `dataset` (fit on
    one half, score the other) -> `{"linear_probe_top1", "knn_top1", "linear_probe_per_class_top1": {class:
    top-1}, "videos": (fitted, scored)}`.

    The features are extracted once, from clips at the encoder's own frame stride (`eval_args.frame_stride` is
    None; with `shuffle_frames`, the frames are shuffled with seed 0), and split `seeds` ways."""
    args = EvalArguments(model="-", train_dataset=dataset, feature_type=feature_type, shuffle_frames=shuffle_frames)
    features = features_of(dataset, args)
    scores = [evaluate_features(lambda d: features, replace(args, seed=seed)) for seed in range(seeds)]
    result = {k: sum(s[k] for s in scores) / seeds for k in ("linear_probe_top1", "knn_top1")}
    result["linear_probe_per_class_top1"] = mean_per_class([s["linear_probe_per_class_top1"] for s in scores])
    result["videos"] = (scores[0]["num_train_videos"], scores[0]["num_eval_videos"])
    return result
