"""Figures for attributions: heatmaps overlaid on the input, and the top predictions."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ._colors import rgb_colorscale

__all__ = ["plot_attribution_colorbar", "plot_attribution_overlay", "plot_top_predictions"]


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
    """
    img = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != img.shape[:2]:
        raise ValueError(f"heatmap {heat.shape} and image {img.shape[:2]} differ in size")
    scale = _colour_range(signed, float(zmax) if zmax is not None else float(np.abs(heat).max()))
    bottom = _BAR if showscale else _NO_BAR
    if width is not None:
        box = width - 2 * _SIDE  # the image's width in pixels; its height keeps the aspect ratio
        height = _TOP + round(box * heat.shape[0] / heat.shape[1]) + bottom
    name = f"{title}<br>" if title else ""
    fig = go.Figure(go.Image(z=(img * 255).round().astype(np.uint8), hoverinfo="skip"))
    fig.add_trace(
        go.Heatmap(
            z=np.asarray(heat, dtype=np.float32),  # half the bytes of float64 (224 x 224: 0.2 MB)
            opacity=float(opacity),
            colorscale=scale["colorscale"],
            zmin=scale["cmin"],
            zmax=scale["cmax"],
            showscale=showscale,
            colorbar=_colorbar(colorbar_title),
            hovertemplate=f"{name}x %{{x}}, y %{{y}}<br>attribution %{{z:.4g}}<extra></extra>",
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


def _percent(p: float) -> str:
    """Return a probability as a percentage to 0.1 %, "<0.1%" and ">99.9%" at the ends, which
    would otherwise read "0.0%" (ruled out) or "100.0%" (certain)."""
    if p < 0.0005:
        return "<0.1%"
    if p >= 0.9995 and p < 1:
        return ">99.9%"
    return f"{p:.1%}"


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
            customdata=[_percent(p) for p in probabilities],
            hovertemplate="%{y}: %{customdata} (%{x:.3g})<extra></extra>",
        )
    )
    for row, p in enumerate(probabilities):
        inside = p >= _INSIDE_FROM
        fig.add_annotation(
            x=p,
            y=row,  # the row's index: plotly reads a label such as "2" as row 2, not as the name
            text=_percent(p),
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
