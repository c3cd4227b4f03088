"""The embeddings page in a browser: a small t-SNE runs without error; Stop interrupts a long run."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    SCREENSHOTS,
    browser_page,
    error_boxes,
    eventually,
    open_page,
    screenshot,
    wait_until_idle,
)

pytestmark = pytest.mark.e2e


def _apart(images) -> None:
    """Assert that the nine images (the clicked one and its neighbours) do not overlap."""
    boxes = [images.nth(i).bounding_box() for i in range(images.count())]
    assert len(boxes) == 9, len(boxes)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["width"] <= b["x"] + 1
                or b["x"] + b["width"] <= a["x"] + 1
                or a["y"] + a["height"] <= b["y"] + 1
                or b["y"] + b["height"] <= a["y"] + 1
            )
            assert apart, (a, b)


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_until_idle(page)


def _compute(page, *, points: int, iterations: int) -> None:
    """Set the points and the t-SNE iterations, press Compute and wait for the scores table."""
    _set_number(page, "Points", points)
    page.get_by_text("t-SNE options").click()
    _set_number(page, "Iterations", iterations)
    page.get_by_role("button", name="Compute", exact=True).click()
    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=120_000)
    wait_until_idle(page)


def test_small_embedding_then_stop(page, app_url):
    open_page(page, app_url, "embeddings")
    assert not error_boxes(page)
    _compute(page, points=300, iterations=250)
    assert not error_boxes(page)
    maps = page.locator(".emb-root")
    assert maps.get_attribute("data-ready") == "300"  # all 300 points drawn
    # one panel per layer: lenet_digits' defaults are input, relu2 and relu3
    assert page.locator("canvas.emb-over").count() == 3
    screenshot(page, "embeddings")

    # Hovering a point shows its image and index; clicking it shows it below with neighbours.
    panel = page.locator("canvas.emb-over").last
    panel.scroll_into_view_if_needed()
    box = panel.bounding_box()
    tip = page.locator(".emb-tip")
    spots = (
        (x, y) for y in range(8, int(box["height"]), 8) for x in range(8, int(box["width"]), 8)
    )
    for x, y in spots:
        page.mouse.move(box["x"] + x, box["y"] + y)
        if tip.is_visible():
            break
    assert tip.is_visible(), "no point found under the cursor"
    assert re.match(r"index \d+ · label \d · ", tip.inner_text())
    thumb = tip.locator("canvas")
    assert thumb.is_visible()  # a thumbnail was drawn from the sprite sheet
    index = int(re.search(r"index (\d+)", tip.inner_text()).group(1))
    page.mouse.down()  # before any screenshot: taking one scrolls the page under the mouse
    page.mouse.up()
    page.wait_for_selector("text=Its 8 nearest neighbours in the", timeout=60_000)
    wait_until_idle(page)
    captions = page.locator('[data-testid="stImageCaption"]').all_inner_texts()
    assert any(c.startswith(f"index {index}, label") for c in captions), captions
    maps.screenshot(path=str(SCREENSHOTS / "embeddings_maps.png"))
    # At 1024 px with the sidebar open the 200 px image lay over the strip's caption and the
    # eight 64 px neighbours over one another: no two of the nine images meet.
    page.set_viewport_size({"width": 1024, "height": 1100})
    eventually(page, lambda: _apart(page.locator('[data-testid="stImage"] img')))
    page.set_viewport_size({"width": 1500, "height": 1100})
    assert not error_boxes(page)

    # A long run, then Stop: the script is interrupted at its next progress update.
    _set_number(page, "Iterations", 5000)
    page.get_by_role("button", name="Compute", exact=True).click()
    page.wait_for_selector("text=iteration", timeout=60_000)
    # the progress text says how long is left, from the rate so far
    page.wait_for_selector("text=/iteration \\d+/5000, KL [0-9.]+, about [0-9.,]+ (s|min) left/",
                           timeout=60_000)  # fmt: skip
    screenshot(page, "embeddings_progress")
    started = time.monotonic()
    # scoped to the page: the header's running indicator has a Stop button of its own
    page.get_by_test_id("stMain").get_by_role("button", name="Stop").click()
    page.wait_for_selector("text=Stopped", timeout=30_000)
    wait_until_idle(page)
    assert time.monotonic() - started < 30
    assert not error_boxes(page)


def _pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the selectbox labelled ``label`` (typing filters its options)."""
    box = page.locator('[data-testid="stSelectbox"]').filter(
        has=page.locator('[data-testid="stWidgetLabel"]', has_text=re.compile(f"^{label}$"))
    )
    box.click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")
    wait_until_idle(page)


