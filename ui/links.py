"""Shareable page settings in the URL: a copied link reopens a page in the same state.

A page describes its shareable settings as a table, query key -> (widget key, default, allowed):
``allowed`` is the allowed values (a tuple of strings), ``(min, max)`` for whole numbers,
``(min, max, step)`` for decimals, ``(False, True)`` for a switch, or a parser of the link's text
that returns the widget's value or raises ``ValueError`` saying what it expected
(``choice_parser`` for a selectbox over names or numbers, ``multichoice_parser`` for a
multiselect, whose values the link writes comma-separated).

    first = links.first_visit("tsne.")
    for warning in links.load_settings(TABLE, prefix="tsne.", from_link=first):
        st.warning(warning)
    ... draw the widgets (keys from TABLE, no ``value=`` needed) ...
    links.save_settings(TABLE, prefix="tsne.", keep={"model"})
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import streamlit as st

Setting = tuple[str, object, object]  # (widget key, default, allowed)
Table = dict[str, Setting]  # query key -> setting
# written by the model picker (ui.model_select, ui.upload_picker) and kept by every page's tables
PICKER_KEYS = frozenset({"model", "arch"})


def parse_setting(raw: str, default: object, allowed: object) -> object:
    """Return a URL value as the widget's type; ValueError saying what is allowed otherwise."""
    if callable(allowed):
        return allowed(raw)
    if isinstance(default, bool):
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError("expected true or false")
        return raw.lower() in ("true", "1")
    if isinstance(default, float):
        low, high, step = allowed
        expected = f"expected a number from {low:g} to {high:g} in steps of {step:g}"
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(expected) from None
        steps = (value - low) / step
        if not (low <= value <= high and abs(steps - round(steps)) < 1e-6):  # NaN fails too
            raise ValueError(expected)
        return round(low + round(steps) * step, 10)  # on the slider's grid
    if isinstance(default, int):
        expected = f"expected a whole number from {allowed[0]} to {allowed[1]}"
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(expected) from None
        if not allowed[0] <= value <= allowed[1]:
            raise ValueError(expected)
        return value
    if raw not in allowed:
        raise ValueError(f"expected one of {', '.join(map(str, allowed))}")
    return raw


def link_text(value: object) -> str:
    """Return a widget's value as the link writes it (true/false, 0.3, 12, a name)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"  # 0.30000000000000004 from a slider reads 0.3
    if isinstance(value, list | tuple):
        return ",".join(link_text(item) for item in value)  # a multiselect's choices
    return str(value)


def choice_parser(
    choices: Collection[object], *, description: str | None = None
) -> Callable[[str], object]:
    """Return a parser accepting the link text of any of ``choices`` (names or numbers) and
    returning the choice itself, e.g. "2" -> 2 for a selectbox over ["mean", "max", 0, 1, 2]."""
    by_text = {link_text(choice): choice for choice in choices}
    expected = description or ", ".join(by_text)

    def parse(raw: str) -> object:
        if raw not in by_text:
            raise ValueError(f"expected {expected}")
        return by_text[raw]

    return parse


def multichoice_parser(
    choices: Collection[object], *, least: int = 1, description: str | None = None
) -> Callable[[str], list]:
    """Return a parser of a multiselect's link text, comma-separated choices (names or numbers),
    returning the list of choices in the link's order. It refuses an unknown name, a repeat, and
    fewer than ``least`` choices, saying which choices there are."""
    by_text = {link_text(choice): choice for choice in choices}
    expected = description or ", ".join(by_text)
    at_least = "at least one of" if least == 1 else f"at least {least} of"

    def parse(raw: str) -> list:
        names = [name for name in raw.split(",") if name] if raw else []
        if len(names) < least or len(set(names)) < len(names):
            raise ValueError(f"expected {at_least} {expected}, comma-separated, each once")
        for name in names:
            if name not in by_text:
                raise ValueError(f"no {name!r}; expected comma-separated choices of {expected}")
        return [by_text[name] for name in names]

    return parse


def first_visit(prefix: str) -> bool:
    """Return True on a session's first run of the page namespaced ``prefix`` (then never again),
    the run on which a link's values are loaded."""
    first = not st.session_state.get(prefix + "loaded")
    st.session_state[prefix + "loaded"] = True
    return first


