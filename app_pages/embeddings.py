"""Embeddings: t-SNE / PCA maps of a model's layers, side by side, with separability metrics."""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st
import torch

import ui
from ui import links
from ui.embeddings import ModelChoice, get_model, pick_model, read_table
from ui.scatter import linked_scatter
from vizlib import embedding
from vizlib.data import (
    available_datasets,
    dataset_normalization,
    dataset_size,
    keeps_uint8,
    load_dataset,
    native_size,
    to_display_images,
    to_model_input,
)
from vizlib.plots import plot_embeddings, scatter_payload

P = "tsne"  # widget-key prefix of this page
DRAW_MAX = 20000
TSNE_PCA_DIMS = 50  # "First reduce each layer to ... principal components" (t-SNE options)
SOURCES = ("Model layers", "Uploaded features", "Uploaded coordinates")
COORDINATES = SOURCES[2]
MAX_LAYERS = 4
EXTRACT_BATCH = 64  # images per forward pass of the feature extraction ...
CPU_BIG_BATCH = 16  # ... but on a CPU for an input over BIG_INPUT_PIXELS: the activations of
# 64 images at 224 x 224 outgrow the caches. On this 2-core CPU, shared with other work:
# resnet18, 200 digits, 5.6 s in passes of 16, 6.2 s of 64; vit_b_16, 96 digits, 37 s and 49 s.
# Passes of 8 took resnet18 21-26 s: its two threads wait on each other at every pass
BIG_INPUT_PIXELS = 64 * 64
TIMED_BATCHES = (2, 16)  # the extraction time is estimated from passes of these sizes (the
# larger one no larger than the extraction's)
TIMING_BUDGET_S = 2.0  # seconds of timed passes of one size, after the first
# passes quicker than this in all are repeated (up to MAX_PASSES): a busy machine can stall
# every pass for about 90 ms a while, and 3 passes of lenet_digits said 44 s for 1,000 points
QUICK_PASSES_S, MAX_PASSES = 0.3, 25
# every key the page's link may hold: the model (written by pick_model) and the settings
LINK_KEYS = {"model", "source", "dataset", "points", "layers", "method", "perplexity"}
LINK_KEYS |= {"lr_auto", "lr", "iters", "exaggeration", "seed", "pca"}
# the settings of the computed maps, neither drawn nor in the link for uploaded coordinates
METHOD_KEYS = {"method", "perplexity", "lr_auto", "lr", "iters", "exaggeration", "seed", "pca"}

st.title("Embeddings: how the layers separate the classes")
st.caption(
    "Each layer's features mapped to 2-D with t-SNE or PCA. Early layers mix the classes; "
    "by the penultimate layer a good network has made them (nearly) linearly separable."
)

try:
    import umap  # noqa: F401

    METHODS = ["t-SNE", "PCA", "UMAP"]
except ImportError:
    METHODS = ["t-SNE", "PCA"]


def decimal_parser(low: float, high: float) -> Callable[[str], float]:
    """Return a parser of a link's number for a decimal ``st.number_input`` over [low, high]:
    any finite number in range (the widget takes any, not only multiples of its step)."""

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # NaN and infinities fail too
            raise ValueError(f"expected a number from {low:g} to {high:g}")
        return value

    return parse


def layers_parser(candidates: list[str]) -> Callable[[str], list[str]]:
    """Return a parser of the link's layers: up to MAX_LAYERS of the model's ``candidates``,
    comma-separated, or none (an empty ``layers=``, as the emptied multiselect writes it)."""
    parse = links.multichoice_parser(candidates)

    def parse_layers(raw: str) -> list[str]:
        chosen = parse(raw) if raw else []
        if len(chosen) > MAX_LAYERS:
            raise ValueError(
                f"expected at most {MAX_LAYERS} of {', '.join(candidates)}, comma-separated"
            )
        return chosen

    return parse_layers


def page_settings(datasets: list[str]) -> links.Table:
    """Return the settings that do not depend on the model: query key -> (widget key, default,
    allowed). A link may name only the ``datasets`` found on this machine (never a typed path)."""
    return {
        "source": (f"{P}.source", SOURCES[0], SOURCES),
        "dataset": (f"{P}.dataset", datasets[0], tuple(datasets)),
        "points": (f"{P}.points", 1000, (50, 70000)),
        "method": (f"{P}.method", METHODS[0], tuple(METHODS)),
        "perplexity": (f"{P}.perplexity", 30.0, decimal_parser(2.0, 200.0)),
        "lr_auto": (f"{P}.lr_auto", True, (False, True)),
        "lr": (f"{P}.lr", 200.0, decimal_parser(1.0, 10000.0)),
        "iters": (f"{P}.iters", 1000, (50, 5000)),
        "exaggeration": (f"{P}.exag", 12.0, decimal_parser(1.0, 50.0)),
        "seed": (f"{P}.seed", 0, (0, 2**31 - 1)),
        "pca": (f"{P}.pca_first", True, (False, True)),
    }


