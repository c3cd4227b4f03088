"""Attributions: which pixels made the model decide what it decided (Captum)."""

from __future__ import annotations

import io
import time
from functools import partial

import numpy as np
import pandas as pd
import streamlit as st
import torch

import ui
from ui import count_slider, links
from ui.inside_cnns import (
    INPUT_LINK_KEYS,
    LoadedModel,
    input_picker,
    load_input_settings,
    model_picker,
    save_input_settings,
)
from vizlib import attribution
from vizlib.filters import conv_layer_names
from vizlib.plots import (
    SIMILARITY_TITLES,
    plot_attribution_colorbar,
    plot_attribution_overlay,
    plot_randomization_maps,
    plot_randomization_similarity,
    plot_top_predictions,
)

P = "attr"
METHOD_TITLES = {
    "saliency": "Saliency",
    "integrated_gradients": "Integrated Gradients",
    "gradcam": "Grad-CAM",
    "occlusion": "Occlusion",
    "guided_backprop": "Guided Backprop",
}
DEFAULT_METHODS = ["saliency", "integrated_gradients", "gradcam", "occlusion"]
# the sanity check's grid of maps names its rows upright beside maps as small as 40 px
SHORT_TITLES = METHOD_TITLES | {"integrated_gradients": "IG", "guided_backprop": "Guided BP"}
SURVIVES = 0.5  # a mean similarity over the randomised stages above this is called out
# Width of one method's tile (pixels). The tiles wrap: four to a row on a wide screen, two at
# 1024 px with the sidebar open (564 px of page), one on a phone; each figure's height fits its
# image, so no row has a blank band.
TILE_PX = 240
# Methods whose estimated time is above this wait for the "Run slow methods" toggle, so that a
# big model on the CPU (vgg16, vit_b_16: minutes for IG and Occlusion) never hangs the page.
# The switch is not in the link: whoever opens a link decides to spend minutes of this machine.
SLOW_SECONDS = 20.0
IG_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SCALES = ("separate", "shared")
MAX_STAGES = 8  # of the sanity check: a column each in its grid of maps
# every key the page's link may hold: the model (written by model_picker), the input, the rest
LINK_KEYS = {"model", *INPUT_LINK_KEYS, "pred", "target", "methods", "steps", "baseline"}
LINK_KEYS |= {"batch", "layer", "relu", "window", "stride", "opacity", "scale", "view", "sanity"}
LINK_KEYS |= {"sanity_mode"}
# the sanity check's measure: the check itself waits for its button, as every slow computation
SANITY_MODES = {"cascading": "from the output down", "independent": "one stage at a time"}
SANITY: links.Table = {
    "sanity": (f"{P}.sanity_metric", "spearman_abs", tuple(SIMILARITY_TITLES)),
    "sanity_mode": (f"{P}.sanity_mode", "cascading", tuple(SANITY_MODES)),
}


