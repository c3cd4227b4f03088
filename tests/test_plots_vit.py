"""vizlib.plots.vit: the ViT figures (attention distance, overlays, similarity grid, components)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vizlib.plots import (
    plot_attention_distance,
    plot_attention_overlays,
    plot_patch_components,
    plot_position_similarity,
    plot_sinusoidal_encoding,
    plot_sinusoidal_similarity,
)


def test_distance_plot_has_one_dot_per_head_and_the_baseline_beside_the_plot():
    d = np.arange(24, dtype=float).reshape(4, 6)  # (layers, heads) in pixels
    fig = plot_attention_distance(d, baseline=116.49)
    # one trace per head, named in the legend (the colours had no key)
    assert [t.name for t in fig.data] == [f"head {h}" for h in range(6)]
    assert fig.layout.showlegend is not False
    for head, dots in enumerate(fig.data):
        np.testing.assert_array_equal(dots.y, d[:, head])
        assert np.round(dots.x).astype(int).tolist() == [1, 2, 3, 4]  # layers, 1-based
        assert dots.customdata[:, 1].tolist() == [head] * 4
    assert len({t.marker.color for t in fig.data}) == 6
    # every dot has a mid-grey rim, seen on a light and on a dark theme's background
    assert {(t.marker.line.width, t.marker.line.color) for t in fig.data} == {
        (1, "rgb(160, 160, 160)")
    }
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 116.49 and line.line.dash == "dash"
    (label,) = fig.layout.annotations
    # beside the plot area, not on the late layers' dots that approach the line
    assert label.xref == "paper" and label.x >= 1.0 and label.xanchor == "left"
    assert "116.5 px" in label.text
    assert plot_attention_distance(d).layout.annotations == ()


def _row_gaps_px(fig) -> list[float]:
    """Pixels between each tile title (its text starts at its subplot's top) and the bottom of
    the subplot above it: the room the title has, the same at any window width (the heights are
    fixed and an image never leaves its subplot)."""
    plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    bottoms = sorted({ax.domain[0] for name, ax in fig.layout.to_plotly_json().items()
                      if name.startswith("yaxis") for ax in [fig.layout[name]]})  # fmt: skip
    gaps = []
    for note in fig.layout.annotations:
        above = [b for b in bottoms if b > note.y + 1e-9]
        if above:
            gaps.append((min(above) - note.y) * plot_px)
    return gaps


@pytest.mark.parametrize("k", [3, 16, 28, 64])
def test_component_titles_clear_the_row_above(k):
    rng = np.random.default_rng(0)
    fig = plot_patch_components(rng.normal(size=(k, 3, 16, 16)), np.full(k, 1 / k))
    assert len(fig.layout.annotations) == k
    font = max(note.font.size for note in fig.layout.annotations)
    gaps = _row_gaps_px(fig)
    assert len(gaps) == k - min(k, 7)  # every title below the first row
    # a line of text is ~1.3 x its font size: twice the font leaves clear space
    assert all(gap >= 2 * font for gap in gaps), (min(gaps), font)
    # no tick marks below a row reaching into the titles under it
    for name in fig.layout.to_plotly_json():
        if name.startswith(("xaxis", "yaxis")):
            axis = fig.layout[name]
            assert axis.visible is False or axis.ticks == ""


def test_similarity_grid_counts_patches_from_0_at_the_top_left():
    """Ticks and hovers number patches as the array indexes them (and the ViT Attention page)."""
    rng = np.random.default_rng(1)
    sim = rng.uniform(-1, 1, size=(2, 3, 2, 3))  # (gh, gw, gh, gw)
    fig = plot_position_similarity(sim)
    assert list(fig.layout.xaxis.ticktext) == ["0", "1", "2"]
    assert list(fig.layout.yaxis.ticktext) == ["0", "1"]
    (heat,) = fig.data
    z, custom = np.asarray(heat.z, dtype=float), np.asarray(heat.customdata)
    # the cell of tile (1, 2) against key patch (0, 1): row 1 * (2 + gap) + 0, column 2 * 4 + 1
    assert list(custom[3, 9]) == [1, 2, 0, 1]
    assert z[3, 9] == np.float32(sim[1, 2, 0, 1])  # drawn in float32
    assert list(custom[0, 0]) == [0, 0, 0, 0]
    assert "column %{customdata[1]}" in heat.hovertemplate


@pytest.mark.parametrize("n", [1, 5, 50])
def test_dot_product_heatmap_fills_its_square_axes(n):
    """The equal scale shrinks the plotting area (constrain 'domain') instead of widening the
    ranges: without it a wide column drew the axes from about -50 to 150, the heatmap a small
    square in the middle."""
    sim = np.arange(n * n, dtype=float).reshape(n, n)
    fig = plot_sinusoidal_similarity(sim)
    x, y = fig.layout.xaxis, fig.layout.yaxis
    assert y.scaleanchor == "x" and x.constrain == y.constrain == "domain"
    assert list(x.range) == [-0.5, n - 0.5]  # the cells' edges, nothing around them
    assert list(y.range) == [n - 0.5, -0.5]  # position 0 at the top
    (heat,) = fig.data
    np.testing.assert_array_equal(np.asarray(heat.z, dtype=float), sim)


def test_attention_overlay_hover_gives_each_patch_and_its_value():
    rng = np.random.default_rng(2)
    images = rng.uniform(size=(2, 3, 8, 12))  # (B, C, H, W): patches of 4 px, a 2x3 grid
    maps = rng.uniform(size=(2, 2, 3))  # (B, gh, gw)
    fig = plot_attention_overlays(images, maps, value_name="attention weight")
    layers = [t for t in fig.data if t.type == "heatmap"]
    assert len(layers) == 2 and all(t.opacity == 0 and t.showscale is False for t in layers)
    for layer, heat in zip(layers, maps, strict=True):
        np.testing.assert_array_equal(np.asarray(layer.z), heat)
        # patch (r, c) is centred on pixel (4r + 1.5, 4c + 1.5) of the image it lies over
        assert (layer.x0, layer.dx, layer.y0, layer.dy) == (1.5, 4.0, 1.5, 4.0)
        custom = np.asarray(layer.customdata)
        assert list(custom[1, 2]) == [1, 2]  # (row, column) from 0
        assert "attention weight" in layer.hovertemplate
    for axis in (*fig.select_xaxes(), *fig.select_yaxes()):  # bare images: no ticks, no labels
        assert axis.ticks == "" and axis.showticklabels is False


# Streamlit's chart theme replaces these literal strings anywhere in a figure's JSON with its own
# categorical colours (streamlit/static/.../PlotlyChart*.js): Inferno's dark end, "#000004",
# reached the browser as light pink at the bottom of the overlays' colour bar.
_STREAMLIT_PLACEHOLDERS = [f"#{i:06d}" for i in range(1, 11)]


@pytest.mark.parametrize("n", [1, 3])
def test_overlay_colour_bar_survives_streamlits_theme(n):
    rng = np.random.default_rng(3)
    fig = plot_attention_overlays(
        rng.uniform(size=(n, 3, 8, 8)), rng.uniform(size=(n, 2, 2)), colorbar_title="weight"
    )
    # the figure's own traces and layout; the template is Streamlit's when streamlit is imported,
    # and its placeholders are the ones meant to be swapped
    spec = json.dumps({"data": fig.to_dict()["data"], "layout": fig.layout.to_plotly_json()
                       | {"template": None}}).lower()  # fmt: skip
    assert not [p for p in _STREAMLIT_PLACEHOLDERS if p in spec]
    (bar,) = [t for t in fig.data if t.type == "scatter"]
    scale = bar.marker.colorscale
    # the same opaque colours as the overlay's colour map, dark to light
    assert scale[0][1] == "rgb(0, 0, 4)" and scale[-1][1] == "rgb(252, 255, 164)"
    assert all(colour.startswith("rgb(") for _, colour in scale)


def test_long_panel_titles_are_shortened_in_the_middle_and_whole_on_hover():
    """Four upload names of 45 characters ran into each other above a row of panels."""
    names = [f"IMG_20241123_photo_from_my_phone_number_{i}.jpg" for i in range(4)]
    images, maps = np.zeros((4, 1, 32, 32)), np.random.default_rng(0).uniform(size=(4, 8, 8))
    fig = plot_attention_overlays(images, maps, titles=names)
    shown = [a.text for a in fig.layout.annotations]
    assert all(len(t) <= 14 for t in shown) and len(set(shown)) == 4  # each still its own
    assert shown[1].startswith("IMG_2") and shown[1].endswith("_1.jpg") and "…" in shown[1]
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert heat[2].hovertemplate.startswith(names[2] + "<br>patch (row ")
    short = plot_attention_overlays(images[:2], maps[:2], titles=["cat.png", "100%{x}<b>.png"])
    assert [a.text for a in short.layout.annotations] == ["cat.png", "100%{x}<b>.png"]
    hover = [t for t in short.data if t.type == "heatmap"][1].hovertemplate
    assert hover.startswith("100&#37;{x}&lt;b>.png<br>")  # not a plotly field, not a tag


@pytest.mark.parametrize("column_px", [274, 512])  # a half column at 1024 and 1500 px
def test_dot_product_heatmap_leaves_no_empty_band_in_a_half_column(column_px):
    """The figure's height follows the square heatmap and the colour bar lies under it: in a
    half column at 1024 px (274 px wide) a fixed 420 px height with the bar beside the square
    left a square of about 120 px and bands of empty space above and below it."""
    fig = plot_sinusoidal_similarity(np.eye(64))
    margin = fig.layout.margin
    (heat,) = fig.data
    bar = heat.colorbar
    assert bar.orientation == "h"  # the bar takes no width from the square
    assert bar.yanchor == "top" and bar.y < 0  # under the plotting area, not over it
    plot_w = column_px - margin.l - margin.r
    plot_h = fig.layout.height - margin.t - margin.b
    square = min(plot_w, plot_h)  # the equal scale shrinks the longer side to the shorter
    assert square >= 0.9 * plot_w or square >= 220  # the column's width, or a large square
    assert plot_h - square <= 20  # at most 20 px of the height go unused
    assert fig.layout.yaxis.constraintoward == "bottom"  # the slack under the title, not the bar


def _whole_ticks(axis) -> bool:
    """Whether plotly ticks this axis at whole numbers only (auto ticks over a few cells come
    at halves)."""
    return axis.tickmode == "linear" and float(axis.tick0).is_integer() and axis.dtick == 1


@pytest.mark.parametrize(("n", "dim"), [(2, 2), (3, 5), (12, 7)])
def test_few_positions_and_dimensions_are_ticked_at_whole_indices(n, dim):
    """Two positions of two dimensions were ticked -0.5, 0, 0.5, 1, 1.5 on both heatmaps: a
    position or dimension 0.5 does not exist."""
    enc = np.ones((n, dim))
    fig = plot_sinusoidal_encoding(enc)
    assert _whole_ticks(fig.layout.xaxis) and _whole_ticks(fig.layout.yaxis)
    fig = plot_sinusoidal_similarity(enc @ enc.T)
    assert _whole_ticks(fig.layout.xaxis) and _whole_ticks(fig.layout.yaxis)


def test_many_positions_keep_plotlys_own_ticks():
    fig = plot_sinusoidal_encoding(np.ones((64, 768)))
    assert fig.layout.xaxis.dtick is None and fig.layout.yaxis.dtick is None


def test_head_importance_heatmap_puts_layer_1_on_top():
    from vizlib.plots import plot_head_importance

    values = np.arange(6, dtype=float).reshape(2, 3)
    fig = plot_head_importance(values, normalized=True, images=64)
    heat = fig.data[0]
    assert np.array_equal(np.asarray(heat.z), values)
    assert list(heat.y) == [1, 2] and list(heat.x) == [0, 1, 2]
    assert fig.layout.yaxis.autorange == "reversed"
    assert "L2 norm" in heat.colorbar.title.text and "64 images" in fig.layout.title.text


def test_head_pruning_curves_run_over_the_share_of_heads_removed():
    from vizlib.plots import plot_head_pruning

    fig = plot_head_pruning(
        [0, 2, 4], {"a": [1.0, 0.9, 0.2], "b": [1.0, 0.5, 0.2]}, total=4, images=8
    )
    assert list(fig.data[0].x) == [0, 50, 100] and list(fig.data[0].customdata) == [0, 2, 4]
    assert fig.data[1].line.dash == "dot" and fig.data[0].line.dash is None
