"""Figures for the embeddings page: 2-D maps of several layers side by side in one WebGL figure."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["plot_embeddings", "subsample_for_drawing"]

_PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip


def subsample_for_drawing(n: int, max_points: int, *, seed: int = 0) -> np.ndarray:
    """Return sorted indices (M,) of at most ``max_points`` of ``n`` points, a seeded random subset."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def plot_embeddings(
    maps: dict[str, np.ndarray],
    labels: np.ndarray | None = None,
    *,
    class_names: list[str] | None = None,
    titles: dict[str, str] | None = None,
    max_points: int = 20000,
    axis_label: str = "t-SNE",
    marker_size: int = 4,
) -> go.Figure:
    """Return one figure with a ``go.Scattergl`` subplot per layer, points coloured by label.

    ``maps`` {layer: coordinates (N, 2)} (same N and point order for all layers), ``labels``
    (N,) ints or None. Each point's ``customdata`` is its index in the data set, so a click
    (``st.plotly_chart(on_select=...)``) can show the image. One figure keeps the page at a
    single WebGL context. Above ``max_points`` a seeded random subset is drawn.
    """
    if not maps:
        raise ValueError("Give at least one map to plot.")
    names = list(maps)
    n = len(next(iter(maps.values())))
    for name, coords in maps.items():
        if np.asarray(coords).shape != (n, 2):
            raise ValueError(f"map {name!r} must be (N, 2) with N = {n}, got {np.shape(coords)}.")
    keep = subsample_for_drawing(n, max_points)
    lab = np.zeros(n, dtype=int) if labels is None else np.asarray(labels).astype(int)
    classes = np.unique(lab[keep])
    cols = len(names)
    fig = make_subplots(
        rows=1,
        cols=cols,
        subplot_titles=[(titles or {}).get(name, name) for name in names],
        horizontal_spacing=0.04,
    )
    for c, name in enumerate(names, start=1):
        coords = np.asarray(maps[name], dtype=np.float32)
        for cls in classes:
            idx = keep[lab[keep] == cls]
            label_text = (
                "all points"
                if labels is None
                else (class_names[cls] if class_names and 0 <= cls < len(class_names) else str(cls))
            )
            fig.add_trace(
                go.Scattergl(
                    x=coords[idx, 0],
                    y=coords[idx, 1],
                    mode="markers",
                    marker={"size": marker_size, "color": _PALETTE[int(cls) % len(_PALETTE)]},
                    name=label_text,
                    legendgroup=label_text,
                    showlegend=c == 1,
                    customdata=idx,
                    hovertemplate=(
                        f"index %{{customdata}}<br>label {label_text}<br>"
                        f"({axis_label} 1, 2) = (%{{x:.2f}}, %{{y:.2f}})<extra>{name}</extra>"
                    ),
                ),
                row=1,
                col=c,
            )
        fig.update_xaxes(title_text=f"{axis_label} 1", row=1, col=c)
        fig.update_yaxes(title_text=f"{axis_label} 2" if c == 1 else None, row=1, col=c)
    fig.update_layout(
        height=430,
        margin={"l": 40, "r": 10, "t": 40, "b": 40},
        legend={"title": {"text": "label"}, "itemsizing": "constant"},
        clickmode="event+select",
        dragmode="pan",
    )
    return fig
