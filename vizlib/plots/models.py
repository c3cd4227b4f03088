"""Figures for the models pages: per-layer parameters and multiply-adds, receptive fields
(theoretical and effective), batching timings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vizlib.effective_field import profile_spread
from vizlib.receptive import field_text

__all__ = [
    "plot_batch_timing",
    "plot_effective_field",
    "plot_effective_growth",
    "plot_field_profile",
    "plot_spread_by_depth",
    "plot_layer_costs",
    "plot_receptive_fields",
]


def plot_layer_costs(
    rows: list[dict[str, Any]],
    *,
    log_x: bool = False,
    names: list[str] | None = None,
) -> go.Figure:
    """Return side-by-side horizontal bars of parameters and multiply-adds per layer.

    ``rows`` come from ``vizlib.summary.layer_table`` (keys name, type, params, macs); layers
    with neither parameters nor multiply-adds are left out. MACs are per sample. Bars are
    labelled with the layer's name, or with ``names``, one per row (shortened ones, say:
    vit_b_16's full names with their types took half of a 1024-pixel page and the two panels'
    titles ran into each other); the hover gives the full name and the type.
    """
    if names is not None and len(names) != len(rows):
        raise ValueError(f"{len(rows)} rows need {len(rows)} names, got {len(names)}")
    keep = [i for i, r in enumerate(rows) if r["params"] or r["macs"]]
    shown = [rows[i] for i in keep]
    # the type goes in the hover: "encoder.pos_embedding (position embeddings)" took half the
    # page
    labels = [(names or [r["name"] for r in rows])[i] for i in keep]
    full = [f"{r['name']} ({r['type']})" for r in shown]
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=("Parameters", "Multiply-adds"),
    )
    fig.add_trace(
        go.Bar(
            x=[r["params"] for r in shown],
            y=labels,
            orientation="h",
            name="parameters",
            marker_color="#4c78a8",
            customdata=full,
            hovertemplate="%{customdata}<br>%{x:,} parameters<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=[r["macs"] for r in shown],
            y=labels,
            orientation="h",
            name="multiply-adds",
            marker_color="#f58518",
            customdata=full,
            hovertemplate="%{customdata}<br>%{x:,} multiply-adds<extra></extra>",
        ),
        row=1,
        col=2,
    )
    axis_type = "log" if log_x else "linear"
    fig.update_xaxes(title_text="parameters (count)", type=axis_type, row=1, col=1)
    fig.update_xaxes(title_text="multiply-adds per sample (count)", type=axis_type, row=1, col=2)
    fig.update_yaxes(autorange="reversed", title_text="layer (in call order)", row=1, col=1)
    fig.update_layout(
        height=max(320, 22 * len(shown) + 140),
        showlegend=False,
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
    )
    return fig


def plot_receptive_fields(rows: list[dict[str, Any]], image_size: tuple[int, int]) -> go.Figure:
    """Return the receptive field of each layer in call order (pixels), with the input size.

    ``rows`` from ``vizlib.summary.layer_table``: layers with a field in pixels are plotted
    (height, and width as a line of its own where any differs, e.g. after a (3, 1) kernel or a
    (2, 1) stride); the hover gives the whole field, height x width, and the jump. The line
    follows the main path; a layer whose field is smaller than one met before it (a residual
    shortcut, called after the block's convolutions) is a grey marker off the line, so the line
    never seems to shrink. The first layer whose units see the whole image is named in the
    subtitle; the legend, where there is one, lies flat above the plot;
    ``image_size`` (H, W) in pixels draws a dashed line at the input height (and a dotted one
    at its width where that differs).
    """
    shown = [r for r in rows if isinstance(r.get("receptive_field"), tuple)]
    labels = [f"{r['name']} ({r['type']})" for r in shown]
    largest, branch = [0, 0], []
    for r in shown:
        field = r["receptive_field"]
        branch.append(any(f < m for f, m in zip(field, largest, strict=True)))
        largest = [max(f, m) for f, m in zip(field, largest, strict=True)]
    fig = go.Figure()
    axes = ("height", "width")
    both = any(r["receptive_field"][0] != r["receptive_field"][1] for r in shown)
    for axis in range(2 if both else 1):
        for on_branch in (False, True):
            part = [i for i, b in enumerate(branch) if b == on_branch]
            if on_branch and not part:
                continue
            name = f"field {axes[axis]}" if both else "field"
            fig.add_trace(
                go.Scatter(
                    x=[labels[i] for i in part],
                    y=[shown[i]["receptive_field"][axis] for i in part],
                    customdata=[
                        [
                            f"{field_text(shown[i]['receptive_field'])} px",
                            "none (flattened)"
                            if shown[i]["jump"] is None
                            else f"{field_text(shown[i]['jump'])} px",
                        ]
                        for i in part
                    ],
                    mode="markers" if on_branch else "lines+markers",
                    marker={"color": "gray", "symbol": "circle-open", "size": 9}
                    if on_branch
                    else None,
                    name=f"{name}, branch (e.g. a shortcut; merged later)" if on_branch else name,
                    hovertemplate=(
                        f"%{{x}}<br>{axes[axis] if both else 'field'} %{{y}} px"
                        "<br>field %{customdata[0]} (height x width)"
                        "<br>jump %{customdata[1]}<extra></extra>"
                    ),
                )
            )
    fig.add_hline(
        y=image_size[0],
        line_dash="dash",
        line_color="gray",
        annotation_text=f"input height {image_size[0]} px",
        annotation_position="top left",
    )
    if image_size[1] != image_size[0]:
        fig.add_hline(
            y=image_size[1],
            line_dash="dot",
            line_color="gray",
            annotation_text=f"input width {image_size[1]} px",
            annotation_position="bottom left",
        )
    whole = next((r for r in rows if r.get("receptive_field") == "whole image"), None)
    show_legend = both or any(branch)
    # the legend lies flat above the plot and the whole-image layer is the title's subtitle: a
    # legend beside the plot took half a 1024 px screen's column (the x labels overlapped)
    title: dict[str, Any] = {"text": "Receptive field growth", "font": {"size": 15}}
    if whole is not None:
        title["subtitle"] = {"text": f"every unit sees the whole image from {whole['name']} on"}
    fig.update_layout(
        title=title,
        height=400 + (30 if show_legend else 0),
        xaxis={
            "title": "layer (in call order)",
            "tickangle": -45,
            "categoryorder": "array",  # call order, though branch layers are a trace of their own
            "categoryarray": labels,
        },
        yaxis={"title": "receptive field (input pixels)", "rangemode": "tozero"},
        showlegend=show_legend,
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"},
        margin={"l": 10, "r": 10, "t": 70 + (30 if show_legend else 0), "b": 40},
    )
    return fig


OUTLINE_MAX_PIXELS = 64 * 64


def plot_effective_field(
    gradient: np.ndarray,
    box: tuple[int, int, int, int],
    *,
    share: float = 0.9,
    log: bool = False,
    outline: bool = True,
    title: str = "Effective receptive field",
) -> go.Figure:
    """Return a heatmap of an effective receptive field over the input, with the theoretical
    field's box and the outline of the pixels that hold ``share`` of the gradient.

    gradient: (H, W), non-negative, input pixels (``vizlib.effective_field``); shown relative to
    its largest value, on a log10 colour scale (floor 1e-4) with ``log``. box: (top, left,
    bottom, right) inclusive, input pixels, may reach outside the image. The outline is drawn,
    with ``outline``, for inputs of up to ``OUTLINE_MAX_PIXELS``: on a larger one the pixels that
    hold the share are scattered over the tail and their outline is speckle (so it is for a ViT
    token's flat tail over the whole image).
    """
    g = np.asarray(gradient, dtype=np.float64)  # (H, W)
    h, w = g.shape
    peak = g.max()
    rel = g / peak if peak > 0 else g  # (H, W) in [0, 1]
    if log:
        z = np.log10(np.maximum(rel, 1e-4))
        colorbar = {
            "title": {"text": "relative", "side": "right"},
            "tickvals": [-4, -3, -2, -1, 0],
            "ticktext": ["≤0.0001", "0.001", "0.01", "0.1", "1"],
        }
        zmin, zmax = -4.0, 0.0
    else:
        z, zmin, zmax = rel, 0.0, 1.0
        colorbar = {"title": {"text": "relative", "side": "right"}}
    fig = go.Figure(
        go.Heatmap(
            z=z,
            customdata=rel,
            colorscale="Viridis",
            zmin=zmin,
            zmax=zmax,
            colorbar=colorbar,
            hovertemplate="row %{y}, column %{x}<br>gradient %{customdata:.3g} of the largest"
            "<extra></extra>",
        )
    )
    if outline and peak > 0 and g.size <= OUTLINE_MAX_PIXELS:
        values = np.sort(g.ravel())[::-1]
        needed = int(np.searchsorted(np.cumsum(values), share * values.sum() * (1 - 1e-12)) + 1)
        inside = (g >= values[needed - 1]).astype(float)  # (H, W) 1 on the pixels holding share
        fig.add_trace(
            go.Contour(
                z=inside,
                contours={"start": 0.5, "end": 0.5, "size": 1, "coloring": "none"},
                line={"color": "white", "width": 2, "dash": "dot"},
                showscale=False,
                hoverinfo="skip",
                name=f"white dots: the pixels holding {share:.0%} of the gradient",
                showlegend=True,
            )
        )
    top, left, bottom, right = box
    fig.add_trace(  # the theoretical box as a trace, so that the legend names it
        go.Scatter(
            x=[left - 0.5, right + 0.5, right + 0.5, left - 0.5, left - 0.5],
            y=[top - 0.5, top - 0.5, bottom + 0.5, bottom + 0.5, top - 0.5],
            mode="lines",
            line={"color": "#e45756", "width": 2},
            name=f"theoretical field ({bottom - top + 1}×{right - left + 1} px)",
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title={"text": title, "font": {"size": 15}},
        height=min(640, max(380, 3 * h + 140)),
        xaxis={"title": "column (input px)", "range": [-0.5, w - 0.5], "constrain": "domain"},
        yaxis={
            "title": "row (input px)",
            "range": [h - 0.5, -0.5],
            "scaleanchor": "x",
            "constrain": "domain",
        },
        showlegend=True,  # also with the box alone: the legend says what the red line is
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"},
        margin={"l": 10, "r": 10, "t": 90, "b": 40},
    )
    return fig


def plot_effective_growth(rows: list[dict[str, Any]], *, share: float = 0.9) -> go.Figure:
    """Return, layer by layer, the side of the theoretical field inside the image beside the
    side of the pixels holding ``share`` of the effective field's gradient (each as the side of a
    square of that many pixels).

    rows: one dict per layer in call order with name, type, field_px (theoretical field's
    pixels inside the image) and effective_px (pixels holding ``share`` of the gradient).
    """
    labels = [f"{r['name']} ({r['type']})" for r in rows]
    theory = [math.sqrt(r["field_px"]) for r in rows]
    effective = [math.sqrt(r["effective_px"]) for r in rows]
    ratio = [r["effective_px"] / r["field_px"] if r["field_px"] else float("nan") for r in rows]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=theory,
            customdata=[[r["field_px"]] for r in rows],
            mode="lines+markers",
            name="theoretical field (inside the image)",
            line={"color": "#e45756"},
            hovertemplate="%{x}<br>theoretical field: %{customdata[0]:,} px "
            "(a square of side %{y:.1f})<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=effective,
            customdata=[[r["effective_px"], q] for r, q in zip(rows, ratio, strict=True)],
            mode="lines+markers",
            name=f"pixels holding {share:.0%} of the gradient",
            line={"color": "#4c78a8"},
            hovertemplate=f"%{{x}}<br>{share:.0%} of the gradient in %{{customdata[0]:,}} px "
            "(a square of side %{y:.1f})<br>%{customdata[1]:.0%} of the theoretical field"
            "<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": "Effective against theoretical field, layer by layer", "font": {"size": 15}},
        height=420,
        xaxis={"title": "layer (in call order)", "tickangle": -45},
        yaxis={"title": "side of a square of that area (input px)", "rangemode": "tozero"},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"},
        margin={"l": 10, "r": 10, "t": 90, "b": 40},
    )
    return fig


def plot_field_profile(
    profile: np.ndarray,
    field: tuple[int, int],
    *,
    title: str = "Profile across the field",
) -> go.Figure:
    """Return a 1-D effective-field profile as bars, with the Gaussian of the same mean and
    standard deviation and the theoretical field's extent shaded.

    profile: (L,) non-negative, input pixels along one axis (the 2-D field summed over the other
    axis), shown as shares of its total. field: (first, last) pixel of the theoretical field.
    """
    p = np.asarray(profile, dtype=np.float64)
    share = p / p.sum()  # (L,) sums to 1
    x = np.arange(len(p))
    mean, sd = profile_spread(p)
    fig = go.Figure()
    fig.add_vrect(
        x0=field[0] - 0.5,
        x1=field[1] + 0.5,
        fillcolor="#e45756",
        opacity=0.08,
        line_width=0,
    )
    fig.add_trace(
        go.Bar(
            x=x,
            y=share,
            name="effective field (share of the gradient)",
            marker_color="#4c78a8",
            hovertemplate="pixel %{x}<br>%{y:.2%} of the gradient<extra></extra>",
        )
    )
    if sd > 0:
        fine = np.linspace(-0.5, len(p) - 0.5, 8 * len(p) + 1)
        gauss = np.exp(-0.5 * ((fine - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        fig.add_trace(
            go.Scatter(
                x=fine,
                y=gauss,
                mode="lines",
                name=f"Gaussian, σ = {sd:.2f} px",
                line={"color": "#f58518", "width": 2},
                hoverinfo="skip",
            )
        )
    fig.add_trace(  # a legend entry for the shaded extent
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            marker={"color": "rgba(228, 87, 86, 0.3)", "symbol": "square", "size": 12},
            name=f"theoretical field ({field[1] - field[0] + 1} px)",
        )
    )
    fig.update_layout(
        title={"text": title, "font": {"size": 15}},
        height=360,
        bargap=0.05,
        xaxis={"title": "input pixel", "range": [-0.5, len(p) - 0.5]},
        yaxis={"title": "share of the gradient", "tickformat": ".0%", "rangemode": "tozero"},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"},
        margin={"l": 10, "r": 10, "t": 90, "b": 40},
    )
    return fig


def plot_spread_by_depth(
    fields: Sequence[int], sigmas: Sequence[float], *, title: str = "Field and spread by depth"
) -> go.Figure:
    """Return, for the first 1, 2, ... layers of a stack, the theoretical field's side R and the
    effective field's width 4 sigma (plus and minus two standard deviations: 95% of a
    Gaussian), both in input pixels, with their ratio on hover.

    fields: R after each layer; sigmas: the profile's standard deviation after each layer.
    """
    depth = list(range(1, len(fields) + 1))
    width = [4 * float(v) for v in sigmas]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=depth,
            y=list(fields),
            mode="lines+markers",
            name="theoretical field R",
            line={"color": "#e45756"},
            hovertemplate="%{x} layers: R = %{y} px<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=depth,
            y=width,
            customdata=[w / r for w, r in zip(width, fields, strict=True)],
            mode="lines+markers",
            name="effective width 4σ",
            line={"color": "#4c78a8"},
            hovertemplate="%{x} layers: 4σ = %{y:.1f} px, %{customdata:.0%} of R<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": title, "font": {"size": 15}},
        height=360,
        xaxis={
            "title": "layers (the first n of the stack)",
            "dtick": 1 if len(depth) <= 20 else None,
        },
        yaxis={"title": "input pixels", "rangemode": "tozero"},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"},
        margin={"l": 10, "r": 10, "t": 80, "b": 40},
    )
    return fig


def _speedup_title(result: dict[str, Any]) -> str:
    """Return "cpu: 4.0x faster batched", or "cpu: 2.5x slower batched" where the loop won (a
    few samples on a busy CPU): "0.4x faster" said the opposite of what the bars show."""
    speedup = result["speedup"]
    if speedup >= 1 or speedup <= 0:  # 0: a loop too fast for the clock, nothing to invert
        return f"{result['device']}: {speedup:.1f}x faster batched"
    return f"{result['device']}: {1 / speedup:.1f}x slower batched"


def plot_batch_timing(results: list[dict[str, Any]]) -> go.Figure:
    """Return loop vs batched time per pass (seconds) as bars, one panel per device.

    ``results`` are dicts from ``vizlib.summary.batch_matmul_timing``. Each device has a linear
    axis of its own starting at 0, so the bars' lengths compare as the times do (on one log
    axis a bar's length depends on where the axis starts: 0.14 s against 0.40 s looked like
    a twentieth); a GPU's milliseconds and a CPU's tenths of a second need not share a scale.
    """
    fig = make_subplots(
        rows=1,
        cols=len(results),
        subplot_titles=[_speedup_title(r) for r in results],
        horizontal_spacing=0.12,
    )
    for col, r in enumerate(results, start=1):
        fig.add_trace(
            go.Bar(
                x=["Python loop over samples", "one batched matmul"],
                y=[r["loop_s"], r["batched_s"]],
                marker_color=["#4c78a8", "#9ecae9"],
                text=[f"{r['loop_s']:.3g} s", f"{r['batched_s']:.3g} s"],
                textposition="outside",
                cliponaxis=False,
                hovertemplate=f"{r['device']}, %{{x}}: %{{y:.4g}} s<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        fig.update_yaxes(
            title_text="time per pass (seconds)" if col == 1 else None,
            rangemode="tozero",
            type="linear",
            row=1,
            col=col,
        )
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 50, "b": 40})
    return fig
