"""Streamlit glue for the ViT pages: pick a ViT (zoo or upload), load matching images.

Models come from the shared ``ui.cached_model`` (never mutated; hooks only under its lock) or,
for uploaded weights, from a small ``st.cache_resource`` keyed on the file's SHA-256.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

import ui
from vizlib import zoo
from vizlib.data import (
    available_datasets,
    denormalize,
    load_dataset_for_model,
    load_sample_image,
    prepare_image,
    sample_image_names,
)

__all__ = [
    "ModelChoice",
    "get_model",
    "image_sources",
    "load_images",
    "pick_images",
    "pick_vit",
    "vit_model_names",
]

UPLOAD = "Upload weights…"


@dataclass(frozen=True)
class ModelChoice:
    """A hashable handle on the chosen model: ``key`` is a zoo name or "upload:<sha256>"."""

    key: str
    architecture: str
    device: str


def vit_model_names() -> list[str]:
    """Return the zoo names whose family is "vit" (read from metadata, no weights loaded)."""
    return zoo.list_models(family="vit")


def get_model(choice: ModelChoice) -> tuple[torch.nn.Module, dict, threading.Lock]:
    """Return (shared model, meta, lock) for a choice made by ``pick_vit``."""
    if choice.key.startswith("upload:"):
        return ui.uploaded_model(choice.key[7:], choice.architecture, choice.device, None)
    return ui.cached_model(choice.key, choice.device)


def pick_vit(prefix: str) -> tuple[ModelChoice, torch.nn.Module, dict, threading.Lock] | None:
    """Draw the model picker; return (choice, model, meta, lock), or None with a message shown."""
    names = vit_model_names()
    device = str(ui.current_device())
    options = [*names, UPLOAD]
    name = st.selectbox(
        "Vision Transformer",
        options,
        index=ui.linked_index("model", options, reason="not a Vision Transformer here"),
        key=f"{prefix}.model",
        help="Models from the zoo whose family is ViT, or your own weights for one of them.",
    )
    if name != UPLOAD:
        st.query_params["model"] = name
    if name == UPLOAD:
        picked = ui.upload_picker(
            prefix, names, device, prompt="Upload a state dict to inspect your own ViT."
        )
        if picked is None:
            return None
        arch, digest, model, meta, lock = picked
        choice = ModelChoice(f"upload:{digest}", arch, device)
        return choice, model, meta, lock
    loaded = ui.load_shared_model(name, device)
    if loaded is None:
        return None
    return ModelChoice(name, name, device), *loaded


_ON_DISK_CHANNELS = {"mnist": 1, "fashion_mnist": 1, "cifar10": 3}
_SAMPLES = "scikit-image sample photos"
_DIGITS = "digits (test split)"
_MAX_DATASET_IMAGES = 1024


def image_sources(meta: dict) -> list[str]:
    """Return the image sets available offline for a model.

    Its own dataset (digits) or scikit-image's sample photos, plus test splits of the datasets
    already on disk under ``VIZLIB_DATA`` that have the model's number of channels, and the
    image folders found there (``imagefolder:<path>``; converted to the model's channels).
    """
    channels = int(meta["input_size"][0])
    sources = [_DIGITS] if meta.get("dataset") == "digits" else [_SAMPLES]
    folders = []
    for name, status in available_datasets().items():
        if _ON_DISK_CHANNELS.get(name) == channels and status.startswith("on disk"):
            sources.append(f"{name} (test split, on disk)")
        elif name.startswith("imagefolder:") and status.startswith("on disk"):
            folders.append(name)
    return [*sources, *folders]


def pick_images(prefix: str, meta: dict) -> str | None:
    """Draw the image-set picker (key ``<prefix>.source``): ``image_sources`` plus "Other image
    folder…" with its path input; return the source for ``load_images``, or None with the
    reason shown."""
    choice = st.selectbox(
        "Images",
        [*image_sources(meta), ui.OTHER_IMAGE_FOLDER],
        format_func=ui.dataset_label,
        key=f"{prefix}.source",
        help="Images available offline: sample photos or digits, test splits of the datasets "
        "under VIZLIB_DATA, image folders there, or any image folder by its path.",
    )
    source = ui.image_folder_choice(choice, prefix)
    if source is not None and source.startswith("imagefolder:"):
        note = ui.folder_subset_note(source, tuple(meta["input_size"]), most=_MAX_DATASET_IMAGES)
        if note is None:
            return None
        st.caption(f"{note} Captions give each image's class (its sub-folder) and folder index.")
    return source


@st.cache_data(max_entries=8, show_spinner="Loading images…")
def load_images(
    source: str, input_size: tuple[int, int, int], mean: tuple, std: tuple, n: int | None = None
) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """Return (images (N, C, H, W) normalised with the model's mean/std, display images
    (N, C, H, W) in [0, 1], captions). ``n`` keeps the first n.

    An image folder (``imagefolder:<path>``) gives ``ui.folder_subset``'s random subset (only
    those files are read), converted to the model's channels; the others their first 1,024.
    """
    if n is not None:  # the first n of the whole set, itself cached: no file is read twice
        images, display, captions = load_images(source, input_size, mean, std)
        return images[:n].contiguous(), display[:n], captions[:n]
    meta = {"input_size": list(input_size), "mean": list(mean), "std": list(std)}
    if source == _SAMPLES:
        captions = sample_image_names()
        images = torch.cat([prepare_image(load_sample_image(s), meta) for s in captions])
    elif source.startswith("imagefolder:"):
        pick, _ = ui.folder_subset(source, input_size, most=_MAX_DATASET_IMAGES)
        images, labels, classes = load_dataset_for_model(source, meta, indices=pick)
        captions = [f"{classes[int(y)]} #{i}" for y, i in zip(labels, pick, strict=True)]
    else:
        name = "digits" if source == _DIGITS else source.split(" ", 1)[0]
        images, labels, classes = load_dataset_for_model(
            name, meta, split="test", max_samples=_MAX_DATASET_IMAGES
        )
        captions = [f"{name} {classes[int(y)]}" for y in labels]
    display = denormalize(images, list(mean), list(std))  # (N, C, H, W) in [0, 1]
    return images.contiguous(), display.numpy(), captions