def layer_settings(candidates: list[str]) -> links.Table:
    """Return the layers setting for a model whose mappable layers are ``candidates``: by
    default the input, the last hidden layer and the penultimate one."""
    default = [candidates[0], *candidates[1:-1][-1:], candidates[-1]][:MAX_LAYERS]
    return {"layers": (f"{P}.layers", list(dict.fromkeys(default)), layers_parser(candidates))}


# The chosen images as they are kept: uint8 pixels where the files hold them at their own size
# (MNIST, FashionMNIST, CIFAR10: 1 byte per value, the display images are a view of them), else
# float32 normalised plus a uint8 copy to display (5 bytes per value).
MAX_PIXEL_BYTES = 2 * 2**30


@st.cache_data(max_entries=2, show_spinner="Loading the dataset…")
def dataset_points(
    dataset: str, model_hw: tuple[int, int], n_points: int, seed: int
) -> tuple[torch.Tensor, np.ndarray, list[str], int]:
    """Return (images (N, C0, h, w) as load_dataset gives them with keep_uint8, labels (N,),
    class names, points available) for a seeded random subset of train + test.

    The subset is chosen before anything is loaded or resized and stays at the dataset's own
    size (an image folder: the model's); ``vizlib.data.to_model_input`` prepares each batch and
    ``vizlib.data.to_display_images`` gives the images to show (no copy for uint8 ones).
    """
    splits = ("train",) if dataset.startswith("imagefolder:") else ("train", "test")  # one split
    sizes = [dataset_size(dataset, split) for split in splits]
    available = sum(sizes)
    pick = np.sort(np.random.default_rng(seed).permutation(available)[:n_points])
    hw = native_size(dataset) or model_hw
    channels = len(dataset_normalization(dataset)[0])
    need = len(pick) * channels * hw[0] * hw[1] * (1 if keeps_uint8(dataset, hw) else 4 + 1)
    if need > MAX_PIXEL_BYTES:
        fit = int(len(pick) * MAX_PIXEL_BYTES / need)
        raise ValueError(
            f"{len(pick):,} images at {hw[0]}x{hw[1]} need {need / 2**30:.1f} GB of memory; "
            f"choose at most {fit:,} points."
        )
    parts, offset = [], 0
    for split, size in zip(splits, sizes, strict=True):
        chosen = pick[(pick >= offset) & (pick < offset + size)] - offset
        parts.append(load_dataset(dataset, split, input_size=hw, indices=chosen, keep_uint8=True))
        offset += size
    images = torch.cat([part[0] for part in parts])  # (N, C0, h, w)
    labels = torch.cat([part[1] for part in parts])
    return images, labels.numpy(), parts[0][2], available


def model_features(bar, choice: ModelChoice, dataset: str, n_points: int,
                   layers: tuple[str, ...], seed: int) -> tuple:  # fmt: skip
    """Return ({layer: (N, F)}, labels, class names, display images (N, h, w[, 3]) uint8);
    progress on ``bar``.

    Features stay in this session (several MB each) under their small key (an upload by its
    SHA-256), so changing only the t-SNE settings reuses them.
    """
    cache = st.session_state.setdefault(f"{P}.features", {})
    key = (choice, dataset, n_points, layers, seed)
    if key in cache:
        return cache[key]
    model, meta, lock = get_model(choice)
    images, labels, class_names, available = dataset_points(
        dataset, tuple(meta["input_size"][1:]), n_points, seed
    )
    if available < n_points:
        what = dataset.replace("imagefolder:", "The image folder ", 1)
        st.info(f"{what} has {available:,} images: using all of them.")

    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        eta = ui.time_left(time.perf_counter() - started, done, total)
        bar.progress(
            0.1 * done / total, text=f"Extracting features: {done:,}/{total:,} images{eta}"
        )

    with lock:  # hooks go on the shared model
        feats = embedding.layer_features(
            model, images, list(layers), batch_size=extract_batch(meta, choice.device),
            device=choice.device,
            progress=progress, transform=functools.partial(to_model_input, name=dataset, meta=meta),
        )  # fmt: skip
    cache.clear()
    cache[key] = (feats, labels, class_names, to_display_images(images, dataset))
    return cache[key]


def extract_batch(meta: dict, device: str) -> int:
    """Return the images per forward pass of the extraction: EXTRACT_BATCH, or CPU_BIG_BATCH on
    a CPU for a model whose input has more than BIG_INPUT_PIXELS pixels."""
    pixels = int(np.prod(meta["input_size"][1:]))
    cpu = torch.device(device).type == "cpu"
    return CPU_BIG_BATCH if cpu and pixels > BIG_INPUT_PIXELS else EXTRACT_BATCH


