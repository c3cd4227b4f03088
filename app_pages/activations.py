"""Activations & Gradients: each layer's output statistics and gradient size over a batch of
images, beside the same network at its random initialisation (where training began)."""

from __future__ import annotations

from contextlib import nullcontext

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
    unreadable_warning,
)
from vizlib import filters, layerstats
from vizlib.plots import plot_activation_histograms, plot_layer_statistics
from vizlib.summary import shorten_layer_names

P = "activations"
TRAINED, UNTRAINED = "trained", "at initialisation"
NO_WEIGHTS = "untrained (no weights on disk)"  # a torchvision model without its ImageNet file
MAX_RESULTS = 4  # results kept in a session (a few MB of samples each)
# images below which 'zero for every image' says little: a unit that is 0 for half the images
# is 0 for all of 16 with probability 0.5**16, about 1 in 65,000
DEAD_EVIDENCE = 16
LAYER_NAME_CHARS = 22  # the table's layer names, as the Model Inspector's (1024-pixel page)
BATCH = 16  # images per pass: a backward pass through vgg16 holds about 1 GB per 16 images
LINK_KEYS = {"model", "images", "n", "grads", "compare", "log"}
SETTINGS: links.Table = {
    "grads": (f"{P}.gradients", True, (False, True)),
    "compare": (f"{P}.compare", True, (False, True)),
    "log": (f"{P}.log", False, (False, True)),
}

st.title("Activations & Gradients")
st.caption(
    "Run a batch of images through the network and measure every layer's output: its spread, "
    "its zeros (dead ReLU units), NaNs, and how large the loss's gradient is when it reaches the "
    "layer. Signals that shrink or blow up with depth, units that never fire and gradients that "
    "vanish show here first, and the network at its random initialisation shows what training "
    "changed."
)


def default_images(meta: dict, available: int) -> int:
    """Images measured by default: 256 of a small input, 4 of an ImageNet-sized one (a forward
    and backward pass of vgg16 or vit_b_16 takes about 2.5 s an image on this 2-core CPU; 4
    images are still some 3 million values in each early layer)."""
    pixels = int(np.prod(meta["input_size"][1:]))
    return min(available, 256 if pixels <= 64 * 64 else 4)


def measure(
    loaded: LoadedModel, source: str, n: int, *, gradients: bool, compare: bool
) -> dict[str, layerstats.LayerStatistics]:
    """Return {series label: statistics} of the first ``n`` images of ``source``, with a progress
    bar; kept in the session under its small key, so a redraw (log axis, layers) recomputes
    nothing."""
    cache = st.session_state.setdefault(f"{P}.results", {})
    key = (loaded.name, loaded.device, source, n, gradients, compare)
    if key in cache:
        return cache[key]
    images, labels, _, _ = image_set(source, loaded.meta)
    images, labels = images[:n], labels[:n]
    # the loss of the gradients is the true class only where the labels are the model's own
    targets = labels if source == loaded.meta["dataset"] else None
    models = {TRAINED if loaded.meta.get("pretrained", True) else NO_WEIGHTS: loaded.model}
    if compare:
        untrained = filters.untrained_model(loaded.meta).requires_grad_(False)
        models[UNTRAINED] = untrained.to(loaded.device)
    bar = st.progress(0.0, text="Measuring…")
    result = {}
    for i, (label, model) in enumerate(models.items()):

        def tick(done: int, total: int, i: int = i, label: str = label) -> None:
            bar.progress(
                (i + done / total) / len(models),
                text=f"Measuring the {label} network: {done:,}/{total:,} images",
            )

        # hooks go on the shared model under its lock; the fresh untrained one is ours alone
        with loaded.lock if model is loaded.model else nullcontext():
            result[label] = layerstats.layer_statistics(
                model, images, targets, gradients=gradients, batch_size=BATCH,
                device=loaded.device, progress=tick,
            )  # fmt: skip
    bar.empty()
    if len(cache) >= MAX_RESULTS:
        cache.pop(next(iter(cache)))
    cache[key] = result
    return result


def set_label(source: str, n: int) -> str:
    """Return what the measured images are, for the sentence above the figures."""
    images = f"{n:,} image{'s' if n != 1 else ''}"
    if source == SAMPLE_SET:
        return f"{images} of scikit-image's sample photos"
    if source.startswith("imagefolder:"):
        return f"{images} of {ui.dataset_label(source)}"
    return f"{images} of the {source} test split"


loaded = model_picker(P)
if loaded is None:
    st.stop()
meta = loaded.meta
link_from = links.first_visit(P)
for warning in links.load_settings(SETTINGS, prefix=f"{P}.", from_link=link_from):
    st.warning(warning, icon=":material/link_off:")

source = image_set_picker(P, meta, samples=True, from_link=link_from)
if source is None:
    st.stop()
