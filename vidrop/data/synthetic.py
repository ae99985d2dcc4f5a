"""The embedded default dataset: short labelled videos whose class is a motion, written as real mp4 files.

Eight classes: the camera looks at a random smooth colour pattern that fills the frame, and the pattern
moves right, left, up or down, rotates clockwise or anticlockwise about the frame centre, or zooms in or out.
Pattern, starting point, angle and speed are random and distributed alike in every class, so no single frame
tells the class; only the order of frames does. Everything is drawn from
`numpy.random.default_rng([seed, class, i])`.

The motion fills the frame (every tubelet sees it), so the default backbone learns the classes from labels
in a few hundred steps (`benchmarks/supervised_ceiling.py`); a small object moving over a cluttered
background, this dataset's first design, stayed near chance for the same backbone after 1500 labelled steps.
"""

import logging
from pathlib import Path

import numpy as np

from .shards import CompressionOptions, build_dataset
from .video import write_video

logger = logging.getLogger(__name__)

MOTIONS = ("move_right", "move_left", "move_up", "move_down", "rotate_cw", "rotate_ccw", "zoom_in", "zoom_out")


def _pattern(rng, waves=8):
    """A random smooth colour pattern over the whole plane, as its plane waves: `(kx, ky, phase)`, each `(3, waves)`.

    Each colour channel is its own sum of `waves` plane waves of random direction, frequency (wavelengths
    21-79 pixels) and phase, squashed by `tanh` (`_view`): a stationary texture with structure in every
    direction (no aperture problem).
    """
    frequency = rng.uniform(0.08, 0.3, size=(3, waves))  # radians per pixel
    direction = rng.uniform(0, 2 * np.pi, size=(3, waves))
    phase = rng.uniform(0, 2 * np.pi, size=(3, waves))
    return frequency * np.cos(direction), frequency * np.sin(direction), phase


def _view(pattern, size, shift, theta, scale, origin):
    """The `(S, S, 3)` float frame in [18, 238] of the camera at pattern point `origin` `(y, x)`, turned by
    `theta`, zoomed by `scale` and moved by `shift` `(y, x)` pixels.

    A pixel at offset `(dy, dx)` from the centre, less `shift`, sees the pattern at `origin` plus that offset
    rotated by `theta` and divided by `scale`. That map is affine, so every wave is a plane wave in pixel
    coordinates too, `sin(ax * x + ay * y + b)`, and the sum over waves is two small matrix products.
    """
    kx, ky, phase = pattern  # (3, W) each
    cos, sin = np.cos(theta), np.sin(theta)
    ax = (kx * cos - ky * sin) / scale  # (3, W) radians per pixel along x
    ay = (kx * sin + ky * cos) / scale
    b = phase + kx * origin[1] + ky * origin[0] - ax * shift[1] - ay * shift[0]
    offsets = np.arange(size) - (size - 1) / 2  # (S,) pixel offsets from the centre
    wave_x, wave_y = ax[..., None] * offsets, ay[..., None] * offsets + b[..., None]  # (3, W, S) each
    # sin(x + y) = sin x cos y + cos x sin y, summed over the waves
    fields = np.einsum("cwy,cwx->yxc", np.cos(wave_y), np.sin(wave_x)) + np.einsum(
        "cwy,cwx->yxc", np.sin(wave_y), np.cos(wave_x)
    )  # (S, S, 3)
    return 128 + 110 * np.tanh(1.5 * fields / np.sqrt(kx.shape[1]))


def render_motion(motion, rng, num_frames=32, size=64, noise=2.0):
    """Frames `(T, S, S, 3)` uint8 of one video of class `motion`, with Gaussian sensor noise of std `noise`.

    The camera looks at a random pattern (`_pattern`) that fills the frame and moves as a whole: a translation
    of 0.8-1.6 pixels per frame, a rotation about the frame centre of 0.03-0.06 radians per frame, or a zoom of
    0.02-0.035 in log scale per frame. The pattern is stationary, so every frame of every class is distributed
    alike.
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion={motion!r} is not known; allowed: {', '.join(MOTIONS)}")
    pattern = _pattern(rng)
    origin = rng.uniform(-200, 200, size=2)  # (y, x): where in the pattern the camera starts
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.8, 1.6)  # pixels per frame
    spin = rng.uniform(0.03, 0.06)  # radians per frame
    zoom = rng.uniform(0.02, 0.035)  # log scale per frame
    step = {"move_right": (0, 1), "move_left": (0, -1), "move_up": (-1, 0), "move_down": (1, 0)}
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        shift, theta, scale = np.zeros(2), angle, 1.0
        if motion in step:
            shift = speed * t * np.asarray(step[motion])
        elif motion.startswith("rotate"):
            theta = angle + (spin if motion == "rotate_ccw" else -spin) * t
        else:  # log-scale sweeps the same range in both directions, so single-frame scales match
            offset = zoom * (t - (num_frames - 1) / 2)
            scale = np.exp(offset if motion == "zoom_in" else -offset)
        frame = _view(pattern, size, shift, theta, scale, origin) + rng.normal(0, noise, size=(size, size, 3))
        frames[t] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return frames


def build_synthetic_videos(root, videos_per_class=12, num_frames=32, size=64, fps=16, seed=0, noise=2.0):
    """Write the embedded dataset as `root/<motion>/<motion>_<i>.mp4` (the class-subfolder layout).

    Returns the list of written paths. Existing files are kept, so a second call is cheap.
    """
    root = Path(root)
    paths = []
    for label, motion in enumerate(MOTIONS):
        folder = root / motion
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(videos_per_class):
            path = folder / f"{motion}_{i:04d}.mp4"
            if not path.exists():
                frames = render_motion(motion, np.random.default_rng([seed, label, i]), num_frames, size, noise)
                partial = path.with_suffix(".partial.mp4")
                write_video(partial, frames, fps)
                partial.rename(path)
            paths.append(path)
    logger.info("synthetic dataset: %d videos in %s", len(paths), root)
    return paths


def build_embedded_dataset(dataset, videos_per_class=12, seed=0, num_proc=2):
    """Build the embedded dataset as training reads it: `build_synthetic_videos` into `<dataset>-videos`, then
    compressed with 16 k-means colours into `dataset`. Returns `dataset`.

    `launchers/pretrain.py` builds the default one (12 videos per class, seed 0) when it is absent; benchmarks
    build more videos of the same generator with other seeds for their probes.
    """
    videos = Path(f"{dataset}-videos")
    build_synthetic_videos(videos, videos_per_class=videos_per_class, seed=seed)
    build_dataset(videos, dataset, CompressionOptions(num_clusters=16), num_proc=num_proc)
    return dataset
