"""Cluster compression of videos: clusterers pick a palette, the codec stores bit-packed indices."""

from .clusterers import CLUSTERERS, fit_palette, nearest_palette_indices, sample_pixels
from .codec import EncodedVideo, bit_width, decode_clip, decode_indices, encode_indices, palette_lookup
from .stats import VideoStats, compression_factor, dataset_totals, psnr_db

__all__ = [
    "CLUSTERERS",
    "EncodedVideo",
    "VideoStats",
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
    "sample_pixels",
]
