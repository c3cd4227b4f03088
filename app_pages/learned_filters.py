"""Filters & Feature Maps: what a trained CNN's conv layers learned, and how they respond."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

from ui import count_slider, links
from ui.inside_cnns import (
    INPUT_LINK_KEYS,
    LoadedModel,
    image_set,
    image_set_picker,
    input_picker,
    load_input_settings,
    model_picker,
    save_input_settings,
)
from vizlib import filters
from vizlib.data import denormalize
from vizlib.plots import (
    feature_map_pool,
    plot_captioned_images,
    plot_feature_maps,
    plot_image_grid,
    plot_weight_histogram,
    to_npy_bytes,
)

P = "filters"
SLICE_MODES = ("Each input channel", "Mean over input channels")
REDUCTIONS = ("mean", "max")
MAPS_PX = 640  # the feature-map figure's largest side on screen (pixels)
# every key the page's link may hold: the model (written by model_picker), the feature maps'
# input (ui.inside_cnns.input_settings: source, test image, sample image, folder and its image)
# and the page's own settings
LINK_KEYS = {"model", *INPUT_LINK_KEYS, "layer", "shared", "slices", "bins", "reduce", "filter"}
LINK_KEYS |= {"maps", "channel", "k"}

st.title("Filters & Feature Maps")
st.caption(
    "The weights of a conv layer drawn as small images, how far training moved them from their "
    "random start, and the feature maps they produce for an input."
)


@st.cache_data(max_entries=8, show_spinner="Building the untrained model…")
def untrained_filters(name: str, device: str, layer: str, _loaded: LoadedModel) -> torch.Tensor:
    """Return the layer's weights (out, in, kh, kw) at the random initialisation training began from."""
    return filters.conv_filters(filters.untrained_model(_loaded.meta), layer)


@st.cache_data(max_entries=8, show_spinner=False)
def dataset_scores(
    name: str, device: str, layer: str, reduce: str, images_from: str, _loaded: LoadedModel
) -> torch.Tensor:
    """Return (N, C) channel scores of the image set ``images_from`` (``image_set``), one pass."""
    images = image_set(images_from, _loaded.meta)[0]
    with _loaded.lock:
        return filters.channel_scores(_loaded.model, images, layer, reduce=reduce, device=device)


def page_settings(convs: list[str]) -> links.Table:
    """Return the settings that depend neither on the layer nor on the input: query key ->
    (widget key, default, allowed) for a model with conv layers ``convs``."""
    return {
        "layer": (f"{P}.layer", convs[0], links.choice_parser(convs)),
        "shared": (f"{P}.shared", False, (False, True)),
        "slices": (f"{P}.slice_mode", SLICE_MODES[0], SLICE_MODES),
        "bins": (f"{P}.bins", 60, (10, 200)),
        "reduce": (f"{P}.reduce", REDUCTIONS[0], REDUCTIONS),
    }


def layer_settings(out_ch: int) -> links.Table:
    """Return the settings whose range is the layer's ``out_ch`` filters (channels)."""
    return {
        "filter": (f"{P}.filter_index", 0, (0, out_ch - 1)),
        "maps": (f"{P}.n_maps", min(64, out_ch), (1, out_ch)),
        "channel": (f"{P}.channel", 0, (0, out_ch - 1)),
    }


def norm_labels(weights: torch.Tensor, prefix: str = "filter") -> list[str]:
    norms = filters.filter_norms(weights).numpy()
    return [f"{prefix} {i}<br>L2 norm {n:.4g}" for i, n in enumerate(norms)]


loaded = model_picker(P)
if loaded is None:
    st.stop()
model, meta = loaded.model, loaded.meta
convs = filters.conv_layer_names(model)
if not convs:
    st.warning(f"{meta['name']} has no Conv2d layer, so it has no filters to show.")
    st.stop()

settings = page_settings(convs)
from_link = links.first_visit(f"{P}.")
warnings = links.load_settings(settings, prefix=f"{P}.", from_link=from_link)
# the feature maps' input, as the Attributions page shares it (never an upload or a typed path)
input_table, input_warnings = load_input_settings(P, meta, from_link=from_link)
for warning in warnings + input_warnings:
    st.warning(warning, icon=":material/link_off:")
