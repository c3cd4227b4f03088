"""Filters & Feature Maps and Attributions in a real browser: no error box, screenshots saved."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import (
    error_boxes,
    eventually,
    open_page,
    plotly_charts,
    screenshot,
    wait_until_idle,
)

pytestmark = pytest.mark.e2e


def test_learned_filters_page(page, app_url):
    open_page(page, app_url, "learned_filters")
    assert error_boxes(page) == []
    assert page.get_by_text("32 filters of 1×5×5").count() == 1
    assert plotly_charts(page, 1) >= 1
    screenshot(page, "learned_filters")
    page.get_by_role("tab", name="Feature maps").click()
    wait_until_idle(page)
    assert error_boxes(page) == []
    screenshot(page, "learned_filters_feature_maps")


def test_learned_filters_optimised_input(page, app_url):
    """The sixth tab at 1024 px: in view, and Optimise on lenet_digits draws the images and the
    curve, each inside the page's column, with no error box."""
    page.set_viewport_size({"width": 1024, "height": 900})
    open_page(page, app_url, "learned_filters?model=lenet_digits&layer=conv2")
    # all six tab names in view: with 'Before / after training' and 'Top-activating images'
    # the sixth was scrolled out of the 564 px tab bar (sidebar open)
    tab, bar = page.get_by_role("tab", name="Optimised input"), page.get_by_role("tablist")
    assert tab.bounding_box()["x"] + tab.bounding_box()["width"] <= (
        bar.bounding_box()["x"] + bar.bounding_box()["width"]
    )
    tab.click()
    wait_until_idle(page)
    page.get_by_role("button", name="Optimise", exact=True).click()
    page.get_by_text("Done: 256 steps").wait_for(timeout=120_000)
    wait_until_idle(page)
    assert error_boxes(page) == []
    panel = page.locator('[role="tabpanel"]:visible')
    charts = panel.locator(".js-plotly-plot")
    charts.nth(1).wait_for(timeout=60_000)
    assert charts.count() == 2  # the images and the objective per step
    right = panel.bounding_box()["x"] + panel.bounding_box()["width"]
    for i in range(2):
        box = charts.nth(i).bounding_box()
        assert box["width"] > 300 and box["x"] + box["width"] <= right + 1
    screenshot(page, "learned_filters_optimised_input")


def test_learned_filters_optimised_input_stops_and_runs_again(page, app_url):
    """Stop during a run interrupts it (nothing drawn, a warning); the shared model's lock is
    free again, so a second Optimise finishes."""
    open_page(page, app_url, "learned_filters?model=lenet_digits&opt_steps=1024")
    page.get_by_role("tab", name="Optimised input").click()
    wait_until_idle(page)
    optimise = page.get_by_role("button", name="Optimise", exact=True)
    optimise.click()
    page.get_by_text(re.compile(r"Step \d+/1024")).wait_for(timeout=60_000)
    page.get_by_test_id("stTabs").get_by_role("button", name="Stop").click()
    wait_until_idle(page)
    assert page.get_by_text("Stopped: the optimisation was interrupted").count() == 1
    assert page.locator('[role="tabpanel"]:visible .js-plotly-plot').count() == 0
    optimise.click()
    page.get_by_text("Done: 1024 steps").wait_for(timeout=120_000)
    wait_until_idle(page)
    assert error_boxes(page) == []


def test_attributions_page(page, app_url):
    open_page(page, app_url, "attributions")
    assert error_boxes(page) == []
    assert page.get_by_text("Explaining class").count() == 1
    assert page.get_by_text("convergence delta").count() >= 1
    assert plotly_charts(page, 5) == 5  # the input and four methods
    screenshot(page, "attributions")
    assert _overlay_rows(page) == [4]  # one row on a 1500 px window
    # At 1024 px with the sidebar open they were four 124 px columns, titles and colour bars
    # cut: now two to a row, each title and colour bar inside its own chart.
    page.set_viewport_size({"width": 1024, "height": 768})

    def two_rows():
        assert _overlay_rows(page) == [2, 2]

    eventually(page, two_rows)
    screenshot(page, "attributions_1024")


