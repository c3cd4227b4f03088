"""The Convolution Playground in a real browser: moving the stride changes the output size."""

import re

import pytest

from tests.e2e.conftest import error_boxes, open_page, screenshot, wait_until_idle

pytestmark = pytest.mark.e2e

OUTPUT_RE = re.compile(r"Output: (\d+) × (\d+) × (\d+)")


def _output_shape(page) -> tuple[int, ...]:
    text = page.get_by_text(OUTPUT_RE).first.inner_text()
    return tuple(int(n) for n in OUTPUT_RE.search(text).groups())


def test_stride_changes_output_size(page, app_url):
    open_page(page, app_url, "conv_playground")
    # Defaults: 7x7 input, 3x3 kernel, stride 1, no padding -> 1 x 5 x 5.
    assert _output_shape(page) == (1, 5, 5)
    stride = page.locator('[data-testid="stSlider"]').filter(has_text="Stride S_h")
    thumb = stride.get_by_role("slider")
    thumb.focus()
    thumb.press("ArrowRight")  # stride 1 -> 2
    wait_until_idle(page)
    page.get_by_text("Output: 1 × 3 × 5").first.wait_for()
    assert _output_shape(page) == (1, 3, 5)  # floor((7 - 3) / 2) + 1 = 3 rows
    assert "sh=2" in page.url  # the setting is in the shareable link
    assert error_boxes(page) == []
    screenshot(page, "conv_playground")
