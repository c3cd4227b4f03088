"""Streamlit helpers shared by the Filters & Feature Maps and Attributions pages: the model picker
(zoo or uploaded weights), the input picker (dataset sample, image folder, sample image, upload),
the image-set picker (test split or image folder) and cached dataset loading; the input picker's
shareable settings for ``ui.links`` (``load_input_settings``, ``save_input_settings``).

Zoo models come from the shared ``ui.cached_model``; uploaded weights from a small
``st.cache_resource`` keyed on the file's SHA-256. Both are shared: never mutated, hooks only
under their lock. Cached computations take the ``LoadedModel`` as an unhashed argument, keyed
on its ``name`` and ``device``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

import ui
from ui import UPLOAD, links
from vizlib import zoo
from vizlib.data import (
    LIGHT_ON_DARK,
    available_datasets,
    dataset_size,
    denormalize,
    image_concerns,
    light_background,
    load_dataset,
    load_dataset_for_model,
    load_folder_for_model,
    load_sample_image,
    prepare_image,
    read_image_upload,
    sample_image_names,
)

__all__ = [
    "INPUT_LINK_KEYS",
    "SAMPLE_SET",
    "ChosenInput",
    "LoadedModel",
    "dataset_for",
    "image_set",
    "image_set_picker",
    "image_set_settings",
    "input_picker",
    "load_input_settings",
    "model_picker",
    "save_input_settings",
    "unreadable_warning",
]

SOURCES = ("Dataset sample", "Image folder", "Sample image", "Upload an image")
MAX_FOLDER_SET = 256  # images of a folder that one pass ranks (Top-activating images)
SAMPLE_SET = "samples"  # image_set's name for scikit-image's sample photos
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
    name = ui.model_select(
        prefix, zoo.list_models(), label=label,
        help="Shipped checkpoints trained on the bundled digits, torchvision architectures "
        "(ImageNet weights when they are in the torch hub cache), or your own weights.",
    )  # fmt: skip
    device = str(ui.current_device())
    if name == UPLOAD:
        return _upload_picker(prefix, device)
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


@st.cache_data(max_entries=16, show_spinner="Reading the image…")
def folder_image(
    name: str, index: int, input_size: tuple, mean: tuple, std: tuple
) -> tuple[torch.Tensor, int, list[str]]:
    """Return (image (1, C, H, W) prepared for the model, its label, class names): one file of
    the image folder ``name`` read, converted to the model's channels, size and normalisation."""
    meta = ui.preparation_meta(input_size, mean, std)
    x, labels, classes = load_dataset_for_model(name, meta, indices=[index])
    return x, int(labels[0]), classes


@st.cache_data(max_entries=4, show_spinner="Reading the image folder…")
def folder_set(
    name: str, input_size: tuple, mean: tuple, std: tuple
) -> tuple[torch.Tensor, torch.Tensor, list[str], list[int], int, list[tuple[str, str]]]:
    """Return (images (N, C, H, W) prepared for the model, labels (N,), class names, each image's
    index in the folder, the folder's size, the (path, reason) of each file that could not be
    read) of ``ui.folder_subset``: a seeded random ``MAX_FOLDER_SET`` at most, only those files
    read. Unreadable files are left out (``load_folder_for_model``): one truncated photo must
    not hide the rest; ``unreadable_warning`` names them."""
    meta = ui.preparation_meta(input_size, mean, std)
    pick, total = ui.folder_subset(name, input_size, most=MAX_FOLDER_SET)
    found = load_folder_for_model(name, meta, indices=pick)
    return found.images, found.labels, found.classes, found.indices, total, found.unreadable


