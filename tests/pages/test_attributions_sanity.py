"""AppTest for the Attributions page's sanity check (the model randomisation test): it waits
for its button, shows vizlib's cascade for the methods and options above, and the CSV holds it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.pages._shared import errors, opened_with, plotly_array
from vizlib import attribution, zoo
from vizlib.data import load_dataset

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "attributions.py")


def _chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def _keys(at: AppTest) -> set[str]:
    return {c.key for c in at.get("plotly_chart")}


@pytest.fixture(scope="module")
def digit():
    model, meta = zoo.load_model("resnet_digits")
    images, _, _ = load_dataset("digits", "test", input_size=meta["input_size"][1:])
    return model, meta, images[7]


def test_the_check_waits_for_its_button_and_is_vizlibs_cascade(digit, downloads):
    model, meta, image = digit
    at = opened_with(
        PAGE,
        {
            "model": "resnet_digits",
            "index": 7,
            "methods": "saliency,gradcam",
            "layer": "layers.1.conv2",
        },
    )
    assert not errors(at)
    assert not {"attr.sanity_lines", "attr.sanity_maps"} & _keys(at)
    button = at.button(key="attr.sanity_run")
    assert "8 stages × 2 methods" in button.label
    button.click().run()
    assert not at.exception and not errors(at)
    predicted = int(model(image[None]).argmax())
    expected = attribution.cascading_randomization(
        model, image, predicted, ["saliency", "gradcam"],
        options={"gradcam": {"layer": "layers.1.conv2", "relu": False}},
        mean=meta["mean"], std=meta["std"], max_stages=8,
    )  # fmt: skip
    lines = {t["name"]: plotly_array(t["y"]) for t in _chart(at, "attr.sanity_lines")["data"]}
    assert set(lines) == {"Saliency", "Grad-CAM"}
    assert np.allclose(lines["Saliency"], expected.similarity["saliency"]["spearman_abs"])
    assert np.allclose(lines["Grad-CAM"], expected.similarity["gradcam"]["spearman_abs"])
    maps = _chart(at, "attr.sanity_maps")["data"]
    assert len(maps) == 2 * 9  # two methods, the trained network and 8 stages
    last = plotly_array(maps[8]["customdata"])  # saliency, every weight random: signed values
    assert np.allclose(last, expected.heatmaps["saliency"][-1], rtol=1e-4, atol=1e-6)
    # another measure redraws the lines from the same check, nothing recomputed
    at.radio(key="attr.sanity_metric").set_value("ssim").run()
    lines = {t["name"]: plotly_array(t["y"]) for t in _chart(at, "attr.sanity_lines")["data"]}
    assert np.allclose(lines["Saliency"], expected.similarity["saliency"]["ssim"], equal_nan=True)
    table = pd.read_csv(
        io.BytesIO(downloads["resnet_digits_sanity_check_class" + f"{predicted}.csv"])
    )
    assert list(table["random_down_to"]) == expected.stages
    assert np.allclose(table["target_logit"], expected.target_logit, rtol=1e-5)
    assert np.allclose(
        table["gradcam_spearman"], expected.similarity["gradcam"]["spearman"], equal_nan=True
    )
    caption = next(c.value for c in at.caption if c.value.startswith("The logit of"))
    assert f"{expected.target_logit[0]:.2f} for the trained network" in caption
    assert f"1 down to {expected.stages[1]}; 2 down to {expected.stages[2]}" in caption


def test_no_method_no_check():
    at = opened_with(PAGE, {"model": "lenet_digits", "methods": ""})
    assert any("Run at least one attribution method" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "attr.sanity_run"]


def test_a_map_that_survives_the_randomisation_is_called_out():
    at = opened_with(PAGE, {"model": "lenet_digits"})
    at.button(key="attr.sanity_run").click().run()
    lines = {t["name"]: plotly_array(t["y"]) for t in _chart(at, "attr.sanity_lines")["data"]}
    survivors = [name for name, values in lines.items() if np.nanmean(values[1:]) > 0.5]
    assert survivors == ["Integrated Gradients"]  # the digit's shape: IG multiplies by the input
    (warning,) = [w.value for w in at.warning if "similar to the trained" in w.value]
    ig = lines["Integrated Gradients"]
    assert f"Integrated Gradients ({np.mean(ig[1:]):.2f} on average over the stages" in warning
    assert f"{ig[-1]:.2f} at the last) stays similar" in warning
    assert "Saliency (" not in warning
    assert "multiplies the gradient by the input" in warning
    assert "Guided Backprop" not in warning  # not among the methods run: not named


def test_guided_backprop_survives_the_top_layers_going_random():
    """Adebayo et al.'s finding on the shipped LeNet: Guided Backprop's map keeps a rank
    correlation of 0.9 once the classifier's last layer is random, where Saliency's falls
    below 0.4; both are vizlib's values, and the page calls Guided Backprop out."""
    at = opened_with(PAGE, {"model": "lenet_digits", "methods": "saliency,guided_backprop"})
    assert len(at.get("plotly_chart")) == 3 and not errors(at)
    at.button(key="attr.sanity_run").click().run()
    lines = {t["name"]: plotly_array(t["y"]) for t in _chart(at, "attr.sanity_lines")["data"]}
    model, meta = zoo.load_model("lenet_digits")
    images, _, _ = load_dataset("digits", "test", input_size=meta["input_size"][1:])
    target = int(model(images[:1]).argmax())
    expected = attribution.cascading_randomization(
        model, images[0], target, ["saliency", "guided_backprop"], mean=meta["mean"],
        std=meta["std"], max_stages=8,
    )  # fmt: skip
    guided = expected.similarity["guided_backprop"]["spearman_abs"]
    assert np.allclose(lines["Guided Backprop"], guided)
    assert lines["Guided Backprop"][1] > 0.85 and lines["Saliency"][1] < 0.4
    assert any(w.value.startswith("Guided Backprop (") for w in at.warning)


