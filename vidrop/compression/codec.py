"""The palette codec: bit-packed palette indices compressed per group of frames.

A video is `(palette (P, 3) uint8, groups of compressed frames)`. Indices are packed at the smallest width in
{1, 2, 4, 8} bits that holds `P - 1`, each group of `group_size` frames is compressed with zlib on its own,
so that a clip is read by decompressing only the groups it touches. Decoding crops on the indices and does
the palette lookup last, through a uint32-packed palette and `np.take`: uint8 until the end.
"""

import zlib
from dataclasses import dataclass

import numpy as np

BIT_WIDTHS = (1, 2, 4, 8)
ZLIB_LEVEL = 6


def bit_width(palette_size):
    """Smallest width in {1, 2, 4, 8} bits that indexes `palette_size` colours (1 to 256)."""
    if not 1 <= palette_size <= 256:
        raise ValueError(f"palette_size={palette_size} is not allowed; allowed: 1 to 256")
    return next(bits for bits in BIT_WIDTHS if palette_size <= 1 << bits)


def pack_indices(indices, bits):
    """Pack uint8 `indices` (any shape, values < 2**bits) into bytes, `8 // bits` values per byte, first value high."""
    flat = np.ascontiguousarray(indices, dtype=np.uint8).reshape(-1)
    if bits == 8:
        return flat.tobytes()
    per_byte = 8 // bits
    padded = np.zeros(-(-len(flat) // per_byte) * per_byte, dtype=np.uint8)
    padded[: len(flat)] = flat
    shifts = np.arange(8 - bits, -1, -bits, dtype=np.uint8)  # e.g. 4 bits: (4, 0)
    return np.bitwise_or.reduce(padded.reshape(-1, per_byte) << shifts, axis=1).astype(np.uint8).tobytes()


def unpack_indices(data, bits, count):
    """Inverse of `pack_indices`: the first `count` uint8 indices of `data`."""
    packed = np.frombuffer(data, dtype=np.uint8)
    if bits == 8:
        return packed[:count]
    shifts = np.arange(8 - bits, -1, -bits, dtype=np.uint8)
    mask = np.uint8((1 << bits) - 1)
    return ((packed[:, None] >> shifts) & mask).reshape(-1)[:count]


@dataclass
class EncodedVideo:
    """A palette-compressed video: what one dataset row stores.

    Attributes:
        palette: `(P, 3)` uint8.
        groups: zlib blobs, group `g` holding frames `g * group_size` to `(g + 1) * group_size - 1`.
        num_frames, height, width: the shape of the frames.
        group_size: frames per compressed group.
    """

    palette: np.ndarray
    groups: list
    num_frames: int
    height: int
    width: int
    group_size: int

    @property
    def bits(self):
        return bit_width(len(self.palette))

    @property
    def compressed_bytes(self):
        """Stored bytes: the palette plus every compressed group."""
        return self.palette.nbytes + sum(len(g) for g in self.groups)

    @property
    def raw_bytes(self):
        """Bytes of the same frames as raw uint8 RGB."""
        return self.num_frames * self.height * self.width * 3


def encode_indices(indices, palette, group_size=4):
    """Pack and compress `(T, H, W)` uint8 palette indices -> `EncodedVideo`."""
    if group_size < 1:
        raise ValueError(f"group_size={group_size} is not allowed; allowed: >= 1")
    num_frames, height, width = indices.shape
    bits = bit_width(len(palette))
    groups = [
        zlib.compress(pack_indices(indices[start : start + group_size], bits), ZLIB_LEVEL)
        for start in range(0, num_frames, group_size)
    ]
    return EncodedVideo(np.asarray(palette, dtype=np.uint8), groups, num_frames, height, width, group_size)


def decode_indices(video, frame_indices, crop=None):
    """Palette indices of the frames `frame_indices` (any order, repeats allowed), decompressing only their groups.

    Args:
        video: an `EncodedVideo`.
        frame_indices: sequence of frame numbers in `[0, num_frames)`.
        crop: `(top, left, height, width)` in pixels, or None for the whole frame.
    Returns:
        `(len(frame_indices), h, w)` uint8 indices.
    """
    frame_indices = np.asarray(frame_indices, dtype=np.int64)
    if frame_indices.size and (frame_indices.min() < 0 or frame_indices.max() >= video.num_frames):
        raise ValueError(f"frame_indices {frame_indices.tolist()} out of range; allowed: 0 to {video.num_frames - 1}")
    top, left, h, w = crop if crop is not None else (0, 0, video.height, video.width)
    frame_pixels = video.height * video.width
    groups = {}
    for group in np.unique(frame_indices // video.group_size):
        frames_in_group = min(video.group_size, video.num_frames - group * video.group_size)
        unpacked = unpack_indices(zlib.decompress(video.groups[group]), video.bits, frames_in_group * frame_pixels)
        groups[group] = unpacked.reshape(frames_in_group, video.height, video.width)[:, top : top + h, left : left + w]
    return np.stack([groups[i // video.group_size][i % video.group_size] for i in frame_indices])


def packed_palette(palette):
    """`(P, 3)` uint8 RGB -> `(P,)` uint32 whose little-endian bytes are (R, G, B, 0), for `palette_lookup`."""
    rgba = np.zeros((len(palette), 4), dtype=np.uint8)
    rgba[:, :3] = palette
    return rgba.view("<u4").reshape(-1)


def palette_lookup(indices, palette):
    """Colours of `indices` `(...)` uint8 -> `(..., 3)` uint8, one `np.take` of 4-byte words."""
    words = np.take(packed_palette(palette), indices)  # (...) uint32
    return words.view(np.uint8).reshape(*indices.shape, 4)[..., :3]


def decode_clip(video, frame_indices, crop=None):
    """RGB frames of a clip: decompress the needed groups, crop on the indices, look up the palette -> `(T, h, w, 3)` uint8."""
    return palette_lookup(decode_indices(video, frame_indices, crop), video.palette)