def unreadable_warning(source: str | None, meta: dict, *, shown: int = 3) -> None:
    """Warn, on the page, about the files of the image folder ``source`` that ``image_set``
    left out because they could not be read: how many, and the first ``shown`` by path with
    the reason. Nothing for another set, or where the folder cannot be read at all (the page
    shows that error itself)."""
    if source is None or not source.startswith("imagefolder:"):
        return
    try:
        found = folder_set(source, *ui.preparation_key(meta))
    except ValueError:
        return
    unreadable, used = found[5], len(found[0])
    if not unreadable:
        return
    k = len(unreadable)
    names = "; ".join(f"{path} ({why})" for path, why in unreadable[:shown])
    more = f"; and {k - shown:,} more" if k > shown else ""
    st.warning(
        f"{k:,} of the {k + used:,} images could not be read and "
        f"{'are' if k > 1 else 'is'} left out ({used:,} used): {names}{more}. Remove or "
        f"replace {'them' if k > 1 else 'it'} to use {'them' if k > 1 else 'it'}.",
        icon=":material/broken_image:",
    )


def _folder_picker(prefix: str, label: str) -> str | None:
    choice = st.selectbox(
        label,
        [*ui.image_folders(), *ui.typed_folder_options()],
        format_func=ui.dataset_label,
        key=f"{prefix}.folder",
        help="The image folders found under VIZLIB_DATA, or any other by its path.",
    )
    return ui.image_folder_choice(choice, prefix)


def _image_set_options(meta: dict, *, samples: bool) -> tuple[list[str], str | None, str]:
    """Return (the image sets offered, the default (None: nothing until the user chooses), why
    the test split is missing ("" when it is on disk))."""
    options = [*ui.image_folders(), *ui.typed_folder_options()]
    if samples:
        options.insert(0, SAMPLE_SET)
    try:
        dataset_for(meta["dataset"], tuple(int(v) for v in meta["input_size"][1:]))
    except ValueError as err:  # e.g. ImageNet, never on disk
        # without the sample photos nothing is chosen: a pass over a folder waits for the user
        return options, (SAMPLE_SET if samples else None), missing_test_split(meta, err)
    return [meta["dataset"], *options], meta["dataset"], ""


def image_set_settings(
    prefix: str, meta: dict, *, samples: bool = False, query: str = "images"
) -> links.Table:
    """Return the image-set picker's shareable setting (query key ``query``): the test split,
    the sample photos, or a folder found under VIZLIB_DATA by its ``imagefolder:`` name. A typed
    path never travels: a link may name "Other image folder…", which opens the path box, empty.
    Load it with ``links.load_settings`` before ``image_set_picker`` draws the picker, and save
    it with ``prefix + "."`` as that prefix."""
    return _image_set_table(prefix, *_image_set_options(meta, samples=samples)[:2], query)


def _image_set_table(
    prefix: str, options: list[str], default: str | None, query: str
) -> links.Table:
    return {query: (f"{prefix}.images", default, links.choice_parser(options))}


def image_set_picker(
    prefix: str,
    meta: dict,
    *,
    samples: bool = False,
    purpose: str = "Top-activating images need",
    from_link: bool | None = None,
    query: str = "images",
) -> str | None:
    """Draw the picker of a set of images (key ``<prefix>.images``): the model's test split when
    on disk, the image folders found, or any folder by its path; with ``samples``, also
    scikit-image's bundled photos (SAMPLE_SET), the default when the test split is not on disk.
    Return the set for ``image_set`` (a dataset name, ``imagefolder:<path>`` or SAMPLE_SET), or
    None with the reason shown (``purpose`` starts the sentence saying what the images are for,
    while nothing is chosen).

    With ``from_link`` (True on the page's first run, ``links.first_visit``) the choice comes
    from the link's ``query`` key and goes back into it: save ``image_set_settings`` with the
    page's settings.
    """
    options, default, missing = _image_set_options(meta, samples=samples)
    if from_link is not None:  # the options listed once: listing the folders reads the disk
        table = _image_set_table(prefix, options, default, query)
        for warning in links.load_settings(table, prefix=f"{prefix}.", from_link=from_link):
            st.warning(warning, icon=":material/link_off:")
    key = f"{prefix}.images"
    # a value set by ``image_set_settings`` (a link, an earlier visit) rules; an index passed
    # beside it would make Streamlit warn that both were given
    index = {} if key in st.session_state else {"index": None if default is None else 0}

    def label(option: str) -> str:
        if option == meta["dataset"]:
            return f"{option} (test split)"
        if option == SAMPLE_SET:
            return f"scikit-image sample photos ({len(sample_image_names())})"
        return ui.dataset_label(option)

    choice = st.selectbox(
        "Images",
        options,
        **index,
        placeholder="Choose an image folder",
        format_func=label,
        key=key,
        help=("Images to measure" if samples else "Images to rank")
        + ": the model's test split, an image folder found under VIZLIB_DATA "
        f"(a random {MAX_FOLDER_SET} of its images at most), or any image folder by its path"
        + (", or the photos that ship with scikit-image." if samples else "."),
    )
    if choice is None:
        st.info(f"{purpose} the model's test images or an image folder. {missing}.")
        return None
    if choice == SAMPLE_SET:
        st.caption(ui.preparation_note(meta["input_size"], "Sample photos are"))
        return SAMPLE_SET
    source = ui.image_folder_choice(choice, prefix)
    if source is not None and source.startswith("imagefolder:"):
        note = ui.folder_subset_note(source, tuple(meta["input_size"]), most=MAX_FOLDER_SET)
        if note is None:
            return None
        st.caption(note)
    return source


