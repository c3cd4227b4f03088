"""Layer Similarity: linear CKA of every layer against every layer, within one network, against
the same network before training, or against another network (a CNN against a ViT)."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
import streamlit as st
import torch

import ui
from ui import count_slider, links
from ui.inside_cnns import (
    SAMPLE_SET,
    LoadedModel,
    image_set,
    image_set_picker,
    image_set_settings,
    model_picker,
)
from vizlib import filters, similarity, zoo
from vizlib.data import prepare_image, sample_crops
from vizlib.plots import plot_cka_matches, plot_cka_matrix
from vizlib.plots.similarity import MAX_TICK_LABELS

P = "cka"
ITSELF, INITIAL = (
    "itself",
    "init",
)  # as the link writes them; INITIAL reads "itself at initialisation"
FEW_IMAGES = 32  # below this the estimate is noisy, and the page says so
GRANULARITY = {"blocks": "Blocks", "all": "Every layer"}
TOKENS = {"all": "every token", "class": "the class token"}
CROPS_PER_PHOTO = 16  # the 9 sample photos give 144 images
SMALL_INPUT = 64 * 64  # pixels: a pass this small is computed at once, a larger one on request
MAX_RESULTS = 6
LINK_KEYS = {"model", "images", "compare", "layers", "tokens", "n"}


def compare_options(loaded: LoadedModel) -> list[str]:
    """What model A can be compared with: itself, itself before training (where it was trained)
    and the zoo's other models of the same dataset (the digit models; torchvision's)."""
    meta = loaded.meta
    options = [ITSELF]
    if meta.get("pretrained", True):
        options.append(INITIAL)
    for name in zoo.list_models():
        if name == loaded.name:
            continue
        other = zoo.checkpoint_metadata(name) if name in zoo.checkpoint_names() else None
        dataset = other["dataset"] if other else "imagenet"  # torchvision's
        if dataset == meta["dataset"]:
            options.append(name)
    return options


def settings(options: list[str], available: int, default_n: int) -> links.Table:
    """The page's shareable settings: query key -> (widget key, default, allowed)."""
    return {
        "compare": (f"{P}.compare", ITSELF, links.choice_parser(options)),
        "layers": (f"{P}.layers", "blocks", tuple(GRANULARITY)),
        "tokens": (f"{P}.tokens", "all", tuple(TOKENS)),
        "n": (f"{P}.n", default_n, (similarity.MIN_IMAGES, max(available, similarity.MIN_IMAGES))),
    }


@st.cache_data(max_entries=4, show_spinner="Cropping the sample photos…")
def crop_set(input_size: tuple, mean: tuple, std: tuple) -> torch.Tensor:
    """Return (N, C, H, W): CROPS_PER_PHOTO seeded crops of every sample photo, prepared for a
    model of this input size and normalisation."""
    meta = ui.preparation_meta(input_size, mean, std)
    return torch.cat([prepare_image(crop, meta) for _, crop in sample_crops(CROPS_PER_PHOTO)])


def images_for(source: str, meta: dict) -> torch.Tensor:
    """Return the set's images (N, C, H, W) prepared for a model of ``meta``: the sample photos
    as crops (nine photos say little about a representation)."""
    if source == SAMPLE_SET:
        return crop_set(*ui.preparation_key(meta))
    return image_set(source, meta)[0]


@st.cache_data(max_entries=16, show_spinner="Finding the layers…")
def layers_of(key: tuple, _model: torch.nn.Module, _example: torch.Tensor, _lock) -> list[str]:
    """similarity_layers of the model described by key = (model, device, granularity, tokens)."""
    _, _, granularity, tokens = key
    with _lock:  # "all" runs a pass with hooks on the shared model
        return similarity.similarity_layers(_model, _example, granularity, tokens=tokens)


