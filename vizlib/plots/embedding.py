"""Figures for the embeddings page: 2-D maps of several layers side by side in one WebGL figure."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "PALETTE",
    "plot_embeddings",
    "scatter_payload",
    "subsample_for_drawing",
    "thumbnail_sprite",
]

PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip


def subsample_for_drawing(n: int, max_points: int, *, seed: int = 0) -> np.ndarray:
    """Return sorted indices (M,) of at most ``max_points`` of ``n`` points, a seeded random subset."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def _map_size(maps: dict[str, np.ndarray]) -> int:
    """Return N, the points every map (N, 2) holds; ValueError for none or unequal maps."""
    if not maps:
        raise ValueError("Give at least one map to plot.")
    n = len(next(iter(maps.values())))
    for name, coords in maps.items():
        if np.asarray(coords).shape != (n, 2):
            raise ValueError(f"map {name!r} must be (N, 2) with N = {n}, got {np.shape(coords)}.")
    return n


def _class_name(cls: int, labels, class_names: list[str] | None) -> str:
    """Return the legend text of class number ``cls`` ("all points" when there are no labels)."""
    if labels is None:
        return "all points"
    return str(class_names[cls]) if class_names and 0 <= cls < len(class_names) else str(cls)


def _rounded(values: np.ndarray) -> list[float]:
    """Return ``values`` as floats of 5 significant digits (the JSON stays small)."""
    return [float(f"{v:.5g}") for v in values]


def plot_embeddings(
    maps: dict[str, np.ndarray],
    labels: np.ndarray | None = None,
    *,
    class_names: list[str] | None = None,
    titles: dict[str, str] | None = None,
    max_points: int = 20000,
    axis_label: str = "t-SNE",
    axis_titles: tuple[str, str] | None = None,
    marker_size: int = 4,
) -> go.Figure:
    """Return one figure with a ``go.Scattergl`` subplot per layer, points coloured by label.

    ``maps`` {layer: coordinates (N, 2)} (same N and point order for all layers), ``labels``
    (N,) ints or None. Each point's ``customdata`` is its index in the data set, so a click
    (``st.plotly_chart(on_select=...)``) can show the image. One figure keeps the page at a
    single WebGL context. Above ``max_points`` a seeded random subset is drawn. The axes are
    ``axis_titles`` (x, y), by default "<axis_label> 1" and "<axis_label> 2".
    """
    x_title, y_title = axis_titles or (f"{axis_label} 1", f"{axis_label} 2")
    names = list(maps)
    n = _map_size(maps)
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
            label_text = _class_name(int(cls), labels, class_names)
            fig.add_trace(
                go.Scattergl(
                    x=coords[idx, 0],
                    y=coords[idx, 1],
                    mode="markers",
                    marker={"size": marker_size, "color": PALETTE[int(cls) % len(PALETTE)]},
                    name=label_text,
                    legendgroup=label_text,
                    showlegend=c == 1,
                    customdata=idx,
                    hovertemplate=(
                        f"index %{{customdata}}<br>label {label_text}<br>"
                        f"({x_title}, {y_title}) = (%{{x:.2f}}, %{{y:.2f}})<extra>{name}</extra>"
                    ),
                ),
                row=1,
                col=c,
            )
        # equal scales, as the linked scatter's: a map's distances are the same in x and y;
        # the plotting area shrinks to fit instead of the ranges widening
        fig.update_xaxes(title_text=x_title, constrain="domain", row=1, col=c)
        fig.update_yaxes(
            title_text=y_title if c == 1 else None,
            scaleanchor="x" if c == 1 else f"x{c}",
            scaleratio=1,
            constrain="domain",
            row=1,
            col=c,
        )
    fig.update_layout(
        height=430,
        margin={"l": 40, "r": 10, "t": 40, "b": 40},
        legend={"title": {"text": "label"}, "itemsizing": "constant"},
        clickmode="event+select",
        dragmode="pan",
    )
    return fig


