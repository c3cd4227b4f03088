"""Streamlit helpers shared by the Filters & Feature Maps and Attributions pages: the model picker
(zoo or uploaded weights), the input picker (dataset sample, sample image, upload) and cached
dataset loading.

Zoo models come from the shared ``ui.cached_model``; uploaded weights from a small
``st.cache_resource`` keyed on the file's SHA-256. Both are shared: never mutated, hooks only
under their lock. Cached computations take the ``LoadedModel`` as an unhashed argument, keyed
on its ``name`` and ``device``.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

import ui
from vizlib import zoo
from vizlib.data import (
    denormalize,
    load_dataset,
    load_sample_image,
    prepare_image,
    read_image_upload,
    sample_image_names,
)

__all__ = [
    "ChosenInput",
    "LoadedModel",
    "dataset_for",
    "input_picker",
    "model_picker",
]

SOURCES = ("Dataset sample", "Sample image", "Upload an image")
UPLOAD = "Upload weights…"
UPLOAD_PREFIX = "upload:"


@dataclass
class LoadedModel:
    name: str  # a zoo name, or "upload:<architecture>:<sha256>" for uploaded weights
    model: torch.nn.Module
    meta: dict
    lock: threading.Lock
    device: str

    @property
    def stem(self) -> str:
        """A file-name-safe label for downloads (``upload_<architecture>`` for uploads)."""
        if self.name.startswith(UPLOAD_PREFIX):
            return "upload_" + self.name.split(":")[1]
        return self.name


@dataclass
class ChosenInput:
    tensor: torch.Tensor  # (1, C, H, W), normalised as the model expects
    display: np.ndarray  # (H, W, 3) in [0, 1]
    label: str  # what it is, for captions
    key: tuple  # small hashable description, for st.cache_data keys
    upload: bytes | None = None


def _upload_picker(prefix: str, device: str) -> LoadedModel | None:
    picked = ui.upload_picker(
        prefix, zoo.upload_architectures(), device,
        prompt="Upload a state_dict to look inside your own model, or pick a shipped one.",
    )  # fmt: skip
    if picked is None:
        return None
    architecture, digest, model, meta, lock = picked
    return LoadedModel(f"{UPLOAD_PREFIX}{architecture}:{digest}", model, meta, lock, device)


def model_picker(prefix: str, *, label: str = "Model") -> LoadedModel | None:
    """Draw the model selectbox (its choice shared in the URL as ``?model=``) and load the model.

    The last option takes uploaded weights for one of the zoo's architectures (``?model=upload``).
    """
    names = zoo.list_models()
    options = [*names, UPLOAD]
    linked = st.query_params.get("model")
    name = st.selectbox(
        label,
        options,
        index=len(names)
        if linked == "upload"
        else ui.linked_index("model", names, accepted=("upload",)),
        key=f"{prefix}.model",
        help="Shipped checkpoints trained on the bundled digits, torchvision architectures "
        "(ImageNet weights when they are in the torch hub cache), or your own weights.",
    )
    device = str(ui.current_device())
    if name == UPLOAD:
        st.query_params["model"] = "upload"
        return _upload_picker(prefix, device)
    st.query_params["model"] = name
    loaded = ui.load_shared_model(name, device)
    if loaded is None:
        return None
    return LoadedModel(name, *loaded, device)


@st.cache_data(max_entries=4, show_spinner="Loading the dataset…")
def dataset_for(
    dataset: str, input_size: tuple[int, int], split: str = "test"
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Return (images (N, C, H, W) normalised, labels (N,), class names) of a dataset at a size."""
    return load_dataset(dataset, split, input_size=input_size)


def _display(x: torch.Tensor, meta: dict) -> np.ndarray:
    img = denormalize(x[0], meta["mean"], meta["std"])  # (C, H, W) in [0, 1]
    img = img.permute(1, 2, 0).numpy()  # (H, W, C)
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def input_picker(prefix: str, meta: dict) -> ChosenInput | None:
    """Draw the input controls and return the chosen input prepared for the model, or None."""
    size = tuple(int(v) for v in meta["input_size"][1:])
    try:
        images, labels, classes = dataset_for(meta["dataset"], size)
        sources = SOURCES
    except ValueError as err:  # e.g. ImageNet, never on disk: offer only what works
        sources = SOURCES[1:]
        st.caption(f"No {meta['dataset']} test images to pick from: {err}")
    source = st.radio("Input", sources, key=f"{prefix}.source", horizontal=True)
    if source == "Dataset sample":
        index = st.number_input(
            f"Test image index (0–{len(images) - 1})",
            min_value=0,
            max_value=len(images) - 1,
            value=0,
            step=1,
            key=f"{prefix}.index",
        )
        x = images[int(index)][None]  # (1, C, H, W)
        label = f"{meta['dataset']} test image {int(index)} (true class {classes[int(labels[int(index)])]})"
        return ChosenInput(x, _display(x, meta), label, ("dataset", meta["dataset"], int(index)))
    if source == "Sample image":
        name = st.selectbox("Sample image", sample_image_names(), key=f"{prefix}.sample")
        x = prepare_image(load_sample_image(name), meta)
        return ChosenInput(x, _display(x, meta), f"sample image {name!r}", ("sample", name))
    upload = st.file_uploader(
        "Image (PNG or JPEG)",
        type=["png", "jpg", "jpeg"],  # what read_image_upload accepts
        key=f"{prefix}.upload",
    )
    if upload is None:
        st.info("Upload an image to explain it.")
        return None
    data = upload.getvalue()
    try:
        x = prepare_image(read_image_upload(data), meta)
    except ValueError as err:
        st.error(f"Could not use {upload.name!r}: {err}")
        return None
    digest = hashlib.sha256(data).hexdigest()[:16]
    return ChosenInput(x, _display(x, meta), f"upload {upload.name!r}", ("upload", digest), data)