# the toggle's column fits its label on a 1024-pixel screen ('One shared colou…' at [2, 1])
c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
layer = c1.selectbox("Conv layer", convs, key=f"{P}.layer")
shared = c2.toggle(
    "One shared colour scale",
    key=f"{P}.shared",
    help="Off: each filter, and each feature map, is stretched to its own range (shapes are "
    "visible). On: one range for the whole layer (strengths compare); the feature maps' "
    "colourbar then reads raw activations.",
)
weights = filters.conv_filters(model, layer)  # (out, in, kh, kw)
out_ch, in_ch, kh, kw = weights.shape
by_layer = layer_settings(out_ch)  # read from the link the first time a layer is known
for warning in links.load_settings(
    by_layer, prefix=f"{P}.", from_link=links.first_visit(f"{P}.layer.")
):
    st.warning(warning, icon=":material/link_off:")
st.markdown(
    f"**{layer}**: {out_ch} filters of {in_ch}×{kh}×{kw} "
    f"({'RGB' if in_ch == 3 else 'grey' if in_ch == 1 else 'mean over input channels'} below)."
)

tab_filters, tab_train, tab_hist, tab_maps, tab_top = st.tabs(
    [
        "Filters",
        "Before / after training",
        "Weight histogram",
        "Feature maps",
        "Top-activating images",
    ]
)

with tab_filters:
    st.plotly_chart(
        plot_image_grid(
            filters.filter_tiles(weights, shared=shared),
            hover=norm_labels(weights),
            title=f"{layer}: {out_ch} filters ({'shared' if shared else 'per-filter'} scale)",
        ),
        key=f"{P}.grid",
    )
    shown = weights if in_ch in (1, 3) else weights.mean(dim=1)  # what the tiles draw
    scale = (
        f"one scale for the layer, {float(shown.min()):.3g} to {float(shown.max()):.3g}"
        if shared
        else "each filter stretched to its own range"
    )
    st.caption(
        ("Red, green, blue = input channels 0, 1, 2, each dark" if in_ch == 3 else "Black")
        + f" at the lowest weight and {'bright' if in_ch == 3 else 'white'} at the highest "
        f"({scale}). Hover a filter for its L2 norm."
    )
    if in_ch > 1:
        st.subheader("One filter, slice by slice")
        f1, f2 = st.columns([1, 2])
        index = f1.number_input(f"Filter (0–{out_ch - 1})", 0, out_ch - 1, key=f"{P}.filter_index")
        mode = f2.radio(
            "Show",
            SLICE_MODES,
            key=f"{P}.slice_mode",
            horizontal=True,
        )
        slices = filters.filter_slices(weights, int(index), mean=mode.startswith("Mean"))
        tiles = filters.normalize_filters(slices[:, None], shared=shared).numpy()
        st.plotly_chart(
            plot_image_grid(
                tiles,
                hover=norm_labels(slices[:, None], "input channel")
                if len(slices) > 1
                else ["mean over input channels"],
                title=f"Filter {int(index)} of {layer}: {len(slices)} slice(s) of {kh}×{kw}",
                max_px=420,
            ),
            key=f"{P}.slices",
        )
    st.download_button(
        "Download the weights (NPY, out×in×kh×kw)",
        to_npy_bytes(weights),
        file_name=f"{loaded.stem}_{layer}_weights.npy",
        key=f"{P}.download_weights",
        on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    )

