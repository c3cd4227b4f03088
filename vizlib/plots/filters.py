"""Figures for learned filters and feature maps: image grids (mosaics) with hover, weight histograms."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._colors import colorbar_trace

__all__ = [
    "aligned_numbers",
    "feature_map_pool",
    "image_grid_png",
    "mosaic",
    "plot_captioned_images",
    "plot_feature_maps",
    "plot_image_grid",
    "plot_objective_curves",
    "plot_weight_histogram",
]


def aligned_numbers(values: Sequence[float], significant: int = 4) -> list[str]:
    """Return numbers written with one number of decimals: ``significant`` digits for the
    largest in size, so that a column of scores lines up ("0.03299", "0.00952"), where "%.4g"
    gave each its own ("0.03299", "0.009517"). Whole-number magnitudes keep no decimals."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    decimals = significant - 1 - math.floor(math.log10(top)) if top > 0 else significant - 1
    return [f"{v:.{max(0, decimals)}f}" for v in values]


def _tiling(n: int, h: int, w: int, *, cols: int | None, pad: int) -> tuple[int, tuple[int, int]]:
    """Return (columns, (H, W)) of a grid of n tiles of h x w with ``pad`` cells between them:
    ``cols`` columns, by default about the square root of n."""
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    return cols, (rows * (h + pad) - pad, cols * (w + pad) - pad)