try:
    available = len(image_set(source, meta)[0])
except ValueError as err:
    st.error(str(err))
    st.stop()
unreadable_warning(source, meta)
# a count chosen for another model or image set goes back to this one's default: 256 digits
# kept for vgg16 would be a forward and backward pass of minutes on a CPU
# (a fresh tab has none: a count from its link stays)
if st.session_state.get(f"{P}.n_for", (loaded.name, source)) != (loaded.name, source):
    st.session_state.pop(f"{P}.n", None)
    st.session_state.get(f"{P}.saved", {}).pop(f"{P}.n", None)
st.session_state[f"{P}.n_for"] = (loaded.name, source)
# the count travels in the link: a shared link measures the same images, the same numbers
count = {"n": (f"{P}.n", default_images(meta, available), (1, max(available, 1)))}
for warning in links.load_settings(count, prefix=f"{P}.", from_link=link_from):
    st.warning(warning, icon=":material/link_off:")
# the toggles stacked in a column of their own: side by side, 'Compare with untrained' was cut
# to 'Compare wit…' on a 1024-pixel projector
c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
n = count_slider(
    "Number of images", 1, available, default_images(meta, available), key=f"{P}.n", where=c1,
    help="How many images of the set (the first ones) go through the network, in passes of "
    f"{BATCH}. The statistics pool every value of every image.",
)  # fmt: skip
gradients = c2.toggle(
    "Gradients",
    key=f"{P}.gradients",
    help="Also run the backward pass: the root mean square of the cross-entropy loss's gradient "
    "with respect to each layer's output (the loss summed over the images, so the size does "
    "not depend on how many). About three times the time of the forward pass alone.",
)
trained = meta.get("pretrained", True)  # False: torchvision weights not on disk
compare = (
    c2.toggle(
        "Compare with untrained",
        key=f"{P}.compare",
        disabled=not trained,
        help="Also measure the same architecture at the random initialisation its training began "
        "from (same seed), so what training changed stands beside it."
        + ("" if trained else f" {meta['name']} has no trained weights here: it is that network."),
    )
    and trained
)
links.save_settings(
    SETTINGS | count | image_set_settings(P, meta, samples=True), prefix=f"{P}.", keep=LINK_KEYS
)

try:
    with st.spinner("Measuring every layer…", show_time=True):
        result = measure(loaded, source, n, gradients=gradients, compare=compare)
except torch.cuda.OutOfMemoryError:
    st.error(f"The GPU ran out of memory for {n} images; choose fewer, or the CPU in the sidebar.")
    st.stop()
except (ValueError, RuntimeError) as err:
    st.error(f"Could not measure {meta['name']}: {err}")
    st.stop()

stats = next(iter(result.values()))  # the model as loaded
rows = stats.rows
targets = (
    "the true classes"
    if stats.targets == "labels"
    else "each image's predicted class (these images have no labels the model knows)"
)
summaries = {label: layerstats.depth_summary(r.rows) for label, r in result.items()}
summary = next(iter(summaries.values()))  # the model as loaded
if summary["nonfinite"]:
    st.warning(
        f"{len(summary['nonfinite'])} layer(s) put out NaN or infinite values, first "
        f"{summary['nonfinite'][0]}: everything after them is unreliable.",
        icon=":material/error:",
    )
if gradients and summary["grad_nonfinite_at"] and not summary["nonfinite"]:
    # finite outputs, non-finite gradients: nothing in the figures says so (the RMS is a gap)
    broken = summary["grad_nonfinite"]
    at, after = summary["grad_nonfinite_at"]
    values = sum(r["grad_nonfinite"] for r in rows)
    modules = dict(loaded.model.named_modules())  # a second call's row: "name (call 2)"
    weighted = [
        b for b in broken if next(modules[b.split(" (call ")[0]].parameters(), None) is not None
    ]
    st.warning(
        f"Every output is a number, but the gradient is not: {values:,} NaN or infinite "
        f"gradient value(s) in {len(broken)} layer(s) ({', '.join(broken[:3])}"
        + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")
        + f"). The backward pass stops giving numbers at {at}'s output, so what comes after "
        + (f"it, up to {after}," if after else "it (the loss)")
        + " has a backward pass that is undefined at these values (a square root or a "
        "logarithm at 0, a NaN in the branch torch.where did not pick) or overflows float32. "
        + (
            f"A training step on these images would write NaN or inf into the weights of "
            f"{', '.join(weighted)}"
            if weighted
            else "None of these layers has weights and the layers before them get finite "
            "gradients (a ReLU passes nothing back where it put out 0), so this time a "
            "training step would leave the weights numbers"
        )
        + "; their gradient RMS is left out of the figure.",
        icon=":material/error:",
    )
