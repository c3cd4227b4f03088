"""vizlib.plots.attribution: the overlays and the top-5 chart."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from PIL import Image
from plotly.colors import get_colorscale, hex_to_rgb, unlabel_rgb
from plotly.utils import PlotlyJSONEncoder

from vizlib.plots import (
    plot_attribution_colorbar,
    plot_attribution_overlay,
    plot_top_predictions,
)

# Streamlit's chart theme replaces these literal strings anywhere in a figure's JSON with its
# own theme colours (streamlit/elements/lib/streamlit_plotly_theme.py).
STREAMLIT_PLACEHOLDER = re.compile(r"#0000(0[1-9]|[1-3][0-9]|40)", re.IGNORECASE)


def _placeholders(fig) -> list[str]:
    """Streamlit's placeholder colours in the figure's own traces and layout; its template is
    Streamlit's once a page has imported it, full of them, and is meant to be replaced."""
    spec = fig.to_plotly_json()
    spec["layout"].pop("template", None)
    return STREAMLIT_PLACEHOLDER.findall(json.dumps(spec, cls=PlotlyJSONEncoder))


def _rgb(colour: str) -> tuple[float, ...]:
    return tuple(hex_to_rgb(colour)) if colour.startswith("#") else unlabel_rgb(colour)


@pytest.mark.parametrize(("signed", "name"), [(False, "Inferno"), (True, "RdBu_r")])
def test_overlay_colours_survive_streamlit_and_the_colour_bar_is_opaque(signed, name):
    """Inferno's darkest colour is "#000004", one of Streamlit's placeholders: it reached the
    browser as light pink, at the heatmap's and the colour bar's low end. The scale now carries
    the same colours as plotly's own, each opaque; only the overlay's trace is see-through."""
    image = np.linspace(0, 1, 64).reshape(8, 8)
    heat = np.linspace(-1, 1, 64).reshape(8, 8)
    fig = plot_attribution_overlay(image, heat, signed=signed, opacity=0.4)
    assert _placeholders(fig) == []
    (overlay,) = [t for t in fig.data if t.type == "heatmap"]
    assert overlay.opacity == 0.4
    assert [p for p, _ in overlay.colorscale] == pytest.approx([p for p, _ in get_colorscale(name)])
    assert [_rgb(c) for _, c in overlay.colorscale] == [_rgb(c) for _, c in get_colorscale(name)]
    assert all(c.startswith("rgb(") for _, c in overlay.colorscale)  # no alpha anywhere
    if not signed:
        assert overlay.colorscale[0][1] == "rgb(0, 0, 4)"  # black, not Streamlit's pink


def test_every_prediction_bar_is_labelled_and_tiny_ones_read_below_a_tenth():
    """A bar narrower than a pixel (1e-9) got no label from plotly, and 4e-5 read "0.0%"."""
    labels = ["seven", "one", "two", "nine", "four"]
    probs = [0.99953, 0.0004, 0.0001, 4e-5, 1e-9]
    fig = plot_top_predictions(labels, probs, title="Top-5")
    (bars,) = fig.data
    assert list(bars.x) == probs and list(bars.y) == labels
    notes = fig.layout.annotations
    assert list(fig.layout.yaxis.categoryarray) == labels  # row i is labels[i]
    assert [(n.y, n.x) for n in notes] == list(enumerate(probs))
    assert [n.text for n in notes] == [">99.9%", "<0.1%", "<0.1%", "<0.1%", "<0.1%"]
    assert all(not n.showarrow for n in notes)
    # the long bar holds its label inside its end, the short ones have it after theirs
    assert [(n.xanchor, n.xshift) for n in notes] == [("right", -4)] + [("left", 4)] * 4


def test_prediction_labels_round_to_a_tenth_of_a_percent():
    fig = plot_top_predictions(["a", "b", "c", "d"], [0.5, 0.3, 0.1996, 0.0005])
    assert [n.text for n in fig.layout.annotations] == ["50.0%", "30.0%", "20.0%", "0.1%"]
    assert [n.xanchor for n in fig.layout.annotations] == ["left"] * 4
    # a float32 softmax saturated at 1 is still not certainty, as everywhere in the app
    assert plot_top_predictions(["a"], [1.0]).layout.annotations[0].text == ">99.9%"


