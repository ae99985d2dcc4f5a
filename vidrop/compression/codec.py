"""The palette codec: bit-packed palette indices compressed per group of frames.

A video is `(palette (P, 3) uint8, groups of compressed frames)`. Indices are packed at the smallest width in
{1, 2, 4, 8} bits that holds `P - 1`, each group of `group_size` frames is compressed with Zstandard (through
pyarrow, already a dependency of `datasets`) on its own,
so that a clip is read by decompressing only the groups it touches. Decoding crops on the indices and does
the palette lookup last, through a uint32-packed palette and `np.take`: uint8 until the end.
"""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

BIT_WIDTHS = (1, 2, 4, 8)
# Zstandard: about 3x faster to decompress than zlib on palette indices; level 6 is within a few % of the
# ratio of level 9 at about half the encode time.
GROUP_CODEC = pa.Codec("zstd", compression_level=6)


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
    lanes = padded.reshape(-1, per_byte)
    packed = lanes[:, 0] << np.uint8(8 - bits)
    for lane in range(1, per_byte):  # e.g. 4 bits: (first << 4) | second
        packed |= lanes[:, lane] << np.uint8(8 - bits * (lane + 1))
    return packed.tobytes()


def _unpack_table(bits):
    """`(256, 8 // bits)` uint8: the indices packed in every byte value, first value high."""
    shifts = np.arange(8 - bits, -1, -bits, dtype=np.uint8)
    return ((np.arange(256, dtype=np.uint8)[:, None] >> shifts) & np.uint8((1 << bits) - 1)).astype(np.uint8)


# Each byte value's indices as one little-endian word, so unpacking is a single np.take.
_UNPACK_WORDS = {bits: _unpack_table(bits).view(f"<u{8 // bits}").reshape(256) for bits in (1, 2, 4)}


