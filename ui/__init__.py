"""Streamlit glue shared by the pages: the device picker and the shared model cache.

Computation stays in ``vizlib``; this package only holds what needs Streamlit.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass

import streamlit as st
import torch

import vizlib

DEVICE_KEY = "app.device"

__all__ = [
    "DEVICE_KEY",
    "UPLOAD",
    "ModelChoice",
    "cached_model",
    "current_device",
    "file_stem",
    "get_model",
    "linked_index",
    "load_shared_model",
    "model_select",
    "pick_model",
    "remember_last",
    "restore_last",
    "sidebar_device",
]


def sidebar_device() -> torch.device:
    """Draw the compute-device picker in the sidebar and return the chosen device."""
    options = vizlib.available_devices()
    try:
        default = str(vizlib.default_device())
    except ValueError as err:  # VIZLIB_DEVICE names a device this machine lacks
        st.sidebar.warning(f"{err} Using the CPU instead.")
        default = "cpu"
    if default == "cuda":
        default = "cuda:0"
    index = options.index(default) if default in options else len(options) - 1
    choice = st.sidebar.selectbox(
        "Compute device",
        options,
        index=index,
        key=DEVICE_KEY,
        help="Where vizlib runs its tensor work. Defaults to the GPU when one is present; "
        "the environment variable VIZLIB_DEVICE sets the default.",
    )
    st.sidebar.caption(f"Running on **{vizlib.describe_device(choice)}**")
    return torch.device(choice)


def current_device() -> torch.device:
    """Return the device picked in the sidebar, or vizlib's default when no picker ran."""
    choice = st.session_state.get(DEVICE_KEY)
    if choice:
        return torch.device(choice)
    try:
        return vizlib.default_device()
    except ValueError:
        return torch.device("cpu")


@st.cache_resource(max_entries=6, show_spinner="Loading model…")
def cached_model(name: str, device: str) -> tuple[torch.nn.Module, dict, threading.Lock]:
    """Return (model in eval mode, metadata, lock) shared by every session; never mutate it.

    Take the lock around anything that registers hooks on the shared model.
    """
    from vizlib import zoo

    model, meta = zoo.load_model(name, device=device)
    model.requires_grad_(False)
    return model, meta, threading.Lock()