def test_class_names_that_are_numbers_keep_their_labels_on_their_bars():
    """Digit classes are named "2", "1", ...: an annotation placed at y="2" on a category axis
    went to row 2 in the browser (plotly reads it as an index), so the labels sat on the wrong
    bars. They are placed by row index, the bars' order fixed by the category array."""
    labels, probs = ["2", "1", "8", "3", "7"], [0.9, 0.05, 0.03, 0.015, 0.005]
    fig = plot_top_predictions(labels, probs)
    assert fig.layout.yaxis.type == "category" and fig.layout.yaxis.categoryorder == "array"
    assert list(fig.layout.yaxis.categoryarray) == labels
    assert [n.y for n in fig.layout.annotations] == [0, 1, 2, 3, 4]
    assert [n.text for n in fig.layout.annotations] == ["90.0%", "5.0%", "3.0%", "1.5%", "0.5%"]


@pytest.mark.parametrize("shape", [(28, 28), (16, 32), (40, 20)])
@pytest.mark.parametrize("showscale", [True, False])
def test_overlay_of_a_given_width_is_as_high_as_its_image_needs(shape, showscale):
    """A fixed 380 px height left blank bands around a narrow figure's image; with a width the
    plot area has the image's aspect ratio, so the image fills it. Without its colour bar (one
    shared bar drawn elsewhere) the figure loses the bar's margin, not image height."""
    image = np.zeros(shape)
    fig = plot_attribution_overlay(image, image + 1.0, width=240, showscale=showscale)
    lay, heat = fig.layout, fig.data[1]
    area_w = lay.width - lay.margin.l - lay.margin.r
    area_h = lay.height - lay.margin.t - lay.margin.b
    assert lay.width == 240 and area_w == 230
    assert area_h == round(area_w * shape[0] / shape[1])
    assert heat.showscale is showscale
    assert lay.margin.b >= 70 if showscale else lay.margin.b < 20
    assert plot_attribution_overlay(image, image).layout.height == 380  # no width: as before


@pytest.mark.parametrize("signed", [False, True])
def test_shared_colour_bar_is_the_scale_of_the_overlays_it_stands_for(signed):
    heat = np.linspace(-0.5, 2.0, 64).reshape(8, 8)
    overlay = plot_attribution_overlay(
        np.zeros((8, 8)), heat, signed=signed, zmax=3.0, showscale=False
    ).data[1]
    fig = plot_attribution_colorbar(3.0, signed=signed, title="absolute attribution", width=480)
    (trace,) = fig.data
    marker = trace.marker
    assert marker.showscale and (marker.cmin, marker.cmax) == (overlay.zmin, overlay.zmax)
    assert (marker.cmin, marker.cmax) == ((-3.0, 3.0) if signed else (0.0, 3.0))
    assert marker.colorscale == overlay.colorscale
    assert marker.colorbar.title.text == "absolute attribution"
    assert fig.layout.width == 480
    assert list(trace.x) == [None]  # nothing drawn but the bar
    assert _placeholders(fig) == []


def test_overlay_title_sits_under_the_mode_bar_with_the_tools_that_matter():
    """On a 240 px overlay plotly's mode bar (eight buttons, 224 px) covered the title while the
    mouse was over the figure. The title now stands just above the image, under a band left
    for the mode bar at the top of the figure, and the bar drops the buttons that repeat others
    on a fixed image (zoom in/out, autoscale). The browser test measures both on the page."""
    image = np.zeros((28, 28))
    fig = plot_attribution_overlay(image, image + 1.0, title="Integrated Gradients", width=240)
    title, margin = fig.layout.title, fig.layout.margin
    assert title.text == "Integrated Gradients"
    assert (title.yref, title.y, title.yanchor) == ("paper", 1, "bottom")  # on the image's top
    assert margin.t - title.pad.b >= 28 + 20  # the mode bar's 28 px band, then a 16 px line
    assert set(fig.layout.modebar.remove) == {"zoomIn2d", "zoomOut2d", "autoScale2d"}
    area_h = fig.layout.height - margin.t - margin.b
    assert area_h == 230  # the taller top margin takes nothing from the image


