"""vizlib.plots.attribution: the overlays and the top-5 chart."""

from __future__ import annotations

import re

import numpy as np
import pytest
from plotly.colors import get_colorscale, hex_to_rgb, unlabel_rgb

from vizlib.plots import plot_attribution_overlay

# Streamlit's chart theme replaces these literal strings anywhere in a figure's JSON with its
# own theme colours (streamlit/elements/lib/streamlit_plotly_theme.py).
STREAMLIT_PLACEHOLDER = re.compile(r"#0000(0[1-9]|[1-3][0-9]|40)", re.IGNORECASE)


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
    assert not STREAMLIT_PLACEHOLDER.search(fig.to_json())
    (overlay,) = [t for t in fig.data if t.type == "heatmap"]
    assert overlay.opacity == 0.4
    assert [p for p, _ in overlay.colorscale] == pytest.approx([p for p, _ in get_colorscale(name)])
    assert [_rgb(c) for _, c in overlay.colorscale] == [_rgb(c) for _, c in get_colorscale(name)]
    assert all(c.startswith("rgb(") for _, c in overlay.colorscale)  # no alpha anywhere
    if not signed:
        assert overlay.colorscale[0][1] == "rgb(0, 0, 4)"  # black, not Streamlit's pink
