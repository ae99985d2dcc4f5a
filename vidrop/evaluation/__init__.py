"""Evaluation of frozen encoders: features of labelled compressed datasets, linear probe and k-NN."""

from .evaluate import EvalArguments, evaluate, evaluate_features, format_table, probe_scores, vidrop_features
from .features import FEATURE_TYPES, VideoFeatures, extract_features
from .probe import knn_top1, linear_probe, mean_per_class, split_indices

__all__ = [
    "FEATURE_TYPES",
    "EvalArguments",
    "VideoFeatures",
    "evaluate",
    "evaluate_features",
    "extract_features",
    "format_table",
    "knn_top1",
    "linear_probe",
    "mean_per_class",
    "probe_scores",
    "split_indices",
    "vidrop_features",
]
