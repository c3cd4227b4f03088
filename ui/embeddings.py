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
    upload picker (the file itself cannot travel in a link).
    """
    names = zoo.list_models()
    linked_upload = st.query_params.get("model") == "upload"
    name = where.selectbox(
        "Model",
        [*names, UPLOAD],
        index=len(names) if linked_upload else ui.linked_index("model", names),
        key=f"{prefix}.model",
        help="Shipped checkpoints trained on the bundled digits, torchvision architectures "
        "(ImageNet weights when they are in the torch hub cache), or your own weights.",
    )
    # the link names what is shown: a zoo model, or "upload" (never the last zoo model picked)
    st.query_params["model"] = "upload" if name == UPLOAD else name
    if name == UPLOAD:
        picked = ui.upload_picker(
            prefix, zoo.upload_architectures(), device,
            prompt="Upload a state_dict to see how your own model's layers separate the classes.",
        )  # fmt: skip
        if picked is None:
            return None
        architecture, digest, model, meta, lock = picked
        return ModelChoice(f"upload:{digest}", architecture, device), model, meta, lock
    loaded = ui.load_shared_model(name, device)
    if loaded is None:
        return None
    return ModelChoice(name, name, device), *loaded


def read_table(upload, what: str) -> np.ndarray | None:
    """Return the uploaded .npy/.csv as a 2-D float array, or None after showing an error."""
    try:
        return read_table_upload(upload.getvalue(), upload.name)
    except ValueError as err:
        st.error(f"{what}: {err}")
        return None