def set_label(source: str, n: int) -> str:
    images = f"{n:,} images"
    if source == SAMPLE_SET:
        return (
            f"{images}: square crops of scikit-image's sample photos ({CROPS_PER_PHOTO} per "
            "photo, seeded, the first of each photo first)"
        )
    if source.startswith("imagefolder:"):
        return f"{images} of {ui.dataset_label(source)}"
    return f"the first {images} of the {source} test split"


st.title("Layer Similarity (CKA)")
st.caption(
    "Which layers see the images alike? Each layer's features of the same images give an "
    "image-by-image similarity matrix; centred kernel alignment (CKA) compares two such "
    "matrices, from 0 (unrelated; the unbiased estimate used here can dip a little below 0) "
    "to 1 (the same up to a rotation and a scale), whatever the "
    "layers' sizes (Kornblith et al., 2019). Compare a network with itself (its blocks show "
    "as bright squares), with its own random initialisation (what training changed), or a CNN "
    "with a Vision Transformer (Raghu et al., 2021)."
)

loaded = model_picker(P)
if loaded is None:
    st.stop()
meta = loaded.meta
link_from = links.first_visit(f"{P}.")
source = image_set_picker(P, meta, samples=True, from_link=link_from)
if source is None:
    st.stop()
try:
    available = len(images_for(source, meta))
except ValueError as err:
    st.error(str(err))
    st.stop()
small = int(np.prod(meta["input_size"][1:])) <= SMALL_INPUT
options = compare_options(loaded)
table = settings(options, available, min(available, 512 if small else 64))
for warning in links.load_settings(table, prefix=f"{P}.", from_link=link_from):
    st.warning(warning, icon=":material/link_off:")
if source == SAMPLE_SET:
    st.caption(
        f"CKA needs many images: each of the {available // CROPS_PER_PHOTO} photos gives "
        f"{CROPS_PER_PHOTO} square crops (30–80% of its shorter side, seeded), {available} in all."
    )

c1, c2, c3 = st.columns(3)
compare = c1.selectbox(
    "Compare with",
    options,
    format_func=lambda option: "itself at initialisation" if option == INITIAL else option,
    key=f"{P}.compare",
    help="Itself: every layer against every other. Itself at initialisation: the same "
    "architecture with the random weights its training began from (same seed). Or another "
    "shipped model of the same dataset, each seeing the same images at its own input size.",
)
granularity = c2.radio(
    "Layers",
    list(GRANULARITY),
    format_func=GRANULARITY.get,
    key=f"{P}.layers",
    horizontal=True,
    help="Blocks: the input, each stage or transformer block, the penultimate layer and the "
    "output. Every layer: every module's output in call order (a ReLU used twice is two "
    "layers), leaving out those that repeat the layer before them (dropout, flatten).",
)
with c3:
    n = count_slider(
        "Number of images",
        similarity.MIN_IMAGES,
        available,
        table["n"][1],
        key=f"{P}.n",
        help="How many images of the set (the first ones). The CKA is estimated over "
        "minibatches of up to 64 images with the unbiased HSIC, so it does not depend on the "
        "batch size; more images, less noise.",
    )

model_b, meta_b, lock_b = loaded.model, meta, None
if compare == INITIAL:
    model_b = None  # built fresh when computed: ours alone, no lock
elif compare != ITSELF:
    shared = ui.load_shared_model(compare, loaded.device)
    if shared is None:
        st.stop()
    model_b, meta_b, lock_b = shared
vit = similarity.has_tokens(loaded.model) or (
    model_b is not None and similarity.has_tokens(model_b)
)
tokens = (
    st.radio(
        "A transformer layer's features",
        list(TOKENS),
        format_func=TOKENS.get,
        key=f"{P}.tokens",
        horizontal=True,
        help="Every token: all the patch tokens and the class token of an image, flattened "
        "(as Raghu et al.). The class token: only what the classifier reads.",
    )
    if vit
    else "all"
)
links.save_settings(
    table | image_set_settings(P, meta, samples=True), prefix=f"{P}.", keep=LINK_KEYS
)

