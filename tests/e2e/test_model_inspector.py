"""The Model Inspector in a real browser: renders without an error box."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import (
    browser_page,
    error_boxes,
    open_page,
    plotly_charts,
    screenshot,
    wait_until_idle,
)


@pytest.mark.e2e
def test_model_inspector_renders(page, app_url):
    open_page(page, app_url, "model_inspector?model=lenet_digits")
    page.get_by_text("Transformer building blocks").wait_for()
    # the totals of a real forward pass; waits out a rerun still drawing stale elements
    page.get_by_text("105,506", exact=True).first.wait_for(timeout=60_000)
    page.get_by_text("1,333,200", exact=True).first.wait_for(timeout=60_000)
    wait_until_idle(page)
    assert error_boxes(page) == []
    # the receptive-field column: its caption, and the growth chart beside the costs chart
    page.get_by_text("each unit of this layer sees an R x R patch").wait_for()
    assert plotly_charts(page, at_least=2) >= 2
    screenshot(page, "model_inspector_top")
    page.get_by_role("button", name="Time it").click()
    page.get_by_text("Speed-up on cpu").wait_for(timeout=120_000)
    wait_until_idle(page)
    assert error_boxes(page) == []
    screenshot(page, "model_inspector")


@pytest.mark.e2e
def test_transformer_blocks_are_readable_at_1024_px(page, app_url):
    """The building-blocks table wraps its cells inside the column: as a dataframe its long
    block names pushed the formula column behind a horizontal scroll; its formulas keep their
    products (a "*" was read as Markdown emphasis)."""
    page.set_viewport_size({"width": 1024, "height": 900})
    open_page(page, app_url, "model_inspector?model=lenet_digits")
    page.get_by_text("Transformer building blocks").wait_for()
    table = page.locator('[data-testid="stTable"]').filter(has_text="formula")
    table.scroll_into_view_if_needed()
    width, visible = table.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert width <= visible  # nothing behind a scroll
    box = table.bounding_box()
    assert box["x"] + box["width"] <= 1024
    assert "in-proj 3×6×6 + 3×6" in table.inner_text()
    assert "two layers 2×328 + final LayerNorm 6 + 6" in table.inner_text()
    screenshot(page, "model_inspector_blocks_1024")


# each visible dataframe whose first column is "layer": its grid's scroll width and client width
_LAYER_GRIDS = """() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"]'))
  .filter(e => e.offsetParent !== null)
  .filter(e => (e.querySelector('[role=columnheader]') || {}).innerText === 'layer')
  .map(e => { const s = e.querySelector('.dvn-scroller');
              return [s.scrollWidth, s.clientWidth, e.getBoundingClientRect().right]; })"""


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("model", "macs"), [("lenet_digits", "1,333,200"), ("vit_b_16", "17,563,828,224")]
)
def test_the_layer_table_fits_a_1024_pixel_projector(browser, app_url, model, macs):
    """At 1024x768 with the sidebar open the layer table scrolls no column out of view: its 8
    columns side by side were 705 px wide in a 562 px grid for lenet_digits; now two tabs of
    5, short headers, the detail in each column's help. vit_b_16's 46-character names
    ("encoder.layers.encoder_layer_10.self_attention") still made 679 and 659 px: they now
    leave out the start they share ("…10.self_attention")."""
    # vit_b_16 is built and run once on this CPU: a longer timeout
    with browser_page(browser, 1024, 768, timeout_s=120) as page:
        open_page(page, app_url, f"model_inspector?model={model}")
        page.get_by_text(macs, exact=True).first.wait_for()
        for tab in ("Shapes and costs", "Receptive fields"):
            if tab != "Shapes and costs":  # the first tab shows from the start
                page.get_by_role("tab", name=tab).click()
            page.wait_for_function(f"() => ({_LAYER_GRIDS})().length === 1")
            ((scroll, client, right),) = page.evaluate(_LAYER_GRIDS)
            assert scroll <= client, (tab, scroll, client)  # nothing behind a sideways scroll
            assert right <= 1024, tab
        assert error_boxes(page) == []
        screenshot(page, f"model_inspector_layers_1024_{model}")
