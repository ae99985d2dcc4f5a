"""Each clusterer on the same videos: fit time, palette size, PSNR and compression factor, in one table
(the `kmeans` row is the baseline).

    python benchmarks/clusterers.py
"""

import argparse
import sys
import time

import numpy as np
from timing import add_common_arguments, setup
from videos import add_video_arguments, benchmark_videos

from vidrop.compression import (
    CLUSTERERS,
    encode_indices,
    fit_palette,
    nearest_palette_indices,
    palette_lookup,
    psnr_db,
)
from vidrop.data.video import read_video


def main():
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    add_video_arguments(parser)
    args = parser.parse_args()
    setup(args)
    clips = [read_video(p).frames for p in sorted(benchmark_videos(224, 64, 2, noise=args.noise).glob("*/*.mp4"))]
    print(f"{len(clips)} synthetic videos (64 frames, 224x224, noise {args.noise:g}), K = {args.num_clusters}")
    print(f"{'clusterer':<18} {'fit s/video':>11} {'palette':>8} {'PSNR dB':>8} {'factor':>7}")
    for method in CLUSTERERS:
        fit, psnr, raw, stored, sizes = [], [], 0, 0, []
        for frames in clips:
            start = time.perf_counter()
            palette = fit_palette(frames.reshape(-1, 3), args.num_clusters, method, seed=args.seed)
            fit.append(time.perf_counter() - start)
            indices = nearest_palette_indices(frames, palette)
            psnr.append(psnr_db(frames, palette_lookup(indices, palette)))
            encoded = encode_indices(indices, palette)
            raw, stored = raw + encoded.raw_bytes, stored + encoded.compressed_bytes
            sizes.append(len(palette))
        name = method + (" (baseline)" if method == "kmeans" else "")
        print(f"{name:<18} {np.median(fit):>11.3f} {np.mean(sizes):>8.1f} {np.mean(psnr):>8.2f} {raw / stored:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
