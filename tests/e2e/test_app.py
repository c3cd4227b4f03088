"""The app shell in a real browser: navigation lists every page, the sidebar names the device,
and a page opened straight from its URL still runs inside the router."""

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, browser_page, error_boxes, open_page, screenshot

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


def test_every_page_is_opened_by_a_browser_test():
    """The app must run offline on a fresh machine: no page may fetch from the internet (fonts,
    icons, CDNs). Every browser test's context fails on a request to another host than the
    app's (``browser_page``), so that holds for each page some browser test opens."""
    app = (ROOT / "app.py").read_text()
    stems = re.findall(r'st\.Page\(\s*"app_pages/(\w+)\.py"', app)
    assert len(stems) == len(PAGE_TITLES)
    tests = "\n".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py"))
    opened = set(re.findall(r'open_page\(\w+, app_url, f?"(\w*)', tests))
    opened |= {path.split("?")[0] for path in PROJECTOR_PATHS}
    opened = {stem or "home" for stem in opened}
    assert sorted(set(stems) - opened) == []


def test_a_request_to_another_host_fails_the_browser_test(browser, app_url):
    with pytest.raises(AssertionError, match="fetched from outside"):  # noqa: PT012
        with browser_page(browser) as page:
            page.goto(f"{app_url}/_stcore/health")
            page.evaluate("() => fetch('http://fonts.example.invalid/a.woff2').catch(() => 0)")


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


PROJECTOR_PATHS = [
    "", "conv_playground", "conv_playground?mode=Transposed+convolution", "learned_filters",
    "activations", "attributions", "adversarial", "calibration", "layer_similarity",
    "vit_attention", "training",
]  # fmt: skip


@pytest.mark.parametrize("path", PROJECTOR_PATHS)
def test_labels_and_tables_fit_a_1024_pixel_projector(browser, app_url, path):
    """At 1024x768 with the sidebar open no label is cut and the Home page's table shows every
    column: the Playground's 'Depthwise' button read 'De…' and its 'Show numbers' box 'Show n…',
    the Filters page's toggle 'One shared colou…', and Home's grid hid the training columns."""
    with browser_page(browser, 1024, 768) as page:
        open_page(page, app_url, path)
        assert error_boxes(page) == []
        if path == "":
            page.get_by_text("30 epochs").first.wait_for()  # the table's last column, visible
        assert page.evaluate(_CUT_TEXT) == []
        screenshot(page, "1024_" + (path.split("=")[-1].replace("+", "_") or "home"))
