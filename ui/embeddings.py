"""Streamlit helpers of the embeddings page: uploaded tables, with errors shown at the uploader."""

from __future__ import annotations

import numpy as np
import streamlit as st

from vizlib.data import read_table_upload

__all__ = ["read_table"]


def read_table(upload, what: str) -> np.ndarray | None:
    """Return the uploaded .npy/.csv as a 2-D float array, or None after showing an error."""
    try:
        return read_table_upload(upload.getvalue(), upload.name)
    except ValueError as err:
        st.error(f"{what}: {err}")
        return None