name_a = loaded.stem
name_b = {ITSELF: name_a, INITIAL: f"{name_a} at initialisation"}.get(compare, compare)
try:
    images_a = images_for(source, meta)[:n]
    images_b = images_a if compare in (ITSELF, INITIAL) else images_for(source, meta_b)[:n]
except ValueError as err:
    st.error(str(err))
    st.stop()
n = min(len(images_a), len(images_b))  # an image folder may fit fewer of a larger input
images_a, images_b = images_a[:n], images_b[:n]
try:
    layers_a = layers_of(
        (loaded.name, loaded.device, granularity, tokens), loaded.model, images_a[:4], loaded.lock
    )
    layers_b = (
        layers_a
        if compare in (ITSELF, INITIAL)
        else layers_of((compare, loaded.device, granularity, tokens), model_b, images_b[:4], lock_b)
    )
except (ValueError, RuntimeError) as err:
    st.error(f"Could not list the layers: {err}")
    st.stop()

key = (loaded.name, loaded.device, compare, source, n, granularity, tokens)
results = st.session_state.setdefault(f"{P}.results", {})
button_slot = st.empty()
wanted = key in results or small
if not wanted:
    wanted = button_slot.button(
        f"Compute the CKA of {len(layers_a)} × {len(layers_b)} layers over {n} images",
        key=f"{P}.run",
        icon=":material/play_arrow:",
        type="primary",
    )
if not wanted:
    st.info(
        "Each image goes once through each network, so this takes about as long as two "
        f"forward passes over {n} images on {loaded.device}."
    )
    st.stop()
if key not in results:
    button_slot.empty()  # no second click on a button that has started the run
    bar = st.progress(0.0, text="Comparing the layers…")
    started = time.perf_counter()

    def advance(done: int, total: int) -> None:
        left = ui.time_left(time.perf_counter() - started, done, total)
        bar.progress(done / total, text=f"Comparing the layers: batch {done} of {total}{left}")

    # the bar moves per batch; the spinner's clock shows a long single batch is still running
    try:
        with st.spinner("Running the images through the networks…", show_time=True):
            if compare == INITIAL:
                model_b = filters.untrained_model(meta).requires_grad_(False).to(loaded.device)
            result = similarity.layer_similarity(
                loaded.model,
                images_a,
                layers_a,
                None if compare == ITSELF else model_b,
                images_b,
                layers_b,
                tokens=tokens,
                batch_size=64 if small else 32,
                lock_a=loaded.lock,
                lock_b=lock_b,
                progress=advance,
            )
    except torch.cuda.OutOfMemoryError:
        st.error(
            f"The GPU ran out of memory for {n} images; choose fewer, or the CPU in the sidebar."
        )
        st.stop()
    except (ValueError, RuntimeError) as err:
        st.error(f"Could not compare the layers: {err}")
        st.stop()
    bar.empty()
    if len(results) >= MAX_RESULTS:
        results.pop(next(iter(results)))
    results[key] = result
result = results[key]
button_slot.empty()

st.caption(
    f"Linear CKA over {set_label(source, result.images)}, in {result.batches} "
    f"minibatch{'es' if result.batches != 1 else ''}, "
    f"{result.seconds:.1f} s on {loaded.device}."
)
if result.images < FEW_IMAGES:
    st.caption(
        f"Only {result.images} images: each CKA here is a noisy estimate, and other images "
        f"may give visibly different values. Use {FEW_IMAGES} or more to compare layers."
    )
broken = [*result.nonfinite_a, *(f"{name_b}: {n}" for n in result.nonfinite_b if compare != ITSELF)]
if broken:
    st.error(
        f"{len(broken)} layer(s) put out NaN or infinite values ({', '.join(broken[:3])}"
        + (" …" if len(broken) > 3 else "")
        + "): their CKA is undefined and their rows or columns are blank. Check the weights "
        "(an upload trained with too high a learning rate?) or the input.",
        icon=":material/error:",
    )
