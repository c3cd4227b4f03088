"""AppTest of the ViT Attention page, on a tiny ViT checkpoint written for the test."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

import ui
from tests.pages._shared import link_warnings, opened_with
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
    assert headers == [
        "Mean attention distance",
        "Attention maps",
        "Attention rollout",
        "Which heads matter?",
    ]
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
    # patches counted from 0 at the top left, as on the Position Embeddings page
    assert any("Patch (row 0, column 4)" in str(c.proto) for c in at.get("plotly_chart"))
    assert any("counted from 0 at the top left" in c.value for c in at.caption)
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
        "Which heads matter?",
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
    shown = _distances_shown(at)
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


def test_max_over_heads_is_not_called_weights_that_sum_to_1(tiny_vit_zoo):
    """With 'max over heads' the map holds each patch's largest weight over the heads, which do
    not sum to 1; the caption said they did."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = TINY
    at.query_params["head"] = "max"
    _run(at)
    captions = " | ".join(c.value for c in at.caption)
    assert "each patch's largest weight over the heads" in captions
    assert "weights that sum to 1 over all tokens" not in captions
    from vizlib.data import load_dataset

    images, _, _ = load_dataset("digits", split="test", input_size=(32, 32))
    maps = attention.attention_maps(_tiny_model(), images[:1], device="cpu")  # per layer
    by_hand = maps[-1][0, :, 0, 1:].max(dim=0).values  # (T - 1,): class token, max over heads
    bar = next(t for t in _chart(at, "vit_attention.cls_chart")["data"] if t["type"] == "scatter")
    assert bar["marker"]["cmax"] == pytest.approx(by_hand.max().item(), rel=1e-5)
    assert bar["marker"]["cmin"] == pytest.approx(by_hand.min().item(), rel=1e-5)
    at.selectbox(key="vit_attention.head").set_value("mean").run()
    assert "weights that sum to 1 over all tokens" in " | ".join(c.value for c in at.caption)


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
    expected = attention.mean_attention_distance_over(_tiny_model(), images, device="cpu")
    np.testing.assert_allclose(_distances_shown(at), np.sort(expected.numpy().ravel()), rtol=1e-4)


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


# --- uploaded images ----------------------------------------------------------------------------
DIGITS_VIT = "vit_digits"  # the shipped checkpoint: 1 channel, 32x32, 8x8 patches of 4 px, 4 layers


