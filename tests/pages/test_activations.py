"""AppTest for the Activations & Gradients page."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.pages._shared import errors, link_warnings, opened_with
from vizlib import zoo
from vizlib.data import load_dataset_for_model
from vizlib.filters import untrained_model
from vizlib.layerstats import layer_statistics

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "activations.py")


@pytest.fixture
def at():
    return opened_with(PAGE, {"model": "lenet_digits"})


def _charts(at: AppTest) -> dict[str, dict]:
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def test_default_view_measures_the_test_split_against_the_untrained_network(downloads):
    at = opened_with(PAGE, {"model": "lenet_digits"})
    assert not errors(at)
    assert at.selectbox(key="activations.images").value == "digits"
    assert at.slider(key="activations.n").value == 256
    assert "10 layers measured over 256 images of the digits test split" in at.markdown[0].value
    assert "for the true classes" in at.markdown[0].value
    charts = _charts(at)
    series = {t["legendgroup"] for t in charts["activations.depth"]["data"]}
    assert series == {"trained", "at initialisation"}
    assert {"activations.hist.trained", "activations.hist.at initialisation"} <= set(charts)
    # the CSV holds what vizlib computes for the same images, for both networks
    table = pd.read_csv(io.BytesIO(downloads["lenet_digits_activation_statistics.csv"]))
    assert list(table["network"].unique()) == ["trained", "at initialisation"]
    model, meta = zoo.load_model("lenet_digits")
    images, labels = load_dataset_for_model("digits", meta, split="test")[:2]
    models = {
        "trained": model.eval().requires_grad_(False),
        "at initialisation": untrained_model(meta).requires_grad_(False),
    }
    for label, net in models.items():
        expected = layer_statistics(net, images[:256], labels[:256], batch_size=16).rows
        got = table[table["network"] == label]
        assert list(got["layer"]) == [r["layer"] for r in expected]
        np.testing.assert_allclose(got["std"], [r["std"] for r in expected], rtol=1e-5)
        np.testing.assert_allclose(got["grad_rms"], [r["grad_rms"] for r in expected], rtol=1e-5)
        assert list(got["dead_channels"]) == [r["dead_channels"] for r in expected]
    assert list(got["output_shape"][:1]) == ["32×24×24"]
    # the legend's share of zeros is the table's, over every value, not the histogram's sample
    shares = dict(zip(got["layer"], got["zero_fraction"], strict=True))
    for trace in charts["activations.hist.at initialisation"]["data"]:
        layer = trace["name"].split(" (")[0]
        if shares[layer]:
            assert trace["name"] == f"{layer} ({shares[layer]:.0%} zeros left out)"


def test_without_gradients_or_comparison_the_figures_shrink(at):
    at.toggle(key="activations.gradients").set_value(False).run()
    at.toggle(key="activations.compare").set_value(False).run()
    assert not at.exception and not errors(at)
    charts = _charts(at)
    assert "yaxis3" not in charts["activations.depth"]["layout"]  # no gradient panel
    assert {t["legendgroup"] for t in charts["activations.depth"]["data"]} == {"trained"}
    assert "activations.hist.at initialisation" not in charts
    assert "gradients" not in at.markdown[0].value


def test_sample_photos_take_the_predicted_class_as_the_target(at):
    at.selectbox(key="activations.images").set_value("samples").run()
    assert not at.exception and not errors(at)
    assert "of scikit-image's sample photos" in at.markdown[0].value
    assert "predicted class" in at.markdown[0].value


def test_histogram_layers_and_log_scale(at):
    at.multiselect(key="activations.layers").set_value(["conv1", "relu3"]).run()
    at.toggle(key="activations.log").set_value(True).run()
    assert not at.exception
    hist = _charts(at)["activations.hist.trained"]
    assert [t["name"].split(" (")[0] for t in hist["data"]] == ["conv1", "relu3"]
    assert hist["layout"]["yaxis"]["type"] == "log"
    assert at.query_params["log"] == "true"  # a lecturer's link keeps the log axis


def test_torchvision_weights_not_on_disk_leave_nothing_to_compare():
    """Without its ImageNet weights resnet18 is at its initialisation already: the comparison is
    off and disabled (it would draw the same network twice), 4 sample photos by default, and the
    loss takes the predicted classes (the photos have no ImageNet labels)."""
    at = opened_with(PAGE, {"model": "resnet18"})
    assert not errors(at)
    assert at.selectbox(key="activations.images").value == "samples"
    assert at.slider(key="activations.n").value == 4
    compare = at.toggle(key="activations.compare")
    assert compare.disabled and "no trained weights here" in compare.help
    depth = _charts(at)["activations.depth"]
    assert {t["legendgroup"] for t in depth["data"]} == {"untrained (no weights on disk)"}
    assert "resnet18**: 60 layers measured over 4 images" in at.markdown[0].value
    assert "predicted class" in at.markdown[0].value


def test_the_number_of_images_goes_back_to_the_default_for_another_model(at):
    """256 digits suit lenet_digits; kept for an ImageNet-sized model they would take minutes."""
    at.slider(key="activations.n").set_value(200).run()
    at.selectbox(key="activations.images").set_value("samples").run()
    assert at.slider(key="activations.n").value == 9  # all the sample photos: fewer than 256
    at.selectbox(key="activations.images").set_value("digits").run()
    assert at.slider(key="activations.n").value == 256
    at.slider(key="activations.n").set_value(100).run()
    at.toggle(key="activations.log").set_value(True).run()  # any other change keeps it
    assert at.slider(key="activations.n").value == 100


def _notes(at: AppTest) -> str:
    return " | ".join(c.value for c in at.caption)


def test_the_notes_name_relu_layers_and_the_first_and_last_gradient(at):
    """lenet's flatten repeats relu2's dead channels (each position a channel): the sentence
    counts the two ReLU layers only. The gradient ratio names its layers and is conv1's RMS over
    fc2's, as vizlib computes them for the same images, beside the untrained network's."""
    notes = _notes(at)
    assert "2 ReLU layer(s) have units that are 0 for every image, the most in relu3" in notes
    assert "by chance" not in notes  # 256 images: enough to call them dead
    model, meta = zoo.load_model("lenet_digits")
    images, labels = load_dataset_for_model("digits", meta, split="test")[:2]
    ratios = []
    for net in (model.eval().requires_grad_(False), untrained_model(meta).requires_grad_(False)):
        rows = layer_statistics(net, images[:256], labels[:256], batch_size=16).rows
        assert (rows[0]["layer"], rows[-1]["layer"]) == ("conv1", "fc2")
        ratios.append(rows[0]["grad_rms"] / rows[-1]["grad_rms"])
    assert (
        f"At the first layer (conv1) the gradient's RMS is {ratios[0]:.3g} times that at the "
        f"last (fc2) (at initialisation: {ratios[1]:.3g})"
    ) in notes
    at.slider(key="activations.n").set_value(4).run()
    assert "With only 4 images a unit can be 0 for all of them by chance" in _notes(at)
    at.slider(key="activations.n").set_value(1).run()
    assert "With only 1 image a unit can be 0 for it by chance" in _notes(at)


def test_a_cleared_layer_choice_stays_cleared_until_the_model_changes(at):
    at.multiselect(key="activations.layers").set_value([]).run()
    assert at.multiselect(key="activations.layers").value == []
    assert "activations.hist.trained" not in _charts(at)
    at.multiselect(key="activations.layers").set_value(["conv1", "relu3"]).run()
    at.selectbox(key="activations.model").set_value("vit_digits").run()
    assert not at.exception and not errors(at)
    # none of lenet's layers is vit_digits': its own default, the GELUs spread over the depth
    assert at.multiselect(key="activations.layers").value == [f"blocks.{i}.mlp.1" for i in range(4)]


def _upload(at: AppTest, scale: float) -> AppTest:
    from tests.pages.test_learned_filters import lenet_upload

    def scaled(state: dict) -> None:
        for key in state:
            if key.endswith("weight"):
                state[key] *= scale

    at.selectbox(key="activations.upload_arch").set_value("lenet_digits")
    data = lenet_upload(scaled)
    return at.get("file_uploader")[0].upload("big.safetensors", data, "application/octet-stream")


def test_uploaded_weights_that_saturate_the_softmax_are_explained(downloads):
    """lenet's weights times 1e4 (zoo.load_uploaded accepts them: finite) put its logits near
    1e16: the first 32 test digits are each right with probability 1 in float32, so the loss
    and every gradient are 0. The page says so instead of blaming all-zero weights or dead
    units. Times 1e20, conv2's outputs overflow: the warning names it."""
    at = opened_with(PAGE, {"model": "upload"})
    _upload(at, 1e4).run()
    at.slider(key="activations.n").set_value(32).run()
    assert not at.exception and not errors(at)
    notes = _notes(at)
    assert "Every layer's gradient is exactly 0, the output's too" in notes
    assert "get a gradient of exactly 0" not in notes
    _upload(at, 1e20).run()
    assert not at.exception and not errors(at)
    warnings = [w.value for w in at.warning]
    assert any("put out NaN or infinite values, first conv2" in w for w in warnings)
    # conv1's outputs (about 1e20) are finite: their std too, not float32's inf of their squares
    table = pd.read_csv(io.BytesIO(downloads["upload_lenet_digits_activation_statistics.csv"]))
    conv1 = table[(table["network"] == "trained") & (table["layer"] == "conv1")].iloc[0]
    assert conv1["nonfinite"] == 0 and 1e19 < conv1["std"] < 1e22


