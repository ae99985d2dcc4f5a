"""Streaming clips from compressed dataset shards (local folder or Hub repo), split over ranks, resumable.

The path every clip takes here: `load_dataset(streaming=True)` -> `split_dataset_by_node` -> shuffle ->
pick frames -> decompress those frames' groups only -> crop on indices -> palette lookup -> resize, flip,
normalise. The random choices of an example are drawn from a generator seeded by
`(seed, epoch, rank, worker, position)`, so a resumed stream repeats exactly what an uninterrupted one does.
"""

import itertools
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from datasets import IterableDataset, load_dataset
from datasets.distributed import split_dataset_by_node

from ..compression.codec import decode_indices
from .shards import SHARD_PATTERN, arrow_row, row_to_video

logger = logging.getLogger(__name__)


class CorruptDataError(RuntimeError):
    """A row or shard that cannot be decoded; the message names the shard and the video."""


def load_video_dataset(path_or_repo, split="train"):
    """Open a compressed dataset (local folder or Hub repo id) as a streaming `datasets.IterableDataset`."""
    return load_dataset(str(path_or_repo), split=split, streaming=True)


def stream_rows(dataset):
    """The rows of a streamed compressed dataset, read in place from its Arrow pages (`arrow_row`)."""
    return map(arrow_row, dataset.with_format("arrow"))


def check_clip_span(row, num_frames, stride):
    """A clip must fit in a segment of a longer video (looping it would join the segment's end to its start);
    a video shorter than the clip is looped. Raises `ValueError` naming the span and the segment."""
    span = (num_frames - 1) * stride + 1
    if row["num_frames"] < min(span, row.get("video_frames", row["num_frames"])):
        raise ValueError(
            f"a clip of {num_frames} frames at stride {stride} spans {span} frames, more than the "
            f"{row['num_frames']}-frame segment of video {row['video_id']!r}; allowed: a clip span of at most the "
            f"dataset's segment_frames, or a dataset rebuilt with launchers/compress.py --segment_frames {span}"
        )


def clip_frame_indices(num_video_frames, num_frames, stride, rng):
    """Frame numbers of a random clip of `num_frames` frames, `stride` apart -> `(num_frames,)` int64.

    A video shorter than the clip span is looped (padding by repetition).
    """
    span = (num_frames - 1) * stride + 1
    start = int(rng.integers(0, num_video_frames - span + 1)) if num_video_frames >= span else 0
    return (start + np.arange(num_frames) * stride) % num_video_frames


