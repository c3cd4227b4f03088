"""Computed arrays as files to download (PNG, NPY), for every page's download buttons."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["to_npy_bytes", "to_png_bytes"]


def to_png_bytes(values: np.ndarray, *, channels_last: bool = False) -> bytes:
    """Return a PNG of an array, min-max scaled to 8-bit grey (one channel) or RGB (three).

    values (H, W), or (C, H, W) with C = 1 or 3: torch's layout, as ``vizlib.conv`` returns
    images; ``channels_last=True`` for (H, W, C). The layout is never guessed from the shape:
    an output 3 pixels wide, (3, H, 3), is as valid as one 3 pixels high, (3, 3, W).
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 3:
        if not channels_last:
            arr = np.moveaxis(arr, 0, -1)  # (C, H, W) -> (H, W, C)
        if arr.shape[-1] not in (1, 3):
            layout = "(H, W, C)" if channels_last else "(C, H, W)"
            raise ValueError(
                f"A PNG holds 1 (grey) or 3 (RGB) channels; the {layout} array of shape "
                f"{np.shape(values)} has {arr.shape[-1]}."
            )
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
    elif arr.ndim != 2:
        raise ValueError(f"A PNG needs an (H, W) or 3-D array; got shape {np.shape(values)}.")
    if arr.size == 0:
        raise ValueError(f"A PNG needs at least one pixel; got shape {np.shape(values)}.")
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