dead = [
    layer
    for layer, row in zip(result.layers_a, result.matrix, strict=True)
    if np.isnan(row).all() and layer not in result.nonfinite_a
]
if dead:
    st.warning(
        f"{len(dead)} layer(s) of {name_a} are the same for every image ({', '.join(dead[:3])}"
        + (" …" if len(dead) > 3 else "")
        + "): CKA is undefined for them and their rows are blank.",
        icon=":material/warning:",
    )
st.plotly_chart(
    plot_cka_matrix(
        result.matrix,
        result.layers_a,
        result.layers_b,
        name_a=name_a,
        name_b=name_b,
        images=result.images,
    ),
    key=f"{P}.matrix",
)
# On a projector nobody hovers: the numbered axes' layers, named (one line for the same list).
numbered: dict[tuple[str, ...], str] = {}
for name, layers in ((name_a, result.layers_a), (name_b, result.layers_b)):
    if len(layers) > MAX_TICK_LABELS:
        numbered.setdefault(tuple(layers), name)
for layers, name in numbered.items():
    st.caption(
        f"{name}'s layers by number: " + " · ".join(f"{i} {n}" for i, n in enumerate(layers))
    )
if compare == ITSELF:
    st.caption(
        "The diagonal is 1: each layer against itself. Bright squares along it are runs of "
        "layers that represent the images alike (a ResNet's stage, a ViT's uniform blocks); "
        "a dark band marks where the representation changes."
    )
else:
    st.plotly_chart(
        plot_cka_matches(
            result.matrix,
            result.layers_a,
            result.layers_b,
            name_a=name_a,
            name_b=name_b,
            same_layers=compare == INITIAL,
        ),
        key=f"{P}.matches",
    )
    if compare == INITIAL:
        # the input is the same images on both sides: its 1 says nothing about training
        diagonal = (
            pd.Series(np.diag(result.matrix), index=result.layers_a)
            .drop("input", errors="ignore")
            .dropna()
        )
        st.caption(
            "Red: each layer against the same layer before training; the lower, the more "
            "training changed it."
            + (
                f" Least changed: {diagonal.idxmax()} ({diagonal.max():.2f}); most: "
                f"{diagonal.idxmin()} ({diagonal.min():.2f})."
                if len(diagonal)
                else ""
            )
        )
    else:
        st.caption(
            f"For each layer of {name_a}, the CKA of the layer of {compare} most like it "
            "(its name on hover). Layers with no close match are where the two networks see "
            "the images differently."
        )

frame = pd.DataFrame(result.matrix, index=result.layers_a, columns=result.layers_b)
frame.index.name = f"{name_a} \\ {name_b}"
buffer = io.StringIO()
frame.to_csv(buffer, float_format="%.6f")
st.download_button(
    "Download the CKA matrix (CSV: rows the first model's layers, columns the second's)",
    buffer.getvalue(),
    file_name=f"{ui.file_stem(name_a)}_vs_{ui.file_stem(name_b)}_cka.csv",
    mime="text/csv",
    key=f"{P}.download",
    on_click="ignore",
)
with st.expander("How CKA is computed"):
    st.markdown(
        "- Each layer's output for an image is flattened into one vector (a transformer's "
        "tokens as chosen above), and centred over the images of a minibatch.\n"
        "- For a minibatch of *n* images, each layer gives the *n × n* matrix K of dot products "
        "of those vectors. HSIC(K, L) measures how alike two such matrices are; its unbiased "
        "estimate (Song et al., 2012) is summed over the minibatches (Nguyen et al., 2021).\n"
        "- CKA = HSIC(K, L) / √(HSIC(K, K) · HSIC(L, L)): 1 when one layer's vectors are a "
        "rotation and scaling of the other's, whatever their lengths; near 0 when unrelated.\n"
        "- The same layers measured twice on other images give slightly different values: the "
        "estimate's noise shrinks with more images."
    )
