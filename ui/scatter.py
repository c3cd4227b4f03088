"""The Embeddings page's linked scatter: a Streamlit custom component (canvas, no plotly).

Several 2-D maps of the same points side by side; hovering a point shows its image and rings it
in every map; clicking selects it. Data from ``vizlib.plots.embedding.scatter_payload``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

_HERE = Path(__file__).resolve().parent
_SCATTER = st.components.v2.component(
    "vizlib_linked_scatter",
    html="",
    css=(_HERE / "scatter.css").read_text(encoding="utf-8"),
    js=(_HERE / "scatter.js").read_text(encoding="utf-8"),
)


def linked_scatter(payload: dict, *, key: str) -> dict | None:
    """Draw the maps in ``payload``; return the clicked point {"index", "layer"} or None.

    The selection is component state: it persists across reruns until another point is
    clicked (the caller checks it still belongs to the data shown).
    """
    result = _SCATTER(data=payload, key=key, on_selected_change=lambda: None)
    selected = getattr(result, "selected", None)
    if isinstance(selected, dict) and isinstance(selected.get("index"), int):
        return selected
    return None
