"""Training Lab: train a small network on the bundled digits live, with your own optimiser,
learning rate, batch size, initialisation and augmentation, and compare the runs."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pandas as pd
import streamlit as st
import torch
from safetensors.torch import load as load_safetensors

import ui
from ui import links
from vizlib import calibration, describe_device, filters, train
from vizlib.data import dataset_normalization, denormalize, load_dataset
from vizlib.plots import (
    commonest_mistakes,
    plot_confusion_matrix,
    plot_gradient_flow,
    plot_image_grid,
    plot_misclassified,
    plot_run_comparison,
    plot_training_run,
)
from vizlib.summary import count_parameters
from vizlib.zoo import build_model

P = "training"
ARCHITECTURES = {  # RECIPES key -> what it is
    "lenet": "LeNet-like CNN (lenet_digits)",
    "resnet": "small ResNet (resnet_digits)",
    "vit": "small ViT (vit_digits)",
}
CHECKPOINTS = {"lenet": "lenet_digits", "resnet": "resnet_digits", "vit": "vit_digits"}  # whose
# architecture (and config) the weights fit: the name to pick when uploading them elsewhere
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512)
WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2, 0.05, 0.1)
INIT_SCALES = (0.0, 0.1, 0.5, 1.0, 2.0, 5.0)
LABEL_SMOOTHINGS = (0.0, 0.05, 0.1, 0.2, 0.3)
MAX_RUNS = 6  # runs kept for comparison in a session (the last one's weights only)
MAX_MISTAKES = 24  # misclassified test images shown (4 rows of 6 at 1024 px)
DEFAULTS = train.TrainSettings()
SETTINGS: links.Table = {
    "arch": (f"{P}.architecture", DEFAULTS.architecture, tuple(ARCHITECTURES)),
    "optimizer": (f"{P}.optimizer", DEFAULTS.optimizer, train.OPTIMIZERS),
    "lr": (f"{P}.lr", DEFAULTS.lr, links.choice_parser(LEARNING_RATES)),
    "batch": (f"{P}.batch_size", DEFAULTS.batch_size, links.choice_parser(BATCH_SIZES)),
    "epochs": (f"{P}.epochs", DEFAULTS.epochs, (1, 200)),
    "wd": (f"{P}.weight_decay", DEFAULTS.weight_decay, links.choice_parser(WEIGHT_DECAYS)),
    "schedule": (f"{P}.schedule", DEFAULTS.schedule, train.SCHEDULES),
    "augment": (f"{P}.augment", DEFAULTS.augment, (False, True)),
    "init": (f"{P}.init_scale", DEFAULTS.init_scale, links.choice_parser(INIT_SCALES)),
    "smoothing": (
        f"{P}.label_smoothing",
        DEFAULTS.label_smoothing,
        links.choice_parser(LABEL_SMOOTHINGS),
    ),
    "seed": (f"{P}.seed", DEFAULTS.seed, (0, 9999)),
}
# the model picker's ?model= is not this page's: "arch" names what it trains
LINK_KEYS = set(SETTINGS)

st.title("Training Lab")
st.caption(
    "Train a small network on scikit-learn's bundled digits (1,347 training images, 450 test "
    "images, 8×8 pixels scaled up) while you watch: the loss, the accuracy, the gradient's size "
    "and the first layer's filters, epoch by epoch. Change one setting, train again, and the "
    "runs compare below. The weights download as a file the other pages open."
)


def run_label(number: int, s: train.TrainSettings) -> str:
    """Return a run's short name: its number and the settings that tell runs apart."""
    # epochs too, where not the default: runs of 3 and 5 epochs had the same name
    extras = (
        [f"{s.epochs} epoch{'s' if s.epochs > 1 else ''}"] if s.epochs != DEFAULTS.epochs else []
    )
    if not s.augment:
        extras.append("no augmentation")
    # weight decay and seed too: two runs that differ only there had the same name
    if s.weight_decay != DEFAULTS.weight_decay:
        extras.append(f"weight decay {s.weight_decay:g}")
    if s.init_scale != 1.0:
        extras.append(f"init ×{s.init_scale:g}")
    if s.label_smoothing != DEFAULTS.label_smoothing:
        extras.append(f"label smoothing {s.label_smoothing:g}")
    if s.schedule != DEFAULTS.schedule:
        extras.append(s.schedule + " lr")
    if s.seed != DEFAULTS.seed:
        extras.append(f"seed {s.seed}")
    return (
        f"#{number} {s.architecture}, {s.optimizer}, lr {s.lr:g}, batch {s.batch_size}"
        + "".join(f", {e}" for e in extras)
    )


