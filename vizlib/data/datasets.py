"""Datasets prepared as the models expect: bundled digits, and torchvision datasets already on disk.

Nothing is downloaded here. ``"digits"`` (scikit-learn's bundled 8x8 digits) always works offline;
MNIST, FashionMNIST, CIFAR10 and ImageFolder trees are read only when their files already sit under
the folder named by the ``VIZLIB_DATA`` environment variable (or the ``root`` argument). CIFAR-10's
pickled batches are read by a restricted unpickler that builds numpy arrays and nothing else.
"""

from __future__ import annotations

import math
import os
import pickle
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DIGITS_MEAN",
    "DIGITS_STD",
    "IMAGE_EXTENSIONS",
    "FolderImages",
    "ImageFolderInfo",
    "available_datasets",
    "check_image_folder",
    "dataset_normalization",
    "dataset_size",
    "denormalize",
    "find_image_folders",
    "keeps_uint8",
    "load_dataset",
    "load_dataset_for_model",
    "load_folder_for_model",
    "native_size",
    "prepare_image",
    "to_display_images",
    "to_model_input",
]

DATA_ENV_VAR = "VIZLIB_DATA"
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0
# Pixel mean and std of the digits train split (values scaled to [0, 1], resized to 28x28);
# computed once and frozen so the split, the checkpoints and every page agree.
DIGITS_MEAN = 0.3052
DIGITS_STD = 0.3246

# name -> (mean per channel, std per channel) of pixel values in [0, 1]
_NORMALIZATION: dict[str, tuple[list[float], list[float]]] = {
    "digits": ([DIGITS_MEAN], [DIGITS_STD]),
    "mnist": ([0.1307], [0.3081]),
    "fashion_mnist": ([0.2860], [0.3530]),
    "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
    "imagefolder": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),  # ImageNet's
}
_DEFAULT_SIZE = {
    "digits": (28, 28),
    "mnist": (28, 28),
    "fashion_mnist": (28, 28),
    "cifar10": (32, 32),
    "imagefolder": (224, 224),
}
# the size the files hold: the default but for the digits (image folders vary: none)
_NATIVE_SIZE = {**{k: v for k, v in _DEFAULT_SIZE.items() if k != "imagefolder"}, "digits": (8, 8)}
_FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_CIFAR_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _data_root(root: str | os.PathLike | None) -> Path | None:
    root = root if root is not None else os.environ.get(DATA_ENV_VAR, "").strip()
    return Path(root).expanduser() if root else None


def _size(input_size: int | tuple[int, ...] | list[int] | None, default: tuple[int, int]):
    if input_size is None:
        return default
    if isinstance(input_size, int):
        return (input_size, input_size)
    size = tuple(int(s) for s in input_size)[-2:]  # accepts (H, W) or (C, H, W)
    if len(size) != 2 or min(size) < 1 or max(size) > 1024:
        raise ValueError(f"input_size must be (height, width) between 1 and 1024, got {input_size}")
    return size


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Return images (N, C, H, W) resized bilinearly (antialiased) to ``size`` = (H', W')."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)


def _normalize(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - m) / s


@lru_cache(maxsize=2)
def _digits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    labels = digits.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)),
        test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=labels,
    )
    idx = train_idx if split == "train" else test_idx
    images, labels = images[idx], labels[idx]
    images.flags.writeable = False  # cached: callers get copies below
    labels.flags.writeable = False
    return images, labels


def dataset_normalization(name: str) -> tuple[list[float], list[float]]:
    """Return (mean, std) per channel that ``load_dataset(name)`` normalises with (pixel values in [0, 1])."""
    key = "imagefolder" if name.startswith("imagefolder:") else name
    if key not in _NORMALIZATION:
        raise ValueError(f"Unknown dataset {name!r}; known: {', '.join(available_datasets())}")
    mean, std = _NORMALIZATION[key]
    return list(mean), list(std)


def available_datasets(root: str | os.PathLike | None = None) -> dict[str, str]:
    """Return dataset name -> human-readable status ("bundled", "on disk at ...", "not found ...")."""
    base = _data_root(root)
    status = {"digits": "bundled with scikit-learn (1,797 8x8 images, always available)"}
    checks = {
        "mnist": ("MNIST", "raw"),
        "fashion_mnist": ("FashionMNIST", "raw"),
        "cifar10": ("cifar-10-batches-py",),
    }
    for name, parts in checks.items():
        if base is None:
            status[name] = f"not available: set {DATA_ENV_VAR} to a folder holding it"
        elif base.joinpath(*parts).is_dir():
            status[name] = f"on disk at {base.joinpath(*parts)}"
        else:
            status[name] = f"not found under {base} (expected {Path(*parts)})"
    for folder, found in _scan_image_folders(base):
        if isinstance(found, ImageFolderInfo):
            status[found.name] = f"on disk at {found.path}: {len(found.classes)} classes"
        else:
            status[f"imagefolder:{folder}"] = f"not usable: {found}"
    status["imagefolder:<path>"] = (
        "any other folder of class sub-folders of images (e.g. cats/1.jpg, dogs/2.png), "
        "read in place: give its path"
    )
    return status