def thumbnail_sprite(images: np.ndarray, *, side: int = 32) -> tuple[bytes, str, int, int]:
    """Return (image bytes, MIME type, thumbnail side in pixels, columns) of a sprite sheet.

    ``images`` (M, h, w) grey or (M, h, w, 3) colour, uint8 pixels 0..255 (used as they are)
    or floats in [0, 1]; each is scaled (nearest for small ones, antialiased for big ones) to
    fit ``side`` x ``side`` and the thumbnails are tiled row by row, ``columns`` per row:
    thumbnail k sits at (k % columns, k // columns) x side. Grey sheets are PNG; colour sheets
    JPEG (quality 85), many times smaller for photos.
    """
    from PIL import Image

    arr = np.asarray(images)
    if arr.ndim not in (3, 4) or len(arr) == 0 or (arr.ndim == 4 and arr.shape[-1] != 3):
        raise ValueError(f"images must be (M, h, w) or (M, h, w, 3), got {arr.shape}")
    if arr.dtype == np.uint8:
        unit = None  # floats in [0, 1] only if they must be resampled
    else:
        unit = np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0)
    m, h, w = arr.shape[:3]
    t = max(1, min(side, max(h, w)))  # never enlarge: the browser scales thumbnails up
    if max(h, w) > t:  # shrink all at once (antialiased), keeping the aspect ratio
        import torch
        import torch.nn.functional as F

        size = (max(1, round(h * t / max(h, w))), max(1, round(w * t / max(h, w))))
        unit = arr.astype(np.float32) / 255.0 if unit is None else unit
        x = torch.from_numpy(unit.reshape(m, h, w, -1)).permute(0, 3, 1, 2)  # (M, C, h, w)
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        small = x.permute(0, 2, 3, 1).clamp(0, 1).numpy()  # (M, h', w', C)
        unit = small[..., 0] if arr.ndim == 3 else small
        h, w = size
    pixels = arr if unit is None else np.round(unit * 255).astype(np.uint8)  # (M, h, w[, 3])
    cols = max(1, math.ceil(math.sqrt(m)))
    rows = math.ceil(m / cols)
    mode = "L" if arr.ndim == 3 else "RGB"
    tiles = np.zeros((rows * cols, t, t, *arr.shape[3:]), dtype=np.uint8)
    top, left = (t - h) // 2, (t - w) // 2  # centred in its tile
    tiles[:m, top : top + h, left : left + w] = pixels
    grid = tiles.reshape(rows, cols, t, t, *arr.shape[3:]).swapaxes(1, 2)  # (rows, t, cols, t, .)
    sheet = Image.fromarray(grid.reshape(rows * t, cols * t, *arr.shape[3:]), mode)
    buffer = io.BytesIO()
    if mode == "L":
        sheet.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue(), "image/png", t, cols
    sheet.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue(), "image/jpeg", t, cols


def scatter_payload(
    maps: dict[str, np.ndarray],
    labels: np.ndarray | None = None,
    *,
    class_names: list[str] | None = None,
    images: np.ndarray | None = None,
    max_points: int = 20000,
    max_thumbnails: int = 5000,
    thumbnail_side: int = 32,
    axis_label: str = "t-SNE",
    seed: int = 0,
) -> dict:
    """Return the JSON-ready data of the embeddings page's linked scatter (layers side by side).

    ``maps`` {layer: (N, 2)}, ``labels`` (N,) ints or None, ``images`` (N, h, w[, 3]) uint8
    0..255 or floats in [0, 1] (as ``thumbnail_sprite`` takes them), or None. Keys: ``index``
    (M,) the drawn points' indices into the data (a seeded subset when N > ``max_points``),
    ``label`` (M,) their class numbers, ``classes`` [{"id", "name", "colour"}], ``layers``
    [{"name", "x", "y"}] (coordinates rounded to 5 significant digits), ``axis``, and, with
    images, ``sprite`` (a data URL), ``thumb`` (side, px), ``columns`` and
    ``thumb_slot`` (M,): the drawn point's place in the sprite, -1 when it has no thumbnail
    (at most ``max_thumbnails``, a seeded subset of the drawn points, keep the sheet small).
    """
    n = _map_size(maps)
    keep = subsample_for_drawing(n, max_points, seed=seed)  # (M,)
    lab = np.zeros(n, dtype=int) if labels is None else np.asarray(labels).astype(int).reshape(-1)
    if len(lab) != n:
        raise ValueError(f"labels have {len(lab)} entries but there are {n} points.")
    classes = []
    for cls in np.unique(lab[keep]).tolist():
        name = _class_name(cls, labels, class_names)
        classes.append({"id": int(cls), "name": name, "colour": PALETTE[cls % len(PALETTE)]})
    payload = {
        "index": keep.tolist(),
        "label": lab[keep].tolist(),
        "classes": classes,
        "layers": [
            {"name": str(name), "x": _rounded(coords[keep, 0]), "y": _rounded(coords[keep, 1])}
            for name, coords in (
                (name, np.asarray(c, dtype=np.float64)) for name, c in maps.items()
            )
        ],
        "axis": axis_label,
        "has_labels": labels is not None,
    }
    if images is not None:
        if len(images) != n:
            raise ValueError(f"images have {len(images)} entries but there are {n} points.")
        order = np.random.default_rng(seed).permutation(len(keep))[:max_thumbnails]
        slots = np.full(len(keep), -1, dtype=int)
        slots[np.sort(order)] = np.arange(len(order))
        with_thumbs = keep[np.sort(order)]  # (T,) data indices, in sprite order
        data, mime, side, cols = thumbnail_sprite(images[with_thumbs], side=thumbnail_side)
        payload.update(
            sprite=f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}",
            thumb=side,
            columns=cols,
            thumb_slot=slots.tolist(),
        )
    return payload