def test_the_how_to_read_expander_covers_every_panel(at):
    text = at.expander[0].markdown[0].value
    assert at.expander[0].label == "How to read these panels"
    for panel in ("Output standard deviation", "Outputs exactly 0", "Gradient RMS"):
        assert panel in text
    assert "At initialisation" in text and "pass their input\n  through unchanged" in text


def test_an_image_folder_takes_the_predicted_class_and_says_three_images_are_few(
    tmp_path, monkeypatch
):
    """Three fruit photos (one a class) through lenet_digits: the folder's classes are not the
    digits, so the loss takes each image's predicted class; all three are measured by default,
    and the dead-unit note says three images are too few to call a unit dead."""
    import streamlit as st

    from tests.test_data_datasets import write_image_folder

    st.cache_data.clear()
    write_image_folder(tmp_path / "fruit", n_per_class=1)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    at = opened_with(PAGE, {"model": "lenet_digits"})
    at.selectbox(key="activations.images").set_value(f"imagefolder:{tmp_path / 'fruit'}").run()
    assert not at.exception and not errors(at)
    assert at.slider(key="activations.n").value == 3
    assert "10 layers measured over 3 images of fruit" in at.markdown[0].value
    assert "predicted class" in at.markdown[0].value
    notes = _notes(at)
    assert "2 ReLU layer(s) have units that are 0 for every image" in notes
    assert "With only 3 images a unit can be 0 for all of them by chance" in notes