def _overlay_rows(page) -> list[int]:
    """Return how many overlay charts stand in each row, checking that every overlay's title
    and colour bar lie inside its chart (the first chart is the top-5 bars)."""
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('.js-plotly-plot')).slice(1).map(g => {
            const box = e => { const r = e.getBoundingClientRect();
                               return [r.left, r.top, r.right, r.bottom]; };
            return {chart: box(g), parts: Array.from(g.querySelectorAll('.gtitle, .colorbar'))
                                                .map(box)};
        })"""
    )
    assert len(boxes) == 4
    for b in boxes:
        left, top, right, bottom = b["chart"]
        assert right - left >= 200
        assert len(b["parts"]) == 2
        for p_left, p_top, p_right, p_bottom in b["parts"]:
            assert left <= p_left and p_right <= right and top <= p_top and p_bottom <= bottom
    tops = [round(b["chart"][1]) for b in boxes]
    return [tops.count(t) for t in sorted(set(tops))]


def test_attribution_download_holds_the_shown_heatmaps(page, app_url):
    """The NPZ download has one signed H×W map per method and the input; its saliency equals
    vizlib's own computation for the predicted class of the same test image."""
    import numpy as np

    from vizlib import attribution, zoo
    from vizlib.data import load_dataset

    open_page(page, app_url, "attributions")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download all heatmaps (NPZ, signed, H×W each)").click()
    assert download.value.suggested_filename == "lenet_digits_attributions_class2.npz"
    saved = np.load(download.value.path())
    assert sorted(saved.files) == [
        "gradcam",
        "image",
        "integrated_gradients",
        "occlusion",
        "saliency",
    ]
    assert all(saved[m].shape == (28, 28) for m in saved.files if m != "image")
    model, meta = zoo.load_model("lenet_digits")
    images, _, _ = load_dataset("digits", "test", input_size=(28, 28))
    top = attribution.top_predictions(model, images[0])
    assert top[0]["class"] == 2
    expected = attribution.attribute(model.requires_grad_(False), images[0], 2, "saliency")
    np.testing.assert_allclose(saved["saliency"], expected["heatmap"], rtol=1e-5, atol=1e-6)


def test_attribution_tiles_keep_their_title_clear_of_the_mode_bar(page, app_url):
    """Plotly's mode bar, shown while the mouse is over a 240 px overlay, covered its title
    ("Integrated Gradients" lay under eight buttons). With the mouse on each tile, the bar
    (download, zoom, pan, reset, fullscreen) and the title do not meet, and both lie in the
    tile's chart above the image."""
    open_page(page, app_url, "attributions?model=lenet_digits")
    assert plotly_charts(page, 5) == 5
    charts = page.locator(".js-plotly-plot")
    for i in range(1, 5):
        charts.nth(i).hover()
        page.wait_for_timeout(300)
        boxes = page.evaluate(
            """i => { const g = document.querySelectorAll('.js-plotly-plot')[i];
                const box = e => { const r = e.getBoundingClientRect();
                                   return [r.left, r.top, r.right, r.bottom]; };
                return {chart: box(g), title: box(g.querySelector('.gtitle')),
                        bar: box(g.querySelector('.modebar')),
                        image: box(g.querySelector('.nsewdrag')),
                        shown: getComputedStyle(g.querySelector('.modebar')).opacity,
                        buttons: Array.from(g.querySelectorAll('.modebar-btn'))
                                      .map(b => b.getAttribute('data-title'))}; }""",
            i,
        )
        assert boxes["shown"] == "1"  # the mouse is on this tile: its mode bar is out
        assert boxes["buttons"] == [
            "Download plot as a PNG",
            "Zoom",
            "Pan",
            "Reset axes",
            "Fullscreen",
        ]
        title, bar, image, chart = boxes["title"], boxes["bar"], boxes["image"], boxes["chart"]
        assert bar[3] <= title[1], f"mode bar {bar} over title {title}"
        assert title[3] <= image[1] + 2 and chart[1] <= bar[1]
        if i == 2:
            screenshot(page, "attributions_tile_hover")


def test_attribution_settings_travel_in_the_copied_url(page, app_url):
    """A link opens the page on its settings; a widget changed there is written into the
    address bar, and that address opened in a new tab shows the same page."""
    open_page(page, app_url, "attributions?model=lenet_digits&pred=false&target=4&view=signed")
    assert error_boxes(page) == []
    assert page.get_by_text("Explaining class 4 (index 4)").count() == 1
    assert page.get_by_role("radio", name="signed").is_checked()
    page.get_by_text("shared", exact=True).click()
    wait_until_idle(page)
    url = page.url
    assert "scale=shared" in url and "view=signed" in url and "target=4" in url
    again = page.context.new_page()
    again.goto(url)
    wait_until_idle(again)
    assert error_boxes(again) == []
    assert again.get_by_text("Explaining class 4 (index 4)").count() == 1
    assert again.get_by_role("radio", name="signed").is_checked()
    assert again.get_by_role("radio", name="shared").is_checked()
    assert plotly_charts(again, 6) == 6  # top-5, the one shared colour bar, four overlays


