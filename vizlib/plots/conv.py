"""Figures for the convolution playground: the sliding-kernel animation, coverage maps, the
transposed-convolution picture, and input / kernel / output images side by side.

Grids are drawn with row 0 at the top and one unit per cell, so cell (r, c) spans
``[c - 0.5, c + 0.5] x [r - 0.5, r + 0.5]``.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vizlib import conv as _conv

__all__ = [
    "MAX_ANIMATION_FRAMES",
    "plot_conv_animation",
    "plot_conv_images",
    "plot_coverage",
    "plot_transpose_conv",
]

MAX_ANIMATION_FRAMES = 400

_INPUT = "#9ecae1"  # input cells (blue, as in the convolution-arithmetic animations)
_PAD = "#f0f0f0"  # padding cells
# The kernel and the output cell it writes, both in orange: it reads on the blue and green
# cells and, in the legend, on a dark page as on a light one (navy and dark green were lost
# on the dark theme)
_FOOT = "rgba(230, 85, 13, 0.4)"  # kernel footprint (light enough to read the numbers under it)
_FOOT_LINE = "rgb(230, 85, 13)"
_OUT = "#a1d99b"  # output cells (green)
# Play controls under the grids, in pixels below the plot area: the slider (its current value
# clear of the axis tick labels) across the full width, then the Play / Pause buttons under it,
# so neither overlaps the other at any figure width.
_SLIDER_TOP = 50
_BUTTONS_TOP = 135
_CONTROLS_HEIGHT = 180


def _cells_path(cells: np.ndarray, *, dx: float = 0.0, dy: float = 0.0) -> tuple[list, list]:
    """Return x, y of closed unit squares around each (row, col), None-separated for one trace."""
    xs: list = []
    ys: list = []
    for r, c in np.asarray(cells).reshape(-1, 2):
        x0, y0 = c - 0.5 + dx, r - 0.5 + dy
        xs += [x0, x0 + 1, x0 + 1, x0, x0, None]
        ys += [y0, y0, y0 + 1, y0 + 1, y0, None]
    return xs, ys


def _box_path(r0: float, c0: float, r1: float, c1: float) -> tuple[list, list]:
    """Return x, y of the outline of the cell block rows r0..r1, cols c0..c1 (inclusive)."""
    return (
        [c0 - 0.5, c1 + 0.5, c1 + 0.5, c0 - 0.5, c0 - 0.5],
        [r0 - 0.5, r0 - 0.5, r1 + 0.5, r1 + 0.5, r0 - 0.5],
    )


def _grid_heatmap(
    z: np.ndarray, colors: list[str], *, text: np.ndarray | None = None, hover: str = ""
) -> go.Heatmap:
    n = len(colors)
    scale = []
    for i, color in enumerate(colors):
        scale += [[i / n, color], [(i + 1) / n, color]]
    return go.Heatmap(
        z=z,
        zmin=-0.5,
        zmax=n - 0.5,
        colorscale=scale,
        showscale=False,
        xgap=2,
        ygap=2,
        text=text,
        texttemplate="%{text}" if text is not None else None,
        hovertemplate=hover + "<extra></extra>",
    )


def _fmt(values: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.3g}")(values.astype(float))


def _square_axes(fig: go.Figure, n_cols: int) -> None:
    for i in range(1, n_cols + 1):
        suffix = "" if i == 1 else str(i)
        fig.update_xaxes(showgrid=False, zeroline=False, constrain="domain", row=1, col=i)
        fig.update_yaxes(
            showgrid=False,
            zeroline=False,
            autorange="reversed",
            scaleanchor=f"x{suffix}",
            constrain="domain",
            row=1,
            col=i,
        )


def _play_controls(labels: list[str], *, duration_ms: int) -> dict:
    # Every frame redraws: without it plotly.js blanked the grids' heatmaps (colours and numbers)
    # as soon as the slider moved or Play ran, leaving the kernel box on white.
    steps = [
        {
            "args": [[label], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"}],
            "label": label,
            "method": "animate",
        }
        for label in labels
    ]
    return {
        "updatemenus": [
            {
                "type": "buttons",
                # no highlighted "active" button: in a dark theme its light fill under light
                # text left "Play" unreadable beside Pause
                "showactive": False,
                "direction": "left",
                "x": 0.0,
                "y": 0.0,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"r": 10, "t": _BUTTONS_TOP},
                "buttons": [
                    {
                        "label": "▶ Play",
                        "method": "animate",
                        "args": [
                            None,
                            {
                                "frame": {"duration": duration_ms, "redraw": True},
                                "transition": {"duration": 0},
                                "fromcurrent": True,
                                "mode": "immediate",
                            },
                        ],
                    },
                    {
                        "label": "❚❚ Pause",
                        "method": "animate",
                        "args": [
                            [None],
                            {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"},
                        ],
                    },
                ],
            }
        ],
        "sliders": [
            {
                "active": 0,
                "x": 0.0,
                "len": 1.0,
                "y": 0.0,
                "yanchor": "top",
                "pad": {"t": _SLIDER_TOP},
                "currentvalue": {"prefix": "Output position (row, col): "},
                "steps": steps,
            }
        ],
    }


def plot_conv_animation(
    input_hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    padding: int | tuple[int, int] | str = 0,
    dilation: tuple[int, int] = (1, 1),
    *,
    padding_mode: str = "zeros",
    position: tuple[int, int] = (0, 0),
    input_values: np.ndarray | None = None,
    output_values: np.ndarray | None = None,
    duration_ms: int = 400,
    animate: bool = True,
) -> go.Figure:
    """Return the padded input grid with the dilated kernel footprint and the output grid with
    its cell highlighted, with Play / slider frames over every output position (row-major).

    input_values (H, W) and output_values (H_out, W_out) are optional numbers written in the
    cells; the padding cells then show what ``padding_mode`` fills them with. ``animate=False``
    draws only ``position`` (no frames). Raises ``ValueError`` for
    impossible settings or, when animating, more than ``MAX_ANIMATION_FRAMES`` output positions.
    """
    h, w = _conv._pair(input_hw, "Input size", minimum=1)
    kh, kw = _conv._pair(kernel, "Kernel size", minimum=1)
    sh, sw = _conv._pair(stride, "Stride", minimum=1)
    dh, dw = _conv._pair(dilation, "Dilation", minimum=1)
    (pt, pb), (pl, pr) = _conv.padding_amounts(padding, (kh, kw), (sh, sw), (dh, dw))
    ho, wo = _conv.conv_output_shape((h, w), (kh, kw), (sh, sw), padding, (dh, dw))
    positions = [(r, c) for r in range(ho) for c in range(wo)]
    if animate and len(positions) > MAX_ANIMATION_FRAMES:
        raise ValueError(
            f"{len(positions)} output positions is too many to animate "
            f"(at most {MAX_ANIMATION_FRAMES}); use a smaller input or a larger stride."
        )
    r0, c0 = position
    if not (0 <= r0 < ho and 0 <= c0 < wo):
        raise ValueError(f"Output position {position} is outside the {ho}×{wo} output.")

    hp, wp = h + pt + pb, w + pl + pr
    kind = np.zeros((hp, wp))  # 0 padding, 1 input
    kind[pt : pt + h, pl : pl + w] = 1
    in_text = None
    if input_values is not None:
        padded = _conv.padded_input(
            input_values, (kh, kw), (sh, sw), padding, (dh, dw), padding_mode
        )  # (hp, wp)
        in_text = _fmt(padded)
    out_text = _fmt(np.asarray(output_values)) if output_values is not None else None

    def traces_at(pos: tuple[int, int]) -> list[dict]:
        cells = _conv.footprint(pos, (kh, kw), (sh, sw), padding, (dh, dw))  # (K_h*K_w, 2)
        fx, fy = _cells_path(cells)
        bx, by = _box_path(
            cells[:, 0].min(), cells[:, 1].min(), cells[:, 0].max(), cells[:, 1].max()
        )
        ox, oy = _cells_path(np.array([pos]))
        return [
            dict(
                type="scatter",
                x=fx,
                y=fy,
                fill="toself",
                fillcolor=_FOOT,
                mode="lines",
                line={"color": _FOOT_LINE, "width": 1},
                hoverinfo="skip",
                name="kernel taps",
            ),  # fmt: skip
            dict(
                type="scatter",
                x=bx,
                y=by,
                mode="lines",
                line={"color": _FOOT_LINE, "width": 2, "dash": "dot"},
                hoverinfo="skip",
                name=f"extent {1 + (kh - 1) * dh}×{1 + (kw - 1) * dw}",
            ),  # fmt: skip
            dict(
                type="scatter",
                x=ox,
                y=oy,
                fill="toself",
                fillcolor=_FOOT,
                mode="lines",
                line={"color": _FOOT_LINE, "width": 2},
                hoverinfo="skip",
                name="output cell",
            ),  # fmt: skip
        ]

    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[wp / (wp + wo), wo / (wp + wo)],
        horizontal_spacing=0.08,
        subplot_titles=(
            f"Input {h}×{w}, padded to {hp}×{wp} (grey = {padding_mode} padding)"
            if hp > h or wp > w
            else f"Input {h}×{w} (no padding)",
            f"Output {ho}×{wo}",
        ),
    )
    fig.add_trace(
        _grid_heatmap(
            kind,
            [_PAD, _INPUT],
            text=in_text,
            hover="padded row %{y}, col %{x}",
        ),  # fmt: skip
        row=1,
        col=1,
    )
    fig.add_trace(
        _grid_heatmap(np.zeros((ho, wo)), [_OUT], text=out_text, hover="output row %{y}, col %{x}"),
        row=1,
        col=2,
    )
    first = traces_at((r0, c0))
    fig.add_trace(go.Scatter(first[0]), row=1, col=1)
    fig.add_trace(go.Scatter(first[1]), row=1, col=1)
    fig.add_trace(go.Scatter(first[2]), row=1, col=2)
    controls = {}
    if animate:
        labels = [f"({r}, {c})" for r, c in positions]
        fig.frames = [
            {"data": traces_at(pos), "traces": [2, 3, 4], "name": label}
            for pos, label in zip(positions, labels, strict=True)
        ]
        controls = _play_controls(labels, duration_ms=duration_ms)
        controls["sliders"][0]["active"] = positions.index((r0, c0))
    fig.update_layout(
        **controls,
        showlegend=True,
        legend={"orientation": "h", "y": 1.0, "yref": "container", "yanchor": "top", "x": 0.0},
        margin={"l": 10, "r": 10, "t": 90, "b": _CONTROLS_HEIGHT if animate else 20},
        height=max(420, min(760, 24 * max(hp, ho) + 220)),
        plot_bgcolor="rgba(0, 0, 0, 0)",  # the gaps: the page's own colour, light or dark
    )
    _square_axes(fig, 2)
    fig.update_yaxes(title_text="row (cells)", col=1)
    return fig


def plot_coverage(counts: np.ndarray, *, title: str | None = None) -> go.Figure:
    """Return a heatmap of how many times the kernel reads each input cell, (H, W) int counts
    (``vizlib.conv.coverage``), with the never-read cells (count 0) crossed out in red."""
    counts = np.asarray(counts)
    zero = np.argwhere(counts == 0)  # (n_unread, 2)
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            colorscale="Blues",
            zmin=0,
            xgap=1,
            ygap=1,
            text=counts,
            texttemplate="%{text}" if counts.size <= 1600 else None,
            colorbar={"title": {"text": "reads"}},
            hovertemplate="row %{y}, col %{x}: read %{z} time(s)<extra></extra>",
        )
    )
    if len(zero):
        fig.add_trace(
            dict(
                type="scatter",
                x=zero[:, 1],
                y=zero[:, 0],
                mode="markers",
                marker={"symbol": "x", "color": "crimson", "size": 12},
                name=f"never read ({len(zero)} cells)",
                hovertemplate="row %{y}, col %{x}: never read<extra></extra>",
            )
        )
    fig.update_layout(
        title=title or f"Coverage: reads per input cell ({len(zero)} never read)",
        showlegend=bool(len(zero)),
        legend={"orientation": "h", "y": -0.15},
        height=max(320, min(640, 22 * counts.shape[0] + 160)),
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        plot_bgcolor="rgba(0, 0, 0, 0)",  # the gaps: the page's own colour, light or dark
    )
    fig.update_xaxes(title_text="input column (cells)", showgrid=False, constrain="domain")
    fig.update_yaxes(
        title_text="input row (cells)",
        autorange="reversed",
        scaleanchor="x",
        showgrid=False,
        constrain="domain",
    )
    return fig


def plot_transpose_conv(
    input_hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    output_padding: tuple[int, int] = (0, 0),
    *,
    cell: tuple[int, int] = (0, 0),
    duration_ms: int = 500,
) -> go.Figure:
    """Return where each input cell of a transposed convolution lands: the input grid with one
    cell highlighted, and the output grid (colour = how many input cells write to each output
    cell) with that cell's K_h × K_w landing spots outlined; Play / slider frames over every
    input cell. Landing spots in the cropped border (padding) are drawn outside the output grid.
    """
    h, w = _conv._pair(input_hw, "Input size", minimum=1)
    kh, kw = _conv._pair(kernel, "Kernel size", minimum=1)
    args = (kernel, stride, padding, dilation)
    ho, wo = _conv.conv_transpose_output_shape((h, w), *args, output_padding)
    counts = _conv.transpose_coverage((h, w), *args, output_padding)  # (H_out, W_out)
    cells = [(i, j) for i in range(h) for j in range(w)]
    if len(cells) > MAX_ANIMATION_FRAMES:
        raise ValueError(f"{len(cells)} input cells is too many to animate; use a smaller input.")

    def traces_at(pos: tuple[int, int]) -> list[dict]:
        ix, iy = _cells_path(np.array([pos]))
        lands = _conv.transpose_footprint(pos, *args)  # (K_h*K_w, 2) output coords
        lx, ly = _cells_path(lands)
        return [
            dict(
                type="scatter",
                x=ix,
                y=iy,
                fill="toself",
                fillcolor=_FOOT,
                mode="lines",
                line={"color": _FOOT_LINE, "width": 2},
                hoverinfo="skip",
                name="input cell",
            ),  # fmt: skip
            dict(
                type="scatter",
                x=lx,
                y=ly,
                fill="toself",
                fillcolor="rgba(230, 85, 13, 0.45)",
                mode="lines",
                line={"color": "rgb(217, 72, 1)", "width": 2},
                hoverinfo="skip",
                name="where it lands (× kernel weights)",
            ),  # fmt: skip
        ]

    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[w / (w + wo), wo / (w + wo)],
        horizontal_spacing=0.08,
        subplot_titles=(f"Input {h}×{w}", f"Output {ho}×{wo} (colour: input cells summed here)"),
    )
    fig.add_trace(
        _grid_heatmap(np.zeros((h, w)), [_INPUT], hover="input row %{y}, col %{x}"), row=1, col=1
    )
    fig.add_trace(
        go.Heatmap(
            z=counts,
            colorscale="Oranges",
            zmin=0,
            xgap=2,
            ygap=2,
            text=counts,
            texttemplate="%{text}" if counts.size <= 1600 else None,
            showscale=False,
            hovertemplate="output row %{y}, col %{x}: %{z} input cell(s)<extra></extra>",
        ),
        row=1,
        col=2,
    )
    first = traces_at(cell)
    fig.add_trace(go.Scatter(first[0]), row=1, col=1)
    fig.add_trace(go.Scatter(first[1]), row=1, col=2)
    labels = [f"({i}, {j})" for i, j in cells]
    fig.frames = [
        {"data": traces_at(pos), "traces": [2, 3], "name": label}
        for pos, label in zip(cells, labels, strict=True)
    ]
    controls = _play_controls(labels, duration_ms=duration_ms)
    controls["sliders"][0]["currentvalue"]["prefix"] = "Input cell (row, col): "
    controls["sliders"][0]["active"] = cells.index(tuple(cell))
    fig.update_layout(
        **controls,
        legend={"orientation": "h", "y": 1.0, "yref": "container", "yanchor": "top", "x": 0.0},
        margin={"l": 10, "r": 10, "t": 90, "b": _CONTROLS_HEIGHT},
        height=max(420, min(760, 24 * max(h, ho) + 220)),
        plot_bgcolor="rgba(0, 0, 0, 0)",  # the gaps: the page's own colour, light or dark
    )
    _square_axes(fig, 2)
    # Landing spots reach P cells beyond each edge (the cropped border), output_padding excepted.
    ph, pw = _conv._pair(padding, "Padding", minimum=0)
    fig.update_xaxes(range=[-0.5 - pw, wo - 0.5 + pw], row=1, col=2)
    fig.update_yaxes(range=[ho - 0.5 + ph, -0.5 - ph], autorange=False, row=1, col=2)
    fig.update_yaxes(title_text="row (cells)", col=1)
    return fig


def _image_trace(image: np.ndarray, *, diverging: bool, name: str, units: str) -> go.BaseTraceType:
    image = np.asarray(image, dtype=float)
    if image.ndim == 3 and image.shape[0] in (3, 4) and image.shape[-1] not in (3, 4):
        image = np.moveaxis(image, 0, -1)  # (C, H, W) -> (H, W, C)
    if image.ndim == 3:
        lo, hi = float(image.min()), float(image.max())
        scaled = (image[..., :3] - lo) / (hi - lo) if hi > lo else np.zeros_like(image[..., :3])
        return go.Image(z=np.round(scaled * 255).astype(np.uint8), name=name, hoverinfo="x+y")
    bound = float(np.abs(image).max()) or 1.0
    return go.Heatmap(
        z=image.astype(np.float32),  # half the bytes of float64; hover shows 4 digits
        colorscale="RdBu_r" if diverging else "Greys_r",
        zmid=0 if diverging else None,
        zmin=-bound if diverging else None,
        zmax=bound if diverging else None,
        colorbar={"title": {"text": units, "side": "top"}, "len": 0.8},
        hovertemplate=f"row %{{y}}, col %{{x}}: %{{z:.4g}} {units}<extra>{name}</extra>",
    )


def plot_conv_images(
    image: np.ndarray,
    kernel: np.ndarray,
    output: np.ndarray,
    *,
    units: str = "",
    output_diverging: bool | None = None,
) -> go.Figure:
    """Return input, kernel and output side by side.

    image (H, W) or (H, W, 3) / (3, H, W); kernel (K_h, K_w) with its weights written in;
    output (H_out, W_out) or (3, H_out, W_out). Colour images are shown min-max scaled.
    ``output_diverging`` (default: when the output has both signs) draws it red/blue around zero.
    """
    image = np.asarray(image, dtype=float)
    kernel = np.asarray(kernel, dtype=float)
    output = np.asarray(output, dtype=float)
    if output_diverging is None:
        output_diverging = bool(output.min() < 0 < output.max())
    in_hw = image.shape[:2] if image.ndim == 2 or image.shape[-1] in (3, 4) else image.shape[1:]
    out_hw = output.shape[-2:]
    fig = make_subplots(
        rows=1,
        cols=3,
        column_widths=[0.4, 0.2, 0.4],
        horizontal_spacing=0.09,
        subplot_titles=(
            f"Input {in_hw[0]}×{in_hw[1]}",
            f"Kernel {kernel.shape[0]}×{kernel.shape[1]} (sum {kernel.sum():.3g})",
            f"Output {out_hw[0]}×{out_hw[1]}",
        ),
    )
    traces = [
        _image_trace(image, diverging=False, name="input", units=units),
        go.Heatmap(
            z=kernel,
            colorscale="RdBu_r",
            zmid=0,
            text=np.vectorize(lambda v: f"{v:.2g}")(
                kernel
            ),  # short, to stay legible in small cells
            texttemplate="%{text}" if kernel.size <= 81 else None,
            xgap=2,
            ygap=2,
            showscale=False,
            hovertemplate="row %{y}, col %{x}: weight %{z:.4g}<extra>kernel</extra>",
        ),
        _image_trace(output, diverging=output_diverging, name="output", units=units),
    ]
    for i, trace in enumerate(traces):
        if isinstance(trace, go.Heatmap) and i != 1:
            # Horizontal colour bars under their own image, so none overlaps the kernel.
            domain = fig.layout[f"xaxis{i + 1 if i else ''}"].domain
            trace.colorbar.update(
                orientation="h", x=(domain[0] + domain[1]) / 2, xanchor="center",
                y=-0.12, yanchor="top", len=domain[1] - domain[0], thickness=12,
            )  # fmt: skip
        fig.add_trace(trace, row=1, col=i + 1)
    fig.update_layout(height=500, margin={"l": 40, "r": 10, "t": 50, "b": 90, "autoexpand": False})
    _square_axes(fig, 3)
    return fig