def file_stem(name: str) -> str:
    """Return a model's name as it goes into download file names: runs of anything but letters,
    digits, ``.``, ``-`` and ``_`` become one ``_`` ("upload (vit_digits)" -> "upload_vit_digits",
    as the CNN pages name an upload's files)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def linked_index(
    param: str, options: list[str], *, accepted: tuple[str, ...] = (), reason: str = "no such model"
) -> int:
    """Return the index in ``options`` of the link's ``?param=`` value (0 when absent or unknown).

    An unknown value gets a warning saying why it was ignored; values in ``accepted`` are
    handled by the caller and pass silently.
    """
    wanted = st.query_params.get(param)
    if wanted in options:
        return options.index(wanted)
    if wanted is not None and wanted not in accepted:
        st.warning(
            f"Ignored `{param}={wanted}` from the link ({reason}); showing {options[0]}.",
            icon=":material/link_off:",  # as every other setting's link warning (``ui.links``)
        )
    return 0


def load_shared_model(
    name: str, device: str, *, where=st
) -> tuple[torch.nn.Module, dict, threading.Lock] | None:
    """Return ``cached_model(name, device)``, or None with the reason shown at ``where``.

    The model's notice (e.g. random weights because ImageNet weights are not cached) is shown too.
    """
    try:
        model, meta, lock = cached_model(name, device)
    except (ValueError, RuntimeError, OSError) as err:
        where.error(f"Could not load {name!r} on {device}: {err}")
        return None
    if meta.get("notice"):
        where.warning(meta["notice"], icon=":material/warning:")
    return model, meta, lock


def time_left(elapsed: float, done: float, total: float) -> str:
    """Return ", about N s left" for a progress text, from the rate so far.

    ``elapsed`` seconds for ``done`` of ``total`` units; empty before a second has passed (too
    early for a rate) and once done.
    """
    if done <= 0 or elapsed < 1.0 or done >= total:
        return ""
    left = elapsed / done * (total - done)
    return f", about {left:,.0f} s left" if left < 120 else f", about {left / 60:,.1f} min left"


class Pace:
    """Say when a live view is due for a redraw: at the first call, then once ``seconds`` have
    passed since the last redraw. A browser draws every chart it is sent, so a loop faster than
    it (a small model's epochs on a GPU) would leave the page drawing long after the work ended.
    """

    def __init__(self, seconds: float, clock=time.perf_counter):
        self.seconds, self.clock, self.last = seconds, clock, None

    def due(self) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last < self.seconds:
            return False
        self.last = now
        return True


def class_option(names: list[str]):
    """Return a ``format_func`` for a picker of class indices into ``names``: "7: horse" where a
    name says more than its index, and "3" where it is the index (the digits), not "3: 3"."""
    return lambda i: names[i] if names[i] == str(i) else f"{i}: {names[i]}"


def count_slider(
    label: str, low: int, high: int, value: int, *, key: str, where=st, unit: str = "", **kwargs
) -> int:
    """Return the value of an integer slider over [low, high] (``value`` clamped into it).

    ``st.slider`` refuses ``low == high`` (a conv layer with one output channel, a one-image
    set, a 1-pixel side), so then no slider is drawn: a caption states the only value.
    """
    low, high = int(low), max(int(high), int(low))
    if high == low:
        where.caption(f"{label}: {low}{unit} (the only possible value)")
        return low
    if key in st.session_state:  # set by a link or an earlier run: it rules, kept in range
        # (passing a default too would make Streamlit warn that both were given)
        st.session_state[key] = min(max(int(st.session_state[key]), low), high)
        return int(where.slider(label, low, high, key=key, **kwargs))
    return int(where.slider(label, low, high, min(max(int(value), low), high), key=key, **kwargs))


@st.cache_resource(max_entries=3, show_spinner="Checking and loading the uploaded weights…")
def uploaded_model(
    digest: str, architecture: str, device: str, _data: bytes | None
) -> tuple[torch.nn.Module, dict, threading.Lock]:
    """Return (model, meta, lock) of uploaded weights for a zoo architecture, shared by every
    session per (file SHA-256, architecture, device): frozen, in eval mode, used under the lock.

    ``_data`` (not part of the cache key) None: only an already loaded model is returned, else
    ``ValueError`` (pages that keep just the digest, e.g. inside cached computations).
    """
    if _data is None:
        raise ValueError("The uploaded model is no longer cached; upload the file again.")
    model, meta = vizlib.zoo.load_uploaded(_data, architecture)
    return model.to(device).eval().requires_grad_(False), meta, threading.Lock()


UPLOAD = "Upload weights…"  # the model pickers' last option


@dataclass(frozen=True)
class ModelChoice:
    """A hashable handle on the chosen model: ``key`` is a zoo name or "upload:<sha256>"."""

    key: str
    architecture: str
    device: str


def get_model(choice: ModelChoice) -> tuple[torch.nn.Module, dict, threading.Lock]:
    """Return (shared model, meta, lock) of a picker's choice; ``ValueError`` when uploaded
    weights are no longer cached (the page says to upload them again)."""
    if choice.key.startswith("upload:"):
        return uploaded_model(choice.key[7:], choice.architecture, choice.device, None)
    return cached_model(choice.key, choice.device)


# an image or grid uploader's limit (MB), the readers' own: the uploader shows it and the browser
# refuses a larger file at once, where the server's 600 MB (for weights) read as "1GB per file"
IMAGE_UPLOAD_MB = vizlib.data.MAX_UPLOAD_BYTES // 2**20


def _upload_limit_mb() -> int:
    """Return the largest weights upload accepted, in MB: the server's cap or vizlib's, if lower."""
    server_mb = int(st.get_option("server.maxUploadSize"))
    return min(server_mb, vizlib.zoo.MAX_WEIGHTS_BYTES // 2**20)


_LAST = "last."  # session key prefix of a widget's last value, kept while its page is not shown


def restore_last(key: str, allowed: bool, options: list) -> bool:
    """Give widget ``key`` its last value of this session (``remember_last``), where Streamlit
    has dropped its state (another page was shown; the browser leaves the link's settings behind
    on the way) and ``allowed`` (the link names no other value); return whether it did."""
    last = st.session_state.get(_LAST + key)
    if key in st.session_state or not allowed or last not in options:
        return False
    st.session_state[key] = last
    return True


def remember_last(key: str, value: object) -> None:
    """Record widget ``key``'s value for ``restore_last``."""
    st.session_state[_LAST + key] = value


def upload_picker(
    prefix: str, architectures: list[str], device: str, *, prompt: str
) -> tuple[str, str, torch.nn.Module, dict, threading.Lock] | None:
    """Draw the architecture picker and the weights uploader (keys ``<prefix>.upload_arch`` and
    ``<prefix>.upload_weights``); return (architecture, SHA-256, model, meta, lock) of the shared
    model (``uploaded_model``), or None with ``prompt`` or the refusal shown."""
    cols = st.columns([1, 2])
    key = f"{prefix}.upload_arch"
    linked = st.query_params.get("arch")
    if not restore_last(key, linked is None, architectures) and key not in st.session_state:
        if linked in architectures:
            st.session_state[key] = linked
        elif linked is not None:
            st.warning(
                f"Ignored `arch={linked}` from the link (expected {', '.join(architectures)}).",
                icon=":material/link_off:",
            )
    architecture = cols[0].selectbox(
        "Architecture of the weights",
        architectures,
        key=key,
        help="The state_dict must match this architecture key by key and shape by shape. "
        "It travels in the link; the file cannot.",
    )
    remember_last(key, architecture)
    if architecture == architectures[0]:
        st.query_params.pop("arch", None)
    else:
        st.query_params["arch"] = architecture
    file = cols[1].file_uploader(
        "Weights (.safetensors, or a .pt/.pth state_dict)",
        type=["safetensors", "pt", "pth"],
        key=f"{prefix}.upload_weights",
        help="Pickled files are read with torch.load(weights_only=True): anything but tensors "
        f"is refused. At most {_upload_limit_mb()} MB.",
    )
    if file is None:
        st.info(prompt)
        return None
    data = file.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    try:
        model, meta, lock = uploaded_model(digest, architecture, device, data)
    except ValueError as err:
        cols[1].error(f"Could not use {file.name!r}: {err}")
        return None
    except torch.OutOfMemoryError:
        cols[1].error(
            f"The {device} ran out of memory loading {file.name!r}; pick the CPU in the sidebar."
        )
        return None
    if meta.get("notice"):  # e.g. a DataParallel prefix that was removed from the names
        cols[1].info(meta["notice"], icon=":material/info:")
    return architecture, digest, model, meta, lock


def model_select(
    prefix: str, names: list[str], *, label: str, help: str, reason: str = "no such model", where=st
) -> str:
    """Draw the model selectbox (key ``<prefix>.model``: ``names``, then ``UPLOAD``) and return
    the choice, shared in the URL as ``?model=<name>``, or ``?model=upload``, which opens the
    upload picker (the file itself cannot travel in a link; never the last zoo model picked)."""
    key = f"{prefix}.model"
    restored = restore_last(key, "model" not in st.query_params, [*names, UPLOAD])
    if restored:
        index = 0  # Streamlit's default beside the value restored into the session, which rules
    elif st.query_params.get("model") == "upload":
        index = len(names)
    else:
        index = linked_index("model", names, reason=reason)
    name = where.selectbox(label, [*names, UPLOAD], index=index, key=key, help=help)
    remember_last(key, name)
    st.query_params["model"] = "upload" if name == UPLOAD else name
    if name != UPLOAD:
        st.query_params.pop("arch", None)  # the uploader's architecture (``upload_picker``)
    return name


def pick_model(
    prefix: str,
    names: list[str],
    device: str,
    *,
    label: str,
    help: str,
    prompt: str,
    upload_architectures: list[str],
    reason: str = "no such model",
    where=st,
) -> tuple[ModelChoice, torch.nn.Module, dict, threading.Lock] | None:
    """Draw ``model_select`` and, for ``UPLOAD``, the uploader for ``upload_architectures``;
    return (choice, shared model, meta, lock), or None with the prompt or the reason shown."""
    name = model_select(prefix, names, label=label, help=help, reason=reason, where=where)
    if name == UPLOAD:
        picked = upload_picker(prefix, upload_architectures, device, prompt=prompt)
        if picked is None:
            return None
        architecture, digest, model, meta, lock = picked
        return ModelChoice(f"upload:{digest}", architecture, device), model, meta, lock
    loaded = load_shared_model(name, device)
    if loaded is None:
        return None
    return ModelChoice(name, name, device), *loaded


OTHER_IMAGE_FOLDER = "Other image folder…"
# VIZLIB_TYPED_FOLDERS=0 hides "Other image folder…": on a server shared with a class, a typed
# path would let any visitor read the images of any folder the server can read.
TYPED_FOLDERS_ENV = "VIZLIB_TYPED_FOLDERS"


def typed_folder_options() -> list[str]:
    """Return ``[OTHER_IMAGE_FOLDER]``, or ``[]`` where ``VIZLIB_TYPED_FOLDERS=0`` forbids paths
    typed by visitors (then only the folders found under ``VIZLIB_DATA`` are offered)."""
    return [] if os.environ.get(TYPED_FOLDERS_ENV, "1").strip() == "0" else [OTHER_IMAGE_FOLDER]


def dataset_label(name: str) -> str:
    """Return how a dataset name reads in a picker: an image folder by its folder's name and
    path (``"pets — image folder, /data/pets"``), any other name as it is."""
    if name.startswith("imagefolder:"):
        from pathlib import Path

        path = name.split(":", 1)[1]
        return f"{Path(path).name or path} — image folder, {path}"
    return name


def image_folder_choice(choice: str, prefix: str, *, where=st) -> str | None:
    """Return the dataset name picked as ``choice``: itself, or for ``OTHER_IMAGE_FOLDER`` the
    folder typed in a text input (key ``<prefix>.folder_path``) once
    ``vizlib.data.check_image_folder`` accepts it; else None with the reason shown at ``where``.
    """
    if choice is None:  # an empty picker: no folder found and typed paths switched off
        where.info("No image folder was found under VIZLIB_DATA.")
        return None
    if choice != OTHER_IMAGE_FOLDER:
        return choice
    from vizlib.data import check_image_folder

    path = where.text_input(
        "Image folder path",
        key=f"{prefix}.folder_path",
        placeholder="/data/my_photos",
        help="A folder on the machine running this app with one sub-folder per class, each "
        "holding that class's images (cats/1.jpg, dogs/2.png), as torchvision's ImageFolder "
        "reads it. The images are read in place; the class names are the sub-folder names.",
    )
    if not path.strip():
        where.info("Type the path of an image folder.")
        return None
    try:
        info = check_image_folder(path)
    except ValueError as err:
        where.error(str(err))
        return None
    shown = ", ".join(info.classes[:8]) + (", …" if len(info.classes) > 8 else "")
    where.caption(f"{len(info.classes)} classes: {shown}")
    return info.name


def preparation_note(input_size: tuple[int, int, int], what: str = "Uploaded images") -> str:
    """Return the sentence saying how ``what`` (images read from a file, any size and colour)
    reach a model of ``input_size`` (C, H, W): ``vizlib.data.prepare_image``'s conversion."""
    channels, height, width = (int(v) for v in input_size)
    colour = (
        "converted to grey (ITU-R 601 luma) for this 1-channel model, "
        if channels == 1
        else "read as RGB (grey images repeated to three channels), "
    )
    return (
        f"{what} {colour}stretched to {height}×{width} pixels (the aspect ratio is "
        "not kept) and normalised with the model's mean and standard deviation."
    )


def folder_channels_note(channels: int) -> str:
    """Return the sentence saying how an image folder's images reach a model of ``channels``."""
    if channels == 1:
        return (
            "Folder images are read as RGB and converted to grey (ITU-R 601 luma) for this "
            "1-channel model, then resized to its input."
        )
    return "Folder images are read as RGB and resized to the model's input."


FOLDER_IMAGE_BYTES = 256 * 2**20  # float32 images one folder subset may take on a page


def folder_subset(name: str, input_size: tuple[int, ...], *, most: int) -> tuple[list[int], int]:
    """Return (indices of a seeded random subset of the image folder ``name``, in random order
    so that any first N mix the classes; its number of images).

    At most ``most`` images, and no more than fit in ``FOLDER_IMAGE_BYTES`` as float32 at
    ``input_size`` (C, H, W): 445 at 3x224x224. ``ValueError`` when the folder cannot be listed.
    """
    import numpy as np

    from vizlib.data import dataset_size

    channels, height, width = (int(v) for v in input_size)
    fit = max(1, FOLDER_IMAGE_BYTES // (4 * channels * height * width))
    total = dataset_size(name)
    pick = np.random.default_rng(0).permutation(total)[: min(most, fit)]
    return pick.tolist(), total


def folder_subset_note(name: str, input_size: tuple[int, ...], *, most: int) -> str | None:
    """Return the caption saying how many of image folder ``name``'s images a page uses
    (``folder_subset``) and how they reach a model of ``input_size`` (C, H, W); None with the
    reason shown when the folder cannot be listed."""
    try:
        pick, total = folder_subset(name, input_size, most=most)
    except ValueError as err:
        st.error(str(err))
        return None
    if total == 1:
        used = "Reading its one image."
    else:
        kept = "all" if len(pick) == total else f"a random {len(pick):,} (seed 0)"
        used = f"Reading {kept} of its {total:,} images."
    return f"{used} {folder_channels_note(int(input_size[0]))}"


def preparation_key(
    meta: dict,
) -> tuple[tuple[int, int, int], tuple[float, ...], tuple[float, ...]]:
    """Return (input size (C, H, W), mean, std) of a model's metadata: what prepares images for
    it, hashable, so cached image loaders can take it as arguments."""
    channels, height, width = (int(v) for v in meta["input_size"])
    return (
        (channels, height, width),
        tuple(float(v) for v in meta["mean"]),
        tuple(float(v) for v in meta["std"]),
    )


def preparation_meta(input_size: tuple, mean: tuple, std: tuple) -> dict:
    """Return the metadata dict that ``preparation_key``'s (input size, mean, std) came from, as
    the image loaders of ``vizlib.data`` take it."""
    return {"input_size": list(input_size), "mean": list(mean), "std": list(std)}


def image_folders(status: dict[str, str] | None = None) -> list[str]:
    """Return the names (``imagefolder:<path>``) of the usable image folders found under
    VIZLIB_DATA, from ``status`` (``vizlib.data.available_datasets()``, read when None)."""
    if status is None:
        from vizlib.data import available_datasets

        status = available_datasets()
    return [
        n for n, s in status.items() if n.startswith("imagefolder:") and s.startswith("on disk")
    ]