def first_layer_figure(model: torch.nn.Module, title: str):
    """Return the first conv layer's filters as a grid of small grey images (each filter
    stretched to its own range), or None for a model without one."""
    convs = filters.conv_layer_names(model)
    if not convs:
        return None
    tiles = filters.filter_tiles(filters.conv_filters(model, convs[0]))  # (out, 1 or 3, kh, kw)
    # two lines: "after epoch 3: conv1" in one was cut at the column's edge at 1024 px; a
    # grid twice as tall as wide, as the narrow column is: a square grid of the LeNet's 32
    # filters was 120 px wide there, each filter 18 px
    cols = max(2, math.ceil(math.sqrt(len(tiles) / 2)))
    return plot_image_grid(tiles, title=f"{convs[0]}<br>{title}", cols=cols, max_px=360)


def calibration_note(predictions: train.Predictions, smoothing: float) -> str:
    """Say how sure the run's answers on the test split are against how often they are right
    (``vizlib.calibration``), and what label smoothing ``smoothing`` taught it to say."""
    # log p as logits: their softmax is p again, so the temperature fit sees the same answers
    logits = np.log(np.clip(predictions.probabilities.astype(np.float64), 1e-300, None))
    s = calibration.summarize(logits, predictions.labels)
    at_bound = s["temperature"] in calibration.TEMPERATURE_BOUNDS
    target = 1 - smoothing + smoothing / 10
    return (
        f"How sure it is: a mean confidence of {s['mean_confidence']:.1%} for "
        f"{s['accuracy']:.1%} right, an expected calibration error of {s['ece']:.2%} (15 bins)"
        + (
            "; every answer is right, so no temperature can be fitted."
            if at_bound and s["temperature"] < 1
            else f"; the temperature that would calibrate it here is T = {s['temperature']:.3g} "
            f"({'over' if s['temperature'] > 1 else 'under'}confident)."
        )
        + (
            f" Label smoothing {smoothing:g} trained it towards {target:.0%} for the true "
            "digit, not 100%, and pulls its confidence towards that."
            if smoothing
            else ""
        )
        + " Predictions & Calibration shows more, on your downloaded weights."
    )


def draw_test_results(run: dict, model: torch.nn.Module) -> None:
    """Draw the run's confusion matrix on the test split and its most confident mistakes; the
    predictions are computed once per run and kept in its dict (``run["predictions"]``)."""
    arch = run["settings"].architecture
    if run.get("predictions") is None:
        run["predictions"] = train.predict_test_split(
            model, input_size=train.RECIPES[arch]["input_size"]
        )
    predictions: train.Predictions = run["predictions"]
    counts = train.confusion_matrix(predictions.labels, predictions.predicted, num_classes=10)
    n, wrong = len(predictions.labels), int(counts.sum() - np.trace(counts))
    st.subheader(f"The {n} test images: {wrong} wrong")
    # one above the other: side by side, at 1024 px, the matrix's cells and the gallery's
    # captions were too small to read (20 px cells, captions running into each other)
    st.plotly_chart(plot_confusion_matrix(counts), key=f"{P}.confusion")
    st.caption(
        "Rows: the true digit; columns: the model's answer. The diagonal (blue) counts the "
        "right answers, the orange cells the mistakes; on the right, each digit's accuracy."
        + (f" {tied}" if (tied := commonest_mistakes(counts, list("0123456789"))) else "")
    )
    st.caption(calibration_note(predictions, run["settings"].label_smoothing))
    table = pd.DataFrame(
        counts,
        index=pd.Index([f"true {c}" for c in range(10)], name="class"),
        columns=[f"predicted {c}" for c in range(10)],
    )
    table["images"] = counts.sum(axis=1)
    table["accuracy"] = np.diag(counts) / table["images"].replace(0, np.nan)
    st.download_button(
        "Download the matrix (CSV)",
        table.to_csv().encode(),
        file_name=f"confusion_matrix_run{run['number']}.csv",
        mime="text/csv",
        key=f"{P}.download_confusion",
        help="Counts of test images, true class by row, predicted by column; then each row's "
        "images and accuracy (a fraction).",
        on_click="ignore",
    )
    if not wrong:
        st.success("Every test image is classified right.")
        return
    shown = train.misclassified(predictions, limit=MAX_MISTAKES)  # (M,) indices, surest first
    images, _, _ = load_dataset("digits", "test", (8, 8))  # (450, 1, 8, 8) as sklearn has them
    tiles = denormalize(images[shown], *dataset_normalization("digits")).numpy()  # in [0, 1]
    st.plotly_chart(
        plot_misclassified(
            tiles, predictions.labels[shown], predictions.probabilities[shown], ids=shown
        ),
        key=f"{P}.mistakes",
    )
    st.caption(
        f"{'All' if len(shown) == wrong else len(shown)} of the {wrong} mistakes, those the "
        "model was surest of first: the true digit, the answer and (in brackets) the "
        "probability the model gave that answer. The 8 × 8 images as scikit-learn ships them "
        "(the model saw them scaled up); hover for the probability of the true digit."
    )


