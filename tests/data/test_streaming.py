import itertools
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from vidrop.data import ClipStream, CorruptDataError, MultiCrop, SSLCollator, load_video_dataset
from vidrop.data.augment import IMAGE_MEAN, IMAGE_STD, random_resized_box
from vidrop.data.streaming import clip_frame_indices

CROP = MultiCrop(global_size=32, small_size=16, num_small_crops=2)


def _stream(dataset, **kwargs):
    return ClipStream(dataset, CROP, **{"num_frames": 4, "frame_stride": 2, **kwargs})


def test_multi_crop_shapes_and_normalisation(compressed_dataset):
    sample = next(iter(_stream(compressed_dataset)))
    assert sample["global_views"].shape == (2, 4, 3, 32, 32) and sample["global_views"].dtype == torch.float32
    assert sample["small_views"].shape == (2, 4, 3, 16, 16)
    assert sample["label"].dtype == torch.int64 and 0 <= sample["label"] < 8
    low = (0 - torch.tensor(IMAGE_MEAN)) / torch.tensor(IMAGE_STD)
    high = (1 - torch.tensor(IMAGE_MEAN)) / torch.tensor(IMAGE_STD)
    per_channel = sample["global_views"].transpose(0, 2).flatten(1)  # (C, ...)
    assert (per_channel.min(1).values >= low - 1e-5).all() and (per_channel.max(1).values <= high + 1e-5).all()


def test_a_view_is_the_crop_of_the_decoded_frames():
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, size=(16, 3), dtype=np.uint8)
    indices = rng.integers(0, 16, size=(4, 24, 24), dtype=np.uint8)
    crop = MultiCrop(global_size=8, flip_probability=0.0)
    view = crop.view(indices, palette, 8, (0.2, 0.2), np.random.default_rng(3))
    top, left, h, w = random_resized_box(24, 24, (0.2, 0.2), crop.ratio, np.random.default_rng(3))
    rgb = torch.from_numpy(palette[indices[:, top : top + h, left : left + w]]).permute(0, 3, 1, 2).float() / 255
    expected = torch.nn.functional.interpolate(rgb, size=(8, 8), mode="bilinear", antialias=True, align_corners=False)
    expected = (expected - torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(view, expected)


def test_crop_scales_bound_the_area_of_every_crop_and_are_checked():
    rng = np.random.default_rng(0)
    for scale in ((0.1, 0.3), (0.6, 1.0)):
        boxes = [random_resized_box(64, 64, scale, (3 / 4, 4 / 3), rng) for _ in range(50)]
        areas = [h * w / 64**2 for _, _, h, w in boxes]
        assert scale[0] - 0.02 <= min(areas) and max(areas) <= scale[1] + 0.02  # rounding to whole pixels
    for bad in ((0.4, 0.2), (0.0, 0.5), (0.5, 1.5), (0.5,)):
        with pytest.raises(ValueError, match=r"global_crop_scale=.* is not allowed; it must be two area fractions"):
            MultiCrop(global_crop_scale=bad)
    with pytest.raises(ValueError, match=r"small_crop_scale=\(0.5, 0.1\) is not allowed"):
        MultiCrop(small_crop_scale=[0.5, 0.1])


def test_clip_sampling_and_padding_by_repetition():
    rng = np.random.default_rng(0)
    for _ in range(50):
        frames = clip_frame_indices(40, 8, 3, rng)
        assert np.all(np.diff(frames) == 3) and frames[0] >= 0 and frames[-1] < 40
    assert clip_frame_indices(5, 4, 2, rng).tolist() == [0, 2, 4, 1]  # a short video loops
    assert clip_frame_indices(22, 8, 3, rng).tolist() == list(range(0, 22, 3))


def test_split_over_two_ranks_is_disjoint_and_complete(compressed_dataset):
    all_ids = {r["video_id"] for r in load_video_dataset(compressed_dataset)}
    per_rank = [[s["video_id"] for s in _stream(compressed_dataset, rank=r, world_size=2)] for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1]) == 8
    assert set(per_rank[0]).isdisjoint(per_rank[1])
    assert set(per_rank[0]) | set(per_rank[1]) == all_ids


def test_shuffle_follows_the_seed_and_epoch(compressed_dataset):
    def order(seed, epoch):
        stream = _stream(compressed_dataset, seed=seed, shuffle_buffer=8)
        stream.set_epoch(epoch)
        return [s["video_id"] for s in itertools.islice(stream, 6)]

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)


