"""Training Lab and Activations & Gradients in a real browser: a run trains live, is stopped,
and the results fit a 1024-pixel projector."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.conftest import (
    browser_page,
    error_boxes,
    open_page,
    plotly_charts,
    screenshot,
    wait_until_idle,
)
from tests.e2e.test_app import _CUT_TEXT

pytestmark = pytest.mark.e2e

_HEATMAP_CELL_PX = """sel => [...document.querySelectorAll(sel + ' .hm image')].map(
  im => im.getBoundingClientRect().width / 10)"""  # each heatmap trace spans the 10 columns
_ANNOTATION_BOXES = """sel => {
  const chart = document.querySelector(sel + ' .js-plotly-plot');
  const right = chart.getBoundingClientRect().right;
  return [...chart.querySelectorAll('.annotation-text')].map(t => {
    const r = t.getBoundingClientRect();
    return {text: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom,
            figure_right: right};
  });
}"""


_COLORBARS_AND_PLOTS = """sel => {
  const chart = document.querySelector(sel + ' .js-plotly-plot');
  const box = e => { const r = e.getBoundingClientRect();
                     return {left: r.left, right: r.right, width: r.width}; };
  return {bars: [...chart.querySelectorAll('.colorbar')].map(box),
          plots: [...chart.querySelectorAll('.nsewdrag')].map(box)};
}"""


# the learning rate's tick labels (left of its panel) against the gradient norm's panel beside
_LR_TICKS_AND_GRADIENT = """sel => {
  const chart = document.querySelector(sel + ' .js-plotly-plot');
  const grad = chart.querySelector('.nsewdrag[data-subplot="x3y3"]').getBoundingClientRect();
  const left = Math.min(...[...chart.querySelectorAll('.y4tick text')]
                              .map(t => t.getBoundingClientRect().left));
  return {gradient_right: grad.right, ticks_left: left};
}"""


def _apart(a: dict, b: dict) -> bool:
    return (a["right"] <= b["left"] or b["right"] <= a["left"]
            or a["bottom"] <= b["top"] or b["bottom"] <= a["top"])  # fmt: skip


def test_a_run_trains_live_and_its_results_fit_a_projector(browser, app_url):
    with browser_page(browser, 1024, 768, timeout_s=120) as page:
        open_page(page, app_url, "training?epochs=2")
        page.get_by_role("button", name="Train", exact=True).click()
        page.get_by_text("Run #1 lenet, AdamW, lr 0.002, batch 64").wait_for()
        wait_until_idle(page)
        assert error_boxes(page) == []
        assert page.get_by_text("Test accuracy", exact=True).count() == 1  # the metric
        # the run's curves, its filters, its confusion matrix and its mistakes
        assert plotly_charts(page, 4) >= 4
        assert page.get_by_text("The 450 test images:").count() == 1
        assert page.evaluate(_CUT_TEXT) == []
        # the matrix's cells are big enough for their counts; no two captions under the
        # mistakes touch, and none runs out of the figure (side by side, at 1024 px, the
        # cells were 20 px and the captions ran into each other)
        cells = page.evaluate(_HEATMAP_CELL_PX, ".st-key-training-confusion")
        assert len(cells) == 2 and min(cells) >= 28, cells
        boxes = page.evaluate(_ANNOTATION_BOXES, ".st-key-training-mistakes")
        assert len(boxes) >= 2 and all(b["right"] <= b["figure_right"] for b in boxes)
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert _apart(a, b), (a, b)
        # the gradient flow: its two titles apart, the left colour bar clear of the right
        # panel, cells wide enough to see (in the curves' column the titles overlapped)
        titles = page.evaluate(_ANNOTATION_BOXES, ".st-key-training-gradient_flow")
        assert len(titles) == 2 and _apart(*titles), titles
        parts = page.evaluate(_COLORBARS_AND_PLOTS, ".st-key-training-gradient_flow")
        left_bar, right_plot = parts["bars"][0], max(parts["plots"], key=lambda b: b["left"])
        assert left_bar["right"] <= right_plot["left"], parts
        assert min(b["width"] for b in parts["plots"]) / 2 >= 60, parts  # 2 epochs
        # the learning rate's "0.0015" sat against the gradient norm's panel, at 1024 px
        lr = page.evaluate(_LR_TICKS_AND_GRADIENT, ".st-key-training-curves")
        assert lr["ticks_left"] >= lr["gradient_right"] + 4, lr
        screenshot(page, "1024_training_run")


def test_stop_keeps_the_epochs_done(page, app_url):
    open_page(page, app_url, "training?epochs=200")
    page.get_by_role("button", name="Train", exact=True).click()
    # any epoch from 2 on: under load the browser can skip a progress text (a CI run went from
    # epoch 1 to 64 without "epoch 2/200" ever being seen while the first charts were drawn)
    progress = page.get_by_text(re.compile(r"epoch ([2-9]|[1-9]\d+)/200"))
    try:
        progress.wait_for(timeout=120_000)
    except PlaywrightTimeout:
        main = page.get_by_test_id("stMainBlockContainer").inner_text()
        raise AssertionError(f"no epoch 2 after 120 s; the page showed:\n{main[:2000]}") from None
    page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped #1 lenet").wait_for()
    wait_until_idle(page)
    assert error_boxes(page) == []
    kept = page.get_by_text(re.compile(r"Stopped after epoch \d+ of 200"))
    assert kept.count() == 1
    assert int(re.search(r"epoch (\d+) of", kept.inner_text())[1]) >= 2
    time.sleep(0.5)
    screenshot(page, "training_stopped")


def test_activations_page_with_the_sample_photos(page, app_url):
    open_page(page, app_url, "activations?model=vit_digits")
    assert error_boxes(page) == []
    assert page.get_by_text("layers measured over 256 images").count() == 1
    assert plotly_charts(page, 3) >= 3  # depth panels, two histograms
    screenshot(page, "activations_vit_digits")
