"""Figures for attributions: heatmaps overlaid on the input, and the top predictions."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from itertools import pairwise

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from ._colors import rgb_colorscale
from .training import confidence_percent

__all__ = [
    "SIMILARITY_TITLES",
    "plot_attribution_colorbar",
    "plot_attribution_overlay",
    "plot_randomization_maps",
    "plot_randomization_similarity",
    "plot_top_predictions",
    "stage_labels",
]


def _colour_range(signed: bool, top: float) -> dict:
    """The colour scale and range of an overlay whose largest magnitude is ``top``."""
    top = float(top) if top > 0 else 1.0
    return dict(
        colorscale=rgb_colorscale("RdBu_r" if signed else "Inferno"),
        cmin=-top if signed else 0.0,
        cmax=top,
    )


def _colorbar(title: str) -> dict:
    """A horizontal colour bar under the plot area: beside a narrow image it would squeeze it."""
    return dict(
        title=dict(text=title, side="top"),
        orientation="h",
        thickness=10,
        y=-0.02,
        yanchor="top",
        len=0.9,
    )


# Margins of an overlay (pixels): the title above, the colour bar below. Plotly grows a bottom
# margin under 75 px to fit the bar's title and ticks, which would shrink the image's height.
# The top margin holds the band of plotly's mode bar (26 px high, at 2 px from the top, shown
# while the mouse is over the figure) and, below it, the title: on a narrow figure the mode bar
# spans most of the width and covered a title drawn beside it.
_MODEBAR, _TITLE = 28, 26  # the mode bar's band; the title's line (16 px font) and its gap
_TOP, _SIDE, _BAR, _NO_BAR = _MODEBAR + _TITLE, 5, 76, 8
# Mode bar buttons an overlay does without: zoom in/out and autoscale repeat box zoom and reset
# on a fixed image. Download, zoom, pan and reset stay (and Streamlit's fullscreen button).
_NO_BUTTONS = ["zoomIn2d", "zoomOut2d", "autoScale2d"]


# A heatmap that is constant on blocks goes as one cell per block when the blocks average at
# least this many pixels: a block's hover text (its pixel ranges, about 30 bytes in the JSON)
# then costs less than half of what its pixels' float32 values would (5.3 bytes each).
_BLOCK_PIXELS = 16


def _png_data_uri(rgb: np.ndarray) -> str:
    """Return the image (H, W, 3) in [0, 1] as a PNG data URI of its 8-bit pixels, one channel
    when the three are equal there."""
    pixels = (rgb * 255).round().astype(np.uint8)  # (H, W, 3)
    if (pixels == pixels[..., :1]).all():
        pixels = pixels[..., 0]  # grey: a third of the bytes to compress
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _blocks(heat: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Return the row and column edges (R + 1,), (C + 1,) of the coarsest grid of blocks on
    which ``heat`` (H, W) is constant (Occlusion's map is, between window edges), first edge 0
    and last H or W; None when the blocks average fewer than ``_BLOCK_PIXELS`` pixels.

    A block's rows are equal (no row differs from the next inside it) and so are its columns,
    so every pixel of it holds the same value, exactly: nothing is averaged or rounded.
    """
    rows = np.flatnonzero((heat[1:] != heat[:-1]).any(axis=1)) + 1
    cols = np.flatnonzero((heat[:, 1:] != heat[:, :-1]).any(axis=0)) + 1
    if (len(rows) + 1) * (len(cols) + 1) * _BLOCK_PIXELS > heat.size:
        return None
    return np.r_[0, rows, heat.shape[0]], np.r_[0, cols, heat.shape[1]]


def _span(start: int, stop: int) -> str:
    """Pixels ``start`` to ``stop - 1`` as hover text: "32–47", or "5" for one pixel."""
    return f"{start}" if stop - start == 1 else f"{start}–{stop - 1}"


