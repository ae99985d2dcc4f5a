"""DINO-style multi-crop of a clip, working on palette indices: crop first, look up colours last."""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..compression.codec import palette_lookup

# The VideoMAE / ImageNet normalisation the model expects.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def random_resized_box(height, width, scale, ratio, rng, attempts=10):
    """A random crop `(top, left, h, w)` covering `scale` of the area with aspect in `ratio` (Inception crop)."""
    area = height * width
    for _ in range(attempts):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    side = min(height, width)  # fall back to a centred square
    return (height - side) // 2, (width - side) // 2, side, side


@dataclass
class MultiCrop:
    """Two global crops and `num_small_crops` small crops of one clip, as normalised `pixel_values`.

    Every view is a random resized crop of the same frames, flipped with probability `flip_probability`. The
    crop is cut from the palette indices, and only the cropped pixels are looked up, resized and normalised.
    """

    global_size: int = 224
    small_size: int = 96
    num_small_crops: int = 2
    global_scale: tuple = (0.4, 1.0)
    small_scale: tuple = (0.1, 0.4)
    ratio: tuple = (3 / 4, 4 / 3)
    flip_probability: float = 0.5
    num_global_crops: int = 2

    def view(self, indices, palette, size, scale, rng):
        """One view: `indices` `(T, H, W)` uint8 -> `(T, C, size, size)` float normalised."""
        top, left, h, w = random_resized_box(indices.shape[1], indices.shape[2], scale, self.ratio, rng)
        rgb = palette_lookup(indices[:, top : top + h, left : left + w], palette)  # (T, h, w, 3) uint8
        frames = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float().div_(255)  # (T, 3, h, w)
        frames = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if rng.random() < self.flip_probability:
            frames = frames.flip(-1)
        mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
        return (frames - mean) / std

    def __call__(self, indices, palette, rng):
        """`indices` `(T, H, W)` uint8, `palette` `(P, 3)` uint8 -> `global_views` `(2, T, C, S, S)`, `small_views`
        `(n, T, C, s, s)`."""
        global_views = [self.view(indices, palette, self.global_size, self.global_scale, rng) for _ in range(self.num_global_crops)]
        small_views = [self.view(indices, palette, self.small_size, self.small_scale, rng) for _ in range(self.num_small_crops)]
        sample = {"global_views": torch.stack(global_views)}
        if small_views:
            sample["small_views"] = torch.stack(small_views)
        return sample

    @classmethod
    def from_config(cls, config, **overrides):
        """The multi-crop a `VidropConfig` trains with (image size, small crop size and count)."""
        return cls(
            global_size=config.image_size,
            small_size=config.small_crop_size,
            num_small_crops=config.num_small_crops,
            **overrides,
        )