def unpack_indices(data, bits, count):
    """Inverse of `pack_indices`: the first `count` uint8 indices of `data` (one table lookup per byte)."""
    packed = np.frombuffer(data, dtype=np.uint8)
    if bits == 8:
        return packed[:count]
    packed = packed[: -(-count * bits // 8)]
    return np.take(_UNPACK_WORDS[bits], packed).view(np.uint8)[:count]


@dataclass
class EncodedVideo:
    """A palette-compressed video: what one dataset row stores.

    Attributes:
        palette: `(P, 3)` uint8.
        groups: Zstandard blobs, group `g` holding frames `g * group_size` to `(g + 1) * group_size - 1`.
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


def encode_indices(indices, palette, group_size=1):
    """Pack and compress `(T, H, W)` uint8 palette indices -> `EncodedVideo`."""
    if group_size < 1:
        raise ValueError(f"group_size={group_size} is not allowed; allowed: >= 1")
    num_frames, height, width = indices.shape
    bits = bit_width(len(palette))
    groups = [
        GROUP_CODEC.compress(pack_indices(indices[start : start + group_size], bits), asbytes=True)
        for start in range(0, num_frames, group_size)
    ]
    return EncodedVideo(np.asarray(palette, dtype=np.uint8), groups, num_frames, height, width, group_size)


def _check_frames(video, frame_indices):
    frame_indices = np.asarray(frame_indices, dtype=np.int64)
    if frame_indices.size and (frame_indices.min() < 0 or frame_indices.max() >= video.num_frames):
        raise ValueError(f"frame_indices {frame_indices.tolist()} out of range; allowed: 0 to {video.num_frames - 1}")
    return frame_indices


def _frame_bytes(video, frame_indices):
    """`{frame: packed bytes of that frame}` for the unique frames asked for, decompressing each group once.

    Only for videos whose frames start on a byte boundary (`H * W * bits % 8 == 0`).
    """
    frame_bytes = video.height * video.width * video.bits // 8
    groups, frames = {}, {}
    for frame in np.unique(frame_indices):
        group, offset = divmod(int(frame), video.group_size)
        if group not in groups:
            frames_in_group = min(video.group_size, video.num_frames - group * video.group_size)
            size = frames_in_group * frame_bytes
            groups[group] = GROUP_CODEC.decompress(video.groups[group], decompressed_size=size, asbytes=True)
        frames[frame] = groups[group][offset * frame_bytes : (offset + 1) * frame_bytes]
    return frames


def _unaligned_frame_indices(video, frame_indices):
    """`{frame: (H, W) uint8 indices}` for videos whose frames do not start on a byte boundary."""
    frame_pixels = video.height * video.width
    groups = {}
    for group in np.unique(frame_indices // video.group_size):
        frames_in_group = min(video.group_size, video.num_frames - group * video.group_size)
        count = frames_in_group * frame_pixels
        data = GROUP_CODEC.decompress(video.groups[group], decompressed_size=-(-count * video.bits // 8), asbytes=True)
        groups[group] = unpack_indices(data, video.bits, count).reshape(frames_in_group, video.height, video.width)
    return {int(f): groups[f // video.group_size][f % video.group_size] for f in np.unique(frame_indices)}


def _aligned(video):
    return video.height * video.width * video.bits % 8 == 0


def decode_indices(video, frame_indices, crop=None):
    """Palette indices of the frames `frame_indices` (any order, repeats allowed), decompressing only their groups.

    Args:
        video: an `EncodedVideo`.
        frame_indices: sequence of frame numbers in `[0, num_frames)`.
        crop: `(top, left, height, width)` in pixels, or None for the whole frame.
    Returns:
        `(len(frame_indices), h, w)` uint8 indices.
    """
    frame_indices = _check_frames(video, frame_indices)
    top, left, h, w = crop if crop is not None else (0, 0, video.height, video.width)
    if _aligned(video):  # unpack only the needed frames
        packed = _frame_bytes(video, frame_indices)
        frames = {
            f: unpack_indices(data, video.bits, video.height * video.width).reshape(video.height, video.width)
            for f, data in packed.items()
        }
    else:
        frames = _unaligned_frame_indices(video, frame_indices)
    return np.stack([frames[i][top : top + h, left : left + w] for i in frame_indices])


def packed_palette(palette):
    """`(P, 3)` uint8 RGB -> `(P,)` uint32 whose little-endian bytes are (R, G, B, 0), for `palette_lookup`."""
    rgba = np.zeros((len(palette), 4), dtype=np.uint8)
    rgba[:, :3] = palette
    return rgba.view("<u4").reshape(-1)


def palette_lookup(indices, palette):
    """Colours of `indices` `(...)` uint8 -> `(..., 3)` uint8, one `np.take` of 4-byte words."""
    words = np.take(packed_palette(palette), indices)  # (...) uint32
    return words.view(np.uint8).reshape(*indices.shape, 4)[..., :3]


def _packed_lookup_table(palette, bits):
    """`(256,)` table of `4 * 8 // bits`-byte entries: the colours (as `packed_palette` words) of the pixels
    packed in each byte value, as one opaque item so that a single fancy-indexing gather fetches them all."""
    words = np.zeros(1 << bits, dtype="<u4")
    words[: len(palette)] = packed_palette(palette)
    table = np.ascontiguousarray(words[_unpack_table(bits)])  # (256, 8 // bits) uint32
    return table.view(np.dtype((np.void, table.shape[1] * 4))).reshape(256)


def decode_clip(video, frame_indices, crop=None):
    """RGB frames of a clip: decompress the needed groups, crop on the indices, look up the palette.

    When rows and the crop's columns start on byte boundaries (always for uncropped 1/2/4-bit videos of even
    width), the colours are looked up straight from the packed bytes, several pixels per table entry.

    Returns:
        `(T, h, w, 3)` uint8.
    """
    top, left, h, w = crop if crop is not None else (0, 0, video.height, video.width)
    bits = video.bits
    byte_aligned = all(x * bits % 8 == 0 for x in (video.width, left, w))
    if bits == 8 or not byte_aligned:
        return palette_lookup(decode_indices(video, frame_indices, crop), video.palette)
    frame_indices = _check_frames(video, frame_indices)
    table = _packed_lookup_table(video.palette, bits)  # (256,) entries of 8 // bits colour words
    row_bytes, per_byte = video.width * bits // 8, 8 // bits
    packed = {
        f: np.frombuffer(data, dtype=np.uint8).reshape(video.height, row_bytes)[
            top : top + h, left // per_byte : (left + w) // per_byte
        ]
        for f, data in _frame_bytes(video, frame_indices).items()
    }
    cropped = np.stack([packed[i] for i in frame_indices])  # (T, h, w / per_byte) packed bytes
    words = table[cropped]  # (T, h, w / per_byte) entries; fancy indexing beats np.take for these items
    return words.view(np.uint8).reshape(len(frame_indices), h, w, 4)[..., :3]
