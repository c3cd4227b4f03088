"""Figures for the Layer Similarity page: CKA of every layer against every layer, and each
layer's best match in the other model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from vizlib.summary import shorten_layer_names

from ._colors import rgb_colorscale

__all__ = ["plot_cka_matrix", "plot_cka_matches"]

MAX_TICK_LABELS = 24  # more layers than this: numbered ticks, names on hover
TICK_CHARS = 14  # vit_b_16's blocks read "…layer_11", not "…encoder_layer_11" (crowded at 1024 px)


def _ticks(layers: Sequence[str]) -> tuple[dict, str]:
    """Return an index axis's ticks (the layers' short names, or every few indices) and what the
    names leave out ("…" stands for it)."""
    if len(layers) > MAX_TICK_LABELS:
        step = int(np.ceil(len(layers) / 12))
        values = list(range(0, len(layers), step))
        return {"tickvals": values, "ticktext": [str(v) for v in values]}, ""
    shown, prefix = shorten_layer_names(layers, max_chars=TICK_CHARS)
    return {"tickvals": list(range(len(layers))), "ticktext": shown, "tickangle": -45}, prefix


def _axis_title(name: str, layers: Sequence[str], prefix: str) -> str:
    numbered = len(layers) > MAX_TICK_LABELS
    title = f"{name}: layer {'index ' if numbered else ''}(input first)"
    return title + (f" · … = {prefix}" if prefix else "")


def plot_cka_matrix(
    matrix: np.ndarray,
    layers_a: Sequence[str],
    layers_b: Sequence[str],
    *,
    name_a: str,
    name_b: str,
    images: int,
    title: str | None = None,
) -> go.Figure:
    """Return the CKA of each layer of model A (rows, y, from the bottom) against each layer of
    model B (columns, x), as in Kornblith et al. (2019) and Raghu et al. (2021).

    matrix: (len(layers_a), len(layers_b)) in [0, 1], NaN (left blank) for a layer constant over
    the ``images`` images it was measured on. Over MAX_TICK_LABELS layers the axes are numbered
    and the names are on hover.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (len(layers_a), len(layers_b)):
        raise ValueError(f"matrix is {matrix.shape}, layers {len(layers_a)} x {len(layers_b)}")
    x_ticks, x_prefix = _ticks(layers_b)
    y_ticks, y_prefix = _ticks(layers_a)
    names = np.empty(matrix.shape, dtype=object)
    for i, a in enumerate(layers_a):
        for j, b in enumerate(layers_b):
            names[i, j] = f"{name_a}: {a} ({i})<br>{name_b}: {b} ({j})"
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            customdata=names,
            zmin=0,
            zmax=1,
            colorscale=rgb_colorscale("Magma"),
            colorbar={"title": {"text": "CKA", "side": "right"}},
            hovertemplate="%{customdata}<br>CKA %{z:.3f}<extra></extra>",
            xgap=1 if len(layers_b) <= 40 else 0,
            ygap=1 if len(layers_a) <= 40 else 0,
        )
    )
    fig.update_layout(
        title=title or f"Linear CKA of every pair of layers ({images:,} images)",
        xaxis={"title": _axis_title(name_b, layers_b, x_prefix), **x_ticks},
        # no fixed aspect: square cells shrank the matrix to a stamp in a phone's width while
        # the colour bar kept its height; the cells fill the figure instead
        yaxis={"title": _axis_title(name_a, layers_a, y_prefix), **y_ticks, "tickangle": 0},
        height=620,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return fig


def plot_cka_matches(
    matrix: np.ndarray,
    layers_a: Sequence[str],
    layers_b: Sequence[str],
    *,
    name_a: str,
    name_b: str,
    same_layers: bool = False,
) -> go.Figure:
    """Return, for each layer of A, its CKA with the most similar layer of B (the best match's
    name on hover; its index on a second axis), and with ``same_layers`` (B is A's architecture,
    e.g. before training) its CKA with the same layer of B too.

    matrix: (len(layers_a), len(layers_b)) CKA; rows that are all NaN are left out of the lines.
    """
    matrix = np.asarray(matrix, dtype=float)
    x = np.arange(len(layers_a))
    valid = ~np.isnan(matrix).all(axis=1)
    best = np.full(len(layers_a), -1)
    best[valid] = np.nanargmax(matrix[valid], axis=1)
    best_value = np.where(valid, matrix[x, np.maximum(best, 0)], np.nan)
    fig = go.Figure()
    if same_layers:
        if len(layers_a) != len(layers_b):
            raise ValueError("same_layers needs the same layers on both sides")
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.diag(matrix),
                mode="lines+markers",
                name=f"the same layer of {name_b}",
                customdata=list(layers_a),
                line={"color": "#e45756"},
                hovertemplate="%{customdata} (%{x})<br>CKA %{y:.3f}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=best_value,
            mode="lines+markers",
            name=f"its best match in {name_b}",
            customdata=np.stack(
                [
                    np.asarray(layers_a, dtype=object),
                    np.asarray([layers_b[b] if b >= 0 else "" for b in best], dtype=object),
                    best,
                ],
                axis=1,
            ),
            line={"color": "#4c78a8"},
            hovertemplate="%{customdata[0]} (%{x})<br>best match %{customdata[1]} "
            "(%{customdata[2]})<br>CKA %{y:.3f}<extra></extra>",
        )
    )
    ticks, prefix = _ticks(layers_a)
    fig.update_layout(
        title=f"Each layer's closest match in {name_b}",
        xaxis={"title": _axis_title(name_a, layers_a, prefix), **ticks},
        yaxis={"title": "CKA", "range": [0, 1.05]},
        height=380,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "y": -0.35},
    )
    return fig
