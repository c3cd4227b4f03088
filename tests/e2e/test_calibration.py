"""Predictions & Calibration in a real browser at a projector's width: noisy digits through the
small ViT, then a rotation set in the 'Shift the images' panel changes the numbers."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import (
    charts_outside_the_column,
    error_boxes,
    open_page,
    plotly_charts,
    screenshot,
    set_slider,
)

pytestmark = pytest.mark.e2e


def _metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(label, exact=True))
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def test_calibration_page_scores_noisy_digits_and_follows_a_rotation(page, app_url):
    page.set_viewport_size({"width": 1024, "height": 900})
    open_page(page, app_url, "calibration?model=vit_digits&noise=0.3")
    assert error_boxes(page) == []
    assert plotly_charts(page, 4) == 4  # reliability, answering when sure, matrix, mistakes
    noisy = _metric(page, "Accuracy")
    assert _metric(page, "Fitted temperature").startswith("T = 2.")  # overconfident on noise
    assert charts_outside_the_column(page) == []
    # the share answered runs to 100%, and its axis says so (with a 10 px margin the last
    # label was dropped, the line running on past "80%")
    sure = page.locator(".js-plotly-plot").filter(has_text="images answered")
    shown = sure.evaluate(
        "c => [...c.querySelectorAll('.xtick text')]"
        ".filter(t => getComputedStyle(t).display !== 'none').map(t => t.textContent)"
    )  # plotly keeps a dropped label in the page, hidden
    assert shown[-1] == "100%", shown
    screenshot(page, "calibration_1024")

    page.get_by_text("Shift the images").click()
    set_slider(page, page.get_by_role("slider", name="Rotation (degrees)"), 10)
    page.get_by_text("rotated 10°").wait_for()
    assert error_boxes(page) == []
    assert _metric(page, "Accuracy") != noisy
    assert "rotation=10" in page.url