def per_image_seconds(timings: dict[int, float], *, batch: int, prepare_s: float = 0.0) -> float:
    """Return the seconds per image of the extraction in passes of ``batch`` images: forward
    passes fitted to the seconds of passes of two sizes ``{images: seconds}`` (a line, fixed
    cost per pass + cost per image, through the larger one, its slope that of the two points),
    plus ``prepare_s``, the seconds per image of preparing a batch for the model
    (``to_model_input``: resizing and normalising, which the extraction does batch by batch).

    A slope that is not positive, or steeper than the larger pass's own cost per image (a fixed
    cost below 0), cannot be true of a forward pass: a busy machine slowed one of the two. The
    larger pass's cost per image is used then, without extrapolating.
    """
    (small, t_small), (large, t_large) = sorted(timings.items())
    slope = (t_large - t_small) / (large - small)
    per_image = slope if 0 < slope <= t_large / large else t_large / large
    fixed = t_large - large * per_image  # seconds per pass whatever its size (>= 0)
    return per_image + fixed / batch + prepare_s


@st.cache_data(max_entries=16, show_spinner="Timing the model's forward pass…")
def seconds_per_image(choice: ModelChoice, dataset: str | None) -> float:
    """Return the seconds feature extraction takes per image of ``dataset`` in passes of
    ``extract_batch`` images: forward passes fitted to passes of TIMED_BATCHES images, and the
    preparation of a batch from the dataset's stored size (``per_image_seconds``).

    On a CPU a pass of 2 images can cost several times more per image than one of 64 (the
    weights are read once per pass, small matrix products run slowly): timed at 2 alone, the
    estimate was 2 to 5 times too high for alexnet and the digit models. A large input on a
    CPU is extracted in passes of 16, the size timed: fitted at 2 and 16 to passes of 64, which
    cost more per image, the estimate ran 10-20% low for resnet18 and vit_b_16. Each
    size's median of its passes is used: one pass can be inflated many times by a busy machine,
    but the fastest of three is faster than the passes an extraction on a shared machine gets.
    Passes stop once they took TIMING_BUDGET_S, and a model too slow for a pass of the larger
    size within it (vgg16 on a CPU) is timed at half that size.
    """
    model, meta, lock = get_model(choice)
    device = choice.device
    batch = extract_batch(meta, device)
    small, large = TIMED_BATCHES[0], min(TIMED_BATCHES[1], batch)
    x = torch.zeros(large, *meta["input_size"], device=device)  # (16, C, H, W)

    def median_seconds(run: Callable[[], object]) -> float:
        timings: list[float] = []
        for _ in range(MAX_PASSES):
            started = time.perf_counter()
            run()
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize(device)
            timings.append(time.perf_counter() - started)
            spent = sum(timings)
            if spent >= TIMING_BUDGET_S or (len(timings) >= 3 and spent >= QUICK_PASSES_S):
                break
        return float(np.median(timings))

    with lock, torch.inference_mode():
        model(x[:1])  # warm-up: first calls allocate
        seconds = {small: median_seconds(lambda: model(x[:small]))}
        if seconds[small] / small * large > TIMING_BUDGET_S:
            large //= 2
        seconds[large] = median_seconds(lambda: model(x[:large]))
    prepare_s = 0.0
    if dataset is not None:  # a batch as dataset_points keeps it, prepared as the extraction does
        hw = native_size(dataset) or tuple(meta["input_size"][1:])
        channels = len(dataset_normalization(dataset)[0])
        dtype = torch.uint8 if keeps_uint8(dataset, hw) else torch.float32
        stored = torch.zeros(batch, channels, *hw, dtype=dtype)  # (B, C0, h, w)
        prepare_s = median_seconds(lambda: to_model_input(stored, dataset, meta)) / batch
    return per_image_seconds(seconds, batch=batch, prepare_s=prepare_s)


