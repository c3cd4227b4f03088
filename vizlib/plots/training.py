"""Figures of a training run (``vizlib.train.training_epochs``): loss, accuracy, gradient norm
and learning rate as it trains, and several runs side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["plot_run_comparison", "plot_training_run"]

TRAIN_COLOR, TEST_COLOR = "#4c78a8", "#f58518"
RUN_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")


def _finite_or_none(values: Sequence[float]) -> list[float | None]:
    """NaN and infinite values become gaps (plotly draws no point for None)."""
    return [float(v) if np.isfinite(v) else None for v in values]


def plot_training_run(records: Sequence, *, epochs: int | None = None) -> go.Figure:
    """Return a 2 x 2 grid for one run: loss (each step, and each epoch's train and test means),
    accuracy (train and test after each epoch, %), the gradient's global L2 norm per step (log
    axis), and the learning rate per step.

    records: ``vizlib.train.EpochRecord`` of the epochs done so far; the x axes are in epochs
    (a step at epoch e + k / steps), fixed to ``epochs`` when given so a live run fills the
    frame instead of stretching it. Non-finite values (a diverged run) are gaps.
    """
    fig = make_subplots(
        rows=2,
        cols=2,
        shared_xaxes=True,
        vertical_spacing=0.12,
        horizontal_spacing=0.1,
        subplot_titles=(
            "loss (cross-entropy)",
            "accuracy (%)",
            "gradient norm (all parameters, L2)",
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
    fig.update_yaxes(type="log", dtick="D2", row=2, col=1)  # labels at 1, 2 and 5 only
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", exponentformat="power", row=2, col=2)
    fig.update_layout(
        height=560,
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0},
        hovermode="closest",
    )
    return fig


def plot_run_comparison(runs: Mapping[str, Sequence]) -> go.Figure:
    """Return two panels over epochs for several runs: the test accuracy (%) and the training
    loss (log axis), one colour per run (label -> its ``EpochRecord`` list)."""
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=("test accuracy (%)", "training loss (log axis)"),
    )
    for i, (label, records) in enumerate(runs.items()):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        epochs = [r.epoch for r in records]
        for col, values, what in (
            (1, [100 * r.test_accuracy for r in records], "test accuracy %"),
            (2, [r.train_loss for r in records], "training loss"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=epochs, y=_finite_or_none(values), name=label, legendgroup=label,
                    showlegend=col == 1, mode="lines+markers", line={"color": color},
                    hovertemplate=f"{label}<br>epoch %{{x}}: {what} %{{y:.4g}}<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(range=[0, 100], row=1, col=1)
    fig.update_yaxes(type="log", dtick="D2", row=1, col=2)
    fig.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
    )
    return fig
