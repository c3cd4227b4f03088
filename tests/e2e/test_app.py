"""The app shell in a real browser: navigation lists every page, the sidebar names the device,
and a page opened straight from its URL still runs inside the router."""

import pytest

from tests.e2e.conftest import error_boxes, open_page, screenshot

pytestmark = pytest.mark.e2e

PAGE_TITLES = [
    "Home",
    "Convolution Playground",
    "Model Inspector",
    "Filters & Feature Maps",
    "Activations & Gradients",
    "Attributions",
    "Adversarial Examples",
    "Predictions & Calibration",
    "Embeddings (t-SNE)",
    "Layer Similarity (CKA)",
    "ViT Attention",
    "Position Embeddings",
    "Training Lab",
]


def _assert_router_ran(page):
    nav = page.locator('[data-testid="stSidebarNav"]')
    for title in PAGE_TITLES:
        assert nav.get_by_text(title, exact=True).count() == 1, title
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert "Compute device" in sidebar
    assert "CPU" in sidebar or "GPU" in sidebar


def test_direct_page_url_runs_inside_the_router(page, app_url):
    # first visit of the session straight to a page: must not fall back to legacy page discovery
    open_page(page, app_url, "model_inspector")
    _assert_router_ran(page)
    assert error_boxes(page) == []


def test_home_lists_pages_and_device(page, app_url):
    open_page(page, app_url, "")
    _assert_router_ran(page)
    assert page.get_by_text("Models that ship with the app").count() == 1
    assert error_boxes(page) == []
    screenshot(page, "home")


def test_every_page_loads_with_nothing_fetched_from_outside(page, app_url):
    # Offline on a fresh machine: no page may fetch from the internet (fonts, icons, CDNs).
    from urllib.parse import urlparse

    outside = []
    page.on(
        "request",
        lambda request: (
            outside.append(request.url)
            if urlparse(request.url).hostname not in ("127.0.0.1", "localhost", None)
            and not request.url.startswith("data:")
            else None
        ),
    )
    for path in ("", "conv_playground", "model_inspector", "learned_filters", "activations",
                 "attributions", "adversarial", "calibration", "embeddings", "layer_similarity",
                 "vit_attention", "position_embeddings", "training"):  # fmt: skip
        open_page(page, app_url, path)
        assert error_boxes(page) == [], path
    assert outside == []


# Text that the browser cuts with an ellipsis (a button's or a toggle's label too long for its
# column) and tables wider than the page, which hide their last columns off the right edge.
_CUT_TEXT = """() => {
  const cut = [];
  document.querySelectorAll('[data-testid="stMain"] *').forEach(e => {
    const style = getComputedStyle(e);
    if (e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1 && style.textOverflow === 'ellipsis')
      cut.push(e.innerText.slice(0, 60));
  });
  document.querySelectorAll('[data-testid="stMain"] [data-testid="stTable"]').forEach(e => {
    if (e.scrollWidth > e.clientWidth + 1) cut.push('a table ' + e.scrollWidth + ' px wide');
  });
  return cut;
}"""


@pytest.mark.parametrize(
    "path",
    ["", "conv_playground", "conv_playground?mode=Transposed+convolution", "learned_filters",
     "activations", "attributions", "adversarial", "calibration", "layer_similarity",
     "vit_attention",
     "training"],
)  # fmt: skip
def test_labels_and_tables_fit_a_1024_pixel_projector(browser, app_url, path):
    """At 1024x768 with the sidebar open no label is cut and the Home page's table shows every
    column: the Playground's 'Depthwise' button read 'De…' and its 'Show numbers' box 'Show n…',
    the Filters page's toggle 'One shared colou…', and Home's grid hid the training columns."""
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        open_page(page, app_url, path)
        assert error_boxes(page) == []
        if path == "":
            page.get_by_text("30 epochs").first.wait_for()  # the table's last column, visible
        assert page.evaluate(_CUT_TEXT) == []
        screenshot(page, "1024_" + (path.split("=")[-1].replace("+", "_") or "home"))
    finally:
        context.close()
