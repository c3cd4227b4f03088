"""Benchmark: what each page of the app costs to open in a real browser.

Serves the app (``streamlit run app.py``) and opens every page in Debian's headless chromium,
``--repeats`` times per page in one browser tab (the first opening fills the app's caches).
Prints one table: for each page, the seconds until the script run ended and the page went quiet,
the seconds of CPU the browser's main thread spent on it (from Chrome's sampling profiler: parsing
the app's messages, React, plotly), the bytes the app sent over its websocket, and how many plotly
charts it drew. First opening and the median of the others.

A page's browser CPU is what a user's laptop pays on every rerun of that page; on this 2-core
machine without a GPU every page should stay around 3 s or below (the Convolution Playground took
about 9 s before its real-data figure stopped plotly's automatic margins from redrawing it).

Usage: ``python bench/pages.py [--repeats R] [--width PX] [page ...]`` (page: its url path,
e.g. ``conv_playground``; "" is Home; default: every page).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, serve_app, wait_until_idle  # noqa: E402

PAGES = (
    "",
    "conv_playground",
    "model_inspector",
    "learned_filters",
    "activations",
    "attributions",
    "adversarial",
    "calibration",
    "embeddings",
    "layer_similarity",
    "vit_attention",
    "position_embeddings",
    "training",
)


def _open_once(page, cdp, url: str, received: list[int]) -> tuple[float, float, int, int]:
    """Open ``url``; return (seconds until quiet, browser main-thread CPU seconds, websocket
    bytes received, plotly charts drawn)."""
    received[0] = 0
    cdp.send("Profiler.start")
    started = time.monotonic()
    page.goto(url)
    quiet = wait_until_idle(page)
    profile = cdp.send("Profiler.stop")["profile"]
    names = {node["id"]: node["callFrame"]["functionName"] for node in profile["nodes"]}
    busy_us = sum(
        delta
        for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=True)
        if names[sample] != "(idle)"
    )
    charts = page.locator(".js-plotly-plot").count()
    return quiet - started, busy_us / 1e6, received[0], charts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="*", default=list(PAGES), help="url paths ('' is Home)")
    parser.add_argument("--repeats", type=int, default=3, help="openings per page (at least 2)")
    parser.add_argument("--width", type=int, default=1500, help="browser window width, pixels")
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats must be at least 2 (the first opening fills the caches)")
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    log = Path(tempfile.gettempdir()) / "vizlib-bench-pages.log"
    rows = []
    with serve_app(log) as app_url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": args.width, "height": 1100})
        page = context.new_page()
        page.set_default_timeout(120_000)
        received = [0]

        def count_frames(ws) -> None:
            ws.on(
                "framereceived", lambda payload: received.__setitem__(0, received[0] + len(payload))
            )

        page.on("websocket", count_frames)
        cdp = context.new_cdp_session(page)
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 1000})  # microseconds
        for path in args.pages:
            runs = [
                _open_once(page, cdp, f"{app_url}/{path}", received) for _ in range(args.repeats)
            ]
            later = runs[1:]
            rows.append(
                (
                    path or "(home)",
                    runs[0][0],
                    statistics.median(r[0] for r in later),
                    runs[0][1],
                    statistics.median(r[1] for r in later),
                    statistics.median(r[2] for r in later) / 1024,
                    runs[-1][3],
                )
            )
        version = browser.version
        browser.close()

    print(
        f"Device: headless chromium ({version}, --disable-gpu) and the app server on "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}); window "
        f"{args.width} px wide; {args.repeats} openings per page, 'later' is their median "
        "after the first."
    )
    header = ("page", "quiet s first", "quiet s later", "browser CPU s first",
              "browser CPU s later", "websocket KiB", "plotly charts")  # fmt: skip
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for name, q0, q1, c0, c1, kib, charts in rows:
        print(f"{name} | {q0:.1f} | {q1:.1f} | {c0:.1f} | {c1:.1f} | {kib:,.0f} | {charts}")


if __name__ == "__main__":
    main()
