"""Clip loading: clips/s of 16 frames at 224x224 from the streamed compressed dataset, against PyAV
random-access decoding of the same clips from the mp4 files, one process, same run.

Claim (issue 3): at least 20x.

    python benchmarks/clip_loading.py
"""

import argparse
import sys
import time

import av
import numpy as np
from timing import add_common_arguments, setup
from videos import CACHE, add_video_arguments, benchmark_videos

from vidrop.compression.codec import decode_clip
from vidrop.data import CompressionOptions, build_dataset, load_video_dataset
from vidrop.data.shards import row_to_video
from vidrop.data.streaming import clip_frame_indices, stream_rows


def pyav_clip(path, frames):
    """Random access as a VideoMAE-style loader does it: seek to the keyframe before the first frame, decode
    forward, keep the clip's frames as RGB -> `(T, H, W, 3)` uint8."""
    wanted = {int(f) for f in frames}
    out = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        container.seek(int(frames[0] / rate / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            index = round(frame.time * rate)
            if index in wanted:
                out[index] = frame.to_ndarray(format="rgb24")
            if index >= frames[-1]:
                break
    return np.stack([out[int(f)] for f in frames])


def main():
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--video_frames", type=int, default=250, help="frames per video (10 s at 25 fps)")
    parser.add_argument("--clip_frames", type=int, default=16)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--videos_per_class", type=int, default=2)
    parser.add_argument("--segment_frames", type=int, default=CompressionOptions.segment_frames,
                        help="rows of the compressed dataset (more than --video_frames: one row per video)")
    add_video_arguments(parser)
    args = parser.parse_args()
    setup(args)

    videos = benchmark_videos(args.size, args.video_frames, args.videos_per_class, noise=args.noise)
    dataset_dir = CACHE / f"{videos.name}-k{args.num_clusters}-segment{args.segment_frames}"
    if not (dataset_dir / "stats.json").exists():
        options = CompressionOptions(num_clusters=args.num_clusters, segment_frames=args.segment_frames)
        build_dataset(videos, dataset_dir, options, num_proc=2)
    dataset = load_video_dataset(dataset_dir)  # opened once, like a training run does; each pass streams it
    # One clip per row (an epoch of the training loader: a row is a video, or a segment of a longer one), the
    # same clips for both loaders: (video_id, first frame of the row) -> (mp4, frames in the video, in the row).
    rng = np.random.default_rng(args.seed)
    paths = {f"{path.parent.name}/{path.stem}": path for path in videos.glob("*/*.mp4")}
    plans = {}
    for row in stream_rows(dataset):
        frames = clip_frame_indices(row["num_frames"], args.clip_frames, args.stride, rng)
        plans[row["video_id"], row["first_frame"]] = (paths[row["video_id"]], row["first_frame"] + frames, frames)

    def run_baseline():
        return [pyav_clip(path, frames) for path, frames, _ in plans.values()]

    def run_ours():
        return [decode_clip(row_to_video(row), plans[row["video_id"], row["first_frame"]][2])
                for row in stream_rows(dataset)]

    # The two loaders alternate, pass by pass, so that both see the same load of this shared machine; the ratio
    # is the median of the per-pass ratios.
    runs = {"PyAV random access from mp4 (baseline)": run_baseline, "ViDROP streamed compressed": run_ours}
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            clips = run()
            times[name].append(time.perf_counter() - start)
            assert all(c.shape == (args.clip_frames, args.size, args.size, 3) for c in clips)
    results = {name: len(plans) / float(np.median(seconds)) for name, seconds in times.items()}
    baseline_times, our_times = times.values()
    ratio = float(np.median(np.asarray(baseline_times) / np.asarray(our_times)))
    kbps = sum(p.stat().st_size for p in paths.values()) * 8 / 1000 / (len(paths) * args.video_frames / 25)
    print(f"{len(plans)} clips of {args.clip_frames} frames (stride {args.stride}) at {args.size}x{args.size}, one per "
          f"row, from {len(paths)} {args.video_frames}-frame mp4s of {kbps:.0f} kbit/s (rows of "
          f"{args.segment_frames}+ frames), one process, median of {args.repeats}")
    for name, rate in results.items():
        print(f"{name:<42} {rate:>9.1f} clips/s")
    print(f"ratio: {ratio:.1f}x, median of {args.repeats} alternating passes (goal >= 20x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
