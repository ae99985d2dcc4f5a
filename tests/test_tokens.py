import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from vidrop.tokens import (
    DROP_PATTERNS,
    MASK_PATTERNS,
    make_future_mask,
    make_keep_indices,
    make_mask,
    make_token_plan,
    num_kept_tokens,
)

GRID = (8, 6, 6)  # (T', H', W'): 288 tokens
SEEDS = range(20)


def _keep_mask(keep_indices, grid):
    """`(B, K)` -> `(B, T', H', W')` bool kept map."""
    kept = torch.zeros(keep_indices.shape[0], math.prod(grid), dtype=torch.bool)
    kept.scatter_(1, keep_indices, True)
    return kept.reshape(-1, *grid)


def _plans(pattern, drop_rate, grid=GRID, batch=8):
    for seed in SEEDS:
        yield make_keep_indices(grid, batch, drop_rate, pattern, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("pattern", DROP_PATTERNS)
@pytest.mark.parametrize("drop_rate", [0.0, 0.5, 0.75, 0.9])
def test_every_pattern_keeps_sorted_unique_indices_same_k(pattern, drop_rate):
    for keep in _plans(pattern, drop_rate, batch=4):
        assert keep.dtype == torch.int64 and keep.ndim == 2 and keep.shape[0] == 4
        assert (keep[:, 1:] > keep[:, :-1]).all(), "sorted and unique"
        assert keep.min() >= 0 and keep.max() < math.prod(GRID)
        if pattern == "tube":
            assert keep.shape[1] == GRID[0] * num_kept_tokens(GRID[1] * GRID[2], drop_rate)
        else:
            assert keep.shape[1] == num_kept_tokens(math.prod(GRID), drop_rate)


def test_random_keeps_every_position_equally_often():
    counts = torch.zeros(math.prod(GRID))
    for keep in _plans("random", 0.75, batch=64):
        counts += _keep_mask(keep, GRID).flatten(1).sum(0)
    expected = 20 * 64 * 0.25
    # binomial std is sqrt(n p (1 - p)) ~ 9.8 for 1280 draws; 5 std bounds every one of the 288 positions
    assert (counts - expected).abs().max() < 5 * math.sqrt(20 * 64 * 0.25 * 0.75)
    # and the draws are really random: not the same set every time
    assert len({tuple(k.tolist()) for k in next(_plans("random", 0.75, batch=16))}) == 16


def test_tube_keeps_the_same_spatial_set_at_every_time_step():
    for keep in _plans("tube", 0.75):
        kept = _keep_mask(keep, GRID)
        assert (kept == kept[:, :1]).all()
        assert kept[:, 0].flatten(1).sum(1).eq(num_kept_tokens(36, 0.75)).all()


def test_spatial_uniform_keeps_every_location_at_the_same_number_of_time_steps():
    for drop_rate in (0.5, 0.75, 0.9):
        for keep in _plans("spatial_uniform", drop_rate):
            per_location = _keep_mask(keep, GRID).sum(1).flatten(1)  # (B, H' * W')
            assert (per_location.max(1).values - per_location.min(1).values).le(1).all()


def test_temporal_uniform_keeps_the_same_number_per_time_step():
    for drop_rate in (0.5, 0.75, 0.9):
        for keep in _plans("temporal_uniform", drop_rate):
            per_step = _keep_mask(keep, GRID).flatten(2).sum(2)  # (B, T')
            assert (per_step.max(1).values - per_step.min(1).values).le(1).all()


def test_stratified_keeps_the_same_number_per_3d_cell():
    for drop_rate in (0.5, 0.75, 0.9):
        for keep in _plans("stratified", drop_rate):
            cells = _keep_mask(keep, GRID).reshape(-1, 4, 2, 3, 2, 3, 2).sum((2, 4, 6)).flatten(1)  # 2x2x2 cells
            assert (cells.max(1).values - cells.min(1).values).le(1).all()


def test_balanced_patterns_are_not_balanced_by_chance():
    """The negative control: `random` breaks the ±1 balance the other patterns guarantee."""
    keep = next(_plans("random", 0.75, batch=16))
    per_step = _keep_mask(keep, GRID).flatten(2).sum(2)
    assert (per_step.max(1).values - per_step.min(1).values).gt(1).any()


def _components(dropped):
    return ndimage.label(dropped.numpy())[1]


def test_block_drops_contiguous_3d_blocks():
    for drop_rate in (0.3, 0.5):
        block, random = [], []
        for keep_block, keep_random in zip(_plans("block", drop_rate), _plans("random", drop_rate)):
            block += [_components(~m) for m in _keep_mask(keep_block, GRID)]
            random += [_components(~m) for m in _keep_mask(keep_random, GRID)]
        # a few boxes make a few connected dropped regions; scattered drops make many
        assert np.mean(block) < 0.2 * np.mean(random), (np.mean(block), np.mean(random))
    # a small drop is one box or two: 13 of 256 tokens make about 1 region, where scattered drops make about 12
    regions = [
        _components(
            ~_keep_mask(make_keep_indices((4, 8, 8), 1, 0.05, "block", torch.Generator().manual_seed(s)), (4, 8, 8))[0]
        )
        for s in range(30)
    ]
    assert np.mean(regions) < 1.5 and max(regions) <= 3


def test_patterns_are_reproducible_from_the_seed():
    for pattern in DROP_PATTERNS:
        a = make_token_plan(GRID, 4, 0.75, 0.5, pattern, torch.Generator().manual_seed(7))
        b = make_token_plan(GRID, 4, 0.75, 0.5, pattern, torch.Generator().manual_seed(7))
        c = make_token_plan(GRID, 4, 0.75, 0.5, pattern, torch.Generator().manual_seed(8))
        assert torch.equal(a.keep_indices, b.keep_indices) and torch.equal(a.mask, b.mask)
        assert not (torch.equal(a.keep_indices, c.keep_indices) and torch.equal(a.mask, c.mask))


def test_mask_has_the_ratio_and_is_uniform():
    counts = torch.zeros(40)
    for seed in SEEDS:
        mask = make_mask(64, 40, 0.3, torch.Generator().manual_seed(seed))
        assert mask.dtype == torch.bool and mask.sum(1).eq(12).all()
        counts += mask.sum(0)
    assert (counts - 20 * 64 * 0.3).abs().max() < 5 * math.sqrt(20 * 64 * 0.3 * 0.7)
    assert not make_mask(2, 10, 0.0).any() and make_mask(2, 10, 1.0).all()


def test_future_mask_hides_the_latest_kept_tokens_with_ties_at_random():
    grid = (4, 8, 8)
    per_step = grid[1] * grid[2]
    latest_picks = torch.zeros(per_step)
    for seed in SEEDS:
        generator = torch.Generator().manual_seed(seed)
        keep = make_keep_indices(grid, 8, 0.75, "random", generator)  # (8, 64)
        mask = make_future_mask(keep, grid, 0.5, generator)
        assert mask.dtype == torch.bool and mask.sum(1).eq(32).all()
        step = keep // per_step
        for sample_step, sample_mask in zip(step, mask):
            # every masked token is at least as late as every visible one
            assert sample_step[sample_mask].min() >= sample_step[~sample_mask].max()
        # where a time step is split between masked and visible, which of its tokens are masked is random
        boundary = [k[m & (s == s[m].min())] % per_step for k, m, s in zip(keep, mask, step)]
        for positions in boundary:
            latest_picks[positions] += 1
    assert (latest_picks > 0).sum() > per_step // 2
    assert not make_future_mask(keep, grid, 0.0).any() and make_future_mask(keep, grid, 1.0).all()


def test_token_plans_mask_by_the_mask_pattern():
    generator = torch.Generator().manual_seed(3)
    plan = make_token_plan(GRID, 4, 0.75, 0.5, "random", generator, mask_pattern="future")
    step = plan.keep_indices // (GRID[1] * GRID[2])
    for sample_step, sample_mask in zip(step, plan.mask):
        assert sample_step[sample_mask].min() >= sample_step[~sample_mask].max()
    for mask_pattern in MASK_PATTERNS:
        a = make_token_plan(GRID, 4, 0.75, 0.5, "tube", torch.Generator().manual_seed(7), mask_pattern)
        b = make_token_plan(GRID, 4, 0.75, 0.5, "tube", torch.Generator().manual_seed(7), mask_pattern)
        assert torch.equal(a.mask, b.mask) and a.mask.sum(1).eq(a.mask.shape[1] // 2).all()


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="drop_pattern='diagonal' is not supported; allowed: 'random'"):
        make_keep_indices(GRID, 2, 0.5, "diagonal")
    with pytest.raises(ValueError, match=r"drop_rate=1.0 is out of range; allowed: \[0, 1\)"):
        make_keep_indices(GRID, 2, 1.0)
    with pytest.raises(ValueError, match=r"mask_ratio=1.2 is out of range; allowed: \[0, 1\]"):
        make_mask(2, 10, 1.2)
