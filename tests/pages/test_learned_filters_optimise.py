"""AppTest for the Filters & Feature Maps page's Optimised input tab."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.pages._shared import errors, link_warnings, opened_with

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "learned_filters.py")


@pytest.fixture
def at() -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "lenet_digits"
    return app.run()


def _charts(at: AppTest) -> dict[str, dict]:
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key}


def _captions_under_images(spec: dict) -> list[list[str]]:
    return [a["text"].split("<br>") for a in spec["layout"]["annotations"]]


@pytest.fixture(scope="module")
def lenet():
    from vizlib import zoo

    return zoo.load_model("lenet_digits", device="cpu")


def test_optimise_draws_images_that_beat_the_test_digits_and_the_curve(at, downloads, lenet):
    assert "filters.opt_images" not in _charts(at)  # nothing runs before the button
    assert any("press **Optimise**" in i.value for i in at.info)
    at.selectbox(key="filters.layer").set_value("conv2").run()
    at.button(key="filters.optimise").click().run()
    assert not at.exception and not errors(at)
    charts = _charts(at)
    notes = _captions_under_images(charts["filters.opt_images"])
    assert [n[0] for n in notes] == [f"channel {c}" for c in range(8)]  # the first 8 by default
    reached = [float(n[1].removeprefix("mean ")) for n in notes]
    best = [float(n[2].removeprefix("best real ")) for n in notes]
    assert all(r > b for r, b in zip(reached, best, strict=True))  # every test digit is lower
    assert not [w for w in at.warning if "below the best real image" in w.value]

    # the captions' numbers are what the model gives the downloaded images and the test split
    from vizlib.data import load_dataset_for_model
    from vizlib.filters import channel_scores

    model, meta = lenet
    images = np.load(io.BytesIO(downloads["lenet_digits_conv2_optimised.npy"]))
    assert images.shape == (8, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    x = (torch.from_numpy(images) - meta["mean"][0]) / meta["std"][0]
    torch.testing.assert_close(
        channel_scores(model, x, "conv2")[range(8), range(8)],
        torch.tensor(reached),
        rtol=5e-3,  # the captions give 3 significant figures
        atol=2e-3,
    )
    test = load_dataset_for_model("digits", meta, "test")[0]
    expected_best = channel_scores(model, test, "conv2")[:, :8].amax(dim=0)
    torch.testing.assert_close(torch.tensor(best), expected_best, rtol=5e-3, atol=2e-3)

    curve = charts["filters.opt_curve"]
    assert [t["name"] for t in curve["data"]] == [f"channel {c}" for c in range(8)]
    assert "256 steps" in curve["layout"]["title"]["text"]
    grid = Image.open(io.BytesIO(downloads["lenet_digits_conv2_optimised.png"]))
    assert grid.size == (3 * 112 + 2, 3 * 112 + 2)  # 3 x 3 tiles of 28 px drawn 4 times larger
    assert any("Done: 256 steps" in t.proto.text for t in at.get("progress"))


def test_class_logits_give_images_the_model_classifies_as_their_class(at, downloads, lenet):
    at.radio(key="filters.opt_target").set_value("logits").run()
    assert at.multiselect(key="filters.opt_classes").options[:3] == ["0", "1", "2"]  # not "0: 0"
    at.multiselect(key="filters.opt_classes").set_value([3, 8, 1]).run()
    at.button(key="filters.optimise").click().run()
    assert not at.exception and not errors(at)
    notes = _captions_under_images(_charts(at)["filters.opt_images"])
    assert [n[0] for n in notes] == ["class 3", "class 8", "class 1"]
    model, meta = lenet
    images = torch.from_numpy(np.load(io.BytesIO(downloads["lenet_digits_logits_optimised.npy"])))
    with torch.no_grad():
        predicted = model((images - meta["mean"][0]) / meta["std"][0]).argmax(dim=1)
    assert predicted.tolist() == [3, 8, 1]
    assert dict(at.query_params) == {
        "model": "lenet_digits",
        "opt_target": "logits",
        "opt_classes": "3,8,1",
    }


def test_a_first_conv_layer_starts_on_its_centre_unit_and_the_next_layer_on_the_mean(at):
    """conv1 is linear in the image: its channel means are largest for a flat image, and the
    default "Whole channel (mean)" gave flat grey squares there."""
    assert at.radio(key="filters.opt_unit").value == "centre"
    at.selectbox(key="filters.layer").set_value("conv2").run()
    assert at.radio(key="filters.opt_unit").value == "mean"
    assert "opt_unit" not in at.query_params  # each layer's default: nothing in the link
    # a choice stays, also through a layer whose default it happens to be
    at.selectbox(key="filters.layer").set_value("conv1").run()
    at.radio(key="filters.opt_unit").set_value("mean").run()
    at.selectbox(key="filters.layer").set_value("conv2").run()
    assert at.radio(key="filters.opt_unit").value == "mean"
    at.selectbox(key="filters.layer").set_value("conv1").run()
    assert at.radio(key="filters.opt_unit").value == "mean"
    assert at.query_params["opt_unit"] == "mean"
    assert not at.exception and not errors(at)


def test_an_optimised_image_below_the_best_real_one_is_flagged():
    """The mean of resnet_digits' first conv layer's channels (before its batch norm): the
    images stay near flat grey and score below real digits; the page says so, names those
    channels and points at the centre unit."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = "resnet_digits"
    at.run()
    at.radio(key="filters.opt_unit").set_value("mean").run()
    at.multiselect(key="filters.opt_channels").set_value([0, 4]).run()
    at.button(key="filters.optimise").click().run()
    assert not at.exception and not errors(at)
    notes = _captions_under_images(_charts(at)["filters.opt_images"])
    below = [n[0] for n in notes if float(n[1].split()[-1]) < float(n[2].split()[-1])]
    (warning,) = [w.value for w in at.warning if "below the best real image" in w.value]
    assert below and warning.startswith(", ".join(below).capitalize() + ": ")
    assert "**Centre unit**" in warning