def sharp(image: np.ndarray, side: int = 200) -> np.ndarray:
    """Return ``image`` (h, w[, 3]) with each pixel repeated so it is about ``side`` pixels wide:
    the browser would blur a small image (the 8x8 digits) it scales up."""
    rep = max(1, side // max(image.shape[:2]))
    return np.repeat(np.repeat(image, rep, axis=0), rep, axis=1)


@st.cache_data(max_entries=32, show_spinner=False)
def layer_scores(key: tuple, _features: np.ndarray, _coords: np.ndarray, _labels) -> dict:
    """Return embedding.layer_metrics for one layer (cached by the small ``key`` only)."""
    return embedding.layer_metrics(_features, _coords, _labels)


# ----------------------------------------------------------------------------- controls
datasets = available_datasets()
usable = [d for d, status in datasets.items() if not status.startswith("not") and "<" not in d]
settings = page_settings(usable)
for warning in links.load_settings(settings, prefix=f"{P}.", from_link=links.first_visit(f"{P}.")):
    st.warning(warning, icon=":material/link_off:")
dataset_options = [*usable, *ui.typed_folder_options()]
if st.session_state[f"{P}.dataset"] not in dataset_options:  # typed paths since switched off
    st.session_state[f"{P}.dataset"] = usable[0]


def save_link(table: links.Table) -> None:
    """Remember the settings and write those that apply into the link: the dataset and points
    only for the model's layers, the method and its options not for uploaded coordinates, and
    never a typed folder (a path on this server)."""
    shown = set(table)
    if source != SOURCES[0]:
        shown -= {"dataset", "points"}
    elif st.session_state[f"{P}.dataset"] not in usable:
        shown.discard("dataset")
    if source == COORDINATES:
        shown -= METHOD_KEYS
    # the link's layers wait while an uploaded model is missing; they go with another source
    keep = LINK_KEYS if source == SOURCES[0] else LINK_KEYS - {"layers"}
    links.save_settings(table, prefix=f"{P}.", keep=keep, shown=shown)


source = st.radio("Data", SOURCES, horizontal=True, key=f"{P}.source")
features: dict[str, np.ndarray] = {}
labels: np.ndarray | None = None
class_names: list[str] | None = None
images: np.ndarray | None = None
coords_upload: pd.DataFrame | None = None
data_key: tuple = ()
stem = ""  # the model's name in download file names (ui.file_stem); none for uploaded tables

layer_table: links.Table = {}
if source == "Model layers":
    c1, c2, c3 = st.columns(3)
    picked = c2.selectbox(
        "Dataset",
        dataset_options,
        format_func=ui.dataset_label,
        key=f"{P}.dataset",
        help="\n".join(f"- {d}: {s}" for d, s in datasets.items()),
    )
    n_points = c3.number_input(
        "Points", 50, 70000, step=250, key=f"{P}.points", help="Random subset of train+test."
    )
    # a typed folder path stays for the session (another page visited), never in the link
    folder_key = f"{P}.folder_path"
    if folder_key not in st.session_state and f"{P}.saved_folder" in st.session_state:
        st.session_state[folder_key] = st.session_state[f"{P}.saved_folder"]
    dataset = ui.image_folder_choice(picked, P)  # None: a typed path that is no image folder
    if folder_key in st.session_state:
        st.session_state[f"{P}.saved_folder"] = st.session_state[folder_key]
    device = str(ui.current_device())
    # drawn after the other controls: a stop for a missing upload keeps their values
    loaded = pick_model(P, device, where=c1)
    if loaded is None:
        save_link(settings)
        st.stop()
    choice, model, meta, _lock = loaded
    stem = ui.file_stem(meta["name"])  # "upload_lenet_digits" for uploaded weights
    if dataset is not None and dataset.startswith("imagefolder:"):
        st.caption(
            f"{ui.folder_channels_note(int(meta['input_size'][0]))} The labels are the names of "
            "its sub-folders; Points are drawn at random from all its images (one split)."
        )
    # Extraction is a forward pass of every point, 64 (16 for a large input on a CPU) at a
    # time: minutes for vgg16 / vit_b_16 on a CPU.
    try:
        extract_s = seconds_per_image(choice, dataset) * int(n_points)
    except (RuntimeError, ValueError):
        extract_s = 0.0
    if extract_s > 30:
        c3.warning(
            f"Extracting features of {int(n_points):,} points takes about {extract_s:,.0f} s on "
            f"{device} with {meta['name']}; fewer points are faster (Stop interrupts a run).",
            icon=":material/hourglass:",
        )
    candidates = embedding.embedding_layers(model)
    # the layers follow the model: read from the link the first time a model is there
    layer_table = layer_settings(candidates)
    for warning in links.load_settings(
        layer_table, prefix=f"{P}.", from_link=links.first_visit(f"{P}.layers.")
    ):
        st.warning(warning, icon=":material/link_off:")
    layers = st.multiselect(
        f"Layers to compare (at most {MAX_LAYERS})",
        candidates,
        max_selections=MAX_LAYERS,
        key=f"{P}.layers",
        help="input = raw pixels; conv blocks / encoder blocks (ViT: class token); the penultimate layer.",
    )
    data_key = (choice, dataset, int(n_points), tuple(layers))
elif source == "Uploaded features":
    c1, c2 = st.columns(2)
    up = c1.file_uploader("Features (.npy or .csv, rows = points)", ["npy", "csv"], key=f"{P}.feat")
    up_lab = c2.file_uploader(
        "Labels (optional, one integer per row)", ["npy", "csv"], key=f"{P}.lab"
    )
    if up is not None:
        arr = read_table(up, "Features")
        too_big = 0 if arr is None else int((np.abs(arr) > np.finfo(np.float32).max).sum())
        if too_big:  # float32 would make them inf, refused later as "NaN or infinite values"
            st.error(
                f"Features: {too_big:,} value(s) beyond ±3.4e38 do not fit the float32 numbers "
                "the maps are computed in; rescale the features."
            )
        elif arr is not None and arr.shape[1] < 2:
            st.error(
                f"Features: {arr.shape[0]:,} rows but only 1 column; a 2-D map needs at least 2 "
                "feature columns (rows = points, columns = features)."
            )
        elif arr is not None:
            features = {"uploaded": arr.astype(np.float32)}
            data_key = ("upload", up.file_id)
            if up_lab is not None:
                lab = read_table(up_lab, "Labels")
                if lab is not None and (lab.shape[1] != 1 or len(lab) != len(arr)):
                    st.error(
                        f"Labels: need one column with {len(arr)} rows, got shape {lab.shape}."
                    )
                elif lab is not None and (lab % 1 != 0).any():
                    # astype(int) would truncate 2.5 to 2 and colour the point as class 2
                    row = int(np.flatnonzero(lab[:, 0] % 1 != 0)[0])
                    st.error(
                        f"Labels: need whole numbers (class indices), got {lab[row, 0]:g} in "
                        f"row {row}; the points are drawn without labels."
                    )
                elif lab is not None:
                    labels = lab[:, 0].astype(int)
                    data_key += (up_lab.file_id,)
    layers = list(features)
else:
    up = st.file_uploader(
        "Coordinates CSV (columns layer, index, x, y[, label], as downloaded here)",
        ["csv"],
        key=f"{P}.coords",
    )
    layers = []
    if up is not None:
        try:
            df = pd.read_csv(io.BytesIO(up.getvalue()))
            missing = {"layer", "x", "y"} - set(df.columns)
            if missing:
                sep = next((s for s in (";", "\t", "|") if s in "".join(map(str, df.columns))), "")
                hint = f" (it looks separated by {sep!r}, not commas)" if sep else ""
                st.error(f"The CSV lacks the column(s) {sorted(missing)}{hint}.")
            elif df.empty:
                st.error("The CSV has a header but no rows.")
            elif not np.isfinite(df[["x", "y"]].to_numpy(dtype=float)).all():
                st.error("The CSV has non-numeric or infinite x/y values.")
            else:
                coords_upload = df
                if "label" in df:
                    lab = pd.to_numeric(df["label"], errors="coerce")
                    if lab.isna().any() or (lab % 1 != 0).any():
                        st.warning(
                            "The label column is not all integers: the points are drawn "
                            "without labels."
                        )
                        coords_upload = df.drop(columns="label")
        except pd.errors.EmptyDataError:
            st.error("The CSV is empty.")
        except (ValueError, pd.errors.ParserError) as err:
            st.error(f"Could not read the CSV: {err}")

results: dict = st.session_state.setdefault(f"{P}.results", {})
run = stopped = False
if source != COORDINATES:  # a CSV's coordinates are drawn as they are: nothing to compute
    method = st.radio("Method", METHODS, horizontal=True, key=f"{P}.method")
    no_tsne = method != "t-SNE"  # PCA and UMAP take none of these options
    with st.expander("t-SNE options" + (f" (not used by {method})" if no_tsne else ""),
                     expanded=False):  # fmt: skip
        # "Early exaggeration" wrapped onto two lines in a fifth of the row at 1024 px (93 px):
        # its column is wider (107 px) for the short label and its help, the seed's narrower
        o1, o2, o3, o4, o5 = st.columns([1, 1, 1, 1.15, 0.85])
        perplexity = o1.number_input("Perplexity", 2.0, 200.0, key=f"{P}.perplexity")
        # the box under its number: "Learning rate auto" above it was cut to "Learn…" at 1024 px
        if f"{P}.lr_auto" not in st.session_state:
            # given by load_settings above, yet once (CI, an upload's quick reruns) gone by here:
            # the last value used again, not a KeyError on the page
            st.session_state[f"{P}.lr_auto"] = st.session_state.get(f"{P}.saved", {}).get(
                f"{P}.lr_auto", True
            )
        learning_rate = o2.number_input("Learning rate", 1.0, 10000.0, key=f"{P}.lr",
                                        disabled=st.session_state[f"{P}.lr_auto"])  # fmt: skip
        lr_auto = o2.checkbox("auto", key=f"{P}.lr_auto",
                              help="Learning rate max(N / early exaggeration / 4, 50), as "
                              "scikit-learn's 'auto'; untick to type your own.")  # fmt: skip
        if lr_auto:  # the greyed box keeps the typed rate for later: say the one used
            n_known = int(n_points) if source == "Model layers" else (
                len(next(iter(features.values()))) if features else 0)  # fmt: skip
            if n_known:
                rate = embedding.auto_learning_rate(n_known, st.session_state[f"{P}.exag"])
                o2.caption(f"auto uses {rate:,.4g} for {n_known:,} points")
        n_iter = o3.number_input("Iterations", 50, 5000, step=50, key=f"{P}.iters")
        exaggeration = o4.number_input(
            "Exaggeration", 1.0, 50.0, key=f"{P}.exag",
            help=f"Early exaggeration: for the first {embedding.EXPLORATION_ITERS} iterations "
            "the attraction between neighbours is multiplied by this factor, so that the "
            "clusters form apart.",
        )  # fmt: skip
        seed = o5.number_input("Seed", 0, 2**31 - 1, key=f"{P}.seed")  # also picks the points
        pca_first = st.checkbox(
            f"First reduce each layer to its top {TSNE_PCA_DIMS} principal components",
            key=f"{P}.pca_first",
            help="The usual practice for wide features: it drops noise dimensions, and the "
            "neighbour search (N² x dimensions) gets far cheaper; on a 2-core CPU, 10,000 "
            "points with 3,136 features: 12.9 s without, 1.8 s with. Layers with fewer features "
            "are used as they are. The scores below are always computed on the full features.",
        )
    settle = int(n_iter) - embedding.EXPLORATION_ITERS  # iterations after the exaggeration
    if method == "t-SNE" and settle < embedding.EXPLORATION_ITERS:
        st.warning(
            (f"All {int(n_iter)} iterations" if settle <= 0 else f"Only {settle} of the iterations")
            + f" come after the early exaggeration (the first {embedding.EXPLORATION_ITERS}):"
            " the map will not have settled, its clusters squeezed together and its scores low."
            " 1,000 is usual; 500 at least.",
            icon=":material/hourglass_empty:",
        )
    b1, b2, _ = st.columns([1, 1, 4])
    run = b1.button("Compute", type="primary", key=f"{P}.run")
    # Clicking Stop during a run makes Streamlit interrupt the script at its next element
    # update (every progress tick), then rerun with this button True: the run ends, nothing is
    # stored.
    stopped = b2.button("Stop", key=f"{P}.stop")
    params = (method, float(perplexity), "auto" if lr_auto else float(learning_rate),
              int(n_iter), float(exaggeration), int(seed), bool(pca_first))  # fmt: skip
    run_key = (data_key, params)
    if stopped and st.session_state.get(f"{P}.last") == run_key:
        # the maps of these settings were stored; the stop cut the drawing and scoring after
        st.info("Stopped after the maps were computed: they are drawn and scored below.")
    elif stopped:
        st.warning("Stopped: the computation was interrupted. Press Compute to start again.")
save_link(settings | layer_table)


def _compute() -> dict | None:
    """Run extraction and the embedding with a progress bar; return the result or None."""
    global features, labels, class_names, images
    bar = st.progress(0.0, text="Starting…")
    started = time.perf_counter()
    if source == "Model layers":
        if dataset is None:
            st.error("Give the path of an image folder that can be read (see above) first.")
            return None
        if not layers:
            st.error("Choose at least one layer.")
            return None
        try:
            features, labels, class_names, images = model_features(bar, *data_key, int(seed))
        except (ValueError, RuntimeError) as err:
            st.error(f"Feature extraction failed: {err}")
            return None
    if not features:
        if source == "Uploaded features" and up is None:
            st.error("Upload a features file first.")
        return None  # else the reason the upload was refused is shown above
    maps: dict[str, np.ndarray] = {}
    n_layers = len(features)
    n_points = len(next(iter(features.values())))  # every layer holds the same points
    least = 4 if method == "t-SNE" else 2  # PCA: 2 components need 2 points
    if n_points < least:
        st.error(f"{method} needs at least {least} points; the features have {n_points}.")
        return None
    perp = min(float(perplexity), (n_points - 2) / 3)  # 3 x perplexity neighbours must exist
    if method == "t-SNE" and perp < float(perplexity):
        st.warning(
            f"Perplexity lowered to {perp:.1f} for {n_points} points: t-SNE uses 3 x perplexity "
            "neighbours of each point, so it must stay below (points - 2) / 3."
        )
    for i, (name, X) in enumerate(features.items()):
        base, share = 0.1 + 0.9 * i / n_layers, 0.9 / n_layers
        first: dict[str, float] = {}  # this layer's first callback: the rate is timed from there

        def tick(it: int, kl: float, base=base, share=share, name=name, first=first,
                 later=n_layers - 1 - i) -> bool:  # fmt: skip
            now = time.perf_counter()
            t0, it0 = first.setdefault("t", now), first.setdefault("it", it)
            # the remaining layers take n_iter iterations each (the cost depends on N, not on F)
            todo = (n_iter - it0) + later * n_iter
            eta = ui.time_left(now - t0, it - it0, todo)
            bar.progress(min(1.0, base + share * it / n_iter),
                         text=f"{name}: iteration {it}/{n_iter}, KL {kl:.3f}{eta}")  # fmt: skip
            return True

        try:
            if method == "PCA":
                maps[name] = embedding.pca(X, 2, device=ui.current_device())[0]
            elif method == "UMAP":
                import umap

                maps[name] = umap.UMAP(random_state=int(seed)).fit_transform(X).astype(np.float32)
            else:
                maps[name] = embedding.tsne(
                    X, perplexity=perp, n_iter=int(n_iter), early_exaggeration=float(exaggeration),
                    learning_rate=params[2], seed=int(seed), device=ui.current_device(),
                    callback=tick, pca_dims=TSNE_PCA_DIMS if pca_first else None,
                )  # fmt: skip
        except ValueError as err:
            st.error(f"{name}: {err}")
            return None
        except torch.OutOfMemoryError:
            st.error(f"{name}: the GPU ran out of memory; use fewer points or the CPU.")
            return None
    bar.progress(1.0, text=f"Done in {time.perf_counter() - started:.1f} s")
    return {"maps": maps, "features": features, "labels": labels, "class_names": class_names,
            "images": images, "stem": stem}  # fmt: skip


if run and not stopped:
    result = _compute()
    if result is not None:
        results.clear()  # one result per session keeps memory bounded
        results[run_key] = result
        st.session_state[f"{P}.last"] = run_key

shown = None
if source == COORDINATES and coords_upload is not None:
    df = coords_upload
    if "index" in df:  # the same point in every layer by its index, not by its row's place
        df = df.sort_values(["index"], kind="stable")
    parts = {str(name): part for name, part in df.groupby("layer", sort=False)}
    first = next(iter(parts.values()))
    n = len(first)
    maps = {}
    for name, part in parts.items():
        if len(part) != n:
            st.error(f"Layer {name!r} has {len(part)} rows but the first layer has {n}.")
        elif "index" in df and (part["index"].to_numpy() != first["index"].to_numpy()).any():
            st.error(f"Layer {name!r} holds other indices than the first layer; it is left out.")
        else:
            maps[name] = part[["x", "y"]].to_numpy(np.float32)
    if len(maps) > MAX_LAYERS:
        st.info(
            f"The CSV holds {len(maps)} layers: the first {MAX_LAYERS} are drawn and downloaded "
            f"({', '.join(list(maps)[:MAX_LAYERS])})."
        )
    shown = {"maps": dict(list(maps.items())[:MAX_LAYERS]), "features": None, "images": None,
             "labels": first["label"].to_numpy(int) if "label" in df else None,
             "index": first["index"].to_numpy() if "index" in df else None,
             "class_names": None, "stem": ""}  # fmt: skip
elif source != COORDINATES and st.session_state.get(f"{P}.last") in results:
    shown = results[st.session_state[f"{P}.last"]]
    if st.session_state[f"{P}.last"] != run_key:
        st.info("Showing the last computed result; press Compute to apply the changed settings.")

if shown is None:
    if source != COORDINATES:
        st.info("Choose the data and press **Compute**.")
    elif up is None:
        st.info("Upload a CSV of coordinates to draw its maps.")
    st.stop()

maps = shown["maps"]
n = len(next(iter(maps.values())))
if n > DRAW_MAX:
    st.info(f"{n:,} points: {DRAW_MAX:,} random ones are drawn; the CSV holds all of them.")
# uploaded coordinates keep the CSV's own x and y: no method of this page made them
axis = "" if source == COORDINATES else "PC" if method == "PCA" else method
chosen, layer = None, None
if shown["images"] is not None:
    # the linked scatter: hover shows each point's image, ringed in every layer's map
    run_id = str(abs(hash(st.session_state.get(f"{P}.last"))))
    cached = st.session_state.get(f"{P}.payload")
    if cached is None or cached[0] != run_id:
        with st.spinner("Preparing the maps and their thumbnails…"):
            payload = scatter_payload(maps, shown["labels"], class_names=shown["class_names"],
                                      images=shown["images"], max_points=DRAW_MAX, axis_label=axis)  # fmt: skip
        cached = (run_id, {**payload, "run": run_id})
        st.session_state[f"{P}.payload"] = cached
    picked = linked_scatter(cached[1], key=f"{P}.scatter")
    if picked and picked.get("run") == run_id and picked.get("layer") in maps:
        chosen, layer = int(picked["index"]), picked["layer"]
else:
    fig = plot_embeddings(maps, shown["labels"], class_names=shown["class_names"],
                          max_points=DRAW_MAX, axis_label=axis,
                          axis_titles=None if axis else ("x", "y"))  # fmt: skip
    event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key=f"{P}.chart")
    points = event.selection.points if event and event.selection else []
    if points:
        chosen = int(points[0]["customdata"])
