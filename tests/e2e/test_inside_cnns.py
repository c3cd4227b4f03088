"""Filters & Feature Maps and Attributions in a real browser: no error box, screenshots saved."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import error_boxes, open_page, screenshot, wait_until_idle

pytestmark = pytest.mark.e2e


def test_learned_filters_page(page, app_url):
    open_page(page, app_url, "learned_filters")
    assert error_boxes(page) == []
    assert page.get_by_text("32 filters of 1×5×5").count() == 1
    assert page.locator(".js-plotly-plot").count() >= 1
    screenshot(page, "learned_filters")
    page.get_by_role("tab", name="Feature maps").click()
    wait_until_idle(page)
    assert error_boxes(page) == []
    screenshot(page, "learned_filters_feature_maps")


def test_attributions_page(page, app_url):
    open_page(page, app_url, "attributions")
    assert error_boxes(page) == []
    assert page.get_by_text("Explaining class").count() == 1
    assert page.get_by_text("convergence delta").count() >= 1
    assert page.locator(".js-plotly-plot").count() == 5
    screenshot(page, "attributions")
