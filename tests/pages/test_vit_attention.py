"""AppTest of the ViT Attention page, on a tiny ViT checkpoint written for the test."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from vizlib import attention, zoo
from vizlib.models import ViT

PAGE = "../../app_pages/vit_attention.py"
TINY = "vit_tiny_test"
TINY_CONFIG = {
    "image_size": 32,
    "patch_size": 4,
    "in_channels": 1,
    "num_classes": 10,
    "dim": 32,
    "depth": 2,
    "heads": 2,
    "mlp_dim": 64,
}


def _tiny_model() -> ViT:
    torch.manual_seed(0)
    return ViT(**TINY_CONFIG).eval()


def write_checkpoint(directory, name: str, config: dict) -> ViT:
    """Save a seeded ViT of ``config`` as a digits checkpoint ``name`` in ``directory``."""
    torch.manual_seed(0)
    model = ViT(**config).eval()
    save_file(model.state_dict(), str(directory / f"{name}.safetensors"))
    size = config["image_size"]
    meta = {
        "name": name,
        "architecture": "vit",
        "family": "vit",
        "config": config,
        "dataset": "digits",
        "input_size": [1, size, size],
        "mean": [0.3052],
        "std": [0.3246],
        "class_names": [str(i) for i in range(10)],
        "test_accuracy": None,
    }
    (directory / f"{name}.json").write_text(json.dumps(meta))
    return model


@pytest.fixture
def tiny_vit_zoo(tmp_path, monkeypatch):
    """A zoo whose only checkpoint is a 2-layer, 2-head ViT on 32x32 digits (8x8 patches of 4 px)."""
    model = write_checkpoint(tmp_path, TINY, TINY_CONFIG)
    monkeypatch.setattr(zoo, "CHECKPOINT_DIR", tmp_path)
    return model


# one block, one head, one patch (digits are 8x8): every count slider has a single value
SINGLE = "vit_single_test"
SINGLE_CONFIG = {**TINY_CONFIG, "image_size": 8, "patch_size": 8, "dim": 8, "depth": 1, "heads": 1}


@pytest.fixture
def single_vit_zoo(tmp_path, monkeypatch):
    model = write_checkpoint(tmp_path, SINGLE, SINGLE_CONFIG)
    monkeypatch.setattr(zoo, "CHECKPOINT_DIR", tmp_path)
    return model


def _no_hooks(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_attention_page_computes_distances_maps_and_rollout(tiny_vit_zoo):
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = TINY
    _run(at)
    assert at.selectbox(key="vit_attention.model").value == TINY
    headers = [h.value for h in at.header]
    assert headers == ["Mean attention distance", "Attention maps", "Attention rollout"]
    assert at.number_input(key="vit_attention.n_images").value == 128
    assert any("analogous to receptive" in c.value for c in at.caption)
    # the baseline quoted on the page is the uniform distance of the 8x8 grid of 4-px patches
    baseline = attention.uniform_attention_distance((8, 8), 4)
    assert any(f"{baseline:.1f} px" in c.value for c in at.caption)

    downloads = {d.key for d in at.get("download_button")}
    assert downloads == {
        "vit_attention.download",  # layer x head table (CSV)
        "vit_attention.download_maps",  # the two attention maps (NPY)
        "vit_attention.download_rollout",  # rollout masks (NPY)
    }

    # change every control and re-run
    at.toggle(key="vit_attention.renormalize").set_value(True)
    at.number_input(key="vit_attention.n_images").set_value(16)
    at.slider(key="vit_attention.layer").set_value(1)
    at.selectbox(key="vit_attention.head").set_value(1)
    at.slider(key="vit_attention.q_row").set_value(0)
    at.selectbox(key="vit_attention.fusion").set_value("max")
    at.slider(key="vit_attention.discard").set_value(0.5)
    at.slider(key="vit_attention.count").set_value(2)
    at.number_input(key="vit_attention.rollout_first").set_value(3)
    _run(at)
    assert any("Patch (0, 4)" in str(c.proto) for c in at.get("plotly_chart"))
    assert any("max over heads, discard 0.50" in str(c.proto) for c in at.get("plotly_chart"))

    # "From image" 3 shows images 3 and 4; from 4, images 4 and 5: image 4's overlay moves
    def rollout_panels() -> list:
        chart = next(c for c in at.get("plotly_chart") if c.key == "vit_attention.rollout_chart")
        images = [t for t in json.loads(chart.proto.spec)["data"] if t["type"] == "image"]
        return [json.dumps(t.get("z", t.get("source"))) for t in images]

    from_3 = rollout_panels()
    at.number_input(key="vit_attention.rollout_first").set_value(4)
    _run(at)
    from_4 = rollout_panels()
    assert len(from_3) == len(from_4) == 2
    assert from_3[1] == from_4[0] and from_3[0] != from_4[0]
    import ui

    shared, _, _ = ui.cached_model(TINY, "cpu")  # the very model the page used
    assert _no_hooks(shared)
    assert not shared.training


def test_one_layer_one_head_one_patch_model(single_vit_zoo):
    """Streamlit refuses a slider whose ends are equal; the page states the only value instead."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = SINGLE
    _run(at)
    assert [h.value for h in at.header] == [
        "Mean attention distance",
        "Attention maps",
        "Attention rollout",
    ]
    captions = [c.value for c in at.caption]
    for only in ("Layer: 1", "Query patch row: 0", "Query patch column: 0"):
        assert any(c.startswith(only) for c in captions), only
    # one patch: attention to it is all there is, at distance 0 from itself
    assert any("(0.0 px)" in c for c in captions)
    at.slider(key="vit_attention.count").set_value(1)
    at.selectbox(key="vit_attention.head").set_value(0)
    _run(at)