def plot_attribution_overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    signed: bool = False,
    opacity: float = 0.6,
    zmax: float | None = None,
    title: str = "",
    colorbar_title: str = "attribution",
    showscale: bool = True,
    width: int | None = None,
    height: int = 380,
) -> go.Figure:
    """Return the heatmap (H, W) drawn with ``opacity`` over the image (H, W) grey or (H, W, 3), in [0, 1].

    ``signed`` uses a diverging red/blue scale centred on 0, else a sequential one from 0.
    ``zmax`` fixes the top of the colour scale (to share one scale between figures); by default
    it is this heatmap's own maximum magnitude. ``showscale=False`` leaves the colour bar out,
    for figures that share one (``plot_attribution_colorbar`` with the same ``zmax``).
    ``width`` (pixels) fixes the figure's width and makes its height fit the image exactly, with
    no blank band above or beside it; without it the figure is ``height`` pixels high.

    The image travels as a PNG. A heatmap constant on blocks of pixels (Occlusion's, between
    window edges) travels as one cell per block, each hovered with its pixel ranges
    ("x 32–47, y 48–63") where other maps name one pixel; both are drawn the same.
    """
    img = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    heat = np.asarray(heatmap, dtype=np.float32)  # half the bytes of float64; hover shows 4 digits
    if heat.shape != img.shape[:2]:
        raise ValueError(f"heatmap {heat.shape} and image {img.shape[:2]} differ in size")
    scale = _colour_range(signed, float(zmax) if zmax is not None else float(np.abs(heat).max()))
    bottom = _BAR if showscale else _NO_BAR
    if width is not None:
        box = width - 2 * _SIDE  # the image's width in pixels; its height keeps the aspect ratio
        height = _TOP + round(box * heat.shape[0] / heat.shape[1]) + bottom
    name = f"{title}<br>" if title else ""
    # The image as a PNG: its pixels as a z-array were 4/3 byte per channel value in the JSON
    # (200 kB for 224 x 224 RGB, in every tile); as a PNG data URI, 59 kB for the camera sample.
    # Nothing hovers over it, and plotly draws both unsmoothed, pixel for pixel.
    fig = go.Figure(go.Image(source=_png_data_uri(img), hoverinfo="skip"))
    hover = "attribution %{z:.4g}<extra></extra>"
    blocks = _blocks(heat)
    if blocks is None:
        cells = dict(z=heat, hovertemplate=f"{name}x %{{x}}, y %{{y}}<br>{hover}")
    else:
        rows, cols = blocks
        cells = dict(
            z=heat[rows[:-1]][:, cols[:-1]],  # (R, C) the value of each block
            x=cols - 0.5,  # block edges: pixel i spans i - 0.5 to i + 0.5, as in the image
            y=rows - 0.5,
            text=[
                [f"x {_span(c0, c1)}, y {_span(r0, r1)}" for c0, c1 in pairwise(cols)]
                for r0, r1 in pairwise(rows)
            ],
            hovertemplate=f"{name}%{{text}}<br>{hover}",
        )
    fig.add_trace(
        go.Heatmap(
            **cells,
            opacity=float(opacity),
            colorscale=scale["colorscale"],
            zmin=scale["cmin"],
            zmax=scale["cmax"],
            showscale=showscale,
            colorbar=_colorbar(colorbar_title),
        )
    )
    fig.update_layout(
        # just above the image, under the mode bar's band at the top of the figure
        title=dict(text=title, yref="paper", y=1, yanchor="bottom", pad=dict(b=6)),
        width=width,
        height=height,
        margin=dict(l=_SIDE, r=_SIDE, t=_TOP, b=bottom),
        modebar=dict(remove=_NO_BUTTONS),
        xaxis=dict(visible=False, constrain="domain"),
        yaxis=dict(visible=False, scaleanchor="x", autorange="reversed", constrain="domain"),
    )
    return fig


