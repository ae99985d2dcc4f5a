"""Data pipeline: views in, batches with token plans out."""

from .collate import SSLCollator

__all__ = ["SSLCollator"]
