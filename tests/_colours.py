"""Colour checks shared by the figure tests: WCAG contrast between a drawn colour and a page."""

from __future__ import annotations

# Streamlit's page backgrounds, light and dark
LIGHT_PAGE, DARK_PAGE = "#ffffff", "#0e1117"


def luminance(colour: str) -> float:
    """WCAG relative luminance of "#rrggbb", "rgb(r, g, b)" or "rgba(r, g, b, a)" (alpha left
    out)."""
    if colour.startswith("#"):
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    else:
        channels = [int(v) / 255 for v in colour[colour.index("(") + 1 : -1].split(",")[:3]]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours, 1 (the same) to 21 (black on white)."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)
