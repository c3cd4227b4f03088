"""Figures of activation and gradient statistics (``vizlib.layerstats``): the signal's spread,
its zeros and the gradient's size through depth; histograms of chosen layers' outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._axes import log_ticks

__all__ = ["plot_activation_histograms", "plot_layer_statistics"]

SERIES_COLORS = ("#4c78a8", "#f58518")  # the model, then the one it is compared with
HISTOGRAM_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d")


def _shape(shape: Sequence[int]) -> str:
    return "×".join(str(int(s)) for s in shape)


def plot_layer_statistics(
    series: Mapping[str, Sequence[dict[str, Any]]], *, gradients: bool = True
) -> go.Figure:
    """Return stacked panels over the layers in forward order: the outputs' standard deviation
    (log axis), their share of exact zeros (%), and the gradient RMS (log axis) when
    ``gradients``.

    series: label -> rows of ``vizlib.layerstats.layer_statistics`` (e.g. "trained" and "at
    initialisation", same architecture); x is the row's position (1 = first layer). Hover: the
    layer's name, type, output shape and value; the zeros panel adds the channels that are 0
    for every image. Values of 0 have no place on a log axis and are left out of those panels.
    """
    panels = [
        ("std", "output standard deviation", "log"),
        ("zero_fraction", "outputs exactly 0 (%)", "linear"),
    ]
    if gradients:
        panels.append(("grad_rms", "gradient RMS (loss w.r.t. output)", "log"))
    fig = make_subplots(
        rows=len(panels),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=[title for _, title, _ in panels],
    )
    for (label, rows), color in zip(series.items(), SERIES_COLORS, strict=False):
        x = np.arange(1, len(rows) + 1)
        names = [
            f"{r['layer']} ({r['type']}, {_shape(r['output_shape'])})<br>{label}" for r in rows
        ]
        for p, (key, _, axis) in enumerate(panels, start=1):
            values = np.array([r[key] for r in rows], dtype=float)
            if key == "zero_fraction":
                values = 100 * values
                extra = [
                    f"<br>{r['dead_channels']:,} of {r['channels']:,} channels 0 for every image"
                    if r["channels"]
                    else ""
                    for r in rows
                ]
                template = "%{text}<br>%{y:.3g}% exactly 0%{customdata}<extra></extra>"
            else:
                extra = [""] * len(rows)
                what = "std" if key == "std" else "gradient RMS"
                template = f"%{{text}}<br>{what} %{{y:.3g}}<extra></extra>"
            if axis == "log":
                values = np.where(values > 0, values, np.nan)  # no 0 (or NaN) on a log axis
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=values,
                    text=names,
                    customdata=extra,
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    showlegend=p == 1,
                    line={"color": color},
                    marker={"size": 5},
                    hovertemplate=template,
                    connectgaps=False,
                ),
                row=p,
                col=1,
            )
    for p, (key, _, axis) in enumerate(panels, start=1):
        ticks = {}
        if axis == "log":  # labels at 1, 2 and 5 of each decade, written out in full
            ticks = log_ticks(np.array([r[key] for rows in series.values() for r in rows], float))
        fig.update_yaxes(type=axis, row=p, col=1, **ticks)
    fig.update_yaxes(rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="layer (in forward order)", row=len(panels), col=1)
    fig.update_layout(
        height=230 * len(panels) + 90,
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.04, "x": 0},
        hovermode="closest",
    )
    return fig


def plot_activation_histograms(
    samples: Mapping[str, np.ndarray],
    *,
    bins: int = 80,
    log_y: bool = False,
    drop_zeros: bool = True,
    clip_percent: float = 0.5,
    title: str = "",
    zero_shares: Mapping[str, float] | None = None,
) -> go.Figure:
    """Return one histogram line per layer (its share of values per bin, %), on one x range.

    samples: layer -> 1-D values (``LayerStatistics.samples``). With ``drop_zeros`` the exact
    zeros are left out (a ReLU's outputs are half zeros, a spike that flattens the rest) and the
    legend says what share they were: ``zero_shares`` (layer -> the share over all of the
    layer's values, ``LayerStatistics.rows``' zero_fraction) where given, else the sample's own,
    which can differ from it by a point. The range runs from the ``clip_percent`` to the
    (100 - ``clip_percent``) percentile of all values together, so one extreme value does not
    squeeze the rest into a single bin; values outside it are counted in the end bins (the hover
    says how many). ``log_y`` plots the shares on a log axis.
    """
    finite = {name: np.asarray(v, dtype=np.float64) for name, v in samples.items()}
    finite = {name: v[np.isfinite(v)] for name, v in finite.items()}
    kept = {name: v[v != 0] if drop_zeros else v for name, v in finite.items()}
    pooled = np.concatenate([v for v in kept.values() if v.size] or [np.zeros(1)])
    low, high = np.percentile(pooled, [clip_percent, 100 - clip_percent])
    if not high > low:
        low, high = float(pooled.min()) - 0.5, float(pooled.max()) + 0.5
    edges = np.linspace(low, high, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    width = (high - low) / bins
    fig = go.Figure()
    shares = []  # every curve's, for the log axis' ticks
    for i, (name, values) in enumerate(kept.items()):
        if not values.size:
            continue
        counts, _ = np.histogram(np.clip(values, low, high), bins=edges)
        share = 100 * counts / values.size
        shares.append(share)
        outside = int(((values < low) | (values > high)).sum())
        if zero_shares is not None and name in zero_shares:
            zeros = float(zero_shares[name])
        else:
            zeros = 1 - values.size / finite[name].size if finite[name].size else 0.0
        fig.add_trace(
            go.Scatter(
                x=centres,
                y=np.where(share > 0, share, np.nan) if log_y else share,
                mode="lines",
                line={"shape": "hvh", "color": HISTOGRAM_COLORS[i % len(HISTOGRAM_COLORS)]},
                name=name + (f" ({zeros:.0%} zeros left out)" if drop_zeros and zeros else ""),
                hovertemplate=f"{name}<br>%{{x:.3g}} (a bin {width:.3g} wide): %{{y:.3g}}% of "
                f"{values.size:,} values"
                + (f"<br>({outside:,} outside the range, in the end bins)" if outside else "")
                + "<extra></extra>",
            )
        )
    fig.update_layout(
        title=title or None,
        height=380,
        margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 40},
        # short: half a 1024-pixel page (274 px) cut "output value (80 bins of 0.13, zeros left
        # out)" at "left o"; the bin width is in the hover
        xaxis_title="output value" + (" (zeros left out)" if drop_zeros else ""),
        # log_ticks: plotly's own wrote 0.5 as "5" below 1 ("10, 5, 2, 1, 5, 2, 0.1")
        yaxis={"title": "share of values (%)", "type": "log" if log_y else "linear"}
        | (log_ticks(np.concatenate(shares)) if log_y and shares else {}),
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
    )
    return fig
