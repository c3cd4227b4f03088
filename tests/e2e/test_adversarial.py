"""Adversarial Examples in a real browser at a projector's width: the attack and its images,
then the accuracy curve after its button, no error box, everything inside the page's column."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import (
    charts_outside_the_column,
    error_boxes,
    open_page,
    plotly_charts,
    screenshot,
    wait_until_idle,
)

pytestmark = pytest.mark.e2e


def test_adversarial_page_attacks_and_draws_the_curve(page, app_url):
    page.set_viewport_size({"width": 1024, "height": 900})
    open_page(page, app_url, "adversarial?model=lenet_digits")
    assert error_boxes(page) == []
    assert page.get_by_text("The answer changed from").count() == 1
    assert plotly_charts(page, 3) == 3  # the images (clean, change, adversarial), two top-5s
    page.get_by_role("slider", name="Test images").wait_for()
    page.get_by_role("button", name="Attack the test images").click()
    page.get_by_text("Download the curve").wait_for(timeout=180_000)
    wait_until_idle(page)
    assert error_boxes(page) == []
    assert page.locator(".js-plotly-plot").count() == 4
    assert charts_outside_the_column(page) == []
    screenshot(page, "adversarial_1024")
