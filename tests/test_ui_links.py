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
