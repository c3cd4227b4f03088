"""Colour helpers shared by the figure modules."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import get_colorscale, hex_to_rgb


def rgb_colorscale(name: str) -> list[list]:
    """Return plotly's named colour scale as [position, "rgb(r, g, b)"] pairs, no hex codes.

    Streamlit's chart theme replaces the literal strings "#000001" to "#000040" anywhere in a
    figure's JSON with its own theme colours; Inferno and Magma start at "#000004", so their
    dark end (the lowest values, and a colour bar's low end) would reach the browser as
    Streamlit's light pink.
    """
    return [
        [pos, "rgb({}, {}, {})".format(*hex_to_rgb(c)) if c.startswith("#") else c]
        for pos, c in get_colorscale(name)
    ]


def colorbar_trace(colorscale, cmin: float, cmax: float, colorbar: dict) -> go.Scatter:
    """Return an empty trace that only carries a colour bar: one bar for several heatmaps or
    images whose own scales are hidden (or that have none)."""
    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        showlegend=False,
        hoverinfo="skip",
        marker={
            "colorscale": colorscale,
            "cmin": cmin,
            "cmax": cmax,
            "color": [cmin],
            "showscale": True,
            "colorbar": colorbar,
        },
    )