def _photo_png(path, sample: str, size: tuple[int, int]) -> bytes:
    """Write scikit-image's sample photo ``sample`` resized by PIL to ``size`` (W, H) as a PNG
    at ``path``; return the file's bytes."""
    import skimage.data
    from PIL import Image

    Image.fromarray(getattr(skimage.data, sample)()).resize(size, Image.BILINEAR).save(path)
    return path.read_bytes()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds none (a bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _upload_page(files: list[tuple[str, bytes]]) -> AppTest:
    """The page on vit_digits with ``files`` (name, bytes) uploaded as its images."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = DIGITS_VIT
    _run(at)
    at.selectbox(key="vit_attention.source").set_value("Upload images…")
    at.run()
    assert not at.exception and not at.header  # nothing computed before an upload
    assert any("Upload one or more PNG or JPEG" in i.value for i in at.info)
    uploader = at.file_uploader(key="vit_attention.upload_images")
    assert uploader.accept_multiple_files and set(uploader.allowed_type) >= {".png", ".jpg"}
    assert uploader.proto.max_upload_size_mb == 50  # shown as each file's limit: the reader's
    uploader.set_value([(name, data, "image/png") for name, data in files])
    at.run()
    assert not at.exception, at.exception
    return at


def _digits_input_by_hand(paths) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (pixels (N, 1, 32, 32) in [0, 1], the same normalised with vit_digits' mean/std) of
    image files, prepared without vizlib: PIL, torch's resize, ITU-R 601 luma, (x - m) / s."""
    from tests.test_data_datasets import pixels_by_hand

    meta = json.loads((zoo.CHECKPOINT_DIR / f"{DIGITS_VIT}.json").read_text())
    pixels = torch.stack([pixels_by_hand(p, (32, 32), grey=True) for p in paths])
    return pixels, (pixels - meta["mean"][0]) / meta["std"][0]


def _chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def _array(value) -> np.ndarray:
    """A plotly trace's array: a list, or plotly's typed-array encoding (base64, dtype, shape)."""
    if not isinstance(value, dict):
        return np.asarray(value)
    flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    shape = [int(n) for n in str(value.get("shape", len(flat))).split(",")]
    return flat.reshape(shape)


def _distances_shown(at: AppTest) -> np.ndarray:
    """Every head's dots of the distance chart (one trace per head), sorted."""
    traces = _chart(at, "vit_attention.distance_chart")["data"]
    return np.sort(np.concatenate([_array(t["y"]).astype(float) for t in traces]))


def test_uploaded_photos_feed_maps_rollout_and_distances(tmp_path, downloads):
    """Two PNGs uploaded for vit_digits: every section uses them, captioned by file name, and
    every value shown is vizlib.attention's on the same files prepared by hand."""
    import ui.vit as uv
    from vizlib.plots.vit import overlay_rgb

    uv.prepared_upload.clear()
    paths = [tmp_path / "chelsea the cat.png", tmp_path / "coffee.png"]
    files = [
        (paths[0].name, _photo_png(paths[0], "chelsea", (90, 60))),  # wide: stretched to 32x32
        (paths[1].name, _photo_png(paths[1], "coffee", (40, 48))),
    ]
    at = _upload_page(files)
    assert not at.error, [e.value for e in at.error]
    assert [h.value for h in at.header] == [
        "Mean attention distance",
        "Attention maps",
        "Attention rollout",
        "Which heads matter?",
    ]
    captions = " | ".join(c.value for c in at.caption)
    assert "converted to grey (ITU-R 601 luma) for this 1-channel model" in captions
    assert "stretched to 32×32 pixels" in captions
    assert "2 images available" in captions
    assert "Averaged over 2 uploaded image(s) only: a small sample" in captions
    assert "image 0 (chelsea the cat.png)" in captions  # the attention maps' caption
    assert at.number_input(key="vit_attention.n_images").max == 2
    rollout_chart = _chart(at, "vit_attention.rollout_chart")
    titles = [a["text"] for a in rollout_chart["layout"]["annotations"]]
    assert titles == ["chelsea the cat.png", "coffee.png"]

    # the preparation, by hand: PIL pixels, resized, grey, normalised
    pixels, x = _digits_input_by_hand(paths)
    source = uv.UploadedImages(
        tuple(hashlib.sha256(data).hexdigest() for _, data in files), tuple(n for n, _ in files)
    )
    images, display, names = uv.load_images(source, *ui.preparation_key(json.loads(
        (zoo.CHECKPOINT_DIR / f"{DIGITS_VIT}.json").read_text()
    )))  # fmt: skip
    assert names == ["chelsea the cat.png", "coffee.png"]
    np.testing.assert_allclose(images.numpy(), x.numpy(), atol=1e-5)

    # the values shown: vizlib.attention on the hand-prepared images, with a fresh model
    model, _ = zoo.load_model(DIGITS_VIT, device="cpu")
    maps = attention.attention_maps(model, x, device="cpu")
    kw = {"layer": 3, "head": "mean"}  # the defaults: last of 4 layers, mean over heads
    cls_map = attention.cls_attention(maps, (8, 8), **kw)  # (2, 8, 8)
    query_map = attention.query_attention(maps, (8, 8), (4, 4), **kw)
    shown_maps = np.load(
        io.BytesIO(downloads["attention_maps_vit_digits_image0_layer4_head-mean_query4-4.npy"])
    )
    np.testing.assert_allclose(shown_maps[0], cls_map[0].numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(shown_maps[1], query_map[0].numpy(), rtol=1e-4, atol=1e-7)
    bar = next(t for t in _chart(at, "vit_attention.cls_chart")["data"] if t["type"] == "scatter")
    assert bar["marker"]["cmin"] == pytest.approx(cls_map[0].min().item(), rel=1e-4)
    assert bar["marker"]["cmax"] == pytest.approx(cls_map[0].max().item(), rel=1e-4)
    rolled = attention.attention_rollout(maps, head_fusion="mean", grid_hw=(8, 8))  # (2, 8, 8)
    shown_rollout = np.load(io.BytesIO(downloads["attention_rollout_vit_digits.npy"]))
    np.testing.assert_allclose(shown_rollout, rolled.numpy(), rtol=1e-4, atol=1e-7)
    # the panels show the photos themselves under the masks (uint8: one level for rounding)
    panels = [t for t in rollout_chart["data"] if t["type"] == "image"]
    for k, panel in enumerate(panels):
        expected = overlay_rgb(pixels[k].numpy(), rolled[k].numpy()).astype(int)
        np.testing.assert_allclose(_array(panel["z"]), expected, atol=1)
    distances = attention.mean_attention_distance_over(model, x, device="cpu")
    np.testing.assert_allclose(_distances_shown(at), np.sort(distances.numpy().ravel()), rtol=1e-4)


def _line_png() -> bytes:
    """A PNG one pixel wide and five high."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1, 5), 128).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_uploads_are_named_and_the_good_one_is_still_used(tmp_path):
    """A corrupt file, a non-image, a decompression bomb and a too-large image beside a good
    photo: one error naming each, no traceback, and the page runs on the good photo alone."""
    good = _photo_png(tmp_path / "cat.png", "chelsea", (45, 30))
    at = _upload_page(
        [
            ("broken.png", good[: len(good) // 2]),  # cut off half-way
            ("cat.png", good),
            ("notes.png", b"these are lecture notes, not an image"),
            ("bomb.png", _png_header(100_000, 100_000)),  # 10^10 pixels declared
            ("poster.png", _png_header(6_000, 5_000)),  # 30 million pixels: over the limit
            ("line.png", _line_png()),  # 1 pixel wide: said in words, not 'too small: (5, 1)'
        ]
    )
    errors = [e.value for e in at.error]
    assert len(errors) == 5, errors
    for name, why in [
        ("broken.png", "could not be read"),
        ("notes.png", "could not be read as a PNG or JPEG"),
        ("bomb.png", "decompression bomb"),
        ("poster.png", "6000×5000 = 30,000,000 pixels"),
        ("line.png", "The image is 1×5 pixels; at least 2×2 are needed."),
    ]:
        assert any(e.startswith(f"Could not use {name!r}") and why in e for e in errors), name
    assert [h.value for h in at.header][0] == "Mean attention distance"
    captions = " | ".join(c.value for c in at.caption)
    assert "1 image available" in captions and "image 0 (cat.png)" in captions
    assert "Averaged over 1 uploaded image(s)" in captions
    titles = [a["text"] for a in _chart(at, "vit_attention.rollout_chart")["layout"]["annotations"]]
    assert titles[0] == "cat.png"


def test_only_bad_uploads_compute_nothing(tmp_path):
    at = _upload_page([("notes.png", b"not an image")])
    assert [e.value for e in at.error] == [
        "Could not use 'notes.png': The file could not be read as a PNG or JPEG image: it is "
        "another format or damaged."
    ]
    assert any("None of the uploaded files could be used" in i.value for i in at.info)
    assert not at.header


def test_uploads_are_decoded_once_and_reruns_reuse_them(tmp_path, monkeypatch):
    """Uploaded bytes are keyed by their SHA-256: reruns (a control moved, the page rerun) and
    a refused file decode nothing again; a new file decodes only itself."""
    import ui.vit as uv

    uv.prepared_upload.clear()
    read = uv.read_image_upload
    decoded: list[int] = []

    def counting_read(data, **kwargs):
        decoded.append(len(data))
        return read(data, **kwargs)

    monkeypatch.setattr(uv, "read_image_upload", counting_read)
    cat = _photo_png(tmp_path / "cat.png", "chelsea", (45, 30))
    at = _upload_page([("cat.png", cat), ("notes.png", b"not an image")])
    assert len(decoded) == 2
    at.slider(key="vit_attention.discard").set_value(0.5)
    at.run()
    at.number_input(key="vit_attention.image").set_value(0)
    at.run()
    assert not at.exception and len(decoded) == 2
    coffee = _photo_png(tmp_path / "coffee.png", "coffee", (40, 48))
    files = [("cat.png", cat, "image/png"), ("notes.png", b"not an image", "image/png")]
    at.file_uploader(key="vit_attention.upload_images").set_value(
        [*files, ("coffee.png", coffee, "image/png")]
    )
    at.run()
    assert not at.exception and len(decoded) == 3
    assert "2 images available" in " | ".join(c.value for c in at.caption)


def test_a_link_keeps_the_upload_choice(tiny_vit_zoo):
    """Choosing "Upload weights…" writes ?model=upload, as the CNN pages do, and such a link
    opens the upload picker without a warning; it used to keep the last zoo model's name (the
    shared link showed that model) and to ignore ?model=upload with a warning."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = TINY
    _run(at)
    at.selectbox(key="vit_attention.model").set_value("Upload weights…")
    _run(at)
    assert at.query_params["model"] == "upload"
    fresh = AppTest.from_file(PAGE, default_timeout=120)
    fresh.query_params["model"] = "upload"
    _run(fresh)
    assert not fresh.exception and not fresh.warning
    assert fresh.selectbox(key="vit_attention.model").value == "Upload weights…"
    assert any("Upload a state dict" in i.value for i in fresh.info)
    fresh.selectbox(key="vit_attention.model").set_value(TINY)
    _run(fresh)
    assert fresh.query_params["model"] == TINY


# every shareable setting away from its default (tiny ViT: 2 layers, 2 heads, 8x8 patches)
LINK = {
    "n": "10",
    "renorm": "true",
    "image": "3",
    "layer": "1",
    "head": "1",
    "row": "2",
    "col": "5",
    "fusion": "max",
    "discard": "0.25",
    "count": "2",
    "first": "5",
}


def _linked(query: dict) -> AppTest:
    return opened_with(PAGE, query)


def _widgets(at: AppTest) -> dict:
    return {
        "n": at.number_input(key="vit_attention.n_images").value,
        "renorm": at.toggle(key="vit_attention.renormalize").value,
        "image": at.number_input(key="vit_attention.image").value,
        "layer": at.slider(key="vit_attention.layer").value,
        "head": at.selectbox(key="vit_attention.head").value,
        "row": at.slider(key="vit_attention.q_row").value,
        "col": at.slider(key="vit_attention.q_col").value,
        "fusion": at.selectbox(key="vit_attention.fusion").value,
        "discard": at.slider(key="vit_attention.discard").value,
        "count": at.slider(key="vit_attention.count").value,
        "first": at.number_input(key="vit_attention.rollout_first").value,
    }


DEFAULTS = {
    "n": 128,
    "renorm": False,
    "image": 0,
    "layer": 2,
    "head": "mean",
    "row": 4,
    "col": 4,
    "fusion": "mean",
    "discard": 0.0,
    "count": 4,
    "first": 0,
}


def test_a_link_opens_the_page_on_its_settings(tiny_vit_zoo, monkeypatch):
    from streamlit.elements.lib import policies

    told = []  # Streamlit's complaints of a widget given a default beside its session value
    monkeypatch.setattr(policies._LOGGER, "warning", lambda msg, *a, **k: told.append(msg % a))
    at = _linked({"model": TINY, **LINK})
    assert not at.error and not link_warnings(at)
    assert told == []  # 'From image' passed 0 beside the link's 5
    assert _widgets(at) == {
        "n": 10,
        "renorm": True,
        "image": 3,
        "layer": 1,
        "head": 1,
        "row": 2,
        "col": 5,
        "fusion": "max",
        "discard": 0.25,
        "count": 2,
        "first": 5,
    }
    captions = " | ".join(c.value for c in at.caption)
    assert "Averaged" not in captions and "Layer 1, head 1; image 3" in captions
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "Patch (row 2, column 5) → patches" in titles
    assert "Rollout of the class token (max over heads, discard 0.25)" in titles
    assert dict(at.query_params) == {"model": TINY, **LINK}  # the link stays as it came


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("layer", "3", "expected a whole number from 1 to 2"),
        ("head", "2", "expected mean, max or a head 0 to 1"),
        ("row", "x", "expected a whole number from 0 to 7"),
        ("discard", "0.33", "expected a number from 0 to 0.95 in steps of 0.05"),
        ("fusion", "avg", "expected one of mean, max, min"),
        ("image", "-1", "expected a whole number from 0 to"),
        ("renorm", "maybe", "expected true or false"),
        ("images", "nowhere", "expected digits (test split), "),
    ],
)
def test_a_bad_link_value_gives_a_warning_and_the_default(tiny_vit_zoo, key, raw, expected):
    at = _linked({"model": TINY, "layer": "1", key: raw})
    assert not at.error
    (warning,) = link_warnings(at)
    assert warning.startswith(f"Ignored `{key}={raw}` from the link ({expected}")
    assert _widgets(at) == {**DEFAULTS, "layer": 1 if key != "layer" else 2}
    assert at.selectbox(key="vit_attention.source").value == "digits (test split)"
    assert key not in at.query_params and at.query_params["model"] == TINY


