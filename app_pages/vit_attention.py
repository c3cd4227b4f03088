"""ViT Attention: mean attention distance per head, attention maps, attention rollout, and which
heads the answers depend on (gradient importance and pruning)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import streamlit as st
import torch

import ui
from ui import count_slider, links
from ui.vit import (
    PATCH_NUMBERING,
    UPLOAD_IMAGES,
    ImageSource,
    ModelChoice,
    UploadedImages,
    get_model,
    image_sources,
    load_images,
    pick_images,
    pick_vit,
)
from vizlib import attention, heads
from vizlib.plots.export import to_npy_bytes
from vizlib.plots.vit import (
    plot_attention_distance,
    plot_attention_overlays,
    plot_head_importance,
    plot_head_pruning,
)

P = "vit_attention."  # widget-key namespace of this page
FUSIONS = ("mean", "max", "min")


def link_settings(
    geo: attention.ViTGeometry, available: int, *, small: bool = True
) -> dict[str, links.Table]:
    """Return the page's shareable settings by section, query key -> (widget key, default,
    allowed), for a model of geometry ``geo`` and a set of ``available`` images (``small``:
    inputs of 64 x 64 pixels at most, the digit ViT's, measured over more images)."""
    gh, gw = geo.grid_size
    heads = ["mean", "max", *range(geo.num_heads)]
    last = available - 1
    return {
        "distance": {
            "n": (P + "n_images", min(128, available), (1, available)),
            "renorm": (P + "renormalize", False, (False, True)),
        },
        "maps": {
            "image": (P + "image", 0, (0, last)),
            "layer": (P + "layer", geo.num_layers, (1, geo.num_layers)),
            "head": (
                P + "head",
                "mean",
                links.choice_parser(heads, description=f"mean, max or a head 0 to {heads[-1]}"),
            ),
            "row": (P + "q_row", gh // 2, (0, gh - 1)),
            "col": (P + "q_col", gw // 2, (0, gw - 1)),
        },
        "rollout": {
            "fusion": (P + "fusion", "mean", FUSIONS),
            "discard": (P + "discard", 0.0, (0.0, 0.95, 0.05)),
            "count": (P + "count", min(4, available), (1, min(8, available))),
            "first": (P + "rollout_first", 0, (0, last)),
        },
        "heads": {
            "heads_n": (P + "heads_n", min(256 if small else 16, available), (1, available)),
            "heads_norm": (P + "heads_normalize", True, (False, True)),
        },
    }


# every key the page's link may hold: the model (written by pick_vit), the image set, the rest
LINK_KEYS = {"model", "images", "n", "renorm", "image", "layer", "head", "row", "col"}
LINK_KEYS |= {"fusion", "discard", "count", "first", "heads_n", "heads_norm"}

st.title("ViT Attention")
st.caption(
    "How far and where a Vision Transformer looks: the probes of Dosovitskiy et al., *An Image is "
    "Worth 16x16 Words* (ICLR 2021), Figures 6 and 7 (right)."
)


@st.cache_data(max_entries=16, show_spinner=False)
def distance_table(
    choice: ModelChoice, source: ImageSource, n: int, renormalize: bool
) -> np.ndarray:
    """Mean attention distance (layers, heads) in pixels over the first n images.

    A progress bar follows the batches (vit_b_16 takes seconds per image on a CPU). It is made
    here, not outside, because cached functions may only draw on elements of their own; it is
    emptied at the end, so a cache hit replays nothing visible.
    """
    model, meta, lock = get_model(choice)
    images, _, _ = load_images(source, *ui.preparation_key(meta), n)
    bar = st.progress(0.0, text=f"Running {n} images through {meta['name']}…")
    started = time.perf_counter()

    def tick(done: int, total: int) -> None:
        eta = ui.time_left(time.perf_counter() - started, done, total)
        bar.progress(done / total, text=f"Attention distances: {done}/{total} images{eta}")

    try:
        with lock:  # hooks go on the shared model
            dist = attention.mean_attention_distance_over(
                model,
                images,
                renormalize=renormalize,
                batch_size=8 if choice.device == "cpu" else 32,  # CPU: finer progress, same speed
                device=choice.device,
                callback=tick,
            )
    finally:
        bar.empty()
    return dist.numpy()


@st.cache_data(max_entries=6, show_spinner=False)
def image_attentions(
    choice: ModelChoice, source: ImageSource, indices: tuple[int, ...]
) -> np.ndarray:
    """Attention weights of the chosen images, (layers, B, heads, T, T)."""
    model, meta, lock = get_model(choice)
    images, _, _ = load_images(source, *ui.preparation_key(meta))
    with lock:
        maps = attention.attention_maps(
            model, images[list(indices)], batch_size=8, device=choice.device
        )
    return torch.stack(maps).numpy()


picked = pick_vit("vit_attention")
if picked is None:
    st.stop()
choice, model, meta, _lock = picked
geo = attention.vit_geometry(model)
gh, gw = geo.grid_size
# The image set's options follow the model; an upload or a typed folder opens its picker.
image_options = (*image_sources(meta), *ui.typed_folder_options(), UPLOAD_IMAGES)
images_table = {"images": (P + "source", image_options[0], links.choice_parser(image_options))}
for warning in links.load_settings(
    images_table, prefix=P, from_link=links.first_visit(P + "images.")
):
    st.warning(warning, icon=":material/link_off:")
source = pick_images("vit_attention", meta)
links.save_settings(images_table, prefix=P, keep=LINK_KEYS)
if source is None:
    st.stop()
try:
    _, display_all, captions_all = load_images(source, *ui.preparation_key(meta))
except ValueError as err:
    st.error(str(err))
    st.stop()
available = len(captions_all)
tables = link_settings(geo, available, small=int(np.prod(meta["input_size"][1:])) <= 64 * 64)
for warning in links.load_settings(
    tables["distance"] | tables["maps"] | tables["rollout"] | tables["heads"],
    prefix=P,
    from_link=links.first_visit(P),
):
    st.warning(warning, icon=":material/link_off:")
st.caption(
    f"{meta['name']}: {geo.num_layers} layers × {geo.num_heads} heads, {gh}×{gw} patches of "
    f"{geo.patch_size} px, {geo.num_prefix_tokens} prefix token(s); {available} image"
    f"{'' if available == 1 else 's'} available."
)

# --- Mean attention distance -------------------------------------------------------------------
st.header("Mean attention distance")
c1, c2 = st.columns(2)
n_images = c1.number_input(
    "Number of images",
    min_value=1,
    max_value=available,
    key="vit_attention.n_images",
    help=f"The first N of the {available} available images (computed in batches on the device).",
)
renormalize = c2.toggle(
    "Renormalise patch weights",
    key="vit_attention.renormalize",
    help="Off: weights as they come (the class token's share is simply left out, as in the Keras "
    "'probing ViTs' example). On: each query's weights over the patches rescaled to sum to 1.",
)
links.save_settings(tables["distance"], prefix=P, keep=LINK_KEYS)
try:
    dist = distance_table(choice, source, int(n_images), bool(renormalize))
except (ValueError, RuntimeError) as err:  # e.g. out of GPU memory
    st.error(f"Could not compute the attention distances: {err}")
    dist = None
if dist is not None and isinstance(source, UploadedImages):
    st.caption(
        f"Averaged over {int(n_images)} uploaded image(s) only: a small sample. The paper's "
        "Figure 7 averages over many images, so read differences between heads here as "
        "indications, not measurements."
    )
if dist is not None:
    baseline = attention.uniform_attention_distance(geo.grid_size, geo.patch_size)
    st.plotly_chart(
        plot_attention_distance(dist, baseline=baseline),
        key="vit_attention.distance_chart",
    )
    st.caption(
        "Each dot is one head: the attention-weighted pixel distance from each query patch to the "
        "patches it attends to, averaged over query patches and images — analogous to receptive "
        f"field size in CNNs. The dashed line ({baseline:.1f} px) is what uniform attention over "
        f"the {gh}×{gw} grid would give."
    )
    table = pd.DataFrame(
        dist,
        index=pd.Index(range(1, dist.shape[0] + 1), name="layer"),
        columns=[f"head {h}" for h in range(dist.shape[1])],
    )
    st.download_button(
        "Download the layer × head table (CSV, pixels)",
        table.to_csv(float_format="%.3f"),
        file_name=f"attention_distance_{ui.file_stem(meta['name'])}.csv",
        mime="text/csv",
        key="vit_attention.download",
        on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    )

head_options = ["mean", "max", *range(geo.num_heads)]


def _head_label(h) -> str:
    return f"head {h}" if isinstance(h, int) else f"{h} over heads"


# --- Attention maps ----------------------------------------------------------------------------
@st.fragment
def attention_maps_panel() -> None:
    st.header("Attention maps")
    c1, c2, c3 = st.columns(3)
    index = c1.number_input(
        "Image", 0, available - 1, key="vit_attention.image", help="Index into the image set."
    )
    layer = count_slider(
        "Layer", 1, geo.num_layers, geo.num_layers, key="vit_attention.layer", where=c2
    )
    head = c3.selectbox("Head", head_options, format_func=_head_label, key="vit_attention.head")
    q1, q2 = st.columns(2)
    q_row = count_slider(
        "Query patch row",
        0,
        gh - 1,
        gh // 2,
        key="vit_attention.q_row",
        where=q1,
        help=f"Rows counted from 0 at the top ({gh} rows of patches).",
    )
    q_col = count_slider(
        "Query patch column",
        0,
        gw - 1,
        gw // 2,
        key="vit_attention.q_col",
        where=q2,
        help=f"Columns counted from 0 at the left ({gw} columns of patches).",
    )
    links.save_settings(tables["maps"], prefix=P, keep=LINK_KEYS)
    with st.spinner("Computing attention…", show_time=True):
        try:
            maps = torch.from_numpy(image_attentions(choice, source, (int(index),)))
        except (ValueError, RuntimeError) as err:
            st.error(f"Could not compute attention: {err}")
            return
    kw = {"layer": layer - 1, "head": head, "num_prefix_tokens": geo.num_prefix_tokens}
    cls_map = attention.cls_attention(maps, geo.grid_size, **kw)
    query_map = attention.query_attention(maps, geo.grid_size, (q_row, q_col), **kw)
    image = display_all[int(index)][None]
    left, right = st.columns(2)
    left.plotly_chart(
        plot_attention_overlays(
            image,
            cls_map,
            title="Class token → patches",
            cols=1,
            colorbar_title="attention weight",
            value_name="attention weight",
        ),
        key="vit_attention.cls_chart",
    )
    right.plotly_chart(
        plot_attention_overlays(
            image,
            query_map,
            marker=(q_row, q_col),
            title=f"Patch (row {q_row}, column {q_col}) → patches",
            cols=1,
            colorbar_title="attention weight",
            value_name="attention weight",
        ),
        key="vit_attention.query_chart",
    )
    st.caption(
        f"Layer {layer}, {_head_label(head)}; image {index} ({captions_all[int(index)]}). "
        "Bright = high attention; each map spans its own range (colour bars, in "
        + (
            "each patch's largest weight over the heads; each head's weights sum to 1 over all "
            "tokens, their maximum does not"
            if head == "max"
            else "weights that sum to 1 over all tokens"
        )
        + "); "
        f"the cyan square is the query patch. Each {PATCH_NUMBERING}; hover a patch for its "
        "row, column and weight."
    )
    st.download_button(
        "Download both maps (NPY, 2 × patch rows × patch columns: class token, query patch)",
        to_npy_bytes(np.stack([np.asarray(cls_map), np.asarray(query_map)]).reshape(2, gh, gw)),
        # every setting that changes the maps: two heads or query patches do not overwrite
        file_name=f"attention_maps_{ui.file_stem(meta['name'])}_image{int(index)}_layer{layer}"
        f"_head{head if isinstance(head, int) else f'-{head}'}_query{q_row}-{q_col}.npy",
        key="vit_attention.download_maps",
        on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    )


attention_maps_panel()


# --- Attention rollout -------------------------------------------------------------------------
@st.cache_data(max_entries=8, show_spinner=False)
def fused_attention(
    choice: ModelChoice, source: ImageSource, indices: tuple[int, ...], fusion: str
) -> np.ndarray:
    """Every layer's attention of the chosen images, heads fused: (L, B, 1, T, T) float32.

    Kept instead of the full maps ((L, B, heads, T, T): 12 times larger for vit_b_16; 4 images
    fused are 7 MB), so moving the discard ratio needs no forward pass.
    """
    model, meta, lock = get_model(choice)
    images, _, _ = load_images(source, *ui.preparation_key(meta))
    with lock:
        maps = attention.attention_maps(
            model, images[list(indices)], batch_size=8, device=choice.device
        )
    return attention.fuse_heads(maps, fusion).cpu().numpy()


def rollout(
    choice: ModelChoice, source: ImageSource, indices: tuple[int, ...], fusion: str, discard: float
) -> np.ndarray:
    """Class-token rollout (B, gh, gw) of the chosen images, max 1 each."""
    fused = torch.from_numpy(fused_attention(choice, source, indices, fusion))
    return attention.attention_rollout(
        fused,
        head_fusion=fusion,
        discard_ratio=discard,
        num_prefix_tokens=geo.num_prefix_tokens,
        grid_hw=geo.grid_size,
    ).numpy()


@st.fragment
def rollout_panel() -> None:
    st.header("Attention rollout")
    c1, c2, c3, c4 = st.columns(4)
    fusion = c1.selectbox("Head fusion", FUSIONS, key="vit_attention.fusion")
    discard = c2.slider(
        "Discard ratio",
        0.0,
        0.95,
        step=0.05,
        key="vit_attention.discard",
        help="Fraction of the smallest fused weights set to zero in each layer (never the class "
        "token's own weight).",
    )
    count = count_slider("Images", 1, min(8, available), 4, key="vit_attention.count", where=c3)
    first = c4.number_input(
        "From image", 0, available - 1, key="vit_attention.rollout_first",
        help="Index of the first image shown; the next ones follow (wrapping round).",
    )  # fmt: skip
    links.save_settings(tables["rollout"], prefix=P, keep=LINK_KEYS)
    indices = tuple((int(first) + k) % available for k in range(int(count)))
    with st.spinner("Rolling out attention…", show_time=True):
        try:
            masks = rollout(choice, source, indices, fusion, float(discard))
        except (ValueError, RuntimeError) as err:
            st.error(f"Could not compute the rollout: {err}")
            return
    st.plotly_chart(
        plot_attention_overlays(
            display_all[list(indices)],
            masks,
            titles=[captions_all[i] for i in indices],
            title=f"Rollout of the class token ({fusion} over heads, discard {discard:.2f})",
            colorbar_title="rollout",
            value_name="rollout (max 1)",
        ),
        key="vit_attention.rollout_chart",
    )
    st.download_button(
        "Download the rollout masks (NPY, images × patch rows × patch columns)",
        to_npy_bytes(masks),
        file_name=f"attention_rollout_{ui.file_stem(meta['name'])}.npy",
        key="vit_attention.download_rollout",
        on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    )
    st.caption(
        "Abnar & Zuidema (2020): per layer, fuse heads, add the identity for the residual path, "
        "renormalise each row to sum to 1, and multiply through the layers; the class token's row "
        "over the patches is shown, scaled to a maximum of 1. Each image's colours run from its "
        "own minimum (dark) to its maximum (bright)."
    )


rollout_panel()


# --- Which heads matter ------------------------------------------------------------------------
PRUNE_STEPS = 10  # the pruning curves' points past 0: about every 10% of the heads


def measure_heads(n: int) -> dict:
    """Importance of every head over the first n images, then the answers kept as heads go,
    least important first and in a random order; one progress bar for both."""
    images, _, _ = load_images(source, *ui.preparation_key(meta), n)
    batch = 64 if int(np.prod(meta["input_size"][1:])) <= 64 * 64 else 16
    total_heads = geo.num_layers * geo.num_heads
    counts = sorted({round(total_heads * k / PRUNE_STEPS) for k in range(PRUNE_STEPS + 1)})
    bar = st.progress(0.0, text="Measuring the heads…")
    started = time.perf_counter()
    # the importance pass (forward and backward) counts as about 3 of the curves' forward passes
    work = 3 + 2 * len(counts)

    def tick(stage: str, offset: float, weight: float):
        def update(done: int, total: int) -> None:
            share = (offset + weight * done / total) / work
            eta = ui.time_left(time.perf_counter() - started, share, 1.0)
            bar.progress(min(share, 1.0), text=f"{stage}: {done}/{total}{eta}")

        return update

    try:
        found = heads.head_importance(
            model, images, batch_size=batch, lock=_lock, progress=tick("Importance", 0, 3)
        )
        by_importance = [
            tuple(int(i) for i in np.unravel_index(j, found.importance.shape))
            for j in np.argsort(found.importance, axis=None, kind="stable")
        ]
        shuffled = [by_importance[i] for i in np.random.default_rng(0).permutation(total_heads)]
        curves = {}
        for k, (name, order) in enumerate(
            (("least important first", by_importance), ("random order (seed 0)", shuffled))
        ):
            curves[name] = heads.pruning_curve(
                model, images, found.predictions, order, counts, batch_size=batch, lock=_lock,
                progress=tick(f"Removing heads, {name}", 3 + k * len(counts), len(counts)),
            )  # fmt: skip
    finally:
        bar.empty()
    seconds = time.perf_counter() - started
    return {"importance": found, "counts": counts, "curves": curves, "n": n, "seconds": seconds}


def heads_panel() -> None:
    st.header("Which heads matter?")
    st.caption(
        "Each head's output is scaled by a gate g; its importance is how much the loss moves "
        "with g: |dL/dg| at g = 1, L the mean loss of a batch of images, summed over the "
        'batches (Michel et al., "Are sixteen heads '
        "really better than one?\", 2019). The loss is the cross-entropy of the model's own "
        "answers, so no labels are needed. Then the heads are removed one by one, least "
        "important first and in a random order, counting how many answers stay the same: a "
        "good ranking keeps them longer."
    )
    # the toggle in a column of its own width: beside a 2:1 slider it read "Normalise each la…"
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    n = count_slider(
        "Images", 1, available, tables["heads"]["heads_n"][1], key=P + "heads_n", where=c1,
        help="The first N images of the set: one forward and backward pass for the importance, "
        f"then {2 * (PRUNE_STEPS + 1)} forward passes for the two curves.",
    )  # fmt: skip
    normalize = c2.toggle(
        "Normalise per layer",
        key=P + "heads_normalize",
        help="Divide each layer's importances by their L2 norm (as Michel et al.), so layers "
        "compare their heads among themselves; off: the raw |dL/dg|.",
    )
    links.save_settings(tables["heads"], prefix=P, keep=LINK_KEYS)
    results = st.session_state.setdefault(P + "heads_results", {})
    key = (choice, source, int(n))
    if key not in results:
        slot = st.empty()
        if not slot.button(
            f"Measure the {geo.num_layers * geo.num_heads} heads over {int(n)} images",
            key=P + "heads_run",
            icon=":material/play_arrow:",
        ):
            return
        try:
            results[key] = measure_heads(int(n))
        except torch.cuda.OutOfMemoryError:
            st.error(f"The GPU ran out of memory for {int(n)} images; choose fewer.")
            return
        except (ValueError, RuntimeError, TypeError) as err:
            st.error(f"Could not measure the heads: {err}")
            return
        slot.empty()
        while len(results) > 4:
            results.pop(next(iter(results)))
    found = results[key]["importance"]
    if not found.importance.any():
        st.info(
            "Every importance is 0: the answers do not move with any head. torchvision's "
            "vit_b_16 without its ImageNet weights has an all-zero classifier, so its logits "
            "never change."
        )
        return
    shown = found.normalized if normalize else found.importance
    st.plotly_chart(
        plot_head_importance(shown, normalized=normalize, images=found.images),
        key=P + "heads_chart",
    )
    counts, curves = results[key]["counts"], results[key]["curves"]
    total = geo.num_layers * geo.num_heads
    st.plotly_chart(
        plot_head_pruning(counts, curves, total=total, images=found.images),
        key=P + "heads_pruning",
    )
    best = curves["least important first"]
    kept = max((c for c, v in zip(counts, best, strict=True) if v >= 0.95), default=0)
    st.caption(
        f"Removing the {kept} least important of the {total} heads ({kept / total:.0%}) still "
        f"leaves at least 95% of the answers unchanged; the first {kept} of a random order leave "
        f"{curves['random order (seed 0)'][counts.index(kept)]:.0%}. The importances took "
        f"{found.seconds:.1f} s, the two curves {results[key]['seconds'] - found.seconds:.1f} s "
        f"more. Layers count from 1 and heads from 0, as in the table of distances above."
    )
    table = pd.DataFrame(
        found.importance,
        index=pd.Index(range(1, geo.num_layers + 1), name="layer"),
        columns=[f"head {h}" for h in range(geo.num_heads)],
    )
    st.download_button(
        "Download the importances (CSV, layer × head, |dL/dg|)",
        table.to_csv(float_format="%.6g"),
        file_name=f"head_importance_{ui.file_stem(meta['name'])}.csv",
        mime="text/csv",
        key=P + "heads_download",
        on_click="ignore",
    )


heads_panel()
