"""AppTest of the ViT Attention page's head importance: it waits for its button, shows
vizlib.heads' importance and pruning curves over the first images, and the CSV holds them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.pages._shared import errors, opened_with, plotly_array
from vizlib import heads, zoo
from vizlib.data import load_dataset_for_model

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "vit_attention.py")


def _chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def test_head_importance_is_vizlibs_and_the_pruning_follows_it(downloads):
    at = opened_with(PAGE, {"model": "vit_digits", "n": 16, "count": 1}, timeout=300)
    assert "vit_attention.heads_chart" not in {c.key for c in at.get("plotly_chart")}
    at.slider(key="vit_attention.heads_n").set_value(64).run(timeout=300)
    button = at.button(key="vit_attention.heads_run")
    assert button.label == "Measure the 16 heads over 64 images"
    button.click().run(timeout=300)
    assert not at.exception and not errors(at)
    model, meta = zoo.load_model("vit_digits")
    images = load_dataset_for_model("digits", meta, split="test")[0][:64]
    expected = heads.head_importance(model, images, batch_size=64)
    shown = plotly_array(_chart(at, "vit_attention.heads_chart")["data"][0]["z"])
    assert np.allclose(shown, expected.normalized, rtol=1e-4, atol=1e-7)
    order = [
        tuple(int(i) for i in np.unravel_index(j, (4, 4)))
        for j in np.argsort(expected.importance, axis=None, kind="stable")
    ]
    counts = [0, 2, 3, 5, 6, 8, 10, 11, 13, 14, 16]  # about every 10% of 16 heads
    curve = heads.pruning_curve(model, images, expected.predictions, order, counts)
    lines = {t["name"]: t for t in _chart(at, "vit_attention.heads_pruning")["data"]}
    first = lines["least important first"]
    assert list(first["customdata"]) == counts
    assert np.allclose(plotly_array(first["y"]), curve)
    assert plotly_array(first["y"])[-1] < 0.5  # no attention left: most answers change
    # raw importances: the same run, no recomputation
    at.toggle(key="vit_attention.heads_normalize").set_value(False).run(timeout=300)
    raw = plotly_array(_chart(at, "vit_attention.heads_chart")["data"][0]["z"])
    assert np.allclose(raw, expected.importance, rtol=1e-4, atol=1e-7)
    table = pd.read_csv(io.BytesIO(downloads["head_importance_vit_digits.csv"]), index_col=0)
    assert table.shape == (4, 4) and np.allclose(table.to_numpy(), expected.importance, rtol=1e-4)


def test_the_heads_settings_travel_in_the_link():
    at = opened_with(
        PAGE, {"model": "vit_digits", "n": 8, "count": 1, "heads_n": 32, "heads_norm": "false"},
        timeout=300,
    )  # fmt: skip
    assert not errors(at)
    assert at.slider(key="vit_attention.heads_n").value == 32
    assert at.toggle(key="vit_attention.heads_normalize").value is False
    assert at.button(key="vit_attention.heads_run").label == "Measure the 16 heads over 32 images"
    at.slider(key="vit_attention.heads_n").set_value(48).run(timeout=300)
    assert at.query_params["heads_n"] in ("48", ["48"])
    bad = opened_with(PAGE, {"model": "vit_digits", "n": 8, "heads_n": 0}, timeout=300)
    assert any("heads_n=0" in w.value for w in bad.warning)
    assert bad.slider(key="vit_attention.heads_n").value == 256
