import numpy as np
import pytest

from vidrop.compression import (
    bit_width,
    decode_clip,
    decode_indices,
    encode_indices,
    fit_palette,
    nearest_palette_indices,
    palette_lookup,
)
from vidrop.compression.codec import pack_indices, unpack_indices


@pytest.mark.parametrize("palette_size, bits", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 4), (16, 4), (17, 8), (256, 8)])
def test_bit_width_is_the_smallest_that_fits(palette_size, bits):
    assert bit_width(palette_size) == bits


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("count", [1, 7, 8, 9, 1001])
def test_pack_unpack_round_trip_and_size(bits, count):
    values = np.random.default_rng(count).integers(0, 1 << bits, size=count, dtype=np.uint8)
    packed = pack_indices(values, bits)
    assert len(packed) == -(-count * bits // 8)
    assert np.array_equal(unpack_indices(packed, bits, count), values)


def test_bit_width_rejects_impossible_palettes():
    with pytest.raises(ValueError, match="palette_size=257 is not allowed; allowed: 1 to 256"):
        bit_width(257)


@pytest.mark.parametrize("num_colours", [2, 4, 16, 200])
def test_codec_is_lossless_on_frames_with_at_most_k_colours(num_colours):
    rng = np.random.default_rng(num_colours)
    colours = rng.choice(256**3, size=num_colours, replace=False)
    colours = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=1).astype(np.uint8)
    choice = rng.integers(0, num_colours, size=6 * 12 * 10)
    choice[:num_colours] = np.arange(num_colours)  # every colour occurs
    frames = colours[rng.permutation(choice).reshape(6, 12, 10)]  # (T, H, W, 3) with num_colours colours
    palette = fit_palette(frames.reshape(-1, 3), num_colours, "kmeans", seed=0)
    assert len(palette) == num_colours
    video = encode_indices(nearest_palette_indices(frames, palette), palette, group_size=4)
    assert video.bits == bit_width(num_colours)
    assert np.array_equal(decode_clip(video, range(6)), frames)


def _random_video(group_size=3, frames=10):
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, size=(16, 3), dtype=np.uint8)
    indices = rng.integers(0, 16, size=(frames, 9, 11), dtype=np.uint8)
    return indices, palette, encode_indices(indices, palette, group_size)


def test_partial_decode_equals_full_decode_sliced():
    indices, palette, video = _random_video()
    full = decode_clip(video, range(10))
    assert np.array_equal(full, palette[indices])
    assert full.dtype == np.uint8 and full.flags.c_contiguous  # ready for torch.from_numpy, no copy
    for frames in ([0], [9], [2, 3, 4], [7, 1, 1, 8]):
        assert np.array_equal(decode_clip(video, frames), full[frames])
        assert np.array_equal(decode_clip(video, frames, crop=(2, 3, 5, 4)), full[frames][:, 2:7, 3:7])


@pytest.mark.parametrize("crop", [(-1, 0, 4, 4), (0, 8, 4, 4), (6, 0, 4, 4), (0, 0, 0, 4)])
def test_a_crop_outside_the_frame_is_a_clear_error(crop):
    _, _, video = _random_video()  # 9 x 11 frames
    for decode in (decode_clip, decode_indices):
        allowed = r"is not allowed; allowed: \(top, left, height, width\) inside the 9x11 frame"
        with pytest.raises(ValueError, match=allowed):
            decode(video, [0], crop=crop)


def test_a_clip_decompresses_only_the_groups_it_needs():
    _, _, video = _random_video(group_size=3)
    full = decode_indices(video, range(10))
    video.groups[0] = b"not zstd data"  # frames 0-2 are unreadable now
    assert np.array_equal(decode_indices(video, [3, 4, 5, 9]), full[[3, 4, 5, 9]])
    with pytest.raises(OSError, match="ZSTD decompression failed"):
        decode_indices(video, [2])
    with pytest.raises(ValueError, match="out of range; allowed: 0 to 9"):
        decode_indices(video, [10])


def test_palette_lookup_equals_fancy_indexing_and_stays_uint8():
    indices, palette, _ = _random_video()
    colours = palette_lookup(indices, palette)
    assert colours.dtype == np.uint8 and colours.shape == (*indices.shape, 3)
    assert np.array_equal(colours, palette[indices])


def test_sizes_are_counted():
    _, palette, video = _random_video(group_size=3)
    assert video.raw_bytes == 10 * 9 * 11 * 3
    assert video.compressed_bytes == 48 + sum(len(g) for g in video.groups)
    assert len(video.groups) == 4  # 3 + 3 + 3 + 1 frames


@pytest.mark.parametrize("palette_size", [2, 4, 16, 100])
@pytest.mark.parametrize("crop", [None, (1, 8, 5, 8), (2, 3, 4, 5)])
def test_every_decode_path_gives_the_palette_colours(palette_size, crop):
    """The packed-byte lookup (aligned crops) and the unpack-then-lookup path agree with plain indexing."""
    rng = np.random.default_rng(palette_size)
    palette = rng.integers(0, 256, size=(palette_size, 3), dtype=np.uint8)
    indices = rng.integers(0, palette_size, size=(7, 6, 16), dtype=np.uint8)
    video = encode_indices(indices, palette, group_size=3)
    top, left, h, w = crop or (0, 0, 6, 16)
    frames = [6, 0, 3, 3]
    assert np.array_equal(decode_clip(video, frames, crop), palette[indices[frames, top : top + h, left : left + w]])


@pytest.mark.parametrize("palette_size", [2, 3, 4, 16, 256])
def test_clips_decode_byte_by_byte_and_pixel_by_pixel_alike(palette_size):
    # 16 x 24 frames: whole-byte rows at 1, 2 and 4 bits (a byte of indices per step) and crops that start or end
    # inside a byte (a pixel per step) give the palette's colours of the indices
    rng = np.random.default_rng(palette_size)
    palette = rng.integers(0, 256, size=(palette_size, 3), dtype=np.uint8)
    indices = rng.integers(0, palette_size, size=(5, 16, 24), dtype=np.uint8)
    video = encode_indices(indices, palette)
    for crop in (None, (3, 8, 9, 16), (0, 8, 16, 8), (1, 1, 7, 16), (2, 8, 5, 13), (0, 0, 16, 23)):
        top, left, h, w = crop or (0, 0, 16, 24)
        clip = decode_clip(video, [4, 0, 2], crop=crop)
        assert clip.flags.c_contiguous
        assert np.array_equal(clip, palette[indices[[4, 0, 2], top : top + h, left : left + w]])
