"""Figures for the ViT pages: mean attention distance (Figure 7 right of Dosovitskiy et al.),
attention and rollout overlays (Figure 6), position-embedding similarity (Figure 7 centre),
patch-embedding components (Figure 7 left) and the sinusoidal encoding."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from ._colors import colorbar_trace, rgb_colorscale

__all__ = [
    "overlay_rgb",
    "plot_attention_distance",
    "plot_attention_overlays",
    "plot_head_importance",
    "plot_head_pruning",
    "plot_patch_components",
    "plot_position_similarity",
    "plot_sinusoidal_encoding",
    "plot_sinusoidal_similarity",
]

_OVERLAY_SCALE = "Inferno"


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def plot_attention_distance(
    distances, *, baseline: float | None = None, title: str | None = None
) -> go.Figure:
    """Return a scatter of mean attention distance (pixels) per head against layer (1-based),
    one trace per head, named in the legend ("head 0", ...).

    ``distances`` (layers, heads) in pixels; ``baseline`` (pixels) is drawn as a dashed line:
    the distance uniform attention over the grid would give.
    """
    d = _np(distances).astype(float)  # (L, h)
    n_layers, n_heads = d.shape
    layers = np.arange(1, n_layers + 1)  # (L,)
    colors = sample_colorscale("Viridis", list(np.linspace(0, 1, max(n_heads, 2))))
    fig = go.Figure()
    # one trace per head: the legend says which colour is which head, and a click hides one
    for head in range(n_heads):
        # a small horizontal spread keeps heads with equal distance visible
        jitter = (head - (n_heads - 1) / 2) * (0.25 / max(n_heads, 1))
        fig.add_trace(
            go.Scatter(
                x=layers + jitter,
                y=d[:, head],
                mode="markers",
                # a grey rim: head 0's dark purple vanished on a dark theme's background
                marker={
                    "size": 8,
                    "color": colors[head],
                    "opacity": 0.85,
                    "line": {"width": 1, "color": "rgb(160, 160, 160)"},
                },
                customdata=np.stack([layers, np.full(n_layers, head)], axis=1),
                hovertemplate="layer %{customdata[0]}, head %{customdata[1]}<br>"
                "mean attention distance %{y:.1f} px<extra></extra>",
                name=f"head {head}",
            )
        )
    if baseline is not None:
        fig.add_hline(y=baseline, line_dash="dash", line_color="grey")
        # labelled beside the plot: the late layers' heads approach the line, so a label on
        # the plot would sit on their dots
        fig.add_annotation(
            x=1.0, xref="paper", xanchor="left", y=baseline, yref="y", showarrow=False,
            text=f"uniform attention<br>{baseline:.1f} px", align="left",
            font={"color": "grey"},
        )  # fmt: skip
    fig.update_layout(
        title=title
        or "Mean attention distance per head (analogous to receptive field size in CNNs)",
        xaxis={"title": "network depth (layer)", "dtick": 1},
        yaxis={"title": "mean attention distance (pixels)", "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.2, "x": 0, "title": {"text": "colour:"}},
        height=460,
        margin={"l": 60, "r": 130 if baseline is not None else 20, "t": 60, "b": 50},
    )
    return fig


def _lut(colorscale: str = _OVERLAY_SCALE) -> np.ndarray:
    colors = sample_colorscale(colorscale, list(np.linspace(0, 1, 256)), colortype="tuple")
    return np.asarray(colors, dtype=float)  # (256, 3) in [0, 1]


def overlay_rgb(image, heat, *, alpha: float = 0.6) -> np.ndarray:
    """Return an RGB uint8 image (H, W, 3): ``image`` blended with a colour-mapped ``heat``.

    ``image`` (C, H, W) or (H, W) in [0, 1]; ``heat`` (gh, gw) any range, scaled by its own
    min and max, upsampled to (H, W) by nearest neighbour so each patch stays a visible block.
    """
    img = _np(image).astype(float)
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)  # (H, W, 3)
    h, w = img.shape[:2]
    hm = _np(heat).astype(float)
    lo, hi = float(np.nanmin(hm)), float(np.nanmax(hm))
    hm = (hm - lo) / (hi - lo) if hi > lo else np.zeros_like(hm)
    rows = np.minimum((np.arange(h) * hm.shape[0]) // h, hm.shape[0] - 1)
    cols = np.minimum((np.arange(w) * hm.shape[1]) // w, hm.shape[1] - 1)
    up = hm[np.ix_(rows, cols)]  # (H, W)
    colored = _lut()[np.clip((up * 255).round().astype(int), 0, 255)]  # (H, W, 3)
    out = (1 - alpha) * np.clip(img, 0, 1) + alpha * colored
    return (out * 255).round().astype(np.uint8)


_TITLE_CHARS = 56  # a panel title's characters across the whole figure, shared by the columns
_TITLE_FONT_PX = 13  # at which four titles of 14 characters fit a 1024-pixel screen's row


def _fit_title(text: str, cols: int) -> str:
    """Return a panel title short enough for one of ``cols`` columns: long ones keep their
    start and end (a file name's number and extension) around an ellipsis, since titles that
    run into their neighbours (long upload names, four to a row) cannot be read at all."""
    room = max(10, _TITLE_CHARS // cols)
    if len(text) <= room:
        return text
    head = (room - 1) // 2
    return text[:head] + "…" + text[len(text) - (room - 1 - head) :]


def _hover_safe(text: str) -> str:
    """Return text for a plotly hover template: a % (of '%{') read as a field, a < as a tag."""
    return text.replace("%", "&#37;").replace("<", "&lt;")


def plot_attention_overlays(
    images,
    maps,
    *,
    titles: list[str] | None = None,
    alpha: float = 0.6,
    marker: tuple[int, int] | None = None,
    title: str | None = None,
    cols: int = 4,
    colorbar_title: str | None = None,
    value_name: str = "value",
) -> go.Figure:
    """Return a row-wrapped grid of images with attention maps overlaid.

    ``images`` (B, C, H, W) in [0, 1]; ``maps`` (B, gh, gw), each scaled by its own range (the
    colour shows where attention is relatively high, bright = high). ``titles`` longer than a
    column holds are shortened in the middle; hovering a panel gives the whole title. ``marker`` (row, col)
    outlines one patch (the query patch) on every panel. ``colorbar_title`` adds a colour bar:
    in the map's own values for one map, from "min" to "max" of each map for several. Hovering
    a patch gives its row and column (counted from 0 at the top left) and its ``value_name``.
    """
    imgs = _np(images)
    heat = _np(maps)
    n = imgs.shape[0]
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=None if titles is None else [_fit_title(t, cols) for t in titles],
        horizontal_spacing=0.02,
        vertical_spacing=0.08 / max(rows, 1),
    )
    h, w = imgs.shape[-2:]
    gh, gw = heat.shape[-2:]
    for i in range(n):
        r, c = divmod(i, cols)
        fig.add_trace(
            go.Image(z=overlay_rgb(imgs[i], heat[i], alpha=alpha), hoverinfo="skip"),
            row=r + 1,
            col=c + 1,
        )
        # an invisible patch-resolution layer on top: hover reads the patch and its value
        pr_idx, pc_idx = np.indices((gh, gw))
        fig.add_trace(
            go.Heatmap(
                z=heat[i],
                x0=w / gw / 2 - 0.5,
                dx=w / gw,
                y0=h / gh / 2 - 0.5,
                dy=h / gh,
                opacity=0,
                showscale=False,
                customdata=np.stack([pr_idx, pc_idx], axis=-1),
                hovertemplate=("" if titles is None else f"{_hover_safe(titles[i])}<br>")
                + "patch (row %{customdata[0]}, column %{customdata[1]})<br>"
                f"{value_name} %{{z:.4g}}<extra></extra>",
            ),
            row=r + 1,
            col=c + 1,
        )
        if marker is not None:
            pr, pc = marker
            fig.add_shape(
                type="rect",
                x0=pc * w / gw - 0.5,
                x1=(pc + 1) * w / gw - 0.5,
                y0=pr * h / gh - 0.5,
                y1=(pr + 1) * h / gh - 0.5,
                line={"color": "cyan", "width": 2},
                row=r + 1,
                col=c + 1,
            )
    fig.update_annotations(font_size=_TITLE_FONT_PX)  # the panels' titles
    if colorbar_title is not None:
        bar = {"title": {"text": colorbar_title, "side": "right"}, "thickness": 14}
        if n == 1:
            lo, hi = float(np.nanmin(heat[0])), float(np.nanmax(heat[0]))
        else:  # each panel has its own scale: only the ends mean the same everywhere
            lo, hi = 0.0, 1.0
            bar.update(tickvals=[0, 1], ticktext=["min", "max"])
        # an empty trace that only carries the overlay's colour scale
        fig.add_trace(
            colorbar_trace(rgb_colorscale(_OVERLAY_SCALE), lo, hi if hi > lo else lo + 1e-12, bar),
            row=1,
            col=1,
        )
    # no tick marks either: Streamlit's theme draws them on the images' hidden axes
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False)
    fig.update_layout(
        title={"text": title, "font": {"size": 14}} if title else None,
        height=max(260, 240 * rows + 60),
        margin={"l": 10, "r": 10, "t": 60 if title else 40, "b": 10},
    )
    return fig


def _mosaic(tiles: np.ndarray, gap: int = 1) -> np.ndarray:
    """Return tiles (R, C, h, w) laid out as one (R*(h+gap)-gap, C*(w+gap)-gap) array, NaN gaps."""
    R, C, h, w = tiles.shape
    out = np.full((R * (h + gap) - gap, C * (w + gap) - gap), np.nan)
    for r in range(R):
        for c in range(C):
            out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tiles[r, c]
    return out


def plot_position_similarity(similarity, *, title: str | None = None) -> go.Figure:
    """Return the grid of tiles of position-embedding cosine similarity (one heatmap).

    ``similarity`` (gh, gw, gh, gw): tile (r, c) shows the similarity of patch (r, c)'s embedding
    to every patch's; one shared colour scale from -1 to 1. Patches are numbered from 0 at the top
    left, as the array's indices and the ViT Attention page count them.
    """
    sim = _np(similarity).astype(float)
    gh, gw = sim.shape[:2]
    gap = 1
    z = _mosaic(sim, gap)
    # hover: which tile (query patch) and which key patch each cell is
    rr, cc = np.indices(z.shape)
    tr, kr = rr // (gh + gap), rr % (gh + gap)
    tc, kc = cc // (gw + gap), cc % (gw + gap)
    custom = np.stack([tr, tc, kr, kc], axis=-1)
    fig = go.Figure(
        go.Heatmap(
            z=z.astype(np.float32),  # half the bytes of float64; hover shows 3 decimals
            zmin=-1,
            zmax=1,
            colorscale="Viridis",
            customdata=custom,
            hovertemplate="patch (row %{customdata[0]}, column %{customdata[1]}) vs "
            "patch (row %{customdata[2]}, column %{customdata[3]})<br>"
            "cosine similarity %{z:.3f}<extra></extra>",
            colorbar={"title": "cosine<br>similarity"},
            hoverongaps=False,
        )
    )
    tick_r = [r * (gh + gap) + (gh - 1) / 2 for r in range(gh)]
    tick_c = [c * (gw + gap) + (gw - 1) / 2 for c in range(gw)]
    fig.update_xaxes(
        title="patch column (from 0 at the left)",
        tickvals=tick_c,
        ticktext=[str(c) for c in range(gw)],
        showgrid=False,
        scaleanchor="y",
        constrain="domain",
    )
    fig.update_yaxes(
        title="patch row (from 0 at the top)",
        tickvals=tick_r,
        ticktext=[str(r) for r in range(gh)],
        autorange="reversed",
        showgrid=False,
        constrain="domain",
    )
    fig.update_layout(
        title=title or "Position embedding similarity",
        height=620,
        plot_bgcolor="rgba(0,0,0,0)",  # the gaps between tiles show the page: no white frame
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
    )
    return fig


def _component_rgb(component: np.ndarray) -> np.ndarray:
    """Return one component (C, P, P) min-max scaled into an RGB uint8 image (P, P, 3)."""
    c = component.astype(float)
    lo, hi = c.min(), c.max()
    c = (c - lo) / (hi - lo) if hi > lo else np.zeros_like(c)
    rgb = np.moveaxis(c[:3], 0, -1) if c.shape[0] == 3 else np.repeat(c[0][..., None], 3, axis=-1)
    return (rgb * 255).round().astype(np.uint8)


_TILE_PX = 110  # height of one principal-component tile (pixels)
_TILE_TITLE_PX = 11  # font size of a tile's title
_TILE_GAP_PX = 28  # between rows: the next row's title (~1.4 x font) and clear space


def plot_patch_components(
    components, ratios, *, cols: int = 7, title: str | None = None
) -> go.Figure:
    """Return the principal components of the patch embedding as P x P images with their variance.

    ``components`` (k, C, P, P): RGB when C == 3 (channels scaled together), grey otherwise;
    each scaled by its own min and max. ``ratios`` (k,) explained-variance ratios.

    Rows are laid out in pixels, not fractions of the figure: each tile's title sits in a
    ``_TILE_GAP_PX`` gap above its row, and an image never leaves its subplot, so the titles
    clear the row above at any width of the window.
    """
    comps = _np(components)
    var = _np(ratios).astype(float)
    k = comps.shape[0]
    cols = max(1, min(cols, k))
    rows = math.ceil(k / cols)
    plot_px = rows * _TILE_PX + (rows - 1) * _TILE_GAP_PX  # the plotting area's height
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[f"PC {i + 1}: {100 * var[i]:.1f}%" for i in range(k)],
        horizontal_spacing=0.015,
        vertical_spacing=_TILE_GAP_PX / plot_px if rows > 1 else 0.0,
    )
    for i in range(k):
        r, c = divmod(i, cols)
        fig.add_trace(go.Image(z=_component_rgb(comps[i]), hoverinfo="skip"), row=r + 1, col=c + 1)
    # no axes at all: tick marks under a row would reach into the next row's titles
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=_TILE_TITLE_PX)
    margin = {"l": 10, "r": 10, "t": 70, "b": 10}
    fig.update_layout(
        title=title or "Principal components of the patch-embedding filters (% of variance)",
        height=plot_px + margin["t"] + margin["b"],
        margin=margin,
    )
    return fig


def _index_ticks(n: int) -> dict:
    """Return axis settings that tick only whole indices along ``n`` cells: over a few cells
    plotly's own ticks fall between them (-0.5, 0, 0.5, 1, 1.5 for two positions)."""
    return {"tickmode": "linear", "tick0": 0, "dtick": 1} if n <= 12 else {}


def plot_sinusoidal_encoding(encoding, *, title: str | None = None) -> go.Figure:
    """Return a heatmap of a position encoding (positions, dims): y = position, x = dimension.

    The colour scale is symmetric about 0 (±1 for the sinusoidal encoding, ±max|value| for a
    learned one).
    """
    enc = _np(encoding).astype(float)
    bound = float(np.abs(enc).max()) if enc.size else 1.0
    bound = bound or 1.0
    fig = go.Figure(
        go.Heatmap(
            z=enc.astype(np.float32),  # vit_b_16's 197 x 768: 0.8 MB less than float64
            zmin=-bound,
            zmax=bound,
            colorscale="RdBu",
            colorbar={"title": "value"},
            hovertemplate="position %{y}, dimension %{x}<br>value %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or "Sinusoidal encoding (Vaswani et al.)",
        xaxis={"title": "encoding dimension", **_index_ticks(enc.shape[1])},
        yaxis={"title": "position", "autorange": "reversed", **_index_ticks(enc.shape[0])},
        height=420,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
    )
    return fig


_DOT_PLOT_PX = 230  # the dot-product heatmap's square: a half column's plotting width at 1024 px
# from the square's lower edge to the colour bar's title: the x axis and its title between, then
# a gap (at 52 px "position" sat on "dot product" and the two read as one label)
_DOT_BAR_TOP_PX = 66
_DOT_MARGIN = {"l": 50, "r": 10, "t": 40, "b": 132}  # b: the x axis, then the colour bar


def plot_sinusoidal_similarity(similarity, *, title: str | None = None) -> go.Figure:
    """Return a square heatmap of the dot products between positions, (n, n).

    The axes span the cells exactly (-0.5 to n - 0.5, position 0 at the top left); the equal
    scale shrinks the plotting area, never widens a range (in a wide column the ranges grew to
    about -50..150 around a small square). The figure's height is the square's
    (``_DOT_PLOT_PX``) plus its margins and the colour bar lies under the x axis, so that a half
    column keeps its width for the square instead of a colour bar beside it, and no band of
    empty space sits above and below it.
    """
    sim = _np(similarity).astype(float)
    n = sim.shape[0]
    fig = go.Figure(
        go.Heatmap(
            z=sim.astype(np.float32),
            colorscale="Viridis",
            colorbar={
                "orientation": "h",
                "title": {"text": "dot product", "side": "top"},
                "thickness": 12,
                "x": 0.5,
                "xanchor": "center",
                "y": -_DOT_BAR_TOP_PX / _DOT_PLOT_PX,  # paper units: the plotting area's height
                "yanchor": "top",
                "ypad": 0,
            },
            hovertemplate="position %{y} · position %{x}<br>dot product %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or "Sinusoidal: dot products",
        xaxis={
            "title": {"text": "position", "standoff": 4},
            "range": [-0.5, n - 0.5],
            "constrain": "domain",
            **_index_ticks(n),
        },
        yaxis={
            "title": {"text": "position", "standoff": 4},
            "range": [n - 0.5, -0.5],  # reversed: position 0 at the top
            "scaleanchor": "x",
            "constrain": "domain",
            # a column narrower than the square gives up height at the top, under the title,
            # so that the x axis and the colour bar stay together
            "constraintoward": "bottom",
            **_index_ticks(n),
        },
        height=_DOT_PLOT_PX + _DOT_MARGIN["t"] + _DOT_MARGIN["b"],
        margin=_DOT_MARGIN,
    )
    return fig


def plot_head_importance(importance: np.ndarray, *, normalized: bool, images: int) -> go.Figure:
    """Return the importance of each head (Michel et al. 2019) as a layers x heads heatmap,
    layer 1 at the top as in a table: |dL/dg| summed over the minibatches, or (``normalized``)
    each layer's row divided by its L2 norm. ``images``: how many the loss was taken over."""
    values = np.asarray(importance, dtype=float)
    layers, heads = values.shape
    what = "importance / layer's L2 norm" if normalized else "importance |dL/dg|"
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=list(range(heads)),
            y=list(range(1, layers + 1)),
            colorscale=rgb_colorscale("Viridis"),
            zmin=0,
            colorbar={"title": {"text": what, "side": "right"}},
            hovertemplate="layer %{y}, head %{x}<br>" + what + " %{z:.3g}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        title=f"Which heads the answers depend on ({images:,} images)",
        xaxis={"title": "head (from 0)", "dtick": 1 if heads <= 16 else None},
        yaxis={
            "title": "layer (from 1)",
            "autorange": "reversed",
            "dtick": 1 if layers <= 24 else None,
        },
        height=max(320, 60 + 28 * layers),
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig


def plot_head_pruning(
    counts: list[int], curves: dict[str, list[float]], *, total: int, images: int
) -> go.Figure:
    """Return the share of ``images`` whose answer stays the same as heads are removed, one line
    per order of removal (Michel et al. 2019, Fig. 3): x the heads removed, of ``total``."""
    fig = go.Figure()
    colors = ("#4c78a8", "#e45756", "#54a24b", "#f58518")
    for k, (name, values) in enumerate(curves.items()):
        fig.add_trace(
            go.Scatter(
                x=[100 * c / total for c in counts],
                y=values,
                customdata=counts,
                mode="lines+markers",
                name=name,
                line={"color": colors[k % len(colors)], "dash": "dot" if k else None},
                hovertemplate=f"{name}<br>%{{customdata}} of {total} heads removed<br>"
                "%{y:.1%} of the answers unchanged<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"Removing heads: how many answers stay the same ({images:,} images)",
        xaxis={"title": f"heads removed (% of {total})", "range": [-2, 102]},
        yaxis={"title": "answers unchanged", "tickformat": ".0%", "range": [0, 1.05]},
        height=380,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig
