"""AppTest for the Filters & Feature Maps page."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "learned_filters.py")


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


@pytest.fixture
def at():
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "lenet_digits"
    return app.run()


def test_default_view_shows_first_layer_filters(at):
    assert not at.exception and not _errors(at)
    assert at.selectbox(key="filters.model").value == "lenet_digits"
    assert "32 filters of 1×5×5" in at.markdown[0].value
    # grid, histogram x2, before/after x2, feature maps, top-activating images
    assert len(at.get("plotly_chart")) >= 7
    assert any("Relative change" in m.label for m in at.metric)
    downloads = {d.key for d in at.get("download_button")}
    assert downloads == {
        "filters.download_weights",
        "filters.download_maps",
        "filters.download_top",
    }


def test_controls_rerun_without_errors(at):
    at.toggle(key="filters.shared").set_value(True).run()
    at.selectbox(key="filters.layer").set_value("conv2").run()
    assert not at.exception and not _errors(at)
    assert "64 filters of 32×5×5" in at.markdown[0].value
    at.radio(key="filters.slice_mode").set_value("Mean over input channels").run()
    at.number_input(key="filters.filter_index").set_value(63).run()
    at.radio(key="filters.source").set_value("Sample image").run()
    at.selectbox(key="filters.sample").set_value("coins").run()
    at.number_input(key="filters.channel").set_value(10).run()
    at.radio(key="filters.reduce").set_value("max").run()
    assert not at.exception and not _errors(at)


@pytest.mark.slow
def test_torchvision_alexnet_first_layer_is_rgb():
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "alexnet"
    at = app.run()
    assert not at.exception and not _errors(at)
    assert "64 filters of 3×11×11 (RGB below)" in at.markdown[0].value
    assert any("Top-activating images need" in i.value for i in at.info)


def test_unknown_model_in_the_link_is_reported_not_fatal():
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "nonexistent"
    app.run()
    assert not app.exception and not _errors(app)
    assert any("Ignored `model=nonexistent`" in w.value for w in app.warning)
    assert app.selectbox(key="filters.model").value == "lenet_digits"