def test_changing_the_widgets_writes_the_link_and_the_link_reopens_them(tiny_vit_zoo):
    at = _linked({"model": TINY})
    assert dict(at.query_params) == {"model": TINY}  # defaults stay out of the link
    at.slider(key="vit_attention.layer").set_value(1)
    at.selectbox(key="vit_attention.head").set_value("max")
    at.slider(key="vit_attention.q_col").set_value(7)
    at.slider(key="vit_attention.discard").set_value(0.5)
    at.toggle(key="vit_attention.renormalize").set_value(True)
    at.number_input(key="vit_attention.n_images").set_value(12).run()
    assert not at.exception and not at.error
    link = dict(at.query_params)
    assert link == {
        "model": TINY,
        "layer": "1",
        "head": "max",
        "col": "7",
        "discard": "0.5",
        "renorm": "true",
        "n": "12",
    }
    at.selectbox(key="vit_attention.fusion").set_value("min").run()  # a fragment's rerun
    assert at.query_params["fusion"] == "min" and at.query_params["layer"] == "1"
    again = _linked(dict(at.query_params))
    assert not link_warnings(again) and _widgets(again) == _widgets(at)


def test_a_link_waits_for_the_uploaded_model(tiny_vit_zoo):
    """?model=upload opens the picker; the other settings stay in the link until a model is
    there to apply them to, and a bad one says so without a traceback."""
    at = _linked({"model": "upload", "layer": "1", "head": "zzz"})
    assert not at.warning and at.selectbox(key="vit_attention.model").value == "Upload weights…"
    assert dict(at.query_params) == {"model": "upload", "layer": "1", "head": "zzz"}
    at.selectbox(key="vit_attention.model").set_value(TINY).run()
    assert not at.exception
    assert link_warnings(at) == [
        "Ignored `head=zzz` from the link (expected mean, max or a head 0 to 1)."
    ]
    assert at.slider(key="vit_attention.layer").value == 1
    assert dict(at.query_params) == {"model": TINY, "layer": "1"}


