"""Small readers of an AppTest's output, shared by the page tests."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def errors(at: AppTest) -> list[str]:
    """The text of every error box on the page."""
    return [e.value for e in at.error]


def link_warnings(at: AppTest) -> list[str]:
    """The warnings about settings from the link that were ignored."""
    return [w.value for w in at.warning if "from the link" in w.value]
