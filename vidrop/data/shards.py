"""Building a cluster-compressed video dataset: videos in, Hugging Face parquet shards + card + stats out.

One row per segment of a video: a video of `2 * segment_frames` frames or more is cut into rows of
`segment_frames` frames (the last one takes the remainder), so that reading a clip reads its segment, not the
whole video, and a long video never makes a huge row. The frames are stored as bytes (a palette and Zstandard
blobs of bit-packed indices, see `vidrop.compression.codec`), never as numpy arrays. The build is resumable:
`progress.json` records every finished shard file and skipped file, shards are written under a temporary name
and renamed, so a killed build continues where it stopped and never duplicates a video.
"""

import json
import logging
import multiprocessing
import os
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import ClassLabel, Dataset, Features, List, Value
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..compression import VideoStats, assign_to_palette, dataset_totals, encode_indices, fit_palette, psnr_from_mse
from ..compression.clusterers import check_method, check_num_clusters
from ..compression.codec import EncodedVideo
from .card import dataset_card
from .video import VideoDecodeError, read_video

logger = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"
STATS_FILE = "stats.json"
SHARD_PATTERN = "data/train-*.parquet"


@dataclass
class CompressionOptions:
    """How videos are compressed; recorded with the dataset, and a resumed build must use the same."""

    num_clusters: int = 16
    method: str = "kmeans"
    short_side: int | None = None
    fps: float | None = None
    max_frames: int | None = None
    group_size: int = 1
    clip_frames: int = 16
    segment_frames: int = 64
    seed: int = 0

    def __post_init__(self):
        check_num_clusters(self.num_clusters)
        check_method(self.method)
        for name in ("short_side", "fps", "max_frames"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name}={value!r} is not allowed; allowed: a positive number or None")
        for name in ("group_size", "clip_frames", "segment_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; allowed: >= 1")
        if self.segment_frames % self.group_size:
            raise ValueError(
                f"segment_frames={self.segment_frames} is not allowed with group_size={self.group_size}; "
                "allowed: a multiple of group_size (a segment holds whole groups)"
            )


def dataset_features(class_names=None):
    """The `datasets.Features` of a compressed dataset (with a `label` ClassLabel when classes are known)."""
    features = {
        "video_id": Value("string"),
        "first_frame": Value("int32"),
        "video_frames": Value("int32"),
        "num_frames": Value("int32"),
        "height": Value("int32"),
        "width": Value("int32"),
        "fps": Value("float32"),
        "palette": Value("binary"),
        "group_size": Value("int32"),
        "frame_groups": List(Value("binary")),
        "short": Value("bool"),
        "shard": Value("string"),
        "raw_bytes": Value("int64"),
        "compressed_bytes": Value("int64"),
        "source_bytes": Value("int64"),
        "psnr_db": Value("float32"),
        "encode_seconds": Value("float32"),
    }
    if class_names is not None:
        features["label"] = ClassLabel(names=list(class_names))
    return Features(features)


class _StoredBlobs(Sequence):
    """The `frame_groups` of one streamed row, read in place: `blobs[g]` is a zero-copy `pyarrow.Buffer` of the
    shard's page, `len(blobs)` the number of groups."""

    def __init__(self, array):
        self.array = array  # pyarrow.BinaryArray, one element per group

    def __len__(self):
        return len(self.array)

    def __getitem__(self, group):
        return self.array[group].as_buffer()


def arrow_row(table):
    """A one-row `pyarrow.Table` of a compressed dataset (as a `datasets` stream formatted "arrow" yields it) ->
    the row as a dict, with `frame_groups` and `palette` read in place (zero-copy buffers) and the other columns
    as Python values. Skips `datasets`' copy of every blob of the video into Python bytes (0.6 ms of the 1.5 ms
    a 250-frame row of 224^2 frames takes to stream), of which a clip needs only its own frames."""
    batch = next(b for b in table.to_batches() if b.num_rows)
    row = {}
    for name, column in zip(batch.schema.names, batch.columns):
        if name == "frame_groups":
            row[name] = _StoredBlobs(column.flatten())  # the row's groups: flatten honours the slice offset
        elif name == "palette":
            row[name] = column[0].as_buffer()
        else:
            row[name] = column[0].as_py()
    return row


