"""Small readers of an AppTest's output, shared by the page tests."""

from __future__ import annotations

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