def _json_bytes(fig) -> int:
    """Bytes of the figure's JSON as Streamlit sends it (plotly.io.to_json), less the template
    (Streamlit puts its theme there) and less plotly's escapes: it writes every '/' as six
    characters (for HTML), a quarter more on the base64 of some float32 data, whatever the
    figure."""
    fig = go.Figure(fig).update_layout(template=None)
    return len(json.dumps(json.loads(pio.to_json(fig, validate=False)), separators=(",", ":")))


def _photo(h: int, w: int) -> np.ndarray:
    """A smooth colour image (H, W, 3) in [0, 1], compressible as a photo is: gradients and a
    disc."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    disc = ((yy - 0.5) ** 2 + (xx - 0.4) ** 2 < 0.1).astype(float)
    return np.clip(np.stack([xx, yy, 0.3 + 0.5 * disc], axis=-1), 0, 1)


def _png_size(image: np.ndarray) -> int:
    """Bytes of the image's 8-bit pixels as a PNG (PIL's default compression)."""
    buffer = io.BytesIO()
    Image.fromarray((image * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return len(buffer.getvalue())


def test_overlay_json_carries_its_heatmap_and_a_compact_image_and_little_else():
    """The background went as a z-array, 4/3 byte of JSON per channel value: 200 kB for a
    224 x 224 RGB image in every tile, beside the heatmap's 268 kB; the page sent 1.9 MB for
    resnet18's four tiles. The image is now a PNG: the figure is the float32 heatmap and the
    image's PNG in base64 (4/3 byte per byte), and a few kB of colour scale, hover and layout."""
    rng = np.random.default_rng(0)
    image = _photo(224, 224)
    heat = rng.normal(size=(224, 224))  # a saliency-like map: every pixel its own value
    fig = plot_attribution_overlay(image, heat, title="Saliency", width=240)
    carried = 4 * heat.size + _png_size(image)  # float32 values, PNG bytes
    assert _json_bytes(fig) <= 4 / 3 * carried + 4096


def test_overlay_image_is_its_pixels_exactly():
    """The PNG behind the heatmap holds the image's 8-bit pixels as the z-array did, nothing
    lost; a grey image (H, W) goes as one channel."""
    for image in (_photo(30, 40), np.linspace(0, 1, 1200).reshape(30, 40)):
        fig = plot_attribution_overlay(image, np.ones((30, 40)), width=240)
        picture = fig.data[0]
        assert picture.type == "image" and picture.z is None
        head, data = picture.source.split(",", 1)
        assert head == "data:image/png;base64"
        png = Image.open(io.BytesIO(base64.b64decode(data)))
        expected = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        assert png.mode == ("RGB" if image.ndim == 3 else "L")
        np.testing.assert_array_equal(np.asarray(png), expected)


def _blocky(rows: list[int], cols: list[int], seed: int = 0) -> np.ndarray:
    """A map (sum(rows), sum(cols)) constant on blocks of the given heights and widths, as
    Occlusion's is between its windows' edges."""
    values = np.random.default_rng(seed).normal(size=(len(rows), len(cols)))
    return np.repeat(np.repeat(values, rows, axis=0), cols, axis=1).astype(np.float32)


