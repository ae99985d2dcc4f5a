"""Building and size: frames/s of `launchers/compress.py`'s work per process against PyAV decode + resize of the
same videos alone, and the compression factor against raw RGB and the bytes against the source mp4s.

Claims (issue 3): compressing costs at most 2x decoding; compression factor at K=16 at least 15x.

    python benchmarks/compression_build.py
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from timing import add_common_arguments, setup
from videos import add_video_arguments, benchmark_videos

from vidrop.data import CompressionOptions, build_dataset
from vidrop.data.video import read_video


def main():
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    add_video_arguments(parser)
    parser.add_argument("--source_size", type=int, default=256)
    parser.add_argument("--short_side", type=int, default=224)
    args = parser.parse_args()
    setup(args)
    videos = benchmark_videos(args.source_size, 64, 2, noise=args.noise)
    paths = sorted(videos.glob("*/*.mp4"))
    decode, build = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        frames = sum(len(read_video(p, short_side=args.short_side).frames) for p in paths)
        decode.append(frames / (time.perf_counter() - start))
        output = Path(tempfile.mkdtemp()) / "dataset"
        start = time.perf_counter()
        options = CompressionOptions(num_clusters=args.num_clusters, short_side=args.short_side)
        totals = build_dataset(videos, output, options)
        build.append(totals["frames"] / (time.perf_counter() - start))
        shutil.rmtree(output.parent)
    decode_fps, build_fps = sorted(decode)[len(decode) // 2], sorted(build)[len(build) // 2]
    print(f"{len(paths)} videos of 64 frames, {args.source_size}px resized to short side {args.short_side}, "
          f"K = {args.num_clusters}, one process, median of {args.repeats}")
    print(f"{'PyAV decode + resize alone (baseline)':<42} {decode_fps:>8.1f} frames/s")
    print(f"{'decode + resize + cluster + encode + write':<42} {build_fps:>8.1f} frames/s")
    print(f"cost ratio: {decode_fps / build_fps:.2f}x decoding (goal <= 2x)")
    print(f"compression factor vs raw RGB: {totals['compression_factor']:.1f}x (goal >= 15x); "
          f"stored {totals['compressed_bytes']} B vs source mp4 {totals['source_bytes']} B "
          f"({totals['compressed_bytes'] / totals['source_bytes']:.2f}x); mean PSNR {totals['psnr_db']:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