st.markdown(
    f"**{meta['name']}**: {len(rows)} layers measured over {set_label(source, n)}"
    + (f"; gradients of the cross-entropy loss for {targets}." if gradients else ".")
)

with st.expander("How to read these panels", icon=":material/help:"):
    st.markdown(
        """
- **Output standard deviation** (log axis): how large each layer's signal is. Healthy, it
  stays within an order of magnitude or so through the depth; in a trained network the
  normalisation layers (BatchNorm, LayerNorm) bring it back to about 1. Shrinking by orders of
  magnitude, the signal is vanishing and the last layers see almost nothing; growing by orders
  of magnitude, it is exploding, and ends in infinite or NaN values (a warning above the figure
  says where they begin).
- **Outputs exactly 0** (%): a ReLU sets every negative input to 0, so a third to a half of
  its outputs are 0 when it works. A channel that is 0 for every image is a dead unit: it
  passes no gradient back, so the weights that feed it learn nothing from these images. A
  pooling or flatten layer after a ReLU shows the same zeros again.
- **Gradient RMS**: the size of the loss's gradient with respect to each layer's output, what
  that layer's weights learn from. The backward pass runs from the last layer to the first: a
  gradient that falls by orders of magnitude towards the first layers is vanishing (they hardly
  learn), one that grows is exploding. A missing point is a gradient of exactly 0, or one
  with NaN or infinite values (a warning above says where).
- **At initialisation**: the same architecture with the random weights its training began
  from. Where its lines differ from the trained network's is what training changed. Its
  BatchNorm layers have no statistics yet and, measured in eval mode as here, pass their input
  through unchanged: in the first training steps they normalised each batch instead.
"""
    )
st.plotly_chart(
    plot_layer_statistics({label: r.rows for label, r in result.items()}, gradients=gradients),
    key=f"{P}.depth",
)
notes = []
if summary["dead"]:
    worst = max(summary["dead"], key=lambda d: d[1] / d[2])
    notes.append(
        f"{len(summary['dead'])} ReLU layer(s) have units that are 0 for every image, the most "
        f"in {worst[0]} ({worst[1]:,} of {worst[2]:,}): dead units, which pass no gradient back."
        + (
            f" With only {'1 image' if n == 1 else f'{n} images'} a unit can be 0 "
            f"{'for it' if n == 1 else 'for all of them'} by chance: measure {DEAD_EVIDENCE} or "
            "more before calling it dead."
            if n < DEAD_EVIDENCE
            else ""
        )
    )
if gradients and summary["saturated"]:
    notes.append(
        "Every layer's gradient is exactly 0, the output's too: each image's target class has "
        "probability 1 to float32 precision (logits up to "
        f"{max(abs(rows[-1]['min']), abs(rows[-1]['max'])):.3g}), so the loss is 0 and there is "
        "nothing to learn from these images (very large weights, or a very sure model, do this)."
    )
elif gradients and summary["no_gradient"]:
    dead_end = summary["no_gradient"]
    notes.append(
        f"{len(dead_end)} layer(s) get a gradient of exactly 0 ({', '.join(dead_end[:3])}"
        + (f" and {len(dead_end) - 3} more" if len(dead_end) > 3 else "")
        + "; left off the log axis): the loss does not depend on their outputs here, as when a "
        "layer after them has all-zero weights (torchvision's untrained ViT head) or only dead "
        "units."
    )
ratio = summary["grad_ratio"]
if gradients and np.isfinite(ratio) and ratio > 0:
    others = [
        f"{label}: {other['grad_ratio']:.3g}"
        for label, other in list(summaries.items())[1:]
        if np.isfinite(other["grad_ratio"])
    ]
    notes.append(
        f"At the first layer ({summary['grad_first']}) the gradient's RMS is {ratio:.3g} times "
        f"that at the last ({summary['grad_last']})"
        + (f" ({', '.join(others)})" if others else "")
        + ". Many times smaller per value is usual (a layer with more values shares the "
        "gradient among them); orders of magnitude smaller, the early layers hardly learn "
        "(vanishing gradients); far above 1, they get the largest kicks (exploding)."
    )
notes.append(
    "x is each layer's place in the forward pass (a module called twice, as a ResNet block's "
    "ReLU, counts twice); hover for its name, type and output shape. Standard deviations and "
    "gradients are on log axes."
)
st.caption(" ".join(notes))

st.subheader("Distribution of the outputs")
choices = [r["layer"] for r in rows]
nonlinear = [r["layer"] for r in rows if r["type"] in ("ReLU", "GELU", "Tanh", "Sigmoid", "SiLU")]
pool = nonlinear or choices
default = [pool[int(i)] for i in np.unique(np.linspace(0, len(pool) - 1, min(5, len(pool))))]
h1, h2 = st.columns([3, 1], vertical_alignment="bottom")
if f"{P}.layers" in st.session_state and st.session_state.get(f"{P}.layers_for") != loaded.name:
    # chosen for another model: keep the layers this one has too, else its default (an empty
    # choice made for this model stays empty)
    kept = [c for c in st.session_state[f"{P}.layers"] if c in choices]
    st.session_state[f"{P}.layers"] = kept or default