def load_dataset(
    name: str,
    split: str = "train",
    input_size: int | tuple[int, ...] | None = None,
    *,
    root: str | os.PathLike | None = None,
    max_samples: int | None = None,
    indices: np.ndarray | list[int] | None = None,
    keep_uint8: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Return (images (N, C, H, W) float32 normalised, labels (N,) int64, class names).

    Images are resized (bilinear, antialiased) to ``input_size`` (H, W) when given, else the
    dataset's default (digits 28x28), then normalised with ``dataset_normalization(name)``.
    ``split`` is "train" or "test" ("digits" uses one fixed stratified 75/25 split, seed 0; an
    image folder has one split, the same for both). ``max_samples`` keeps the first N samples of
    the on-disk datasets (the digits are small); ``indices`` keeps those samples of the split, in
    that order, before anything is resized (a subset of a big set at a big size stays small).
    With ``keep_uint8`` and ``keeps_uint8(name, size)`` true, the images are instead the files'
    own bytes, uint8 pixel values 0..255 (a quarter of the memory, nothing rounded), which
    ``to_model_input`` and ``to_display_images`` take as they are.
    Raises ``ValueError`` for unknown names or datasets that are not on disk; nothing is downloaded.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if indices is not None and max_samples is not None:
        raise ValueError("give max_samples or indices, not both")
    key = "imagefolder" if name.startswith("imagefolder:") else name
    if key not in _NORMALIZATION:
        raise ValueError(
            f"Unknown dataset {name!r}; choose from digits, mnist, fashion_mnist, cifar10, "
            "imagefolder:<path>."
        )
    size = _size(input_size, _DEFAULT_SIZE[key])
    mean, std = dataset_normalization(name)
    if key == "digits":
        images_np, labels_np = _digits_split(split)
        pick = _check_indices(indices, len(labels_np))
        images = torch.from_numpy(images_np[pick].copy())[:, None]  # (N, 1, 8, 8)
        labels = torch.from_numpy(labels_np[pick].copy())
        class_names = [str(i) for i in range(10)]
    else:
        images, labels, class_names = _load_torchvision(
            key, name, split, size, root=root, max_samples=max_samples, indices=indices
        )
        if keep_uint8 and keeps_uint8(name, size):
            return images, labels, class_names  # (N, C, H, W) uint8, as on disk
    images = _resize(images.float() / 255.0 if images.dtype == torch.uint8 else images, size)
    return _normalize(images, mean, std).contiguous(), labels, class_names  # (N, C, H, W)


def keeps_uint8(name: str, input_size: int | tuple[int, ...] | None = None) -> bool:
    """Return whether ``load_dataset(name, input_size=..., keep_uint8=True)`` gives uint8 pixels.

    True for MNIST, FashionMNIST and CIFAR10 at their native size (no size: the native one),
    whose files hold uint8 pixels; the digits (sixteenths), image folders and any resized set
    stay float32, as uint8 would round them.
    """
    native = _NATIVE_SIZE.get(name) if name != "digits" else None
    return native is not None and _size(input_size, native) == native


def _load_torchvision(
    key: str,
    name: str,
    split: str,
    size: tuple[int, int],
    *,
    root: str | os.PathLike | None,
    max_samples: int | None,
    indices: np.ndarray | list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    if key == "imagefolder":
        found = _read_folder(name, size, indices, max_samples=max_samples, skip=False)
        return found.images, found.labels, found.classes  # (N, 3, H, W) in [0, 1]

    raw = _mnist_raw_files(key, split, root)
    if raw is not None:  # read only the chosen images from the file, not all of them
        (image_file, labels_file), shape = raw
        n = shape[0] if max_samples is None else min(shape[0], max_samples)
        pick = _check_indices(indices, n)  # all n when None
        all_labels = np.fromfile(labels_file, dtype=np.uint8, offset=_idx_offset(1))  # (N,)
        pixels = np.memmap(image_file, np.uint8, "r", offset=_idx_offset(3), shape=shape)
        data = torch.from_numpy(np.asarray(pixels[pick]))[:, None]  # (n, 1, 28, 28), a copy
        del pixels  # closes the map
        labels = torch.from_numpy(all_labels[pick].astype(np.int64))
        return data, labels, _mnist_classes(key)
    if key == "cifar10":
        data, labels, class_names = _cifar_split(name, split, root)  # cached, read-only
        n = len(labels) if max_samples is None else min(len(labels), max_samples)
        if indices is None:
            data, labels = data[:n].copy(), labels[:n].copy()
        else:
            pick = _check_indices(indices, n)
            data, labels = data[pick], labels[pick]  # copies
        images = torch.from_numpy(data.reshape(-1, 3, 32, 32))  # (n, 3, 32, 32) uint8
        return images, torch.from_numpy(labels), list(class_names)
    data, labels, class_names = _torchvision_arrays(key, name, split, root)
    if max_samples is not None:
        data, labels = data[:max_samples], labels[:max_samples]
    if indices is not None:
        pick = torch.from_numpy(_check_indices(indices, len(labels)))
        data, labels = data[pick], labels[pick]
    return data, labels, class_names  # (N, C, H, W) uint8


# --------------------------------------------------------------------------- image folders
# torchvision's IMG_EXTENSIONS, copied so that listing folders imports no torchvision (a test
# checks that they agree): ImageFolder takes exactly these files, by name, case-insensitively.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# folders of the data root in torchvision's layout that hold the other datasets, not images
_OTHER_DATASET_FOLDERS = frozenset({"MNIST", "FashionMNIST", "cifar-10-batches-py"})
_MAX_ROOT_FOLDERS = 256  # sub-folders of the data root looked at, in name order
_MAX_FOLDER_ENTRIES = 20_000  # entries of an image folder read to find its class folders
_MAX_CLASS_ENTRIES = 2_000  # entries of one class folder read while looking for an image
_SCAN_BUDGET = 100_000  # directory entries read by one listing of the data root, at most
_PROBED_CLASSES = 16  # classes whose first image check_image_folder opens (header only)


@dataclass(frozen=True)
class ImageFolderInfo:
    """A folder of class sub-folders of images, as checked on disk (no image decoded).

    ``path`` is absolute; ``classes`` are the sub-folder names in the order torchvision's
    ``ImageFolder`` numbers them (label ``i`` is ``classes[i]``).
    """

    path: Path
    classes: tuple[str, ...]

    @property
    def name(self) -> str:
        """The dataset name that ``load_dataset`` takes: ``"imagefolder:<absolute path>"``."""
        return f"imagefolder:{self.path}"


class _Budget:
    """Directory entries that one listing may still read (shared by all its folders)."""

    def __init__(self, entries: int) -> None:
        self.left = entries

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows links, as torchvision's walk does
    except OSError:
        return False


def _first_image(folder: str, budget: _Budget, *, deep: bool = True) -> str | None:
    """Return an image file in ``folder`` (or below it with ``deep``, breadth first), or None
    when none is met before ``_MAX_CLASS_ENTRIES`` entries (or the shared ``budget``) are read.
    Stops at the first one: a class folder of 100,000 photos costs one directory read."""
    pending, read = [folder], 0
    while pending:
        subfolders = []
        try:
            with os.scandir(pending.pop(0)) as entries:
                for entry in entries:
                    read += 1
                    if read > _MAX_CLASS_ENTRIES or not budget.take():
                        return None
                    if _is_dir(entry):
                        subfolders.append(entry.path)
                    elif _is_image_name(entry.name):
                        return entry.path
        except OSError:
            continue  # unreadable: torchvision's walk skips it too
        if deep:
            pending.extend(sorted(subfolders))
    return None


def _names(names: list[str], most: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _class_folders(folder: Path, budget: _Budget) -> list[str]:
    """Return the sorted class folder names of ``folder``; ``ValueError`` saying why when it has
    none (pointing at a folder of images rather than at their parent is the usual slip)."""
    classes, images = [], 0
    try:
        with os.scandir(folder) as entries:
            for read, entry in enumerate(entries, 1):
                if read > _MAX_FOLDER_ENTRIES or not budget.take():
                    raise ValueError(
                        f"{folder} holds more than {_MAX_FOLDER_ENTRIES:,} entries: an image "
                        "folder holds one sub-folder per class, not the images themselves."
                    )
                if _is_dir(entry):
                    classes.append(entry.name)
                elif _is_image_name(entry.name):
                    images += 1
    except OSError as err:
        raise ValueError(f"{folder} could not be read ({err.strerror or err}).") from err
    layout = "one sub-folder per class, each holding that class's images (cats/1.jpg, dogs/2.png)"
    if not classes and images:
        raise ValueError(
            f"{folder} holds images but no class sub-folders. An image folder has {layout}: "
            "give the folder above it, or sort the images into class sub-folders."
        )
    if not classes:
        raise ValueError(f"{folder} has no sub-folders. An image folder has {layout}.")
    return sorted(classes)


def _examine(folder: Path, budget: _Budget) -> tuple[list[str], dict[str, str | None]]:
    """Return (class names, class -> first image found or None); ``ValueError`` without classes."""
    classes = _class_folders(folder, budget)
    return classes, {c: _first_image(str(folder / c), budget) for c in classes}


def _without_images(folder: Path, firsts: dict[str, str | None]) -> str:
    """Return the message for class folders in which no image was found."""
    empty = [c for c, first in firsts.items() if first is None]
    return (
        f"{folder}: the class folder(s) {_names(empty)} hold no image files "
        f"({', '.join(IMAGE_EXTENSIONS)}; none within the first {_MAX_CLASS_ENTRIES:,} entries). "
        "Every sub-folder is a class, so each needs at least one image: fill or remove them."
    )


def check_image_folder(path: str | os.PathLike, *, probe: bool = True) -> ImageFolderInfo:
    """Return the classes of the image folder at ``path`` (a torchvision ``ImageFolder`` tree:
    one sub-folder per class, image files inside it at any depth).

    The work is bounded: each class folder is read until its first image file. With ``probe``
    the first image of up to 16 classes is opened (its header only, nothing decoded), which
    catches files that are not images. ``ValueError`` with a message to show says what is
    wrong: no path, missing, a file, unreadable, no class sub-folders, classes with no images,
    an image that cannot be opened. A relative path is taken from the working directory.
    """
    text = os.fspath(path).strip()
    if not text:
        raise ValueError("No path given: type the path of a folder with one sub-folder per class.")
    folder = Path(os.path.abspath(os.path.expanduser(text)))
    if not folder.exists():
        raise ValueError(f"{folder} does not exist (no file or folder there).")
    if not folder.is_dir():
        raise ValueError(
            f"{folder} is a file. Give the folder that holds one sub-folder per class."
        )
    classes, firsts = _examine(folder, _Budget(_SCAN_BUDGET))
    if any(first is None for first in firsts.values()):
        raise ValueError(_without_images(folder, firsts))
    if probe:
        from PIL import Image

        for first in list(firsts.values())[:_PROBED_CLASSES]:
            try:
                with Image.open(first):
                    pass
            except (OSError, ValueError, Image.DecompressionBombError) as err:
                raise ValueError(
                    f"{first} could not be opened as an image ({err}). Remove it from the folder "
                    "or replace it."
                ) from err
    return ImageFolderInfo(folder, tuple(classes))


def _scan_image_folders(base: Path | None) -> list[tuple[Path, ImageFolderInfo | str]]:
    """Return (folder, info or why it is not usable) for the image folders under ``base``.

    ``base`` itself is the one image folder when each of its sub-folders holds image files
    directly (``VIZLIB_DATA`` pointed straight at a folder of classes) and it holds no other
    data set. Otherwise its direct sub-folders are looked at (not hidden ones, nor those of
    MNIST, FashionMNIST and CIFAR-10): each read until the first image of each of its classes,
    ``_SCAN_BUDGET`` directory entries in all, nothing opened. A sub-folder whose classes hold
    images only in part is reported with the reason; one with no image at all is not an image
    folder and is left out.
    """
    if base is None or not base.is_dir():
        return []
    budget = _Budget(_SCAN_BUDGET)
    folders, data_root = [], False
    try:
        with os.scandir(base) as entries:
            for read, entry in enumerate(entries, 1):
                if read > _MAX_FOLDER_ENTRIES:
                    break
                data_root |= entry.name in _OTHER_DATASET_FOLDERS
                if _is_dir(entry):
                    folders.append(entry.name)
    except OSError:
        return []
    root = Path(os.path.abspath(base))
    if folders and not data_root:  # torchvision takes every sub-folder, hidden ones too
        firsts = [_first_image(str(root / f), budget, deep=False) for f in folders]
        if all(firsts):
            return [(root, ImageFolderInfo(root, tuple(sorted(folders))))]
    found: list[tuple[Path, ImageFolderInfo | str]] = []
    candidates = [f for f in folders if not f.startswith(".") and f not in _OTHER_DATASET_FOLDERS]
    stopped = f"not checked: the listing stops after {_SCAN_BUDGET:,} entries; give its path"
    for sub in sorted(candidates)[:_MAX_ROOT_FOLDERS]:
        folder = root / sub
        if budget.left <= 0:
            found.append((folder, stopped))
            continue
        try:
            classes, firsts = _examine(folder, budget)
        except ValueError:
            classes, firsts = [], {}  # no class folders: not an image folder
        if budget.left < 0:
            found.append((folder, stopped))
            continue
        if not firsts:
            continue
        if all(first is None for first in firsts.values()):
            continue  # no image in any class: not an image folder (a data set of other files)
        if any(first is None for first in firsts.values()):
            found.append((folder, _without_images(folder, firsts)))
        else:
            found.append((folder, ImageFolderInfo(folder, tuple(classes))))
    return found


def find_image_folders(root: str | os.PathLike | None = None) -> list[ImageFolderInfo]:
    """Return the image folders found under the data root (``VIZLIB_DATA``, or ``root``).

    Its direct sub-folders that are torchvision ``ImageFolder`` trees (not MNIST, FashionMNIST,
    CIFAR-10's folders), or the root itself when it is one; a bounded scan, nothing decoded
    (see ``check_image_folder``).
    """
    return [f for _, f in _scan_image_folders(_data_root(root)) if isinstance(f, ImageFolderInfo)]


def _folder_signature(folder: Path, classes: tuple[str, ...]) -> tuple:
    """Return the modification times (ns) of the folder and its class folders: adding or removing
    an image in a class folder changes them (deeper changes do not)."""
    try:
        return (folder.stat().st_mtime_ns, *((folder / c).stat().st_mtime_ns for c in classes))
    except OSError:
        return ()


@lru_cache(maxsize=2)
def _listed(folder: str, classes: tuple[str, ...], signature: tuple) -> tuple[tuple, tuple]:
    """Return (classes, samples ((path, label), ...)) as torchvision's ImageFolder lists them."""
    from torchvision.datasets.folder import make_dataset

    try:
        samples = make_dataset(
            folder, {c: i for i, c in enumerate(classes)}, extensions=IMAGE_EXTENSIONS
        )
    except (FileNotFoundError, OSError) as err:
        raise ValueError(f"Could not list {folder} as an image folder: {err}") from err
    return classes, tuple(samples)


def _folder_listing(name: str) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
    """Return (class names, samples (path, label)) of ``imagefolder:<path>``: every image file
    in torchvision's order, listed once per state of the class folders (a big tree takes
    seconds to walk), nothing decoded."""
    info = check_image_folder(name.split(":", 1)[1], probe=False)
    return _listed(str(info.path), info.classes, _folder_signature(info.path, info.classes))


class _UnreadableImage(ValueError):
    """A file of an image folder that PIL cannot decode: its ``path`` and ``reason``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"Could not read the image {path} ({reason}). Remove it from the folder or replace it."
        )
        self.path, self.reason = str(path), reason


def _read_folder_image(path: str, size: tuple[int, int]) -> torch.Tensor:
    """Return the image file at ``path`` as (3, H, W) float32 pixels in [0, 1], resized
    (bilinear, antialiased) to ``size`` = (H, W).

    EXIF orientation is applied, transparent pixels are laid on white (their hidden colours are
    arbitrary), grey and 16-bit images become RGB. A JPEG is decoded at the smallest scale
    (1/2, 1/4, 1/8) still at least ``size``: a 24-megapixel photo for a 224x224 model costs a
    fraction of a full decode. ``ValueError`` naming the file when it cannot be read.
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            if image.format == "JPEG":
                side = max(size)  # both sides, whatever the EXIF rotation
                image.draft(None, (side, side))
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(image, dtype=np.float32)
                peak = 65535.0 if image.mode.startswith("I;16") else max(float(arr.max()), 1.0)
                arr = np.repeat(np.clip(arr / peak, 0, 1)[..., None], 3, axis=2)
            else:
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
                    image = Image.alpha_composite(white, image.convert("RGBA"))
                arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0  # (h, w, 3)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise _UnreadableImage(path, str(err) or type(err).__name__) from err
    pixels = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]  # (1, 3, h, w)
    return _resize(pixels, size)[0]  # (3, H, W)


def _require_root(name: str, root: str | os.PathLike | None) -> Path:
    """Return the data root; ``ValueError`` saying how to set it when there is none."""
    base = _data_root(root)
    if base is None:
        raise ValueError(
            f"Dataset {name!r} is not bundled: set {DATA_ENV_VAR} to a folder that already holds "
            "it (nothing is downloaded), or use 'digits'."
        )
    return base


def _torchvision_arrays(
    key: str, name: str, split: str, root: str | os.PathLike | None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Return (uint8 images (N, 1, 28, 28), labels (N,) int64, class names) of MNIST or
    FashionMNIST on disk, as torchvision reads them."""
    from torchvision import datasets

    base = _require_root(name, root)
    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}[key]
    try:
        ds = cls(str(base), train=split == "train", download=False)
    except (RuntimeError, FileNotFoundError, OSError, AssertionError, TypeError) as err:
        # torchvision asserts and raises TypeError on files of the wrong format
        raise ValueError(
            f"Dataset {name!r} was not found under {base}, or could not be read ({err}). Nothing "
            "is downloaded at run time: put the files there first, or use 'digits'."
        ) from err
    return ds.data[:, None], ds.targets.to(torch.int64), _mnist_classes(key)  # (N, 1, 28, 28)


# ------------------------------------------------------------------------------------- CIFAR-10
# The python version of CIFAR-10: Python 2 pickles (protocol 2) of dicts with bytes keys, one per
# batch of images, read in this order as torchvision's CIFAR10 reads them.
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_CIFAR_META = "batches.meta"
_CIFAR_PIXELS = 3 * 32 * 32  # one image: a row of 1024 red, 1024 green, 1024 blue bytes
# Everything a CIFAR-10 pickle may name: numpy's array reconstruction (under its numpy 1 and
# numpy 2 module names; the batches were written by numpy 1) and the two classes it builds. A
# pickle that names anything else (os.system, builtins.eval, ...) is refused before it is looked up.
_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's _reconstruct, wherever this numpy keeps it
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
_REPLACE_CIFAR = (
    "Replace the folder with the one unpacked from the python version of CIFAR-10 "
    "(cifar-10-python.tar.gz)."
)


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global that a CIFAR-10 batch never needs."""


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays, dicts, lists, numbers and strings, and no other
    object: ``find_class`` is the only way a pickle reaches code, and it answers from a fixed
    table of four names."""

    def find_class(self, module: str, name: str):
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"{module}.{name}") from None


def _unpickle_cifar(path: Path, what: str):
    """Return the object pickled in ``path`` with ``_CifarUnpickler`` (bytes keys, as the official
    loader reads them); ``ValueError`` naming the file when it cannot be read or is no such pickle."""
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="bytes").load()
    except _RefusedGlobal as err:
        raise ValueError(
            f"{path} is not a CIFAR-10 {what}: it asks to load {err}, which CIFAR-10's files "
            f"never do, so it was refused and nothing in it was run. {_REPLACE_CIFAR}"
        ) from None
    except OSError as err:
        raise ValueError(f"{path} could not be read ({err.strerror or err}).") from err
    except Exception as err:  # any failure of an untrusted pickle means "not a batch"
        ended = isinstance(err, EOFError)  # truncated or empty
        detail = "the file ends too early" if ended else (str(err) or type(err).__name__)
        raise ValueError(
            f"{path} is not a CIFAR-10 {what} (it could not be unpickled: {detail}). "
            f"{_REPLACE_CIFAR}"
        ) from None


def _entry(obj: dict, key: str):
    """Return ``obj[key]`` under its bytes key (Python 2's pickles) or its str key, or None."""
    return obj.get(key.encode(), obj.get(key))


def _load_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (pixels (n, 3072) uint8, labels (n,) int64) of one CIFAR-10 batch file.

    Each row holds one 32x32 image as its red, green and blue planes; labels lie in 0..9.
    ``ValueError`` naming the file when it is not such a batch (wrong shapes or types,
    truncated, not a pickle, or a pickle that names anything but numpy's arrays).
    """
    batch = _unpickle_cifar(path, "batch")

    def refuse(why: str):
        return ValueError(f"{path} is not a CIFAR-10 batch: {why}. {_REPLACE_CIFAR}")

    if not isinstance(batch, dict):
        raise refuse(f"it holds a {type(batch).__name__}, not a dict")
    data, labels = _entry(batch, "data"), _entry(batch, "labels")
    if data is None or labels is None:
        raise refuse("it has no 'data' or no 'labels'")
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != _CIFAR_PIXELS
        or data.shape[0] == 0
    ):
        shape = getattr(data, "shape", None)
        found = f"{getattr(data, 'dtype', type(data).__name__)} of shape {shape}"
        raise refuse(f"its 'data' is {found}, not uint8 pixels of shape (n, {_CIFAR_PIXELS})")
    if not isinstance(labels, list) or len(labels) != len(data):
        found = f"{len(labels)} labels" if isinstance(labels, list) else type(labels).__name__
        raise refuse(f"its 'labels' are {found}, not a list of {len(data)} class numbers")
    if not all(type(v) is int and 0 <= v < len(_CIFAR_CLASSES) for v in labels):
        raise refuse("its 'labels' are not all class numbers 0 to 9")
    return np.ascontiguousarray(data), np.array(labels, dtype=np.int64)


def _load_cifar_meta(path: Path) -> tuple[str, ...]:
    """Return the 10 class names that CIFAR-10's ``batches.meta`` at ``path`` lists."""
    meta = _unpickle_cifar(path, "batches.meta")
    names = _entry(meta, "label_names") if isinstance(meta, dict) else None
    if (
        not isinstance(names, list)
        or len(names) != len(_CIFAR_CLASSES)
        or not all(isinstance(n, bytes | str) and n for n in names)
    ):
        raise ValueError(
            f"{path} is not CIFAR-10's batches.meta: it lists no 10 class names under "
            f"'label_names'. {_REPLACE_CIFAR}"
        )
    return tuple(n.decode("latin-1") if isinstance(n, bytes) else n for n in names)


def _file_state(path: Path) -> tuple[str, int, int] | None:
    """Return (path, size, modification time in ns) of a regular file, None when there is none."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (str(path), info.st_size, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None


@lru_cache(maxsize=2)
def _read_cifar_split(
    batches: tuple[tuple[str, int, int], ...], meta: tuple[str, int, int] | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Return (pixels (N, 3072) uint8, labels (N,) int64, class names) of the batch files in order,
    read once per state of the files (the key): both splits stay cached, 184 MB in all."""
    read = [_load_cifar_batch(Path(path)) for path, _size, _mtime in batches]
    data = np.concatenate([pixels for pixels, _ in read])  # (N, 3072)
    labels = np.concatenate([numbers for _, numbers in read])  # (N,)
    data.flags.writeable = False  # cached: callers take copies
    labels.flags.writeable = False
    names = _load_cifar_meta(Path(meta[0])) if meta is not None else tuple(_CIFAR_CLASSES)
    return data, labels, names


def _cifar_split(
    name: str, split: str, root: str | os.PathLike | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Return (pixels (N, 3072) uint8, labels (N,) int64, class names) of a CIFAR-10 split on
    disk, read-only: the batches in torchvision's order, each image a row of its red, green and
    blue planes. Class names come from ``batches.meta`` (the known ones when it is missing)."""
    base = _require_root(name, root)
    folder = base / _CIFAR_FOLDER
    files = [folder / f for f in _CIFAR_BATCHES[split]]
    states = tuple(_file_state(f) for f in files)
    missing = [f.name for f, state in zip(files, states, strict=True) if state is None]
    if missing:
        raise ValueError(
            f"Dataset {name!r} was not found under {base}: {folder} has no file "
            f"{', '.join(missing)}. Nothing is downloaded at run time: put the python version of "
            "CIFAR-10 there first, or use 'digits'."
        )
    return _read_cifar_split(states, _file_state(folder / _CIFAR_META))


def _mnist_classes(key: str) -> list[str]:
    return [str(i) for i in range(10)] if key == "mnist" else list(_FASHION_CLASSES)


_MNIST_FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # torchvision's class names


def _idx_offset(ndim: int) -> int:
    """Return the bytes before the data of an IDX file with ``ndim`` dimensions."""
    return 4 + 4 * ndim


def _idx_shape(path: Path, ndim: int) -> tuple[int, ...] | None:
    """Return the shape declared by the header of an IDX file of ``ndim``-D unsigned bytes, or
    None when the file is missing, of another kind, or not exactly header + data long."""
    try:
        with open(path, "rb") as f:
            header = f.read(_idx_offset(ndim))
        length = path.stat().st_size
    except OSError:
        return None
    if len(header) != _idx_offset(ndim) or header[:4] != bytes([0, 0, 0x08, ndim]):
        return None
    shape = tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return shape if length == _idx_offset(ndim) + math.prod(shape) else None


def _mnist_raw_files(
    key: str, split: str, root: str | os.PathLike | None
) -> tuple[tuple[Path, Path], tuple[int, int, int]] | None:
    """Return ((images file, labels file), images shape (N, H, W)) of an MNIST-format split that
    torchvision would read from its raw IDX files, checked from their headers alone; None when
    torchvision would do anything else (other dataset, legacy ``processed/*.pt`` files, files
    missing or malformed): the caller then lets torchvision read (or refuse) it."""
    base = _data_root(root)
    if key not in _MNIST_FOLDER or base is None:
        return None
    folder = base / _MNIST_FOLDER[key]
    if all((folder / "processed" / f).is_file() for f in ("training.pt", "test.pt")):
        return None  # torchvision prefers these
    prefix = "train" if split == "train" else "t10k"
    images, labels = (
        folder / "raw" / f"{prefix}-images-idx3-ubyte",
        folder / "raw" / f"{prefix}-labels-idx1-ubyte",
    )
    shape, label_shape = _idx_shape(images, 3), _idx_shape(labels, 1)
    if shape is None or label_shape is None or label_shape[0] != shape[0] or shape[0] == 0:
        return None
    return (images, labels), shape


def _files_signature(folder: Path) -> tuple:
    """Return (name, size, mtime in ns) of every file under ``folder``: changes when they do."""
    entries = []
    try:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                stat = f.stat()
                entries.append((str(f.relative_to(folder)), stat.st_size, stat.st_mtime_ns))
    except OSError:
        return ()  # unreadable: torchvision's read will say why
    return tuple(entries)


@lru_cache(maxsize=16)
def _counted(key: str, name: str, split: str, base: str, signature: tuple) -> int:
    """Return the samples torchvision reads for a split (a full read: cached per file state)."""
    return len(_torchvision_arrays(key, name, split, base)[1])


def _check_indices(indices, n: int) -> np.ndarray:
    """Return ``indices`` as an int64 array, all in [0, n) (all of them when None)."""
    if indices is None:
        return np.arange(n)
    pick = np.asarray(indices, dtype=np.int64).reshape(-1)
    if pick.size and (pick.min() < 0 or pick.max() >= n):
        raise ValueError(f"indices must lie in [0, {n}); got {pick.min()}..{pick.max()}")
    return pick


def dataset_size(name: str, split: str = "train", *, root: str | os.PathLike | None = None) -> int:
    """Return how many samples ``load_dataset(name, split)`` holds (an image folder: all its files).

    MNIST and FashionMNIST are counted from their file headers; CIFAR-10 and MNIST files that
    torchvision reads in another form are read once per state of their files (name, size,
    modification time), then reused (CIFAR-10's images too, by ``load_dataset``).
    """
    key = "imagefolder" if name.startswith("imagefolder:") else name
    if key == "digits":
        return len(_digits_split(split)[1])
    if key == "imagefolder":
        return len(_folder_listing(name)[1])
    if key not in _NORMALIZATION:
        raise ValueError(f"Unknown dataset {name!r}")
    raw = _mnist_raw_files(key, split, root)
    if raw is not None:
        return raw[1][0]  # from the file headers: nothing decoded
    if key == "cifar10":
        return len(_cifar_split(name, split, root)[1])  # read once, kept for load_dataset
    base = _data_root(root)
    if base is None:
        return len(_torchvision_arrays(key, name, split, root)[1])  # raises the clear error
    return _counted(key, name, split, str(base), _files_signature(base / _MNIST_FOLDER[key]))


def native_size(name: str) -> tuple[int, int] | None:
    """Return the (H, W) that the dataset's files hold (None for an image folder: it varies)."""
    return None if name.startswith("imagefolder:") else _NATIVE_SIZE.get(name)


def denormalize(
    images: torch.Tensor | np.ndarray,
    mean: list[float] | tuple[float, ...],
    std,
    *,
    clip: bool = True,
) -> torch.Tensor:
    """Return images (N, C, H, W) or (C, H, W) mapped back to pixel values, ``x * std + mean``,
    float32 on the images' device, clipped to [0, 1] unless ``clip=False`` (an optimised input
    may leave the range)."""
    x = torch.as_tensor(images, dtype=torch.float32)
    shape = (-1, 1, 1)
    m = torch.tensor([float(v) for v in mean], dtype=torch.float32, device=x.device).view(shape)
    s = torch.tensor([float(v) for v in std], dtype=torch.float32, device=x.device).view(shape)
    pixels = x * s + m
    return pixels.clamp(0.0, 1.0) if clip else pixels


def prepare_image(image: np.ndarray, meta: dict) -> torch.Tensor:
    """Return a (1, C, H, W) float32 tensor ready for the model described by ``meta``.

    ``image`` is (H, W) grey or (H, W, 3/4) colour, uint8 (0..255) or float. Floats already in
    [0, 1] are used as they are; other float ranges are min-max scaled to [0, 1]. The image is
    converted to ``meta["input_size"][0]`` channels (ITU-R 601 luma for grey), resized bilinearly
    (antialiased) to ``meta["input_size"][1:]`` and normalised with ``meta["mean"]``/``meta["std"]``.
    Raises ``ValueError`` for wrong shapes, images under 2×2 pixels or non-finite values.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"expected an (H, W) or (H, W, 3/4) image, got shape {arr.shape}")
    if min(arr.shape[:2]) < 2:
        height, width = arr.shape[:2]
        # width × height, the order image viewers and file browsers give a size in
        raise ValueError(f"The image is {width}×{height} pixels; at least 2×2 are needed.")
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
        x = arr.astype(np.float32)
        if not np.isfinite(x).all():
            raise ValueError("image contains NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    else:
        raise ValueError(f"unsupported image dtype {arr.dtype}")
    if x.ndim == 3:
        x = x[:, :, :3]  # drop alpha
    channels, height, width = (int(v) for v in meta["input_size"])
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)  # (C0, H, W)
    t = _to_channels(t[None], channels)  # (1, C, H, W)
    t = _resize(t.contiguous(), (height, width))  # (1, C, H, W)
    return _normalize(t, list(meta["mean"]), list(meta["std"])).contiguous()


def _to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Return pixel images (N, C0, H, W) with ``channels`` channels: ITU-R 601 luma for grey,
    the grey channel repeated for RGB."""
    if channels == images.shape[1]:
        return images
    if channels == 1 and images.shape[1] == 3:
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images * luma).sum(1, keepdim=True)  # (N, 1, H, W)
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)  # (N, 3, H, W)
    raise ValueError(f"the model expects {channels} channels; only 1 or 3 are supported")


def to_model_input(images: torch.Tensor, name: str, meta: dict) -> torch.Tensor:
    """Return ``images`` of dataset ``name`` (N, C0, h, w) as ``load_dataset`` gives them (float32
    normalised, or uint8 pixels 0..255 with ``keep_uint8``) prepared for the model described
    by ``meta``: (N, C, H, W) float32 at its input size and channels (as ``prepare_image``
    does), normalised with ``meta["mean"]``/``meta["std"]``.

    Batch by batch, this lets a big subset stay at the dataset's own small size until it is fed
    to a model with a big input (70,000 MNIST digits are 55 MB as uint8 at 28x28, 42 GB as
    float32 at 3x224x224).
    """
    channels, height, width = (int(v) for v in meta["input_size"])
    images = torch.as_tensor(images)
    if images.dtype == torch.uint8:
        pixels = images.float() / 255.0  # (N, C0, h, w) in [0, 1], as load_dataset scales them
    else:
        pixels = denormalize(images, *dataset_normalization(name))  # (N, C0, h, w) in [0, 1]
    pixels = _to_channels(pixels, channels)  # (N, C, h, w)
    pixels = _resize(pixels.contiguous(), (height, width))  # (N, C, H, W), values stay in [0, 1]
    return _normalize(pixels, list(meta["mean"]), list(meta["std"])).contiguous()


def to_display_images(images: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    """Return ``images`` of dataset ``name`` (N, C, h, w), as ``load_dataset`` gives them, as
    uint8 pixels 0..255 to show: (N, h, w) grey or (N, h, w, 3) colour.

    uint8 images (``keep_uint8``) come back as a view, no copy; float32 normalised ones are
    taken back to pixels and rounded.
    """
    images = torch.as_tensor(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, h, w), got {tuple(images.shape)}")
    if images.dtype != torch.uint8:
        pixels = denormalize(images, *dataset_normalization(name))  # (N, C, h, w) in [0, 1]
        images = pixels.mul_(255.0).round_().to(torch.uint8)
    shown = images.permute(0, 2, 3, 1).numpy()  # (N, h, w, C)
    return shown[..., 0] if shown.shape[-1] == 1 else shown


def load_dataset_for_model(
    name: str,
    meta: dict,
    split: str = "test",
    *,
    root: str | os.PathLike | None = None,
    max_samples: int | None = None,
    indices: np.ndarray | list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Return (images (N, C, H, W) prepared for the model described by ``meta``, labels, classes).

    Dataset ``name`` is loaded at the model's input size, taken back to pixels with the dataset's
    own normalisation, converted to the model's channels (as ``prepare_image`` does) and
    normalised with ``meta["mean"]``/``meta["std"]``: digits can be fed to an ImageNet model.
    ``max_samples`` / ``indices`` as in ``load_dataset``.
    """
    _channels, height, width = (int(v) for v in meta["input_size"])
    images, labels, class_names = load_dataset(
        name, split, input_size=(height, width), root=root, max_samples=max_samples,
        indices=indices,
    )  # fmt: skip
    return to_model_input(images, name, meta), labels, class_names


class FolderImages(NamedTuple):
    """The readable images of an image folder, as ``load_folder_for_model`` reads them."""

    images: torch.Tensor  # (N, C, H, W) prepared for the model
    labels: torch.Tensor  # (N,) int64: label i is classes[i]
    classes: list[str]
    indices: list[int]  # each image's index in the folder (torchvision's order)
    unreadable: list[tuple[str, str]]  # (path, why) of the chosen files that could not be read


def load_folder_for_model(
    name: str, meta: dict, *, indices: np.ndarray | list[int] | None = None
) -> FolderImages:
    """Return the images ``indices`` (all when None) of image folder ``name``
    (``imagefolder:<path>``) prepared for the model described by ``meta``, as
    ``load_dataset_for_model`` prepares them, skipping the files that cannot be read.

    ``load_dataset`` stops at the first such file, which is right for training (a set must not
    shrink unnoticed); a page that only looks at a folder should rather show the rest: one
    truncated photo among hundreds hid them all. The skipped files come back in ``unreadable``
    for the page to name, and ``indices`` says which files the images are. ``ValueError`` when
    the folder cannot be listed, or when none of the chosen files can be read.
    """
    if not name.startswith("imagefolder:"):
        raise ValueError(f"{name!r} is not an image folder (imagefolder:<path>)")
    _channels, height, width = (int(v) for v in meta["input_size"])
    found = _read_folder(name, (height, width), indices, skip=True)
    # the same numbers as load_dataset_for_model: the folder's normalisation, then the model's
    images = _normalize(found.images, *dataset_normalization(name))  # (N, 3, H, W)
    return found._replace(images=to_model_input(images, name, meta))


def _read_folder(
    name: str,
    size: tuple[int, int],
    indices: np.ndarray | list[int] | None,
    *,
    max_samples: int | None = None,
    skip: bool,
) -> FolderImages:
    """Return the files ``indices`` (else the first ``max_samples``, else all) of image folder
    ``name`` as (3, H, W) pixels in [0, 1] of ``size`` (H, W), with their labels. A file that
    cannot be read raises ``ValueError`` naming it, or with ``skip`` is left out and listed in
    ``unreadable``; ``ValueError`` too when nothing is chosen or nothing could be read."""
    classes, samples = _folder_listing(name)
    if indices is None:
        n = len(samples) if max_samples is None else min(len(samples), max_samples)
        pick = list(range(n))
    else:
        pick = _check_indices(indices, len(samples)).tolist()
    if not pick:
        raise ValueError(f"{name!r}: no images were selected.")
    read, kept, unreadable = [], [], []
    for i in pick:
        try:
            read.append(_read_folder_image(samples[i][0], size))  # (3, H, W)
        except _UnreadableImage as err:
            if not skip:
                raise
            unreadable.append((err.path, err.reason))
        else:
            kept.append(i)
    if not read:
        path, reason = unreadable[0]
        if len(pick) == 1:
            raise ValueError(
                f"Could not read the image {path} ({reason}), the one chosen from "
                f"{name.split(':', 1)[1]}. Remove it from the folder or replace it."
            )
        raise ValueError(
            f"None of the {len(pick):,} images read from {name.split(':', 1)[1]} could be "
            f"decoded (the first: {path}, {reason}). Are they images, and complete?"
        )
    labels = torch.tensor([samples[i][1] for i in kept], dtype=torch.int64)
    return FolderImages(torch.stack(read), labels, list(classes), kept, unreadable)