def test_exact_resume_from_a_saved_position(compressed_dataset):
    uninterrupted = list(_stream(compressed_dataset, seed=3, shuffle_buffer=8))
    stream = _stream(compressed_dataset, seed=3, shuffle_buffer=8)
    first = list(itertools.islice(stream, 5))
    state = stream.state_dict()
    assert state["position"] == 5
    resumed = _stream(compressed_dataset, seed=3, shuffle_buffer=8)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(first) + len(rest) == len(uninterrupted) == 16
    for a, b in zip(first + rest, uninterrupted):
        assert a["video_id"] == b["video_id"]
        assert torch.equal(a["global_views"], b["global_views"]) and torch.equal(a["small_views"], b["small_views"])


def test_streamed_clips_collate_into_a_training_batch(compressed_dataset, tiny_config):
    from vidrop.ssl import SelfDistillation

    config = tiny_config(num_frames=4, image_size=32, small_crop_size=16, drop_rate=0.5)
    samples = list(itertools.islice(_stream(compressed_dataset), 3))
    batch = SSLCollator(config)(samples)
    assert batch["global_pixel_values"].shape == (3, 2, 4, 3, 32, 32) and batch["label"].shape == (3,)
    loss, _ = SelfDistillation(config)(batch)
    assert torch.isfinite(loss)


@pytest.fixture
def corrupt_dataset(compressed_dataset, tmp_path):
    """A copy of the dataset whose first shard has a damaged frame group in its first row."""
    copy = tmp_path / "corrupt"
    shutil.copytree(compressed_dataset, copy)
    shard = copy / "data" / "train-00000.parquet"
    table = pq.read_table(shard).to_pylist()
    table[0]["frame_groups"] = [b"garbage" for _ in table[0]["frame_groups"]]
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(table, schema=pq.read_schema(shard)), shard)
    return copy, table[0]["video_id"]


def test_a_corrupt_row_names_its_shard_or_is_skipped_and_counted(corrupt_dataset):
    dataset, video_id = corrupt_dataset
    with pytest.raises(CorruptDataError, match=rf"{video_id}.*data/train-00000.parquet"):
        list(_stream(dataset, shuffle_buffer=0))
    stream = _stream(dataset, shuffle_buffer=0, skip_corrupt=True)
    ids = [s["video_id"] for s in stream]
    assert len(ids) == 15 and video_id not in ids and stream.skipped == 1


def test_a_damaged_shard_file_is_a_clear_error(compressed_dataset, tmp_path):
    copy = tmp_path / "damaged"
    shutil.copytree(compressed_dataset, copy)
    (copy / "data" / "train-00002.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(CorruptDataError, match=r"damaged shards \[.*data/train-00002.parquet'\]"):
        list(_stream(copy, shuffle_buffer=0))


def test_exact_resume_with_two_loader_workers_and_token_plans(compressed_dataset, tiny_config):
    from torchdata.stateful_dataloader import StatefulDataLoader

    config = tiny_config(num_frames=4, image_size=32, small_crop_size=16, drop_rate=0.5)

    def loader():
        stream = _stream(compressed_dataset, seed=5, shuffle_buffer=4)
        return StatefulDataLoader(stream, batch_size=2, num_workers=2, collate_fn=SSLCollator(config, seed=1))

    uninterrupted = list(loader())
    assert len(uninterrupted) == 8  # 16 clips in batches of 2 over 2 workers (2 shards each)
    first = loader()
    iterator = iter(first)
    seen = [next(iterator) for _ in range(3)]
    state = first.state_dict()
    del iterator
    resumed = loader()
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(seen) + len(rest) == 8
    for a, b in zip(seen + rest, uninterrupted):
        assert a["video_id"] == b["video_id"]
        for key in ("global_pixel_values", "global_keep_indices", "global_mask", "small_keep_indices"):
            assert torch.equal(a[key], b[key]), key
    # the workers drew different token plans (the collator's seed comes from the examples)
    assert not torch.equal(uninterrupted[0]["global_keep_indices"], uninterrupted[1]["global_keep_indices"])


def test_clips_come_from_within_a_segment_and_a_longer_span_is_a_clear_error(synthetic_videos, tmp_path):
    from vidrop.data import CompressionOptions, build_dataset

    source = tmp_path / "videos"
    shutil.copytree(synthetic_videos / "move_up", source / "move_up")
    build_dataset(source, tmp_path / "segments", CompressionOptions(num_clusters=16, segment_frames=6))  # rows 6 + 10
    samples = list(ClipStream(tmp_path / "segments", CROP, num_frames=3, frame_stride=2))  # span 5: fits
    assert len(samples) == 4 and {s["video_id"] for s in samples} == {"move_up/move_up_0000", "move_up/move_up_0001"}
    with pytest.raises(ValueError, match=r"spans 7 frames, more than the 6-frame segment .* --segment_frames 7"):
        list(ClipStream(tmp_path / "segments", CROP, num_frames=4, frame_stride=2))