with tab_train:
    try:
        before = untrained_filters(loaded.name, loaded.device, layer, loaded)
    except (ValueError, KeyError, RuntimeError) as err:
        st.error(f"Could not rebuild the untrained model: {err}")
    else:
        if not meta.get("pretrained"):
            st.info("This model is not trained (no weights on disk), so both sides are the same.")
        elif meta.get("source") != "checkpoint":
            st.caption(
                "The seed these weights were trained from is not known: the left side is a "
                "fresh initialisation of the same architecture (seed 0)."
            )
        change = float((weights - before).norm() / before.norm().clamp_min(1e-12))
        st.metric(
            "Relative change of the layer's weights by training",
            f"{change:.1%}",
            help="‖W_trained − W_init‖ / ‖W_init‖ (Frobenius norms).",
        )
        # One scale across both sides when shared, so the growth of the weights is visible.
        both = filters.filter_tiles(torch.cat([before, weights]), shared=shared)
        b1, b2 = st.columns(2)
        # half a page each: 300 px high fits a half column's width at 1024 px (at 420 the grids
        # shrank to the width and left a band of white above them)
        b1.plotly_chart(
            plot_image_grid(
                both[:out_ch],
                hover=norm_labels(before),
                title=f"At initialisation (seed {int(meta.get('seed') or 0)})",
                max_px=300,
            ),
            key=f"{P}.before",
        )
        b2.plotly_chart(
            plot_image_grid(
                both[out_ch:], hover=norm_labels(weights), title="After training", max_px=300
            ),
            key=f"{P}.after",
        )

with tab_hist:
    bins = st.slider("Bins", 10, 200, key=f"{P}.bins")
    h1, h2 = st.columns(2)
    try:
        initial = untrained_filters(loaded.name, loaded.device, layer, loaded)
    except (ValueError, KeyError, RuntimeError) as err:
        initial = None
        h2.error(f"Could not rebuild the untrained model: {err}")
    # both histograms on the same bins and axes, so the spreads before and after compare
    both = weights if initial is None else torch.cat([weights.flatten(), initial.flatten()])
    span = (float(both.min()), float(both.max()))
    counts, edges = filters.weight_histogram(weights, bins=bins, value_range=span)
    hists = [(h1, counts, edges, f"{layer}: trained weights ({weights.numel():,})")]
    if initial is not None:
        before_counts, before_edges = filters.weight_histogram(initial, bins=bins, value_range=span)
        hists.append((h2, before_counts, before_edges, f"{layer}: at initialisation"))
    top = max(int(c.max()) for _, c, _, _ in hists)
    for where, c, e, title in hists:
        where.plotly_chart(
            plot_weight_histogram(c, e, title=title, count_max=top),
            key=f"{P}.hist" if where is h1 else f"{P}.hist_before",
        )
    if initial is not None:
        st.caption(
            f"Both histograms use the same {bins} bins, {span[0]:.3g} to {span[1]:.3g} "
            f"({(span[1] - span[0]) / bins:.3g} wide), and the same count axis, so the spread of "
            "the weights before and after training compares directly."
        )

with tab_maps:
    chosen = input_picker(P, meta, purpose="see its feature maps")
    save_input_settings(P, input_table, keep=LINK_KEYS)
    if chosen is not None:
        i1, i2 = st.columns([1, 3])
        i1.image(chosen.display, caption=chosen.label, clamp=True, width="stretch")
        try:
            with loaded.lock:
                maps = filters.feature_maps(model, chosen.tensor, layer, device=loaded.device)
        except (ValueError, RuntimeError) as err:
            st.error(f"The model could not process this input: {err}")
        else:
            maps_np = maps.numpy()  # (C, H, W)
            limit = count_slider("Maps shown", 1, len(maps_np), 64, key=f"{P}.n_maps", where=i2)
            shown = maps_np[:limit]
            # many large maps have more cells than the figure has pixels: draw block means
            pool = feature_map_pool(shown.shape, max_px=MAPS_PX)
            if pool > 1 and i2.toggle(
                "Full resolution",
                key=f"{P}.full_maps",
                help="Off: each map is drawn at the figure's own resolution, every cell the mean "
                "of a block of activations, so the page stays quick. On: every activation is "
                "sent and drawn (slow for large maps); zoom in to see single cells.",
            ):
                pool = 1
            h, w = maps_np.shape[1:]
            i2.plotly_chart(
                plot_feature_maps(
                    shown,
                    shared_scale=shared,
                    max_px=MAPS_PX,
                    pool=pool,
                    title=f"{layer}: "
                    + (f"channels 0–{limit - 1} of " if limit < len(maps_np) else "")
                    + f"{len(maps_np)} maps of {h}×{w}"
                    + (f" (1/{pool} resolution)" if pool > 1 else ""),
                ),
                key=f"{P}.maps",
            )
            if pool > 1:
                i2.caption(
                    f"Drawn at 1/{pool} resolution, {-(-h // pool)}×{-(-w // pool)} a map, to fit "
                    f"the figure: each cell and its hover value is the mean of a {pool}×{pool} "
                    f"block of activations. 'Full resolution' draws all {shown.size:,} "
                    "activations; the download below always holds them all."
                )
            i2.download_button(
                "Download the feature maps (NPY, C×H×W)",
                to_npy_bytes(maps_np),
                file_name=f"{loaded.stem}_{layer}_feature_maps.npy",
                key=f"{P}.download_maps",
                on_click="ignore",  # no rerun: a second download is not cancelled by the first's
            )