if chosen is not None and 0 <= chosen < n and shown["images"] is not None:
    coords = maps[layer]
    near = np.argsort(((coords - coords[chosen]) ** 2).sum(1))[1:9]
    c_big, c_strip = st.columns([1, 3])
    lab_txt = "" if shown["labels"] is None else f", label {shown['labels'][chosen]}"
    names = shown["class_names"]
    if lab_txt and names and names[shown["labels"][chosen]] != str(shown["labels"][chosen]):
        lab_txt += f" ({names[shown['labels'][chosen]]})"  # e.g. an image folder's sub-folder
    # each image as wide as its column: fixed 200 and 64 px overran a 1024-px page's columns,
    # the large image over the strip's caption and the eight neighbours over one another
    with c_big.container(width=200):
        st.image(sharp(shown["images"][chosen]), caption=f"index {chosen}{lab_txt}",
                 width="stretch")  # fmt: skip
    c_strip.caption(f"Its 8 nearest neighbours in the {layer} map")
    with c_strip.container(width=8 * 80):
        cols = st.columns(8, gap="small")
    for col, j in zip(cols, near, strict=True):
        col.image(sharp(shown["images"][j]), caption=f"#{j}", width="stretch")
elif chosen is not None:
    st.caption(f"Selected point index {chosen}.")
