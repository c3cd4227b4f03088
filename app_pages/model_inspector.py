"""Model Inspector: per-layer shapes, parameters, multiply-adds and receptive fields of a shipped,
torchvision or uploaded model; transformer building blocks; why batching matters."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import streamlit as st
import torch

import ui
from ui import count_slider, links
from ui.inside_cnns import image_set, image_set_picker, image_set_settings, unreadable_warning
from vizlib import effective_field, receptive, summary, zoo
from vizlib.data import available_datasets
from vizlib.plots import to_npy_bytes
from vizlib.plots.models import (
    OUTLINE_MAX_PIXELS,
    plot_batch_timing,
    plot_effective_field,
    plot_effective_growth,
    plot_layer_costs,
    plot_receptive_fields,
)

st.title("Model Inspector")
st.caption(
    "Open a network layer by layer: every output shape, parameter count and multiply-add below "
    "comes from a real forward pass of one sample through the model, recorded with hooks; "
    "the receptive fields are followed through the same pass, op by op."
)

device = str(ui.current_device())
datasets_status = available_datasets()
SOURCE_ZOO = "Shipped or torchvision model"
SOURCE_UPLOAD = "Upload weights"
P = "inspector."  # widget-key namespace of this page
ARCHITECTURES = zoo.upload_architectures()
# shareable settings, query key -> (widget key, default, allowed); the model travels as ?model=
# (a zoo name, or "upload", which opens the uploader: the file itself never goes into a link)
PAGE_SETTINGS: links.Table = {"log": (P + "log", False, (False, True))}
BATCH_SETTINGS: links.Table = {"n": (P + "n", 2_500, (10, 10_000))}  # "Time it" stays a button
ERF_SHARE = 0.9  # the share of the gradient whose pixels are counted and outlined
LINK_KEYS = {"model", "erf_layer", "erf_unit", "erf_log", "erf_images", "erf_n", *PAGE_SETTINGS}
LINK_KEYS |= set(BATCH_SETTINGS)
# longest layer name shown whole: longer ones lose their shared start to "…" (the CSV keeps it).
# 22 and not 24 ("…layer_10.self_attention"): the grid sizes a column from its first 9 rows and
# its last, so a name further down wider than those is cut; vit_b_16's shortened names (at most
# 18 characters) stay narrower than its measured encoder.pos_embedding (21)
LAYER_NAME_CHARS = 22


@st.cache_data(max_entries=16, show_spinner=False)
def zoo_layer_rows(name: str, device: str) -> list[dict]:
    """Layer table of a zoo model, computed once per (name, device)."""
    model, meta, lock = ui.cached_model(name, device)
    with lock:  # layer_table registers hooks on the shared model
        return summary.layer_table(model, meta["input_size"])


@st.cache_data(max_entries=4, show_spinner=False)
def block_counts() -> list[dict]:
    return summary.transformer_block_counts()


@st.cache_data(max_entries=8, show_spinner=False)
def upload_layer_rows(digest: str, architecture: str, device: str) -> list[dict]:
    """Layer table of uploaded weights (the shared ``ui.uploaded_model``), computed once per
    (file SHA-256, architecture, device), so that a rerun (a toggle) repeats no forward pass."""
    model, meta, lock = ui.uploaded_model(digest, architecture, device, None)
    with lock:  # layer_table registers hooks on the shared model
        return summary.layer_table(model, meta["input_size"])


@st.cache_data(max_entries=64, show_spinner=False)
def layer_effective_field(
    key: tuple, _model: torch.nn.Module, _images: torch.Tensor, _lock: threading.Lock
) -> effective_field.EffectiveField:
    """Effective receptive field for key = (model key, device, layer, image set, images, unit
    mode, unit), computed once: moving between layers and back repeats no pass."""
    layer, unit = key[2], key[-1]
    with _lock:  # a hook on the shared model
        return effective_field.effective_receptive_field(_model, layer, _images, unit=unit)


def inside_image(box: tuple[int, ...], image_hw: tuple[int, int]) -> int:
    """Pixels of a (top, left, bottom, right) box inside an image of (H, W)."""
    top, left, bottom, right = box
    rows = max(0, min(bottom, image_hw[0] - 1) - max(top, 0) + 1)
    cols = max(0, min(right, image_hw[1] - 1) - max(left, 0) + 1)
    return rows * cols


def unit_text(layer: effective_field.FieldLayer, unit: tuple[int, int] | int) -> str:
    """A unit as the page names it: (row, column) of a map, or a ViT's token."""
    if not layer.tokens:
        return f"unit {unit}"
    return "the class token" if unit == 0 else f"token {unit}"