def plot_attribution_colorbar(
    zmax: float, *, signed: bool = False, title: str = "attribution", width: int = 480
) -> go.Figure:
    """Return a figure that is only a colour bar: the one scale of overlays drawn with the same
    ``zmax`` and ``signed`` and ``showscale=False``; ``width`` in pixels."""
    scale = _colour_range(signed, zmax)
    bar = _colorbar(title) | dict(y=0.0, yanchor="bottom", len=1.0)
    fig = go.Figure(
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            marker=dict(**scale, color=[scale["cmin"]], showscale=True, colorbar=bar),
            hoverinfo="skip",
            showlegend=False,
        )
    )
    fig.update_layout(
        width=width,
        height=_BAR,
        margin=dict(l=15, r=15, t=0, b=0),
        xaxis=dict(visible=False),
        yaxis=dict(visible=False),
    )
    return fig


# Bars at least this long hold their label inside, at their end; shorter ones have it after.
_INSIDE_FROM = 0.75


def plot_top_predictions(
    labels: list[str], probabilities: list[float], *, title: str = ""
) -> go.Figure:
    """Return a horizontal bar chart of class probabilities (in [0, 1]), best at the top.

    Every bar is labelled: the labels are annotations, because plotly draws no text on a bar
    that is narrower than a pixel (a probability of 1e-9), and shrinks text inside a long bar.
    """
    probabilities = [float(p) for p in probabilities]
    fig = go.Figure(
        go.Bar(
            x=probabilities,
            y=list(labels),
            orientation="h",
            customdata=[confidence_percent(p) for p in probabilities],
            hovertemplate="%{y}: %{customdata} (%{x:.3g})<extra></extra>",
        )
    )
    for row, p in enumerate(probabilities):
        inside = p >= _INSIDE_FROM
        fig.add_annotation(
            x=p,
            y=row,  # the row's index: plotly reads a label such as "2" as row 2, not as the name
            text=confidence_percent(p),
            showarrow=False,
            xanchor="right" if inside else "left",
            xshift=-4 if inside else 4,
            font=dict(color="white") if inside else None,
        )
    fig.update_layout(
        title=title,
        xaxis=dict(title="softmax probability", range=[0, 1], dtick=0.2, tickformat=".0%"),
        yaxis=dict(
            autorange="reversed", type="category", categoryorder="array", categoryarray=labels
        ),
        height=60 + 32 * len(labels),
        margin=dict(l=10, r=20, t=40, b=10),  # r: room for the "100%" tick
    )
    return fig


RANDOMIZATION_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#72b7b2")
SIMILARITY_TITLES = {
    "spearman_abs": "Spearman rank correlation of |attribution|",
    "spearman": "Spearman rank correlation (signed)",
    "ssim": "SSIM of |attribution| (each map scaled to its maximum)",
}


def stage_labels(stages: Sequence[str]) -> list[str]:
    """The stages of the model randomisation test as the figures name them: "trained", then
    "1 · fc2", "2 · fc1": the stage's number (the grid of maps heads its columns with it alone)
    and the lowest layer random so far."""
    return [stage if i == 0 else f"{i} · {stage}" for i, stage in enumerate(stages)]