def test_bad_settings_give_a_message(at):
    at.multiselect(key="filters.opt_channels").set_value([]).run()
    assert at.multiselect(key="filters.opt_channels").value == []  # a cleared choice stays so
    at.button(key="filters.optimise").click().run()
    assert not at.exception
    assert errors(at) == ["Choose at least one channel."]
    assert "filters.opt_images" not in _charts(at)
    bad = opened_with(PAGE, {"model": "lenet_digits", "opt_channels": "2,32", "opt_lr": "7"})
    assert link_warnings(bad) == [
        "Ignored `opt_channels=2,32` from the link (no '32'; expected comma-separated choices "
        "of 0 to 31).",
        "Ignored `opt_lr=7` from the link (expected 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5).",
    ]
    assert bad.multiselect(key="filters.opt_channels").value == list(range(8))


def test_a_link_sets_the_tab_but_waits_for_the_button(downloads):
    link = {
        "layer": "conv2",
        "opt_channels": "5,6",
        "opt_unit": "centre",
        "opt_steps": "40",
        "opt_lr": "0.05",
        "opt_l2": "0.01",
        "opt_jitter": "2",
        "opt_blur_every": "0",
        "opt_blur": "1",
        "opt_seed": "7",
    }
    at = opened_with(PAGE, {"model": "lenet_digits", **link})
    assert not errors(at) and not link_warnings(at)
    assert "filters.opt_images" not in _charts(at)
    assert not [name for name in downloads if "optimised" in name]
    assert at.number_input(key="filters.opt_steps").value == 40
    assert at.select_slider(key="filters.opt_l2").value == 0.01
    at.button(key="filters.optimise").click().run()
    assert not at.exception and not errors(at)
    assert dict(at.query_params) == {"model": "lenet_digits", **link}
    charts = _charts(at)
    assert charts["filters.opt_images"]["layout"]["title"]["text"] == (
        "Inputs that maximise channels of conv2 (centre unit)"
    )
    assert "40 steps" in charts["filters.opt_curve"]["layout"]["title"]["text"]
    # the page's images are the library's for these settings
    from vizlib import featureviz, zoo

    model, meta = zoo.load_model("lenet_digits")
    expected = featureviz.optimise_input(
        model, "conv2", [5, 6], input_shape=meta["input_size"], mean=meta["mean"],
        std=meta["std"], steps=40, lr=0.05, l2=0.01, jitter=2, blur_every=0, blur_sigma=1.0,
        reduce="centre", seed=7,
    )  # fmt: skip
    shown = np.load(io.BytesIO(downloads["lenet_digits_conv2_optimised.npy"]))
    np.testing.assert_allclose(shown, expected.images.numpy(), atol=1e-5)

    # another setting: the last images stay, said to be the last ones, until Optimise
    at.number_input(key="filters.opt_seed").set_value(8).run()
    assert "filters.opt_images" in _charts(at)
    assert any("Showing the last optimised images" in i.value for i in at.info)


def test_stop_keeps_nothing_and_says_so(at):
    at.button(key="filters.opt_stop").click().run()
    assert not at.exception
    assert any(w.value.startswith("Stopped: the optimisation") for w in at.warning)
    assert "filters.opt_images" not in _charts(at)


@pytest.mark.slow
def test_a_224_pixel_model_warns_of_the_time_and_defaults_to_fewer_steps():
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "resnet18"
    at = app.run()
    assert not at.exception and not errors(at)
    assert any(re.search(r"At 224×224 pixels each step", i.value) for i in at.info)
    assert at.number_input(key="filters.opt_steps").value == 64
    assert at.slider(key="filters.opt_jitter").value == 8
    assert at.select_slider(key="filters.opt_l2").value == 0.0