@st.cache_data(max_entries=4, show_spinner="Preparing the sample photos…")
def _sample_set(input_size: tuple, mean: tuple, std: tuple) -> torch.Tensor:
    """Return (N, C, H, W): every scikit-image sample photo prepared for such a model."""
    meta = ui.preparation_meta(input_size, mean, std)
    return torch.cat([prepare_image(load_sample_image(n), meta) for n in sample_image_names()])


def image_set(source: str, meta: dict) -> tuple[torch.Tensor, torch.Tensor, list[str], list[int]]:
    """Return (images (N, C, H, W) normalised for the model, labels (N,), class names, each
    image's index in its source) of a set chosen with ``image_set_picker``. The sample photos
    have no classes: their labels are -1 and the class names empty."""
    if source == SAMPLE_SET:
        images = _sample_set(*ui.preparation_key(meta))
        return images, torch.full((len(images),), -1), [], list(range(len(images)))
    if source.startswith("imagefolder:"):
        images, labels, classes, ids, _, _ = folder_set(source, *ui.preparation_key(meta))
        return images, labels, classes, ids
    images, labels, classes = dataset_for(source, tuple(int(v) for v in meta["input_size"][1:]))
    return images, labels, classes, list(range(len(images)))


def _display(x: torch.Tensor, meta: dict) -> np.ndarray:
    img = denormalize(x[0], meta["mean"], meta["std"])  # (C, H, W) in [0, 1]
    img = img.permute(1, 2, 0).numpy()  # (H, W, C)
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


# the query keys of the input picker's settings (``input_settings``), for a page's link keys
INPUT_LINK_KEYS = frozenset({"input", "index", "sample", "folder", "folder_index"})


def _test_split_size(meta: dict) -> int:
    """Return the number of the model's test images on disk, 0 when there are none."""
    try:
        return len(dataset_for(meta["dataset"], tuple(int(v) for v in meta["input_size"][1:]))[0])
    except ValueError:  # e.g. ImageNet, never on disk
        return 0


def input_settings(prefix: str, meta: dict) -> links.Table:
    """Return the input picker's shareable settings, query key -> (widget key, default,
    allowed), for a model described by ``meta``: the source, the test image's index (where the
    test split is on disk), the sample image and the image folder found under VIZLIB_DATA.

    Uploaded files and typed folder paths never travel: a link may name "Upload an image" or
    "Other image folder…", which opens the uploader or the path box, empty.
    """
    n_test = _test_split_size(meta)
    sources = SOURCES if n_test else SOURCES[1:]
    table: links.Table = {
        "input": (f"{prefix}.source", sources[0] if n_test else "Sample image",
                  links.choice_parser(sources)),
    }  # fmt: skip
    if n_test:
        table["index"] = (f"{prefix}.index", 0, (0, n_test - 1))
    names = sample_image_names()
    table["sample"] = (f"{prefix}.sample", names[0], tuple(names))
    folders = [*ui.image_folders(), *ui.typed_folder_options()]
    if folders:
        table["folder"] = (f"{prefix}.folder", folders[0], links.choice_parser(folders))
    return table


