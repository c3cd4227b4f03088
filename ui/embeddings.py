"""Streamlit helpers of the embeddings page: reading uploaded tables with clear errors."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import streamlit as st

__all__ = ["MAX_UPLOAD_MB", "read_table"]

MAX_UPLOAD_MB = 200


def read_table(upload, what: str) -> np.ndarray | None:
    """Return the uploaded .npy/.csv as a 2-D float array, or None after showing an error."""
    if upload.size > MAX_UPLOAD_MB * 2**20:
        st.error(f"{what}: the file is larger than {MAX_UPLOAD_MB} MB.")
        return None
    data = upload.getvalue()
    try:
        if upload.name.lower().endswith(".npy"):
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            arr = pd.read_csv(io.BytesIO(data), header=None).to_numpy()
            if arr.size and not np.issubdtype(arr.dtype, np.number):  # a header row
                arr = pd.read_csv(io.BytesIO(data)).to_numpy()
        arr = np.asarray(arr, dtype=np.float64)
    except (ValueError, TypeError, OSError, EOFError) as err:  # EOFError: empty/truncated .npy
        st.error(f"{what}: could not read {upload.name!r} as numbers ({err}).")
        return None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 1:
        st.error(f"{what}: expected a 2-D table (rows = points), got shape {arr.shape}.")
        return None
    if not np.isfinite(arr).all():
        st.error(f"{what}: contains NaN or infinite values.")
        return None
    return arr