def mosaic(
    tiles: np.ndarray, *, cols: int | None = None, pad: int = 1, pad_value: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Return (mosaic, index) tiling n images in a grid with ``pad`` pixels between them.

    tiles: (n, h, w) or (n, h, w, 3). mosaic: (rows*(h+pad)-pad, cols*(w+pad)-pad[, 3]);
    index: same (H, W) with the tile number under each pixel, -1 on padding.
    """
    tiles = np.asarray(tiles, dtype=np.float32)
    n, h, w = tiles.shape[:3]
    cols, (H, W) = _tiling(n, h, w, cols=cols, pad=pad)
    out = np.full((H, W, *tiles.shape[3:]), pad_value, dtype=np.float32)
    index = np.full((H, W), -1, dtype=np.int64)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = r * (h + pad), c * (w + pad)
        out[y : y + h, x : x + w] = tiles[i]
        index[y : y + h, x : x + w] = i
    return out, index


_MAX_CELL_PX = 24.0  # largest on-screen size of one weight or activation cell


def _grid_layout(fig: go.Figure, shape: tuple[int, int], *, title: str, max_px: int) -> go.Figure:
    H, W = shape
    # up to 24 screen pixels a cell: a 3x3 filter is 72 px, not the 36 px it was at 12; a
    # mosaic of more than max_px cells a side shrinks to max_px (one pixel a cell left it as
    # tall as its cells, 973 px for resnet18's 64 maps of 112x112, in a column 640 px wide)
    scale = min(max_px / max(H, W), _MAX_CELL_PX)
    fig.update_layout(
        title=title,
        height=int(H * scale) + 70,
        margin=dict(l=10, r=10, t=50, b=10),
        xaxis=dict(visible=False, constrain="domain"),
        yaxis=dict(visible=False, scaleanchor="x", autorange="reversed", constrain="domain"),
    )
    return fig


def plot_image_grid(
    tiles: np.ndarray,
    *,
    hover: Sequence[str] | None = None,
    cols: int | None = None,
    title: str = "",
    max_px: int = 560,
) -> go.Figure:
    """Return a grid of small images: tiles (n, 1, h, w) grey or (n, 3, h, w) RGB, values in [0, 1].

    ``hover[i]`` is shown over tile i (e.g. the filter's index and norm).
    """
    tiles = np.clip(np.asarray(tiles, dtype=np.float32), 0.0, 1.0)
    if tiles.ndim != 4 or tiles.shape[1] not in (1, 3):
        raise ValueError(f"tiles must be (n, 1 or 3, h, w), got {tiles.shape}")
    rgb = np.repeat(tiles, 3, axis=1) if tiles.shape[1] == 1 else tiles
    grid, index = mosaic(rgb.transpose(0, 2, 3, 1), cols=cols)  # (H, W, 3)
    labels = np.asarray(list(hover) if hover is not None else [f"#{i}" for i in range(len(tiles))])
    text = np.where(index >= 0, labels[np.maximum(index, 0)], "")
    # the gutters and empty cells see-through (alpha 0): white, they glared on the dark theme
    alpha = np.where(index >= 0, 1.0, 0.0)[..., None]
    fig = go.Figure(
        go.Image(
            z=(np.concatenate([grid, alpha], axis=-1) * 255).round().astype(np.uint8),
            colormodel="rgba",
            zmax=[255, 255, 255, 255],  # alpha in 0..255 like the colours (plotly's is 0..1)
            hovertext=text,
            hovertemplate="%{hovertext}<extra></extra>",
        )
    )
    return _grid_layout(fig, grid.shape[:2], title=title, max_px=max_px)


_CAPTION_FONT_PX = 12  # legible on a projector (10 px was not, at 1024 px wide)
_CAPTION_LINE_PX = 16  # one caption line at that font, with its leading
_CAPTION_CHARS = 16  # a caption line longer than this is cut (with …): a column's width


def _short(line: str) -> str:
    return line if len(line) <= _CAPTION_CHARS else line[: _CAPTION_CHARS - 1] + "…"


def plot_captioned_images(
    tiles: np.ndarray,
    captions: Sequence[Sequence[str]],
    *,
    hover: Sequence[str] | None = None,
    cols: int | None = None,
    title: str = "",
    tile_px: int = 100,
) -> go.Figure:
    """Return a grid of small images, each with a short caption under it (e.g. class and score).

    ``tiles`` (n, 1, h, w) grey or (n, 3, h, w) RGB, values in [0, 1]; ``captions[i]`` the
    lines under tile i (each cut to ``_CAPTION_CHARS`` characters; ``hover[i]`` can say it all).
    Rows are laid out in pixels: ``tile_px`` per image row and room for the caption lines under
    it, so captions never reach the next row, whatever the window's width.
    """
    tiles = np.clip(np.asarray(tiles, dtype=np.float32), 0.0, 1.0)
    if tiles.ndim != 4 or tiles.shape[1] not in (1, 3):
        raise ValueError(f"tiles must be (n, 1 or 3, h, w), got {tiles.shape}")
    n = len(tiles)
    if len(captions) != n or (hover is not None and len(hover) != n):
        raise ValueError(f"{n} tiles need {n} captions (and hovers), got {len(captions)}")
    rgb = np.repeat(tiles, 3, axis=1) if tiles.shape[1] == 1 else tiles
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    lines = max((len(c) for c in captions), default=1)
    caption_px = lines * _CAPTION_LINE_PX + 4
    gap_px = caption_px + 8  # under a row: its captions, then clear space
    plot_px = rows * tile_px + (rows - 1) * gap_px
    fig = make_subplots(
        rows=rows,
        cols=cols,
        horizontal_spacing=0.02,
        vertical_spacing=gap_px / plot_px if rows > 1 else 0.0,
    )
    for i in range(n):
        r, c = divmod(i, cols)
        fig.add_trace(
            go.Image(
                z=(rgb[i].transpose(1, 2, 0) * 255).round().astype(np.uint8),
                hovertemplate=(hover[i] if hover is not None else f"#{i}") + "<extra></extra>",
            ),
            row=r + 1,
            col=c + 1,
        )
        axes = fig.get_subplot(r + 1, c + 1)
        fig.add_annotation(
            text="<br>".join(_short(line) for line in captions[i]),
            x=sum(axes.xaxis.domain) / 2,
            y=axes.yaxis.domain[0],
            xref="paper",
            yref="paper",
            xanchor="center",
            yanchor="top",
            showarrow=False,
            font={"size": _CAPTION_FONT_PX},
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    margin = {"l": 10, "r": 10, "t": 50 if title else 10, "b": caption_px}
    fig.update_layout(
        title=title or None,
        height=plot_px + margin["t"] + margin["b"],
        margin=margin,
    )
    return fig


def feature_map_pool(shape: Sequence[int], *, cols: int | None = None, max_px: int = 640) -> int:
    """Return the smallest block size k >= 1 at which C maps of H x W, each averaged over k x k
    blocks (``plot_feature_maps(pool=k)``), tile into a grid at most ``max_px`` cells a side.

    shape: (C, H, W). The figure is at most ``max_px`` screen pixels a side, so cells any finer
    fall several to a pixel: vgg16's first layer (64 maps of 224 x 224) gives k = 3, a ninth of
    the data, and a few maps of that size give k = 1.
    """
    n, h, w = (int(v) for v in shape)
    k = 1
    while k < max(h, w):
        _, grid = _tiling(n, -(-h // k), -(-w // k), cols=cols, pad=1)
        if max(grid) <= max_px:
            break
        k += 1
    return k


def _block_mean(maps: np.ndarray, k: int) -> np.ndarray:
    """Return (C, ceil(H/k), ceil(W/k)): the mean of each k x k block of each map (C, H, W); a
    block cut by the bottom or right edge averages the cells it has. NaNs stay NaN."""
    n, h, w = maps.shape
    hk, wk = -(-h // k), -(-w // k)
    sums = np.zeros((n, hk * k, wk * k), dtype=np.float64)
    counts = np.zeros((hk * k, wk * k), dtype=np.float64)
    sums[:, :h, :w] = maps
    counts[:h, :w] = 1.0
    block_sums = sums.reshape(n, hk, k, wk, k).sum(axis=(2, 4))  # (C, hk, wk)
    block_counts = counts.reshape(hk, k, wk, k).sum(axis=(1, 3))  # (hk, wk)
    return (block_sums / block_counts).astype(np.float32)


def plot_feature_maps(
    maps: np.ndarray,
    *,
    channel_labels: Sequence[str] | None = None,
    cols: int | None = None,
    title: str = "",
    shared_scale: bool = False,
    max_px: int = 640,
    pool: int = 1,
) -> go.Figure:
    """Return a grid of activation maps (C, H, W), one heatmap per map; hover gives the map's
    channel and the raw activation.

    Each map is coloured from its own minimum to its own maximum, so the colour shows where in
    the image a channel responds (one colour bar, 0 min to 1 max); with ``shared_scale`` all maps
    share one colour range in raw activation units, so strengths compare, and the colour bar
    shows those values. Each heatmap holds its map's raw values (float32) and nothing per cell
    besides: a hover text per cell made vgg16's 64 maps of 224x224 an 80 MB figure.
    With ``pool`` = k > 1 each map is first averaged over k x k blocks (``feature_map_pool``
    picks the k at which the grid fits the plot), and the colours and the hover are those means.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (C, H, W), got {maps.shape}")
    if pool < 1:
        raise ValueError(f"pool must be at least 1, got {pool}")
    what = "activation"
    if pool > 1:
        maps = _block_mean(maps, pool)
        what = f"mean of {pool}×{pool} activations"
    n, h, w = maps.shape
    pad = 1  # one empty cell between maps
    cols, shape = _tiling(n, h, w, cols=cols, pad=pad)
    lo, hi = maps.min(axis=(1, 2)), maps.max(axis=(1, 2))  # (C,) each
    if shared_scale:
        cmin, cmax = float(lo.min()), float(hi.max())
        cmax = cmax if cmax > cmin else cmin + 1.0
        colorbar_title = "activation"
    else:
        cmin, cmax = 0.0, 1.0
        colorbar_title = "activation,<br>scaled per map<br>(0 min, 1 max)"
    names = (
        list(channel_labels) if channel_labels is not None else [f"channel {i}" for i in range(n)]
    )
    fig = go.Figure()
    for i in range(n):
        r, c = divmod(i, cols)
        if shared_scale:
            zmin, zmax = cmin, cmax
        else:  # a constant map takes the bottom colour, as 0 of its own range
            zmin, zmax = float(lo[i]), float(hi[i]) if hi[i] > lo[i] else float(lo[i]) + 1.0
        fig.add_trace(
            go.Heatmap(
                z=maps[i],
                x0=c * (w + pad),
                y0=r * (h + pad),
                zmin=zmin,
                zmax=zmax,
                colorscale="Viridis",
                showscale=False,
                name=names[i],
                hovertemplate=f"{names[i]}<br>{what} %{{z:.4g}}<extra></extra>",
            )
        )
    fig.add_trace(colorbar_trace("Viridis", cmin, cmax, {"title": colorbar_title}))  # for all
    _grid_layout(fig, shape, title=title, max_px=max_px)
    fig.update_xaxes(range=[-0.5, shape[1] - 0.5])
    fig.update_yaxes(range=[shape[0] - 0.5, -0.5], autorange=False)
    return fig


def plot_weight_histogram(
    counts: np.ndarray, edges: np.ndarray, *, title: str = "", count_max: float | None = None
) -> go.Figure:
    """Return a bar histogram of weight values: counts (bins,), edges (bins + 1,).

    ``count_max`` fixes the top of the count axis (e.g. to share it with a second histogram).
    """
    counts = np.asarray(counts)
    edges = np.asarray(edges, dtype=np.float64)
    fig = go.Figure(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=np.diff(edges),
            marker_line_width=0,
            customdata=np.stack([edges[:-1], edges[1:]], axis=1),
            hovertemplate="[%{customdata[0]:.4g}, %{customdata[1]:.4g}): %{y} weights<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="weight value",
        yaxis_title="number of weights",
        bargap=0,
        xaxis_range=[float(edges[0]), float(edges[-1])],
        yaxis_range=None if count_max is None else [0, 1.05 * count_max],
        height=320,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def image_grid_png(
    tiles: np.ndarray, *, cols: int | None = None, scale: int = 1, pad: int = 1
) -> bytes:
    """Return a PNG of images tiled in a grid, white lines between them, each pixel drawn as a
    ``scale`` x ``scale`` block (nearest neighbour, so 28 x 28 digits stay sharp when enlarged).

    tiles: (n, 1, h, w) grey or (n, 3, h, w) RGB, values in [0, 1] (clipped), written as they are:
    not stretched to the grid's own range as ``to_png_bytes`` does.
    """
    from PIL import Image

    tiles = np.clip(np.asarray(tiles, dtype=np.float32), 0.0, 1.0)
    if tiles.ndim != 4 or tiles.shape[1] not in (1, 3):
        raise ValueError(f"tiles must be (n, 1 or 3, h, w), got {tiles.shape}")
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    big = tiles.repeat(scale, axis=2).repeat(scale, axis=3)  # (n, C, h*scale, w*scale)
    grid, _ = mosaic(big.transpose(0, 2, 3, 1), cols=cols, pad=pad)  # (H, W, C)
    pixels = np.round(grid * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, "PNG")
    return buffer.getvalue()


def plot_objective_curves(
    objective: np.ndarray, labels: Sequence[str], *, title: str = "", y_title: str = "objective"
) -> go.Figure:
    """Return one line per image of its objective at each step of an optimisation.

    objective: (steps, n), step 1 first; ``labels[i]`` names image i in the legend and the hover.
    """
    objective = np.asarray(objective, dtype=np.float64)
    if objective.ndim != 2 or objective.shape[1] != len(labels):
        raise ValueError(
            f"objective must be (steps, n) with n = {len(labels)} labels, got {objective.shape}"
        )
    steps = np.arange(1, objective.shape[0] + 1)
    fig = go.Figure(
        [
            go.Scatter(
                x=steps,
                y=objective[:, i],
                mode="lines",
                name=label,
                hovertemplate=f"{label}<br>step %{{x}}: %{{y:.4g}}<extra></extra>",
            )
            for i, label in enumerate(labels)
        ]
    )
    fig.update_layout(
        title=title or None,
        xaxis_title="step",
        yaxis_title=y_title,
        height=340,
        margin=dict(l=10, r=10, t=50 if title else 10, b=10),
    )
    return fig