def test_distance_table_matches_library(tiny_vit_zoo):
    """The page's cached computation returns the library's numbers for the chosen images."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = TINY
    _run(at)
    at.number_input(key="vit_attention.n_images").set_value(10)
    _run(at)
    chart = next(c for c in at.get("plotly_chart") if "mean attention distance" in str(c.proto))
    fig = json.loads(chart.proto.spec)
    y = fig["data"][0]["y"]
    if isinstance(y, dict):  # plotly's typed-array encoding
        y = np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])
    shown = np.sort(np.asarray(y, dtype=float))
    from vizlib.data import load_dataset

    images, _, _ = load_dataset("digits", split="test", input_size=(32, 32))
    expected = attention.mean_attention_distance_over(_tiny_model(), images[:10], device="cpu")
    np.testing.assert_allclose(shown, np.sort(expected.numpy().ravel()), rtol=1e-4)


def test_upload_path(tiny_vit_zoo):
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = TINY
    _run(at)
    at.selectbox(key="vit_attention.model").set_value("Upload weights…")
    _run(at)
    assert any("Upload a state dict" in i.value for i in at.info)
    at.file_uploader(key="vit_attention.upload_weights").upload("bad.pt", b"not a state dict")
    at.run()
    assert not at.exception
    assert at.error and "Refused" in at.error[0].value
    buf = io.BytesIO()
    torch.save(_tiny_model().state_dict(), buf)
    at.file_uploader(key="vit_attention.upload_weights").upload("good.pt", buf.getvalue())
    _run(at)
    assert [h.value for h in at.header][0] == "Mean attention distance"


def test_on_disk_dataset_is_offered_and_renormalised_for_the_model(monkeypatch):
    """A 3-channel dataset on disk is offered to an ImageNet model and re-normalised with the
    model's mean/std, not the dataset's."""
    import ui.vit as uv
    from vizlib.data import dataset_normalization

    pixels = torch.rand(5, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    d_mean, d_std = dataset_normalization("cifar10")
    normalised = (pixels - torch.tensor(d_mean).view(3, 1, 1)) / torch.tensor(d_std).view(3, 1, 1)
    monkeypatch.setattr(uv, "available_datasets", lambda: {"cifar10": "on disk at /data"})
    import vizlib.data.datasets as datasets

    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda *a, **k: (normalised, torch.arange(5), [str(i) for i in range(10)]),
    )
    meta = {"dataset": "imagenet", "input_size": [3, 224, 224]}
    sources = uv.image_sources(meta)
    assert sources == ["scikit-image sample photos", "cifar10 (test split, on disk)"]
    uv.load_images.clear()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    images, display, captions = uv.load_images(sources[1], (3, 224, 224), mean, std, 3)
    assert images.shape == (3, 3, 224, 224) and captions == ["cifar10 0", "cifar10 1", "cifar10 2"]
    np.testing.assert_allclose(display, pixels[:3].numpy(), atol=1e-5)
    expected = (pixels[:3] - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(images, expected, atol=1e-4)
    uv.load_images.clear()


def test_distance_progress_bar_is_gone_after_the_run_and_on_a_cache_hit(tiny_vit_zoo):
    """The bar lives inside the cached function (Streamlit forbids drawing on outer elements
    there) and is emptied at the end: neither the run nor the replayed cache hit leaves one."""
    import streamlit as st

    st.cache_data.clear()  # the first run computes
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = TINY
    _run(at)
    assert not at.get("progress")
    _run(at)  # the same arguments: a cache hit replays the bar's messages
    assert not at.get("progress")
    assert any(c.key == "vit_attention.distance_chart" for c in at.get("plotly_chart"))


def test_attention_maps_carry_colour_bars_in_attention_weights(tiny_vit_zoo):
    """The class-token map's colour bar spans that map's own weights; rollout's says per image."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = TINY
    _run(at)
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    bar = next(t for t in charts["vit_attention.cls_chart"]["data"] if t["type"] == "scatter")
    assert bar["marker"]["colorbar"]["title"]["text"] == "attention weight"
    from vizlib.data import load_dataset

    images, _, _ = load_dataset("digits", split="test", input_size=(32, 32))
    maps = attention.attention_maps(_tiny_model(), images[:1], device="cpu")
    weights = attention.cls_attention(maps, (8, 8), layer=1, head="mean")  # last layer
    assert bar["marker"]["cmin"] == pytest.approx(weights.min().item(), rel=1e-5)
    assert bar["marker"]["cmax"] == pytest.approx(weights.max().item(), rel=1e-5)
    roll = next(t for t in charts["vit_attention.rollout_chart"]["data"] if t["type"] == "scatter")
    assert roll["marker"]["colorbar"]["ticktext"] == ["min", "max"]