def test_an_unreadable_file_in_a_folder_is_named_and_the_rest_measured(tmp_path, monkeypatch):
    """A truncated photo among the folder's three: it stopped the page with an error box; the
    other two are measured and a warning names it."""
    import streamlit as st

    from tests.test_data_datasets import write_image_folder

    st.cache_data.clear()
    write_image_folder(tmp_path / "fruit", n_per_class=1)
    photo = sorted((tmp_path / "fruit").rglob("*.*"))[0]
    photo.write_bytes(photo.read_bytes()[:40])
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    at = opened_with(PAGE, {"model": "lenet_digits"})
    at.selectbox(key="activations.images").set_value(f"imagefolder:{tmp_path / 'fruit'}").run()
    assert not at.exception and not errors(at)
    (warning,) = [w.value for w in at.warning if "could not be read" in w.value]
    assert warning.startswith(
        f"1 of the 3 images could not be read and is left out (2 used): {photo} ("
    )
    assert at.slider(key="activations.n").value == 2
    assert "over 2 images of fruit" in at.markdown[0].value


def test_vit_b_16s_long_layer_names_are_shortened_in_the_table_not_in_the_csv(downloads):
    """Its names run to 46 characters ('encoder.layers.encoder_layer_11.self_attention'): the
    table writes their shared start as '…' (22 characters at most, as the Model Inspector) and
    says what it stands for; the CSV keeps them whole."""
    at = opened_with(PAGE, {"model": "vit_b_16"})
    assert not errors(at)
    layers = list(at.dataframe[0].value["layer"])
    assert max(len(name) for name in layers) <= 22
    assert "…11.self_attention" in layers and layers[0] == "conv_proj"
    assert any("… stands for encoder.layers.encoder_layer_" in c.value for c in at.caption)
    table = pd.read_csv(io.BytesIO(downloads["vit_b_16_activation_statistics.csv"]))
    assert "encoder.layers.encoder_layer_11.self_attention" in set(table["layer"])


