"""DINO-style multi-crop of a clip, working on palette indices: crop first, look up colours last."""

import math
from dataclasses import dataclass
from functools import partial

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


def colour_jitter(frames, strength, grayscale, rng):
    """Random brightness, contrast and saturation factors in `[1 - strength, 1 + strength]` (in random order),
    then grayscale when `grayscale`, the same for every frame: `(T, 3, h, w)` in [0, 1] -> same."""
    for op in rng.permutation(3):
        factor = float(rng.uniform(1 - strength, 1 + strength))
        if op == 0:  # brightness
            frames = frames * factor
        elif op == 1:  # contrast, around the mean grey level of the view
            grey = _grey(frames).mean()
            frames = (frames - grey) * factor + grey
        else:  # saturation, around each pixel's grey
            grey = _grey(frames)
            frames = (frames - grey) * factor + grey
        frames = frames.clamp(0, 1)
    return _grey(frames).expand_as(frames) if grayscale else frames


def _grey(frames):
    """ITU-R 601 luma of `(T, 3, h, w)` -> `(T, 1, h, w)`."""
    return (frames * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)


def box_to_pixel_values(indices, palette, box, size, flip=False, colour=None):
    """Cut `box` `(top, left, h, w)` from `indices` `(T, H, W)` uint8, look up its colours, resize to `size`^2,
    optionally flip and `colour(frames)` (a colour augmentation), normalise -> `(T, C, size, size)` float."""
    top, left, h, w = box
    rgb = palette_lookup(indices[:, top : top + h, left : left + w], palette)  # (T, h, w, 3) uint8
    frames = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float().div_(255)  # (T, 3, h, w)
    frames = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if flip:
        frames = frames.flip(-1)
    if colour is not None:
        frames = colour(frames.clamp_(0, 1))  # antialiased resizing overshoots [0, 1] slightly
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (frames - mean) / std


@dataclass
class MultiCrop:
    """Two global crops and `num_small_crops` small crops of one clip, as normalised `pixel_values`.

    Every view is a random resized crop of the same frames, flipped with probability `flip_probability`, and
    colour-jittered with probability `jitter_probability` (brightness, contrast, saturation by up to
    `jitter_strength`) and turned grey with probability `grayscale_probability`, the same for all its frames
    (DINO's colour augmentation, without hue). The crop is cut from the palette indices, and only the cropped
    pixels are looked up, resized and normalised. Flipping swaps left and right motions: keep it at 0 for
    datasets whose classes depend on direction (Something-Something, the embedded dataset).
    """

    global_size: int = 224
    small_size: int = 96
    num_small_crops: int = 2
    global_crop_scale: tuple = (0.4, 1.0)
    small_crop_scale: tuple = (0.1, 0.4)
    ratio: tuple = (3 / 4, 4 / 3)
    flip_probability: float = 0.5
    jitter_probability: float = 0.0
    jitter_strength: float = 0.4
    grayscale_probability: float = 0.0
    num_global_crops: int = 2

    def __post_init__(self):
        for name in ("global_crop_scale", "small_crop_scale"):
            scale = tuple(getattr(self, name))
            if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
                raise ValueError(
                    f"{name}={scale!r} is not allowed; it must be two area fractions (low, high) with "
                    "0 < low <= high <= 1"
                )
            setattr(self, name, scale)

    def view(self, indices, palette, size, scale, rng):
        """One view: `indices` `(T, H, W)` uint8 -> `(T, C, size, size)` float normalised."""
        box = random_resized_box(indices.shape[1], indices.shape[2], scale, self.ratio, rng)
        flip = rng.random() < self.flip_probability
        jitter, grayscale = rng.random() < self.jitter_probability, rng.random() < self.grayscale_probability
        colour = None
        if jitter or grayscale:
            strength = self.jitter_strength if jitter else 0.0
            colour = partial(colour_jitter, strength=strength, grayscale=grayscale, rng=rng)
        return box_to_pixel_values(indices, palette, box, size, flip=flip, colour=colour)

    def __call__(self, indices, palette, rng):
        """`indices` `(T, H, W)` uint8, `palette` `(P, 3)` uint8 -> `global_views` `(2, T, C, S, S)`, `small_views`
        `(n, T, C, s, s)`."""
        global_views = [
            self.view(indices, palette, self.global_size, self.global_crop_scale, rng)
            for _ in range(self.num_global_crops)
        ]
        small_views = [
            self.view(indices, palette, self.small_size, self.small_crop_scale, rng)
            for _ in range(self.num_small_crops)
        ]
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
