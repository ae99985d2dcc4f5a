import numpy as np
import pytest

from vidrop.compression import (
    CLUSTERERS,
    assign_to_palette,
    fit_palette,
    nearest_palette_indices,
    palette_lookup,
    psnr_db,
    psnr_from_mse,
)
from vidrop.compression.clusterers import FIT_SAMPLES, sample_pixels
from vidrop.data.video import read_video


@pytest.fixture(scope="module")
def real_frames(synthetic_videos):
    """Frames decoded with PyAV from one of the synthetic mp4 files."""
    return read_video(next(synthetic_videos.glob("rotate_cw/*.mp4"))).frames


@pytest.mark.parametrize("method", CLUSTERERS)
def test_every_clusterer_gives_a_usable_palette_on_a_real_video(real_frames, method):
    palette = fit_palette(real_frames.reshape(-1, 3), 16, method, seed=0)
    assert palette.dtype == np.uint8 and palette.ndim == 2 and palette.shape[1] == 3
    assert 1 <= len(palette) <= (256 if method == "dbscan" else 16)
    assert len(np.unique(palette, axis=0)) == len(palette)
    reconstruction = palette_lookup(nearest_palette_indices(real_frames, palette), palette)
    # a single mean colour scores about 10 dB on these frames; a real palette far more
    assert psnr_db(real_frames, reconstruction) > (14 if method == "dbscan" else 20)


def test_fitting_is_seeded(real_frames):
    a = fit_palette(real_frames.reshape(-1, 3), 16, "kmeans", seed=3)
    assert np.array_equal(a, fit_palette(real_frames.reshape(-1, 3), 16, "kmeans", seed=3))


@pytest.mark.parametrize("value", [1, 257, 0, 2.5, True, "16"])
def test_num_clusters_must_be_2_to_256(value):
    with pytest.raises(ValueError, match=r"num_clusters=.* is not allowed; allowed: an integer from 2 to 256"):
        fit_palette(np.zeros((10, 3), np.uint8), value)


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="method='median_cut' is not a clusterer; allowed: kmeans"):
        fit_palette(np.zeros((10, 3), np.uint8), 16, "median_cut")


def test_fit_sample_is_bounded_whatever_the_video_length():
    rng = np.random.default_rng(0)
    long_video = rng.integers(0, 256, size=(2_000_000, 3), dtype=np.uint8)
    assert len(sample_pixels(long_video, FIT_SAMPLES["agglomerative"], rng)) == FIT_SAMPLES["agglomerative"]
    palette = fit_palette(long_video, 8, "agglomerative", seed=0)  # Ward on 2M pixels would need terabytes
    assert len(palette) == 8


@pytest.mark.parametrize("palette_size", [1, 2, 16, 37, 256])
def test_nearest_assignment_equals_brute_force(palette_size):
    rng = np.random.default_rng(palette_size)
    frames = rng.integers(0, 256, size=(3, 17, 19, 3), dtype=np.uint8)
    palette = rng.integers(0, 256, size=(palette_size, 3), dtype=np.uint8)
    if palette_size > 2:
        palette[2] = palette[1]  # a repeated colour: the tie goes to the lower index
    distances = ((frames[..., None, :].astype(int) - palette.astype(int)) ** 2).sum(-1)  # (3, 17, 19, P)
    indices, squared_error = assign_to_palette(frames, palette)
    assert indices.dtype == np.uint8 and indices.shape == (3, 17, 19)
    assert np.array_equal(indices, distances.argmin(-1))
    assert squared_error == distances.min(-1).sum()


def test_nearest_assignment_is_exact_for_every_colour_of_whole_slabs():
    """Colours the cell table answers and colours it hands to the exact search alike: all 65 536 colours of 16
    red levels (a tenth of the cells straddle a boundary) get their nearest palette colour."""
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, size=(16, 3), dtype=np.uint8)
    reds = rng.choice(256, size=16, replace=False).astype(np.uint8)
    grid = np.meshgrid(reds, np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    colours = np.stack(grid, axis=-1)  # (16, 256, 256, 3)
    indices, squared_error = assign_to_palette(colours, palette)
    distances = ((colours.reshape(-1, 1, 3).astype(np.int32) - palette.astype(np.int32)) ** 2).sum(-1)  # (N, 16)
    assert np.array_equal(indices.reshape(-1), distances.argmin(-1))
    assert squared_error == distances.min(-1).sum()


def test_dbscan_palette_size_is_what_it_finds():
    rng = np.random.default_rng(0)
    centres = np.array([[10, 10, 10], [200, 30, 30], [30, 200, 30]])
    pixels = np.clip(centres[rng.integers(0, 3, 3000)] + rng.normal(0, 1.0, (3000, 3)), 0, 255).astype(np.uint8)
    palette = fit_palette(pixels, 16, "dbscan", seed=0)
    assert len(palette) == 3
    assert np.abs(np.sort(palette.astype(int), axis=0) - np.sort(centres, axis=0)).max() <= 2


def test_assignment_error_gives_the_reconstruction_psnr(real_frames):
    palette = fit_palette(real_frames.reshape(-1, 3), 8, "kmeans", seed=0)
    indices, squared_error = assign_to_palette(real_frames, palette)
    assert psnr_from_mse(squared_error / real_frames.size) == pytest.approx(
        psnr_db(real_frames, palette_lookup(indices, palette)), rel=1e-6
    )