def test_an_image_folder_feeds_the_attention_page(tiny_vit_zoo, tmp_path, monkeypatch):
    """A folder under VIZLIB_DATA is offered to the 1-channel ViT, converted to grey; captions
    name each image's class (its sub-folder); the distances are the library's on those images."""
    import ui.vit as uv
    from tests.test_data_datasets import FRUIT, pixels_by_hand, write_image_folder

    files = write_image_folder(tmp_path / "fruit", n_per_class=4)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path / "fruit"))  # the data root is the folder
    name = f"imagefolder:{tmp_path / 'fruit'}"
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = TINY
    _run(at)
    options = at.selectbox(key="vit_attention.source").options  # as the picker shows them
    assert f"fruit — image folder, {tmp_path / 'fruit'}" in options
    at.selectbox(key="vit_attention.source").set_value(name)
    _run(at)
    captions = " | ".join(c.value for c in at.caption)
    assert "converted to grey (ITU-R 601 luma)" in captions and "all of its 12 images" in captions
    assert at.number_input(key="vit_attention.n_images").max == 12
    assert any(f"({cls} #" in captions for cls in FRUIT)  # the attention maps' caption

    meta = json.loads((zoo.CHECKPOINT_DIR / f"{TINY}.json").read_text())
    key = (tuple(meta["input_size"]), tuple(meta["mean"]), tuple(meta["std"]))
    images, display, labels = uv.load_images(name, *key)
    assert len(images) == 12 and sorted(labels) == sorted(
        f"{cls} #{i}" for i, cls in enumerate(c for c in FRUIT for _ in range(4))
    )
    # one image by hand: its file read by PIL, resized to 32x32, ITU-R 601 grey
    k = next(j for j, lab in enumerate(labels) if lab == "apples #0")
    grey = pixels_by_hand(files["apples"][0], (32, 32), grey=True)  # (1, 32, 32)
    np.testing.assert_allclose(display[k], grey.numpy(), atol=1e-5)
    # the chart: the library's distances over those 12 images (the default: all of them)
    chart = next(c for c in at.get("plotly_chart") if "mean attention distance" in str(c.proto))
    y = json.loads(chart.proto.spec)["data"][0]["y"]
    if isinstance(y, dict):  # plotly's typed-array encoding
        y = np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])
    expected = attention.mean_attention_distance_over(_tiny_model(), images, device="cpu")
    np.testing.assert_allclose(
        np.sort(np.asarray(y, dtype=float)), np.sort(expected.numpy().ravel()), rtol=1e-4
    )


def test_a_typed_image_folder_path_that_is_no_image_folder_is_explained(tiny_vit_zoo, tmp_path):
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = TINY
    _run(at)
    at.selectbox(key="vit_attention.source").set_value("Other image folder…").run()
    assert not at.exception and any("Type the path" in i.value for i in at.info)
    (tmp_path / "photo.png").write_bytes(b"x")
    at.text_input(key="vit_attention.folder_path").set_value(str(tmp_path)).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        f"{tmp_path} holds images but no class sub-folders. An image folder has one sub-folder "
        "per class, each holding that class's images (cats/1.jpg, dogs/2.png): give the folder "
        "above it, or sort the images into class sub-folders."
    ]
    assert not at.header  # nothing computed on no images