def shown(value: float, fmt: str) -> str:
    """Return ``value`` formatted, or "not a number" for NaN (a diverged run: "nan%" read as a
    glitch)."""
    return format(value, fmt) if np.isfinite(value) else "not a number"


def runs() -> list[dict]:
    """Return this session's runs, oldest first (each: number, settings, records, status)."""
    return st.session_state.setdefault(f"{P}.runs", [])


# ---- settings -----------------------------------------------------------------------------
for warning in links.load_settings(SETTINGS, prefix=f"{P}.", from_link=links.first_visit(P)):
    st.warning(warning, icon=":material/link_off:")


def use_recipe() -> None:
    """Set the widgets to the recipe the shipped checkpoint of the chosen model was trained with."""
    r = train.TrainSettings.recipe(st.session_state[f"{P}.architecture"])
    st.session_state.update(
        {
            f"{P}.optimizer": r.optimizer,
            f"{P}.lr": r.lr,
            f"{P}.batch_size": r.batch_size,
            f"{P}.epochs": r.epochs,
            f"{P}.weight_decay": r.weight_decay,
            f"{P}.schedule": r.schedule,
            f"{P}.augment": r.augment,
            f"{P}.init_scale": 1.0,
            f"{P}.label_smoothing": r.label_smoothing,
        }
    )


