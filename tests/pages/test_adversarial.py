"""AppTest for the Adversarial Examples page: the attack shown is vizlib's, the settings travel
in the link, the accuracy curve waits for its button and matches accuracy_under_attack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.pages._shared import errors, link_warnings, opened_with
from vizlib import adversarial, zoo
from vizlib.data.datasets import denormalize, load_dataset
from vizlib.plots import confidence_percent

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "adversarial.py")


def _chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def _captions(at: AppTest) -> list[str]:
    """The image grid's caption lines, tile by tile."""
    spec = _chart(at, "adv.images")
    return [a["text"] for a in spec["layout"]["annotations"]]


@pytest.fixture(scope="module")
def digits():
    model, meta = zoo.load_model("lenet_digits")
    images, labels, _ = load_dataset("digits", "test", meta["input_size"][1:])
    return model, meta, images, labels


def test_the_default_attack_is_vizlibs_and_flips_the_digit(digits):
    model, meta, images, labels = digits
    at = opened_with(PAGE, {"model": "lenet_digits"})
    assert not errors(at)
    assert at.radio(key="adv.attack").value == "PGD"
    assert at.slider(key="adv.eps").value == 32  # the digit models hold out to about 16/255
    pixels = denormalize(images[:1], meta["mean"], meta["std"])
    with torch.no_grad():
        predicted = int(model(images[:1]).argmax(1))
    expected = adversarial.attack(
        model,
        pixels,
        torch.tensor([predicted]),
        eps=32 / 255,
        mean=meta["mean"],
        std=meta["std"],
        method="PGD",
        steps=10,
    )
    after = int(expected.adversarial_probs.argmax(1))
    assert after != predicted
    assert f"to **{after}**" in at.success[0].value
    captions = _captions(at)
    assert f"{after}<br>{confidence_percent(expected.adversarial_probs[0, after])}" in captions[-1]
    text = " ".join(captions)
    assert "change ×4" in text  # 255 / (2 * 32)
    assert {c.key for c in at.get("plotly_chart")} >= {"adv.top_clean", "adv.top_adversarial"}
    assert "adv.curve_chart" not in {c.key for c in at.get("plotly_chart")}  # waits for its button


def test_fgsm_targeted_and_the_link(digits):
    at = opened_with(
        PAGE,
        {"model": "lenet_digits", "attack": "FGSM", "eps": "64", "targeted": "true", "target": "3"},
    )
    assert not errors(at) and not link_warnings(at)
    assert at.radio(key="adv.attack").value == "FGSM"
    assert "adv.steps" not in [s.key for s in at.slider]  # FGSM takes one step
    assert at.selectbox(key="adv.target").value == 3
    assert "FGSM, ε = 64/255" in _chart(at, "adv.images")["layout"]["title"]["text"]
    at.slider(key="adv.eps").set_value(1).run()  # too small to reach the target
    verdict = [m.value for m in at.info if "not yet the target" in m.value]
    assert verdict and verdict[0].endswith("raise ε or use PGD.")  # FGSM has no steps to raise
    at.slider(key="adv.eps").set_value(16).run()
    assert at.query_params["eps"] in ("16", ["16"])
    bad = opened_with(PAGE, {"model": "lenet_digits", "eps": "900"})
    assert any("eps=900" in w for w in link_warnings(bad))
    assert bad.slider(key="adv.eps").value == 32


def test_the_accuracy_curve_matches_vizlib(digits):
    model, meta, images, labels = digits
    # PGD's curve takes the page's PGD steps: 2 here, to keep the test short
    at = opened_with(PAGE, {"model": "lenet_digits", "steps": "2"})
    at.slider(key="adv.n").set_value(16).run()
    at.button(key="adv.curve").click().run()
    assert not at.exception and not errors(at)
    lines = {t["name"]: t["y"] for t in _chart(at, "adv.curve_chart")["data"]}
    pixels = denormalize(images[:16], meta["mean"], meta["std"])
    levels = [v / 255 for v in (0, 1, 2, 4, 8, 16, 32, 64)]
    for name in ("FGSM", "PGD"):
        expected = adversarial.accuracy_under_attack(
            model,
            pixels,
            labels[:16],
            levels,
            mean=meta["mean"],
            std=meta["std"],
            method=name,
            steps=2,
        )
        assert lines[name] == pytest.approx(expected)
    # kept for the session: the next run draws it without the button
    at.slider(key="adv.eps").set_value(8).run()
    assert "adv.curve_chart" in {c.key for c in at.get("plotly_chart")}


def test_a_model_without_labelled_data_has_a_smaller_default_and_no_curve(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no ImageNet weights: random resnet18
    at = opened_with(PAGE, {"model": "resnet18", "attack": "FGSM"})
    assert not errors(at)
    assert at.slider(key="adv.eps").value == 4
    assert any("labelled test split" in i.value for i in at.info)
    assert "adv.curve" not in [b.key for b in at.button]


def test_models_compared_on_the_same_test_digits(digits):
    at = opened_with(PAGE, {"model": "lenet_digits", "steps": "2"})
    assert at.multiselect(key="adv.compare").options == ["resnet_digits", "vit_digits"]
    at.slider(key="adv.n").set_value(16).run()
    at.button(key="adv.curve").click().run()
    at.multiselect(key="adv.compare").set_value(["vit_digits"]).run()
    assert "2 models" not in at.button(key="adv.curve").label  # lenet's curves are kept
    at.button(key="adv.curve").click().run()
    assert not at.exception and not errors(at)
    assert "adv.curve" not in [b.key for b in at.button]  # done: the button is gone
    lines = {t["name"]: t["y"] for t in _chart(at, "adv.curve_chart")["data"]}
    assert set(lines) == {
        "lenet_digits, FGSM",
        "lenet_digits, PGD",
        "vit_digits, FGSM",
        "vit_digits, PGD",
    }
    vit, meta = zoo.load_model("vit_digits")
    images, labels, _ = load_dataset("digits", "test", meta["input_size"][1:])  # 32 x 32
    expected = adversarial.accuracy_under_attack(
        vit,
        denormalize(images[:16], meta["mean"], meta["std"]),
        labels[:16],
        [v / 255 for v in (0, 1, 2, 4, 8, 16, 32, 64)],
        mean=meta["mean"],
        std=meta["std"],
        method="PGD",
        steps=2,
    )
    assert lines["vit_digits, PGD"] == pytest.approx(expected)


def test_the_models_compared_travel_in_the_link_and_wait_for_the_button():
    at = opened_with(PAGE, {"model": "lenet_digits", "compare": "vit_digits,resnet_digits"})
    assert not errors(at) and not link_warnings(at)
    assert at.multiselect(key="adv.compare").value == ["vit_digits", "resnet_digits"]
    assert "adv.curve_chart" not in {c.key for c in at.get("plotly_chart")}
    assert "(3 models)" in at.button(key="adv.curve").label
    at.multiselect(key="adv.compare").set_value(["resnet_digits"]).run()
    assert at.query_params["compare"] in ("resnet_digits", ["resnet_digits"])
    bad = opened_with(PAGE, {"model": "lenet_digits", "compare": "lenet_digits"})  # itself
    assert any("compare=lenet_digits" in w for w in link_warnings(bad))
    assert bad.multiselect(key="adv.compare").value == []