def plot_randomization_similarity(
    stages: Sequence[str],
    similarity: Mapping[str, Sequence[float]],
    *,
    metric: str = "spearman_abs",
    titles: Mapping[str, str] | None = None,
    independent: bool = False,
) -> go.Figure:
    """Return each method's similarity to its map of the trained network, stage by stage of
    the model randomisation test (Adebayo et al. 2018, Fig. 2): x the stage ("trained", 1, 2, ...;
    the layer the weights are random down to on hover); y ``metric`` in [-1, 1] (``SIMILARITY_TITLES``). A line that stays
    high while the network is destroyed marks a map that does not depend on the weights. With
    ``independent``, each stage made only its own layer random (the hover says so)."""
    titles = titles or {}
    labels = stage_labels(stages)
    ticks = ["trained", *(str(i) for i in range(1, len(stages)))]  # names on hover: too wide
    fig = go.Figure()
    for k, (method, values) in enumerate(similarity.items()):
        name = titles.get(method, method)
        fig.add_trace(
            go.Scatter(
                x=list(range(len(stages))),
                y=list(values),
                customdata=labels,
                mode="lines+markers",
                name=name,
                line={"color": RANDOMIZATION_COLORS[k % len(RANDOMIZATION_COLORS)]},
                hovertemplate=f"{name}<br>{'only' if independent else 'random down to'} "
                f"%{{customdata}}{' random' if independent else ''}<br>%{{y:.2f}}<extra></extra>",
            )
        )
    fig.add_hline(y=0, line_color="gray", line_width=1)
    fig.update_layout(
        title="Similarity to the trained network's map",
        xaxis={
            "title": "stage (its layer on hover)",
            "tickvals": list(range(len(stages))),
            "ticktext": ticks,
        },
        yaxis={"title": SIMILARITY_TITLES.get(metric, metric), "range": [-1.05, 1.05]},
        height=420,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "y": -0.3},
    )
    return fig


def plot_randomization_maps(
    stages: Sequence[str],
    heatmaps: Mapping[str, Sequence[np.ndarray]],
    *,
    titles: Mapping[str, str] | None = None,
    cell_px: int | None = None,
) -> go.Figure:
    """Return a grid of attribution maps: a row per method, a column per stage of the model
    randomisation test (trained first). Each map is shown as its magnitude scaled to its own
    maximum (the shapes matter here, not the sizes, which collapse with the logits); the
    signed values are on hover. ``cell_px``: a row's height (default: about a map's width in a
    620-pixel column)."""
    from plotly.subplots import make_subplots

    titles = titles or {}
    methods = list(heatmaps)
    columns = len(stages)
    # a row as tall as its square maps are wide in a page's column of about 620 px
    cell_px = cell_px or max(60, min(140, 620 // columns + 16))
    labels = stage_labels(stages)
    fig = make_subplots(
        rows=len(methods),
        cols=columns,
        column_titles=["trained", *(str(i) for i in range(1, columns))],  # names: too wide
        row_titles=[titles.get(m, m) for m in methods],
        horizontal_spacing=0.01,
        vertical_spacing=0.03,
    )
    for r, method in enumerate(methods, start=1):
        for c, heat in enumerate(heatmaps[method], start=1):
            heat = np.asarray(heat, dtype=np.float32)
            magnitude = np.abs(heat)
            top = float(magnitude.max())
            fig.add_trace(
                go.Heatmap(
                    z=magnitude / top if top > 0 else magnitude,
                    customdata=heat,
                    zmin=0,
                    zmax=1,
                    colorscale=rgb_colorscale("Inferno"),
                    showscale=False,  # every map has its own scale: the title says so
                    hovertemplate=f"{titles.get(method, method)}, {labels[c - 1]}<br>"
                    "(%{x}, %{y}): %{customdata:.3g}<extra></extra>",
                ),
                row=r,
                col=c,
            )
    bare = {"showticklabels": False, "ticks": "", "showgrid": False, "zeroline": False}
    fig.update_xaxes(constrain="domain", **bare)
    fig.update_yaxes(autorange="reversed", constrain="domain", **bare)
    for axis in fig.layout:  # each map square: its y axis anchored to its own x axis
        if axis.startswith("yaxis"):
            fig.layout[axis].scaleanchor = "x" + axis[5:]
    fig.update_annotations(font_size=11)
    fig.update_layout(
        height=90 + cell_px * len(methods),
        width=None,
        margin={"l": 10, "r": 30, "t": 80, "b": 10},
        title={
            "text": "|attribution| by stage, each map to its own maximum",
            "font": {"size": 14},
        },
    )
    return fig