def test_filters_link_names_a_typed_folder_but_never_its_path(page, app_url, tmp_path):
    """A Filters link naming 'Other image folder…' opens the Feature maps tab's path box empty;
    a folder typed there feeds the maps, and the address bar keeps the choice and the other
    settings but never the path or its image index, so the copied URL opens the empty box."""
    from urllib.parse import parse_qs, urlencode, urlsplit

    from tests.test_data_datasets import write_image_folder

    write_image_folder(tmp_path / "fruit")
    link = {"model": "lenet_digits", "input": "Image folder", "folder": "Other image folder…"}
    open_page(page, app_url, "learned_filters?" + urlencode({**link, "maps": "8"}))
    assert error_boxes(page) == []
    page.get_by_role("tab", name="Feature maps").click()
    box = page.get_by_label("Image folder path", exact=True)
    assert box.input_value() == ""
    assert page.get_by_text("Type the path of an image folder.").is_visible()
    box.fill(str(tmp_path / "fruit"))
    box.press("Enter")
    wait_until_idle(page)
    index = page.get_by_label("Image index in the folder (0–8)", exact=True)
    index.fill("4")
    index.press("Enter")
    wait_until_idle(page)
    assert error_boxes(page) == []
    assert page.get_by_text("fruit image 4 of 9 (class bananas)").is_visible()
    screenshot(page, "learned_filters_typed_folder")
    query = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    # no path, and no index in a folder the link cannot name; 'Other image folder…' is left
    # out as the default where VIZLIB_DATA holds no image folder
    assert query.get("folder", link["folder"]) == link["folder"]
    assert query | {"folder": link["folder"]} == {**link, "maps": "8"}
    again = page.context.new_page()
    again.goto(page.url)
    wait_until_idle(again)
    assert error_boxes(again) == []
    again.get_by_role("tab", name="Feature maps").click()
    assert again.get_by_label("Image folder path", exact=True).input_value() == ""
    assert again.get_by_text("Type the path of an image folder.").is_visible()


def test_the_attribution_sanity_check_at_a_projectors_width(page, app_url):
    """The model randomisation test on the shipped LeNet: after its button, the similarity
    lines and the grid of maps (four methods, the trained network and four stages) sit inside
    the page's column at 1024 px, with no error box."""
    page.set_viewport_size({"width": 1024, "height": 1000})
    open_page(page, app_url, "attributions?model=lenet_digits")
    assert plotly_charts(page, 5) == 5
    page.get_by_role("button", name="Randomise and explain again").click()
    page.get_by_text("Download the sanity check").wait_for(timeout=120_000)
    wait_until_idle(page)
    assert error_boxes(page) == []
    assert plotly_charts(page, 7) == 7
    main = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
    grid = page.locator(".js-plotly-plot").nth(6)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box["x"] + box["width"] <= main["x"] + main["width"] + 1
    assert grid.locator(".heatmaplayer image, .heatmaplayer .hm").count() >= 1
    screenshot(page, "attributions_sanity_check_1024")


def test_attribution_settings_survive_the_wait_for_an_upload(page, app_url, tmp_path):
    """While "Upload an image" waits for its file the page stops above the method settings, and
    the browser then sent them back empty: the steps at 8, the opacity at 0, no methods, another
    target class, all written into the link. The settings the user had come back instead."""
    import numpy as np
    from PIL import Image

    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # a bar: a one, light on dark as the digits are
    Image.fromarray(digit).save(tmp_path / "one.png")
    settings = {"pred": "false", "target": "4", "methods": "saliency", "steps": "100",
                "opacity": "0.3"}  # fmt: skip
    query = "&".join(f"{key}={value}" for key, value in settings.items())
    open_page(page, app_url, f"attributions?model=lenet_digits&{query}")

    def shown() -> dict:
        def thumb(label: str) -> str:
            slider = page.get_by_test_id("stSlider").filter(has_text=label)
            return slider.get_by_test_id("stSliderThumbValue").inner_text()

        methods = page.get_by_test_id("stMultiSelect").filter(has_text="Attribution methods")
        return {
            "steps": thumb("Steps"),
            "opacity": thumb("Heatmap opacity"),
            "methods": methods.locator("[data-tag]").all_inner_texts(),
        }

    before = shown()
    assert before == {"steps": "100", "opacity": "0.30", "methods": ["Saliency"]}, before
    page.get_by_text("Upload an image").click()
    page.wait_for_url(lambda url: "input=Upload" in url)
    wait_until_idle(page)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(tmp_path / "one.png")
    page.get_by_text("Explaining class").wait_for()
    wait_until_idle(page)
    assert shown() == before
    assert page.get_by_text("Explaining class 4").count() == 1
    page.get_by_text("Dataset sample").click()
    page.wait_for_url(lambda url: "input=" not in url)
    wait_until_idle(page)
    assert shown() == before
    for key, value in settings.items():
        assert f"{key}={value}" in page.url, page.url
    assert error_boxes(page) == []
