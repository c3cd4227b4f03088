"""Filters & Feature Maps: what a trained CNN's conv layers learned, and how they respond."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st
import torch

import ui
from ui import count_slider, links
from ui.inside_cnns import (
    INPUT_LINK_KEYS,
    LoadedModel,
    image_set,
    image_set_picker,
    image_set_settings,
    input_picker,
    load_input_settings,
    model_picker,
    save_input_settings,
    unreadable_warning,
)
from vizlib import featureviz, filters
from vizlib.data import denormalize
from vizlib.plots import (
    aligned_numbers,
    feature_map_pool,
    image_grid_png,
    plot_captioned_images,
    plot_feature_maps,
    plot_image_grid,
    plot_objective_curves,
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
LINK_KEYS |= {"maps", "channel", "k", "top_images"}
# the Optimised input tab's settings
OPT_TARGETS = {"channels": "Channels of the layer", "logits": "Class logits (the output)"}
OPT_UNITS = {"mean": "Whole channel (mean)", "centre": "Centre unit"}
OPT_LRS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
OPT_L2S = (0.0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)
OPT_SIGMAS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
LINK_KEYS |= {"opt_target", "opt_channels", "opt_classes", "opt_unit", "opt_steps", "opt_lr"}
LINK_KEYS |= {"opt_l2", "opt_jitter", "opt_blur_every", "opt_blur", "opt_seed"}
SMALL_INPUT = featureviz.SINGLE_THREAD_MAX_SIDE  # pixels a side: digits-sized, quick on a CPU
MAX_OPT_RESULTS = 4  # optimised sets kept per session (each a few images and their curves)

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


def opt_settings(out_ch: int, classes: int, side: int, *, first: bool) -> links.Table:
    """Return the Optimised input tab's settings for a layer of ``out_ch`` channels (``first``:
    the model's first conv layer), a model of ``classes`` outputs and inputs ``side`` pixels a
    side (larger inputs: fewer steps, more jitter (8 px, as the Lucid library's standard
    transforms for 224-pixel models) and blur by default, and no L2 decay: summed over 150,528
    pixels, 1e-3 held resnet18's random-weight images at grey). Class logits are offered only
    to a model with class names. A first conv layer is linear in the image: the mean of a
    channel is largest for a flat image, so its objective is the centre unit by default."""
    small = side <= SMALL_INPUT
    # least=0: a cleared choice stays cleared (and Optimise says what is missing)
    return {
        "opt_target": (
            f"{P}.opt_target",
            "channels",
            links.choice_parser(tuple(OPT_TARGETS) if classes else ("channels",)),
        ),
        "opt_channels": (
            f"{P}.opt_channels",
            list(range(min(8, out_ch))),
            links.multichoice_parser(range(out_ch), least=0, description=f"0 to {out_ch - 1}"),
        ),
        "opt_classes": (
            f"{P}.opt_classes",
            list(range(min(10 if small else 8, classes))),
            links.multichoice_parser(range(classes), least=0, description=f"0 to {classes - 1}"),
        ),
        "opt_unit": (f"{P}.opt_unit", "centre" if first else "mean", tuple(OPT_UNITS)),
        # 128 steps at 0.05 left resnet_digits' class-1 image classified as 0
        "opt_steps": (f"{P}.opt_steps", 256 if small else 64, (1, 1024)),
        "opt_lr": (f"{P}.opt_lr", 0.1, links.choice_parser(OPT_LRS)),
        "opt_l2": (f"{P}.opt_l2", 1e-3 if small else 0.0, links.choice_parser(OPT_L2S)),
        "opt_jitter": (f"{P}.opt_jitter", 1 if small else 8, (0, 16)),
        "opt_blur_every": (f"{P}.opt_blur_every", 4, (0, 32)),
        "opt_blur": (f"{P}.opt_blur_sigma", 0.5 if small else 1.0, links.choice_parser(OPT_SIGMAS)),
        "opt_seed": (f"{P}.opt_seed", 0, (0, 9999)),
    }


@st.cache_data(max_entries=8, show_spinner=False)
def best_real_scores(
    name: str, device: str, layer: str | None, unit: str, images_from: str, _loaded: LoadedModel
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (best (K,), index (K,)): each channel's (or logit's) highest objective over the
    image set ``images_from`` and the image that gives it, for the optimised images' captions."""
    images = image_set(images_from, _loaded.meta)[0]
    with _loaded.lock:
        scores = featureviz.objective_scores(_loaded.model, images, layer, reduce=unit)
    best, index = scores.max(dim=0)
    return best, index


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
links.follow_defaults(by_layer, prefix=f"{P}.")  # "Maps shown" at every map follows the layer
for warning in links.load_settings(
    by_layer, prefix=f"{P}.", from_link=links.first_visit(f"{P}.layer.")
):
    st.warning(warning, icon=":material/link_off:")
st.markdown(
    f"**{layer}**: {out_ch} filters of {in_ch}×{kh}×{kw} "
    f"({'RGB' if in_ch == 3 else 'grey' if in_ch == 1 else 'mean over input channels'} below)."
)

tab_filters, tab_train, tab_hist, tab_maps, tab_top, tab_opt = st.tabs(
    [
        "Filters",
        "Before / after",
        "Weight histogram",
        "Feature maps",
        "Top-activating",
        "Optimised input",
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
        if len(slices) > 1:  # which scale the slices share (the layer's range above is not it)
            st.caption(
                f"One scale for this filter's {len(slices)} slices, black at "
                f"{float(slices.min()):.3g} and white at {float(slices.max()):.3g}."
                if shared
                else "Each slice is stretched to its own range (shapes are visible, strengths "
                "do not compare); hover a slice for its L2 norm."
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
        title = f"{layer}: at initialisation ({initial.numel():,})"  # as many, both titled alike
        hists.append((h2, before_counts, before_edges, title))
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
    top_link = links.first_visit(f"{P}.top.")
    images_from = image_set_picker(f"{P}.top", meta, from_link=top_link, query="top_images")
    # saved under the picker's own prefix, where it loaded the value from
    links.save_settings(
        image_set_settings(f"{P}.top", meta, query="top_images"),
        prefix=f"{P}.top.",
        keep=LINK_KEYS,
    )
    try:
        images, labels, classes, ids = image_set(images_from, meta) if images_from else (None,) * 4
    except ValueError as err:
        st.error(str(err))
        images = None
    unreadable_warning(images_from, meta)
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
        for warning in links.load_settings(top_table, prefix=f"{P}.", from_link=top_link):
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
                [  # one number of decimals for all: the ranking reads down a column
                    [f"class {classes[int(labels[i])]}", f"{reduce} {v}"]
                    for i, v in zip(idx, aligned_numbers(vals), strict=True)
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

with tab_opt:
    side = max(int(v) for v in meta["input_size"][1:])
    class_names = list(meta.get("class_names") or [])
    opt_table = opt_settings(out_ch, len(class_names), side, first=layer == convs[0])
    links.follow_defaults(opt_table, prefix=f"{P}.")
    for warning in links.load_settings(
        opt_table, prefix=f"{P}.", from_link=links.first_visit(f"{P}.opt.")
    ):
        st.warning(warning, icon=":material/link_off:")
    o1, o2 = st.columns([2, 3])
    target = o1.radio(
        "Optimise for",
        tuple(OPT_TARGETS) if class_names else ("channels",),
        format_func=lambda t: f"Channels of {layer}" if t == "channels" else OPT_TARGETS[t],
        key=f"{P}.opt_target",
        help="Channels: an image per channel of the conv layer chosen above, the input that "
        "makes that channel respond most. Class logits: an image per class, the input the "
        "network scores highest for it (its output before the softmax).",
    )
    if target == "channels":
        chosen = o2.multiselect(
            f"Channels of {layer} (0–{out_ch - 1})",
            list(range(out_ch)),
            key=f"{P}.opt_channels",
            help="One image each, all optimised together as one batch.",
        )
        unit = o2.radio(
            "Objective",
            tuple(OPT_UNITS),
            format_func=OPT_UNITS.get,
            key=f"{P}.opt_unit",
            horizontal=True,
            help="Whole channel: the mean of the channel's feature map over all positions (the "
            "pattern it looks for, anywhere in the image). Centre unit: the one activation at "
            "the map's centre (the pattern within that unit's receptive field; a first conv "
            "layer is linear in the image, so only this shows its filter: its mean is largest "
            "for a flat image).",
        )
    else:
        chosen = o2.multiselect(
            "Classes",
            list(range(len(class_names))),
            format_func=ui.class_option(class_names),
            key=f"{P}.opt_classes",
            help="One image each, all optimised together as one batch.",
        )
        unit = "mean"  # a logit is one number per image: nothing to reduce
    with st.expander("Optimisation settings", expanded=False):
        s1, s2, s3 = st.columns(3)
        steps = s1.number_input(
            "Steps",
            1,
            1024,
            key=f"{P}.opt_steps",
            help="Gradient-ascent steps (Adam). The curve below shows whether the objective "
            "has levelled off.",
        )
        lr = s2.select_slider(
            "Learning rate",
            OPT_LRS,
            key=f"{P}.opt_lr",
            help="Adam's step size, in units of the normalised input (one unit is one dataset "
            "standard deviation of a pixel). Larger: faster, noisier.",
        )
        seed = s3.number_input(
            "Seed",
            0,
            9999,
            key=f"{P}.opt_seed",
            help="The starting noise and the jitter's shifts. Same seed and settings, same images.",
        )
        r1, r2, r3, r4 = st.columns(4)
        l2 = r1.select_slider(
            "L2 decay",
            OPT_L2S,
            key=f"{P}.opt_l2",
            help="Subtracts this times the sum of the squared (normalised) pixels from the "
            "objective: pixels that do not help are pulled back to the dataset's mean grey. "
            "A sum over every pixel, so large images need far less (at 224×224 even 1e-4 can "
            "hold the image at grey). 0: off.",
        )
        jitter = r2.slider(
            "Jitter (px)",
            0,
            16,
            key=f"{P}.opt_jitter",
            help="Each step sees the image shifted (rolled) by a random amount up to this many "
            "pixels each way, so its pattern must work at several offsets: fine, brittle "
            "noise fades. 0: off.",
        )
        blur_every = r3.slider(
            "Blur every (steps)",
            0,
            32,
            key=f"{P}.opt_blur_every",
            help="Every this many steps the image is smoothed by a Gaussian, which damps the "
            "high-frequency patterns gradient ascent otherwise fills it with. 0: never.",
        )
        blur_sigma = r4.select_slider(
            "Blur σ (px)",
            OPT_SIGMAS,
            key=f"{P}.opt_blur_sigma",
            help="The width (standard deviation, pixels) of that Gaussian.",
        )
    links.save_settings(opt_table, prefix=f"{P}.", keep=LINK_KEYS)
    if side > SMALL_INPUT:
        st.info(
            f"At {side}×{side} pixels each step is a full forward and backward pass of the batch: "
            "on a 2-core CPU, 8 images took from 0.1 s a step (resnet18's first conv layer) to "
            "4–8 s (vgg16's last conv layer or its logits). The bar shows the time left after "
            "the first steps; Stop ends the run.",
            icon=":material/timer:",
        )
    opt_layer = layer if target == "channels" else None
    run_key = (loaded.name, loaded.device, opt_layer, tuple(int(c) for c in chosen), unit,
               int(steps), float(lr), float(l2), int(jitter), int(blur_every), float(blur_sigma),
               int(seed))  # fmt: skip
    results: dict = st.session_state.setdefault(f"{P}.opt_results", {})
    buttons = st.container(horizontal=True)  # side by side: columns set Stop far off at 1500 px
    start = buttons.button("Optimise", type="primary", key=f"{P}.optimise")
    # Clicking Stop during a run makes Streamlit interrupt the script at its next element update
    # (the progress bar's), then rerun with this button True: nothing of that run is kept
    stopped = buttons.button("Stop", key=f"{P}.opt_stop")
    if stopped:
        st.warning("Stopped: the optimisation was interrupted. Press Optimise to start again.")
    if start and not stopped:
        if not chosen:
            st.error(f"Choose at least one {'channel' if target == 'channels' else 'class'}.")
        else:
            bar = st.progress(0.0, text="Starting…")
            started = time.perf_counter()
            pace = ui.Pace(0.2)  # a few updates a second: lenet_digits' 256 steps take 1-2 s

            def tick(step: int, objective: float) -> None:
                if not pace.due() and step < steps:
                    return
                now = time.perf_counter()
                bar.progress(
                    step / steps,
                    text=f"Step {step}/{steps}, mean objective {objective:.4g}"
                    + ui.time_left(now - started, step, steps),
                )

            try:
                with loaded.lock:
                    found = featureviz.optimise_input(
                        model, opt_layer, chosen, input_shape=meta["input_size"],
                        mean=meta["mean"], std=meta["std"], steps=int(steps), lr=float(lr),
                        l2=float(l2), jitter=int(jitter), blur_every=int(blur_every),
                        blur_sigma=float(blur_sigma), reduce=unit, seed=int(seed),
                        device=loaded.device, callback=tick,
                    )  # fmt: skip
            except (ValueError, RuntimeError) as err:
                st.error(f"The optimisation failed: {err}")
            else:
                bar.progress(1.0, text=f"Done: {found.steps} steps in "
                             f"{time.perf_counter() - started:.1f} s")  # fmt: skip
                results.pop(run_key, None)
                results[run_key] = found
                while len(results) > MAX_OPT_RESULTS:  # the oldest go first
                    results.pop(next(iter(results)))
                st.session_state[f"{P}.opt_last"] = run_key
    shown_key = run_key if run_key in results else st.session_state.get(f"{P}.opt_last")
    if shown_key not in results or shown_key[0] != loaded.name:
        st.info(
            "Choose the channels (or classes) and press **Optimise**: gradient ascent on the "
            "input finds the image each one responds to most."
        )
    else:
        found = results[shown_key]
        shown_layer, shown_chosen, shown_unit = shown_key[2], list(shown_key[3]), shown_key[4]
        if shown_key != run_key:
            st.info(
                "Showing the last optimised images ("
                + (f"channels of {shown_layer}" if shown_layer else "class logits")
                + "); press **Optimise** to apply the changed settings."
            )
        what = "logit" if shown_layer is None else ("centre" if shown_unit == "centre" else "mean")
        names = (
            [f"class {class_names[c]}" for c in shown_chosen]
            if shown_layer is None
            else [f"channel {c}" for c in shown_chosen]
        )
        best = None
        real = images_from if images is not None else None  # the Top-activating tab's set
        if real is not None and side <= SMALL_INPUT:  # one quick pass; skipped for 224 px
            best, best_index = best_real_scores(
                loaded.name, loaded.device, shown_layer, shown_unit, real, loaded
            )
        captions, hovers = [], []
        for i, (c, name) in enumerate(zip(shown_chosen, names, strict=True)):
            lines = [name, f"{what} {float(found.final[i]):.3g}"]
            hover = f"{name}<br>{what} of this image {float(found.final[i]):.4g}"
            if best is not None:
                lines.append(f"best real {float(best[c]):.3g}")
                hover += f"<br>best real image ({ids[int(best_index[c])]}) {float(best[c]):.4g}"
            captions.append(lines)
            hovers.append(hover)
        below = [
            names[i]
            for i, c in enumerate(shown_chosen)
            if best is not None and float(found.final[i]) < float(best[c])
        ]
        if below:
            hint = (
                "this first conv layer is linear in the image, so its channel means are largest "
                "for a flat image: choose the **Centre unit** objective"
                if shown_layer == convs[0] and shown_unit == "mean"
                else "more steps, a higher learning rate or less L2 decay and blur may find one"
            )
            st.warning(
                f"{', '.join(below).capitalize()}: the optimised image scores below the best "
                f"real image, so it is not the input that maximises the {what}; {hint}.",
                icon=":material/trending_down:",
            )
        title = (
            "Inputs that maximise each class logit"
            if shown_layer is None
            else f"Inputs that maximise channels of {shown_layer} ("
            + ("centre unit" if shown_unit == "centre" else "mean over positions")
            + ")"
        )
        st.plotly_chart(
            plot_captioned_images(found.images.numpy(), captions, hover=hovers, title=title),
            key=f"{P}.opt_images",
        )
        st.plotly_chart(
            plot_objective_curves(
                found.objective.numpy(),
                names,
                title=f"Objective per step ({found.steps} steps, on the jittered image)",
                y_title="logit" if shown_layer is None else f"{what} activation",
            ),
            key=f"{P}.opt_curve",
        )
        st.caption(
            f"Under each image: the {what} "
            + ("it reaches" if shown_layer is None else "activation it gives the channel")
            + (
                f", then the highest the {len(images)} real images of the Top-activating tab's "
                "set give (hover for which)"
                if best is not None
                else ""
            )
            + ". Each image started as faint noise around the dataset's mean grey and was "
            "changed step by step in the direction that raises its objective. Left alone, "
            "gradient ascent fills an image with extreme, high-frequency noise that no real "
            "image has; the regularisers keep it readable: L2 decay pulls unhelpful pixels back "
            "to grey, jitter asks the pattern to work at several shifts, the blur smooths it, "
            "and every pixel stays in the range of a real image. The curve shows the objective "
            "rising and levelling off (it wobbles with the jitter). On a model with random "
            "weights (a torchvision architecture without its weights file) the images are "
            "noise: there is nothing learned to visualise."
            + (
                " A network that averages its last feature maps over positions before its "
                "classifier (resnet_digits, resnet18) rewards strokes anywhere, so its class "
                "images tend to be textures; lenet_digits' fully connected layers want them in "
                "place, so its images look like digits."
                if shown_layer is None
                else ""
            )
        )
        stem = f"{loaded.stem}_{shown_layer or 'logits'}_optimised"
        downloads = st.container(horizontal=True)
        downloads.download_button(
            "Download the images (NPY, N×C×H×W)",
            to_npy_bytes(found.images.numpy()),
            file_name=f"{stem}.npy",
            key=f"{P}.download_opt_npy",
            on_click="ignore",  # no rerun: a second download is not cancelled by the first's
        )
        downloads.download_button(
            "Download the grid (PNG)",
            image_grid_png(found.images.numpy(), scale=max(1, 112 // side)),
            file_name=f"{stem}.png",
            mime="image/png",
            key=f"{P}.download_opt_png",
            on_click="ignore",
        )

links.save_settings(settings | by_layer, prefix=f"{P}.", keep=LINK_KEYS)
