"""Streamlit helpers of the embeddings page: the model picker (zoo or uploaded weights) and
uploaded tables, with errors shown where the user caused them.

Zoo models come from the shared ``ui.cached_model``, uploaded weights from ``ui.uploaded_model``
under the file's SHA-256: both are shared, never mutated, hooked only under their lock. Cached
computations are keyed on a ``ModelChoice`` (small strings), never on the model object.
"""

from __future__ import annotations

import threading

import numpy as np
import streamlit as st
import torch

import ui
from ui import UPLOAD, ModelChoice, get_model
from vizlib import zoo
from vizlib.data import read_table_upload

__all__ = ["UPLOAD", "ModelChoice", "get_model", "pick_model", "read_table"]


def pick_model(
    prefix: str, device: str, *, where=st
) -> tuple[ModelChoice, torch.nn.Module, dict, threading.Lock] | None:
    """Draw the model selectbox at ``where`` (key ``<prefix>.model``; the last option takes
    uploaded weights for one of the zoo's architectures, its uploader drawn below); return
    (choice, model, meta, lock), or None with the prompt or the reason shown.

    The choice is shared in the URL as ``?model=<name>``, or ``?model=upload``, which opens the
    upload picker (the file itself cannot travel in a link). Back from another page the
    session's last choice comes back (``ui.model_select``), and the layers setting with it.
    """
    return ui.pick_model(
        prefix, zoo.list_models(), device,
        label="Model",
        help="Shipped checkpoints trained on the bundled digits, torchvision architectures "
        "(ImageNet weights when they are in the torch hub cache), or your own weights.",
        prompt="Upload a state_dict to see how your own model's layers separate the classes.",
        upload_architectures=zoo.upload_architectures(),
        where=where,
    )  # fmt: skip


def read_table(upload, what: str) -> np.ndarray | None:
    """Return the uploaded .npy/.csv as a 2-D float array, or None after showing an error."""
    try:
        return read_table_upload(upload.getvalue(), upload.name)
    except ValueError as err:
        st.error(f"{what}: {err}")
        return None