def link_settings(
    n_classes: int, predicted: int, convs: list[str], gradcam_layer: str | None, side: int
) -> dict[str, links.Table]:
    """Return the page's shareable settings past the input, query key -> (widget key, default,
    allowed), for a model with ``n_classes`` classes, conv layers ``convs`` (Grad-CAM's default
    ``gradcam_layer``) and images ``side`` pixels across, whose prediction for the input is
    class ``predicted``."""
    every = links.multichoice_parser(METHOD_TITLES)

    def methods(raw: str) -> list:  # "methods=" is none of them, as the picker allows
        return every(raw) if raw else []

    options: links.Table = {
        "methods": (f"{P}.methods", DEFAULT_METHODS, methods),
        "steps": (f"{P}.ig_steps", 50, (8, 256)),
        "baseline": (f"{P}.ig_baseline", attribution.BASELINES[0], attribution.BASELINES),
        "batch": (f"{P}.ig_batch", 32, links.choice_parser(IG_BATCHES)),
        "relu": (f"{P}.gc_relu", False, (False, True)),
        "window": (f"{P}.occ_window", max(1, side // 7), (1, side)),
        "stride": (f"{P}.occ_stride", max(1, side // 14), (1, side)),
    }
    if convs:
        options["layer"] = (f"{P}.gc_layer", gradcam_layer, links.choice_parser(convs))
    return {
        "target": {
            "pred": (f"{P}.use_pred", True, (False, True)),
            "target": (f"{P}.target", predicted, (0, n_classes - 1)),
        },
        "options": options,
        "display": {
            "opacity": (f"{P}.opacity", 0.6, (0.0, 1.0, 0.05)),
            "scale": (f"{P}.scale", SCALES[0], SCALES),
            "view": (f"{P}.view", attribution.VIEWS[0], attribution.VIEWS),
        },
    }


st.title("Attributions")
st.caption(
    "Pick a model, an input and a class: Captum's methods show which pixels raise or lower "
    "that class's score (logit). Use them to debug what the model looks at."
)


@st.cache_data(max_entries=64, show_spinner=False)
def compute(
    name: str,
    device: str,
    input_key: tuple,
    target: int,
    method: str,
    options: tuple,
    _x: torch.Tensor,
    _loaded: LoadedModel,
) -> dict:
    """Return attribution.attribute(...) for the input described by ``input_key`` (``_x``)."""
    meta = _loaded.meta
    with _loaded.lock:  # Grad-CAM hooks the shared model: no other pass may run through them
        return attribution.attribute(
            _loaded.model,
            _x,
            target,
            method,
            mean=meta["mean"],
            std=meta["std"],
            device=device,
            **dict(options),
        )


@st.cache_data(max_entries=16, ttl=600, show_spinner="Timing the model for the time estimates…")
def pass_times(
    name: str, device: str, shape: tuple, _x: torch.Tensor, _loaded: LoadedModel
) -> attribution.PassTimes:
    """Seconds of warm forward passes of the model at the input's shape (1 and 4 images)."""
    with _loaded.lock:
        return attribution.pass_seconds(_loaded.model, _x, device=device)


loaded = model_picker(P)
if loaded is None:
    st.stop()
model, meta = loaded.model, loaded.meta
classes = list(meta["class_names"] or [str(i) for i in range(1000)])
link_notes = st.container()  # warnings about the link's values, above the controls they name

input_table, warnings = load_input_settings(P, meta, from_link=links.first_visit(f"{P}.input."))
for warning in warnings:
    link_notes.warning(warning, icon=":material/link_off:")
left, right = st.columns([1, 2])
with left:
    chosen = input_picker(P, meta, purpose="explain it")
save_input_settings(P, input_table, keep=LINK_KEYS)
if chosen is None:
    st.stop()
left.image(chosen.display, caption=chosen.label, clamp=True, width="stretch")

try:
    started = time.perf_counter()
    with loaded.lock:
        top = attribution.top_predictions(
            model, chosen.tensor, k=5, class_names=classes, device=loaded.device
        )
    forward_s = time.perf_counter() - started  # one cold pass: bounds the estimates below
except (ValueError, RuntimeError) as err:
    st.error(f"The model could not process this input: {err}")
    st.stop()

side = min(int(s) for s in meta["input_size"][1:])
convs = conv_layer_names(model)
tables = link_settings(len(classes), top[0]["class"], convs, attribution.gradcam_layer(model), side)
for warning in links.load_settings(
    tables["target"] | tables["options"] | tables["display"] | SANITY,
    prefix=f"{P}.",
    from_link=links.first_visit(f"{P}."),
):
    link_notes.warning(warning, icon=":material/link_off:")
if st.session_state[f"{P}.use_pred"]:  # the class picker, once shown, starts at the prediction
    st.session_state[f"{P}.target"] = top[0]["class"]

with right:
    st.plotly_chart(
        plot_top_predictions(
            [t["label"] for t in top], [t["probability"] for t in top], title="Top-5 predictions"
        ),
        key=f"{P}.top5",
    )
    use_pred = st.toggle("Explain the predicted class", key=f"{P}.use_pred")
    if use_pred:
        target = top[0]["class"]
    else:
        target = st.selectbox(
            "Target class",
            range(len(classes)),
            format_func=ui.class_option(classes),
            key=f"{P}.target",
        )
    st.markdown(f"Explaining class **{classes[target]}** (index {target}).")

st.subheader("Methods")
methods = st.multiselect(
    "Attribution methods",
    list(METHOD_TITLES),
    format_func=METHOD_TITLES.get,
    key=f"{P}.methods",
    help="Saliency: the gradient of the class's logit with respect to each pixel. Integrated "
    "Gradients: that gradient averaged along a path from a baseline, times the difference. "
    "Grad-CAM: a conv layer's maps weighted by their gradient. Occlusion: the drop in the logit "
    "when a window is blanked. Guided Backprop (Springenberg et al., 2015): the gradient with "
    "every ReLU passing back only positive gradients where it fired; sharp, but see the sanity "
    "check below.",
)
o1, o2, o3 = st.columns(3)
with o1.container(border=True):
    st.markdown("**Integrated Gradients**")
    n_steps = st.slider(
        "Steps",
        8,
        256,
        key=f"{P}.ig_steps",
        help="Points on the straight path from the baseline to the input.",
    )
    baseline = st.selectbox(
        "Baseline",
        attribution.BASELINES,
        key=f"{P}.ig_baseline",
        format_func={
            "black": "black image",
            "blurred": "blurred input",
            "noise": "uniform noise",
        }.get,
    )
    ibs = st.select_slider(
        "Internal batch size",
        IG_BATCHES,
        key=f"{P}.ig_batch",
        help="Steps per forward pass; smaller uses less (GPU) memory.",
    )
with o2.container(border=True):
    st.markdown("**Grad-CAM**")
    if convs:
        gc_layer = st.selectbox("Conv layer", convs, key=f"{P}.gc_layer")
    else:
        gc_layer = None
        st.info("This model has no conv layer; Grad-CAM is not available.")
    relu = st.checkbox("ReLU on the map (classic Grad-CAM)", key=f"{P}.gc_relu")
    if convs and meta.get("family") == "vit":
        st.caption(
            "A ViT's only conv layer is its patch embedding, before any attention: Grad-CAM "
            "there weighs each patch's embedding by its gradient, at patch resolution."
        )
with o3.container(border=True):
    st.markdown("**Occlusion**")
    window = count_slider("Window (pixels)", 1, side, side // 7, key=f"{P}.occ_window", unit=" px")
    stride = count_slider("Stride (pixels)", 1, side, side // 14, key=f"{P}.occ_stride", unit=" px")
    n_windows = ((side - window) // stride + 1) ** 2
    if stride > window:
        st.error(
            f"The stride ({stride} px) must not exceed the window ({window} px): "
            "pixels between windows would never be occluded."
        )
    else:
        st.caption(f"{n_windows:,} occluded copies of the input are evaluated.")
shown = set(tables["target"] | tables["options"]) - ({"target"} if use_pred else set())
links.save_settings(
    tables["target"] | tables["options"], prefix=f"{P}.", keep=LINK_KEYS, shown=shown
)


def estimates_from(times: attribution.PassTimes) -> dict[str, float]:
    """Seconds each method is expected to take with the current options (batches counted)."""
    return {
        m: attribution.estimate_seconds(
            m, times, n_steps=n_steps, internal_batch_size=ibs, n_windows=n_windows
        )
        for m in METHOD_TITLES
    }


# The first, cold pass bounds a warm pass of k images by k times its time (one pass per step or
# window), so this bound says cheaply when nothing can be slow; only otherwise is the model timed
# at two batch sizes, which counts Captum's batching of steps and windows.
estimates = estimates_from(attribution.PassTimes(forward_s, 2 * forward_s, 2))
times = None
if any(estimates[m] > SLOW_SECONDS for m in methods):
    times = pass_times(
        loaded.name, loaded.device, tuple(chosen.tensor.shape), chosen.tensor, loaded
    )
    estimates = estimates_from(times)
slow = [m for m in methods if estimates[m] > SLOW_SECONDS]
run_slow = False
if slow:
    run_slow = st.toggle(
        "Run slow methods",
        value=False,
        key=f"{P}.run_slow",
        help=f"Methods estimated to take more than {SLOW_SECONDS:.0f} s wait for this switch.",
    )
    if not run_slow:
        st.warning(
            "Not run yet: "
            + "; ".join(f"{METHOD_TITLES[m]} about {estimates[m]:,.0f} s" for m in slow)
            + f" on {loaded.device}, from timed forward passes ({times.single:.3g} s for one "
            f"image, {times.batched:.3g} s for {times.batch}; a gradient pass counts "
            f"{attribution.GRADIENT_COST:g}). Lower the IG steps or raise the occlusion stride, "
            "or turn on **Run slow methods**.",
            icon=":material/hourglass:",
        )

options = {
    "saliency": (),
    "integrated_gradients": (
        ("n_steps", n_steps),
        ("baseline", baseline),
        ("internal_batch_size", ibs),
    ),
    "gradcam": (("layer", gc_layer), ("relu", relu)),
    "occlusion": (("window", window), ("stride", stride)),
    "guided_backprop": (),
}
results: dict[str, dict] = {}
errors: dict[str, str] = {}
progress = st.progress(0.0, text="Computing attributions…") if methods else None
for i, method in enumerate(methods):
    if method == "gradcam" and gc_layer is None:
        errors[method] = "no conv layer"
        continue
    if method in slow and not run_slow:
        errors[method] = f"skipped: about {estimates[method]:,.0f} s on {loaded.device}."
        continue
    with st.spinner(f"{METHOD_TITLES[method]}…", show_time=True):
        try:
            results[method] = compute(
                loaded.name,
                loaded.device,
                chosen.key,
                int(target),
                method,
                options[method],
                chosen.tensor,
                loaded,
            )
        except (ValueError, RuntimeError) as err:
            errors[method] = str(err)
    progress.progress((i + 1) / len(methods), text=f"{METHOD_TITLES[method]} done")
if progress is not None:
    progress.empty()


# The downloads are built when their button is clicked (Streamlit calls these then, on another
# thread): built on every run, the four CSVs and the NPZ of a 224 x 224 model took about 0.45 s
# of this 2-core CPU, and again on every change of opacity, scale or view.
def heatmap_csv(heatmap: np.ndarray) -> bytes:
    """The signed heatmap (H, W) as CSV: H rows, W columns headed by their numbers."""
    return pd.DataFrame(heatmap).to_csv(index=False).encode()


def heatmaps_npz(heatmaps: dict[str, np.ndarray], image: np.ndarray) -> bytes:
    """A compressed NPZ of each method's signed heatmap (H, W) and the input ``image`` as shown
    (H, W, 3) in [0, 1], float32."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **heatmaps, image=image.astype(np.float32))
    return buf.getvalue()


@st.fragment
def show_heatmaps(results: dict[str, dict], errors: dict[str, str], methods: list[str]) -> None:
    """Draw the overlays; opacity, scale and view redraw only this panel."""
    d1, d2, d3 = st.columns(3)
    opacity = d1.slider("Heatmap opacity", 0.0, 1.0, step=0.05, key=f"{P}.opacity")
    scale = d2.radio(
        "Colour scale",
        SCALES,
        horizontal=True,
        key=f"{P}.scale",
        help="Shared: one colour range for all maps (the largest magnitude of any method); "
        "separate: each map uses its own range.",
    )
    view = d3.radio(
        "View",
        attribution.VIEWS,
        horizontal=True,
        key=f"{P}.view",
        help="absolute |a|, only positive (supports the class), only negative "
        "(speaks against it), or signed.",
    )
    links.save_settings(tables["display"], prefix=f"{P}.", keep=LINK_KEYS)

    shown = {m: attribution.heatmap_view(r["heatmap"], view) for m, r in results.items()}
    shared_max = max((float(np.abs(h).max()) for h in shown.values()), default=1.0)
    if not methods:
        st.info("Pick at least one attribution method.")
    shared = scale == "shared"
    one_bar = shared and len(shown) > 1  # one colour bar above the maps, not one under each
    if one_bar:
        st.plotly_chart(
            plot_attribution_colorbar(
                shared_max,
                signed=view == "signed",
                title=f"{view} attribution, one scale for every map",
                width=2 * TILE_PX,
            ),
            width="content",
            key=f"{P}.colorbar",
        )
    tiles = st.container(horizontal=True, gap="small")
    for method in methods:
        with tiles.container(width=TILE_PX):
            if method in errors:
                if method in slow and not run_slow:
                    st.info(f"{METHOD_TITLES[method]}: {errors[method]}")
                else:
                    st.error(f"{METHOD_TITLES[method]}: {errors[method]}")
                continue
            res = results[method]
            st.plotly_chart(
                plot_attribution_overlay(
                    chosen.display,
                    shown[method],
                    signed=view == "signed",
                    opacity=opacity,
                    zmax=shared_max if shared else None,
                    title=METHOD_TITLES[method],
                    colorbar_title=f"{view} attribution",
                    showscale=not one_bar,
                    width=TILE_PX,
                ),
                width="content",
                key=f"{P}.fig.{method}",
            )
            took = res["seconds"]  # a small model takes milliseconds: "0.00 s" would say nothing
            took_text = f"{took:.2f} s" if took >= 1 else f"{max(took * 1000, 1):.0f} ms"
            facts = [f"{took_text} on {res['device']}"]
            if method == "integrated_gradients" and abs(res["gap"]) > 1e-12:
                rel = abs(res["delta"]) / abs(res["gap"])
                facts.append(
                    f"convergence delta {res['delta']:.3g} ({rel:.1%} of f(x) − f(baseline) = "
                    f"{res['gap']:.3g})"
                )
            elif method == "integrated_gradients":  # "0.0% of ... = 0" said nothing
                facts.append(
                    f"convergence delta {res['delta']:.3g}; f(x) − f(baseline) = 0: the input "
                    "scores as the baseline does, so there is nothing to attribute"
                )
            if method == "gradcam":
                facts.append(
                    f"layer {res['layer']} ({res['attribution'].shape[1]}×"
                    f"{res['attribution'].shape[2]} upsampled)"
                )
            st.caption(" · ".join(facts))
            if res["notice"]:
                st.warning(res["notice"])
            st.download_button(
                "Heatmap (CSV, signed)",  # whatever the view: the map above may show |a|
                partial(heatmap_csv, res["heatmap"]),
                file_name=f"{loaded.stem}_{method}_class{target}.csv",
                mime="text/csv",
                key=f"{P}.csv.{method}",
                on_click="ignore",
                help="The signed attribution of every pixel, H rows × W columns (header: the "
                "column numbers), before the view and colour scale chosen above.",
            )


show_heatmaps(results, errors, methods)

if results:
    st.download_button(
        "Download all heatmaps (NPZ, signed, H×W each)",
        partial(heatmaps_npz, {m: r["heatmap"] for m, r in results.items()}, chosen.display),
        file_name=f"{loaded.stem}_attributions_class{target}.npz",
        key=f"{P}.npz",
        on_click="ignore",
    )
    if "integrated_gradients" in results:
        st.caption(
            "Integrated Gradients' convergence delta is sum(attributions) − (f(input) − "
            "f(baseline)) for the target logit; near 0 means enough steps."
        )

# ---- sanity check: the model randomisation test ------------------------------------------
st.subheader("Sanity check: randomise the network")
st.caption(
    "A map that explains the network must change when the network does (Adebayo et al., "
    '"Sanity checks for saliency maps", 2018). The weights are drawn afresh from the output '
    "down, a few layers at a time, and the image is explained again after each stage, with "
    "the methods and options above. A method whose map still looks the same once every "
    "weight is random is showing the image, not what the network learned."
)
sane = [m for m in methods if m in results]  # those run above: the slow ones waited there
if not sane:
    st.info("Run at least one attribution method above first.")
    st.stop()
try:
    stage_groups = attribution.randomization_stages(model, MAX_STAGES)
except ValueError as err:
    st.info(f"No sanity check: {err}.")
    st.stop()
runs = len(stage_groups) + 1
mode = st.radio(
    "Randomise",
    list(SANITY_MODES),
    format_func=SANITY_MODES.get,
    horizontal=True,
    key=f"{P}.sanity_mode",
    help="From the output down: each stage keeps the layers above it random too, until every "
    "weight is. One stage at a time: each stage makes only its own layers random, the rest "
    "trained, which shows the layers a map depends on (Adebayo et al.'s independent test).",
)
independent = mode == "independent"
links.save_settings(SANITY, prefix=f"{P}.", keep=LINK_KEYS)  # the check below may wait
sanity_key = (
    loaded.name, loaded.device, chosen.key, int(target), tuple((m, options[m]) for m in sane),
    independent,
)  # fmt: skip
checks = st.session_state.setdefault(f"{P}.sanity", {})
if sanity_key not in checks:
    # each stage runs the methods again on a network of the same size: their own times above
    total_s = sum(results[m]["seconds"] for m in sane) * runs
    about = f"about {total_s:,.0f} s" if total_s >= 1 else "under a second"
    button_slot = st.empty()  # emptied once the check is in: the button's work is done
    if not button_slot.button(
        f"Randomise and explain again ({runs - 1} stages × {len(sane)} "
        f"method{'s' if len(sane) > 1 else ''}, {about})",
        key=f"{P}.sanity_run",
        icon=":material/shuffle:",
    ):
        st.stop()
    bar = st.progress(0.0, text="Randomising…")
    began = time.perf_counter()

    def advance(done: int, total: int) -> None:
        left = ui.time_left(time.perf_counter() - began, done, total)
        bar.progress(
            done / total, text=f"Explaining the randomised networks: {done} of {total}{left}"
        )

    try:
        checks[sanity_key] = attribution.cascading_randomization(
            model,
            chosen.tensor,
            int(target),
            sane,
            options={m: dict(options[m]) for m in sane},
            mean=meta["mean"],
            std=meta["std"],
            max_stages=MAX_STAGES,
            independent=independent,
            lock=loaded.lock,
            progress=advance,
        )
    except torch.cuda.OutOfMemoryError:
        st.error(
            "The GPU ran out of memory for a copy of the model; choose the CPU in the sidebar."
        )
        st.stop()
    except (ValueError, RuntimeError) as err:
        st.error(f"The sanity check could not run: {err}")
        st.stop()
    bar.empty()
    button_slot.empty()
    while len(checks) > 4:  # a few MB each: the maps of every stage
        checks.pop(next(iter(checks)))
check = checks[sanity_key]
metric = st.radio(
    "Similarity to the trained network's map",
    list(SIMILARITY_TITLES),
    format_func=SIMILARITY_TITLES.get,
    horizontal=True,
    key=f"{P}.sanity_metric",
    help="Adebayo et al. use all three. Rank correlation of the magnitudes: do the same pixels "
    "matter most? Signed: also the same direction? SSIM: the same structures, where the map's "
    "size is set aside.",
)
links.save_settings(SANITY, prefix=f"{P}.", keep=LINK_KEYS)
st.plotly_chart(
    plot_randomization_similarity(
        check.stages,
        {m: check.similarity[m][metric] for m in sane},
        metric=metric,
        titles=METHOD_TITLES,
        independent=independent,
    ),
    key=f"{P}.sanity_lines",
)
logits = check.target_logit
st.caption(
    f"The logit of **{classes[target]}**: {logits[0]:.2f} for the trained network, "
    f"{logits[-1]:.2f} {'at the last stage' if independent else 'once every weight is random'} "
    f"({', '.join(f'{v:.2f}' for v in logits[1:-1])} between). "
    + (
        "Stage k makes only its own layers random, the rest trained: "
        + "; ".join(f"{k} {' '.join(check.randomized[k])}" for k in range(1, len(logits)))
        if independent
        else "Stage k keeps the stages before it random and makes the next layers random: "
        + "; ".join(f"{k} down to {stage}" for k, stage in enumerate(check.stages) if k)
    )
    + f". Computed in {check.seconds:.1f} s."
)
# a map that stays alike on average over the stages: Guided Backprop keeps its trained map
# while the top layers go random, Integrated Gradients even once all of them are
survivors = [
    m for m in sane if np.nanmean(check.similarity[m][metric][1:]) > SURVIVES
]  # fmt: skip
if survivors:
    named = [
        f"{METHOD_TITLES[m]} ({np.nanmean(check.similarity[m][metric][1:]):.2f} on average over "
        f"the stages, {check.similarity[m][metric][-1]:.2f} at the last)"
        for m in survivors
    ]
    why = {
        "guided_backprop": "Adebayo et al. found this of Guided Backprop: its rule keeps the "
        "image's edges whatever the weights.",
        "integrated_gradients": "Integrated Gradients multiplies the gradient by the input, so "
        "the image shows through.",
    }
    st.warning(
        f"{' and '.join(named)} {'stays' if len(named) == 1 else 'stay'} similar to the trained "
        "network's map while the network is made random: such a map follows the image (and "
        "the architecture) more than what the network learned. "
        + " ".join(why[m] for m in survivors if m in why),
        icon=":material/report:",
    )
st.plotly_chart(
    plot_randomization_maps(
        check.stages, {m: check.heatmaps[m] for m in sane}, titles=SHORT_TITLES
    ),
    key=f"{P}.sanity_maps",
)
rows = []
for s, stage in enumerate(check.stages):
    row = {"stage": s, "random_down_to": stage, "modules_reset": " ".join(check.randomized[s])}
    row["target_logit"] = logits[s]
    for m in sane:
        for key, values in check.similarity[m].items():
            row[f"{m}_{key}"] = values[s]
    rows.append(row)
st.download_button(
    "Download the sanity check (CSV: each stage's logit and similarities)",
    pd.DataFrame(rows).to_csv(index=False),
    file_name=f"{loaded.stem}_sanity_check_class{target}.csv",
    mime="text/csv",
    key=f"{P}.sanity_csv",
    on_click="ignore",
)
