"""The Convolution Playground in a real browser: the stride moves the output size, uploads give a
message or the filtered grid, and a copied link reopens the same settings in a fresh tab."""

import re

import pytest

from tests.e2e.conftest import browser_page, error_boxes, open_page, screenshot, wait_until_idle

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
    with netCDF4.Dataset(good, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("lat", 30)
        ds.createDimension("lon", 40)
        sst = ds.createVariable("sst", "f4", ("lat", "lon"))
        sst.units = "K"
        sst[:] = 280 + np.linspace(0, 10, 40)[None, :] * np.ones((30, 1))
    cut = tmp_path / "cut.nc"  # the header intact, the data cut short
    cut.write_bytes(good.read_bytes()[:-1000])

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
    page.get_by_text("An uploaded file is not part of the page's link").wait_for()
    assert "data.src" not in page.url
    dropzone.set_input_files(str(cut))
    wait_until_idle(page)
    assert any(
        "The NetCDF file looks damaged or truncated: variable 'sst' could not be read" in box
        for box in error_boxes(page)
    ), error_boxes(page)
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

    with browser_page(browser) as fresh:
        fresh.goto(link)  # a new browser context: nothing shared but the link
        wait_until_idle(fresh)
        fresh.get_by_text("Output: 1 × 20 × 7").first.wait_for()
        code = fresh.locator('[data-testid="stCode"]').filter(has_text="layer = nn.Conv2d")
        code.first.wait_for()
        assert "padding='same', padding_mode='circular'" in code.first.inner_text()
        height = fresh.locator('[data-testid="stNumberInput"]').filter(has_text="Input height H")
        assert height.locator("input").input_value() == "20"
        assert error_boxes(fresh) == []


def _pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the selectbox whose label starts with ``label``."""
    box = page.locator('[data-testid="stSelectbox"]').filter(
        has=page.locator('[data-testid="stWidgetLabel"]', has_text=re.compile(f"^{label}"))
    )
    box.scroll_into_view_if_needed()
    box.click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")


def test_a_link_carries_the_real_data_choices(page, app_url, browser):
    query = "data.src=field&data.field=front&data.noise=0&data.sigma=2.3"
    open_page(page, app_url, f"conv_playground?{query}")
    result = re.compile(r"^front: 128×128 → (\d+)×(\d+); output range")
    page.get_by_text(result).first.wait_for()  # the link's field, not the default photo
    assert "124×124" in page.get_by_text(result).first.inner_text()  # 5×5 Gaussian
    # The panel reruns on its own (a fragment): its link keys must follow all the same.
    _pick(page, "Kernel", "laplacian")
    page.wait_for_url(lambda url: "data.kernel=laplacian" in url)
    wait_until_idle(page)
    assert "data.sigma" not in page.url and "data.src=field" in page.url
    page.get_by_text(re.compile(r"^front: 128×128 → 126×126")).first.wait_for()
    _pick(page, "Kernel", "gaussian")  # sigma was hidden meanwhile: it comes back at 2.3
    page.wait_for_url(lambda url: "data.sigma=2.3" in url and "data.kernel" not in url)
    _pick(page, "Kernel", "sobel")  # sobel x, the first match
    page.wait_for_url(lambda url: "data.kernel=sobel_x" in url)
    wait_until_idle(page)
    stride = page.locator('[data-testid="stSlider"]').filter(has_text="Stride S_h")
    stride.get_by_role("slider").focus()
    stride.get_by_role("slider").press("ArrowRight")  # a layer setting: a full rerun
    page.wait_for_url(lambda url: "sh=2" in url and "data.kernel=sobel_x" in url)
    wait_until_idle(page)
    page.get_by_text(re.compile(r"^front: 128×128 → 63×126")).first.wait_for()
    link = page.url

    with browser_page(browser) as fresh:
        fresh.goto(link)
        wait_until_idle(fresh)
        fresh.get_by_text(re.compile(r"^front: 128×128 → 63×126")).first.wait_for()
        assert fresh.get_by_text("Sobel x: zero-sum").count() > 0
        assert error_boxes(fresh) == []
        assert (
            fresh.locator('[data-testid="stAlertContentWarning"]')
            .filter(has_text="from the link")
            .count()
            == 0
        )


# Right edge of each displayed formula's last glyph minus its box's right edge, in CSS pixels.
_FORMULA_OVERHANG_JS = """() => Array.from(document.querySelectorAll('.katex-display')).map(e => {
    const right = Math.max(...Array.from(e.querySelectorAll('.base'))
        .map(b => b.getBoundingClientRect().right));
    return right - e.getBoundingClientRect().right;
})"""


@pytest.mark.parametrize(
    ("query", "output"),
    [
        ("", "Output: 1 × 5 × 5"),
        ("?mode=Transposed+convolution&h=64&w=64&sh=8&oph=7", "Output: 1 × 514 × 66"),
    ],
)
def test_output_size_formulas_fit_a_1024_pixel_projector(browser, app_url, query, output):
    """At 1024x768 with the sidebar open the formulas' column is about 330 px wide: each
    worked formula ran past it, its result ('= 5') cut. They now go one step a line."""
    with browser_page(browser, 1024, 768) as page:
        open_page(page, app_url, f"conv_playground{query}")
        assert not error_boxes(page)
        page.wait_for_selector(".katex-display")
        overhangs = page.evaluate(_FORMULA_OVERHANG_JS)
        assert len(overhangs) == 3, overhangs  # the general formula, then H_out and W_out
        assert max(overhangs) <= 1, overhangs
        assert page.get_by_text(output).count() == 1


def _digit_box(page):
    return (
        page.locator('[data-testid="stNumberInput"]')
        .filter(has_text="Digit index")
        .locator("input")
    )


def _show_input(page, option: str, *, url_has: str | None = None) -> None:
    _pick(page, "Input", option)
    if url_has is not None:
        page.wait_for_url(lambda url: url_has in url)
    wait_until_idle(page)


def test_a_hidden_digit_keeps_the_users_value_across_panel_reruns(page, app_url):
    """The real-data panel reruns on its own (a fragment): the digit index, hidden behind the
    photo while the kernel changes, must come back as the user's latest digit each time."""
    open_page(page, app_url, "conv_playground")
    _show_input(page, "Handwritten", url_has="data.src=digit")
    _digit_box(page).fill("7")
    _digit_box(page).press("Enter")
    page.wait_for_url(lambda url: "data.digit=7" in url)
    _show_input(page, "Photo")
    _pick(page, "Kernel", "mean")  # a panel rerun while the digit is hidden
    page.wait_for_url(lambda url: "data.kernel=mean" in url)
    wait_until_idle(page)
    _show_input(page, "Handwritten", url_has="data.src=digit")
    assert _digit_box(page).input_value() == "7"
    _digit_box(page).fill("9")
    _digit_box(page).press("Enter")
    page.wait_for_url(lambda url: "data.digit=9" in url)
    wait_until_idle(page)
    _show_input(page, "Photo")
    _show_input(page, "Handwritten", url_has="data.src=digit")
    assert _digit_box(page).input_value() == "9"
    assert error_boxes(page) == []


# The grids' heatmaps are <image> elements; the kernel box, its taps and the output cell are
# the animated scatter traces.
_GRID_IMAGES = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .filter(g => g.querySelector('.slider-container'))
    .map(g => g.querySelectorAll('.heatmaplayer image').length)"""


@pytest.mark.parametrize("query", ["", "?mode=Transposed+convolution"])
def test_sliding_the_kernel_keeps_the_grids_drawn(page, app_url, query):
    """Frames drawn without a redraw blanked both grids, numbers and colours, as soon as the
    slider moved or Play ran: only the kernel box stayed, on white. Every animated figure keeps
    its two grid heatmaps after the slider is moved to its middle and after Play has run."""
    open_page(page, app_url, "conv_playground" + query)
    figures = page.locator(".js-plotly-plot").filter(has=page.locator(".slider-container"))
    figures.first.wait_for()
    drawn = f"() => ({_GRID_IMAGES})().every(n => n === 2)"
    page.wait_for_function(drawn, timeout=30_000)  # plotly draws after the script run
    for i in range(figures.count()):
        figure = figures.nth(i)
        figure.scroll_into_view_if_needed()
        rail = figure.locator(".slider-rail-rect").bounding_box()
        page.mouse.click(rail["x"] + rail["width"] / 2, rail["y"] + rail["height"] / 2)
        figure.get_by_text("Play", exact=False).first.click()
    page.wait_for_timeout(1500)  # some frames of Play; blanked grids stay blank
    page.wait_for_function(drawn, timeout=10_000)
    assert page.evaluate(_GRID_IMAGES) == [2] * figures.count()
    assert error_boxes(page) == []
