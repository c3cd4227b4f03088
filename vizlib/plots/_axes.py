"""Axis helpers shared by the figure modules."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def log_ticks(values: np.ndarray) -> dict[str, Any]:
    """Return tickvals and ticktext (and the range, where widened) for a log axis over
    ``values`` (positive, finite; others ignored): 1, 2 and 5 of each decade written out in full
    ("0.5", "0.02", "2e-05"), or powers of ten (every few decades) where that would be more than 9
    labels. A range too short for 3 such ticks (one point, or 0.97 to 1.37) is widened until it
    holds 3, so that small changes are not blown up. Plotly's own ticks ("D2", and its default
    for a short range) write 0.5 and 5 alike as "5": a range of 0.07 to 6.7 read "5, 2, 1, 5, 2,
    0.1"."""
    v = values[np.isfinite(values) & (values > 0)]
    if not v.size:
        return {}
    vmin, vmax = float(v.min()) / 1.2, float(v.max()) * 1.2  # about plotly's padding
    widened = False
    while True:
        low, high = math.floor(math.log10(vmin)), math.ceil(math.log10(vmax))
        ticks = [m * 10.0**e for e in range(low, high + 1) for m in (1, 2, 5)]
        ticks = [t for t in ticks if vmin * (1 - 1e-9) <= t <= vmax * (1 + 1e-9)]
        if len(ticks) >= 3:
            break
        vmin, vmax, widened = vmin / 1.5, vmax * 1.5, True
    if len(ticks) > 9:
        step = math.ceil((high - low + 1) / 8)
        ticks = [10.0**e for e in range(low, high + 1, step) if vmin <= 10.0**e <= vmax]
    axis: dict[str, Any] = {"tickvals": ticks, "ticktext": [f"{t:.3g}" for t in ticks]}
    if widened:
        axis["range"] = [math.log10(vmin), math.log10(vmax)]  # log axes take log10 ranges
    return axis
