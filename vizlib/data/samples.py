"""Inputs for the convolution playground, all offline: scikit-image's bundled photos, a digit
from scikit-learn's bundled digits, synthetic satellite-style fields, and validating readers
for uploaded PNG/JPEG, .npy and NetCDF files.

Images come back as float numpy arrays; photos in [0, 1], fields in their physical units.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np

__all__ = [
    "LIGHT_ON_DARK",
    "MAX_TABLE_UPLOAD_BYTES",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_PIXELS",
    "SAMPLE_IMAGES",
    "SYNTHETIC_FIELDS",
    "image_concerns",
    "light_background",
    "limit_size",
    "load_digit",
    "load_sample_image",
    "netcdf_variables",
    "read_image_upload",
    "read_netcdf_upload",
    "read_npy_upload",
    "read_table_upload",
    "sample_crops",
    "sample_image_names",
    "synthetic_field",
    "to_grayscale",
]

MAX_UPLOAD_BYTES = 50 * 2**20
MAX_TABLE_UPLOAD_BYTES = 200 * 2**20  # feature tables: 12,000 points x 2,048 float64 features
MAX_UPLOAD_PIXELS = 25_000_000  # about 5000 x 5000; larger images are refused before decoding

SAMPLE_IMAGES: dict[str, str] = {
    "camera": "Cameraman (512×512, grey): the classic test photo with sharp edges.",
    "astronaut": "Astronaut Eileen Collins (512×512, colour).",
    "coins": "Greek coins (303×384, grey): round objects on a flat background.",
    "moon": "Lunar surface (512×512, grey): craters and low contrast.",
    "text": "Handwritten and printed text (172×448, grey).",
    "checkerboard": "Checkerboard (200×200, grey): straight edges in both directions.",
    "coffee": "A cup of coffee (400×600, colour).",
    "chelsea": "Chelsea the cat (300×451, colour): fur texture.",
    "brick": "Brick wall texture (512×512, grey).",
}

SYNTHETIC_FIELDS: dict[str, str] = {
    "typhoon": "Typhoon-like vortex as an infrared satellite would see it: cloud-top brightness "
    "temperature in kelvin (cold spiral bands and eyewall, warm clear eye).",
    "front": "Surface temperature in °C with a curved cold front: warm air to the south-east, "
    "cold air to the north-west, a sharp gradient along the front.",
}


def sample_image_names() -> list[str]:
    """Return the names ``load_sample_image`` accepts (scikit-image's bundled images)."""
    return list(SAMPLE_IMAGES)


def load_sample_image(name: str) -> np.ndarray:
    """Return a scikit-image sample as float64 in [0, 1]: (H, W) grey or (H, W, 3) colour."""
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"Unknown sample {name!r}; choose one of {', '.join(SAMPLE_IMAGES)}.")
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    return _to_unit_float(image)


def sample_crops(
    per_photo: int, *, seed: int = 0, smallest: float = 0.3, largest: float = 0.8
) -> list[tuple[str, np.ndarray]]:
    """Return (label, crop) pairs: ``per_photo`` seeded random square crops of every sample
    photo, each crop float64 in [0, 1] as ``load_sample_image`` gives it.

    They come in rounds, the first crop of every photo, then the second of every photo, so
    that any first few mix the photos. A crop's side is a uniform share in [``smallest``,
    ``largest``] of its photo's shorter side, at a uniform position inside the photo; the first
    round is the centred largest square of each. They stand in for a set of varied images where
    a measure needs many (CKA over 9 photos is mostly noise) and no dataset is on disk. Labels
    read "coins, crop 3 of 8".
    """
    if per_photo < 1:
        raise ValueError(f"per_photo must be at least 1, got {per_photo}")
    if not 0 < smallest <= largest <= 1:
        raise ValueError(f"need 0 < smallest <= largest <= 1, got {smallest}, {largest}")
    rng = np.random.default_rng(seed)
    photos = {name: load_sample_image(name) for name in sample_image_names()}
    crops = []
    for k in range(per_photo):
        for name, image in photos.items():
            height, width = image.shape[:2]
            short = min(height, width)
            side = short if k == 0 else max(2, round(short * rng.uniform(smallest, largest)))
            top = (height - side) // 2 if k == 0 else int(rng.integers(0, height - side + 1))
            left = (width - side) // 2 if k == 0 else int(rng.integers(0, width - side + 1))
            crop = image[top : top + side, left : left + side]
            crops.append((f"{name}, crop {k + 1} of {per_photo}", crop))
    return crops


