"""The embeddings page in a browser: a small t-SNE runs without error; Stop interrupts a long run."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import SCREENSHOTS, error_boxes, open_page, screenshot, wait_until_idle

pytestmark = pytest.mark.e2e


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_until_idle(page)


def test_small_embedding_then_stop(page, app_url):
    open_page(page, app_url, "embeddings")
    assert not error_boxes(page)
    _set_number(page, "Points", 300)
    page.get_by_text("t-SNE options").click()
    _set_number(page, "Iterations", 250)
    page.get_by_role("button", name="Compute", exact=True).click()
    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=120_000)
    wait_until_idle(page)
    assert not error_boxes(page)
    assert page.locator(".js-plotly-plot").count() == 1
    screenshot(page, "embeddings")
    plot = page.locator(".js-plotly-plot").first
    plot.scroll_into_view_if_needed()
    plot.screenshot(path=str(SCREENSHOTS / "embeddings_maps.png"))

    # A long run, then Stop: the script is interrupted at its next progress update.
    _set_number(page, "Iterations", 5000)
    page.get_by_role("button", name="Compute", exact=True).click()
    page.wait_for_selector("text=iteration", timeout=60_000)
    # the progress text says how long is left, from the rate so far
    page.wait_for_selector("text=/iteration \\d+/5000, KL [0-9.]+, about [0-9.,]+ (s|min) left/",
                           timeout=60_000)  # fmt: skip
    screenshot(page, "embeddings_progress")
    started = time.monotonic()
    # scoped to the page: the header's running indicator has a Stop button of its own
    page.get_by_test_id("stMain").get_by_role("button", name="Stop").click()
    page.wait_for_selector("text=Stopped", timeout=30_000)
    wait_until_idle(page)
    assert time.monotonic() - started < 30
    assert not error_boxes(page)