@st.fragment
@links.parked  # its reruns skip the app's router, which parks for full runs
def effective_field_section(
    model_key: str, model: torch.nn.Module, meta: dict, rows: list[dict], lock: threading.Lock
) -> None:
    st.subheader("Effective receptive field")
    layers = effective_field.field_layers(model, rows)
    vit = any(layer.tokens for layer in layers)
    st.caption(
        "The table's field is every pixel that *can* change a unit. How much each one *does* is "
        "the gradient of the unit with respect to the input image (Luo et al., 2016): here the "
        "unit's value summed over the layer's channels, the gradient's size summed over the "
        "input's colour channels and averaged over the images. In a CNN it falls off from the "
        "centre of the box, so most of the influence comes from a small part of it, and that "
        "part shrinks relative to the box as layers are stacked."
        + (
            " In a ViT every block's attention can reach every patch: the blocks' unit is a "
            "token (a patch's, or the class token), and its field is the whole image from the "
            "first block on. How much of it the token really uses is the question."
            if vit
            else ""
        )
    )
    if not layers:
        st.info("No layer of this model outputs a feature map with a receptive field in pixels.")
        return
    image_hw = tuple(int(v) for v in meta["input_size"][1:])
    by_name = {layer.name: layer for layer in layers}
    modes = effective_field.UNIT_MODES if vit else effective_field.UNIT_MODES[:2]
    table = {
        "erf_layer": (
            P + "erf.layer",
            effective_field.default_layer(layers, image_hw),
            tuple(by_name),
        ),
        "erf_unit": (P + "erf.unit", modes[0], modes),
        # a ViT token's field is its own patch and a faint spread over the whole image, which
        # a linear scale hides
        "erf_log": (P + "erf.log", vit, (False, True)),
    }
    erf_link = links.first_visit(P + "erf.")
    for warning in links.load_settings(table, prefix=P, from_link=erf_link):
        st.warning(warning, icon=":material/link_off:")
    c1, c2 = st.columns([3, 2])
    name = c1.selectbox(
        "Layer",
        list(by_name),
        key=P + "erf.layer",
        format_func=lambda n: (
            f"{n} ({by_name[n].kind}, field "
            f"{receptive.field_text(by_name[n].receptive_field)}"
            + ("" if by_name[n].tokens else " px")
            + ")"
        ),
        help="The layers whose output is a feature map, in call order, with their theoretical "
        "field, and a ViT's blocks. A module used more than once is taken at its last use, as "
        "in the table.",
    )
    mode = c2.radio(
        "Unit",
        modes,
        key=P + "erf.unit",
        horizontal=True,
        help="The feature map's centre unit (the upper left of the centre four of an even "
        "map), or unit (0, 0), whose field reaches into the padding: only the part inside "
        "the image has pixels to respond to."
        + (
            " In a ViT's blocks: the token of the centre or the top-left patch, or the class "
            "token, which the classifier reads."
            if vit
            else ""
        ),
    )
    layer = by_name[name]
    source = image_set_picker(P + "erf", meta, samples=True, from_link=erf_link, query="erf_images")
    # saved under the picker's own prefix, where it loaded the value from
    links.save_settings(
        image_set_settings(P + "erf", meta, samples=True, query="erf_images"),
        prefix=P + "erf.",
        keep=LINK_KEYS,
    )
    try:
        images = image_set(source, meta)[0] if source else None
        unit = effective_field.unit_for(layer, mode, model)
    except ValueError as err:
        st.info(str(err)[:1].upper() + str(err)[1:] + ".")
        images = None
    unreadable_warning(source, meta)
    if images is None:
        links.save_settings(table, prefix=P, keep=LINK_KEYS)
        return
    small = int(np.prod(image_hw)) <= 64 * 64
    most, default = min(len(images), 256 if small else 32), 64 if small else 4
    # in the link: a shared link averages the same images, the same map and numbers
    table["erf_n"] = (P + "erf.n", min(default, most), (1, max(most, 1)))
    for warning in links.load_settings({"erf_n": table["erf_n"]}, prefix=P, from_link=erf_link):
        st.warning(warning, icon=":material/link_off:")
    n = count_slider(
        "Images averaged",
        1,
        most,
        default,
        key=P + "erf.n",
        help="More images give a smoother map; each takes one forward and one backward pass.",
    )
    log = st.toggle(
        "Logarithmic colour",
        key=P + "erf.log",
        help="Colour by the logarithm of the gradient, down to 1/10,000 of its largest value: "
        "the tails of the fall-off show, and so does where the gradient is exactly zero.",
    )
    links.save_settings(table, prefix=P, keep=LINK_KEYS)
    chosen = images[:n]
    key = (model_key, str(ui.current_device()), name, source, n, mode, unit)
    try:
        with st.spinner(f"{n} forward and backward passes to {name}…", show_time=True):
            field = layer_effective_field(key, model, chosen, lock)
    except (ValueError, RuntimeError) as err:
        st.error(f"Could not compute the effective receptive field of {name}: {err}")
        return
    box = layer.box(unit, image_hw)
    field_px = inside_image(box, image_hw)
    needed = effective_field.gradient_share(field.gradient, ERF_SHARE)
    m1, m2 = st.columns(2)
    where = (
        f"{unit_text(layer, unit)} of {name}'s {field.map_size[0]} tokens"
        if layer.tokens
        else f"{unit_text(layer, unit)} of {name}'s {field.map_size[0]}×{field.map_size[1]} map"
    )
    m1.metric(
        "Theoretical field",
        "whole image" if layer.tokens else f"{box[2] - box[0] + 1}×{box[3] - box[1] + 1} px",
        help=f"Rows {box[0]} to {box[2]}, columns {box[1]} to {box[3]} of the input for {where} "
        f"({field_px:,} of its pixels inside the image).",
    )
    m2.metric(
        f"Pixels holding {ERF_SHARE:.0%} of the gradient",
        f"{needed:,} px",
        f"{needed / field_px:.0%} of the field's {field_px:,} px in the image"
        if field_px
        else None,
        delta_color="off",
        delta_arrow="off",
        help="The fewest pixels, largest gradient first, whose gradient adds up to "
        f"{ERF_SHARE:.0%} of the total"
        + (
            " (outlined in white)."
            if field.gradient.size <= OUTLINE_MAX_PIXELS and not layer.tokens
            else "."
        ),
    )
    st.plotly_chart(
        plot_effective_field(
            field.gradient,
            box,
            share=ERF_SHARE,
            log=log,
            outline=not layer.tokens,
            title=f"{name}, {unit_text(layer, unit)}: gradient over {field.images} images",
        ),
        key=P + "erf.map",
    )
    st.download_button(
        "Download the map (NPY, H×W: mean |gradient| per input pixel)",
        to_npy_bytes(field.gradient),
        file_name=f"{ui.file_stem(meta.get('name') or 'model')}_{name}_effective_field.npy",
        key=P + "erf.download_map",
        on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    )

    st.markdown("**Layer by layer**")
    steps = [s for s in effective_field.field_steps(layers) if s.tokens == layer.tokens or not vit]
    st.caption(
        f"The same measurement at each of the {len(steps)} blocks, for the same token."
        if layer.tokens
        else f"The same measurement at each of the {len(steps)} layers where the "
        "theoretical field changes (convolutions, poolings, residual merges; a norm or "
        "activation after one keeps its field): the box grows steadily, the part holding "
        f"{ERF_SHARE:.0%} of the gradient more slowly."
    )
    done = [step for step in steps if _cached(key, step.name)]
    if len(done) < len(steps) and not st.button(
        f"Measure the {len(steps)} {'blocks' if layer.tokens else 'layers'}",
        key=P + "erf.all",
        icon=":material/stacked_line_chart:",
    ):
        return
    growth = []
    bar = st.progress(0.0, text="Measuring layer by layer…")
    for i, step in enumerate(steps):
        step_unit = effective_field.unit_for(step, mode, model)
        step_key = (*key[:2], step.name, *key[3:-1], step_unit)
        try:
            f = layer_effective_field(step_key, model, chosen, lock)
        except (ValueError, RuntimeError) as err:
            st.error(f"Could not compute the effective receptive field of {step.name}: {err}")
            return
        growth.append(
            {
                "name": step.name,
                "type": step.kind,
                "field_px": inside_image(step.box(step_unit, image_hw), image_hw),
                "effective_px": effective_field.gradient_share(f.gradient, ERF_SHARE),
            }
        )
        st.session_state.setdefault(P + "erf.done", set()).add(step_key[:-1])
        bar.progress((i + 1) / len(steps), text=f"Measured {step.name} ({i + 1} of {len(steps)})")
    bar.empty()
    st.plotly_chart(plot_effective_growth(growth, share=ERF_SHARE), key=P + "erf.growth")
    st.download_button(
        "Download the layer by layer table (CSV, pixels)",
        pd.DataFrame(growth)
        .rename(
            columns={
                "name": "layer",
                "field_px": "theoretical_field_px_inside_image",
                "effective_px": f"px_holding_{round(ERF_SHARE * 100)}pct_of_gradient",
            }
        )
        .to_csv(index=False),
        file_name=f"{ui.file_stem(meta.get('name') or 'model')}_effective_fields.csv",
        mime="text/csv",
        key=P + "erf.download_growth",
        on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    )


