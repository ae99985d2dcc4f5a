"""Cluster compression of videos: clusterers pick a palette, the codec stores bit-packed indices."""

from .clusterers import CLUSTERERS, assign_to_palette, fit_palette, nearest_palette_indices, sample_pixels
from .codec import EncodedVideo, bit_width, decode_clip, decode_indices, encode_indices, palette_lookup
from .stats import VideoStats, compression_factor, dataset_totals, psnr_db, psnr_from_mse

__all__ = [
    "CLUSTERERS",
    "EncodedVideo",
    "VideoStats",
    "assign_to_palette",
    "bit_width",
    "compression_factor",
    "dataset_totals",
    "decode_clip",
    "decode_indices",
    "encode_indices",
    "fit_palette",
    "nearest_palette_indices",
    "palette_lookup",
    "psnr_db",
    "psnr_from_mse",
    "sample_pixels",
]