st.session_state[f"{P}.layers_for"] = loaded.name
picked = h1.multiselect(
    "Layers",
    choices,
    **({} if f"{P}.layers" in st.session_state else {"default": default}),
    max_selections=7,
    key=f"{P}.layers",
    help="Up to seven layers; by default five spread over the depth, after the nonlinearities.",
)
log_y = h2.toggle("Log scale", key=f"{P}.log", help="Shares on a log axis: the tails show.")
if picked:
    columns = st.columns(len(result))
    for where, (label, r) in zip(columns, result.items(), strict=True):
        series = {name: r.samples[name] for name in picked if name in r.samples}
        zeros = {row["layer"]: row["zero_fraction"] for row in r.rows}  # all values, not a sample
        where.plotly_chart(
            plot_activation_histograms(
                series, log_y=log_y, title=f"{meta['name']}, {label}", zero_shares=zeros
            ),
            key=f"{P}.hist.{label}",
        )
    size = max(len(v) for r in result.values() for v in r.samples.values())
    st.caption(
        f"Each line is a random sample of {size:,} of the layer's output values (all of them "
        "where there are fewer), exact zeros left out (their share is in the legend and in the "
        "zeros panel above), in 80 bins between the 0.5th and 99.5th percentile of the lines "
        "together; values beyond are counted in the end bins."
        + (
            " Each network has its own x range: an untrained network's outputs are often "
            "many times smaller."
            if len(result) > 1
            else ""
        )
    )

st.subheader("All the numbers")
COLUMNS = {
    "position": st.column_config.NumberColumn("#", help="Place in the forward pass"),
    "layer": st.column_config.TextColumn("Layer"),
    "type": st.column_config.TextColumn("Type"),
    "output_shape": st.column_config.TextColumn("Output", help="Of one image"),
    "mean": st.column_config.NumberColumn("Mean", format="%.3g"),
    "std": st.column_config.NumberColumn("Std", format="%.3g"),
    "min": st.column_config.NumberColumn("Min", format="%.3g"),
    "max": st.column_config.NumberColumn("Max", format="%.3g"),
    "zero_fraction": st.column_config.NumberColumn("Zeros", format="percent"),
    "channels": st.column_config.NumberColumn("Channels"),
    "dead_channels": st.column_config.NumberColumn(
        "Always 0",
        help="Channels (a ViT's features, a flat layer's values) that are 0 at every position "
        "of every image. In a ReLU row these are dead units; a pooling or flatten row after a "
        "ReLU repeats them (a flatten counts each position of a channel).",
    ),
    "nonfinite": st.column_config.NumberColumn("NaN/inf", help="NaN and infinite values"),
    "grad_rms": st.column_config.NumberColumn(
        "Grad RMS", format="%.3g", help="Root mean square of the loss's gradient"
    ),
    "grad_nonfinite": st.column_config.NumberColumn(
        "Grad NaN/inf", help="NaN and infinite values of the loss's gradient"
    ),
}
frames = {}
for label, r in result.items():
    frame = pd.DataFrame(r.rows)
    frame.insert(0, "position", np.arange(1, len(frame) + 1))
    frame["output_shape"] = frame["output_shape"].map(lambda s: "×".join(map(str, s)))
    frames[label] = frame
# vit_b_16's names run to 46 characters and pushed the numbers off a 1024-pixel page: their
# shared start is written "…", as on the Model Inspector (the CSV keeps the full names)
names = [r["layer"] for r in rows]
shown, elided = shorten_layer_names(names, max_chars=LAYER_NAME_CHARS)
if elided:
    short, full = next((a, b) for a, b in zip(shown, names, strict=True) if a != b)
    st.caption(f"In the layer names, … stands for {elided} ({short} is {full}).")
tabs = st.tabs(list(frames))
for where, (label, frame) in zip(tabs, frames.items(), strict=True):
    where.dataframe(
        frame.assign(layer=frame["layer"].map(dict(zip(names, shown, strict=True)))),
        hide_index=True, column_config=COLUMNS, key=f"{P}.table.{label}",
    )  # fmt: skip
table = pd.concat(frames, names=["network", None]).reset_index(level=0)
st.download_button(
    "Download the table (CSV)",
    table.to_csv(index=False).encode(),
    file_name=f"{loaded.stem}_activation_statistics.csv",
    mime="text/csv",
    key=f"{P}.download",
    on_click="ignore",
)