elif shown["images"] is not None:
    st.caption("Click a point to see its image and its nearest neighbours in the map.")
else:  # uploaded tables have no images
    st.caption("Click a point to see its index.")

if shown["features"] is not None:
    st.subheader("Per-layer metrics")
    rows = []
    with st.spinner("Scoring each layer: k-NN, linear probe, trustworthiness…", show_time=True):
        for name, coords in maps.items():
            key = (st.session_state.get(f"{P}.last"), name)
            m = layer_scores(key, shown["features"][name], coords, shown["labels"])
            rows.append({"layer": name, "features": shown["features"][name].shape[1],
                         "k-NN, features": m["knn_original"], "k-NN, map": m["knn_map"],
                         "linear probe": m["linear_probe"],
                         "trustworthiness": m["trustworthiness"]})  # fmt: skip
    # short headers, so that the table fits a projector's 1024 px; the details in their help
    held_out = "fitted on 75 % of the points, scored on the other 25 %"
    helps = {
        "features": "Number of features (values per point) of the layer.",
        "k-NN, features": f"Accuracy of a 5-nearest-neighbour classifier on the layer's full "
        f"features, {held_out}.",
        "k-NN, map": f"Accuracy of the same 5-nearest-neighbour classifier on the 2-D map, "
        f"{held_out}.",
        "linear probe": f"Accuracy of a logistic regression on the standardised features, "
        f"{held_out}.",
        "trustworthiness": f"How well the map keeps each point's {m['trust_k']} nearest "
        "neighbours of the full features (scikit-learn's trustworthiness, 1 = all kept).",
    }
    config = {c: st.column_config.NumberColumn(help=h, format="%.3f") for c, h in helps.items()}
    config["features"] = st.column_config.NumberColumn(help=helps["features"], format="%d")
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config=config)
    used = f"a random {m['points']:,} of the {n:,} points" if m["points"] < n else "all points"
    trust = f"a random {2000:,}, as it costs N²" if n > 2000 else "all points"
    labelled = shown["labels"] is not None
    if np.isnan(m["knn_original"]):  # layer_metrics scores no accuracy without two classes
        why = "no labels were given" if not labelled else "they need 8 points of 2 classes or more"
        st.caption(
            f"Accuracies (fractions of held-out points classified right) are left blank: {why}. "
            f"Trustworthiness (k = {m['trust_k']}) on {trust}."
        )
    else:
        st.caption(
            f"Accuracies: fractions of held-out points classified right, on {used} (75 % to "
            f"fit, 25 % to score); trustworthiness (k = {m['trust_k']}) on {trust}."
        )

frames = []
for name, coords in maps.items():
    frame = pd.DataFrame(
        {
            "layer": name,
            "index": np.arange(n) if shown.get("index") is None else shown["index"],
            "x": coords[:, 0],
            "y": coords[:, 1],
        }  # fmt: skip
    )
    if shown["labels"] is not None:
        frame["label"] = shown["labels"]
    frames.append(frame)
csv_name = "_".join(filter(None, ["embedding_coordinates", shown["stem"]])) + ".csv"
st.download_button("Download coordinates (CSV)", pd.concat(frames).to_csv(index=False),
                   file_name=csv_name, mime="text/csv", key=f"{P}.download",
                   on_click="ignore")  # fmt: skip
