"""Shared fixtures: tiny configurations so that every test runs in seconds on two CPU cores."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may download at test time

import pytest  # noqa: E402
import torch  # noqa: E402

import vidrop  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_shared_memory():
    """Runs killed on purpose cannot release DeepSpeed's CPU all-reduce buffers: remove the session's ones."""
    import time
    from pathlib import Path

    start = time.time()
    yield
    for path in Path("/dev/shm").glob("deepspeed_allreduce_buffer_*"):
        if path.stat().st_mtime >= start:
            path.unlink(missing_ok=True)


TINY = dict(
    hidden_size=48,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=96,
    image_size=32,
    num_frames=4,
    tubelet_size=2,
    patch_size=8,
    small_crop_size=16,
    head_hidden_size=32,
    head_bottleneck_size=16,
    num_prototypes=32,
    num_patch_prototypes=32,
)


@pytest.fixture
def tiny_config():
    """Factory of tiny `VidropConfig`s: `tiny_config(drop_rate=0.5)`."""

    def make(**overrides):
        return vidrop.VidropConfig(**{**TINY, **overrides})

    return make


@pytest.fixture
def clip_batch():
    """Factory of random normalised clips `(B, T, C, H, W)` from a seeded generator."""

    def make(batch=2, frames=4, size=32, seed=0):
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(batch, frames, 3, size, size, generator=generator)

    return make


@pytest.fixture
def ssl_batch(clip_batch):
    """Factory of collated self-distillation batches for a config (2 global views, its small crops)."""

    def make(config, batch=2, seed=0):
        from vidrop.data import SSLCollator

        samples = []
        for i in range(batch):
            views = clip_batch(2, config.num_frames, config.image_size, seed=seed * 1000 + i)
            small = clip_batch(
                config.num_small_crops, config.num_frames, config.small_crop_size, seed=seed * 1000 + 500 + i
            )
            samples.append({"global_views": views, "small_views": small})
        return SSLCollator(config, seed=seed)(samples)

    return make


def _videos(tmp_path_factory, name, videos_per_class, seed):
    """Synthetic motion videos as real mp4 files: `videos_per_class` per motion class, 16 frames of 32x32."""
    from vidrop.data import build_synthetic_videos

    root = tmp_path_factory.mktemp(name)
    build_synthetic_videos(root, videos_per_class=videos_per_class, num_frames=16, size=32, fps=8, seed=seed)
    return root


def _compressed(videos, tmp_path_factory, name, videos_per_shard):
    """`videos` compressed into parquet shards (K=16, k-means, clips of 8 frames)."""
    from vidrop.data import CompressionOptions, build_dataset

    output = tmp_path_factory.mktemp(name) / "dataset"
    build_dataset(videos, output, CompressionOptions(num_clusters=16, clip_frames=8), videos_per_shard=videos_per_shard)
    return output


@pytest.fixture(scope="session")
def synthetic_videos(tmp_path_factory):
    """A small embedded dataset: 2 videos per motion class."""
    return _videos(tmp_path_factory, "videos", 2, seed=0)


@pytest.fixture(scope="session")
def compressed_dataset(synthetic_videos, tmp_path_factory):
    """`synthetic_videos` compressed, 4 videos per shard (4 shards)."""
    return _compressed(synthetic_videos, tmp_path_factory, "synthetic", 4)


@pytest.fixture(scope="session")
def labelled_videos(tmp_path_factory):
    """Enough labelled videos to probe: 4 per motion class."""
    return _videos(tmp_path_factory, "labelled-videos", 4, seed=1)


@pytest.fixture(scope="session")
def labelled_dataset(labelled_videos, tmp_path_factory):
    """`labelled_videos` compressed, 16 videos per shard."""
    return _compressed(labelled_videos, tmp_path_factory, "labelled", 16)
