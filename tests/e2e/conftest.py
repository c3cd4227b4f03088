"""The app in a real browser: ``streamlit run app.py`` on a free localhost port, driven by
Playwright in Debian's chromium. Without the browser these tests skip, except under CI=true,
where they fail."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(log_path: Path) -> Iterator[str]:
    """Run ``streamlit run app.py`` on a free localhost port; yield its URL once it answers.
    Its output goes to ``log_path``; the server is stopped on exit."""
    port = _free_port()
    log = open(log_path, "w")  # noqa: SIM115
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # each worker's server: the worker's share
        from tests.conftest import worker_threads

        env["OMP_NUM_THREADS"] = str(worker_threads())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early; see {log.name}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer within 120 s; see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def app_url():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # Under pytest-xdist each worker runs browser tests with its own server: one log each.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with serve_app(SCREENSHOTS.parent / f"streamlit-e2e-{worker}.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _outside(url: str) -> bool:
    """Whether a request goes to another host than the app's own (data: and blob: stay)."""
    return urlparse(url).hostname not in ("127.0.0.1", "localhost", None)


@contextmanager
def browser_page(browser, width: int = 1500, height: int = 1100, timeout_s: float = 60):
    """Yield a page in a new browser context (nothing shared with other tabs but the server)
    of the given viewport, and close the context afterwards. The app runs offline on a fresh
    machine, so every request is watched: one to any host but the app's own (a font, an icon,
    a CDN) fails the test once its body has passed."""
    context = browser.new_context(viewport={"width": width, "height": height})
    fetched_outside: list[str] = []
    context.on("request", lambda r: fetched_outside.append(r.url) if _outside(r.url) else None)
    try:
        page = context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        yield page
    finally:
        context.close()
    assert fetched_outside == [], f"the page fetched from outside: {fetched_outside}"


@pytest.fixture
def page(browser, app_url):
    with browser_page(browser) as page:
        yield page


_SCRIPT_STATE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const busy = document.querySelector('[data-testid="stStatusWidget"]') !== null;
  const drawn = document.querySelectorAll('[data-testid]').length;
  return app === null ? null : [app.dataset.testConnectionState, app.dataset.testScriptState, busy, drawn];
}"""


def wait_until_idle(page, timeout_s: float = 120, quiet_s: float = 1.5) -> float:
    """Wait until the app is connected, has rendered and no script run has been in progress or
    asked for, nor any element been drawn, during ``quiet_s``; return the ``time.monotonic()``
    at which it went quiet.

    The app's root element carries Streamlit's own record of the script's state
    (``data-test-script-state``: running, rerunRequested or notRunning), which changes at once;
    the quiet time is for the reruns a page asks for itself once drawn (a component's value).
    The elements themselves can come later: in a fresh browser context a page's first run ended
    ("notRunning") 1.5 s before any of its widgets showed (the browser still loading the code of
    its charts), so the count of drawn elements must hold still too.
    """
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    drawn = None
    while time.monotonic() < deadline:
        state = page.evaluate(_SCRIPT_STATE)
        idle = state is not None and state[:2] == ["CONNECTED", "notRunning"] and not state[2]
        if state is not None and state[3] != drawn:
            idle, drawn = False, state[3]
        if not idle:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return quiet_since
        time.sleep(0.1)
    raise AssertionError(f"the app was still running after {timeout_s} s")


def set_slider(page, slider, value: float, timeout_s: float = 120) -> None:
    """Move ``slider`` (its role="slider" element) to ``value`` with the arrow keys, one step
    per press, and wait until the app has settled on it. After ten presses in a row a loaded
    run once never showed "rotated 10°" (whether a press was lost is not known), so the
    value is read after each press and again once the app is idle."""

    def shown() -> float:  # an <input type="range">, or a thumb with aria-valuenow
        return float(slider.evaluate("e => e.value ?? e.getAttribute('aria-valuenow')"))

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = shown()
        if now == value:
            wait_until_idle(page)
            if shown() == value:
                return
            continue
        slider.focus()
        page.keyboard.press("ArrowRight" if now < value else "ArrowLeft")
        time.sleep(0.05)
    raise AssertionError(f"the slider did not reach {value} within {timeout_s} s")


def open_page(page, app_url: str, url_path: str) -> None:
    """Go to one page of the app (its url path, e.g. "conv_playground") and wait for it."""
    page.goto(f"{app_url}/{url_path}")
    wait_until_idle(page)


def error_boxes(page) -> list[str]:
    """Return the texts of exception and error boxes on the page."""
    boxes = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    return [boxes.nth(i).inner_text() for i in range(boxes.count())]


def screenshot(page, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def charts_outside_the_column(page) -> list[int]:
    """Return the indices of the plotly charts whose right edge passes the page's main column
    (a figure wider than the page, its right part cut off)."""
    main = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
    right = main["x"] + main["width"]
    charts = page.locator(".js-plotly-plot")
    boxes = [charts.nth(i).bounding_box() for i in range(charts.count())]
    return [i for i, box in enumerate(boxes) if box["x"] + box["width"] > right + 1]


def plotly_charts(page, at_least: int, timeout_s: float = 60) -> int:
    """Return how many plotly charts the page shows, waiting until there are ``at_least``:
    plotly mounts its charts after the script run has ended, so one count can come too early."""
    page.wait_for_function(
        "n => document.querySelectorAll('.js-plotly-plot').length >= n",
        arg=at_least,
        timeout=timeout_s * 1000,
    )
    return page.locator(".js-plotly-plot").count()


def eventually(page, check, timeout_s: float = 15):
    """Return ``check()``'s result once it stops raising AssertionError, trying every 250 ms:
    after a resize the page lays itself out again, which can take seconds on a busy machine."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.wait_for_timeout(250)