def test_the_measure_travels_in_the_link():
    at = opened_with(PAGE, {"model": "lenet_digits", "methods": "saliency", "sanity": "ssim"})
    at.button(key="attr.sanity_run").click().run()
    assert at.radio(key="attr.sanity_metric").value == "ssim"
    title = _chart(at, "attr.sanity_lines")["layout"]["yaxis"]["title"]["text"]
    assert title.startswith("SSIM")
    assert at.query_params["sanity"] in ("ssim", ["ssim"])
    at.radio(key="attr.sanity_metric").set_value("spearman_abs").run()
    assert "sanity" not in at.query_params  # the default stays out of the link
    bad = opened_with(PAGE, {"model": "lenet_digits", "sanity": "hog"})
    assert any("sanity=hog" in w.value for w in bad.warning)


def test_one_stage_at_a_time_from_the_link():
    at = opened_with(
        PAGE, {"model": "lenet_digits", "methods": "saliency", "sanity_mode": "independent"}
    )
    assert at.radio(key="attr.sanity_mode").value == "independent"
    at.button(key="attr.sanity_run").click().run()
    model, meta = zoo.load_model("lenet_digits")
    images, _, _ = load_dataset("digits", "test", input_size=meta["input_size"][1:])
    target = int(model(images[:1]).argmax())
    expected = attribution.cascading_randomization(
        model, images[0], target, ["saliency"], mean=meta["mean"], std=meta["std"],
        independent=True,
    )  # fmt: skip
    lines = {t["name"]: plotly_array(t["y"]) for t in _chart(at, "attr.sanity_lines")["data"]}
    assert np.allclose(lines["Saliency"], expected.similarity["saliency"]["spearman_abs"])
    caption = next(c.value for c in at.caption if c.value.startswith("The logit of"))
    assert "Stage k makes only its own layers random, the rest trained: 1 fc2; 2 fc1" in caption
    assert "at the last stage" in caption
    at.radio(key="attr.sanity_mode").set_value("cascading").run()
    assert "sanity_mode" not in at.query_params
    assert at.button(key="attr.sanity_run")  # another test: it waits for its button again
