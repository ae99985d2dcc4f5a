import pytest
import torch

from vidrop.data import SSLCollator


def _samples(config, count=3):
    return [
        {
            "global_views": torch.randn(2, config.num_frames, 3, config.image_size, config.image_size),
            "small_views": torch.randn(config.num_small_crops, config.num_frames, 3, 16, 16),
            "label": torch.tensor(i),
        }
        for i in range(count)
    ]


@pytest.mark.parametrize("pattern", ["random", "tube", "block", "spatial_uniform", "temporal_uniform", "stratified"])
def test_collator_stacks_views_and_draws_token_plans(tiny_config, pattern):
    config = tiny_config(drop_rate=0.75, mask_ratio=0.5, drop_pattern=pattern)
    samples = _samples(config)
    batch = SSLCollator(config, seed=0)(samples)
    assert batch["global_pixel_values"].shape == (3, 2, 4, 3, 32, 32)
    assert torch.equal(batch["global_pixel_values"][1], samples[1]["global_views"])
    keep, mask = batch["global_keep_indices"], batch["global_mask"]
    assert keep.shape[:2] == (3, 2) and keep.dtype == torch.int64 and mask.shape == keep.shape
    assert keep.shape[2] in (8, 2 * 4)  # 25% of the 2x4x4 grid (tube: 4 of 16 locations at 2 steps)
    assert mask.sum(-1).eq(round(keep.shape[2] * 0.5)).all()
    assert batch["small_pixel_values"].shape == (3, 2, 4, 3, 16, 16)
    assert batch["small_keep_indices"].shape[:2] == (3, 2) and batch["small_keep_indices"].max() < 8
    assert torch.equal(batch["label"], torch.tensor([0, 1, 2]))


def test_collator_masks_the_latest_kept_tokens_with_the_future_mask_pattern(tiny_config):
    config = tiny_config(drop_rate=0.5, mask_ratio=0.5, mask_pattern="future")  # 16 of the 2x4x4 grid kept
    batch = SSLCollator(config, seed=0)(_samples(config))
    step = batch["global_keep_indices"] // 16  # (3, 2, K) time step of each kept token
    mask = batch["global_mask"]
    assert mask.sum(-1).eq(8).all()
    for view_step, view_mask in zip(step.flatten(0, 1), mask.flatten(0, 1)):
        assert view_step[view_mask].min() >= view_step[~view_mask].max()


def test_collator_is_reproducible_from_its_seed(tiny_config):
    config = tiny_config()
    samples = _samples(config)
    a, b, c = (SSLCollator(config, seed=seed)(samples) for seed in (1, 1, 2))
    assert torch.equal(a["global_keep_indices"], b["global_keep_indices"])
    assert torch.equal(a["global_mask"], b["global_mask"])
    assert not torch.equal(a["global_keep_indices"], c["global_keep_indices"])


def test_collator_rejects_an_empty_batch(tiny_config):
    with pytest.raises(ValueError, match="empty list"):
        SSLCollator(tiny_config())([])
