"""The embedded default dataset: short labelled videos whose class is a motion, written as real mp4 files.

Eight classes: an object with a random striped texture on a random smooth background moves right, left, up
or down (wrapping around the frame), rotates clockwise or anticlockwise, or zooms in or out. Appearance,
position, angle and scale are random and distributed alike in every class, so no single frame tells the
class; only the order of frames does. Everything is drawn from `numpy.random.default_rng([seed, class, i])`.
"""

import logging
from pathlib import Path

import numpy as np

from .video import write_video

logger = logging.getLogger(__name__)

MOTIONS = ("move_right", "move_left", "move_up", "move_down", "rotate_cw", "rotate_ccw", "zoom_in", "zoom_out")


def _smooth_background(rng, size):
    """`(S, S, 3)` float: a 4x4 grid of random colours, bilinearly upsampled."""
    coarse = rng.uniform(0, 255, size=(4, 4, 3))
    coords = np.linspace(0, 3, size)
    low = np.floor(coords).astype(int).clip(0, 2)
    frac = coords - low
    rows = coarse[low] * (1 - frac)[:, None, None] + coarse[low + 1] * frac[:, None, None]  # (S, 4, 3)
    return rows[:, low] * (1 - frac)[None, :, None] + rows[:, low + 1] * frac[None, :, None]


def _texture(rng):
    """A striped texture as a function of object coordinates `(u, v)` in [-1, 1] -> colour index 0..2."""
    colours = rng.uniform(0, 255, size=(3, 3))
    frequency = rng.uniform(1.5, 3.0)
    direction = rng.uniform(0, np.pi)
    checker = rng.random() < 0.5

    def colour(u, v):
        along = u * np.cos(direction) + v * np.sin(direction)
        stripe = np.floor((along + 1) * frequency).astype(int)
        if checker:
            stripe = stripe + np.floor((v + 1) * frequency).astype(int)
        return colours[stripe % 3]

    return colour


def render_motion(motion, rng, num_frames=32, size=64, noise=2.0):
    """Frames `(T, S, S, 3)` uint8 of one video of class `motion`, with Gaussian sensor noise of std `noise`."""
    if motion not in MOTIONS:
        raise ValueError(f"motion={motion!r} is not known; allowed: {', '.join(MOTIONS)}")
    background = _smooth_background(rng, size)
    texture = _texture(rng)
    half = rng.uniform(0.12, 0.22) * size  # half side of the object, pixels
    centre = rng.uniform(0, size, size=2)  # (y, x)
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.8, 1.6)  # pixels per frame
    spin = rng.uniform(0.06, 0.12)  # radians per frame
    zoom = rng.uniform(0.02, 0.035)  # log scale per frame
    phase = rng.uniform(-0.5, 0.5) * zoom * num_frames
    step = {"move_right": (0, 1), "move_left": (0, -1), "move_up": (-1, 0), "move_down": (1, 0)}
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        c, theta, scale = centre.copy(), angle, 1.0
        if motion in step:
            c = c + speed * t * np.asarray(step[motion])
        elif motion.startswith("rotate"):
            theta = angle + (spin if motion == "rotate_ccw" else -spin) * t
        else:  # log-scale sweeps the same range in both directions, so single-frame sizes match
            offset = zoom * (t - (num_frames - 1) / 2) + phase
            scale = np.exp(offset if motion == "zoom_in" else -offset)
        dy = (ys - c[0] + size / 2) % size - size / 2  # wrap around: position is uniform in every frame
        dx = (xs - c[1] + size / 2) % size - size / 2
        u = (np.cos(theta) * dx + np.sin(theta) * dy) / (half * scale)
        v = (-np.sin(theta) * dx + np.cos(theta) * dy) / (half * scale)
        inside = (np.abs(u) <= 1) & (np.abs(v) <= 1)
        frame = background.copy()
        frame[inside] = texture(u[inside], v[inside])
        frame += rng.normal(0, noise, size=frame.shape)  # sensor noise
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
