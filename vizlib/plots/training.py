"""Figures of a training run (``vizlib.train.training_epochs``): loss, accuracy, gradient norm
and learning rate as it trains, several runs side by side, and the trained model's confusion
matrix and mistakes on the test split."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._axes import log_ticks
from .filters import _CAPTION_CHARS, plot_captioned_images

__all__ = [
    "commonest_mistakes",
    "confidence_percent",
    "plot_confusion_matrix",
    "plot_gradient_flow",
    "plot_misclassified",
    "plot_run_comparison",
    "plot_training_run",
]

TRAIN_COLOR, TEST_COLOR = "#4c78a8", "#f58518"
RUN_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")
# the diagonal in blues; a class never answered right is see-through with its 0 written in the
# theme's colour (palest blue, it was the brightest cell in the dark theme, and looked chosen)
CORRECT_SCALE = ((0.0, "rgba(0,0,0,0)"), (1e-9, "#deebf7"), (1.0, "#2171b5"))
# mistakes from none through orange to red: one wrong image must already show; a cell of no
# mistakes is see-through, the page's own white or its dark ground in the dark theme (white
# cells there made a glaring box)
MISTAKE_SCALE = ((0.0, "rgba(0,0,0,0)"), (1e-9, "#fdd0a2"), (0.5, "#f16913"), (1.0, "#a50f15"))


def _finite_or_none(values: Sequence[float]) -> list[float | None]:
    """NaN and infinite values become gaps (plotly draws no point for None)."""
    return [float(v) if np.isfinite(v) else None for v in values]


EXPLODED = 100.0  # a loss this many times its first value has blown up (the healthy steps
# of a run that reached 1e21 were a flat line at 0 on a linear axis)


def _loss_axis(steps: Sequence[float]) -> dict:
    """Return the loss panel's y axis: linear from 0 for a run whose finite losses stay below
    ``EXPLODED`` times its first one, else logarithmic with labels written in full, so that
    the first steps (about 2.3) stay apart from the blow-up (SGD at lr 10 on lenet: 1.1e21
    in its fourth step).

    steps: (S,) each step's loss in order; NaN and inf are ignored.
    """
    values = np.asarray(steps, dtype=float)
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size and finite.max() > EXPLODED * finite[0]:
        return {"type": "log", **log_ticks(finite)}
    return {"rangemode": "tozero"}


def _first_not_finite(x: Sequence[float], values: Sequence[float]) -> float | None:
    """Return the x of the first NaN or infinite value of ``values`` (paired with ``x``), or
    None when all are finite."""
    for xi, v in zip(x, values, strict=True):
        if not np.isfinite(v):
            return float(xi)
    return None


def plot_training_run(records: Sequence, *, epochs: int | None = None) -> go.Figure:
    """Return a 2 x 2 grid for one run: loss (each step, and each epoch's train and test means),
    accuracy (train and test after each epoch, %), the gradient's global L2 norm per step (log
    axis), and the learning rate per step.

    records: ``vizlib.train.EpochRecord`` of the epochs done so far; the x axes are in epochs
    (a step at epoch e + k / steps), fixed to ``epochs`` when given so a live run fills the
    frame instead of stretching it. Non-finite values (a diverged run) are gaps, the first of
    them marked with a dotted line and a note; a loss that blew up (above ``EXPLODED`` times
    the first step's) puts the loss panel on a log axis.
    """
    fig = make_subplots(
        rows=2,
        cols=2,
        shared_xaxes=True,
        vertical_spacing=0.12,
        # room for the right panels' tick labels: at 1024 px the learning rate's "0.0015" ran
        # into the gradient norm's panel at 0.1
        horizontal_spacing=0.14,
        subplot_titles=(
            "loss (cross-entropy)",
            "accuracy (%)",
            "global gradient norm (L2)",  # all parameters; a longer title was cut at 1024 px
            "learning rate",
        ),
    )
    step_x: list[float] = []
    step_loss: list[float] = []
    norms: list[float] = []
    lrs: list[float] = []
    for r in records:
        n = len(r.step_losses)
        step_x += [r.epoch - 1 + (k + 1) / n for k in range(n)]
        step_loss += r.step_losses
        norms += r.grad_norms
        lrs += r.lrs
    ends = [r.epoch for r in records]

    def line(x, y, name, color, *, row, col, mode="lines+markers", dash=None, width=2, legend=True):
        fig.add_trace(
            go.Scatter(
                x=x, y=_finite_or_none(y), name=name, mode=mode, legendgroup=name,
                showlegend=legend, line={"color": color, "width": width, "dash": dash},
                hovertemplate=f"{name}<br>epoch %{{x:.2f}}: %{{y:.4g}}<extra></extra>",
            ),
            row=row, col=col,
        )  # fmt: skip

    line(step_x, step_loss, "each step (train)", "#9ecae9", row=1, col=1, mode="lines", width=1)
    line(ends, [r.train_loss for r in records], "train", TRAIN_COLOR, row=1, col=1)
    line(ends, [r.test_loss for r in records], "test", TEST_COLOR, row=1, col=1)
    line(ends, [100 * r.train_accuracy for r in records], "train", TRAIN_COLOR, row=1, col=2,
         legend=False)  # fmt: skip
    line(ends, [100 * r.test_accuracy for r in records], "test", TEST_COLOR, row=1, col=2,
         legend=False)  # fmt: skip
    line(step_x, norms, "gradient norm", "#54a24b", row=2, col=1, mode="lines", width=1,
         legend=False)  # fmt: skip
    line(step_x, lrs, "learning rate", "#b279a2", row=2, col=2, mode="lines", legend=False)
    x_range = [0, max(epochs or 0, ends[-1] if ends else 1)]
    fig.update_xaxes(range=x_range)
    fig.update_xaxes(title_text="epoch", row=2)
    fig.update_yaxes(range=[0, 100], row=1, col=2)
    fig.update_yaxes(type="log", row=2, col=1, **log_ticks(np.asarray(norms, dtype=float)))
    fig.update_yaxes(row=1, col=1, **_loss_axis(step_loss))
    lost = _first_not_finite(step_x, step_loss)
    if lost is not None:  # the line just stops there: say why
        fig.add_vline(x=lost, line={"color": "#e45756", "dash": "dot", "width": 1}, row=1, col=1)
        side = "right" if lost > x_range[1] / 2 else "left"  # the text inside the frame
        fig.add_annotation(
            x=lost, y=1, xref="x", yref="y domain", yanchor="top", xanchor=side,
            text=f"loss not a number<br>from epoch {lost:.2f}", showarrow=False,
            font={"color": "#e45756", "size": 11}, align=side,
        )  # fmt: skip
    fig.update_yaxes(rangemode="tozero", exponentformat="power", row=2, col=2)
    fig.update_layout(
        height=560,
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0},
        hovermode="closest",
    )
    return fig


HEALTHY_RATIO = 1e-3  # the update-to-weight ratio usually seen when a layer learns well
RATIO_DECADES = 3  # the ratio's colours span 1e-3 / 10**3 .. 1e-3 * 10**3 (clipped beyond)


def _layer_heatmap(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(L, E) values -> (log10 of the positive finite ones, NaN elsewhere; the text written in
    each cell: "0" for an exact zero, "NaN"/"inf" for a non-finite value, blank otherwise)."""
    good = np.isfinite(values) & (values > 0)
    z = np.full(values.shape, np.nan)
    np.log10(values, out=z, where=good)
    text = np.where(values == 0, "0", np.where(np.isnan(values), "NaN", ""))
    return z, np.where(np.isinf(values), "inf", text)


def plot_gradient_flow(records: Sequence, *, epochs: int | None = None) -> go.Figure:
    """Return two heatmaps, layer (rows, the input's end at the top) by epoch (columns): each
    layer's gradient L2 norm, and the update-to-weight ratio |Δw| / |w| of its steps, both
    means over the epoch's steps, coloured on a log10 scale.

    records: ``vizlib.train.EpochRecord`` with ``layer_grad_norms`` and ``layer_update_ratios``
    (layer name -> value). The gradient's colours span the values shown (Viridis: a row that
    darkens to the left of the others vanishes on its way back to the input); the ratio's are
    centred on 1e-3, white, with blue below (a layer that barely moves) and red above (one
    thrown about), clipped three decades either side. Cells that are exactly 0 say "0",
    non-finite ones "NaN" or "inf"; the hover gives each value. The x axis is fixed to
    ``epochs`` when given, so a live run fills the frame instead of stretching it.
    """
    layers = list(records[0].layer_grad_norms) if records else []
    x = [r.epoch for r in records]
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.2,  # room for the left panel's colour bar
        subplot_titles=("gradient norm (L2)", "update / weight, |Δw| / |w|"),
    )
    for col, attr, title in (
        (1, "layer_grad_norms", "gradient norm"),
        (2, "layer_update_ratios", "|Δw| / |w|"),
    ):
        values = np.array(
            [[getattr(r, attr).get(name, np.nan) for r in records] for name in layers], float
        ).reshape(len(layers), len(records))  # (L, E)
        z, text = _layer_heatmap(values)
        colour = (
            {"colorscale": "Viridis"}
            if col == 1
            else {
                "colorscale": "RdBu",
                "reversescale": True,
                "zmid": np.log10(HEALTHY_RATIO),
            }
        )
        finite = z[np.isfinite(z)]
        lo, hi = (
            (np.log10(HEALTHY_RATIO) - RATIO_DECADES, np.log10(HEALTHY_RATIO) + RATIO_DECADES)
            if col == 2
            else (np.floor(finite.min()), max(np.ceil(finite.max()), np.floor(finite.min()) + 1))
            if finite.size
            else (-1.0, 0.0)
        )
        # a label every decade, or every few when the span is wide (init 0: 1e-15 .. 1e0)
        ticks = np.arange(int(lo), int(hi) + 1, max(1, math.ceil((hi - lo) / 7)))
        fig.add_trace(
            go.Heatmap(
                z=z, x=x, y=layers, text=text, texttemplate="%{text}", customdata=values,
                hovertemplate=f"%{{y}}, epoch %{{x}}<br>{title} %{{customdata:.3g}}<extra></extra>",
                xgap=1, ygap=1, name=title,
                zmin=lo, zmax=hi,
                colorbar={"x": 0.41 if col == 1 else 1.01, "len": 0.9, "thickness": 12,
                          "tickvals": ticks, "ticktext": [f"1e{t}" for t in ticks]},
                **colour,
            ),
            row=1, col=col,
        )  # fmt: skip
    last = max(epochs or 0, x[-1] if x else 1)
    # whole epochs only: plotly ticked a 2-epoch run at 0.5, 1, 1.5, ...
    fig.update_xaxes(title_text="epoch", range=[0.5, last + 0.5], tick0=0,
                     dtick=max(1, math.ceil(last / 10)))  # fmt: skip
    fig.update_yaxes(autorange="reversed", type="category")
    # the subplot titles sat on the grey plot area's top edge, half hidden: lift them
    fig.update_annotations(yshift=8)
    fig.update_layout(
        height=max(240, 110 + 26 * len(layers)),
        margin={"l": 10, "r": 50, "t": 48, "b": 40},
        plot_bgcolor="#bdbdbd",  # grey: the ratio's healthy white cells must stand out
    )
    return fig