def load_settings(table: Table, *, prefix: str, from_link: bool) -> list[str]:
    """Give every setting widget in ``table`` its value before it is drawn; return warnings for
    bad link values.

    With ``from_link`` (a session's first visit) the URL's values, a shared link. Otherwise the
    widget's own state or, where Streamlit dropped it (another page visited, the widget hidden
    for a while), the last value used. A number outside its range, or a value its parser refuses
    (ranges and options may follow a model or a grid chosen since), goes back to the default; a
    tuple of allowed names is only what a link may name (a widget may offer "upload" too).

    A value sent back to the default is kept aside and comes back once it fits again, unless
    the user has changed the stand-in meanwhile: image 7 of 100 digits, after a look at two
    uploaded images (image 0 of 2), is image 7 of 100 again, not image 0.
    """
    saved = st.session_state.get(prefix + "saved", {})
    aside = dict(st.session_state.get(prefix + "aside", {}))  # widget key -> (value, stand-in)
    warnings = []
    for qkey, (wkey, default, allowed) in table.items():
        value = saved.get(wkey, default)
        drawn = wkey in st.session_state
        if wkey in aside:  # back once it fits, unless the stand-in was changed or a link came
            kept, stand_in = aside.pop(wkey)
            now = st.session_state[wkey] if drawn else value
            if link_text(now) == link_text(stand_in) and not (
                from_link and qkey in st.query_params
            ):
                if not _allowed(kept, default, allowed):
                    aside[wkey] = (kept, stand_in)  # does not fit yet
                elif drawn:
                    st.session_state[wkey] = kept
                else:
                    value = kept
        if not _allowed(value, default, allowed):
            aside[wkey] = (aside[wkey][0] if wkey in aside else value, default)
            value = default
        if from_link and qkey in st.query_params:
            raw = st.query_params[qkey]
            try:
                value = parse_setting(raw, default, allowed)
            except ValueError as err:
                warnings.append(f"Ignored `{qkey}={raw}` from the link ({err}).")
        if drawn and not _allowed(st.session_state[wkey], default, allowed):
            aside[wkey] = (aside[wkey][0] if wkey in aside else st.session_state[wkey], default)
            st.session_state[wkey] = default
        st.session_state.setdefault(wkey, value)
    if aside or prefix + "aside" in st.session_state:
        st.session_state[prefix + "aside"] = aside
    given = [(prefix, w) for w, _, _ in table.values()]
    if _RUN in st.session_state:  # recorded for ``parking``
        st.session_state[_RUN] = [*st.session_state[_RUN], *given]
    known = st.session_state.get(_KNOWN, [])
    if not set(given) <= set(known):
        st.session_state[_KNOWN] = list(dict.fromkeys([*known, *given]))
    return warnings


def follow_defaults(table: Table, *, prefix: str) -> None:
    """Move each setting of ``table`` that follows its default to the new default where that
    changed since the last run (a default that follows the layer or the model chosen); call it
    before ``load_settings``. A value the user chose stays, also on a layer whose default it
    happens to be.

    "Maps shown" at every map (16) on a 16-channel layer stayed 16 on the next layer's 32, and a
    first conv layer's own objective followed the user to the next layer, both into the link. A
    setting follows from the start, and stops following once its value is changed to one that
    is not its default then (the user's, or a link's); set back to the default, it follows again.
    """
    record = st.session_state.get(prefix + "defaults", {})
    saved = st.session_state.get(prefix + "saved", {})
    updated = dict(record)
    for wkey, default, _ in table.values():
        last = record.get(wkey)
        if wkey in st.session_state:
            now = st.session_state[wkey]
        else:
            now = saved.get(wkey, default if last is None else last["value"])
        if last is None:
            follows = link_text(now) == link_text(default)
        elif link_text(now) != link_text(last["value"]):  # changed since: by the user, a link
            follows = link_text(now) == link_text(last["default"])
        else:
            follows = last["follows"]
        if follows and link_text(now) != link_text(default):
            st.session_state[wkey] = now = default
        updated[wkey] = {"default": default, "value": now, "follows": follows}
    st.session_state[prefix + "defaults"] = updated


_RUN = "links.loaded_this_run"  # (prefix, widget key) of every setting given a value this run
_KNOWN = "links.loaded_ever"  # the same for every run of the session so far