def test_downloads_do_not_rerun_the_page(tiny_vit_zoo):
    at = _linked({"model": TINY, "n": "4"})
    buttons = at.get("download_button")
    assert len(buttons) == 3 and all(b.proto.ignore_rerun for b in buttons)


def test_image_and_count_come_back_after_a_detour_to_a_smaller_image_set(
    tiny_vit_zoo, tmp_path, monkeypatch
):
    """Image 20 of 100 digits; a 12-image folder has no image 20 (image 0 and 12 images stand
    in); back on the digits, image 20 and 100 images again, in the link too."""
    from tests.test_data_datasets import write_image_folder

    write_image_folder(tmp_path / "fruit", n_per_class=4)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path / "fruit"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = TINY
    _run(at)
    digits = at.selectbox(key="vit_attention.source").value
    at.number_input(key="vit_attention.n_images").set_value(100)
    at.number_input(key="vit_attention.image").set_value(20)
    _run(at)
    at.selectbox(key="vit_attention.source").set_value(f"imagefolder:{tmp_path / 'fruit'}")
    _run(at)
    assert at.number_input(key="vit_attention.image").value == 0
    assert at.number_input(key="vit_attention.n_images").value == 12
    at.selectbox(key="vit_attention.source").set_value(digits)
    _run(at)
    assert at.number_input(key="vit_attention.image").value == 20
    assert at.number_input(key="vit_attention.n_images").value == 100
    assert at.query_params["image"] == "20" and at.query_params["n"] == "100"
    assert not at.exception
