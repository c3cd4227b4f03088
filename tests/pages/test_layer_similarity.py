"""AppTest for the Layer Similarity page: the matrices shown are vizlib.similarity's on the same
images, the settings travel in the link, and a large model waits for its button."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.pages._shared import errors, link_warnings, opened_with, plotly_array
from vizlib import filters, zoo
from vizlib.data import load_dataset
from vizlib.similarity import layer_similarity, similarity_layers

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "layer_similarity.py")


def _chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def _keys(at: AppTest) -> set[str]:
    return {c.key for c in at.get("plotly_chart")}


def _digits(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    model, meta = zoo.load_model(name)
    images, _, _ = load_dataset("digits", "test", input_size=meta["input_size"][1:])
    return model, images


def test_a_model_against_itself_is_vizlibs_matrix():
    at = opened_with(PAGE, {"model": "lenet_digits", "n": 200})
    assert not errors(at) and not link_warnings(at)
    model, images = _digits("lenet_digits")
    layers = similarity_layers(model, images[:4], "blocks")
    expected = layer_similarity(model, images[:200], layers).matrix
    heat = _chart(at, "cka.matrix")["data"][0]
    assert np.allclose(plotly_array(heat["z"]), expected, atol=1e-9)
    assert np.allclose(np.diag(expected), 1.0)
    assert "cka.matches" not in _keys(at)  # against itself every best match is the layer itself
    assert any("first 200 images of the digits test split" in c.value for c in at.caption)
    # no token choice for two CNNs
    assert not [r for r in at.radio if r.key == "cka.tokens"]


def test_against_another_model_on_its_own_input_size():
    at = opened_with(
        PAGE, {"model": "vit_digits", "compare": "lenet_digits", "layers": "all", "n": 64}
    )
    assert not errors(at) and not link_warnings(at)
    vit, vit_images = _digits("vit_digits")  # 32 x 32
    lenet, lenet_images = _digits("lenet_digits")  # 28 x 28: the same digits
    la = similarity_layers(vit, vit_images[:4], "all")
    lb = similarity_layers(lenet, lenet_images[:4], "all")
    expected = layer_similarity(vit, vit_images[:64], la, lenet, lenet_images[:64], lb).matrix
    heat = plotly_array(_chart(at, "cka.matrix")["data"][0]["z"])
    assert heat.shape == (len(la), len(lb)) and np.allclose(heat, expected, atol=1e-9)
    best = _chart(at, "cka.matches")["data"]
    assert len(best) == 1
    assert np.allclose(plotly_array(best[0]["y"]), np.nanmax(expected, axis=1))
    assert at.radio(key="cka.tokens").value == "all"  # a ViT is involved: the choice is offered
    at.radio(key="cka.tokens").set_value("class").run()
    assert at.query_params["tokens"] == "class"
    classy = layer_similarity(
        vit, vit_images[:64], similarity_layers(vit, vit_images[:4], "all", tokens="class"),
        lenet, lenet_images[:64], lb, tokens="class",
    ).matrix  # fmt: skip
    heat = plotly_array(_chart(at, "cka.matrix")["data"][0]["z"])
    assert np.allclose(heat, classy, atol=1e-9, equal_nan=True)  # the class token: NaN early
    assert not np.allclose(classy[1:4], expected[1:4], atol=1e-3)  # the tokens did change it


def test_against_its_own_initialisation():
    at = opened_with(PAGE, {"model": "resnet_digits", "compare": "init"})
    assert not errors(at)
    model, images = _digits("resnet_digits")
    layers = similarity_layers(model, images[:4], "blocks")
    untrained = filters.untrained_model(zoo.checkpoint_metadata("resnet_digits"))
    expected = layer_similarity(model, images[:450], layers, untrained, images[:450], layers).matrix
    same, best = _chart(at, "cka.matches")["data"]
    assert np.allclose(plotly_array(same["y"]), np.diag(expected), atol=1e-9)
    assert np.allclose(plotly_array(best["y"]), np.nanmax(expected, axis=1), atol=1e-9)
    note = next(c.value for c in at.caption if c.value.startswith("Red:"))
    changed = pd.Series(np.diag(expected), index=layers).drop("input")
    assert f"most: {changed.idxmin()} ({changed.min():.2f})" in note


def test_the_download_is_the_matrix_with_its_layers(downloads):
    at = opened_with(PAGE, {"model": "lenet_digits", "n": 100, "layers": "all"})
    heat = _chart(at, "cka.matrix")["data"][0]
    frame = pd.read_csv(io.BytesIO(downloads["lenet_digits_vs_lenet_digits_cka.csv"]), index_col=0)
    assert list(frame.index) == list(frame.columns)
    assert frame.index[0] == "input" and frame.index[-1] == "fc2"
    assert np.allclose(frame.to_numpy(), plotly_array(heat["z"]), atol=1e-6)


def test_bad_link_values_are_named_and_dropped():
    at = opened_with(PAGE, {"model": "lenet_digits", "compare": "alexnet", "layers": "some"})
    warnings = link_warnings(at)
    assert any("compare=alexnet" in w for w in warnings)  # not a digits model
    assert any("layers=some" in w for w in warnings)
    assert at.selectbox(key="cka.compare").value == "itself"
    assert at.selectbox(key="cka.compare").options[:2] == ["itself", "itself at initialisation"]
    assert set(at.selectbox(key="cka.compare").options[2:]) == {"resnet_digits", "vit_digits"}


def test_a_large_model_waits_for_the_button():
    at = opened_with(PAGE, {"model": "resnet18", "n": 8})
    assert not errors(at)
    assert "cka.matrix" not in _keys(at)
    button = at.button(key="cka.run")
    assert "over 8 images" in button.label
    assert any("Only" in c.value for c in at.caption) is False  # nothing computed yet
    # no ImageNet test split here: the sample photos, as crops, are the default set
    assert any("144 in all" in c.value for c in at.caption)
    button.click().run()
    assert not at.exception and not errors(at)
    heat = plotly_array(_chart(at, "cka.matrix")["data"][0]["z"])
    assert heat.shape == (7, 7) and np.allclose(np.diag(heat), 1.0)
    assert any(c.value.startswith("Only 8 images: each CKA here is a noisy") for c in at.caption)


@pytest.mark.parametrize("n", [2, 10**6])
def test_an_impossible_count_from_the_link(n):
    at = opened_with(PAGE, {"model": "lenet_digits", "n": n})
    assert any(f"n={n}" in w for w in link_warnings(at))
    assert at.slider(key="cka.n").value == 450


def test_uploaded_weights_that_put_out_nan_are_named():
    """An upload whose conv2 weights are finite but so large (x 3e38) that its outputs overflow:
    every layer from relu2 on is NaN or infinite, which the page names in an error, not as
    layers "the same for every image"; the input and relu1 still compare."""
    from tests.pages.test_learned_filters import lenet_upload

    def poisoned(state):
        state["conv2.weight"] *= 3e38

    at = opened_with(PAGE, {"model": "upload"})
    at.selectbox(key="cka.upload_arch").set_value("lenet_digits")
    uploader = next(u for u in at.get("file_uploader") if u.proto.id.endswith("upload_weights"))
    uploader.upload("nan.safetensors", lenet_upload(poisoned), "application/octet-stream")
    at.run()
    assert not at.exception
    (error,) = errors(at)
    assert error.startswith("3 layer(s) put out NaN or infinite values (relu2, relu3, output)")
    assert not [w.value for w in at.warning if "the same for every image" in w.value]
    heat = plotly_array(_chart(at, "cka.matrix")["data"][0]["z"])
    assert np.isfinite(heat[:2, :2]).all() and np.isnan(heat[2:]).all()


def test_the_image_set_travels_in_the_link():
    at = opened_with(PAGE, {"model": "lenet_digits", "images": "samples", "n": 16})
    assert not errors(at) and not link_warnings(at)
    assert at.selectbox(key="cka.images").value == "samples"
    assert any("square crops of scikit-image's sample photos" in c.value for c in at.caption)
    assert at.query_params["images"] == "samples" and at.query_params["n"] == "16"


def test_the_class_token_before_attention_is_blank_and_the_numbered_axes_are_named():
    """vit_digits' class token is the same for every image until the first attention: its row
    read CKA 0 ("unrelated") against every layer, from float32 rounding, with no warning. It is
    blank now and named. With 35 layers the axes are numbered; a caption names the numbers."""
    at = opened_with(
        PAGE, {"model": "vit_digits", "compare": "init", "layers": "all", "tokens": "class"}
    )
    assert not errors(at)
    model, images = _digits("vit_digits")
    layers = similarity_layers(model, images[:4], "all", tokens="class")
    heat = plotly_array(_chart(at, "cka.matrix")["data"][0]["z"])
    row = layers.index("blocks.0.norm1")
    assert np.isnan(heat[row]).all() and np.isnan(heat[:, row]).all()
    assert np.isfinite(heat[0]).any()  # the input's row is a number
    assert any(
        "blocks.0.norm1" in w.value and "same for every image" in w.value for w in at.warning
    )
    named = [c.value for c in at.caption if "layers by number" in c.value]
    assert len(named) == 1  # the same layers on both axes: one line
    assert f"{row} blocks.0.norm1" in named[0] and len(layers) > 24
