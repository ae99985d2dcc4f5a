"""Compression statistics of one video and of a dataset."""

from dataclasses import asdict, dataclass

import numpy as np


def psnr_from_mse(mse):
    """PSNR in dB of 8-bit data with mean squared error `mse` (inf when 0)."""
    return float("inf") if mse <= 0 else float(10.0 * np.log10(255.0**2 / mse))


def psnr_db(original, reconstruction):
    """Peak signal-to-noise ratio in dB of two uint8 arrays of the same shape (inf when identical)."""
    if original.shape != reconstruction.shape:
        raise ValueError(f"shapes differ: {original.shape} and {reconstruction.shape}")
    return psnr_from_mse(np.mean((original.astype(np.float64) - reconstruction.astype(np.float64)) ** 2))


def compression_factor(raw_bytes, compressed_bytes):
    """Raw RGB bytes over stored bytes."""
    return raw_bytes / compressed_bytes if compressed_bytes else float("inf")


@dataclass
class VideoStats:
    """What compressing one video cost and gave."""

    raw_bytes: int
    compressed_bytes: int
    source_bytes: int
    psnr_db: float
    frames: int
    encode_seconds: float
    palette_size: int

    @property
    def compression_factor(self):
        return compression_factor(self.raw_bytes, self.compressed_bytes)

    def to_dict(self):
        return {**asdict(self), "compression_factor": self.compression_factor}


def dataset_totals(videos):
    """Totals over `VideoStats` of a dataset: bytes, frames and seconds summed, PSNR averaged over videos."""
    raw = sum(v.raw_bytes for v in videos)
    compressed = sum(v.compressed_bytes for v in videos)
    finite_psnr = [v.psnr_db for v in videos if np.isfinite(v.psnr_db)]
    return {
        "videos": len(videos),
        "frames": sum(v.frames for v in videos),
        "raw_bytes": raw,
        "compressed_bytes": compressed,
        "source_bytes": sum(v.source_bytes for v in videos),
        "compression_factor": compression_factor(raw, compressed),
        "psnr_db": float(np.mean(finite_psnr)) if finite_psnr else float("inf") if videos else float("nan"),
        "encode_seconds": sum(v.encode_seconds for v in videos),
    }