def load_digit(index: int = 0) -> tuple[np.ndarray, int]:
    """Return (image float64 (8, 8) in [0, 1], its label 0-9) from scikit-learn's bundled digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    n = len(digits.images)
    if not 0 <= index < n:
        raise ValueError(f"Digit index must be between 0 and {n - 1}, got {index}.")
    return digits.images[index] / 16.0, int(digits.target[index])


def synthetic_field(kind: str, *, size: int = 128, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Return a synthetic satellite-style field, float64 (size, size), in physical units.

    kind "typhoon": brightness temperature in K (about 200 K cold cloud tops to 295 K clear sky)
    with an eye, an eyewall and logarithmic spiral rain bands. kind "front": temperature in °C
    with a curved cold front. ``noise`` is the standard deviation of added Gaussian noise in the
    field's units; ``seed`` makes it repeatable.
    """
    if kind not in SYNTHETIC_FIELDS:
        raise ValueError(f"Unknown field {kind!r}; choose one of {', '.join(SYNTHETIC_FIELDS)}.")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not 8 <= size <= 2048:
        raise ValueError(f"Field size must be a whole number from 8 to 2048, got {size!r}.")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"Noise must be a non-negative number, got {noise!r}.")
    rng = np.random.default_rng(seed)
    axis = np.linspace(-1.0, 1.0, size)
    x, y = np.meshgrid(axis, -axis)  # (size, size) each; y points north (up)
    if kind == "typhoon":
        r = np.hypot(x, y) + 1e-6
        theta = np.arctan2(y, x)
        eye, wall = 0.06, 0.05
        eyewall = np.exp(-(((r - eye - wall) / wall) ** 2))
        # Logarithmic spiral: constant phase along theta = a ln r, bands winding inwards.
        phase = 3 * theta + 5.0 * np.log(r)
        bands = 0.5 * (1 + np.cos(phase)) * np.exp(-r / 0.55) * (r > eye)
        core = np.exp(-((r / 0.35) ** 2)) * (r > eye)
        cloud = np.clip(eyewall + 0.8 * bands + 0.5 * core, 0.0, 1.0)
        field = 295.0 - 95.0 * cloud
    else:
        front_line = 0.25 * np.sin(2.2 * x) - 0.35 * x  # y of the front at each x
        distance = (y - front_line) / 0.06  # in units of the front's width
        field = 12.0 - 8.0 * np.tanh(distance) - 6.0 * y  # cold north of the front
    if noise:
        field = field + rng.normal(0.0, noise, size=field.shape)
    return field


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """Return (H, W) luminance of an (H, W, 3) image (ITU-R 601 weights); (H, W) passes through."""
    image = np.asarray(image, dtype=float)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return image[..., :3] @ np.array([0.299, 0.587, 0.114])
    raise ValueError(f"Expected an (H, W) or (H, W, 3) image, got shape {image.shape}.")


def limit_size(image: np.ndarray, max_side: int = 256) -> np.ndarray:
    """Return the image shrunk (anti-aliased) so its longer side is at most ``max_side`` pixels.

    (H, W) or (H, W, C) in, same layout out; values keep their units.
    """
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    from skimage.transform import resize

    scale = max_side / max(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)), *image.shape[2:])
    return resize(image, shape, anti_aliasing=True, preserve_range=True)


def _to_unit_float(image: np.ndarray) -> np.ndarray:
    if image.dtype == bool:
        return image.astype(float)
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(float) / float(np.iinfo(image.dtype).max)
    return image.astype(float)