c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
architecture = c1.selectbox(
    "Model", list(ARCHITECTURES), format_func=ARCHITECTURES.get, key=f"{P}.architecture",
    help="The architectures of the shipped checkpoints, built fresh from a seeded random "
    "initialisation.",
)  # fmt: skip
c2.button(
    "Shipped recipe",
    on_click=use_recipe,
    key=f"{P}.recipe",
    help="The optimiser, learning rate, batch size, epochs, weight decay, schedule and label "
    "smoothing the shipped checkpoint was trained with (the ViT's 200 epochs take minutes on a CPU).",
)
o1, o2, o3 = st.columns(3)
optimizer = o1.selectbox(
    "Optimiser", train.OPTIMIZERS, key=f"{P}.optimizer",
    help="SGD with momentum uses 0.9. Adam adds weight decay to the gradient (L2); AdamW "
    "decays the weights directly.",
)  # fmt: skip
lr = o2.select_slider(
    "Learning rate", LEARNING_RATES, key=f"{P}.lr", format_func=lambda v: f"{v:g}",
    help="The peak rate. Too high and the loss jumps about or becomes NaN; too low and it "
    "barely moves.",
)  # fmt: skip
batch_size = o3.select_slider(
    "Batch size", BATCH_SIZES, key=f"{P}.batch_size",
    help="Images per optimiser step: smaller batches take more, noisier steps per epoch.",
)  # fmt: skip
o4, o5, o6 = st.columns(3)
epochs = o4.slider("Epochs", 1, 200, key=f"{P}.epochs", help="Passes over the training images.")
weight_decay = o5.select_slider(
    "Weight decay", WEIGHT_DECAYS, key=f"{P}.weight_decay", format_func=lambda v: f"{v:g}",
    help="On weight matrices and kernels, never on biases or normalisation layers.",
)  # fmt: skip
init_scale = o6.select_slider(
    "Initial weights ×", INIT_SCALES, key=f"{P}.init_scale", format_func=lambda v: f"{v:g}",
    help="Every weight matrix and kernel times this after PyTorch's initialisation: 0 makes "
    "the units of a layer identical (the symmetry never breaks), large values saturate.",
)  # fmt: skip
o7, o8, o9 = st.columns(3)
schedule = o7.radio("Learning-rate schedule", train.SCHEDULES, key=f"{P}.schedule")
augment = o8.toggle(
    "Augmentation", key=f"{P}.augment",
    help="Random shifts (up to 10%) and rotations (up to 12°) of every training image.",
)  # fmt: skip
seed = o9.number_input(
    "Seed", 0, 9999, key=f"{P}.seed", help="Same seed and settings, same run (on one device)."
)
o10, _, _ = st.columns(3)
label_smoothing = o10.select_slider(
    "Label smoothing", LABEL_SMOOTHINGS, key=f"{P}.label_smoothing",
    format_func=lambda v: f"{v:g}",
    help="Train towards 1 − ε + ε/10 for the true digit and ε/10 for each other one, not 1 "
    "and 0 (Szegedy et al., 2016): the model learns to be less sure, and its test confidence "
    "shows it (see the calibration under the confusion matrix). The shipped ViT used 0.1.",
)  # fmt: skip
links.save_settings(SETTINGS, prefix=f"{P}.", keep=LINK_KEYS)

settings = train.TrainSettings(
    architecture=architecture, optimizer=optimizer, lr=float(lr), batch_size=int(batch_size),
    epochs=int(epochs), weight_decay=float(weight_decay), schedule=schedule, augment=augment,
    init_scale=float(init_scale), seed=int(seed), label_smoothing=float(label_smoothing),
)  # fmt: skip
device = str(ui.current_device())
b1, b2, b3 = st.columns([1, 1, 4], vertical_alignment="center")
start = b1.button("Train", type="primary", key=f"{P}.train")
# Clicking Stop during a run makes Streamlit interrupt the script at its next element; the
# epochs done so far are kept, and this run sees the interrupted run still marked running
b2.button("Stop", key=f"{P}.stop")
history = runs()
timed = [r.seconds for run in history if run["settings"].architecture == architecture
         and run["device"] == device for r in run["records"]]  # fmt: skip
b3.caption(
    f"Trains on {describe_device(ui.current_device())}"
    + (f", {np.median(timed):.1f} s an epoch for this model in your runs" if timed else "")
    + "; the progress bar says how long is left after the first epoch."
)
# Stop, another widget or Train again interrupted the run: keep the epochs it finished (a
# second Train used to leave the first run marked running for good)
if history and history[-1]["status"] == "running":
    history[-1]["status"] = "stopped"
    st.warning(f"Stopped {history[-1]['label']} after {len(history[-1]['records'])} epoch(s).")

