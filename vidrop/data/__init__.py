"""Data pipeline: video files -> compressed shards -> streamed clips -> views with token plans."""

from .augment import MultiCrop
from .collate import SSLCollator
from .shards import CompressionOptions, build_dataset
from .streaming import ClipStream, CorruptDataError, load_video_dataset
from .synthetic import MOTIONS, build_embedded_dataset, build_synthetic_videos

__all__ = [
    "MOTIONS",
    "ClipStream",
    "CompressionOptions",
    "CorruptDataError",
    "MultiCrop",
    "SSLCollator",
    "build_dataset",
    "build_embedded_dataset",
    "build_synthetic_videos",
    "load_video_dataset",
]