def _folder_index_setting(prefix: str) -> links.Table:
    """Return the setting of the image's index in the chosen image folder, ranged by its size:
    only for a folder found under VIZLIB_DATA (a typed path is not in the link)."""
    name = st.session_state.get(f"{prefix}.folder")
    if name not in ui.image_folders():
        return {}
    try:
        total = dataset_size(name)  # lists the files, opens none
    except ValueError:  # the picker says why
        return {}
    return {"folder_index": (f"{prefix}.folder_index", 0, (0, total - 1))}


def load_input_settings(
    prefix: str, meta: dict, *, from_link: bool
) -> tuple[links.Table, list[str]]:
    """Give the input picker's widgets their values (``links.load_settings``) before
    ``input_picker`` draws them; return (their settings, warnings about bad link values).

    The folder image's index is ranged by the folder the link or the session chose.
    """
    table = input_settings(prefix, meta)
    warnings = links.load_settings(table, prefix=f"{prefix}.", from_link=from_link)
    if from_link and "folder" not in table and "folder" in st.query_params:
        raw = st.query_params["folder"]  # dropped from the link by save_input_settings
        warnings.append(
            f"Ignored `folder={raw}` from the link (no image folder is offered on this server)."
        )
    if st.session_state.get(f"{prefix}.source") == "Image folder":
        more = _folder_index_setting(prefix)
        warnings += links.load_settings(more, prefix=f"{prefix}.", from_link=from_link)
        table |= more
    return table, warnings


def save_input_settings(prefix: str, table: links.Table, *, keep: Collection[str]) -> None:
    """Write the input picker's settings into the link (``links.save_settings``): the source
    and what it needs (the test image's index, the sample image, or the folder and its image),
    never the other sources' values."""
    source = st.session_state.get(f"{prefix}.source")
    shown = {"input"} | {
        "Dataset sample": {"index"},
        "Sample image": {"sample"},
        "Image folder": {"folder", "folder_index"},
    }.get(source, set())
    if "folder_index" not in table:  # no folder chosen from the list: its index means nothing
        keep = set(keep) - {"folder_index"}
    if "folder" not in table:  # no folder offered at all (none found, typed paths switched off)
        keep = set(keep) - {"folder"}
    links.save_settings(table, prefix=f"{prefix}.", keep=keep, shown=shown)


def missing_test_split(meta: dict, err: Exception) -> str:
    """Say why the model's test split cannot be read (``err``, from ``dataset_for``): a known
    dataset missing from this machine, or one the app never ships nor downloads (ImageNet:
    vizlib's "Unknown dataset ...; choose from ..." is no help to a visitor)."""
    if meta["dataset"] in available_datasets():
        return f"No {meta['dataset']} test images on this machine ({err})"
    return f"The {meta['dataset']} test images do not ship with the app and are not downloaded"


