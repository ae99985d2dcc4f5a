"""Palette quality: PSNR of ViDROP's k-means palette (K=16, one palette per video) against Pillow's median-cut
quantizer (`Image.quantize`, 16 colours, one palette per frame) on the same frames.

Claim (issue 3): at least +1.5 dB on average.

    python benchmarks/palette_quality.py
"""

import argparse
import sys

import numpy as np
from PIL import Image
from timing import add_common_arguments, setup
from videos import add_video_arguments, benchmark_videos

from vidrop.compression import (
    fit_palette,
    nearest_palette_indices,
    palette_lookup,
    psnr_db,
)
from vidrop.data.video import read_video


def median_cut(frames, colours):
    """Pillow's median-cut quantization of every frame on its own -> `(T, H, W, 3)` uint8."""
    return np.stack([
        np.asarray(Image.fromarray(f).quantize(colors=colours, method=Image.Quantize.MEDIANCUT).convert("RGB"))
        for f in frames
    ])


def main():
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    add_video_arguments(parser)
    args = parser.parse_args()
    setup(args)
    videos = sorted(benchmark_videos(224, 64, 2, noise=args.noise).glob("*/*.mp4"))
    ours, pillow = [], []
    for path in videos:
        frames = read_video(path).frames
        palette = fit_palette(frames.reshape(-1, 3), args.num_clusters, "kmeans", seed=args.seed)
        ours.append(psnr_db(frames, palette_lookup(nearest_palette_indices(frames, palette), palette)))
        pillow.append(psnr_db(frames, median_cut(frames, args.num_clusters)))
    print(f"{len(videos)} synthetic videos (64 frames, 224x224, noise {args.noise:g}), K = {args.num_clusters}")
    print(f"{'Pillow median cut, per frame (baseline)':<44} {np.mean(pillow):>7.2f} dB")
    print(f"{'ViDROP k-means, per video':<44} {np.mean(ours):>7.2f} dB")
    gains = np.array(ours) - np.array(pillow)
    print(f"gain: mean {gains.mean():+.2f} dB, min {gains.min():+.2f}, max {gains.max():+.2f} (goal >= +1.5 dB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
