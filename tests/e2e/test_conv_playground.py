"""The Convolution Playground in a real browser: the stride moves the output size, uploads give a
message or the filtered grid, and a copied link reopens the same settings in a fresh tab."""

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


def test_a_copied_link_opens_the_same_settings_in_a_fresh_tab(page, app_url, browser):
    open_page(page, app_url, "conv_playground")

    def then_link_has(part: str) -> None:
        page.wait_for_url(lambda url: part in url)
        wait_until_idle(page)

    for label, key, value in (("Input height H", "h", 20), ("Kernel width K_w", "kw", 5)):
        box = page.locator('[data-testid="stNumberInput"]').filter(has_text=label).locator("input")
        box.fill(str(value))
        box.press("Enter")
        then_link_has(f"{key}={value}")
    page.get_by_text("'same'").click()
    then_link_has("pad=same")
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Padding mode").click()
    page.keyboard.type("circular")
    page.keyboard.press("Enter")
    then_link_has("pm=circular")
    page.get_by_text("Output: 1 × 20 × 7").first.wait_for()  # 'same' keeps 20 x 7
    link = page.url

    fresh = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
    fresh.set_default_timeout(60_000)
    try:
        fresh.goto(link)  # a new browser context: nothing shared but the link
        wait_until_idle(fresh)
        fresh.get_by_text("Output: 1 × 20 × 7").first.wait_for()
        code = fresh.locator('[data-testid="stCode"]').filter(has_text="layer = nn.Conv2d")
        code.first.wait_for()
        assert "padding='same', padding_mode='circular'" in code.first.inner_text()
        height = fresh.locator('[data-testid="stNumberInput"]').filter(has_text="Input height H")
        assert height.locator("input").input_value() == "20"
        assert error_boxes(fresh) == []
    finally:
        fresh.context.close()