class ClipStream(torch.utils.data.IterableDataset):
    """Clips with their multi-crop views from a streamed compressed dataset, for one rank.

    Args:
        dataset: a streaming `datasets.IterableDataset` of compressed videos (`load_video_dataset`), or its path.
        transform: a callable `(indices (T, H, W) uint8, palette (P, 3) uint8, rng) -> dict of tensors`
            (for example `MultiCrop`).
        num_frames: frames per clip.
        frame_stride: step between the clip's frames.
        rank, world_size: this process's place among the data-parallel ranks.
        seed: seed of the shuffle and of every per-example random choice.
        shuffle_buffer: size of the shuffle buffer (0: shard order is shuffled, rows are not).
        skip_corrupt: False, a corrupt row raises `CorruptDataError`; True, it is skipped and counted in
            `skipped`.

    `state_dict()` / `load_state_dict()` hold the epoch and the number of examples this rank (and worker)
    has consumed; they follow the `torchdata.stateful_dataloader.StatefulDataLoader` protocol, which saves
    and restores them for every worker. Each example carries a `plan_seed` from which `SSLCollator` draws
    the batch's token plans, so a resumed loader also repeats the token plans.
    """

    def __init__(
        self,
        dataset,
        transform,
        num_frames=16,
        frame_stride=2,
        rank=0,
        world_size=1,
        seed=0,
        shuffle_buffer=64,
        skip_corrupt=False,
    ):
        super().__init__()
        self.source = None if isinstance(dataset, IterableDataset) else str(dataset)
        self.dataset = dataset if isinstance(dataset, IterableDataset) else load_video_dataset(dataset)
        # Row groups as shards, found once (a Hub dataset's file footers are read over HTTP): more shards than
        # files, so that ranks and DataLoader workers split a dataset of few files by shard, and the shuffle
        # draws from row groups in a shuffled order.
        try:
            self.dataset = self.dataset.reshard()
        except Exception as error:  # noqa: BLE001 - an unreadable footer: name the damaged files
            raise CorruptDataError(f"cannot read the shards of {self._damaged_shards()}: {error}") from error
        self.transform = transform
        self.num_frames = num_frames
        self.frame_stride = frame_stride
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.skip_corrupt = skip_corrupt
        self.epoch = 0
        self.position = 0
        self.skipped = 0

    def set_epoch(self, epoch):
        """Start epoch `epoch` from its beginning (a new shuffle)."""
        self.epoch, self.position = epoch, 0

    def state_dict(self):
        return {"epoch": self.epoch, "position": self.position, "skipped": self.skipped}

    def load_state_dict(self, state):
        self.epoch, self.position, self.skipped = state["epoch"], state["position"], state.get("skipped", 0)

    def _rows(self):
        dataset = split_dataset_by_node(self.dataset, rank=self.rank, world_size=self.world_size)
        # One input shard at a time: interleaving several (datasets' default) reads them in threads and sleeps
        # 5 s when they stop (apache/arrow#45214), at the end of every epoch.
        dataset = dataset.shuffle(
            seed=self.seed + self.epoch, buffer_size=max(1, self.shuffle_buffer), max_buffer_input_shards=1
        )
        # Skip by reading: inside a DataLoader worker the dataset yields that worker's rows only, and
        # `position` counts exactly those (no clip is decoded for a skipped row).
        yield from itertools.islice(stream_rows(dataset), self.position, None)

    def _damaged_shards(self):
        """Name the unreadable parquet files of a local dataset folder (or the dataset, when remote)."""
        if self.source is None or not Path(self.source).is_dir():
            return f"dataset {self.source or self.dataset}"
        damaged = []
        for shard in sorted(Path(self.source).glob(SHARD_PATTERN)):
            try:
                pq.read_metadata(shard)
            except Exception:  # noqa: BLE001 - any failure to read the footer means the file is damaged
                damaged.append(str(shard))
        return f"dataset {self.source}, damaged shards {damaged}"

    def _example(self, row, rng):
        video = row_to_video(row)
        frames = clip_frame_indices(video.num_frames, self.num_frames, self.frame_stride, rng)
        sample = self.transform(decode_indices(video, frames), video.palette, rng)
        sample["label"] = torch.tensor(row.get("label", -1), dtype=torch.long)
        sample["video_id"] = row["video_id"]
        # the collator seeds the batch's token plans from its examples: exact on resume, independent per worker
        sample["plan_seed"] = torch.tensor(int(rng.integers(1 << 62)))
        return sample

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        worker_id = worker.id if worker is not None else 0
        rows = self._rows()  # a generator: pages are read (and damage in them found) from the first row on
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except Exception as error:  # pyarrow / parquet errors of a damaged shard
                raise CorruptDataError(f"cannot read the shards of {self._damaged_shards()}: {error}") from error
            check_clip_span(row, self.num_frames, self.frame_stride)
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker_id, self.position])
            self.position += 1
            try:
                sample = self._example(row, rng)
            except (OSError, pa.ArrowException, ValueError, KeyError, TypeError, IndexError) as error:  # codec errors
                where = f"video {row.get('video_id')!r} in shard {row.get('shard')!r}"
                if not self.skip_corrupt:
                    raise CorruptDataError(f"corrupt row: {where}: {error}") from error
                self.skipped += 1
                logger.warning("skipped corrupt row (%d so far): %s: %s", self.skipped, where, error)
                continue
            yield sample