with tab_top:
    images_from = image_set_picker(f"{P}.top", meta)
    try:
        images, labels, classes, ids = image_set(images_from, meta) if images_from else (None,) * 4
    except ValueError as err:
        st.error(str(err))
        images = None
    if images is not None:
        what = "image" if images_from.startswith("imagefolder:") else "test image"
        t1, t2, t3 = st.columns(3)
        channel = t1.number_input(f"Channel (0–{out_ch - 1})", 0, out_ch - 1, key=f"{P}.channel")
        reduce = t2.radio(
            "Score per image",
            REDUCTIONS,
            key=f"{P}.reduce",
            horizontal=True,
            help="Mean or maximum of the channel's feature map over positions.",
        )
        low, high = min(4, len(images)), min(36, len(images))
        top_table = {"k": (f"{P}.top_k", min(max(16, low), high), (low, high))}
        for warning in links.load_settings(
            top_table, prefix=f"{P}.", from_link=links.first_visit(f"{P}.top.")
        ):
            st.warning(warning, icon=":material/link_off:")
        k = count_slider("Images", low, high, 16, key=f"{P}.top_k", where=t3)
        links.save_settings(top_table, prefix=f"{P}.", keep=LINK_KEYS)
        with st.spinner(f"One pass over {len(images)} {what}s…", show_time=True):
            scores = dataset_scores(loaded.name, loaded.device, layer, reduce, images_from, loaded)
        idx, vals = filters.top_activating(scores, int(channel), k=k)
        shown = denormalize(images[idx], meta["mean"], meta["std"]).numpy()  # (k, C, H, W)
        st.plotly_chart(
            plot_captioned_images(
                shown,
                [
                    [f"class {classes[int(labels[i])]}", f"{reduce} {v:.4g}"]
                    for i, v in zip(idx, vals, strict=True)
                ],
                hover=[
                    f"{what} {ids[int(i)]}<br>class {classes[int(labels[i])]}<br>score {v:.4g}"
                    for i, v in zip(idx, vals, strict=True)
                ],
                title=f"{what.capitalize()}s that drive channel {int(channel)} of {layer} most "
                f"({reduce} activation)",
            ),
            key=f"{P}.top",
        )
        st.caption(
            f"Under each {what}: its true class, then its score: the {reduce} of channel "
            f"{int(channel)}'s feature map over positions, in the layer's raw output units "
            "(after the conv and its bias, before any activation function), highest first. "
            f"Hover for the {what}'s index."
        )
        st.download_button(
            f"Download the ranking (CSV: {what} index, class, score)",
            pd.DataFrame(
                {
                    f"{what.replace(' ', '_')}_index": [ids[int(i)] for i in idx],
                    "class": [classes[int(labels[int(i)])] for i in idx],
                    f"{reduce}_activation": [float(v) for v in vals],
                }
            ).to_csv(index=False),
            file_name=f"{loaded.stem}_{layer}_channel{int(channel)}_top{k}.csv",
            mime="text/csv",
            key=f"{P}.download_top",
            on_click="ignore",  # no rerun: a second download is not cancelled by the first's
        )

links.save_settings(settings | by_layer, prefix=f"{P}.", keep=LINK_KEYS)
