"""Token plans: which tokens of a view are kept (drop patterns) and which kept tokens are masked.

Every function is a pure function of the token grid, the ratios and a seeded `torch.Generator`; the data
pipeline calls them (`vidrop.data.collate`), never the model. Token index `n = (t * H' + h) * W' + w`.
"""

import math
from dataclasses import dataclass

import torch

# Default cell of the `stratified` pattern, in tokens (t, h, w); shrunk to a divisor of each grid axis.
STRATIFIED_CELL = (2, 2, 2)


@dataclass(frozen=True)
class TokenPlan:
    """The token plan of one batch of views.

    Attributes:
        keep_indices: `(B, K)` int64, sorted grid indices of the kept tokens (the same `K` for every sample).
        mask: `(B, K)` bool, True where the student sees the mask token instead of the kept token.
    """

    keep_indices: torch.Tensor
    mask: torch.Tensor


def num_kept_tokens(num_tokens, drop_rate):
    """How many of `num_tokens` tokens are kept at `drop_rate` (at least one)."""
    return max(1, round(num_tokens * (1.0 - drop_rate)))


def _random_ranks(shape, generator):
    """A uniformly random permutation rank `0..n-1` along the last axis of a tensor of `shape`."""
    return torch.rand(shape, generator=generator).argsort(dim=-1).argsort(dim=-1)


def _balanced_keep(groups, num_tokens, batch_size, num_keep, generator):
    """Keep `num_keep` tokens so that every group keeps the same number of its members (±1).

    Args:
        groups: `(G, M)` int64, a partition of the `num_tokens` grid indices into `G` groups of `M` members.
    Returns:
        `(B, num_keep)` int64 sorted keep indices; which groups keep one more, and which members, is uniform.
    """
    num_groups, group_size = groups.shape
    base, extra = divmod(num_keep, num_groups)
    quota = base + (_random_ranks((batch_size, num_groups), generator) < extra).long()  # (B, G)
    kept_members = _random_ranks((batch_size, num_groups, group_size), generator) < quota[..., None]  # (B, G, M)
    keep = torch.zeros(batch_size, num_tokens, dtype=torch.bool)
    keep.scatter_(1, groups.flatten().expand(batch_size, -1), kept_members.flatten(1))
    return keep.nonzero()[:, 1].reshape(batch_size, num_keep)  # nonzero is row-major: sorted per sample