def _check_bytes(data: bytes, what: str, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"The {what} upload must be bytes.")
    if len(data) == 0:
        raise ValueError(f"The {what} file is empty.")
    if len(data) > max_bytes:
        raise ValueError(
            f"The {what} file is {len(data) / 2**20:.1f} MiB; at most "
            f"{max_bytes / 2**20:.0f} MiB is accepted."
        )


# datasets whose images are light strokes on a dark ground: a model trained on one reads a dark
# digit on white paper as something else
LIGHT_ON_DARK = frozenset({"digits", "mnist"})


def light_background(image: np.ndarray) -> bool:
    """Return whether an image in [0, 1] ((H, W) grey or (H, W, C) colour) has a light ground:
    the median brightness of its outer eighth on every side (at least one pixel) is above 0.5.
    A digit drawn on white paper has one; the digits of ``LIGHT_ON_DARK`` sets do not."""
    grey = np.asarray(image, dtype=np.float64)
    if grey.ndim == 3:
        grey = grey[..., :3].mean(axis=2)
    h, w = grey.shape
    bh, bw = max(1, h // 8), max(1, w // 8)
    frame = np.concatenate(
        [grey[:bh].ravel(), grey[-bh:].ravel(), grey[:, :bw].ravel(), grey[:, -bw:].ravel()]
    )
    return bool(np.median(frame) > 0.5)


DISTORTION_LIMIT = 3.0  # one side squeezed this many times more than the other: shapes warp


def image_concerns(image: np.ndarray, input_hw: tuple[int, int]) -> list[str]:
    """Return what makes an image (in [0, 1], (H, W) or (H, W, C)) a poor input for a model
    that takes ``input_hw`` (height, width), each as a sentence; empty when nothing does.

    - every pixel the same (to within 1/255): there is no picture, yet a model still answers;
    - its aspect ratio more than ``DISTORTION_LIMIT`` times the input's: resizing (which does
      not keep the ratio) squeezes one side that many times more than the other.
    """
    arr = np.asarray(image, dtype=np.float64)
    (h, w), (th, tw) = arr.shape[:2], input_hw
    concerns = []
    if np.ptp(arr.reshape(h * w, -1), axis=0).max() < 1 / 255:  # each channel flat: pure red too
        same = "colour" if arr.ndim == 3 else f"value ({arr.mean():.2f} of 1)"
        concerns.append(
            f"Every pixel of this image has the same {same}: it shows nothing, yet the model "
            "still answers, so its answer tells you little."
        )
    distortion = (w / h) / (tw / th)
    if max(distortion, 1 / distortion) > DISTORTION_LIMIT:
        concerns.append(
            f"This {w}×{h} image becomes {tw}×{th}: its {'width' if distortion > 1 else 'height'}"
            f" is squeezed {max(distortion, 1 / distortion):.0f} times more than its "
            f"{'height' if distortion > 1 else 'width'}, so its shapes are distorted. Crop it "
            "closer to the model's shape first."
        )
    return concerns


def read_image_upload(data: bytes, *, max_pixels: int = MAX_UPLOAD_PIXELS) -> np.ndarray:
    """Return an uploaded PNG/JPEG as float64 in [0, 1]: (H, W) grey or (H, W, 3) colour.

    Checks the pixel count from the header BEFORE decoding (decompression-bomb guard), applies
    the EXIF orientation, and lays transparent images on white (their hidden colours are
    arbitrary). Raises ``ValueError`` with a readable message for
    empty, huge, corrupt or unsupported files.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    _check_bytes(data, "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(bytes(data)))
            w, h = image.size
            if w * h > max_pixels:
                raise ValueError(
                    f"The image is {w}×{h} = {w * h:,} pixels; at most {max_pixels:,} are "
                    "accepted. Shrink it first."
                )
            if image.format not in ("PNG", "JPEG"):
                raise ValueError(f"Only PNG and JPEG images are accepted (this is {image.format}).")
            image = ImageOps.exif_transpose(image)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(
            "The image declares more pixels than can be decoded safely (a decompression bomb, "
            f"or simply a huge image); at most {max_pixels:,} pixels are accepted. Shrink it first."
        ) from None
    except UnidentifiedImageError:
        raise ValueError(
            "The file could not be read as a PNG or JPEG image: it is another format or damaged."
        ) from None
    except (OSError, SyntaxError) as err:
        raise ValueError(f"The file could not be read as a PNG or JPEG image ({err}).") from None
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=float)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        return np.clip(arr / peak, 0.0, 1.0)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # transparent pixels hold arbitrary colours: show them as a white page would
        grey = image.mode in ("LA", "L") or (image.mode == "P" and _palette_is_grey(image))
        image = Image.alpha_composite(
            Image.new("RGBA", image.size, (255, 255, 255, 255)), image.convert("RGBA")
        ).convert("L" if grey else "RGB")
    if image.mode not in ("L", "RGB"):
        image = image.convert("L" if image.mode == "1" else "RGB")
    return _to_unit_float(np.asarray(image))


def _palette_is_grey(image) -> bool:
    palette = np.asarray(image.getpalette() or [], dtype=int).reshape(-1, 3)
    return bool(len(palette)) and bool((palette == palette[:, :1]).all())


def _check_grid(arr: np.ndarray, what: str) -> np.ndarray:
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise ValueError(f"The {what} holds {arr.dtype} values; real numbers are needed.")
    arr = arr.astype(float)
    if arr.ndim != 2:
        raise ValueError(
            f"The {what} has {arr.ndim} dimension(s), shape {arr.shape}; a 2-D grid (H, W) is needed."
        )
    if min(arr.shape) < 2:
        raise ValueError(f"The {what} is {arr.shape[0]}×{arr.shape[1]}; at least 2×2 is needed.")
    if arr.size > MAX_UPLOAD_PIXELS:
        raise ValueError(
            f"The {what} has {arr.size:,} cells; at most {MAX_UPLOAD_PIXELS:,} are accepted."
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"The {what} contains {int(np.isnan(arr).sum())} NaN and {int(np.isinf(arr).sum())} "
            "infinite value(s); fill or remove them first."
        )
    with np.errstate(over="ignore"):
        beyond = int(np.isinf(arr.astype(np.float32)).sum())
    if beyond:
        # torch filters in float32, where these become infinite: refused here, not 'NaN or
        # infinite values' from a filter the user never fed them to
        raise ValueError(
            f"The {what} holds {beyond} value(s) beyond ±3.4e38 (its values run from "
            f"{arr.min():.3g} to {arr.max():.3g}): they do not fit the float32 numbers torch "
            "filters with. Rescale it first."
        )
    return arr


def read_npy_upload(data: bytes) -> np.ndarray:
    """Return an uploaded .npy array as float64 (H, W), never unpickling.

    A leading or trailing axis of length 1 is squeezed away. Raises ``ValueError`` for corrupt
    files, object arrays, a number of dimensions other than 2, grids under 2×2, NaN or infinity,
    and values beyond float32's ±3.4e38, where torch computes.
    """
    _check_bytes(data, ".npy")
    arr = _load_npy(data)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape([n for i, n in enumerate(arr.shape) if not (n == 1 and i in (0, 2))][:2])
    return _check_grid(arr, ".npy array")


def _load_npy(data: bytes) -> np.ndarray:
    """Return the array of .npy bytes, never unpickling; ``ValueError`` saying what is wrong."""
    # np.load reads anything without the NumPy header as a pickle (and says so): name the real
    # problem instead. .npz archives (zip, "PK") are left to the check below.
    if bytes(data[:6]) != b"\x93NUMPY" and bytes(data[:2]) != b"PK":
        raise ValueError("The file is not a .npy array (it lacks the NumPy header).")
    try:
        arr = np.load(io.BytesIO(bytes(data)), allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise ValueError(
                "The .npy file holds Python objects, which would need unpickling; "
                "save a plain numeric array instead."
            ) from None
        raise ValueError(_npy_problem(str(err))) from None
    except (OSError, EOFError) as err:
        raise ValueError(_npy_problem(str(err))) from None
    if not isinstance(arr, np.ndarray):
        raise ValueError("The file is not a single .npy array (an .npz archive?).")
    return arr


def _npy_problem(numpy_message: str) -> str:
    """Return the sentence for a .npy file NumPy refused, in place of NumPy's own wording
    (e.g. "we only support format version (1,0), (2,0), and (3,0), not (32, 103)")."""
    expected = (
        "Expected what numpy.save writes: a NumPy header (format version 1.0, 2.0 or 3.0, the "
        "array's type and shape), then its values."
    )
    version = re.search(r"not \((\d+), ?(\d+)\)", numpy_message)
    data = re.search(r"reading array data, expected (\d+) bytes got (\d+)", numpy_message)
    if "format version" in numpy_message and version:
        reason = f"its header gives format version {version[1]}.{version[2]}"
    elif data:
        reason = (
            f"it holds {int(data[2]):,} of the {int(data[1]):,} bytes of values its header "
            "announces (cut short?)"
        )
    elif "EOF" in numpy_message or "reshape" in numpy_message:
        reason = "it ends before its header and values are complete (cut short?)"
    else:  # unparsable header, missing keys, unknown type
        reason = "its header (the array's type and shape) cannot be read"
    return f"The file is not a valid .npy file: {reason}. {expected}"


_OTHER_SEPARATORS = ((b";", "semicolons"), (b"\t", "tabs"), (b"|", "bars"))


def read_table_upload(
    data: bytes, filename: str, *, max_bytes: int = MAX_TABLE_UPLOAD_BYTES
) -> np.ndarray:
    """Return an uploaded .npy or .csv table as float64 (rows = points, columns = features).

    A CSV may start with a header row; a 1-D array becomes one column. Never unpickles. Raises
    ``ValueError`` for empty, oversized, non-numeric or non-finite tables and other shapes.
    """
    import pandas as pd  # only here: the other readers do without it

    _check_bytes(data, "table", max_bytes)
    # a .npy file's own problems are said as they are, not inside "Could not read ... as numbers"
    arr = _load_npy(data) if filename.lower().endswith(".npy") else None
    if arr is None:  # a CSV: pandas would read "1;2;3" as one column of text
        first = bytes(data[:4096]).split(b"\n", 1)[0]
        other = next((name for sep, name in _OTHER_SEPARATORS if sep in first), None)
        if other is not None and b"," not in first:
            raise ValueError(
                f"{filename!r} separates its columns with {other}: a CSV needs commas."
            )
    try:
        if arr is None:
            arr = pd.read_csv(io.BytesIO(bytes(data)), header=None).to_numpy()
            if arr.size and not np.issubdtype(arr.dtype, np.number):  # a header row
                arr = pd.read_csv(io.BytesIO(bytes(data))).to_numpy()
        arr = np.asarray(arr, dtype=np.float64)
    except (ValueError, TypeError, OSError) as err:  # pandas' parser errors are ValueErrors
        raise ValueError(f"Could not read {filename!r} as numbers ({err}).") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"Expected a 2-D table (rows = points), got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError("The table contains NaN or infinite values.")
    return arr


# The first bytes of NetCDF classic (CDF1), 64-bit offset (CDF2), 64-bit data (CDF5) and
# NetCDF-4 (an HDF5 file) files.
_NETCDF_SIGNATURES = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")
# What netCDF4 raises when the bytes behind a variable are missing or corrupt: netCDF-C status
# codes arrive as RuntimeError or OSError, a bad decode as ValueError.
_NETCDF_READ_ERRORS = (RuntimeError, OSError, ValueError, IndexError, TypeError)


def _netcdf_reason(err: Exception) -> str:
    # netCDF4 names the file it was given ("upload.nc", made up here): keep netCDF-C's words only
    return getattr(err, "strerror", None) or str(err)


def _open_netcdf(data: bytes):
    import netCDF4

    _check_bytes(data, "NetCDF")
    try:
        return netCDF4.Dataset("upload.nc", mode="r", memory=bytes(data))
    except (OSError, RuntimeError, ValueError) as err:
        if bytes(data[:8]).startswith(_NETCDF_SIGNATURES):
            raise ValueError(
                "The file could not be read as NetCDF: it starts like a NetCDF file but looks "
                f"damaged or truncated ({_netcdf_reason(err)})."
            ) from None
        raise ValueError(f"The file could not be read as NetCDF ({_netcdf_reason(err)}).") from None


def _read_netcdf(name: str, var, index: tuple):
    """Return ``var[index]``; ``ValueError`` saying the file is damaged if its bytes are not there."""
    try:
        return var[index]
    except _NETCDF_READ_ERRORS as err:
        raise ValueError(
            f"The NetCDF file looks damaged or truncated: variable {name!r} could not be read "
            f"({_netcdf_reason(err)})."
        ) from None


def _is_grid_variable(var) -> bool:
    try:  # string (VLEN) and compound variables have no numpy number dtype
        numeric = np.issubdtype(np.dtype(var.dtype), np.number)
    except TypeError:
        numeric = False
    # every dimension non-empty: a 3-D variable along an empty unlimited dimension has no slice
    return numeric and var.ndim >= 2 and min(var.shape) >= 1 and min(var.shape[-2:]) >= 2


def netcdf_variables(data: bytes) -> dict[str, str]:
    """Return the NetCDF variables that hold a 2-D grid, name -> description (dims, shape, units).

    Variables with more than two dimensions qualify (their first slice is read). Each variable's
    last value is read, as that lies furthest into the file: a file cut short or with a damaged
    data block raises ``ValueError`` saying so, as do a file that is not NetCDF and one
    without any grid variable.
    """
    with _open_netcdf(data) as ds:
        out = {}
        for name, var in ds.variables.items():
            if var.ndim and var.size:
                _read_netcdf(name, var, (-1,) * var.ndim)
            if not _is_grid_variable(var):
                continue
            long_name = getattr(var, "long_name", "") or getattr(var, "standard_name", "")
            units = getattr(var, "units", "")
            shape = "×".join(str(n) for n in var.shape)
            desc = f"{name} ({', '.join(var.dimensions)}) {shape}"
            if long_name:
                desc += f": {long_name}"
            if units:
                desc += f" [{units}]"
            out[name] = desc
    if not out:
        raise ValueError(
            "The NetCDF file has no numeric variable with two or more dimensions "
            "(at least 2×2), so there is no grid to filter."
        )
    return out


def read_netcdf_upload(data: bytes, variable: str | None = None) -> np.ndarray:
    """Return one 2-D grid from an uploaded NetCDF file as float64 (H, W), in the variable's units.

    ``variable`` defaults to the first grid variable ``netcdf_variables`` lists; for 3-D and
    higher variables the first index of each leading dimension is taken. Missing values
    (``_FillValue`` / masked) are filled with the mean of the valid cells; an all-missing grid
    raises ``ValueError``, as do NaN/inf left after that, a damaged or truncated file and a
    grid of more than ``MAX_UPLOAD_PIXELS`` cells (refused before reading: compressed data
    could expand far beyond the upload's size).
    """
    names = netcdf_variables(data)
    if variable is None:
        variable = next(iter(names))
    if variable not in names:
        raise ValueError(
            f"Variable {variable!r} is not a 2-D grid in this file; choose one of {', '.join(names)}."
        )
    with _open_netcdf(data) as ds:
        var = ds.variables[variable]
        rows, cols = var.shape[-2:]
        if rows * cols > MAX_UPLOAD_PIXELS:
            raise ValueError(
                f"NetCDF variable {variable!r} is {rows}×{cols} = {rows * cols:,} cells; at most "
                f"{MAX_UPLOAD_PIXELS:,} are accepted."
            )
        index = (0,) * (var.ndim - 2) + (slice(None), slice(None))
        values = np.ma.masked_invalid(
            np.ma.asarray(_read_netcdf(variable, var, index)).astype(float)
        )
    if values.count() == 0:
        raise ValueError(f"Variable {variable!r} holds only missing values in its first 2-D slice.")
    grid = values.filled(float(values.mean()))
    return _check_grid(np.asarray(grid), f"NetCDF variable {variable!r}")