def _type_path(page, path) -> None:
    box = page.get_by_label("Image folder path", exact=True)
    box.fill(str(path))
    box.press("Enter")
    wait_until_idle(page)


def _compute_pca(page) -> None:
    """Pick PCA, press Compute and wait for the scores table; no error may show."""
    page.get_by_test_id("stRadio").filter(has_text="Method").get_by_text("PCA", exact=True).click()
    wait_until_idle(page)
    page.get_by_role("button", name="Compute", exact=True).click()
    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=120_000)
    wait_until_idle(page)
    assert not error_boxes(page)


def test_an_image_folder_typed_by_its_path_is_mapped(page, app_url, tmp_path):
    """'Other image folder…': a wrong path gets its message, no traceback; a real folder of
    class sub-folders is mapped, its sub-folder names in the legend."""
    from tests.test_data_datasets import FRUIT, write_image_folder

    write_image_folder(tmp_path / "fruit", n_per_class=8)
    open_page(page, app_url, "embeddings")
    _pick(page, "Dataset", "Other image folder")
    _type_path(page, tmp_path / "nope")
    assert error_boxes(page) == [f"{tmp_path / 'nope'} does not exist (no file or folder there)."]
    _type_path(page, tmp_path / "fruit")
    assert not error_boxes(page)
    page.get_by_text(f"3 classes: {', '.join(FRUIT)}").wait_for()
    _compute_pca(page)
    assert page.get_by_text("has 24 images: using all of them").count() == 1
    assert page.locator(".emb-root").get_attribute("data-ready") == "24"
    legend = page.locator(".emb-legend-item").all_inner_texts()
    assert [t.strip() for t in legend] == list(FRUIT)
    screenshot(page, "embeddings_image_folder")


