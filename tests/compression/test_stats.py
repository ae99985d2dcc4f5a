import math

import numpy as np
import pytest

from vidrop.compression import VideoStats, compression_factor, dataset_totals, psnr_db


def test_psnr_arithmetic():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    assert psnr_db(a, b) == math.inf
    b[...] = 5  # MSE 25
    assert psnr_db(a, b) == pytest.approx(10 * math.log10(255**2 / 25))
    b[0, 0, 0] = 255  # uint8 arithmetic must not wrap
    mse = (255**2 + 47 * 25) / 48
    assert psnr_db(a, b) == pytest.approx(10 * math.log10(255**2 / mse))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_db(a, b[:2])


def test_factor_and_totals_arithmetic():
    assert compression_factor(3000, 100) == 30
    videos = [
        VideoStats(raw_bytes=3000, compressed_bytes=100, source_bytes=500, psnr_db=30.0, frames=10,
                   encode_seconds=1.0, palette_size=16),
        VideoStats(raw_bytes=1000, compressed_bytes=100, source_bytes=200, psnr_db=20.0, frames=5,
                   encode_seconds=0.5, palette_size=8),
    ]
    assert videos[0].compression_factor == 30 and videos[0].to_dict()["compression_factor"] == 30
    totals = dataset_totals(videos)
    assert totals == {
        "videos": 2,
        "frames": 15,
        "raw_bytes": 4000,
        "compressed_bytes": 200,
        "source_bytes": 700,
        "compression_factor": 20.0,
        "psnr_db": 25.0,
        "encode_seconds": 1.5,
    }
