"""The whole app (router and sidebar) across page visits: Streamlit drops the state of a page's
widgets while another page is shown, and the browser leaves the link's settings behind on the
way; the model picked, and the architecture of uploaded weights, come back with the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui

APP = str(Path(__file__).resolve().parents[2] / "app.py")
HOME = "app_pages/home.py"


def _app_on(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _visit_home_and_return(at: AppTest, page: str) -> None:
    at.switch_page(HOME).run()
    at.query_params.clear()  # as the browser does on the way
    at.switch_page(page).run()
    assert not at.exception, at.exception


@pytest.mark.parametrize(
    ("page", "prefix"),
    [("app_pages/learned_filters.py", "filters"), ("app_pages/attributions.py", "attr")],
)
def test_the_model_comes_back_after_another_page(page, prefix):
    at = _app_on(page)
    assert at.selectbox(key=f"{prefix}.model").value == "lenet_digits"
    at.selectbox(key=f"{prefix}.model").set_value("resnet_digits").run()
    assert not at.exception and at.query_params["model"] == "resnet_digits"
    _visit_home_and_return(at, page)
    assert at.selectbox(key=f"{prefix}.model").value == "resnet_digits"
    assert at.query_params["model"] == "resnet_digits"
    assert not [w.value for w in at.warning if "link" in w.value]


@pytest.mark.parametrize(
    ("page", "prefix"),
    [
        ("app_pages/vit_attention.py", "vit_attention"),
        ("app_pages/position_embeddings.py", "position_embeddings"),
        ("app_pages/learned_filters.py", "filters"),
    ],
)
def test_an_upload_choice_and_its_architecture_come_back(page, prefix):
    at = _app_on(page)
    at.selectbox(key=f"{prefix}.model").set_value(ui.UPLOAD).run()
    architectures = at.selectbox(key=f"{prefix}.upload_arch").options
    other = architectures[-1]
    assert other != at.selectbox(key=f"{prefix}.upload_arch").value
    at.selectbox(key=f"{prefix}.upload_arch").set_value(other).run()
    assert not at.exception and at.query_params["model"] == "upload"
    _visit_home_and_return(at, page)
    assert at.selectbox(key=f"{prefix}.model").value == ui.UPLOAD
    assert at.selectbox(key=f"{prefix}.upload_arch").value == other
    assert at.query_params["model"] == "upload"


def test_a_link_still_beats_the_last_choice():
    page = "app_pages/learned_filters.py"
    at = _app_on(page)
    at.selectbox(key="filters.model").set_value("resnet_digits").run()
    at.switch_page(HOME).run()
    at.query_params.clear()
    at.query_params["model"] = "vit_digits"  # the user pasted another link into this session
    at.switch_page(page).run()
    assert not at.exception
    assert at.selectbox(key="filters.model").value == "vit_digits"


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (
            {"model": "nonexistent"},
            "Ignored `model=nonexistent` from the link (no such model); showing lenet_digits.",
        ),
        (
            {"model": "upload", "arch": "lenet"},
            "Ignored `arch=lenet` from the link (expected lenet_digits, resnet_digits, "
            "vit_digits, alexnet, vgg16, resnet18, vit_b_16).",
        ),
    ],
)
def test_a_bad_model_or_architecture_in_a_link_gets_the_standard_warning(link, expected):
    """The model picker's link warnings read and look as every other setting's (``ui.links``):
    the same words and the broken-link icon."""
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in link.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("app_pages/learned_filters.py").run()
    assert not at.exception, at.exception
    warnings = [w for w in at.warning if "from the link" in w.value]
    assert [w.value for w in warnings] == [expected]
    assert warnings[0].proto.icon == ":material/link_off:"
    assert at.query_params["model"] == ("upload" if "arch" in link else "lenet_digits")
    assert "arch" not in at.query_params


def test_the_inspectors_model_and_source_come_back():
    page = "app_pages/model_inspector.py"
    at = _app_on(page)
    at.selectbox(key="inspector.model").set_value("resnet_digits").run()
    _visit_home_and_return(at, page)
    assert at.selectbox(key="inspector.model").value == "resnet_digits"
    at.radio(key="inspector.source").set_value("Upload weights").run()
    at.selectbox(key="inspector.upload_arch").set_value("vit_digits").run()
    _visit_home_and_return(at, page)
    assert at.radio(key="inspector.source").value == "Upload weights"
    assert at.selectbox(key="inspector.upload_arch").value == "vit_digits"
    assert dict(at.query_params) == {"model": "upload", "arch": "vit_digits"}


def _playground_source(at: AppTest, source: str) -> None:
    at.selectbox(key="conv.source").set_value(source).run()
    assert not at.exception, at.exception


def test_a_hidden_setting_keeps_the_users_value():
    """The digit index is drawn only with the digit input: picked, hidden by the photo, and
    shown again (or after another page), it must be the user's digit, not the value the page
    gave it on the first run, when it was not drawn."""
    page = "app_pages/conv_playground.py"
    at = _app_on(page)
    _playground_source(at, "digit")
    at.number_input(key="conv.digit").set_value(7).run()
    _playground_source(at, "sample")
    _playground_source(at, "digit")
    assert at.number_input(key="conv.digit").value == 7
    _visit_home_and_return(at, page)
    assert at.selectbox(key="conv.source").value == "digit"
    assert at.number_input(key="conv.digit").value == 7
    assert at.query_params["data.digit"] == "7"


def test_settings_from_a_link_wait_for_their_widget():
    """A link's value for a widget the first run does not draw reaches it when it is drawn."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["data.field"] = "front"
    at.run()
    at.switch_page("app_pages/conv_playground.py").run()
    assert at.selectbox(key="conv.source").value == "sample"
    _playground_source(at, "digit")
    _playground_source(at, "field")
    assert at.selectbox(key="conv.field").value == "front"
