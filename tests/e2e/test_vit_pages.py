"""The ViT pages in a real browser: they render their figures with no error box."""

from __future__ import annotations

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
    # the app scrolls inside its own container: bring the lower panels into view one by one
    page.get_by_role("heading", name="Attention maps").scroll_into_view_if_needed()
    screenshot(page, "vit_attention_maps")
    page.get_by_role("heading", name="Attention rollout").scroll_into_view_if_needed()
    screenshot(page, "vit_attention_rollout")


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
