"""Streamlit glue for the ViT pages: pick a ViT (zoo or upload), load matching images.

Models come from the shared ``ui.cached_model`` (never mutated; hooks only under its lock) or,
for uploaded weights, from a small ``st.cache_resource`` keyed on the file's SHA-256. Uploaded
images are decoded once per (file SHA-256, model input) by ``prepared_upload``; the image set
they form (``UploadedImages``) holds only their digests and names, so it can key caches.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

import ui
from ui import ModelChoice, get_model
from vizlib import zoo
from vizlib.data import (
    available_datasets,
    denormalize,
    load_dataset_for_model,
    load_sample_image,
    prepare_image,
    read_image_upload,
    sample_image_names,
    samples,
)

__all__ = [
    "MAX_UPLOADED_IMAGES",
    "PATCH_NUMBERING",
    "UPLOAD_IMAGES",
    "ImageSource",
    "ModelChoice",
    "UploadedImages",
    "get_model",
    "image_sources",
    "load_images",
    "pick_images",
    "pick_vit",
    "prepared_upload",
    "vit_model_names",
]

# how both ViT pages name a patch, in their captions, titles and hovers (as the arrays index it)
PATCH_NUMBERING = "patch (row r, column c), counted from 0 at the top left"


def vit_model_names() -> list[str]:
    """Return the zoo names whose family is "vit" (read from metadata, no weights loaded)."""
    return zoo.list_models(family="vit")


def pick_vit(prefix: str) -> tuple[ModelChoice, torch.nn.Module, dict, threading.Lock] | None:
    """Draw the model picker; return (choice, model, meta, lock), or None with a message shown."""
    names = vit_model_names()
    return ui.pick_model(
        prefix, names, str(ui.current_device()),
        label="Vision Transformer",
        help="Models from the zoo whose family is ViT, or your own weights for one of them.",
        prompt="Upload a state dict to inspect your own ViT.",
        upload_architectures=names,
        reason="not a Vision Transformer here",
    )  # fmt: skip


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
    status = available_datasets()
    for name, state in status.items():
        if _ON_DISK_CHANNELS.get(name) == channels and state.startswith("on disk"):
            sources.append(f"{name} (test split, on disk)")
    return [*sources, *ui.image_folders(status)]


@dataclass(frozen=True)
class UploadedImages:
    """Uploaded images as an image source: each file's SHA-256 (hex) and name, in upload order.

    Small and hashable, so cached computations are keyed on it; the pixels come from
    ``prepared_upload``'s cache under the same digests.
    """

    digests: tuple[str, ...]
    names: tuple[str, ...]


ImageSource = str | UploadedImages
UPLOAD_IMAGES = "Upload images…"
MAX_UPLOADED_IMAGES = 32  # one upload's images kept prepared: 19 MB at 3x224x224 float32


@st.cache_data(max_entries=4 * MAX_UPLOADED_IMAGES, show_spinner="Reading the image…")
def prepared_upload(
    digest: str,
    input_size: tuple[int, int, int],
    mean: tuple,
    std: tuple,
    _data: bytes | None,
) -> tuple[torch.Tensor | None, str | None]:
    """Return (image (1, C, H, W) prepared for the model, None), or (None, why it is refused).

    Keyed on the file's SHA-256 ``digest`` and the model's input, never on the bytes or a
    tensor: a rerun does not decode the file again, and a refusal is remembered as well. The file is read
    by ``vizlib.data.read_image_upload`` (decompression-bomb guard, EXIF rotation, transparency
    on white) and converted, resized and normalised by ``prepare_image``, as the other sources
    are. ``_data`` (not part of the key) None: only an already prepared image is returned, else
    ``ValueError``.
    """
    if _data is None:
        raise ValueError("The uploaded images are no longer cached; upload them again.")
    meta = ui.preparation_meta(input_size, mean, std)
    try:
        pixels = read_image_upload(_data)  # (H, W) or (H, W, 3) in [0, 1]
        return prepare_image(pixels, meta), None  # refuses images under 2×2 in words
    except ValueError as err:
        return None, str(err)


def upload_note(input_size: tuple[int, int, int]) -> str:
    """Return the sentence saying how uploaded images reach a model of ``input_size`` (C, H, W)."""
    return (
        ui.preparation_note(input_size, "Uploaded images are")
        + " EXIF rotation is applied and transparent areas count as white."
    )


def _pick_uploads(prefix: str, meta: dict) -> UploadedImages | None:
    """Draw the images uploader (key ``<prefix>.upload_images``); return the usable files, each
    refused one named in an ``st.error``, or None with the reason shown."""
    files = st.file_uploader(
        "Images (PNG or JPEG)",
        type=["png", "jpg", "jpeg"],  # what read_image_upload accepts
        accept_multiple_files=True,
        key=f"{prefix}.upload_images",
        max_upload_size=ui.IMAGE_UPLOAD_MB,
        help=f"One or several of your own images, at most {MAX_UPLOADED_IMAGES}: a photo, a "
        f"slide's figure. Each at most {samples.MAX_UPLOAD_BYTES // 2**20} MiB and "
        f"{samples.MAX_UPLOAD_PIXELS:,} pixels; captions give their file names.",
    )
    if not files:
        st.info("Upload one or more PNG or JPEG images to see where the model looks.")
        return None
    if len(files) > MAX_UPLOADED_IMAGES:
        st.warning(
            f"{len(files)} files uploaded; the first {MAX_UPLOADED_IMAGES} are used "
            f"(from {files[0].name!r} to {files[MAX_UPLOADED_IMAGES - 1].name!r})."
        )
        files = files[:MAX_UPLOADED_IMAGES]
    key = ui.preparation_key(meta)
    digests, names = [], []
    for file in files:
        data = file.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        _, refused = prepared_upload(digest, *key, data)
        if refused is None:
            digests.append(digest)
            names.append(file.name)
        else:
            st.error(f"Could not use {file.name!r}: {refused}")
    if not digests:
        st.info("None of the uploaded files could be used; upload PNG or JPEG images.")
        return None
    st.caption(upload_note(key[0]))
    return UploadedImages(tuple(digests), tuple(names))


def pick_images(prefix: str, meta: dict) -> ImageSource | None:
    """Draw the image-set picker (key ``<prefix>.source``): ``image_sources``, "Other image
    folder…" with its path input and "Upload images…" with its uploader; return the source for
    ``load_images``, or None with the reason shown."""
    choice = st.selectbox(
        "Images",
        [*image_sources(meta), *ui.typed_folder_options(), UPLOAD_IMAGES],
        format_func=ui.dataset_label,
        key=f"{prefix}.source",
        help="Images available offline: sample photos or digits, test splits of the datasets "
        "under VIZLIB_DATA, image folders there, any image folder by its path, or your own "
        "PNG/JPEG images.",
    )
    if choice == UPLOAD_IMAGES:
        return _pick_uploads(prefix, meta)
    source = ui.image_folder_choice(choice, prefix)
    if source is not None and source.startswith("imagefolder:"):
        note = ui.folder_subset_note(source, tuple(meta["input_size"]), most=_MAX_DATASET_IMAGES)
        if note is None:
            return None
        st.caption(f"{note} Captions give each image's class (its sub-folder) and folder index.")
    return source


@st.cache_data(max_entries=8, show_spinner="Loading images…")
def load_images(
    source: ImageSource,
    input_size: tuple[int, int, int],
    mean: tuple,
    std: tuple,
    n: int | None = None,
) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """Return (images (N, C, H, W) normalised with the model's mean/std, display images
    (N, C, H, W) in [0, 1], captions). ``n`` keeps the first n.

    An image folder (``imagefolder:<path>``) gives ``ui.folder_subset``'s random subset (only
    those files are read), converted to the model's channels; uploaded images
    (``UploadedImages``) come from ``prepared_upload``, captioned with their file names; the
    others are their first 1,024.
    """
    if n is not None:  # the first n of the whole set, itself cached: no file is read twice
        images, display, captions = load_images(source, input_size, mean, std)
        return images[:n].contiguous(), display[:n], captions[:n]
    meta = ui.preparation_meta(input_size, mean, std)
    if isinstance(source, UploadedImages):
        prepared = [prepared_upload(d, input_size, mean, std, None) for d in source.digests]
        if any(image is None for image, _ in prepared):  # pick_images keeps only good files
            raise ValueError("An uploaded image could not be read; upload the images again.")
        images = torch.cat([image for image, _ in prepared])  # (N, C, H, W)
        captions = list(source.names)
    elif source == _SAMPLES:
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
