"""The ViT pages in a real browser: they render their figures with no error box."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import error_boxes, open_page, plotly_charts, screenshot, wait_until_idle


def _smallest_vit() -> str:
    """The shipped digits ViT when present (fast on a CPU), else torchvision's vit_b_16."""
    from ui.vit import vit_model_names

    names = vit_model_names()
    return "vit_digits" if "vit_digits" in names else names[0]


@pytest.mark.e2e
@pytest.mark.slow
def test_vit_attention_page(page, app_url):
    open_page(page, app_url, f"vit_attention?model={_smallest_vit()}")
    wait_until_idle(page, timeout_s=240)
    assert error_boxes(page) == []
    for header in ("Mean attention distance", "Attention maps", "Attention rollout"):
        assert page.get_by_role("heading", name=header).count() == 1
    assert plotly_charts(page, 4) >= 4
    assert page.get_by_text("uniform attention").count() >= 1
    screenshot(page, "vit_attention")
    # which heads matter: after its button, the importance and the pruning curves
    page.get_by_role("button", name=re.compile(r"^Measure the \d+ heads")).click()
    page.get_by_text("Download the importances").wait_for(timeout=240_000)
    wait_until_idle(page)
    assert error_boxes(page) == []
    assert plotly_charts(page, 6) >= 6
    assert page.get_by_text("least important first").count() >= 1
    # the app scrolls inside its own container: bring the lower panels into view one by one
    page.get_by_role("heading", name="Attention maps").scroll_into_view_if_needed()
    screenshot(page, "vit_attention_maps")
    # the colour bar reaches the browser in Inferno's own opaque colours, dark end first
    # (Streamlit's theme used to turn Inferno's "#000004" into its light pink)
    cls_chart = page.locator(".js-plotly-plot").filter(has_text="Class token").first
    stops = cls_chart.evaluate(
        "e => Array.from(e.querySelectorAll('linearGradient stop'))"
        ".map(s => [s.getAttribute('stop-color'), s.getAttribute('stop-opacity')])"
    )
    assert stops[0] == ["rgb(0, 0, 4)", "1"] and stops[-1] == ["rgb(252, 255, 164)", "1"]
    page.get_by_role("heading", name="Attention rollout").scroll_into_view_if_needed()
    screenshot(page, "vit_attention_rollout")


@pytest.mark.e2e
@pytest.mark.slow
def test_vit_attention_on_uploaded_photos(page, app_url, tmp_path):
    """'Upload images…': two PNG photos sent through the browser's file input are used by every
    section, captioned by their file names, with no error box."""
    import skimage.data
    from PIL import Image

    paths = []
    for name, size in (("chelsea", (90, 60)), ("coffee", (40, 48))):
        path = tmp_path / f"{name}.png"
        Image.fromarray(getattr(skimage.data, name)()).resize(size).save(path)
        paths.append(str(path))
    open_page(page, app_url, f"vit_attention?model={_smallest_vit()}")
    wait_until_idle(page, timeout_s=240)
    box = page.locator('[data-testid="stSelectbox"]').filter(
        has=page.locator('[data-testid="stWidgetLabel"]', has_text=re.compile("^Images$"))
    )
    box.click()
    page.keyboard.type("Upload images")  # the selectbox filters its options as you type
    page.keyboard.press("Enter")
    wait_until_idle(page)
    page.get_by_text("Upload one or more PNG or JPEG images").wait_for()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(paths)
    wait_until_idle(page, timeout_s=240)
    assert error_boxes(page) == []
    page.get_by_text("2 images available").first.wait_for()
    assert plotly_charts(page, 4) >= 4  # distances, two attention maps, rollout
    rollout = page.locator(".js-plotly-plot").filter(has_text="Rollout of the class token")
    for name in ("chelsea.png", "coffee.png"):  # the panels' titles are the file names
        assert rollout.get_by_text(name).count() == 1
    page.get_by_role("heading", name="Attention rollout").scroll_into_view_if_needed()
    screenshot(page, "vit_attention_uploads")


@pytest.mark.e2e
@pytest.mark.slow
def test_position_embeddings_page(page, app_url):
    open_page(page, app_url, "position_embeddings")
    wait_until_idle(page, timeout_s=240)
    assert error_boxes(page) == []
    for header in (
        "Position embedding similarity",
        "Patch-embedding filters",
        "Sinusoidal encoding vs learned embedding",
    ):
        assert page.get_by_role("heading", name=header).count() == 1
    assert plotly_charts(page, 6) >= 6
    screenshot(page, "position_embeddings")
    page.get_by_role("heading", name="Patch-embedding filters").scroll_into_view_if_needed()
    screenshot(page, "position_embeddings_filters")
    page.get_by_role(
        "heading", name="Sinusoidal encoding vs learned embedding"
    ).scroll_into_view_if_needed()
    screenshot(page, "position_embeddings_sinusoidal")


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("width", [1024, 1500])
def test_dot_product_heatmaps_fill_their_half_column(page, app_url, width):
    """In a half column at 1024 px the dot-product heatmaps were squares of about 120 px in a
    420 px high chart, with empty bands above and below; the square now takes most of the
    chart's height, the colour bar lies under it and the ticks are whole positions."""
    page.set_viewport_size({"width": width, "height": 1000})
    open_page(page, app_url, f"position_embeddings?model={_smallest_vit()}&pos=2&dim=2")
    wait_until_idle(page, timeout_s=240)
    assert error_boxes(page) == []
    plotly_charts(page, 6)
    for title in ("Sinusoidal: dot products", "Learned: dot products"):
        chart = page.locator(".js-plotly-plot").filter(has_text=title)
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        plot = chart.locator(".nsewdrag").first.bounding_box()  # the drawn heatmap's area
        assert abs(plot["width"] - plot["height"]) <= 2  # square
        assert plot["height"] >= 0.5 * box["height"], (plot, box)  # was 120 of 420 px
        bar = chart.locator(".colorbar").first.bounding_box()
        assert bar["y"] >= plot["y"] + plot["height"]  # under the heatmap, not beside it
    sinusoidal = page.locator(".js-plotly-plot").filter(has_text="Sinusoidal: dot products")
    ticks = sinusoidal.locator(".xtick text").all_text_contents()  # SVG: no inner text
    assert ticks == ["0", "1"]  # two positions: no half positions
    screenshot(page, f"position_embeddings_dot_products_{width}")
