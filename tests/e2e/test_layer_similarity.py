"""Layer Similarity in a real browser at a projector's width: a digit model against itself at
once, then resnet18 against vit_b_16 on the sample photos' crops after the button (the figure
of Raghu et al., with random weights where ImageNet's are not on disk); no error box, every
chart inside the page's column, and the heatmap's hover names both layers."""

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


def test_layer_similarity_draws_at_once_then_compares_a_cnn_with_a_vit(page, app_url):
    page.set_viewport_size({"width": 1024, "height": 1400})
    open_page(page, app_url, "layer_similarity?model=lenet_digits")
    assert error_boxes(page) == []
    assert plotly_charts(page, 1) == 1
    area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()  # the plot area
    page.mouse.move(area["x"] + area["width"] * 0.08, area["y"] + area["height"] * 0.92)
    page.locator(".hoverlayer .hovertext").first.wait_for(timeout=10_000)
    hover = page.locator(".hoverlayer").first.text_content()  # the bottom-left cell
    assert "lenet_digits: input (0)" in hover and "CKA 1.000" in hover
    assert charts_outside_the_column(page) == []
    screenshot(page, "layer_similarity_1024")

    open_page(page, app_url, "layer_similarity?model=resnet18&compare=vit_b_16&n=16")
    assert error_boxes(page) == []
    page.get_by_role("button", name="Compute the CKA").click()
    page.get_by_text("Download the CKA matrix").wait_for(timeout=300_000)
    wait_until_idle(page)
    assert error_boxes(page) == []
    assert plotly_charts(page, 2) == 2  # the matrix and each layer's closest match
    assert charts_outside_the_column(page) == []
    screenshot(page, "layer_similarity_resnet18_vit_b_16")
