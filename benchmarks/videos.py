"""Benchmark inputs: the embedded synthetic motion videos at a benchmark resolution, cached on disk."""

import os
import tempfile
from pathlib import Path

from vidrop.data.synthetic import build_synthetic_videos

CACHE = Path(os.environ.get("VIDROP_BENCHMARK_CACHE", Path(tempfile.gettempdir()) / "vidrop-benchmarks"))


def benchmark_videos(size=224, num_frames=64, videos_per_class=2, fps=25, noise=2.0):
    """Folder of `8 * videos_per_class` mp4 files (class subfolders), `num_frames` frames of `size`x`size`.

    `noise` is the std of the synthetic sensor noise: 2 gives cartoon-like low-bitrate mp4s, 8 gives a bitrate
    close to web video at this resolution (grain is what makes real video expensive to decode).
    """
    root = CACHE / f"synthetic-{size}px-{num_frames}f-{videos_per_class}pc-noise{noise:g}"
    build_synthetic_videos(
        root, videos_per_class=videos_per_class, num_frames=num_frames, size=size, fps=fps, noise=noise
    )
    return root


def add_video_arguments(parser):
    """`--num_clusters` and `--noise` for the benchmarks that compress the synthetic videos."""
    parser.add_argument("--num_clusters", type=int, default=16)
    parser.add_argument("--noise", type=float, default=8.0, help="sensor noise of the synthetic videos (bitrate)")
    return parser
