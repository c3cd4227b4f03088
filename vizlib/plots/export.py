"""Computed arrays as files to download (PNG, NPY), for every page's download buttons."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["to_npy_bytes", "to_png_bytes"]


def to_png_bytes(values: np.ndarray) -> bytes:
    """Return a PNG of an (H, W) or (C, H, W) / (H, W, 3) array, min-max scaled to 8-bit grey / RGB."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.moveaxis(arr, 0, -1)  # (C, H, W) -> (H, W, C)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    lo, hi = float(arr.min()), float(arr.max())
    scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    buffer = io.BytesIO()
    Image.fromarray(np.round(scaled * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def to_npy_bytes(values, *, dtype: np.dtype | type | None = None) -> bytes:
    """Return the array (numpy or CPU tensor) saved in .npy format, never pickled.

    ``dtype`` converts it first; None keeps its own.
    """
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(values, dtype=dtype), allow_pickle=False)
    return buffer.getvalue()