def test_finite_outputs_with_non_finite_gradients_get_a_warning_naming_the_layers(downloads):
    """Uploaded lenet_digits weights (finite, so accepted) whose fc1 bias of -1e6 leaves relu3
    all 0 and whose fc2 weights of +-3e38 then sum to -6e38 in the backward pass: every output
    is a number (logits = fc2's bias) but relu3's gradient is -inf for the even digits. The
    page said nothing and showed a gap in the gradient panel."""
    import torch

    from tests.pages.test_learned_filters import lenet_upload

    def overflow(state: dict) -> None:
        state["fc1.bias"][:] = -1e6
        sign = torch.tensor([1.0 if k % 2 == 0 else -1.0 for k in range(10)])
        state["fc2.weight"][:] = 3e38 * sign[:, None]
        state["fc2.bias"][:] = 0.0
        state["fc2.bias"][1] = 50.0  # every image answers 1 (odd): the even digits overflow

    at = opened_with(PAGE, {"model": "upload"})
    at.selectbox(key="activations.upload_arch").set_value("lenet_digits")
    at.get("file_uploader")[0].upload("nan.safetensors", lenet_upload(overflow), "").run()
    at.slider(key="activations.n").set_value(32).run()
    assert not at.exception and not errors(at)
    warning = next(w.value for w in at.warning if "but the gradient is not" in w.value)
    table = pd.read_csv(io.BytesIO(downloads["upload_lenet_digits_activation_statistics.csv"]))
    trained = table[table["network"] == "trained"].set_index("layer")
    bad = int(trained.loc["relu3", "grad_nonfinite"])
    assert bad > 0 and trained["grad_nonfinite"].drop("relu3").eq(0).all()
    assert trained["nonfinite"].eq(0).all()
    assert f"{bad:,} NaN or infinite gradient value(s) in 1 layer(s) (relu3)" in warning
    assert "at relu3's output, so what comes after it, up to fc2," in warning
    assert "None of these layers has weights" in warning  # relu3 has none; fc1 gets zeros

    def through(state: dict) -> None:  # relu3 = 1e-30 everywhere: logits of +-6e10, finite
        overflow(state)
        state["fc1.weight"][:] = 0.0
        state["fc1.bias"][:] = 1e-30
        state["fc2.bias"][:] = 0.0  # the even classes win: the odd digits' gradients overflow

    at.get("file_uploader")[0].upload("nan.safetensors", lenet_upload(through), "").run()
    assert not at.exception and not errors(at)
    warning = next(w.value for w in at.warning if "but the gradient is not" in w.value)
    # the ReLU passes the inf on (relu3 > 0), fc1's zero weights make it NaN (0 * inf), and
    # the NaN runs back to conv1: the layers with weights are named
    assert "in 9 layer(s) (conv1, pool1, relu1 and 6 more)" in warning
    assert "at relu3's output" in warning
    assert "would write NaN or inf into the weights of conv1, conv2, fc1;" in warning
    # the healthy shipped weights: no such warning
    healthy = opened_with(PAGE, {"model": "lenet_digits"})
    assert not any("but the gradient is not" in w.value for w in healthy.warning)


def test_the_image_set_travels_in_the_link():
    at = opened_with(PAGE, {"model": "lenet_digits", "images": "samples"})
    assert not errors(at) and not link_warnings(at)
    assert at.selectbox(key="activations.images").value == "samples"
    assert "of scikit-image's sample photos" in at.markdown[0].value
    assert at.query_params["images"] == "samples"
    bad = opened_with(PAGE, {"model": "lenet_digits", "images": "/etc"})
    assert any("Ignored `images=/etc`" in w for w in link_warnings(bad))
    assert bad.selectbox(key="activations.images").value == "digits"


def test_the_number_of_images_travels_in_the_link():
    """A shared link measured 256 images where the sender had chosen 100: other numbers in the
    headline and every table. The count is in the link and reopens it; out of range, it is named
    and the default stays."""
    at = opened_with(PAGE, {"model": "lenet_digits"})
    at.slider(key="activations.n").set_value(100).run()
    assert at.query_params["n"] in ("100", ["100"])
    again = opened_with(PAGE, {"model": "lenet_digits", "n": "100"})
    assert not errors(again) and not link_warnings(again)
    assert again.slider(key="activations.n").value == 100
    assert again.markdown[0].value == at.markdown[0].value  # the same headline, the same numbers
    bad = opened_with(PAGE, {"model": "lenet_digits", "n": "100000"})
    assert any("n=100000" in w for w in link_warnings(bad))
    assert bad.slider(key="activations.n").value == 256
