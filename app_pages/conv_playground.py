"""Convolution Playground: output sizes, parameters and multiply-adds worked out in the user's
numbers, the sliding-kernel animation, coverage, receptive fields, filtering real data, 1-D
convolution written out term by term, transposed / grouped / depthwise convolution."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import streamlit as st

import ui
from ui import links
from vizlib import conv, effective_field, kernels
from vizlib.data import samples
from vizlib.plots import conv as conv_plots
from vizlib.plots import export
from vizlib.plots.models import plot_effective_field, plot_field_profile, plot_spread_by_depth

P = "conv."  # widget-key namespace of this page
MAX_SIDE = 256  # real-data inputs are shrunk to at most this many cells a side

MODES = ("Convolution", "Transposed convolution")
PAD_KINDS = ("numbers", "same", "valid")

# Shareable settings: query key -> (widget key, default, allowed values, (min, max) for whole
# numbers, (min, max, step) for decimals, or a parser of the link's text).
SETTINGS: dict[str, tuple[str, object, object]] = {
    "mode": (P + "mode", MODES[0], MODES),
    "h": (P + "h", 7, (0, 64)),
    "w": (P + "w", 7, (0, 64)),
    "kh": (P + "kh", 3, (0, 31)),
    "kw": (P + "kw", 3, (0, 31)),
    "sh": (P + "sh", 1, (1, 8)),
    "sw": (P + "sw", 1, (1, 8)),
    "pad": (P + "pad", "numbers", PAD_KINDS),
    "ph": (P + "ph", 0, (0, 16)),
    "pw": (P + "pw", 0, (0, 16)),
    "dh": (P + "dh", 1, (1, 6)),
    "dw": (P + "dw", 1, (1, 6)),
    "pm": (P + "pm", "zeros", conv.PADDING_MODES),
    "oph": (P + "oph", 0, (0, 7)),
    "opw": (P + "opw", 0, (0, 7)),
    "cin": (P + "cin", 1, (1, 1024)),
    "cout": (P + "cout", 1, (1, 1024)),
    "g": (P + "g", 1, (1, 1024)),
    "bias": (P + "bias", True, (False, True)),
}

SOURCES = ("sample", "digit", "field", "upload")
KERNELS = (*kernels.kernel_names(), "custom")
SIZED_KERNELS = ("mean", "gaussian", "identity")  # the presets with a size slider
DEFAULT_CUSTOM = "0,-1,0;-1,4,-1;0,-1,0"  # custom kernel in link form: rows split by ";"


def parse_custom_text(text: str) -> str:
    """Return a custom kernel's link text ("0,-1,0;-1,4,-1;0,-1,0") tidied; ValueError if bad."""
    rows = [row.split(",") for row in text.split(";")]
    if len({len(row) for row in rows}) != 1:
        raise ValueError("expected rows of equally many numbers, like 0,-1,0;-1,4,-1;0,-1,0")
    try:
        kernels.parse_custom_kernel(rows)
    except ValueError as err:
        raise ValueError(f"expected rows of numbers like 0,-1,0;-1,4,-1;0,-1,0: {err}") from None
    return ";".join(",".join(cell.strip() for cell in row) for row in rows)


# The real-data section's settings, keys namespaced by "data.". An uploaded file cannot travel
# in a link, so "upload" is not a source a link may name.
DATA_SETTINGS: dict[str, tuple[str, object, object]] = {
    "data.src": (P + "source", "sample", SOURCES[:3]),
    "data.img": (P + "sample", "camera", tuple(samples.sample_image_names())),
    "data.gray": (P + "gray", True, (False, True)),
    "data.digit": (P + "digit", 0, (0, 1796)),
    "data.field": (P + "field", "typhoon", tuple(samples.SYNTHETIC_FIELDS)),
    "data.noise": (P + "noise", 1.0, (0.0, 10.0, 0.5)),
    "data.seed": (P + "seed", 0, (0, 10_000)),
    "data.kernel": (P + "kernel", "gaussian", KERNELS),
    "data.ksize": (P + "ksize", 5, (1, kernels.MAX_KERNEL_SIZE)),
    "data.sigma": (P + "sigma", 1.0, (0.2, 5.0, 0.1)),
    "data.custom": (P + "custom_text", DEFAULT_CUSTOM, parse_custom_text),
}


# The stack of "Receptive field of a stack": the editor's column bounds, also a link's.
STACK_BOUNDS = {"kernel": (1, 31), "stride": (1, 8), "dilation": (1, 8)}
MAX_STACK_LAYERS = 32
DEFAULT_STACK = "k3_k3_k3"  # three 3×3 layers, stride 1, dilation 1, in link form
STACK_LAYER_RE = re.compile(r"k(\d+)(?:s(\d+))?(?:d(\d+))?")
STACK_FORM = (
    "layers like k3_k3s2_k5d2 (kernel k 1–31, then stride s and dilation d 1–8 where not 1), "
    f"first layer first, at most {MAX_STACK_LAYERS}"
)
# the effective field's weights as the link names them -> as vizlib.effective_field does
STACK_WEIGHT_NAMES = dict(
    zip(("uniform", "random", "random_relu"), effective_field.STACK_WEIGHTS, strict=True)
)