def _largest_divisor_at_most(n, limit):
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def _grid_groups(grid, pattern):
    """The `(G, M)` partition of grid indices whose groups `pattern` balances."""
    t, h, w = grid
    index = torch.arange(t * h * w)
    if pattern == "random":  # one group: K uniformly random tokens
        return index[None, :]
    if pattern == "spatial_uniform":  # a group per spatial location, members are its time steps
        return index.reshape(t, h * w).T.contiguous()
    if pattern == "temporal_uniform":  # a group per time step, members are its spatial locations
        return index.reshape(t, h * w)
    # stratified: equal 3D cells
    ct, ch, cw = (_largest_divisor_at_most(n, c) for n, c in zip(grid, STRATIFIED_CELL))
    cells = index.reshape(t // ct, ct, h // ch, ch, w // cw, cw).permute(0, 2, 4, 1, 3, 5)
    return cells.reshape(-1, ct * ch * cw)


def _tube_keep(grid, batch_size, drop_rate, generator):
    """The same random spatial set kept at every time step: `(B, T' * S_k)`."""
    t, h, w = grid
    spatial = h * w
    spatial_keep = num_kept_tokens(spatial, drop_rate)
    locations = _balanced_keep(torch.arange(spatial)[None, :], spatial, batch_size, spatial_keep, generator)
    offsets = torch.arange(t)[:, None] * spatial  # (T', 1)
    return (offsets[None, :, :] + locations[:, None, :]).flatten(1)  # (B, T' * S_k), sorted


def _sample_block(grid, generator):
    """One random 3D box of tokens: a random temporal extent and 10-30% of the frame area, aspect 1:2 to 2:1."""
    t, h, w = grid
    draw = torch.rand(4, generator=generator).tolist()
    length = 1 + int(draw[0] * t)
    area = (0.1 + 0.2 * draw[1]) * h * w
    aspect = math.exp(math.log(0.5) + draw[2] * (math.log(2.0) - math.log(0.5)))
    height = min(h, max(1, round(math.sqrt(area * aspect))))
    width = min(w, max(1, round(math.sqrt(area / aspect))))
    start_t, start_h, start_w = (
        int(torch.randint(0, n - size + 1, (1,), generator=generator))
        for n, size in ((t, length), (h, height), (w, width))
    )
    box = torch.zeros(grid, dtype=torch.bool)
    box[start_t : start_t + length, start_h : start_h + height, start_w : start_w + width] = True
    return box


def _block_keep(grid, batch_size, drop_rate, generator):
    """Drop random 3D boxes until exactly `N - K` tokens are dropped; `(B, K)`.

    The last box is cut to the exact count by keeping the first of its new tokens in raster order, so every
    dropped region stays connected.
    """
    num_tokens = math.prod(grid)
    num_drop = num_tokens - num_kept_tokens(num_tokens, drop_rate)
    keep_indices = []
    for _ in range(batch_size):
        dropped = torch.zeros(num_tokens, dtype=torch.bool)
        while int(dropped.sum()) < num_drop:
            new = _sample_block(grid, generator).flatten() & ~dropped
            missing = num_drop - int(dropped.sum())
            new_positions = new.nonzero()[:, 0]
            dropped[new_positions[:missing]] = True
        keep_indices.append((~dropped).nonzero()[:, 0])
    return torch.stack(keep_indices)


def _grouped_keep(pattern):
    """A keep function balancing the groups of `_grid_groups(grid, pattern)`."""

    def keep(grid, batch_size, drop_rate, generator):
        num_tokens = math.prod(grid)
        groups = _grid_groups(grid, pattern)
        return _balanced_keep(groups, num_tokens, batch_size, num_kept_tokens(num_tokens, drop_rate), generator)

    return keep


_KEEP_FUNCTIONS = {
    "random": _grouped_keep("random"),
    "tube": _tube_keep,
    "block": _block_keep,
    "spatial_uniform": _grouped_keep("spatial_uniform"),
    "temporal_uniform": _grouped_keep("temporal_uniform"),
    "stratified": _grouped_keep("stratified"),
}
DROP_PATTERNS = tuple(_KEEP_FUNCTIONS)


def make_keep_indices(grid, batch_size, drop_rate, pattern="random", generator=None):
    """Choose the kept tokens of `batch_size` views of a `(T', H', W')` grid.

    Args:
        grid: the token grid `(T', H', W')`.
        batch_size: `B`.
        drop_rate: fraction of tokens dropped, in [0, 1).
        pattern: one of `random` (exactly K per sample, every position equally likely), `tube` (the same
            spatial set at every time step), `block` (dropped tokens form 3D boxes), `spatial_uniform` (every
            location kept at the same number of time steps, ±1), `temporal_uniform` (every time step keeps the
            same number, ±1), `stratified` (equal 3D cells each keep the same number, ±1).
        generator: a seeded CPU `torch.Generator`.

    Returns:
        `(B, K)` int64 sorted keep indices.
    """
    if pattern not in DROP_PATTERNS:
        raise ValueError(f"drop_pattern={pattern!r} is not supported; allowed: {', '.join(map(repr, DROP_PATTERNS))}")
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate={drop_rate!r} is out of range; allowed: [0, 1)")
    return _KEEP_FUNCTIONS[pattern](grid, batch_size, drop_rate, generator)


def make_mask(batch_size, num_kept, mask_ratio, generator=None):
    """Mask `round(mask_ratio * K)` uniformly random kept tokens of each sample -> `(B, K)` bool."""
    _check_mask_ratio(mask_ratio)
    num_masked = round(num_kept * mask_ratio)
    return _random_ranks((batch_size, num_kept), generator) < num_masked


def make_future_mask(keep_indices, grid, mask_ratio, generator=None):
    """Mask the latest `round(mask_ratio * K)` kept tokens of each sample, by time step (ties at random).

    The student then predicts the later tubelets from the earlier ones, as a future-prediction objective does:
    `keep_indices` `(B, K)` of a `(T', H', W')` grid -> `(B, K)` bool.
    """
    _check_mask_ratio(mask_ratio)
    time_step = torch.div(keep_indices, grid[1] * grid[2], rounding_mode="floor")  # (B, K)
    tie_break = _random_ranks(tuple(keep_indices.shape), generator)  # (B, K) in [0, K)
    order = time_step * keep_indices.shape[1] + tie_break  # later time steps first, when sorted descending
    latest_first = order.argsort(dim=1, descending=True).argsort(dim=1)  # (B, K): 0 for the latest token
    return latest_first < round(keep_indices.shape[1] * mask_ratio)


def _check_mask_ratio(mask_ratio):
    if not 0.0 <= mask_ratio <= 1.0:
        raise ValueError(f"mask_ratio={mask_ratio!r} is out of range; allowed: [0, 1]")


# Which kept tokens are masked, each `(keep_indices (B, K), grid, mask_ratio, generator) -> (B, K) bool`: any, or
# the latest by time step.
_MASK_FUNCTIONS = {
    "random": lambda keep_indices, grid, mask_ratio, generator: make_mask(*keep_indices.shape, mask_ratio, generator),
    "future": make_future_mask,
}
MASK_PATTERNS = tuple(_MASK_FUNCTIONS)


def make_token_plan(grid, batch_size, drop_rate, mask_ratio, pattern="random", generator=None, mask_pattern="random"):
    """The `TokenPlan` of `batch_size` views of a `(T', H', W')` grid: keep indices by `pattern`, then a mask by
    `mask_pattern` (`random`: any kept tokens, `make_mask`; `future`: the latest ones, `make_future_mask`)."""
    if mask_pattern not in MASK_PATTERNS:
        raise ValueError(
            f"mask_pattern={mask_pattern!r} is not supported; allowed: {', '.join(map(repr, MASK_PATTERNS))}"
        )
    keep_indices = make_keep_indices(grid, batch_size, drop_rate, pattern, generator)  # (B, K)
    mask = _MASK_FUNCTIONS[mask_pattern](keep_indices, grid, mask_ratio, generator)  # (B, K)
    return TokenPlan(keep_indices=keep_indices, mask=mask)