def input_picker(prefix: str, meta: dict, *, purpose: str) -> ChosenInput | None:
    """Draw the input controls and return the chosen input prepared for the model, or None;
    ``purpose`` ends the prompt of an empty uploader ("Upload an image to <purpose>.")."""
    size = tuple(int(v) for v in meta["input_size"][1:])
    try:
        images, labels, classes = dataset_for(meta["dataset"], size)
        sources = SOURCES
    except ValueError as err:  # e.g. ImageNet, never on disk: offer only what works
        sources = SOURCES[1:]
        st.caption(
            f"{missing_test_split(meta, err)}: pick a sample image, an image folder or your own "
            "image instead."
        )
    start = sources.index("Dataset sample" if "Dataset sample" in sources else "Sample image")
    source = st.radio(
        "Input",
        sources,
        # a value already in the session (a link's) rules; passing an index too makes Streamlit warn
        **({} if f"{prefix}.source" in st.session_state else {"index": start}),
        key=f"{prefix}.source",
        horizontal=True,
        help="Image folder: one found under VIZLIB_DATA, or any folder of class sub-folders "
        "of images by its path.",
    )
    if source == "Dataset sample":
        index = st.number_input(
            f"Test image index (0–{len(images) - 1})",
            min_value=0,
            max_value=len(images) - 1,
            step=1,
            key=f"{prefix}.index",
        )
        x = images[int(index)][None]  # (1, C, H, W)
        label = f"{meta['dataset']} test image {int(index)} (true class {classes[int(labels[int(index)])]})"
        return ChosenInput(x, _display(x, meta), label, ("dataset", meta["dataset"], int(index)))
    if source == "Image folder":
        return _folder_input(prefix, meta)
    if source == "Sample image":
        name = st.selectbox("Sample image", sample_image_names(), key=f"{prefix}.sample")
        x = prepare_image(load_sample_image(name), meta)
        st.caption(ui.preparation_note(meta["input_size"], "Sample images are"))
        return ChosenInput(x, _display(x, meta), f"sample image {name!r}", ("sample", name))
    upload = st.file_uploader(
        "Image (PNG or JPEG)",
        type=["png", "jpg", "jpeg"],  # what read_image_upload accepts
        key=f"{prefix}.upload",
        max_upload_size=ui.IMAGE_UPLOAD_MB,
    )
    if upload is None:
        st.info(f"Upload an image to {purpose}.")
        return None
    data = upload.getvalue()
    try:
        image = read_image_upload(data)
    except ValueError as err:
        st.error(f"Could not use {upload.name!r}: {err}")
        return None
    invert = False
    if meta["dataset"] in LIGHT_ON_DARK:  # a digit on paper is dark on light: the reverse
        invert = st.checkbox(
            "Invert the image",  # the reason in the help: at 1024 px the label was cut
            key=f"{prefix}.invert",
            help=f"{meta['name']} learned light strokes on black ({meta['dataset']}); a digit "
            "drawn on paper is dark on light.",
        )
        if invert:
            image = 1.0 - image
        elif light_background(image):
            st.warning(
                f"This image has a light background, but {meta['name']} learned from light "
                f"strokes on black ({meta['dataset']}): it reads a dark digit on white as "
                "something else. Tick **Invert the image** to match its training images.",
                icon=":material/invert_colors:",
            )
    try:
        x = prepare_image(image, meta)
    except ValueError as err:
        st.error(f"Could not use {upload.name!r}: {err}")
        return None
    st.caption(ui.preparation_note(meta["input_size"], "Uploaded images are"))
    for concern in image_concerns(image, tuple(meta["input_size"][1:])):
        st.warning(concern, icon=":material/warning:")
    digest = hashlib.sha256(data).hexdigest()[:16]
    label = f"upload {upload.name!r}" + (", inverted" if invert else "")
    return ChosenInput(x, _display(x, meta), label, ("upload", digest, invert), data)


def _folder_input(prefix: str, meta: dict) -> ChosenInput | None:
    """Draw the image-folder input (folder, then an image by its index: only that file is read)."""
    name = _folder_picker(prefix, "Image folder")
    if name is None:
        return None
    try:
        total = dataset_size(name)  # lists the files, opens none
    except ValueError as err:
        st.error(str(err))
        return None
    index = st.number_input(
        f"Image index in the folder (0–{total - 1})",
        min_value=0,
        max_value=total - 1,
        step=1,
        key=f"{prefix}.folder_index",
        help="Images are numbered as torchvision's ImageFolder lists them: class by class, "
        "files by name.",
    )
    try:
        x, label, classes = folder_image(name, int(index), *ui.preparation_key(meta))
    except ValueError as err:
        st.error(str(err))
        return None
    st.caption(ui.folder_channels_note(int(meta["input_size"][0])))
    folder = ui.dataset_label(name).split(" — ", 1)[0]
    text = f"{folder} image {int(index)} of {total} (class {classes[label]})"
    known = meta.get("class_names") or []
    if classes[label] not in known:
        st.caption(
            f"'{classes[label]}' is the name of this image's sub-folder, not one of the model's "
            f"{len(known) or 'own'} classes: the model can only answer with its own classes."
        )
    return ChosenInput(x, _display(x, meta), text, ("folder", name, int(index)))