def _cached(key: tuple, layer: str) -> bool:
    """Whether this session has measured ``layer`` under ``key``'s other settings."""
    return (*key[:2], layer, *key[3:-1]) in st.session_state.get(P + "erf.done", set())


# ---- model choice -------------------------------------------------------------------------
for warning in links.load_settings(
    PAGE_SETTINGS | BATCH_SETTINGS, prefix=P, from_link=links.first_visit(P)
):
    st.warning(warning, icon=":material/link_off:")
names = zoo.list_models()
query_model = st.query_params.get("model")
# back from another page (the browser leaves the link behind), the session's last choices
restored = ui.restore_last(P + "source", query_model is None, [SOURCE_ZOO, SOURCE_UPLOAD])
source = st.radio(
    "Model source",
    [SOURCE_ZOO, SOURCE_UPLOAD],
    horizontal=True,
    key=P + "source",
    index=1 if query_model == "upload" and not restored else 0,
)
ui.remember_last(P + "source", source)

model = meta = rows = None
if source == SOURCE_ZOO:
    # ?model=upload is the page's own link while the uploader showed: only a zoo model named
    # in the link beats the session's last choice
    restored = ui.restore_last(P + "model", query_model not in names, names)
    name = st.selectbox(
        "Model",
        names,
        index=0 if restored else ui.linked_index("model", names, accepted=("upload",)),
        key=P + "model",
        help="Checkpoints trained on the bundled digits ship with the app; torchvision "
        "architectures use their ImageNet weights only when already in the torch hub cache.",
    )
    ui.remember_last(P + "model", name)
    st.query_params["model"] = name
    st.query_params.pop("arch", None)
    try:
        model, meta, lock = ui.cached_model(name, device)
        model_key = name
        with st.spinner(f"Running {name} once to record its layers…", show_time=True):
            rows = zoo_layer_rows(name, device)
    except (ValueError, RuntimeError) as err:
        st.error(f"Could not load {name}: {err}")
    except torch.cuda.OutOfMemoryError:
        st.error(f"The GPU ran out of memory loading {name}; pick the CPU in the sidebar.")
