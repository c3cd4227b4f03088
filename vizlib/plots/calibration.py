"""Figures for the Predictions & Calibration page: the reliability diagram beside the histogram of
confidences (Guo et al., 2017, Figure 1), and accuracy against the share of images answered."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["plot_reliability", "plot_selective_accuracy"]

CURVE_COLORS = ("#1f77b4", "#d62728")  # the model as it answers; temperature-scaled
DIAGONAL = "#7f7f7f"
# a mid grey, readable on the light theme's white and the dark theme's near-black (black was
# invisible there); dash-dotted, unlike the diagonal's dashes in the legend
ACCURACY_LINE = "#8c8c8c"


def _vertical(x: float, top: float, name: str, color: str, dash: str) -> go.Scatter:
    """A vertical line from 0 to ``top``, named in the legend (an annotation on the line
    collided with the bars and with the other lines near 100%)."""
    return go.Scatter(
        x=[x, x], y=[0, top], mode="lines", name=name, line={"color": color, "dash": dash},
        hovertemplate=f"{name}<extra></extra>",
    )  # fmt: skip


def plot_reliability(curves: Mapping[str, object], *, accuracy: float) -> go.Figure:
    """Return the reliability diagram (left) and the histogram of confidences (right).

    curves: {label: ``vizlib.calibration.Reliability``}, one or two (before and after scaling),
    all binned alike. Left: each non-empty bin's accuracy at its mean confidence, the marker's
    area proportional to its images, against the diagonal of perfect calibration; points below
    it are answers surer than they are right. Right: the share of images in each bin, with the
    accuracy (the same for every curve: scaling changes no answer) and each curve's mean
    confidence as vertical lines. ``accuracy`` is the share of right answers, in [0, 1].
    """
    if not 1 <= len(curves) <= len(CURVE_COLORS):
        raise ValueError(f"one or two curves, got {len(curves)}")
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=("Reliability diagram", "Share of the answers"),
    )
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"color": DIAGONAL, "dash": "dash"},
            name="perfect calibration", hoverinfo="skip",
        ),
        row=1, col=1,
    )  # fmt: skip
    top = max(float(r.counts.max()) / max(int(r.counts.sum()), 1) for r in curves.values())
    for (label, r), color in zip(curves.items(), CURVE_COLORS, strict=False):
        full = r.counts > 0
        total = max(int(r.counts.sum()), 1)
        share = r.counts / total
        hover = [
            f"confidence {lo:.0%}–{hi:.0%}: {n:,} image{'s' if n != 1 else ''}"
            f"<br>mean confidence {c:.1%}, accuracy {a:.1%}"
            f"<br>{'overconfident' if a < c else 'underconfident' if a > c else 'calibrated'}"
            f" by {abs(a - c):.1%}"
            for lo, hi, n, c, a in zip(
                r.edges[:-1][full], r.edges[1:][full], r.counts[full], r.confidence[full],
                r.accuracy[full], strict=True,
            )
        ]  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=r.confidence[full], y=r.accuracy[full], mode="lines+markers", name=label,
                legendgroup=label, line={"color": color}, cliponaxis=False,
                marker={"color": color, "size": 6 + 24 * np.sqrt(share[full]),
                        "line": {"color": "white", "width": 1}},
                hovertext=hover, hovertemplate="%{hovertext}<extra>" + label + "</extra>",
            ),
            row=1, col=1,
        )  # fmt: skip
        centres = 0.5 * (r.edges[:-1] + r.edges[1:])
        fig.add_trace(
            go.Bar(
                x=centres, y=share, width=np.diff(r.edges), name=label, legendgroup=label,
                showlegend=False, marker={"color": color, "opacity": 0.55},
                customdata=np.stack([r.edges[:-1], r.edges[1:], r.counts], axis=1),
                hovertemplate="confidence %{customdata[0]:.0%}–%{customdata[1]:.0%}: "
                "%{customdata[2]:,} images (%{y:.1%})<extra>" + label + "</extra>",
            ),
            row=1, col=2,
        )  # fmt: skip
        mean_confidence = float((r.counts * np.nan_to_num(r.confidence)).sum() / total)
        fig.add_trace(
            _vertical(mean_confidence, top, f"mean confidence {mean_confidence:.1%}", color, "dot"),
            row=1, col=2,
        )  # fmt: skip
    fig.add_trace(
        _vertical(accuracy, top, f"accuracy {accuracy:.1%}", ACCURACY_LINE, "dashdot"),
        row=1, col=2,
    )  # fmt: skip
    fig.add_annotation(
        text="overconfident ↘", x=0.97, y=0.05, xanchor="right", showarrow=False,
        font={"color": DIAGONAL}, row=1, col=1,
    )  # fmt: skip
    fig.add_annotation(
        text="↖ underconfident", x=0.03, y=0.95, xanchor="left", showarrow=False,
        font={"color": DIAGONAL}, row=1, col=1,
    )  # fmt: skip
    # short axis titles: at a phone's width the two panels' titles ran into each other
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title_text="confidence")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text="accuracy", row=1, col=1)
    # the shares' ticks on the right: on the left, the large dot of a bin at 100% confidence
    # and accuracy (cliponaxis off) covered the "100%" tick
    fig.update_yaxes(tickformat=".0%", side="right", row=1, col=2)
    fig.update_layout(
        height=420,
        barmode="overlay",
        bargap=0,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "yanchor": "top", "y": -0.24, "x": 0},
    )
    return fig


def _label_side(
    coverage: np.ndarray, accuracy: np.ndarray, overall: float, *, above: bool, band: float
) -> str:
    """Return "right" or "left": the end of the line of the overall accuracy where the curve
    less often passes through its label, which spans about a quarter of the width and ``band``
    (accuracy units) above or below the line. Answering every image the curve ends on the line,
    coming down to it from above: a label above the line on the right was crossed."""
    coverage, accuracy = np.asarray(coverage, float), np.asarray(accuracy, float)
    tolerance = 1e-9  # the last point lies on the line, give or take the sums' rounding
    if above:
        inside = (accuracy > overall + tolerance) & (accuracy <= overall + band)
    else:
        inside = (accuracy < overall - tolerance) & (accuracy >= overall - band)
    left = int(np.sum(inside & (coverage <= 0.25)))
    right = int(np.sum(inside & (coverage >= 0.75)))
    return "left" if left < right else "right"


def plot_selective_accuracy(
    coverage: np.ndarray, accuracy: np.ndarray, threshold: np.ndarray, *, overall: float
) -> go.Figure:
    """Return the accuracy of the answers kept against the share kept, when the model answers
    only above a confidence threshold (the least sure first to go): ``vizlib.calibration
    .coverage_curve``'s arrays (N,), with the accuracy over every image, ``overall``, dashed."""
    hover = [
        f"answer the {c:.1%} most confident (confidence ≥ {t:.2%}): {a:.2%} right"
        for c, a, t in zip(coverage, accuracy, threshold, strict=True)
    ]
    fig = go.Figure(
        go.Scatter(
            x=coverage, y=accuracy, mode="lines", line={"color": CURVE_COLORS[0]},
            name="answered", hovertext=hover, hovertemplate="%{hovertext}<extra></extra>",
        )
    )  # fmt: skip
    low = float(np.min(accuracy)) if len(accuracy) else 0.0
    # The label goes under the line: the curve ends on it coming down from above, and crossed
    # a label above it. The axis reaches low enough below the line for the label, about 18 of
    # the plot area's 240 px (8% of the range; the x ticks ran into a label with less room);
    # bottom = overall - 1.5 * 0.08 * (1.01 - bottom), solved for bottom.
    room = (overall - 0.12 * 1.01) / 0.88
    bottom = max(0.0, min(low - 0.05, room))
    band = 0.08 * (1.01 - bottom)  # the label's height in accuracy
    above = room < 0  # a line near 0% leaves no room under it
    side = _label_side(coverage, accuracy, overall, above=above, band=band)
    fig.add_hline(
        y=overall, line={"color": DIAGONAL, "dash": "dash"},
        annotation_text=f"every image: {overall:.1%}",
        annotation_position=f"{'top' if above else 'bottom'} {side}",
    )  # fmt: skip
    fig.update_xaxes(
        range=[0, 1], tickformat=".0%", title_text="images answered (most confident first)"
    )
    fig.update_yaxes(range=[bottom, 1.01], tickformat=".0%", title_text="accuracy of the answers")
    # room on the right for half of the last tick label: at 10 px plotly dropped "100%"
    fig.update_layout(height=320, margin={"l": 10, "r": 24, "t": 20, "b": 10}, showlegend=False)
    return fig