@contextmanager
def parking(*, every_setting: bool = False) -> Iterator[None]:
    """Park the settings given a value inside the block whose widget the run has not drawn by its
    end (another input source chosen, another mode, a page stopped early): their values move from
    the session into the page's record, and ``load_settings`` gives them back on the run that
    draws them again. With ``every_setting`` (a whole run of the app: the router's block), every
    setting given a value on any run of the session so far is parked where its widget is not
    drawn, not only those given one in the block: a page that stops before it loads some of its
    settings (an upload awaited) leaves their widgets undrawn, and the browser may then send
    empty values for them (a slider at its minimum, no methods chosen), which would be taken over
    instead of the values the user had.

    A value given on a run that did not draw its widget is not taken over by the widget, and it
    outlives the widget's own state: back from the photo, the digit the user had picked would be
    the one the link or the default gave. The app's router runs each page in this block; a
    fragment that loads settings runs in it too (``parked``), since its reruns skip the router.

    Needs Streamlit's record of the keyed widgets drawn in the run, and its session state as it
    is under ``st.session_state``: after ``st.stop()`` (or ``st.rerun()``) every access through
    ``st.session_state`` raises the stop again, and pages stop early often (an upload awaited).
    Without them, nothing is parked.
    """
    from streamlit.runtime.scriptrunner_utils.exceptions import RerunException

    outer = st.session_state.get(_RUN)
    st.session_state[_RUN] = []
    rerun = False
    try:
        yield
    except RerunException:
        # a run cut short by a rerun (a widget changed meanwhile, st.rerun()) did not reach its
        # later widgets: parking their values would override the newer ones the rerun brings
        # (Streamlit keeps such widgets' state too, for the same reason)
        rerun = True
        raise
    finally:
        state, lock = _session_state()
        if state is not None:
            with lock:
                loaded = state[_RUN] if _RUN in state else []
                if every_setting and _KNOWN in state:
                    loaded = list(dict.fromkeys([*loaded, *state[_KNOWN]]))
                if outer is None:
                    if _RUN in state:
                        del state[_RUN]
                else:
                    state[_RUN] = outer
                if not rerun:
                    _park_undrawn(state, loaded)


def parked(function: Callable) -> Callable:
    """Decorate a fragment (under ``@st.fragment``) to run it in ``parking``."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        with parking():
            return function(*args, **kwargs)

    return run


def _session_state() -> tuple[Any, AbstractContextManager]:
    """Return (this session's state under ``st.session_state``, its lock), or (None, a no-op)."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    safe = getattr(get_script_run_ctx(), "session_state", None)
    state, lock = getattr(safe, "_state", None), getattr(safe, "_lock", None)
    if state is None or lock is None:
        return None, nullcontext()
    return state, lock


def _park_undrawn(state: Any, loaded: list[tuple[str, str]]) -> None:
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    drawn = getattr(
        getattr(get_script_run_ctx(), "shared", None), "widget_user_keys_this_run", None
    )
    if drawn is None:
        return
    undrawn: dict[str, list[str]] = {}
    for prefix, wkey in loaded:
        if wkey not in drawn:
            undrawn.setdefault(prefix, []).append(wkey)
    for prefix, keys in undrawn.items():
        _move_to_record(state, keys, prefix)


def _move_to_record(state: Any, keys: list[str], prefix: str) -> None:
    """Move ``keys`` of ``state`` (Streamlit's session state) into the record of the page
    namespaced ``prefix``."""
    saved = dict(state[prefix + "saved"]) if prefix + "saved" in state else {}
    for wkey in keys:
        if wkey in state:
            saved[wkey] = state[wkey]
            del state[wkey]
    state[prefix + "saved"] = saved


def _allowed(value: object, default: object, allowed: object) -> bool:
    if not (callable(allowed) or isinstance(default, int | float)):
        return True
    try:
        parse_setting(link_text(value), default, allowed)
    except ValueError:
        return False
    return True


def save_settings(
    table: Table, *, prefix: str, keep: Collection[str] = (), shown: set[str] | None = None
) -> None:
    """Remember the settings of ``table`` and write them into the URL so the link reopens on
    them: those that differ from their default and, if given, are in ``shown``.

    The URL's values of the keys in ``keep`` (the page's other tables) and of the model picker's
    (``PICKER_KEYS``) that are not in ``table`` are kept; keys the page does not know are dropped.
    """
    saved = dict(st.session_state.get(prefix + "saved", {}))
    current = {}
    for qkey, (wkey, default, _) in table.items():
        value = st.session_state.get(wkey, default)
        saved[wkey] = value
        if link_text(value) != link_text(default) and (shown is None or qkey in shown):
            current[qkey] = link_text(value)
    st.session_state[prefix + "saved"] = saved
    others = (set(keep) | PICKER_KEYS) - table.keys()
    link = {key: value for key, value in st.query_params.items() if key in others} | current
    if dict(st.query_params) != link:
        st.query_params.from_dict(link)
