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


def test_uploads_show_a_message_or_the_filtered_grid(page, app_url, tmp_path):
    import netCDF4
    import numpy as np

    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([[1.0, np.nan], [2.0, 3.0]]))
    good = tmp_path / "sst.nc"
    with netCDF4.Dataset(good, "w") as ds:
        ds.createDimension("lat", 30)
        ds.createDimension("lon", 40)
        sst = ds.createVariable("sst", "f4", ("lat", "lon"))
        sst.units = "K"
        sst[:] = 280 + np.linspace(0, 10, 40)[None, :] * np.ones((30, 1))

    open_page(page, app_url, "conv_playground")
    source = page.locator('[data-testid="stSelectbox"]').filter(has_text="Input").first
    source.scroll_into_view_if_needed()
    source.click()
    page.keyboard.type("Upload")  # the selectbox filters its options as you type
    page.keyboard.press("Enter")
    wait_until_idle(page)
    dropzone = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    dropzone.set_input_files(str(bad))
    wait_until_idle(page)
    assert any("1 NaN" in box for box in error_boxes(page))
    assert _output_shape(page) == (1, 5, 5)  # the rest of the page keeps working
    dropzone.set_input_files(str(good))
    wait_until_idle(page)
    assert error_boxes(page) == []
    page.get_by_text("sst.nc").first.wait_for()
    result = page.get_by_text(re.compile(r"30×40 → 26×36")).first  # gaussian 5x5, no padding
    result.wait_for()
    page.locator('[data-testid="stFileUploader"]').scroll_into_view_if_needed()
    screenshot(page, "conv_playground_upload")
