"""The app shell in a real browser: navigation lists every page, the sidebar names the device."""

import pytest

from tests.e2e.conftest import error_boxes, open_page, screenshot

pytestmark = pytest.mark.e2e

PAGE_TITLES = [
    "Home",
    "Convolution Playground",
    "Model Inspector",
    "Filters & Feature Maps",
    "Attributions",
    "Embeddings (t-SNE)",
    "ViT Attention",
    "Position Embeddings",
]


def test_shell_lists_pages_and_device(page, app_url):
    open_page(page, app_url, "")
    nav = page.locator('[data-testid="stSidebarNav"]')
    for title in PAGE_TITLES:
        assert nav.get_by_text(title, exact=True).count() == 1, title
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "Compute device" in sidebar.inner_text()
    assert "CPU" in sidebar.inner_text() or "GPU" in sidebar.inner_text()
    assert error_boxes(page) == []
    screenshot(page, "app_shell")