def test_a_map_constant_on_blocks_goes_as_one_cell_per_block():
    """resnet18's Occlusion map (window 32, stride 16) holds 14 x 14 values, each on 16 x 16
    pixels: it went as 224 x 224 float32 values (268 kB). It now goes as one cell per block,
    the cells' edges on the pixels' edges, each block's hover naming its pixel ranges; drawn
    back pixel by pixel, it is the map, exactly."""
    heat = _blocky([16] * 14, [16] * 14)
    fig = plot_attribution_overlay(_photo(224, 224), heat, title="Occlusion", width=240)
    cells = fig.data[1]
    assert np.shape(cells.z) == (14, 14)
    assert list(cells.x) == list(cells.y) == [16 * i - 0.5 for i in range(15)]
    assert cells.text[0][0] == "x 0–15, y 0–15" and cells.text[2][1] == "x 16–31, y 32–47"
    assert cells.hovertemplate == "Occlusion<br>%{text}<br>attribution %{z:.4g}<extra></extra>"
    # a pixel's cell: the one whose edges hold the pixel's centre
    col = np.searchsorted(np.asarray(cells.x), np.arange(224)) - 1
    row = np.searchsorted(np.asarray(cells.y), np.arange(224)) - 1
    np.testing.assert_array_equal(np.asarray(cells.z)[row][:, col], heat)
    no_image = go.Figure(fig).update_traces(source=None, selector=dict(type="image"))
    assert _json_bytes(no_image) <= 40 * 14 * 14 + 4096  # was 268 kB

    # uneven blocks (a stride that does not divide the side) and one-pixel edges
    heat = _blocky([1, 6, 6, 6, 5], [6, 6, 6, 6, 4], seed=1)
    cells = plot_attribution_overlay(np.zeros((24, 28)), heat).data[1]
    assert list(cells.y) == [-0.5, 0.5, 6.5, 12.5, 18.5, 23.5]
    assert cells.text[0][4] == "x 24–27, y 0"


def test_a_map_of_small_blocks_or_none_goes_pixel_by_pixel():
    """Where blocks average fewer than 16 pixels (lenet's Occlusion: 2 x 2), their hover texts
    would cost more than the values they replace: the map goes as it is, hovered pixel by
    pixel."""
    for heat in (_blocky([2] * 14, [2] * 14), np.random.default_rng(2).normal(size=(28, 28))):
        cells = plot_attribution_overlay(np.zeros((28, 28)), heat, title="Occlusion").data[1]
        assert np.asarray(cells.z).dtype == np.float32 and np.shape(cells.z) == (28, 28)
        assert cells.x is None and cells.y is None and cells.text is None
        np.testing.assert_array_equal(cells.z, heat.astype(np.float32))
        assert cells.hovertemplate == (
            "Occlusion<br>x %{x}, y %{y}<br>attribution %{z:.4g}<extra></extra>"
        )


def test_randomization_grid_scales_each_map_to_its_own_maximum():
    from vizlib.plots import plot_randomization_maps, plot_randomization_similarity, stage_labels

    stages = ["trained", "fc2", "conv1"]
    maps = {
        "saliency": [np.array([[1.0, -4.0], [2.0, 0.0]]), np.full((2, 2), 3.0), np.zeros((2, 2))],
        "gradcam": [np.eye(2), -np.eye(2), 5 * np.eye(2)],
    }
    fig = plot_randomization_maps(stages, maps, titles={"saliency": "Saliency"})
    assert len(fig.data) == 6
    first = fig.data[0]
    assert np.allclose(first.z, [[0.25, 1.0], [0.5, 0.0]])  # |a| / max|a|
    assert np.allclose(first.customdata, maps["saliency"][0])  # the signed values on hover
    assert np.allclose(fig.data[2].z, 0)  # an all-zero map stays 0, no division by zero
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:3] == ["trained", "1", "2"] and "Saliency" in titles and "gradcam" in titles
    assert stage_labels(stages) == ["trained", "1 · fc2", "2 · conv1"]
    lines = plot_randomization_similarity(stages, {"saliency": [1.0, 0.3, -0.1]}, metric="ssim")
    assert list(lines.data[0].x) == [0, 1, 2]
    assert list(lines.data[0].customdata) == stage_labels(stages)  # the layer names on hover
    assert list(lines.layout.xaxis.ticktext) == ["trained", "1", "2"]
    assert lines.layout.yaxis.title.text.startswith("SSIM")