else:
    st.query_params["model"] = "upload"
    picked = ui.upload_picker(
        "inspector",
        ARCHITECTURES,
        device,
        prompt="Upload a weights file to inspect it, or switch to a shipped model.",
    )
    if picked is not None:
        architecture, digest, model, meta, lock = picked
        model_key = f"upload:{architecture}:{digest}"
        st.success(f"Loaded the weights into {architecture}: every key and shape matched.")
        try:
            with st.spinner("Running the upload once to record its layers…", show_time=True):
                rows = upload_layer_rows(digest, architecture, device)
        except (ValueError, RuntimeError) as err:
            st.error(f"Could not run the uploaded model: {err}")

if meta is not None and meta.get("notice") and meta.get("source") != "upload":  # the picker's
    st.warning(meta["notice"], icon=":material/warning:")

# ---- metadata -----------------------------------------------------------------------------
if meta is not None and rows is not None:
    totals = summary.table_totals(rows)
    # two metrics a row: four in one row cut "15,470,264,320" (vgg16) to "15,47…" at 1024 px
    c1, c2 = st.columns(2)
    c3, c4 = st.columns(2)
    c1.metric("Parameters", f"{totals['params']:,}")
    c2.metric("Multiply-adds per sample", f"{totals['macs']:,}")
    acc = meta.get("test_accuracy")
    c3.metric(
        f"Test accuracy ({meta.get('dataset')})",
        "n/a" if acc is None else f"{acc:.2%}",
        help="Recorded when the checkpoint was trained; ImageNet top-1 for torchvision weights; "
        "for uploaded weights of a digits model, measured on the digits test split on upload "
        "(n/a where the app does not ship the test data).",
    )
    c4.metric("Input (C, H, W)", " x ".join(str(v) for v in meta["input_size"]))
    details = {
        "architecture": meta.get("architecture"),
        "family": meta.get("family"),
        "source": meta.get("source"),
        "dataset": meta.get("dataset"),
        "classes": len(meta.get("class_names") or []),
        "pretrained weights": meta.get("pretrained"),
    }
    for key, label in (
        ("training_time_s", "training time (s)"),
        ("device", "trained on"),
        ("epochs", "epochs"),
        ("seed", "seed"),
        ("patch_size", "patch size (pixels)"),
        ("grid_size", "patch grid"),
    ):
        if meta.get(key) is not None:
            details[label] = meta[key]
    st.dataframe(
        pd.DataFrame({"property": list(details), "value": [str(v) for v in details.values()]}),
        hide_index=True,
        width="stretch",
    )

    # ---- per-layer table ------------------------------------------------------------------
    st.subheader("Layers")
    # torchvision's vit_b_16 names run to 46 characters ("encoder.layers.encoder_layer_10.
    # self_attention", a 289 px column) and its table scrolled sideways at 1024 px; every other
    # zoo model's names are 21 characters or fewer and stay whole
    shown_names, elided = summary.shorten_layer_names(
        [r["name"] for r in rows], max_chars=LAYER_NAME_CHARS
    )
    st.caption(
        "Rows in call order. Multiply-adds count convolutions, linear layers and the two "
        "attention products (QK^T and AV); biases, norms, activations and pooling count zero. "
        "Output shapes include a batch of 1. The two tabs show one table; its CSV download "
        "holds every column."
    )
    if elided:  # a line of its own just above the table, with a row's name both ways
        short, full = next(
            (s, r["name"]) for r, s in zip(rows, shown_names, strict=True) if s != r["name"]
        )
        # plain text, not code spans, which a caption sets too small to read on a projector;
        # "\\_" so that no underscore is read as emphasis
        st.caption(
            f"In the layer names, … stands for {elided} ({short} is {full}); the CSV has the "
            "names in full.".replace("_", "\\_")
        )
    field = receptive.field_text
    table = pd.DataFrame(
        {
            "layer": [r["name"] for r in rows],
            "type": [r["type"] for r in rows],
            "output shape": [summary.shape_text(r) for r in rows],
            "parameters": [r["params"] for r in rows],
            "multiply-adds": [r["macs"] for r in rows],
            "receptive field (px)": [field(r["receptive_field"]) for r in rows],
            "jump (px)": [field(r["jump"]) for r in rows],
            "field start (px)": [field(r["rf_start"]) for r in rows],
        }
    )
    columns = {
        "layer": st.column_config.TextColumn(
            help="The module's name in the model, in call order. A parameter that a module "
            "holds outside its layers (a ViT's class token and position embeddings) has a row "
            "of its own, named as in the state dict, where the pass first reads it."
            + (f" “…” stands for `{elided}`." if elided else "")
        ),
        "type": st.column_config.TextColumn(
            help="The module's class; for a parameter outside the layers, what it is."
        ),
        "output shape": st.column_config.TextColumn(
            "shape",
            help="Output shape, batch of 1 first (1×32×24×24: one image, 32 channels, 24 x 24 "
            "positions); for a parameter outside the layers, its own shape (a class token "
            "1×1×D, position embeddings 1×T×D for T tokens of D features).",
        ),
        "parameters": st.column_config.NumberColumn(
            "params",
            format="localized",
            help="Parameters of this layer (count), shared ones counted once.",
        ),
        "multiply-adds": st.column_config.NumberColumn(
            "MACs",
            format="localized",
            help="Multiply-adds (count) of one forward pass of one sample.",
        ),
        "receptive field (px)": st.column_config.TextColumn(
            "field (px)",
            help="Receptive field: height x width of the input patch each unit of this layer "
            "sees, in input pixels (padding included).",
        ),
        "jump (px)": st.column_config.TextColumn(
            help="Distance in input pixels between neighbouring units of this layer: the "
            "product of the strides so far."
        ),
        "field start (px)": st.column_config.TextColumn(
            "start (px)",
            help="Field start: row x column of the first input pixel seen by unit (0, 0); "
            "negative: the field begins in the zero padding.",
        ),
    }
    # two views of one table (the CSV holds all eight columns): side by side they scrolled
    # sideways at 1024 px, a projector's width
    costs_tab, fields_tab = st.tabs(["Shapes and costs", "Receptive fields"])
    for tab, shown in (
        (costs_tab, ["layer", "type", "output shape", "parameters", "multiply-adds"]),
        (fields_tab, ["layer", "type", "receptive field (px)", "jump (px)", "field start (px)"]),
    ):
        tab.dataframe(
            table.assign(layer=shown_names),
            hide_index=True,
            width="stretch",
            height=min(600, 36 * (len(table) + 1)),
            column_order=shown,
            column_config=columns,
        )
    image_hw = tuple(int(v) for v in meta["input_size"][1:])
    st.caption(
        "**Receptive field** R x R: each unit of this layer sees an R x R patch of the input "
        "image. **Jump** J: neighbouring units of this layer are J pixels apart in the input. "
        "Padding shifts a field, it never changes R; where branches merge (a residual addition) "
        "the field is the union of theirs. After global pooling, a linear layer on flattened "
        "maps, or attention, every unit sees the whole image. *unknown*: a layer the analysis "
        "cannot follow, and every layer after it; *—*: not computed from the image (the jump: "
        "the maps were flattened). A module used more than once (torchvision's ReLU in each "
        "block) shows its last use."
    )
    larger = receptive.larger_than_input(rows, image_hw)
    if larger:
        first = next(r for r in rows if r["name"] == larger[0])
        st.info(
            f"{len(larger)} layers see more than the {image_hw[0]} x {image_hw[1]} input, "
            f"starting with {larger[0]} ({field(first['receptive_field'])} px). That is "
            "correct: the field counts the zero padding around the image, which units near the "
            "border see; only the part inside the image carries pixels.",
            icon=":material/info:",
        )
    st.download_button(
        "Download the layer table (CSV)",
        table.to_csv(index=False).encode(),
        file_name=f"{ui.file_stem(meta.get('name') or 'model')}_layers.csv",
        mime="text/csv",
        key="inspector.download_csv",
        on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    )
    log_x = st.toggle(
        "Logarithmic axes",
        key=P + "log",
        help="Parameters and multiply-adds on logarithmic axes, so that small layers show "
        "beside the largest ones.",
    )
    st.plotly_chart(plot_layer_costs(rows, log_x=log_x, names=shown_names), key="inspector.costs")
    if any(isinstance(r["receptive_field"], tuple) for r in rows):
        st.plotly_chart(plot_receptive_fields(rows, image_hw), key="inspector.fields")

    effective_field_section(model_key, model, meta, rows, lock)

    with st.expander("print(model): torch's own description"):
        st.code(str(model), language="text")

