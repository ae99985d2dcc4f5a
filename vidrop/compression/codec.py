"""The palette codec: bit-packed palette indices compressed per group of frames.

A video is `(palette (P, 3) uint8, groups of compressed frames)`. Indices are packed at the smallest width in
{1, 2, 4, 8} bits that holds `P - 1`, each group of `group_size` frames is compressed with Zstandard (through
pyarrow, already a dependency of `datasets`) on its own, so that a clip is read by decompressing only the
groups it touches. Decoding reads only the crop's indices straight from the packed bits (compiled kernels,
any bit width, any crop) and, for RGB, looks their colours up in the same pass: integers throughout.
"""

from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa

BIT_WIDTHS = (1, 2, 4, 8)
# Zstandard: about 3x faster to decompress than zlib on palette indices. Level 3 (zstd's default) encodes
# 3x faster than level 6 for 8% more bytes; every level decompresses at the same speed.
GROUP_CODEC = pa.Codec("zstd", compression_level=3)


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


@numba.njit(cache=True, nogil=True)
def _index_at(data, bit, bits):
    """The `bits`-wide value starting at bit `bit` of `data` (uint8, first value in the high bits)."""
    return (data[bit >> 3] >> (8 - bits - (bit & 7))) & ((1 << bits) - 1)


@numba.njit(cache=True, nogil=True)
def _unpack_crop(data, starts, bits, width, top, left, out):
    """`out` `(T, h, w)` uint8 <- the indices of pixels `(top + y, left + x)` of frames of `width` pixels, frame
    `t` starting at bit `starts[t]` of `data`."""
    for t in range(out.shape[0]):
        for y in range(out.shape[1]):
            bit = starts[t] + ((top + y) * width + left) * bits
            for x in range(out.shape[2]):
                out[t, y, x] = _index_at(data, bit, bits)
                bit += bits


@numba.njit(cache=True, nogil=True)
def _lookup_crop(data, starts, bits, width, top, left, palette, out):
    """As `_unpack_crop`, with the colours: `out` `(T, h, w, 3)` uint8 <- `palette[index]` of each pixel, written
    straight into the contiguous clip (no index array, no 4-byte words to strip afterwards)."""
    for t in range(out.shape[0]):
        for y in range(out.shape[1]):
            bit = starts[t] + ((top + y) * width + left) * bits
            for x in range(out.shape[2]):
                index = _index_at(data, bit, bits)
                out[t, y, x, 0] = palette[index, 0]
                out[t, y, x, 1] = palette[index, 1]
                out[t, y, x, 2] = palette[index, 2]
                bit += bits


@numba.njit(cache=True, nogil=True)
def _lookup_blocks(data, starts, bits, width, top, left, blocks, out):
    """As `_lookup_crop` for a crop whose rows start and end on byte boundaries: each byte of packed indices
    (`8 // bits` pixels) becomes three words of `blocks[byte]`, its pixels' colours (3x fewer stores than byte
    by byte). `out` `(T, h, 3 * w / (8 // bits))` words of `8 // bits` bytes, the clip's memory."""
    for t in range(out.shape[0]):
        for y in range(out.shape[1]):
            byte = (starts[t] + ((top + y) * width + left) * bits) >> 3
            row = out[t, y]
            for k in range(out.shape[2] // 3):
                block = blocks[data[byte + k]]
                row[3 * k] = block[0]
                row[3 * k + 1] = block[1]
                row[3 * k + 2] = block[2]


# Word holding the colours of a third of a byte's pixels: 4 bits -> 2 pixels = 6 bytes = 3 x uint16, ...
BLOCK_WORDS = {4: np.uint16, 2: np.uint32, 1: np.uint64}


def colour_blocks(palette, bits):
    """`(256, 3)` words: the RGB bytes of the `8 // bits` pixels that each byte value of packed indices holds
    (indices past the palette, which no frame holds, get its last colour)."""
    per_byte = 8 // bits
    values = np.arange(256)[:, None] >> (8 - bits * (np.arange(per_byte)[None, :] + 1))  # (256, per_byte)
    indices = np.minimum(values & ((1 << bits) - 1), len(palette) - 1)
    return np.ascontiguousarray(palette[indices].reshape(256, 3 * per_byte)).view(BLOCK_WORDS[bits])


def unpack_indices(data, bits, count):
    """Inverse of `pack_indices`: the first `count` uint8 indices of `data`."""
    out = np.empty((1, 1, count), dtype=np.uint8)
    _unpack_crop(np.frombuffer(data, dtype=np.uint8), np.zeros(1, dtype=np.int64), bits, count, 0, 0, out)
    return out.reshape(count)


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


def _check_crop(video, crop):
    """`(top, left, height, width)`, the whole frame for None; a box outside the frame is a `ValueError`."""
    if crop is None:
        return 0, 0, video.height, video.width
    top, left, h, w = (int(x) for x in crop)
    if top < 0 or left < 0 or h < 1 or w < 1 or top + h > video.height or left + w > video.width:
        raise ValueError(
            f"crop={tuple(crop)} is not allowed; allowed: (top, left, height, width) inside the "
            f"{video.height}x{video.width} frame"
        )
    return top, left, h, w


def _frames_data(video, frame_indices):
    """`(data, starts)`: the decompressed groups of the frames asked for, each group once, as one uint8 array,
    and the bit at which each of `frame_indices` starts in it -> `(T,)` int64."""
    frame_bits = video.height * video.width * video.bits
    buffers, group_starts, size = [], {}, 0
    for group in np.unique(frame_indices // video.group_size):
        frames_in_group = min(video.group_size, video.num_frames - group * video.group_size)
        length = -(-frames_in_group * frame_bits // 8)
        buffers.append(GROUP_CODEC.decompress(video.groups[group], decompressed_size=length))  # pyarrow.Buffer
        group_starts[group], size = size * 8, size + length
    data = np.frombuffer(b"".join(buffers), dtype=np.uint8)
    starts = [group_starts[f // video.group_size] + (f % video.group_size) * frame_bits for f in frame_indices]
    return data, np.asarray(starts, dtype=np.int64)


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
    top, left, h, w = _check_crop(video, crop)
    data, starts = _frames_data(video, frame_indices)
    out = np.empty((len(frame_indices), h, w), dtype=np.uint8)
    _unpack_crop(data, starts, video.bits, video.width, top, left, out)
    return out


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
    """RGB frames of a clip: decompress the needed groups, then read the crop's indices and their colours in
    one pass (no index array in between), a byte of indices at a time where the crop's rows are whole bytes.

    Returns:
        `(T, h, w, 3)` uint8, contiguous.
    """
    frame_indices = _check_frames(video, frame_indices)
    top, left, h, w = _check_crop(video, crop)
    data, starts = _frames_data(video, frame_indices)
    clip = np.empty((len(frame_indices), h, w, 3), dtype=np.uint8)
    per_byte = 8 // video.bits
    if video.bits < 8 and video.width % per_byte == 0 and left % per_byte == 0 and w % per_byte == 0:
        words = clip.reshape(len(frame_indices), h, 3 * w).view(BLOCK_WORDS[video.bits])
        blocks = colour_blocks(video.palette, video.bits)
        _lookup_blocks(data, starts, video.bits, video.width, top, left, blocks, words)
    else:  # rows that start or end inside a byte, or one index per byte
        _lookup_crop(data, starts, video.bits, video.width, top, left, np.ascontiguousarray(video.palette), clip)
    return clip