def test_uploaded_weights_are_mapped_and_downloaded_by_their_name(page, app_url, tmp_path):
    """``?model=upload`` opens the picker; a cut file gets the picker's message, no traceback;
    the shipped lenet_digits weights uploaded give the zoo model's PCA maps, downloaded as
    embedding_coordinates_upload_lenet_digits.csv."""
    import numpy as np
    import pandas as pd
    from safetensors.torch import save

    from vizlib import zoo

    model, _ = zoo.load_model("lenet_digits")
    data = save({k: v.contiguous() for k, v in model.state_dict().items()})
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "mine.safetensors").write_bytes(data)

    open_page(page, app_url, "embeddings?model=upload")
    assert not error_boxes(page)
    page.get_by_text("see how your own model's layers separate the classes").wait_for()
    assert page.locator('[data-testid="stAlertContentWarning"]').count() == 0
    _pick(page, "Architecture of the weights", "lenet_digits")
    dropzone = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    dropzone.set_input_files(str(tmp_path / "cut.safetensors"))
    wait_until_idle(page)
    (message,) = error_boxes(page)
    assert message.startswith("Could not use 'cut.safetensors': ")
    assert page.get_by_role("button", name="Compute", exact=True).count() == 0

    dropzone.set_input_files(str(tmp_path / "mine.safetensors"))
    wait_until_idle(page)
    assert not error_boxes(page)
    _set_number(page, "Points", 300)
    _compute_pca(page)
    assert page.locator(".emb-root").get_attribute("data-ready") == "300"
    screenshot(page, "embeddings_upload")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download coordinates (CSV)").click()
    assert download.value.suggested_filename == "embedding_coordinates_upload_lenet_digits.csv"
    table = pd.read_csv(download.value.path())

    # the same map as lenet_digits picked from the zoo, every layer
    _pick(page, "Model", "lenet_digits")
    page.get_by_role("button", name="Compute", exact=True).click()
    wait_until_idle(page)
    assert not error_boxes(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download coordinates (CSV)").click()
    assert download.value.suggested_filename == "embedding_coordinates_lenet_digits.csv"
    shipped = pd.read_csv(download.value.path())
    assert list(shipped["layer"].unique()) == list(table["layer"].unique())
    assert len(shipped) == len(table) == 300 * table["layer"].nunique()
    np.testing.assert_allclose(shipped[["x", "y"]], table[["x", "y"]], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(shipped["label"], table["label"])


def _expect_points(page, value: str) -> None:
    """Wait until the Points box holds ``value``: on a busy machine a fresh page's box can show
    its first default (the minimum, 50) for a moment before the session's value arrives."""
    expect(page.get_by_label("Points", exact=True)).to_have_value(value, timeout=15_000)


def _layer_chips(page) -> list[str]:
    box = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Layers to compare")
    tags = box.locator('[data-testid="stMultiSelectTagsContainer"] [data-tag]')
    return [tags.nth(i).get_attribute("aria-label") for i in range(tags.count())]


def test_a_link_opens_the_settings_which_survive_another_page_and_travel(page, app_url, browser):
    """A shared link sets the controls without computing; a changed control goes into the
    address bar; the settings come back after another page; the copied link reopens them."""
    open_page(page, app_url, "embeddings?model=resnet_digits&layers=stem,flatten&method=PCA")
    assert not error_boxes(page)
    warnings = page.locator('[data-testid="stAlertContentWarning"]')
    assert warnings.filter(has_text="from the link").count() == 0
    assert _layer_chips(page) == ["stem", "flatten"]
    method = page.get_by_test_id("stRadio").filter(has_text="Method")
    assert method.get_by_role("radio", name="PCA").is_checked()
    page.get_by_text("Choose the data and press Compute.").wait_for()  # nothing computed
    assert page.locator('[data-testid="stDataFrame"]').count() == 0

    _set_number(page, "Points", 400)
    page.wait_for_url(lambda url: "points=400" in url)
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_text("Home", exact=True).click()
    page.wait_for_url(lambda url: "/embeddings" not in url)
    wait_until_idle(page)
    nav.get_by_text("Embeddings (t-SNE)", exact=True).click()
    page.wait_for_url(lambda url: "points=400" in url)
    wait_until_idle(page)
    # stem and flatten are resnet_digits' layers: the model came back too
    _expect_points(page, "400")
    assert _layer_chips(page) == ["stem", "flatten"]
    link = page.url
    for part in ("model=resnet_digits", "layers=stem%2Cflatten", "method=PCA", "points=400"):
        assert part in link, link

    with browser_page(browser) as fresh:
        fresh.goto(link)  # a new browser context: nothing shared but the link
        wait_until_idle(fresh)
        assert not error_boxes(fresh)
        _expect_points(fresh, "400")
        assert _layer_chips(fresh) == ["stem", "flatten"]
        fresh.get_by_role("button", name="Compute", exact=True).click()
        fresh.wait_for_selector('[data-testid="stDataFrame"]', timeout=120_000)
        wait_until_idle(fresh)
        assert not error_boxes(fresh)
        fresh.wait_for_selector('.emb-root[data-ready="400"]')  # all 400 points drawn
        assert fresh.locator("canvas.emb-over").count() == 2  # stem and flatten
        screenshot(fresh, "embeddings_link")


def test_maps_are_square_on_a_projector(browser, app_url):
    """At 1024 px three maps are about 180 px wide: they were 380 px high, the equal-aspect map
    a band across the middle; a narrow panel is now square, a wide one at most 380 px high."""
    with browser_page(browser, 1024, 900, timeout_s=120) as page:
        open_page(page, app_url, "embeddings")
        _compute(page, points=200, iterations=100)
        panels = page.locator("canvas.emb-over")
        assert panels.count() == 3
        for i in range(3):
            box = panels.nth(i).bounding_box()
            assert box["width"] < 380
            assert abs(box["height"] - max(160, box["width"])) <= 1, box
        page.set_viewport_size({"width": 1900, "height": 900})

        def wide():
            box = panels.first.bounding_box()
            assert box["width"] > 380 and box["height"] == 380, box

        eventually(page, wide)
        screenshot(page, "embeddings_1900")


def test_the_tsne_options_read_on_one_line_on_a_projector(browser, app_url):
    """At 1024 px each of the five t-SNE options has a fifth of a 560 px row: 'Early
    exaggeration' wrapped onto two lines there. Every label of the row is one line high."""
    with browser_page(browser, 1024, 900) as page:
        open_page(page, app_url, "embeddings")
        page.get_by_text("t-SNE options").click()
        boxes = page.get_by_test_id("stExpander").get_by_test_id("stNumberInput")
        boxes.last.get_by_test_id("stWidgetLabel").wait_for()
        labels = {
            label.inner_text(): label.bounding_box()["height"]
            for label in boxes.get_by_test_id("stWidgetLabel").all()
        }
        assert list(labels) == ["Perplexity", "Learning rate", "Iterations", "Exaggeration", "Seed"]
        assert max(labels.values()) < 1.5 * min(labels.values()), labels  # no second line
        assert not error_boxes(page)
