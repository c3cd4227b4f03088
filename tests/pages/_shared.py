"""Small readers of an AppTest's output, shared by the page tests."""

from __future__ import annotations

import base64

import numpy as np
from streamlit.testing.v1 import AppTest


def errors(at: AppTest) -> list[str]:
    """The text of every error box on the page."""
    return [e.value for e in at.error]


def link_warnings(at: AppTest) -> list[str]:
    """The warnings about settings from the link that were ignored."""
    return [w.value for w in at.warning if "from the link" in w.value]


def opened_with(page: str, query: dict, *, timeout: float = 120) -> AppTest:
    """Run ``page`` once as a link with ``query`` opens it; it must raise nothing."""
    at = AppTest.from_file(page, default_timeout=timeout)
    for key, value in query.items():
        at.query_params[key] = str(value)
    at.run()
    assert not at.exception, at.exception
    return at


def plotly_array(value: object) -> np.ndarray:
    """A trace's array from a chart's JSON spec: a list, or plotly's typed array ({"dtype",
    "bdata" in base64, and "shape" for more than one axis})."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")  # "28,28" or "28, 28"; absent for one axis
        return flat if shape is None else flat.reshape([int(n) for n in str(shape).split(",")])
    return np.asarray(value)
