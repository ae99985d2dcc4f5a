"""Build a cluster-compressed video dataset: `python launchers/compress.py --input_dir V --output_dir D`."""

import logging
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from vidrop.compression.clusterers import CLUSTERERS
from vidrop.data.shards import CompressionOptions, build_dataset
from vidrop.data.synthetic import build_synthetic_videos
from vidrop.hub import HubPushError, push_dataset


@dataclass
class CompressArguments:
    """Command-line arguments of `launchers/compress.py` (or a JSON / YAML file given as the only argument)."""

    input_dir: str = field(
        metadata={"help": "folder of videos: flat, or one subfolder per class (names become labels)"}
    )
    output_dir: str = field(metadata={"help": "dataset folder to write; an earlier build's folder is resumed"})
    num_clusters: int = field(default=16, metadata={"help": "palette size K per video, 2 to 256"})
    method: str = field(default="kmeans", metadata={"help": f"clusterer: {', '.join(CLUSTERERS)}"})
    short_side: int | None = field(default=None, metadata={"help": "resize so the short side has this many pixels"})
    fps: float | None = field(default=None, metadata={"help": "resample to this frame rate (default: the source's)"})
    max_frames: int | None = field(default=None, metadata={"help": "keep at most this many frames per video"})
    group_size: int = field(default=1, metadata={"help": "frames per independently compressed group"})
    clip_frames: int = field(default=16, metadata={"help": "clip length; shorter videos are kept and marked short"})
    segment_frames: int = field(
        default=64,
        metadata={"help": "a video of twice this many frames or more is stored as rows of this many frames (the last "
                          "takes the remainder), so a clip reads its segment only; at least the clip span "
                          "(frames - 1) x stride + 1 of the training recipe"},
    )
    num_proc: int = field(default=1, metadata={"help": "worker processes over videos"})
    videos_per_shard: int = field(default=64, metadata={"help": "videos per parquet shard"})
    seed: int = field(default=0, metadata={"help": "seed of the clusterers' random state"})
    make_synthetic: bool = field(
        default=False, metadata={"help": "first write the embedded synthetic motion videos into input_dir"}
    )
    push_to_hub: str | None = field(
        default=None, metadata={"help": "then push the dataset to this Hub dataset repo (namespace/name)"}
    )
    hub_private: bool = field(default=False, metadata={"help": "create the Hub repo private"})


def main(argv=None):
    parser = HfArgumentParser(CompressArguments)
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        parse = parser.parse_yaml_file if argv[0].endswith(("yaml", "yml")) else parser.parse_json_file
        (args,) = parse(argv[0])
    else:
        (args,) = parser.parse_args_into_dataclasses(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.make_synthetic:
        build_synthetic_videos(args.input_dir, seed=args.seed)
    options = CompressionOptions(
        num_clusters=args.num_clusters,
        method=args.method,
        short_side=args.short_side,
        fps=args.fps,
        max_frames=args.max_frames,
        group_size=args.group_size,
        clip_frames=args.clip_frames,
        segment_frames=args.segment_frames,
        seed=args.seed,
    )
    totals = build_dataset(args.input_dir, args.output_dir, options, args.num_proc, args.videos_per_shard)
    logging.getLogger("compress").info(
        "%d videos, %d skipped, compression factor %.1f, PSNR %.2f dB -> %s",
        totals["videos"], len(totals["skipped"]), totals["compression_factor"], totals["psnr_db"], args.output_dir,
    )
    if args.push_to_hub:
        try:
            push_dataset(args.output_dir, args.push_to_hub, private=args.hub_private)
        except HubPushError as error:
            raise SystemExit(f"error: {error} (the dataset is complete in {args.output_dir})") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