def check_stack(layers: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Return ``layers`` ((kernel, stride, dilation) per layer, first first) if the editor's
    bounds allow them; ValueError saying which layer breaks which bound otherwise."""
    if not layers:
        raise ValueError("Add at least one layer to the stack.")
    if len(layers) > MAX_STACK_LAYERS:
        raise ValueError(f"At most {MAX_STACK_LAYERS} layers; the stack has {len(layers)}.")
    for i, layer in enumerate(layers, start=1):
        for (name, (low, high)), value in zip(STACK_BOUNDS.items(), layer, strict=True):
            if not low <= value <= high:
                raise ValueError(f"Layer {i}'s {name} is {value}; it must be {low} to {high}.")
    return layers


def stack_link_text(layers: list[tuple[int, int, int]]) -> str:
    """Return a stack in link form: "k3_k3s2_k5d2" for 3×3; 3×3 stride 2; 5×5 dilation 2.
    Underscores and letters, which a URL carries as they are (commas would read %2C)."""
    return "_".join(
        f"k{k}" + (f"s{s}" if s != 1 else "") + (f"d{d}" if d != 1 else "") for k, s, d in layers
    )


def stack_from_text(text: str) -> list[tuple[int, int, int]]:
    """Return the (kernel, stride, dilation) layers of a stack's link text; ValueError if bad."""
    layers = []
    for part in text.split("_"):
        found = STACK_LAYER_RE.fullmatch(part.strip().lower())
        if found is None:
            raise ValueError(f"expected {STACK_FORM}; {part!r} is not a layer")
        layers.append(tuple(int(n) if n else 1 for n in found.groups()))
    try:
        return check_stack(layers)
    except ValueError as err:
        raise ValueError(f"expected {STACK_FORM}: {str(err)[:1].lower()}{str(err)[1:-1]}") from None


def parse_stack_text(text: str) -> str:
    """Return a stack's link text tidied ("K3S1D1_k3" -> "k3_k3"); ValueError if bad."""
    return stack_link_text(stack_from_text(text))


def stack_table_layers(table: pd.DataFrame) -> list[tuple[int, int, int]]:
    """Return the layers of the stack editor's table (rows kernel, stride, dilation), its empty
    rows skipped; ValueError saying what to fix if a cell is empty, fractional or out of bounds."""
    rows = table[list(STACK_BOUNDS)].dropna(how="all")
    if rows.isna().any().any():
        raise ValueError("Fill in every cell of the stack (kernel, stride, dilation).")
    try:
        values = rows.to_numpy(dtype=float)  # (layers, 3)
    except (TypeError, ValueError):
        raise ValueError("Kernel, stride and dilation are whole numbers.") from None
    if not (np.isfinite(values) & (values == values.round())).all():
        raise ValueError("Kernel, stride and dilation are whole numbers.")
    return check_stack([tuple(int(v) for v in row) for row in values])


# The stack's link settings: its layers (kept as link text), the channels C of the parameter
# comparison, the effective field's weights.
STACK_SETTINGS: dict[str, tuple[str, object, object]] = {
    "stack": (P + "stack_text", DEFAULT_STACK, parse_stack_text),
    "stack_c": (P + "stack_c", 64, (1, 2048)),
    "stack_w": (P + "stack_weights", "uniform", tuple(STACK_WEIGHT_NAMES)),
}


def data_link_keys(source: str, kernel: str) -> set[str]:
    """Return the DATA_SETTINGS keys that shape what the section shows for this source and kernel."""
    keys = {
        "sample": {"data.src", "data.img", "data.gray"},
        "digit": {"data.src", "data.digit"},
        "field": {"data.src", "data.field", "data.noise", "data.seed"},
        "upload": set(),  # the file cannot travel in the link, so neither does the choice
    }[source] | {"data.kernel"}
    if kernel in SIZED_KERNELS:
        keys.add("data.ksize")
    if kernel == "gaussian":
        keys.add("data.sigma")
    if kernel == "custom":
        keys.add("data.custom")
    return keys


def animation_settings(grid: tuple[int, int]) -> dict[str, tuple[str, object, object]]:
    """Return the animation's link settings for a grid of (rows, columns) positions."""
    return {
        "anim.row": (P + "pos_r", 0, (0, grid[0] - 1)),
        "anim.col": (P + "pos_c", 0, (0, grid[1] - 1)),
        "anim.numbers": (P + "numbers", True, (False, True)),
    }


def show_problem(problems: dict[str, str], *keys: str) -> None:
    for key in keys:
        if key in problems:
            st.error(problems[key], icon=":material/error:")


def make_depthwise() -> None:
    cin = st.session_state[P + "cin"]
    st.session_state[P + "g"] = cin
    if st.session_state[P + "cout"] % cin:
        st.session_state[P + "cout"] = cin


def fmt(n: int) -> str:
    return f"{n:,}"


st.title("Convolution Playground")
st.caption(
    "Change any setting on the left; every number on the right is recomputed, and the link in "
    "the address bar keeps the settings (and the data and kernel chosen under 'Apply to real "
    "data') so you can share them. Sizes are in cells (pixels)."
)
# every key the page's link may hold (the animation's settings are added where it is drawn)
LINK_KEYS = (
    SETTINGS.keys()
    | DATA_SETTINGS.keys()
    | STACK_SETTINGS.keys()
    | animation_settings((1, 1)).keys()
)
first_visit = links.first_visit(P)
for warning in links.load_settings(
    SETTINGS | DATA_SETTINGS | STACK_SETTINGS, prefix=P, from_link=first_visit
):
    st.warning(warning, icon=":material/link_off:")
device = ui.current_device()

controls, results = st.columns([1, 2.3], gap="large")

with controls:
    mode = st.radio("Layer", MODES, key=P + "mode", horizontal=True)
    transposed = mode == MODES[1]
    st.markdown("**Input (H × W)**")
    c1, c2 = st.columns(2, vertical_alignment="bottom")
    h = c1.number_input("Input height H (cells)", min_value=0, max_value=64, step=1, key=P + "h")
    w = c2.number_input("Input width W (cells)", min_value=0, max_value=64, step=1, key=P + "w")
    slot_input = st.empty()
    st.markdown("**Kernel (K_h × K_w)**")
    c1, c2 = st.columns(2, vertical_alignment="bottom")
    kh = c1.number_input("Kernel height K_h", min_value=0, max_value=31, step=1, key=P + "kh")
    kw = c2.number_input("Kernel width K_w", min_value=0, max_value=31, step=1, key=P + "kw")
    slot_kernel = st.empty()
    c1, c2 = st.columns(2, vertical_alignment="bottom")
    sh = c1.slider("Stride S_h", 1, 8, key=P + "sh")
    sw = c2.slider("Stride S_w", 1, 8, key=P + "sw")
    slot_stride = st.empty()
    pad_labels = {"numbers": "per axis", "same": "'same'", "valid": "'valid' (0)"}
    if transposed:
        # What the layer uses: per-axis numbers. A disabled box of its own, so the user's
        # 'same' or 'valid' is neither shown as if in use (it read 'same' above P = 1) nor lost.
        st.radio(
            "Padding", PAD_KINDS[:1], key=P + "pad_na", horizontal=True, disabled=True,
            format_func=pad_labels.get,
            help="A transposed convolution takes its padding as numbers: P cells cropped from "
            "each side of the output.",
        )  # fmt: skip
        pad_kind = "numbers"
    else:
        pad_kind = st.radio(
            "Padding", PAD_KINDS, key=P + "pad", horizontal=True, format_func=pad_labels.get,
            help="'same' keeps the output the size of the input (stride 1 only); 'valid' means "
            "no padding.",
        )  # fmt: skip
    c1, c2 = st.columns(2, vertical_alignment="bottom")
    ph = c1.number_input(
        "Padding P_h (cells)", 0, 16, step=1, key=P + "ph", disabled=pad_kind != "numbers"
    )
    pw = c2.number_input(
        "Padding P_w (cells)", 0, 16, step=1, key=P + "pw", disabled=pad_kind != "numbers"
    )
    slot_padding = st.empty()
    c1, c2 = st.columns(2, vertical_alignment="bottom")
    dh = c1.slider("Dilation D_h", 1, 6, key=P + "dh")
    dw = c2.slider("Dilation D_w", 1, 6, key=P + "dw")
    if transposed:  # zeros, as torch's ConvTranspose2d has it; the user's choice is kept
        padding_mode = st.selectbox(
            "Padding mode", ("zeros",), key=P + "pm_na", disabled=True,
            help="torch.nn.ConvTranspose2d supports only zeros.",
        )  # fmt: skip
    else:
        padding_mode = st.selectbox(
            "Padding mode",
            conv.PADDING_MODES,
            key=P + "pm",
            help="What the padding cells hold: zeros, a mirror image (reflect), the edge value "
            "(replicate) or the opposite edge (circular, wrap-around).",
        )
    slot_mode = st.empty()
    if transposed:
        c1, c2 = st.columns(2, vertical_alignment="bottom")
        oph = c1.number_input("Output padding (height)", 0, 7, step=1, key=P + "oph")
        opw = c2.number_input("Output padding (width)", 0, 7, step=1, key=P + "opw")
    else:
        oph, opw = 0, 0
    slot_output_padding = st.empty()
    st.markdown("**Channels**")
    c1, c2 = st.columns(2, vertical_alignment="bottom")
    cin = c1.number_input("Input channels C_in", 1, 1024, step=1, key=P + "cin")
    cout = c2.number_input("Output channels C_out", 1, 1024, step=1, key=P + "cout")
    groups = st.number_input(
        "Groups",
        1,
        1024,
        step=1,
        key=P + "g",
        help="Split the channels into this many independent groups; groups = C_in is depthwise.",
    )
    # a row of its own: beside the groups box a 1024-pixel screen cut its label to 'De…'
    st.button(
        "Depthwise",
        key=P + "depthwise",
        on_click=make_depthwise,
        help="Set groups = C_in; C_out becomes C_in unless it is already a multiple of it.",
    )
    slot_groups = st.empty()
    bias = st.checkbox("Bias", key=P + "bias")
links.save_settings(SETTINGS, prefix=P, keep=LINK_KEYS)

padding: int | tuple[int, int] | str = (ph, pw) if pad_kind == "numbers" else pad_kind
settings = {
    "input_hw": (h, w),
    "kernel": (kh, kw),
    "stride": (sh, sw),
    "padding": padding,
    "dilation": (dh, dw),
}
# The layer as torch sees it: shared by the checks, the shape check and the copyable code.
layer = conv.ConvSettings(
    cin,
    cout,
    (kh, kw),
    (sh, sw),
    padding,
    (dh, dw),
    groups=groups,
    bias=bias,
    padding_mode=padding_mode,
    transposed=transposed,
    output_padding=(oph, opw),
)
problems = layer.problems((h, w))
for slot, keys in (
    (slot_input, ("input",)),
    (slot_kernel, ("kernel",)),
    (slot_stride, ("stride", "dilation")),
    (slot_padding, ("padding",)),
    (slot_mode, ("padding_mode",)),
    (slot_output_padding, ("output_padding",)),
    (slot_groups, ("channels", "groups")),
):
    with slot.container():
        show_problem(problems, *keys)


def output_size_section() -> tuple[int, int] | None:
    """Draw the output-size formulas and torch's shape; return (H_out, W_out)."""
    st.subheader("Output size")
    if transposed:
        ho, wo = conv.conv_transpose_output_shape(
            (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oph, opw)
        )
        st.latex(
            r"\begin{aligned}H_{out} &= (H-1)S - 2P + D(K-1)\\"
            r"&\quad + \text{output\_padding} + 1\end{aligned}"
        )
        for axis, n, k, s, p, d, op, out in (
            ("H", h, kh, sh, ph, dh, oph, ho),
            ("W", w, kw, sw, pw, dw, opw, wo),
        ):
            # one step a line: on a 1024-pixel projector one line was cut before its result
            st.latex(
                rf"\begin{{aligned}}{axis}_{{out}} &= ({n}-1)\cdot{s} - 2\cdot{p}\\"
                rf"&\quad + {d}\cdot({k}-1) + {op} + 1\\&= {out}\end{{aligned}}"
            )
    else:
        (pt, pb), (pl, pr) = conv.padding_amounts(padding, (kh, kw), (sh, sw), (dh, dw))
        ho, wo = conv.conv_output_shape(**settings)
        st.latex(
            r"H_{out} = \left\lfloor \frac{H + 2P - D(K-1) - 1}{S} \right\rfloor + 1"
            r"\\(\text{the same for } W)"
        )
        for axis, n, k, s, before, after, d, out in (
            ("H", h, kh, sh, pt, pb, dh, ho),
            ("W", w, kw, sw, pl, pr, dw, wo),
        ):
            pad = f"2\\cdot{before}" if before == after else f"({before}+{after})"
            # one step a line: on a 1024-pixel projector one line was cut before its result
            st.latex(
                rf"\begin{{aligned}}{axis}_{{out}} &= \left\lfloor \frac{{{n} + {pad} - "
                rf"{d}\cdot({k}-1) - 1}}{{{s}}}\right\rfloor + 1\\&= \left\lfloor \frac"
                rf"{{{n + before + after - d * (k - 1) - 1}}}{{{s}}} \right\rfloor + 1 = {out}"
                r"\end{aligned}"
            )
        if pad_kind == "same" and (pt != pb or pl != pr):
            st.caption(
                f"'same' with an even kernel extent pads unevenly: {pt} above / {pb} below, "
                f"{pl} left / {pr} right (torch puts the extra cell after)."
            )
    layer_name = "nn.ConvTranspose2d" if transposed else "nn.Conv2d"
    st.markdown(f"**Output: {cout} × {ho} × {wo}** (C_out × H_out × W_out)")
    try:
        module = conv.torch_layer(layer, device="meta")
        shape = conv.torch_output_shape(module, cin, (h, w))
        torch_params = sum(p.numel() for p in module.parameters())
    except (RuntimeError, ValueError) as err:
        st.error(f"torch.{layer_name} refused these settings: {err}")
        return None
    agree = shape[1:] == (cout, ho, wo)
    st.markdown(
        f"`torch.{layer_name}` really produces **{tuple(shape)}** (batch, C_out, H_out, W_out) "
        f"for a (1, {cin}, {h}, {w}) input {':green[:material/check_circle: matches]' if agree else ':red[:material/cancel: differs]'}"
    )
    st.caption(
        "Shape checked by running the layer on torch's 'meta' device (shapes only, no data)."
    )
    st.session_state[P + "torch_params"] = torch_params
    return ho, wo


def cost_section(out_hw: tuple[int, int]) -> None:
    st.subheader("Parameters and multiply-adds")
    params = conv.conv_params(cin, cout, (kh, kw), bias=bias, groups=groups)
    per = cin // groups
    bias_term = f" + {cout}" if bias else ""
    c1, c2 = st.columns(2)
    c1.metric("Learnable parameters", fmt(params))
    c1.markdown(
        f"(C_in/groups) × K_h × K_w × C_out{' + C_out' if bias else ''} = "
        f"{per} × {kh} × {kw} × {cout}{bias_term} = **{fmt(params)}**"
    )
    c1.caption(f"torch counts {fmt(st.session_state[P + 'torch_params'])} in the layer's tensors.")
    if transposed:
        macs = conv.conv_transpose_macs(cin, cout, (kh, kw), (h, w), groups=groups)
        c2.metric("Multiply-adds per image", fmt(macs))
        c2.markdown(
            f"C_in × H × W × (C_out/groups) × K_h × K_w = {cin} × {h} × {w} × {cout // groups} × "
            f"{kh} × {kw} = **{fmt(macs)}**"
        )
    else:
        macs = conv.conv_macs(cin, cout, (kh, kw), out_hw, groups=groups)
        c2.metric("Multiply-adds per image", fmt(macs))
        c2.markdown(
            f"C_out × H_out × W_out × (C_in/groups) × K_h × K_w = {cout} × {out_hw[0]} × "
            f"{out_hw[1]} × {per} × {kh} × {kw} = **{fmt(macs)}**"
        )
    c2.caption("Bias additions are not counted.")

    rows = [("Standard (groups = 1)", 1, cin, cout)]
    if groups != 1:
        rows.append((f"Grouped (groups = {groups})", groups, cin, cout))
    if cout % cin == 0 and groups != cin:
        rows.append((f"Depthwise (groups = C_in = {cin})", cin, cin, cout))
    table = []
    base_params = conv.conv_params(cin, cout, (kh, kw), bias=bias)
    for label, g, ci, co in rows:
        p = conv.conv_params(ci, co, (kh, kw), bias=bias, groups=g)
        m = (
            conv.conv_transpose_macs(ci, co, (kh, kw), (h, w), groups=g)
            if transposed
            else conv.conv_macs(ci, co, (kh, kw), out_hw, groups=g)
        )
        table.append({"layer": label, "parameters": p, "multiply-adds": m})
    if not transposed:
        sep = conv.conv_params(cin, cin, (kh, kw), bias=bias, groups=cin) + conv.conv_params(
            cin, cout, 1, bias=bias
        )
        sep_macs = conv.conv_macs(cin, cin, (kh, kw), out_hw, groups=cin) + conv.conv_macs(
            cin, cout, 1, out_hw
        )
        table.append(
            {
                "layer": f"Depthwise-separable ({kh}×{kw} depthwise + 1×1 pointwise)",
                "parameters": sep,
                "multiply-adds": sep_macs,
            }
        )
    frame = pd.DataFrame(table)
    frame["parameters vs standard"] = [f"{p / base_params:.1%}" for p in frame["parameters"]]
    with st.expander("Grouped and depthwise convolution: parameter savings", expanded=groups > 1):
        st.dataframe(frame, hide_index=True, width="stretch")
        st.caption(
            "With g groups each output channel only sees C_in/g input channels, so weights and "
            "multiply-adds shrink by the factor g. Depthwise-separable layers (MobileNet) follow "
            "a depthwise layer by a 1×1 convolution that mixes the channels."
        )


def code_section() -> None:
    st.subheader("PyTorch")
    line = conv.layer_code(layer)
    st.code(
        f"import torch\nfrom torch import nn\n\nlayer = {line}\n"
        f"x = torch.randn(1, {cin}, {h}, {w})\nprint(layer(x).shape)",
        language="python",
        wrap_lines=True,  # a layer with every option set ran past the column, cut off there
    )


def extent_section() -> None:
    st.subheader("Effective kernel extent")
    eh, ew = conv.effective_extent(kh, dh), conv.effective_extent(kw, dw)
    st.markdown(
        f"1 + (K − 1)·D: height 1 + ({kh} − 1)·{dh} = **{eh}**, "
        f"width 1 + ({kw} − 1)·{dw} = **{ew}** cells. "
        "Dilation spreads the same number of weights over a wider window."
    )


@st.cache_data(max_entries=64, show_spinner=False)
def animation_figure(
    args: tuple, position: tuple[int, int], numbers: bool, trans: bool, animate: bool = True
):
    input_hw, kernel, stride, pad, dilation, pmode, out_pad = args
    if trans:
        return conv_plots.plot_transpose_conv(
            input_hw, kernel, stride, pad, dilation, out_pad, cell=position
        )
    values = out_values = None
    if numbers:
        rng = np.random.default_rng(0)
        values = rng.integers(0, 5, size=input_hw).astype(float)  # (H, W) small integers
        out_values = conv.apply_kernel(
            values, np.ones(kernel), stride, pad, dilation, pmode, device="cpu"
        ).numpy()
    return conv_plots.plot_conv_animation(
        input_hw,
        kernel,
        stride,
        pad,
        dilation,
        position=position,
        padding_mode=pmode,
        input_values=values,
        output_values=out_values,
        animate=animate,
    )


@st.fragment
@links.parked  # its reruns skip the app's router, which parks for full runs
def animation_panel(out_hw: tuple[int, int]) -> None:
    grid = (h, w) if transposed else out_hw
    what = "input cell" if transposed else "output position"
    n_frames = grid[0] * grid[1]
    animate = n_frames <= conv_plots.MAX_ANIMATION_FRAMES
    if not animate:
        note = f"{n_frames:,} {what}s are too many to animate smoothly (at most {conv_plots.MAX_ANIMATION_FRAMES:,})"
        if transposed:
            st.info(note + ": use a smaller input.")
            return
        st.info(
            note
            + ": pick the position below, or use a smaller input / larger stride to get ▶ Play."
        )
    # Its settings join the link; their ranges follow the grid, so they are read from the link
    # the first time the panel is drawn, and a restored value must fit the grid of the moment.
    table = animation_settings(grid)
    for warning in links.load_settings(table, prefix=P, from_link=links.first_visit(P + "anim.")):
        st.warning(warning, icon=":material/link_off:")
    c1, c2 = st.columns(2, vertical_alignment="bottom")
    # With ▶ Play the numbers are where the animation starts; without it they are the position.
    start = "Start at " if animate else ""
    label = (start + what).capitalize()
    row = c1.number_input(f"{label}: row", 0, grid[0] - 1, key=P + "pos_r")
    col = c2.number_input(f"{label}: column", 0, grid[1] - 1, key=P + "pos_c")
    small = max(h, w) <= 12 and not transposed
    help_numbers = (
        "Small integer inputs and a kernel of ones, so each output is the sum of its "
        "window (computed with the chosen padding mode). Inputs up to 12×12, not in "
        "transposed mode."
    )
    if small:
        numbers = st.checkbox("Show numbers", key=P + "numbers", help=help_numbers)
    else:
        # No numbers can be shown: an unticked, disabled box of its own, so the choice made
        # for small inputs is neither shown as ticked here nor lost.
        numbers = st.checkbox(
            "Show numbers", False, key=P + "numbers_na", disabled=True, help=help_numbers
        )
    links.save_settings(table, prefix=P, keep=LINK_KEYS)
    args = ((h, w), (kh, kw), (sh, sw), padding, (dh, dw), padding_mode, (oph, opw))
    fig = animation_figure(
        args,
        (min(row, grid[0] - 1), min(col, grid[1] - 1)),
        numbers and small,
        transposed,
        animate,
    )
    st.plotly_chart(fig, width="stretch", key=P + "animation")
    if transposed:
        st.caption(
            "Each input cell multiplies the whole kernel and adds it into the output at stride "
            "S; the numbers count how many input cells overlap on each output cell. Cells "
            "landing outside the grid are cropped by the padding P."
        )
    else:
        how = (
            "Press ▶ Play to step the kernel over every output position, or drag the slider. "
            if animate
            else "Type the output position above to move the kernel. "
        )
        st.caption(
            how
            + "Dark cells: the kernel's taps; dotted box: its effective extent."
            + (" One input and one output channel are shown." if cin > 1 or cout > 1 else "")
        )


def coverage_section() -> None:
    counts = conv.coverage(**settings, padding_mode=padding_mode)
    unread = int((counts == 0).sum())
    st.plotly_chart(conv_plots.plot_coverage(counts), width="stretch", key=P + "coverage")
    amounts = conv.padding_amounts(padding, (kh, kw), (sh, sw), (dh, dw))
    if padding_mode != "zeros" and max(max(amounts[0]), max(amounts[1])) > 0:
        st.caption(
            f"With {padding_mode} padding each padding cell is a copy of an input cell, so a "
            "read of the padding counts as a read of the cell it copies."
        )
    if unread:
        eh, ew = conv.effective_extent(kh, dh), conv.effective_extent(kw, dw)
        reasons = []
        if sh > eh:
            reasons.append(f"the stride {sh} is larger than the kernel height extent {eh}")
        if sw > ew:
            reasons.append(f"the stride {sw} is larger than the kernel width extent {ew}")
        if dh > 1 or dw > 1:
            reasons.append("dilation leaves gaps between the taps")
        reasons.append("the last window may stop before the end of the input")
        st.warning(
            f"**{unread} of {counts.size} input cells are never read** (marked ×): "
            + "; or ".join(reasons[:2])
            + ". Whatever is there cannot influence the output."
        )
    else:
        st.success(f"Every one of the {counts.size} input cells is read at least once.")


def receptive_field_section() -> None:
    """Draw the stack editor, its receptive fields and effective field; write the stack, C and
    the weights into the link."""
    st.markdown(
        "Build a stack of layers (first layer first). The receptive field is how many input "
        "pixels along one axis one output unit of that layer can see."
    )
    layers = stack_editor()
    channels = st.number_input(
        "Channels C in every layer (for the parameter comparison)", 1, 2048, key=P + "stack_c"
    )
    if layers is not None:
        stack_results(layers, channels)
    links.save_settings(STACK_SETTINGS, prefix=P, keep=LINK_KEYS)


def stack_editor() -> list[tuple[int, int, int]] | None:
    """Draw the stack's table; return its layers (kernel, stride, dilation), or None after an
    error. A valid table becomes the stack the link carries."""
    if P + "stack" not in st.session_state:
        # A fresh editor (first run, or its state dropped while another page was shown) starts
        # from the last valid stack or the link's. It keeps that start while it lives: its
        # state is edits (edited_rows, added_rows, deleted_rows) to the frame it was drawn
        # with, and a new frame under the same key would be a new editor without them.
        st.session_state[P + "stack_start"] = st.session_state[P + "stack_text"]
    start = pd.DataFrame(
        stack_from_text(st.session_state[P + "stack_start"]), columns=list(STACK_BOUNDS)
    )
    table = st.data_editor(
        start,
        num_rows="dynamic",
        key=P + "stack",
        column_config={
            name: st.column_config.NumberColumn(
                f"{name} {name[0].upper()}", min_value=low, max_value=high, step=1
            )
            for name, (low, high) in STACK_BOUNDS.items()
        },
        width="stretch",
    )
    try:
        layers = stack_table_layers(table)
    except ValueError as err:
        st.error(str(err))  # the link keeps the last valid stack
        return None
    st.session_state[P + "stack_text"] = stack_link_text(layers)
    return layers


def stack_results(layers: list[tuple[int, int, int]], channels: int) -> None:
    """Draw the receptive field after each layer, the parameter comparison for ``channels``
    channels and the effective field of ``layers`` ((kernel, stride, dilation), first first)."""
    rf = conv.receptive_field(layers)
    result = pd.DataFrame(layers, columns=list(STACK_BOUNDS)).assign(
        **{"receptive field (pixels)": rf}
    )
    result.index = [f"layer {i}" for i in range(1, len(rf) + 1)]
    st.dataframe(result, width="stretch")
    stack_params = sum(conv.conv_params(channels, channels, k, bias=False) for k, _, _ in layers)
    single = conv.conv_params(channels, channels, rf[-1], bias=False)
    kernel_sizes = [k for k, _, _ in layers]
    if len(set(kernel_sizes)) == 1:
        k = kernel_sizes[0]
        terms = f"{len(layers)} × {k * k}C² = {len(layers) * k * k}C²"
    else:
        terms = (
            " + ".join(f"{k * k}C²" for k in kernel_sizes)
            + f" = {sum(k * k for k in kernel_sizes)}C²"
        )
    st.markdown(
        f"The stack sees **{rf[-1]}×{rf[-1]}** pixels. Weights (no bias), C = {channels}: "
        f"stack {terms} = **{fmt(stack_params)}** against one {rf[-1]}×{rf[-1]} layer "
        f"{rf[-1] ** 2}C² = **{fmt(single)}**"
        + (
            f" ({stack_params / single:.0%} of it, with {len(layers) - 1} more non-linearities)."
            if single
            else "."
        )
    )
    stack_effective_section(tuple(layers))


@st.cache_data(max_entries=16, show_spinner=False)
def stack_field(
    layers: tuple[tuple[int, int, int], ...], weights: str
) -> tuple[effective_field.EffectiveField, tuple[int, int, int, int]]:
    return effective_field.stack_effective_field(layers, weights=weights)


def stack_effective_section(layers: tuple[tuple[int, int, int], ...]) -> None:
    st.subheader("Effective receptive field of this stack")
    st.caption(
        "Not every pixel of the field counts alike. The gradient of the last layer's centre "
        "unit with respect to the input says how much each pixel moves it (Luo et al., 2016, "
        "Fig. 1): a stack of 4-channel convolutions without padding or bias, over 16 images "
        "of random noise. With uniform weights each axis's profile is the kernel's box "
        "convolved with itself once per layer, which tends to a Gaussian (the central limit "
        "theorem): its width grows like the square root of the number of layers, the field "
        "like the number of layers. Add layers to the table above to watch it happen."
    )
    name = st.radio(
        "Weights",
        tuple(STACK_WEIGHT_NAMES),
        format_func=STACK_WEIGHT_NAMES.get,
        horizontal=True,
        key=P + "stack_weights",
        help="Uniform: every weight 1/(K² C), each layer averages its window. Random: "
        "He-normal weights (seed 0). Random + ReLU: the same with a ReLU between the layers.",
    )
    weights = STACK_WEIGHT_NAMES[name]
    try:
        with st.spinner("Back-propagating through the stack…", show_time=True):
            field, box = stack_field(layers, weights)
    except ValueError as err:
        st.info(f"No effective field drawn: {err}.")
        return
    size = box[2] - box[0] + 1
    needed = effective_field.gradient_share(field.gradient, 0.9)
    _, sd = effective_field.profile_spread(field.gradient.sum(0))
    m1, m2 = st.columns(2)
    m1.metric(
        "Pixels holding 90% of the gradient",
        f"{needed:,} px",
        f"{needed / size**2:.0%} of the {size}×{size} field",
        delta_color="off",
        delta_arrow="off",
    )
    m2.metric(
        "Spread of the profile (σ)",
        f"{sd:.2f} px",
        f"field {size} px = {size / sd:.1f} σ" if sd else None,
        delta_color="off",
        delta_arrow="off",
        help="Standard deviation of the column profile (the gradient summed over rows) read "
        "as a distribution over input pixels.",
    )
    # one under the other: side by side, in half of a 1024-pixel page, the map was a stamp and
    # the profile's legend ran into its title
    st.plotly_chart(
        plot_effective_field(field.gradient, box, title=f"{weights} weights, {len(layers)} layers"),
        key=P + "stack_erf",
    )
    st.plotly_chart(
        plot_field_profile(
            field.gradient.sum(0),
            (box[1], box[3]),
            title="Column profile (the map summed over rows) and the Gaussian of its σ",
        ),
        key=P + "stack_profile",
    )
    if len(layers) < 2:
        return
    # every shorter stack is a prefix of this one, each cached on its own
    sigmas = []
    with st.spinner("Measuring the shorter stacks…", show_time=True):
        for depth in range(1, len(layers) + 1):
            prefix_field, _ = stack_field(layers[:depth], weights)
            sigmas.append(effective_field.profile_spread(prefix_field.gradient.sum(0))[1])
    fields = conv.receptive_field(list(layers))
    st.plotly_chart(plot_spread_by_depth(fields, sigmas), key=P + "stack_depth")
    st.caption(
        "Layer by layer: identical stride-1 layers add the same step to the field R each time "
        "(strides make later steps larger), while the width 4σ (±2σ, where 95% of a Gaussian "
        "lies) grows like the square root of the depth; after "
        f"{len(layers)} layers it is {4 * sigmas[-1] / fields[-1]:.0%} of R."
    )


@st.cache_data(max_entries=32, show_spinner=False)
def load_input(
    source: str, choice: str, noise: float, seed: int, gray: bool, max_side: int
) -> tuple[np.ndarray, str, tuple[int, int]]:
    """Return (image (H, W) or (3, H, W) at most max_side a side, units, original (H, W))."""
    if source == "sample":
        image, units = samples.load_sample_image(choice), "intensity (0–1)"
    elif source == "digit":
        image, units = samples.load_digit(int(choice))[0], "ink (0–1)"
    else:
        image = samples.synthetic_field(choice, size=128, noise=noise, seed=seed)
        units = "K" if choice == "typhoon" else "°C"
    original = image.shape[:2]
    image = samples.limit_size(image, max_side)
    if image.ndim == 3:
        image = samples.to_grayscale(image) if gray else np.moveaxis(image, -1, 0)
    return image, units, original


@st.cache_data(max_entries=8, show_spinner=False)
def read_upload(
    data: bytes, name: str, variable: str | None, gray: bool, max_side: int
) -> tuple[np.ndarray, tuple[int, int]]:
    """Return (the uploaded grid at most max_side a side, its original (H, W))."""
    suffix = name.rsplit(".", 1)[-1].lower()
    if suffix == "npy":
        image = samples.read_npy_upload(data)
    elif suffix in ("nc", "nc4", "netcdf"):
        image = samples.read_netcdf_upload(data, variable)
    else:
        image = samples.read_image_upload(data)
    original = image.shape[:2]
    image = samples.limit_size(image, max_side)
    if image.ndim == 3:
        image = samples.to_grayscale(image) if gray else np.moveaxis(image, -1, 0)
    return image, original


@st.cache_data(max_entries=32, show_spinner=False)
def filtered(
    image: np.ndarray, kernel: np.ndarray, stride, pad, dilation, pmode: str, out_pad, device: str
) -> np.ndarray:
    """Return the image filtered by the layer on the left: Conv2d, or ConvTranspose2d when
    out_pad (its output padding) is given."""
    return conv.apply_kernel(
        image, kernel, stride, pad, dilation, pmode,
        transposed=out_pad is not None, output_padding=out_pad or 0, device=device,
    ).numpy()  # fmt: skip


@st.cache_data(max_entries=16, show_spinner=False)
def images_figure(image: np.ndarray, kernel: np.ndarray, output: np.ndarray, units: str):
    return conv_plots.plot_conv_images(image, kernel, output, units=units)


def choose_input(max_side: int) -> tuple[np.ndarray, str, str, tuple[int, int]] | None:
    """Draw the input picker; return (image, units, label, original (H, W)) or None after
    showing a message. Larger inputs are shrunk to at most max_side a side."""
    source = st.selectbox(
        "Input",
        SOURCES,
        format_func={
            "sample": "Photo (scikit-image samples)",
            "digit": "Handwritten digit (scikit-learn digits, 8×8)",
            "field": "Synthetic satellite-style field",
            "upload": "Upload: PNG/JPEG, .npy or NetCDF",
        }.get,
        key=P + "source",
    )
    gray = True
    noise, seed = 0.0, 0
    if source == "sample":
        choice = st.selectbox(
            "Sample image", samples.sample_image_names(), key=P + "sample",
            format_func=lambda n: samples.SAMPLE_IMAGES[n],
        )  # fmt: skip
        gray = st.checkbox("Convert to grey", key=P + "gray")
    elif source == "digit":
        choice = str(st.number_input("Digit index (0–1796)", 0, 1796, key=P + "digit"))
    elif source == "field":
        choice = st.selectbox(
            "Field", list(samples.SYNTHETIC_FIELDS), key=P + "field",
            format_func=lambda n: samples.SYNTHETIC_FIELDS[n],
        )  # fmt: skip
        c1, c2 = st.columns(2)
        unit = "K" if choice == "typhoon" else "°C"
        noise = c1.slider(f"Noise (std, {unit})", 0.0, 10.0, step=0.5, key=P + "noise")
        seed = c2.number_input("Noise seed", 0, 10_000, key=P + "seed")
    else:
        upload = st.file_uploader(
            "Upload a grid", type=["png", "jpg", "jpeg", "npy", "nc", "nc4"], key=P + "upload",
            max_upload_size=ui.IMAGE_UPLOAD_MB,
            help="Images up to 25 megapixels; .npy: a 2-D numeric array without NaN; NetCDF: a "
            "file with a 2-D (or higher) numeric variable. Up to 50 MiB.",
        )  # fmt: skip
        st.caption(
            "An uploaded file is not part of the page's link: whoever opens the link sees the "
            "default photo, with the kernel and layer settings chosen here.",
        )
        if upload is None:
            st.info("Choose a file to filter it.")
            return None
        data = upload.getvalue()
        variable = None
        try:
            if upload.name.lower().endswith((".nc", ".nc4")):
                names = samples.netcdf_variables(data)
                variable = st.selectbox(
                    "Variable", list(names), format_func=names.get, key=P + "variable"
                )
            else:
                gray = st.checkbox("Convert to grey", True, key=P + "gray_upload")
            image, original = read_upload(data, upload.name, variable, gray, max_side)
        except ValueError as err:
            st.error(str(err), icon=":material/error:")
            return None
        digest = hashlib.sha1(data).hexdigest()[:8]
        units = "value"
        if variable is not None and names[variable].endswith("]"):
            units = names[variable].rsplit("[", 1)[-1].rstrip("]")  # the variable's units attribute
        elif not upload.name.lower().endswith(".npy"):
            units = "intensity (0–1)"
        return image, units, f"{upload.name} ({digest})", original
    image, units, original = load_input(source, choice, noise, seed, gray, max_side)
    return image, units, choice, original


def choose_kernel() -> tuple[np.ndarray, str] | None:
    """Draw the kernel picker; return (kernel (K_h, K_w), name) or None after a message."""
    name = st.selectbox(
        "Kernel", KERNELS, key=P + "kernel", format_func=lambda n: n.replace("_", " ")
    )
    if name == "custom":
        if P + "custom" not in st.session_state:
            # A fresh table (first time, or its state dropped while another kernel was shown)
            # starts from the last valid custom kernel, or the link's.
            st.session_state[P + "custom_start"] = st.session_state[P + "custom_text"]
        start = pd.DataFrame(
            [row.split(",") for row in st.session_state[P + "custom_start"].split(";")]
        )
        start.columns = [str(c) for c in start.columns]
        table = st.data_editor(
            start, num_rows="dynamic", key=P + "custom", width="stretch",
            column_config={c: st.column_config.TextColumn(c) for c in start.columns},
        )  # fmt: skip
        st.caption("Type numbers; add or delete rows with the table's controls (at most 15×15).")
        try:
            kernel = kernels.parse_custom_kernel(table.to_numpy())
        except ValueError as err:
            st.error(str(err), icon=":material/error:")
            return None
        st.session_state[P + "custom_text"] = ";".join(
            ",".join(str(cell).strip() for cell in row) for row in table.to_numpy()
        )
        explanation = "Custom kernel."
    else:
        size, sigma = 3, 1.0
        if name in SIZED_KERNELS:
            size = st.slider("Kernel size (cells)", 1, kernels.MAX_KERNEL_SIZE, key=P + "ksize")
        if name == "gaussian":
            sigma = st.slider("Sigma (pixels)", 0.2, 5.0, step=0.1, key=P + "sigma")
        kernel = kernels.get_kernel(name, size=size, sigma=sigma)
        explanation = kernels.describe_kernel(name)
    if not kernel.any():
        explanation += " All its weights are zero, so the output is 0 everywhere."
    elif kernels.is_zero_sum(kernel):
        explanation += " Its weights sum to zero, so flat areas give 0: it finds edges and fronts."
    st.caption(explanation)
    return kernel, name


@st.fragment
@links.parked  # its reruns skip the app's router, which parks for full runs
def real_data_panel() -> None:
    pad = padding
    layer_name = "transposed convolution" if transposed else "convolution"
    extra = f", output padding {oph}×{opw}" if transposed else ""
    st.caption(
        f"Applies the {layer_name} set on the left (stride {sh}×{sw}, padding "
        f"{repr(pad) if isinstance(pad, str) else f'{ph}×{pw}'}, dilation {dh}×{dw}, padding mode "
        f"'{padding_mode}'{extra}) with the kernel chosen here, one kernel for every channel, "
        f"computed with torch on **{device}**."
    )
    # A transposed convolution enlarges its input about S times: start smaller so the result
    # stays a figure a browser can draw.
    max_side = max(16, MAX_SIDE // max(sh, sw)) if transposed else MAX_SIDE
    # This panel reruns on its own: restore what Streamlit dropped of hidden widgets' state.
    links.load_settings(DATA_SETTINGS, prefix=P, from_link=False)
    c1, c2 = st.columns(2)
    with c1:
        picked = choose_input(max_side)
    with c2:
        picked_kernel = choose_kernel()
    links.save_settings(
        DATA_SETTINGS,
        prefix=P,
        keep=LINK_KEYS,
        shown=data_link_keys(st.session_state[P + "source"], st.session_state[P + "kernel"]),
    )
    if picked is None or picked_kernel is None:
        return
    image, units, label, original = picked
    kernel, kname = picked_kernel
    in_hw = image.shape[-2:]
    data_layer = conv.ConvSettings(
        kernel=kernel.shape,
        stride=(sh, sw),
        padding=pad,
        dilation=(dh, dw),
        padding_mode=padding_mode,
        transposed=transposed,
        output_padding=(oph, opw),
    )
    problems = data_layer.problems(in_hw)
    if problems:
        # a 3000×20 upload becomes 256×2: without this the "padded input 2" made no sense
        size = f"this {in_hw[0]}×{in_hw[1]} input" + (
            f" (shrunk from {original[0]}×{original[1]} to at most {max_side} cells a side)"
            if tuple(original) != tuple(in_hw)
            else ""
        )
        for message in problems.values():
            st.error(f"These settings do not fit {size}: {message}", icon=":material/error:")
        return
    out_pad = (oph, opw) if transposed else None
    try:
        with st.spinner("Filtering…", show_time=True):
            output = filtered(
                image, kernel, (sh, sw), pad, (dh, dw), padding_mode, out_pad, str(device)
            )
    except (ValueError, RuntimeError) as err:
        st.error(f"The filter could not run on {device}: {err}", icon=":material/error:")
        return
    if not np.isfinite(output).all():
        st.error(
            "The output overflows: some values are beyond ±3.4e38, the range of the float32 "
            "numbers torch filters with. Use smaller kernel weights or input values.",
            icon=":material/error:",
        )
        return
    fig = images_figure(image, kernel, output, units)
    st.plotly_chart(fig, width="stretch", key=P + "images")
    shrunk = (
        f" (shrunk from {original[0]}×{original[1]} to at most {max_side} cells a side)"
        if tuple(original) != tuple(in_hw)
        else ""
    )
    colours = " (red/blue: positive/negative)" if output.min() < 0 < output.max() else ""
    st.caption(
        f"{label}: {in_hw[0]}×{in_hw[1]}{shrunk} → {output.shape[-2]}×{output.shape[-1]}; "
        f"output range {output.min():.4g} to {output.max():.4g} {units}{colours}."
    )
    stem = f"{label.split(' ')[0].rsplit('.', 1)[0]}_{kname}"
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download output (PNG, min-max scaled)",
        export.to_png_bytes(output),
        file_name=f"{stem}.png",
        mime="image/png",
        key=P + "dl_png",
        on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    )
    c2.download_button(
        "Download output (.npy, float32 values)",
        export.to_npy_bytes(output, dtype=np.float32),
        file_name=f"{stem}.npy",
        mime="application/octet-stream",
        key=P + "dl_npy",
        on_click="ignore",  # no rerun: a second download is not cancelled by the first's
    )


FULL_EXAMPLES = {
    "Sum of two dice (ways to roll each total 2–12)": ("1, 1, 1, 1, 1, 1", "1, 1, 1, 1, 1, 1"),
    "(1, 2, 3) * (4, 5, 6)": ("1, 2, 3", "4, 5, 6"),
    "(3, 1, 4, 1, 5, 9) * (7, 7, 5)": ("3, 1, 4, 1, 5, 9", "7, 7, 5"),
}
VALID_EXAMPLES = {
    "(1, 2, 3, 4) with kernel (3, 2)": ("1, 2, 3, 4", "3, 2"),
    "Step 0,0,0,0,1,2,3,4,4,4,4 with kernel (−1, 1)": ("0, 0, 0, 0, 1, 2, 3, 4, 4, 4, 4", "-1, 1"),
}


def sequence_inputs(examples: dict, prefix: str, labels: tuple[str, str]):
    example = st.selectbox("Example", list(examples), key=P + prefix + "ex")
    a_text, b_text = examples[example]
    c1, c2 = st.columns(2)
    # Keys include the example so picking another example refills the boxes.
    a = c1.text_input(labels[0], a_text, key=f"{P}{prefix}a.{example}")
    b = c2.text_input(labels[1], b_text, key=f"{P}{prefix}b.{example}")
    values = []
    for text, label, col in ((a, labels[0], c1), (b, labels[1], c2)):
        try:
            values.append(conv.parse_sequence(text, name=label))
        except ValueError as err:
            col.error(str(err), icon=":material/error:")
            return None, example
    return values, example


def overflows(result: np.ndarray) -> bool:
    """Say so and return True when a sum is beyond the largest float (about 1.8e308)."""
    if np.isfinite(result).all():
        return False
    st.error(
        "A sum overflows: it is beyond the largest floating-point number (about 1.8e308), so "
        "it would show as inf. Use smaller numbers.",
        icon=":material/error:",
    )
    return True


def one_d_section() -> None:
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.markdown(
            "**Full convolution** (a * b)[n] = Σᵢ a[i]·b[n − i]: flip one, slide, multiply, add."
        )
        values, example = sequence_inputs(FULL_EXAMPLES, "full.", ("Sequence a", "Sequence b"))
        if values and overflows(result := conv.full_convolve1d(*values)):
            values = None
        if values:
            lines = conv.written_sums(conv.convolution_terms(*values))
            st.code("\n".join(lines), language=None, wrap_lines=True)
            st.markdown(f"a * b = ({', '.join(conv.format_number(v) for v in result)})")
            if example.startswith("Sum of two dice"):
                total = result.sum()
                st.caption(
                    "Output n counts the ways to roll a total of n + 2; divided by "
                    f"{conv.format_number(total)} it is the distribution: "
                    + ", ".join(
                        f"P({n + 2}) = {conv.format_number(v)}/{conv.format_number(total)}"
                        for n, v in enumerate(result)
                    )
                )
    with right:
        st.markdown(
            "**'Valid' cross-correlation** y[n] = Σⱼ x[n + j]·u[j]: what a Conv1d layer "
            "computes (no flip, no padding)."
        )
        values, _ = sequence_inputs(VALID_EXAMPLES, "valid.", ("Signal x", "Kernel u"))
        if values:
            try:
                lines = conv.written_sums(conv.correlation_terms(*values), names=("x", "u"))
            except ValueError as err:
                st.error(str(err), icon=":material/error:")
                return
            result = conv.correlate1d(*values)
            if overflows(result):
                return
            st.code("\n".join(lines), language=None, wrap_lines=True)
            st.markdown(f"y = ({', '.join(conv.format_number(v) for v in result)})")


with results:
    if problems:
        names = {
            "input": "input size",
            "padding_mode": "padding mode",
            "output_padding": "output padding",
        }
        # each problem in words here too: an output padding's box sits below the fold at 1100 px
        st.info(
            "Fix the settings marked in red on the left to see the results:\n"
            + "\n".join(f"- **{names.get(key, key)}**: {text}" for key, text in problems.items()),
            icon=":material/build:",
        )
    else:
        out_hw = output_size_section()
        if out_hw is not None:
            cost_section(out_hw)
            code_section()
            extent_section()
            st.subheader(
                "Transposed convolution: where each input cell lands"
                if transposed
                else "Sliding the kernel"
            )
            animation_panel(out_hw)
            if not transposed:
                st.subheader("Coverage: how often each input cell is read")
                coverage_section()

st.divider()
st.header("Receptive field of a stack")
receptive_field_section()
st.divider()
st.header("Apply to real data")
real_data_panel()
st.divider()
st.header("1-D convolution, term by term")
one_d_section()