links.save_settings(
    PAGE_SETTINGS,
    prefix=P,
    keep=LINK_KEYS,
)

with st.expander("Datasets available offline"):
    st.caption(
        "Nothing is downloaded at run time. The bundled digits always work; MNIST, FashionMNIST "
        "and CIFAR10 are read when their files already sit under the folder named by the "
        "VIZLIB_DATA environment variable."
    )
    st.dataframe(
        pd.DataFrame({"dataset": list(datasets_status), "status": list(datasets_status.values())}),
        hide_index=True,
        width="stretch",
    )

# ---- transformer blocks -------------------------------------------------------------------
st.subheader("Transformer building blocks")
st.caption(
    "Parameter counts of torch's own modules with d_model = 6, 2 heads, counted from the "
    "built modules; the formula explains each count (weights, then biases)."
)
# a static table: its cells wrap, where a dataframe's long block names pushed the formulas
# behind a horizontal scroll at 1024 px
st.table(
    pd.DataFrame(block_counts()).rename(columns={"params": "parameters"}),
    hide_index=True,
    border="horizontal",
)


# ---- batching demo ------------------------------------------------------------------------
@st.fragment
def batching_demo() -> None:
    st.subheader("Why frameworks batch")
    st.caption(
        "One dense layer y = W x with W of 1,500 x 1,000, applied to N inputs of 1,000 values: "
        "a Python loop over the samples against one batched matrix product."
    )
    n_samples = st.number_input("Samples N", min_value=10, max_value=10_000, step=100, key=P + "n")
    links.save_settings(BATCH_SETTINGS, prefix=P, keep=LINK_KEYS)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if st.button("Time it", key="inspector.time", icon=":material/timer:"):
        results = []
        with st.spinner(f"Timing on {', '.join(devices)}…", show_time=True):
            for dev in devices:
                try:
                    results.append(
                        summary.batch_matmul_timing(n_samples=int(n_samples), repeats=2, device=dev)
                    )
                except (ValueError, RuntimeError) as err:
                    st.error(f"Timing on {dev} failed: {err}")
        st.session_state["inspector.timings"] = results
    results = st.session_state.get("inspector.timings")
    if results:
        cols = st.columns(len(results))
        for col, r in zip(cols, results, strict=True):
            col.metric(
                f"Speed-up on {r['device']} (N = {r['n_samples']:,})",
                f"{r['speedup']:.1f}x",
                help=f"loop {r['loop_s']:.4f} s, batched {r['batched_s']:.4f} s "
                f"(best of 2); results agree to {r['max_abs_diff']:.1e}",
            )
        st.plotly_chart(plot_batch_timing(results), key="inspector.timing_chart")
        st.download_button(
            "Download the timings (CSV, seconds)",
            pd.DataFrame(results).to_csv(index=False),
            file_name="batching_timings.csv",
            mime="text/csv",
            key="inspector.download_timings",
            on_click="ignore",  # no rerun: a second download is not cancelled by the first's
        )
        if not torch.cuda.is_available():
            st.caption("No CUDA GPU on this machine: only the CPU was timed.")


batching_demo()