def plot_run_comparison(runs: Mapping[str, Sequence]) -> go.Figure:
    """Return two panels over epochs for several runs: the test accuracy (%) and the training
    loss (log axis), one colour per run (label -> its ``EpochRecord`` list).

    A loss above ``EXPLODED`` times the median of all the runs' losses (a run that blew up) is
    drawn as a triangle on the loss panel's top edge, its value in the hover and named under the
    panel's title, so that the other runs keep the frame: SGD at lr 10 (5e19 in its first
    epoch) beside a run going from 1.5 to 0.5 left the latter 15 pixels of 300.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=("test accuracy (%)", "training loss (log axis)"),
    )
    losses = np.array([r.train_loss for records in runs.values() for r in records], dtype=float)
    finite = losses[np.isfinite(losses) & (losses > 0)]
    ceiling = EXPLODED * float(np.median(finite)) if finite.size else math.inf
    in_frame = finite[finite <= ceiling]
    loss_axis = log_ticks(in_frame)
    top = math.inf  # where off-scale losses are drawn (the frame's top edge, in loss units)
    if in_frame.size < finite.size:
        low, high = loss_axis.get(
            "range", [math.log10(in_frame.min() / 1.2), math.log10(in_frame.max() * 1.2)]
        )  # log_ticks' padding, or its widened range
        loss_axis["range"] = [low, high]
        top = 10.0**high
    off_notes = []
    for i, (label, records) in enumerate(runs.items()):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        train_losses = np.array([r.train_loss for r in records], dtype=float)  # (E,)
        off = np.isfinite(train_losses) & (train_losses > top)
        if off.any():
            fig.add_trace(
                go.Scatter(
                    x=[r.epoch for r, o in zip(records, off, strict=True) if o],
                    y=[top] * int(off.sum()), customdata=train_losses[off], name=label,
                    legendgroup=label, showlegend=False, mode="markers", cliponaxis=False,
                    marker={"symbol": "triangle-up", "size": 11, "color": color},
                    hovertemplate=f"{label}<br>epoch %{{x}}: training loss %{{customdata:.3g}} "
                    "(above the frame)<extra></extra>",
                ),
                row=1, col=2,
            )  # fmt: skip
            off_notes.append(f"{label.split(' ', 1)[0]} {train_losses[off].max():.2g}")
        epochs = [r.epoch for r in records]
        for col, values, what in (
            (1, [100 * r.test_accuracy for r in records], "test accuracy %"),
            (2, np.where(off, np.nan, train_losses), "training loss"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=epochs, y=_finite_or_none(values), name=label, legendgroup=label,
                    showlegend=col == 1, mode="lines+markers", line={"color": color},
                    cliponaxis=False,  # the last epoch's marker sat half outside the frame
                    hovertemplate=f"{label}<br>epoch %{{x}}: {what} %{{y:.4g}}<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
    fig.update_xaxes(title_text="epoch", tick0=0,
                     dtick=max(1, math.ceil(max((r.epoch for rs in runs.values() for r in rs),
                                                default=1) / 10)))  # fmt: skip
    fig.update_yaxes(range=[0, 100], row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2, **loss_axis)
    if off_notes:  # under the panel's title: inside the frame it crossed the lines
        title = fig.layout.annotations[1]
        title.text += "<br><sup>▲ off the scale, up to " + ", ".join(off_notes) + "</sup>"
    fig.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 60 if off_notes else 40, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
    )
    return fig


def confidence_percent(p: float) -> str:
    """Return a softmax probability as a percentage to one decimal, never rounded to certainty
    or to nothing: 0.99996 is ">99.9%" (a wrong answer shown as "100%" looked certain), 0.00004
    "<0.1%". A softmax is never exactly 1 or 0; float32 saturating there says so too."""
    p = float(p)
    if p >= 0.9995:
        return ">99.9%"
    if p < 0.0005:
        return "<0.1%"
    return f"{p:.1%}"


def plot_confusion_matrix(
    counts: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    extra_columns: Sequence[str] = (),
) -> go.Figure:
    """Return a confusion matrix as a heatmap: rows the true class (first at the top), columns
    the predicted class, each cell its count of images written in it.

    counts: (K, K + E) ints, row = true class, column = predicted (``vizlib.train
    .confusion_matrix``); the first K columns are the rows' classes in the same order, the E
    ``extra_columns`` answers outside them (a 1000-class model's "other class").
    The diagonal (right) is coloured in blues and the mistakes in oranges, each on its own scale,
    so that a single wrong image stands out beside 45 right ones; empty cells are see-through
    and unlabelled, except a diagonal 0 (a class with images, none of them answered right),
    written in the theme's text colour. Each row's accuracy (its diagonal count over its
    images, %) is written in the right margin, and the hover says what share of the true class
    a cell holds.
    """
    counts = np.asarray(counts)
    k = counts.shape[0]
    if counts.ndim != 2 or counts.shape != (k, k + len(extra_columns)):
        shape = f"(K, K + {len(extra_columns)})" if extra_columns else "a square (K, K) matrix"
        raise ValueError(f"counts must be {shape}, got {counts.shape}")
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    if len(names) != k:
        raise ValueError(f"{k} classes need {k} class names, got {len(names)}")
    columns = [*names, *map(str, extra_columns)]
    totals = counts.sum(axis=1)  # (K,) images of each true class
    diagonal = np.eye(k, len(columns), dtype=bool)
    hover = [
        [
            f"true {names[i]}, predicted {columns[j]}: {counts[i, j]} image(s)"
            + (f"<br>{counts[i, j] / totals[i]:.1%} of the {totals[i]} images of {names[i]}"
               if totals[i] else "")
            for j in range(len(columns))
        ]
        for i in range(k)
    ]  # fmt: skip
    fig = go.Figure()
    for name, mask, scale in (
        ("right", diagonal, CORRECT_SCALE),
        ("wrong", ~diagonal, MISTAKE_SCALE),
    ):
        z = np.where(mask, counts, np.nan)  # (K, K + E) the other trace's cells are gaps
        shown = counts[mask]
        fig.add_trace(
            go.Heatmap(
                z=z, x=columns, y=names, name=name, colorscale=scale, zmin=0,
                zmax=max(1, int(shown.max()) if shown.size else 1), showscale=False, xgap=1,
                ygap=1, text=np.where(mask & (counts > 0), counts.astype(str), ""),
                texttemplate="%{text}", hovertext=hover,
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )  # fmt: skip
    accuracy = np.divide(
        np.diag(counts), totals, out=np.full(k, np.nan), where=totals > 0
    )  # (K,) per true class
    # in the x axis' units, just right of the last column: the matrix is kept square and
    # centred, so the figure's right edge can lie far from it
    beside = {
        "x": len(columns) - 0.5,
        "xref": "x",
        "xanchor": "left",
        "xshift": 6,
        "showarrow": False,
    }
    for i in np.flatnonzero((np.diag(counts) == 0) & (totals > 0)):
        # none right of a class with images: its 0 in the theme's text colour, which a heatmap's
        # own text (contrasted with the see-through cell, as if black) would not be
        fig.add_annotation(text="<b>0</b>", x=columns[i], y=names[i], xref="x", yref="y",
                           showarrow=False)  # fmt: skip
    for i in range(k):
        text = f"{accuracy[i]:.0%}" if np.isfinite(accuracy[i]) else "–"
        # beside the see-through plot area: the theme's own text colour
        fig.add_annotation(text=text, y=names[i], yref="y", **beside)
    fig.add_annotation(text="<b>accuracy</b>", y=1.0, yref="paper", yanchor="bottom", **beside)
    fig.update_xaxes(
        title_text="predicted class",
        type="category",
        side="top",
        constrain="domain",
        showgrid=False,
    )
    fig.update_yaxes(title_text="true class", type="category", autorange="reversed",
                     scaleanchor="x", constrain="domain", showgrid=False)  # fmt: skip
    fig.update_layout(
        height=min(460, 160 + 30 * k),  # square cells: a 3-class matrix in 460 px left gaps
        margin={"l": 10, "r": 80, "t": 60, "b": 10},
        plot_bgcolor="rgba(0,0,0,0)",  # the gaps between cells and the empty cells: the page's
        showlegend=False,
    )
    return fig


def commonest_mistakes(
    counts: np.ndarray, names: Sequence[str], *, noun: str = "mistake", most: int = 4
) -> str:
    """Return a sentence naming the off-diagonal cells of a confusion matrix that hold its
    largest count ("The commonest mistake: 1 answered as 8 (3 times)."), every tied cell up to
    ``most`` of them ("The commonest mistakes, 3 times each: 1 answered as 8; 3 answered as 8;
    4 answered as 6."), where one named cell read as if it stood alone; "" with no mistake.

    counts (K, K + E) as ``plot_confusion_matrix`` takes it; only its first K columns, the
    classes ``names`` (K,), are read: an answer outside them names no class.
    """
    k = len(names)
    square = np.asarray(counts)[:, :k]
    off = square - np.diag(np.diag(square))  # (K, K) the mistakes only
    top = int(off.max()) if off.size else 0
    if top <= 0:
        return ""
    cells = np.argwhere(off == top)  # row by row: by true class, then answer
    pairs = [f"{names[t]} answered as {names[p]}" for t, p in cells[:most]]
    times = "once" if top == 1 else f"{top:,} times"
    if len(cells) == 1:
        return f"The commonest {noun}: {pairs[0]} ({times})."
    more = f"; and {len(cells) - most} more" if len(cells) > most else ""
    return f"The commonest {noun}s, {times} each: {'; '.join(pairs)}{more}."


def plot_misclassified(
    tiles: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    *,
    ids: Sequence[int],
    class_names: Sequence[str] | None = None,
    cols: int = 6,
    id_prefix: str = "test image",
) -> go.Figure:
    """Return a gallery of wrongly classified images, each captioned with its true class and
    the predicted one with its probability ("true 3," / "predicted 8" / "(71.4%)", never
    rounded to "(100%)": a wrong answer of 99.6% read as certain; ``confidence_percent``).

    tiles (M, 1 or 3, h, w) in [0, 1]; labels (M,) their true classes; probabilities (M, K) the
    model's softmax for each; ids (M,) their indices in the split, named in the hover after
    ``id_prefix`` ("test image 17") with the probability the model gave the true class.
    """
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels)
    if len(ids) != len(tiles) or len(labels) != len(tiles) or len(probabilities) != len(tiles):
        raise ValueError(f"{len(tiles)} tiles need as many labels, probabilities and ids")
    k = probabilities.shape[1] if probabilities.ndim == 2 else 0
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    predicted = probabilities.argmax(axis=1) if len(tiles) else np.zeros(0, int)  # (M,)
    captions, hover = [], []
    for i, (true, pred) in enumerate(zip(labels, predicted, strict=True)):
        p_pred, p_true = probabilities[i, pred], probabilities[i, true]
        # short lines: at 1024 px a column of six is 90 px, 11 characters at 12 px; a long
        # ImageNet name ("Greater Swiss Mountain dog") wraps rather than being cut to "Great…"
        captions.append(
            [
                *textwrap.wrap(f"true {names[true]},", _CAPTION_CHARS),
                *textwrap.wrap(f"predicted {names[pred]}", _CAPTION_CHARS),
                f"({confidence_percent(p_pred)})",
            ]
        )
        hover.append(
            f"{id_prefix} {ids[i]}<br>true {names[true]}, predicted {names[pred]} "
            f"({confidence_percent(p_pred)})<br>probability of {names[true]}: "
            f"{confidence_percent(p_true)}"
        )
    return plot_captioned_images(tiles, captions, hover=hover, cols=max(1, min(cols, len(tiles))))