def row_to_video(row):
    """A dataset row (Python values, or `arrow_row`'s in-place buffers) -> `EncodedVideo`."""
    return EncodedVideo(
        palette=np.frombuffer(row["palette"], dtype=np.uint8).reshape(-1, 3),
        groups=row["frame_groups"],
        num_frames=row["num_frames"],
        height=row["height"],
        width=row["width"],
        group_size=row["group_size"],
    )


def segment_bounds(num_frames, segment_frames):
    """`[(first, end)]` frame ranges of a video's rows: `segment_frames` frames each, the remainder joined to the
    last, so that every row of a longer video holds at least `segment_frames` frames."""
    count = max(1, num_frames // segment_frames)
    return [(i * segment_frames, (i + 1) * segment_frames if i < count - 1 else num_frames) for i in range(count)]


def compress_video(path, video_id, options):
    """Decode, cluster and encode one video -> its dataset rows, one per segment (`segment_bounds`), without
    `shard` and `label`.

    The palette is fitted on the whole video and stored in every row. `raw_bytes` and `compressed_bytes` are the
    row's own; `source_bytes`, `psnr_db` and `encode_seconds` are the whole video's, repeated in each row.

    Raises:
        VideoDecodeError: the file is not a decodable video.
    """
    start = time.perf_counter()
    decoded = read_video(path, options.short_side, options.fps, options.max_frames)
    frames = decoded.frames  # (T, H, W, 3) uint8
    seed = zlib.crc32(f"{options.seed}:{video_id}".encode())  # per video, independent of the build order
    palette = fit_palette(frames.reshape(-1, 3), options.num_clusters, options.method, seed)
    indices, squared_error = assign_to_palette(frames, palette)  # (T, H, W) uint8
    encoded = encode_indices(indices, palette, options.group_size)
    psnr = psnr_from_mse(squared_error / frames.size)  # inf for a lossless palette
    seconds = time.perf_counter() - start
    rows = []
    for first, end in segment_bounds(encoded.num_frames, options.segment_frames):
        groups = encoded.groups[first // encoded.group_size : -(-end // encoded.group_size)]
        rows.append({
            "video_id": video_id,
            "first_frame": first,
            "video_frames": encoded.num_frames,
            "num_frames": end - first,
            "height": encoded.height,
            "width": encoded.width,
            "fps": decoded.fps,
            "palette": palette.tobytes(),
            "group_size": encoded.group_size,
            "frame_groups": groups,
            "short": len(frames) < options.clip_frames,
            "raw_bytes": (end - first) * encoded.height * encoded.width * 3,
            "compressed_bytes": palette.nbytes + sum(len(g) for g in groups),
            "source_bytes": decoded.source_bytes,
            "psnr_db": psnr,
            "encode_seconds": seconds,
        })
    return rows


def discover_videos(input_dir):
    """Files to compress: `[(path, video_id, class_name | None)]` and the class names (None for a flat folder).

    With subfolders, each subfolder is a class (UCF101 / Kinetics layout) and files directly in `input_dir`
    are ignored; otherwise every file of `input_dir` is a video of a flat dataset. Hidden files are ignored.
    """
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise ValueError(f"input_dir={str(input_dir)!r} is not a folder; allowed: a folder of videos")
    visible = sorted(p for p in input_dir.iterdir() if not p.name.startswith("."))
    class_dirs = [p for p in visible if p.is_dir()]
    if class_dirs:
        stray = [p.name for p in visible if p.is_file()]
        if stray:
            logger.warning("class layout: ignoring %d files directly in %s: %s", len(stray), input_dir, stray[:5])
        class_names = [d.name for d in class_dirs]
        items = [
            (p, f"{d.name}/{p.stem}", d.name)
            for d in class_dirs
            for p in sorted(d.iterdir())
            if p.is_file() and not p.name.startswith(".")
        ]
    else:
        class_names = None
        items = [(p, p.stem, None) for p in visible if p.is_file()]
    if not items:
        raise ValueError(
            f"input_dir={str(input_dir)!r} contains no files; "
            "allowed: a folder of videos, flat or one subfolder per class"
        )
    return items, class_names


def _compress_task(args):
    path, video_id, options = args
    # One BLAS/OpenMP thread per video: --num_proc processes share the cores, and the clusterers' floating-point
    # sums do not depend on the thread count, so a parallel build writes the same rows as a serial one.
    with threadpool_limits(1):
        try:
            return video_id, compress_video(path, video_id, options), None
        except VideoDecodeError as error:
            return video_id, None, str(error)


class _Progress:
    """`progress.json`: options, classes, the finished shard files and the skipped files.

    It stays small whatever the dataset size: which videos a shard holds, and their statistics, are read
    back from the shards themselves.
    """

    def __init__(self, output_dir, options, class_names):
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / PROGRESS_FILE
        fresh = {"options": asdict(options), "classes": class_names, "shards": [], "skipped": []}
        self.state = json.loads(self.path.read_text()) if self.path.exists() else fresh
        for key in ("options", "classes"):
            if self.state[key] != fresh[key]:
                raise ValueError(
                    f"output_dir was built with {key}={self.state[key]}, this build has {key}={fresh[key]}; "
                    "allowed: the same settings to resume, or a new output_dir"
                )

    def shard_columns(self, columns):
        """The `columns` of every finished shard, as one `pyarrow.Table` (None before the first shard)."""
        tables = [pq.read_table(self.output_dir / shard, columns=columns) for shard in self.state["shards"]]
        return pa.concat_tables(tables) if tables else None

    @property
    def done(self):
        table = self.shard_columns(["video_id"])
        ids = set(table.column("video_id").to_pylist()) if table is not None else set()
        return ids | {item["video_id"] for item in self.state["skipped"]}

    def add(self, shard_file, skipped):
        if shard_file is not None:
            self.state["shards"].append(shard_file)
        self.state["skipped"].extend(skipped)
        _write_atomic(self.path, json.dumps(self.state, indent=1))


def _write_atomic(path, text):
    partial = Path(f"{path}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _check_output_dir(output_dir):
    output_dir = Path(output_dir)
    if output_dir.exists():
        if not output_dir.is_dir():
            raise ValueError(f"output_dir={str(output_dir)!r} is a file; allowed: a new or ViDROP dataset folder")
        ours = (output_dir / PROGRESS_FILE).exists()
        if not ours and any(output_dir.iterdir()):
            raise ValueError(
                f"output_dir={str(output_dir)!r} exists and is not a ViDROP dataset (no {PROGRESS_FILE}); "
                "allowed: a new or empty folder, or one from an earlier build to resume"
            )
    (output_dir / "data").mkdir(parents=True, exist_ok=True)


def _write_shard(output_dir, index, rows, features):
    relative = f"data/train-{index:05d}.parquet"
    for row in rows:
        row["shard"] = relative
    partial = Path(output_dir) / f"{relative}.partial"
    table = Dataset.from_list(rows, features=features).with_format("arrow")[:]
    table = table.replace_schema_metadata(features.arrow_schema.metadata)  # the `datasets` features travel along
    # No parquet compression and no dictionary for the bytes columns: the frame groups are Zstandard already
    # and all distinct; snappy or a dictionary attempt on top only slows reading (dictionary pages read 1.7x slower).
    dictionary = [name for name in table.column_names if name not in ("frame_groups", "palette")]
    pq.write_table(table, str(partial), row_group_size=8, compression="none", use_dictionary=dictionary)
    os.replace(partial, Path(output_dir) / relative)
    return relative


def build_dataset(input_dir, output_dir, options=None, num_proc=1, videos_per_shard=64, dataset_name=None):
    """Compress a folder of videos into a Hugging Face dataset folder; resumable.

    Args:
        input_dir: videos, flat or one subfolder per class (subfolder names become `ClassLabel` names).
        output_dir: new folder, or one from an earlier build with the same options (finished videos are kept).
        options: `CompressionOptions`.
        num_proc: worker processes over videos.
        videos_per_shard: videos per parquet shard.
        dataset_name: title of the dataset card (the folder name by default).

    Returns:
        The dataset totals written to `stats.json`.
    """
    options = options or CompressionOptions()
    items, class_names = discover_videos(input_dir)
    _check_output_dir(output_dir)
    progress = _Progress(output_dir, options, class_names)
    done = progress.done
    pending = [(path, video_id, label) for path, video_id, label in items if video_id not in done]
    logger.info("%d videos, %d already done, %d to compress", len(items), len(items) - len(pending), len(pending))
    features = dataset_features(class_names)
    labels = {video_id: label for _, video_id, label in items}
    # Spawned, not forked: a fork of a process whose OpenMP or BLAS threads hold a lock (torch, scikit-learn ran
    # before) can hang in the child for ever.
    pool = ProcessPoolExecutor(num_proc, mp_context=multiprocessing.get_context("spawn")) if num_proc > 1 else None
    try:
        with tqdm(total=len(items), initial=len(items) - len(pending), desc="compress", unit="video") as bar:
            for start in range(0, len(pending), videos_per_shard):
                tasks = [(path, video_id, options) for path, video_id, _ in pending[start : start + videos_per_shard]]
                results = pool.map(_compress_task, tasks) if pool else map(_compress_task, tasks)
                rows, skipped = [], []
                for (path, _, _), (video_id, video_rows, reason) in zip(tasks, results):
                    bar.update()
                    if reason is not None:
                        logger.warning("skipped %s: %s", path, reason)
                        skipped.append({"video_id": video_id, "path": str(path), "reason": reason})
                        continue
                    for row in video_rows:  # a video's segments share its shard: a resumed build keeps or redoes all
                        if class_names is not None:
                            row["label"] = class_names.index(labels[video_id])
                        rows.append(row)
                shard = _write_shard(output_dir, len(progress.state["shards"]), rows, features) if rows else None
                progress.add(shard, skipped)
    finally:
        if pool:
            pool.shutdown()
    return _finish(output_dir, progress, options, class_names, dataset_name)


STATS_COLUMNS = ("video_id", "raw_bytes", "compressed_bytes", "source_bytes", "psnr_db", "video_frames",
                 "encode_seconds", "palette", "short")


def _video_stats(rows):
    """`VideoStats` per video from the statistics columns of its rows (`compress_video`'s split of them)."""
    by_video = {}
    for row in rows:
        by_video.setdefault(row["video_id"], []).append(row)
    return [
        VideoStats(
            raw_bytes=sum(r["raw_bytes"] for r in segments),
            compressed_bytes=sum(r["compressed_bytes"] for r in segments),
            source_bytes=segments[0]["source_bytes"],
            psnr_db=segments[0]["psnr_db"],
            frames=segments[0]["video_frames"],
            encode_seconds=segments[0]["encode_seconds"],
            palette_size=len(segments[0]["palette"]) // 3,
        )
        for segments in by_video.values()
    ]


def _finish(output_dir, progress, options, class_names, dataset_name):
    """Write `stats.json` and the dataset card from the statistics columns of the shards."""
    table = progress.shard_columns(list(STATS_COLUMNS))
    rows = table.to_pylist() if table is not None else []
    videos = _video_stats(rows)
    totals = {
        **dataset_totals(videos),
        "rows": len(rows),
        "short_videos": len({r["video_id"] for r in rows if r["short"]}),
        "skipped": progress.state["skipped"],
        "options": asdict(options),
        "classes": class_names,
    }
    _write_atomic(Path(output_dir) / STATS_FILE, json.dumps(totals, indent=1))
    name = dataset_name or Path(output_dir).resolve().name
    _write_atomic(Path(output_dir) / "README.md", dataset_card(name, totals, dataset_features(class_names)))
    return totals
