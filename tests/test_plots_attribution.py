"""vizlib.plots.attribution: the overlays and the top-5 chart."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
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
    assert plot_top_predictions(["a"], [1.0]).layout.annotations[0].text == "100.0%"


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