# ---- a run, drawn live --------------------------------------------------------------------
if start:
    number = (history[-1]["number"] + 1) if history else 1
    run = {"number": number, "label": run_label(number, settings), "settings": settings,
           "records": [], "status": "running", "weights": None, "device": device}  # fmt: skip
    for older in history:
        # only the newest run's weights and test predictions (18 kB) stay in the session: the
        # results drawn are its alone, the older runs are compared by their records
        older["weights"] = older["predictions"] = None
    history.append(run)
    del history[:-MAX_RUNS]
    bar = st.progress(0.0, text=f"Starting {run['label']}…")
    live, live_filters = st.columns([3, 1])
    curves, grid = live.empty(), live_filters.empty()
    flow = st.empty()  # full width: in the curves' column its two colour bars crowded it
    started = time.perf_counter()
    # the bar follows every epoch; the three charts at most once a second, which is every epoch
    # on a CPU (over a second each here) but not a small model's tenths of a second on a GPU
    redraw = ui.Pace(1.0)
    try:
        for model, record in train.training_epochs(settings, device=device):
            run["records"].append(record)
            run["weights"] = train.weights_bytes(model, settings.architecture, settings=settings)
            done = record.epoch
            bar.progress(
                done / settings.epochs,
                text=f"{run['label']}: epoch {done}/{settings.epochs}, test accuracy "
                f"{record.test_accuracy:.1%}"
                + ui.time_left(time.perf_counter() - started, done, settings.epochs),
            )
            if not redraw.due():  # the finished run is drawn in full below, after the rerun
                continue
            curves.plotly_chart(
                plot_training_run(run["records"], epochs=settings.epochs), key=f"{P}.live.{done}"
            )
            flow.plotly_chart(
                # not framed to the whole run: 200 epochs made the first columns slivers
                plot_gradient_flow(run["records"]),
                key=f"{P}.live_flow.{done}",
            )
            figure = first_layer_figure(model, f"after epoch {done}")
            if figure is not None:
                grid.plotly_chart(figure, key=f"{P}.live_filters.{done}")
        run["status"] = "diverged" if run["records"] and run["records"][-1].diverged else "done"
    except (ValueError, RuntimeError) as err:
        run["status"] = "failed"
        st.error(f"Training stopped with an error: {err}")
        st.stop()
    st.rerun()  # draw the finished run below with the others

# ---- results ------------------------------------------------------------------------------
if not history:
    st.info("Choose the settings and press **Train**.")
    st.stop()
last = history[-1]
records = last["records"]
st.subheader(f"Run {last['label']}")
if not records:
    st.info("That run was stopped before its first epoch ended.")
else:
    final = records[-1]
    if last["status"] == "diverged":
        st.warning(
            f"The loss stopped being a number (NaN or infinite) in epoch {final.epoch}: the "
            f"learning rate {last['settings'].lr:g} is too high for {last['settings'].optimizer} "
            "with these settings, and the weights are ruined. Try a rate 10 times lower.",
            icon=":material/warning:",
        )
    elif final.test_accuracy < 0.2 and last["status"] == "stopped":
        peak = final.lrs[-1] / last["settings"].lr  # the schedule's factor at the last step
        # still rising: in the warm-up (a cosine's decay also has it below its peak)
        rising = len(final.lrs) > 1 and final.lrs[-1] > final.lrs[-2]
        st.warning(
            f"Stopped after {final.epoch} of {last['settings'].epochs} epochs: the model does "
            "no better than guessing yet (10% for ten classes) because it has barely begun"
            + (f"; the learning rate was still warming up ({peak:.0%} of its peak)."
               if rising else ".")
            + " Train it longer before judging the settings.",
            icon=":material/warning:",
        )  # fmt: skip
    elif final.test_accuracy < 0.2:  # 10 classes: guessing scores 10%
        st.warning(
            f"After {final.epoch} epoch(s) the model does no better than guessing (10% for ten "
            f"classes), and its loss of {final.train_loss:.2f} is near ln 10 = 2.30, the loss of "
            "a uniform guess. Common causes: a learning rate so high that the first steps threw "
            "the weights far off (ReLU units die and pass no gradient), all-zero initial weights "
            "(every unit of a layer stays the same), or a rate too small for so few epochs.",
            icon=":material/warning:",
        )
    if last["status"] == "stopped":
        st.caption(f"Stopped after epoch {final.epoch} of {last['settings'].epochs}.")
    seconds = sum(r.seconds for r in records)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Test accuracy", shown(final.test_accuracy, ".1%"))
    m2.metric(
        "Train accuracy", shown(final.train_accuracy, ".1%"),
        help="On the training images without augmentation. Far above the test accuracy: the "
        "model memorises (overfits).",
    )  # fmt: skip
    m3.metric("Test loss", shown(final.test_loss, ".3f"))
    m4.metric("Training time", f"{seconds:.1f} s", help=f"Epochs only, on {last['device']}.")
    r1, r2 = st.columns([3, 1])
    # framed to the epochs done: a run stopped after 2 of 200 was a sliver at the left edge
    r1.plotly_chart(plot_training_run(records), key=f"{P}.curves")
    st.plotly_chart(plot_gradient_flow(records), key=f"{P}.gradient_flow")
    st.caption(
        "Each layer's gradient (left) and the size of its steps relative to its weights "
        "(right), averaged over the epoch's steps; a residual or transformer block counts as "
        "one layer. Gradients that shrink row by row towards the input vanish, and a "
        "**0** means the layer gets no gradient at all; growing ones explode. A step near "
        "1e-3 of the weights (white) is the usual sign of a healthy learning rate, blue a "
        "layer that barely moves, red one that is thrown about."
    )
    if last["weights"] is not None:
        arch = last["settings"].architecture
        model = build_model(arch, train.RECIPES[arch]["config"])
        model.load_state_dict(load_safetensors(last["weights"]))
        figure = first_layer_figure(model, f"after epoch {final.epoch}")
        if figure is not None:
            r2.plotly_chart(figure, key=f"{P}.filters")
        convs = filters.conv_layer_names(model)
        # stretched filters of weights near 0 (all-zero initial weights under SGD stay ~1e-15)
        # look as structured as real ones: the scale says which they are
        largest = float(filters.conv_filters(model, convs[0]).abs().max()) if convs else None
        r2.caption(
            f"{count_parameters(model):,} parameters. Each filter stretched to its own range, "
            "black lowest"
            + (f"; the largest weight of {convs[0]} is {largest:.2g} in size." if convs else ".")
        )
        checkpoint = CHECKPOINTS[arch]
    if last["weights"] is not None and last["status"] == "diverged":
        # NaN weights opened on another page draw nothing but NaN: not offered
        st.caption("No weights to download and no confusion matrix: they are no longer numbers.")
    elif last["weights"] is not None:
        st.download_button(
            "Download the weights (.safetensors)",
            last["weights"],
            file_name=f"{checkpoint}_run{last['number']}.safetensors",
            mime="application/octet-stream",
            key=f"{P}.download_weights",
            on_click="ignore",
        )
        st.caption(
            f"Open them on Filters & Feature Maps, Activations & Gradients, Attributions or the "
            f"Model Inspector: choose **Upload weights** and the architecture **{checkpoint}**."
        )
        draw_test_results(last, model)

