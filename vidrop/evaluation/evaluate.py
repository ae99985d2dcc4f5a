"""Evaluate a pre-trained encoder: frozen features -> linear probe and k-NN top-1 -> `eval.json` and a table."""

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..data.streaming import load_video_dataset
from ..models import VidropModel
from .features import FEATURE_TYPES, VideoFeatures, class_names, extract_features
from .probe import knn_top1, linear_probe, split_indices

logger = logging.getLogger(__name__)


@dataclass
class EvalArguments:
    """What to evaluate and how (the arguments of `launchers/evaluate.py`)."""

    model: str = field(metadata={"help": "an HF VidropModel folder (e.g. a run's teacher/) or Hub repo id"})
    train_dataset: str = field(metadata={"help": "labelled compressed dataset the probes are fitted on"})
    eval_dataset: str | None = field(
        default=None,
        metadata={"help": "labelled compressed dataset the probes are scored on; none (or the train dataset): "
                          "a stratified eval_fraction of the train dataset is held out"},
    )
    eval_fraction: float = field(default=0.5, metadata={"help": "held-out fraction when there is no eval dataset"})
    feature_type: str = field(default="both", metadata={"help": f"features: {', '.join(FEATURE_TYPES)}"})
    num_clips: int = field(
        default=2,
        metadata={"help": "clips per video (per stored segment of a long video), evenly spaced; features are "
                          "averaged"},
    )
    num_crops: int = field(default=1, metadata={"help": "square crops per clip: 1 (centre) or 3"})
    frame_stride: int | None = field(
        default=None,
        metadata={"help": "video frames between the frames of a clip; default: the model's (its config's "
                          "frame_stride, the stride it was pre-trained at)"},
    )
    k: int = field(default=20, metadata={"help": "neighbours of the k-NN classifier (cosine)"})
    batch_size: int = field(default=16, metadata={"help": "views per encoder forward"})
    seed: int = field(default=0, metadata={"help": "seed of the split and of the probe"})
    shuffle_frames: bool = field(
        default=False, metadata={"help": "control: shuffle the frames of every clip (destroys temporal order)"}
    )
    device: str = field(default="cuda" if torch.cuda.is_available() else "cpu", metadata={"help": "cuda or cpu"})
    output: str | None = field(default=None, metadata={"help": "where to write eval.json (default: MODEL/eval.json)"})

    def __post_init__(self):
        if self.feature_type not in FEATURE_TYPES:
            raise ValueError(f"feature_type={self.feature_type!r} is not allowed; allowed: {', '.join(FEATURE_TYPES)}")
        for name in ("num_clips", "k", "batch_size", "frame_stride"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value!r} is not allowed; allowed: >= 1")


def vidrop_features(model, dataset, args):
    """`VideoFeatures` of `dataset` by a `VidropModel` (dense: every token of every view)."""
    model = model.to(args.device).eval()
    return extract_features(
        lambda pixel_values: model(pixel_values).last_hidden_state,
        dataset,
        num_frames=model.config.num_frames,
        image_size=model.config.image_size,
        has_cls_token=model.config.use_cls_token,
        feature_type=args.feature_type,
        frame_stride=args.frame_stride or model.config.frame_stride,
        num_clips=args.num_clips,
        num_crops=args.num_crops,
        batch_size=args.batch_size,
        device=args.device,
        shuffle_frames_seed=args.seed if args.shuffle_frames else None,
    )


def probe_scores(train, test, seed=0, k=20):
    """Linear-probe and k-NN top-1 (in %) of train/test `VideoFeatures`, and the linear probe's top-1 on each
    class's test videos (`linear_probe_per_class_top1`, keyed by the class names of `train`, else by label)."""
    probe = linear_probe(train.features, train.labels, test.features, test.labels, seed=seed)
    names = train.class_names
    return {
        "linear_probe_top1": 100.0 * probe["top1"],
        "knn_top1": 100.0 * knn_top1(train.features, train.labels, test.features, test.labels, k=k),
        "probe_C": probe["C"],
        "linear_probe_per_class_top1": {
            names[label] if names else str(label): 100.0 * top1 for label, top1 in probe["per_class_top1"].items()
        },
    }


def _subset(features, indices):
    return VideoFeatures(features.features[indices], features.labels[indices], [features.video_ids[i] for i in indices],
                         features.class_names)


def _check_same_classes(train_dataset, eval_dataset):
    """A label is an index into its dataset's class names, so a train and an eval dataset built from different
    class folders (one lacking a class, say) would score the probe against the wrong classes: a clear error."""
    train_names, eval_names = (class_names(load_video_dataset(dataset)) for dataset in (train_dataset, eval_dataset))
    if train_names and eval_names and train_names != eval_names:
        raise ValueError(
            f"the eval dataset {eval_dataset!r} has the classes {eval_names} and the train dataset {train_names}; "
            "allowed: datasets whose labels name the same classes in the same order (built from the same class "
            "subfolders)"
        )


def evaluate_features(features_of, args):
    """Scores of an encoder given as `features_of(dataset) -> VideoFeatures`, split as `args` says -> dict."""
    start = time.perf_counter()
    if args.eval_dataset not in (None, args.train_dataset):
        _check_same_classes(args.train_dataset, args.eval_dataset)
    train = features_of(args.train_dataset)
    if args.eval_dataset in (None, args.train_dataset):
        train_idx, eval_idx = split_indices(train.labels, args.eval_fraction, args.seed)
        train, test = _subset(train, train_idx), _subset(train, eval_idx)
    else:
        test = features_of(args.eval_dataset)
    result = probe_scores(train, test, seed=args.seed, k=args.k)
    result.update(
        num_train_videos=len(train.labels),
        num_eval_videos=len(test.labels),
        num_classes=int(len(np.unique(np.concatenate([train.labels, test.labels])))),
        feature_type=args.feature_type,
        feature_dim=int(train.features.shape[1]),
        seconds=time.perf_counter() - start,
    )
    return result


def evaluate(args, model=None):
    """Evaluate `args.model` (or an already loaded `model`) as `args` says; writes and returns `eval.json`'s dict."""
    model = model if model is not None else VidropModel.from_pretrained(args.model)
    if args.frame_stride is None:  # recorded in eval.json as the stride the model was pre-trained at
        args = replace(args, frame_stride=model.config.frame_stride)
    result = evaluate_features(lambda dataset: vidrop_features(model, dataset, args), args)
    result["arguments"] = asdict(args)
    output = Path(args.output) if args.output else Path(args.model) / "eval.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1))
    logger.info("wrote %s", output)
    return result


def format_table(result):
    """A short text table of an `eval.json` dict."""
    rows = [
        ("linear probe top-1 (%)", f"{result['linear_probe_top1']:.1f}"),
        ("k-NN top-1 (%)", f"{result['knn_top1']:.1f}"),
        ("videos (train / eval)", f"{result['num_train_videos']} / {result['num_eval_videos']}"),
        ("classes", str(result["num_classes"])),
        ("features", f"{result['feature_type']} ({result['feature_dim']})"),
        ("seconds", f"{result['seconds']:.1f}"),
        ("linear probe top-1 by class (%)", ""),
    ]
    rows += [(f"  {name}", f"{top1:.1f}") for name, top1 in result["linear_probe_per_class_top1"].items()]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
