"""Unit tests of ui.links' parsing and formatting of link values (the AppTests of the pages
check loading and saving)."""

from __future__ import annotations

import pytest

from ui import links


@pytest.mark.parametrize(
    ("raw", "default", "allowed", "expected"),
    [
        ("true", False, (False, True), True),
        ("0", True, (False, True), False),
        ("12", 3, (0, 31), 12),
        ("0.30000001", 1.0, (0.0, 10.0, 0.1), 0.3),
        ("2.5", 1.0, (0.0, 10.0, 0.5), 2.5),
        ("same", "numbers", ("numbers", "same"), "same"),
    ],
)
def test_good_values_become_the_widgets_type(raw, default, allowed, expected):
    value = links.parse_setting(raw, default, allowed)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("raw", "default", "allowed", "message"),
    [
        ("yes", False, (False, True), "expected true or false"),
        ("x", 3, (0, 31), "expected a whole number from 0 to 31"),
        ("32", 3, (0, 31), "expected a whole number from 0 to 31"),
        ("1.5", 3, (0, 31), "expected a whole number from 0 to 31"),
        ("0.25", 1.0, (0.0, 10.0, 0.5), "in steps of 0.5"),
        ("nan", 1.0, (0.0, 10.0, 0.5), "from 0 to 10"),
        ("11", 1.0, (0.0, 10.0, 0.5), "from 0 to 10"),
        ("odd", "a", ("a", "b"), "expected one of a, b"),
    ],
)
def test_bad_values_say_what_was_expected(raw, default, allowed, message):
    with pytest.raises(ValueError, match=message):
        links.parse_setting(raw, default, allowed)


def test_choice_parser_returns_the_choice_itself():
    parse = links.choice_parser(["mean", "max", 0, 1])
    assert parse("1") == 1 and isinstance(parse("1"), int)
    assert parse("max") == "max"
    with pytest.raises(ValueError, match="expected mean, max, 0, 1"):
        parse("2")
    assert links.parse_setting("0", "mean", parse) == 0


def test_link_text_round_trips():
    assert links.link_text(True) == "true"
    assert links.link_text(0.1 + 0.2) == "0.3"
    assert links.link_text(7) == "7"
    for value, default, allowed in [(0.35, 0.0, (0.0, 0.95, 0.05)), (False, True, (False, True))]:
        assert links.parse_setting(links.link_text(value), default, allowed) == value


def test_multichoice_parser_returns_the_choices_in_link_order():
    parse = links.multichoice_parser(["pixels", "conv1", "fc", 3])
    assert parse("fc,pixels,3") == ["fc", "pixels", 3]
    assert links.link_text(["fc", "pixels", 3]) == "fc,pixels,3"
    assert links.parse_setting(links.link_text(["conv1"]), ["pixels"], parse) == ["conv1"]
    with pytest.raises(ValueError, match="no 'conv9'; expected comma-separated choices of pixels"):
        parse("pixels,conv9")
    for raw in ("", "fc,fc"):
        with pytest.raises(ValueError, match="expected at least one of pixels, conv1, fc, 3"):
            parse(raw)
    assert links.multichoice_parser(["a", "b"], least=0)("") == []
    with pytest.raises(ValueError, match="at least 2 of a, b"):
        links.multichoice_parser(["a", "b"], least=2)("a")


def _stopping_page():
    import streamlit as st

    from ui import links

    with links.parking():
        table = {"n": ("t.n", 1, (0, 9))}
        links.load_settings(table, prefix="t.", from_link=links.first_visit("t."))
        if st.session_state.get("show"):
            st.number_input("n", 0, 9, key="t.n")
        st.stop()  # as pages do while an upload is awaited


def test_parking_works_on_runs_that_stop_early():
    """After st.stop() every access through st.session_state raises the stop again: the parking
    must still move an undrawn setting into the page's record and end its run's bookkeeping."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_stopping_page).run()
    assert not at.exception
    assert "t.n" not in at.session_state and at.session_state["t.saved"] == {"t.n": 1}
    assert "links.loaded_this_run" not in at.session_state
    at.session_state["show"] = True
    at.run()
    at.number_input(key="t.n").set_value(5).run()
    at.session_state["show"] = False
    at.run()
    assert "t.n" not in at.session_state and at.session_state["t.saved"] == {"t.n": 5}
    at.session_state["show"] = True
    at.run()
    assert at.number_input(key="t.n").value == 5


def _page_stopping_before_some_settings():
    import streamlit as st

    from ui import links

    with links.parking(every_setting=True):
        links.load_settings({"a": ("t.a", 1, (0, 9))}, prefix="t.", from_link=False)
        st.number_input("a", 0, 9, key="t.a")
        if not st.session_state.get("upload"):
            links.load_settings({"b": ("t.b", 2, (0, 9))}, prefix="t.", from_link=False)
            st.number_input("b", 0, 9, key="t.b")
            links.save_settings({"b": ("t.b", 2, (0, 9))}, prefix="t.")
        else:
            st.stop()  # an upload awaited, above the settings loaded further down


def test_the_routers_parking_takes_aside_settings_that_a_run_stopped_before_loading():
    """A page that stops before it loads a setting leaves the setting's widget undrawn; the
    router's parking (``every_setting``) moves it into the record all the same, so the browser's
    empty value for the unseen widget is not taken over, and it comes back when drawn again."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_page_stopping_before_some_settings).run()
    at.number_input(key="t.b").set_value(7).run()
    at.session_state["upload"] = True
    at.run()
    assert not at.exception
    assert "t.b" not in at.session_state and at.session_state["t.saved"]["t.b"] == 7
    assert at.session_state["t.a"] == 1  # drawn: left where it is
    at.session_state["upload"] = False
    at.run()
    assert at.number_input(key="t.b").value == 7


def _page_whose_range_follows_the_images():
    import streamlit as st

    from ui import links

    with links.parking():
        n_images = st.session_state.get("n_images", 100)
        table = {"image": ("t.image", 0, (0, n_images - 1))}
        links.load_settings(table, prefix="t.", from_link=links.first_visit("t."))
        if not st.session_state.get("awaiting"):
            st.number_input("Image", 0, n_images - 1, key="t.image")
        links.save_settings(table, prefix="t.")


def test_a_value_out_of_range_for_a_while_comes_back_once_it_fits():
    """Image 7 of 100, then two uploaded images (image 0 of 2 stands in), then the 100 again:
    image 7, also in the link, unless the user changed the stand-in meanwhile."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_page_whose_range_follows_the_images).run()
    at.number_input(key="t.image").set_value(7).run()
    at.session_state["n_images"] = 2
    at.run()
    assert at.number_input(key="t.image").value == 0
    assert "image" not in at.query_params
    at.session_state["awaiting"] = True  # the widget parked meanwhile (an upload awaited)
    at.run()
    at.session_state["awaiting"] = False
    at.run()
    assert at.number_input(key="t.image").value == 0
    at.session_state["n_images"] = 5  # still too few: it waits on
    at.run()
    assert at.number_input(key="t.image").value == 0
    at.session_state["n_images"] = 100
    at.run()
    assert at.number_input(key="t.image").value == 7
    assert at.query_params["image"] == "7"

    at.session_state["n_images"] = 2
    at.run()
    at.number_input(key="t.image").set_value(1).run()  # the user's own choice on the two
    at.session_state["n_images"] = 100
    at.run()
    assert at.number_input(key="t.image").value == 1
    assert not at.exception