if len(history) > 1:
    st.subheader("Runs compared")
    shown = {run["label"]: run["records"] for run in history if run["records"]}
    st.plotly_chart(plot_run_comparison(shown), key=f"{P}.compare")
table = pd.DataFrame(
    [
        {
            "run": run["label"],
            "status": run["status"],
            "epochs done": len(run["records"]),  # the settings' "epochs" is what was asked
            "test accuracy": run["records"][-1].test_accuracy if run["records"] else np.nan,
            "train accuracy": run["records"][-1].train_accuracy if run["records"] else np.nan,
            "seconds": sum(r.seconds for r in run["records"]),
            **{k: v for k, v in dataclasses.asdict(run["settings"]).items()},
        }
        for run in history
    ]
)
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "test accuracy": st.column_config.NumberColumn(format="percent"),
        "train accuracy": st.column_config.NumberColumn(format="percent"),
        "seconds": st.column_config.NumberColumn(format="%.1f"),
    },
    key=f"{P}.runs",
)
epochs_table = pd.DataFrame(
    [
        {
            "run": run["label"],
            **dataclasses.asdict(r),
            **{f"grad norm {k}": v for k, v in r.layer_grad_norms.items()},
            **{f"update ratio {k}": v for k, v in r.layer_update_ratios.items()},
        }
        for run in history
        for r in run["records"]
    ]
)
d1, d2 = st.columns(2)  # [1, 3] cut the download label at 1024 px
if not epochs_table.empty:
    d1.download_button(
        "Download the runs (CSV)",
        epochs_table.drop(
            columns=["step_losses", "grad_norms", "lrs", "layer_grad_norms", "layer_update_ratios"]
        )
        .to_csv(index=False)
        .encode(),
        file_name="training_runs.csv",
        mime="text/csv",
        key=f"{P}.download_runs",
        help="One row per epoch of every run: its settings' name, losses, accuracies, seconds, "
        "and each layer's gradient norm and update ratio (the heatmap's cells).",
        on_click="ignore",
    )
if d2.button("Clear the runs", key=f"{P}.clear"):
    history.clear()
    st.rerun()
