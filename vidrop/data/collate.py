"""Collation of augmented views into a self-distillation batch, with the token plans of every view."""

import torch

from ..tokens import make_keep_indices, make_token_plan


class SSLCollator:
    """Stack the views of a list of clips and draw their token plans (drop pattern, drop rate, mask ratio).

    Token plans are made here, in the data pipeline, so that the model stays a pure function of its inputs and
    the plan of every step is reproducible from the seed.

    Args:
        config: a `VidropConfig`; its `tubelet_size`, `patch_size`, `drop_pattern`, `drop_rate`, `mask_pattern` and
            `mask_ratio` are read.
        seed: seed of the collator's own `torch.Generator`.

    When the samples carry a `plan_seed` (as `ClipStream` examples do), the batch's token plans are drawn
    from a generator seeded by `seed` and those values: a function of the examples alone, so they are the
    same when a run resumes and independent across DataLoader workers. Otherwise the collator's own
    generator is used in sequence.

    Each sample is a dict with `global_views` `(G, T, C, H, W)` float and, optionally, `small_views`
    `(S, T, C, h, w)` float. The batch is a dict with `global_pixel_values` `(B, G, T, C, H, W)`,
    `global_keep_indices` `(B, G, K)` int64, `global_mask` `(B, G, K)` bool and, with small crops,
    `small_pixel_values` `(B, S, T, C, h, w)` and `small_keep_indices` `(B, S, Ks)` (small crops are seen
    by the student only and are not masked). Any other tensor key is stacked as well (`label` `(B,)`), and any
    other value is listed (`video_id`).
    """

    def __init__(self, config, seed=0):
        self.config = config
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def _generator(self, plan_seeds):
        """The generator of one batch: seeded by the examples' `plan_seed` values when they have them."""
        if plan_seeds is None:
            return self.generator
        seed = self.seed
        for value in plan_seeds.tolist():
            seed = (seed * 1_000_003 + value) % (1 << 63)
        return torch.Generator().manual_seed(seed)

    def _grid(self, views):
        frames, _, height, width = views.shape[-4:]
        return (
            frames // self.config.tubelet_size,
            height // self.config.patch_size,
            width // self.config.patch_size,
        )

    def __call__(self, samples):
        if not samples:
            raise ValueError("cannot collate an empty list of samples")
        batch = {
            key: torch.stack([s[key] for s in samples]) if torch.is_tensor(value) else [s[key] for s in samples]
            for key, value in samples[0].items()
        }
        generator = self._generator(batch.pop("plan_seed", None))
        global_views = batch.pop("global_views")  # (B, G, T, C, H, W)
        num_clips, num_global = global_views.shape[:2]
        plan = make_token_plan(
            self._grid(global_views),
            num_clips * num_global,
            self.config.drop_rate,
            self.config.mask_ratio,
            self.config.drop_pattern,
            generator,
            self.config.mask_pattern,
        )
        batch["global_pixel_values"] = global_views
        batch["global_keep_indices"] = plan.keep_indices.reshape(num_clips, num_global, -1)
        batch["global_mask"] = plan.mask.reshape(num_clips, num_global, -1)
        small_views = batch.pop("small_views", None)
        if small_views is not None and small_views.shape[1] > 0:
            num_small = small_views.shape[1]
            keep = make_keep_indices(
                self._grid(small_views),
                num_clips * num_small,
                self.config.drop_rate,
                self.config.drop_pattern,
                generator,
            )
            batch["small_pixel_values"] = small_views
            batch["small_keep_indices"] = keep.reshape(num_clips, num_small, -1)
        return batch
