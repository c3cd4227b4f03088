"""AppTest for the Attributions page."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import ui
from tests.pages._shared import errors, link_warnings, opened_with

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "attributions.py")


@pytest.fixture
def at():
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "lenet_digits"
    return app.run()


def _image_captions(at: AppTest) -> list[str]:
    """The captions of the page's images (st.image)."""
    found = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            if type(child).__name__ == "Image":
                found.extend(img.caption for img in child.proto.imgs)
            walk(child)

    walk(at.main)
    return found


def _captions(at: AppTest) -> str:
    return " | ".join(c.value for c in at.caption)


def test_default_explains_the_prediction_with_four_methods(at):
    assert not at.exception and not errors(at)
    assert "Explaining class" in at.markdown[0].value
    # top-5 chart plus one overlay per method
    assert len(at.get("plotly_chart")) == 5
    assert "convergence delta" in _captions(at)
    assert "layer conv2" in _captions(at)


def test_gradcam_starts_on_the_main_paths_last_conv_not_a_shortcut():
    """resnet_digits' last conv in definition order is a 1 x 1 shortcut projection."""
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "resnet_digits"
    app.run()
    assert not app.exception and not errors(app)
    assert app.selectbox(key="attr.gc_layer").value == "layers.2.conv2"
    assert "layer layers.2.conv2" in _captions(app)


def test_controls_change_what_is_computed(at):
    at.toggle(key="attr.use_pred").set_value(False).run()
    at.selectbox(key="attr.target").set_value(4).run()
    assert "index 4" in at.markdown[0].value
    at.radio(key="attr.view").set_value("signed").run()
    at.radio(key="attr.scale").set_value("shared").run()
    at.slider(key="attr.ig_steps").set_value(16).run()
    at.selectbox(key="attr.ig_baseline").set_value("blurred").run()
    at.selectbox(key="attr.gc_layer").set_value("conv1").run()
    at.slider(key="attr.occ_window").set_value(7).run()
    assert not at.exception and not errors(at)
    assert "layer conv1 (24×24 upsampled)" in _captions(at)
    at.multiselect(key="attr.methods").set_value(["saliency"]).run()
    assert len(at.get("plotly_chart")) == 2
    at.multiselect(key="attr.methods").set_value([]).run()
    assert any("at least one" in i.value for i in at.info)
    assert not at.exception


def _overlay_tiles(at: AppTest) -> tuple:
    """Return the block holding the overlays' tiles and, per method, (tile block, chart's figure
    as a dict) in page order."""
    import json

    from streamlit.testing.v1.element_tree import Block

    def tiles_of(block):
        for child in block.children.values():
            if isinstance(child, Block):
                charts = [
                    (tile, c)
                    for tile in child.children.values()
                    if isinstance(tile, Block)
                    for c in tile.children.values()
                    if str(getattr(c, "key", "")).startswith("attr.fig.")
                ]
                if charts:
                    return child, charts
                found = tiles_of(child)
                if found:
                    return found
        return None

    row, charts = tiles_of(at._tree.main)
    return row, [(tile, json.loads(chart.proto.spec)) for tile, chart in charts]


def test_overlays_are_fixed_width_tiles_that_wrap_and_fit_their_images(at):
    """Four overlays side by side in equal columns were 124 px wide at a 1024 px window: titles
    and colour bars cut, the image a strip in a 380 px high figure. The overlays are now tiles of
    a fixed width in a row that wraps (four to a row on a wide screen, two at 1024 px), each
    figure exactly as high as its image, title and colour bar need; a shared scale draws one
    colour bar for all the maps instead of one under each."""
    import json

    from streamlit.proto.Block_pb2 import Block as BlockProto

    row, tiles = _overlay_tiles(at)
    flex = row.proto.flex_container
    assert flex.direction == BlockProto.FlexContainer.Direction.HORIZONTAL and flex.wrap
    assert len(tiles) == 4
    for tile, fig in tiles:
        lay, (_, heat) = fig["layout"], fig["data"]
        assert tile.proto.width_config.pixel_width == lay["width"] == 240
        m = lay["margin"]
        # the 28 x 28 image fills the plot area: no blank band above, below or beside it
        assert lay["height"] - m["t"] - m["b"] == lay["width"] - m["l"] - m["r"]
        assert heat.get("showscale", True)
    assert not [c for c in at.get("plotly_chart") if c.key == "attr.colorbar"]

    at.radio(key="attr.scale").set_value("shared").run()
    assert not at.exception and not errors(at)
    _, tiles = _overlay_tiles(at)
    heats = [fig["data"][1] for _, fig in tiles]
    assert all(h["showscale"] is False for h in heats)
    assert len({h["zmax"] for h in heats}) == 1 and all(h["zmin"] == 0 for h in heats)
    (bar,) = [c for c in at.get("plotly_chart") if c.key == "attr.colorbar"]
    marker = json.loads(bar.proto.spec)["data"][0]["marker"]
    assert marker["showscale"] and (marker["cmin"], marker["cmax"]) == (0, heats[0]["zmax"])
    assert marker["colorscale"] == heats[0]["colorscale"]
    assert len(at.get("plotly_chart")) == 6  # top-5, one colour bar, four overlays


def test_sample_image_input(at):
    at.radio(key="attr.source").set_value("Sample image").run()
    at.selectbox(key="attr.sample").set_value("camera").run()
    assert not at.exception and not errors(at)
    assert len(at.get("plotly_chart")) == 5
    # the 512x512 photo reaches lenet as a 28x28 grey image: the page says so
    assert (
        "Sample images are converted to grey (ITU-R 601 luma) for this 1-channel model, "
        "stretched to 28×28 pixels (the aspect ratio is not kept)" in _captions(at)
    )


def test_uploads_good_and_corrupt(at):
    import io

    import numpy as np
    from PIL import Image

    at.radio(key="attr.source").set_value("Upload an image").run()
    assert any("Upload an image" in i.value for i in at.info)
    buf = io.BytesIO()
    Image.fromarray((np.eye(40) * 255).astype(np.uint8)).save(buf, format="PNG")
    at.file_uploader(key="attr.upload").set_value(("diag.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not errors(at)
    assert len(at.get("plotly_chart")) == 5
    assert "Uploaded images are converted to grey (ITU-R 601 luma)" in _captions(at)
    assert not [w for w in at.warning if "light background" in w.value]  # light on dark
    assert not [w for w in at.warning if "squeezed" in w.value or "same value" in w.value]
    # a black 300×5 strip: no picture, and squeezed 60 times more one way than the other
    buf = io.BytesIO()
    Image.fromarray(np.zeros((5, 300), np.uint8)).save(buf, format="PNG")
    at.file_uploader(key="attr.upload").set_value(("wide.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not errors(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "Every pixel of this image has the same value (0.00 of 1)" in warnings
    assert "This 300×5 image becomes 28×28: its width is squeezed 60 times" in warnings
    at.file_uploader(key="attr.upload").set_value(("bad.png", b"not a png", "image/png")).run()
    assert not at.exception
    assert "Could not use 'bad.png'" in errors(at)[0]


def test_a_dark_digit_on_white_is_flagged_and_can_be_inverted(at):
    """lenet_digits learned light strokes on black: a one drawn on white paper is named, and
    the Invert box gives the model the image it expects (what a test digit looks like)."""
    import io

    import numpy as np
    from PIL import Image

    paper = np.full((40, 40), 255, np.uint8)
    paper[6:34, 17:23] = 0
    buf = io.BytesIO()
    Image.fromarray(paper).save(buf, format="PNG")
    at.radio(key="attr.source").set_value("Upload an image").run()
    at.file_uploader(key="attr.upload").set_value(("one.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not errors(at)
    (warning,) = [w.value for w in at.warning if "light background" in w.value]
    assert "lenet_digits learned from light strokes on black (digits)" in warning
    assert _image_captions(at) == ["upload 'one.png'"]
    at.checkbox(key="attr.invert").check().run()
    assert not at.exception and not errors(at)
    assert not [w for w in at.warning if "light background" in w.value]
    assert _image_captions(at) == ["upload 'one.png', inverted"]


def _slow_model(monkeypatch, single: float, four: float) -> AppTest:
    """The Attributions page on lenet_digits as if its first pass took 0.5 s and warm passes
    of 1 and 4 images took ``single`` and ``four`` seconds."""
    import time

    import streamlit as st

    from vizlib import attribution

    st.cache_data.clear()  # the page caches its timings per model and input shape
    real = attribution.top_predictions

    def slow_top(*args, **kwargs):
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(attribution, "top_predictions", slow_top)
    times = attribution.PassTimes(single, four, 4)
    monkeypatch.setattr(attribution, "pass_seconds", lambda *args, **kwargs: times)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = "lenet_digits"
    at.session_state["attr.occ_window"] = 4  # explicit: the estimates below depend on them
    at.session_state["attr.occ_stride"] = 2  # 13 x 13 = 169 windows
    return at.run()


def test_slow_methods_wait_for_the_switch(monkeypatch):
    """A model whose forward pass takes 0.5 s per image (vgg16/vit_b_16 on a CPU) does not start
    minutes of Integrated Gradients and Occlusion on its own: the page estimates and asks."""
    at = _slow_model(monkeypatch, single=0.5, four=2.0)  # 0.5 s per image
    assert not at.exception and not errors(at)
    warning = " ".join(w.value for w in at.warning)
    # IG: 1 check + 3 x 50 images + 2 delta passes = 153 images; Occlusion: 2 + 169 = 171
    assert "Integrated Gradients about 76 s" in warning and "Occlusion about 86 s" in warning
    assert "Saliency about" not in warning
    skipped = " ".join(i.value for i in at.info)
    assert "Integrated Gradients: skipped" in skipped and "Occlusion: skipped" in skipped
    assert len(at.get("plotly_chart")) == 3  # top-5, saliency, Grad-CAM
    at.toggle(key="attr.run_slow").set_value(True).run()
    assert not at.exception and not errors(at)
    assert len(at.get("plotly_chart")) == 5
    assert "convergence delta" in _captions(at)


def test_a_fast_model_on_a_busy_machine_is_not_held_back(monkeypatch):
    """A first pass of 0.5 s, then warm passes that are mostly per-pass overhead (a small model
    on a loaded machine: 0.05 s for 1 image, 0.06 s for 4). IG batches its 256 steps in 8 passes
    of 32 and Occlusion its 784 windows in 49 passes of 16, so neither nears 20 s; one pass per
    step or window (3 x 256 x 0.05 = 38 s, 784 x 0.05 = 39 s) held both back needlessly."""
    from vizlib import attribution

    times = attribution.PassTimes(0.05, 0.06, 4)
    ig = attribution.estimate_seconds(
        "integrated_gradients", times, n_steps=256, internal_batch_size=32
    )
    occlusion = attribution.estimate_seconds("occlusion", times, n_windows=784)
    assert ig < 15 and occlusion < 15
    at = _slow_model(monkeypatch, single=0.05, four=0.06)
    at.slider(key="attr.ig_steps").set_value(256).run()
    at.slider(key="attr.occ_window").set_value(1).run()
    at.slider(key="attr.occ_stride").set_value(1).run()
    assert not at.exception and not errors(at)
    assert not at.warning and not at.get("toggle")[1:]  # only "Explain the predicted class"
    assert any("784 occluded copies" in c for c in _captions(at).split(" | "))
    assert len(at.get("plotly_chart")) == 5
    assert "convergence delta" in _captions(at)


def test_occlusion_stride_past_the_window_is_explained_not_raised(at):
    at.multiselect(key="attr.methods").set_value(["saliency", "occlusion"]).run()
    at.slider(key="attr.occ_window").set_value(4).run()
    at.slider(key="attr.occ_stride").set_value(28).run()
    assert not at.exception
    assert any("must not exceed the window" in e for e in errors(at))
    assert len(at.get("plotly_chart")) == 2  # top-5 and saliency still drawn
    at.slider(key="attr.occ_stride").set_value(4).run()
    assert not at.exception and not errors(at)
    assert len(at.get("plotly_chart")) == 3


def test_upload_offers_only_what_the_reader_accepts(at):
    import io

    import numpy as np
    from PIL import Image

    at.radio(key="attr.source").set_value("Upload an image").run()
    uploader = at.get("file_uploader")[0]
    assert sorted(uploader.allowed_type) == [".jpeg", ".jpg", ".png"]
    assert uploader.proto.max_upload_size_mb == 50  # the reader's 50 MiB, not the server's 600
    buf = io.BytesIO()
    Image.fromarray((np.arange(400).reshape(20, 20) % 256).astype(np.uint8)).save(buf, "PNG")
    uploader.upload("digit.png", buf.getvalue(), "image/png").run()
    assert not at.exception and not errors(at)
    assert len(at.get("plotly_chart")) == 5
    at.get("file_uploader")[0].upload("broken.png", b"\x89PNG not really", "image/png").run()
    assert not at.exception
    assert any("could not be read" in e for e in errors(at))


def test_vit_runs_and_explains_grad_cam_on_the_patch_embedding():
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "vit_digits"
    app.session_state["attr.methods"] = ["saliency", "gradcam"]
    app.run()
    assert not app.exception and not errors(app)
    assert len(app.get("plotly_chart")) == 3
    assert "patch embedding" in _captions(app)
    assert "layer patch_embed (8×8 upsampled)" in _captions(app)


def test_the_shared_model_is_left_as_found_even_when_passes_fail(monkeypatch):
    """Every page action on the cached model, with its gradient passes failing half-way (after
    Grad-CAM's and the layer table's hooks are on): errors at the methods, and afterwards no
    hook, no changed weight, buffer, mode or requires_grad on the model every session shares."""
    from torch import nn

    import ui
    from tests.pages.test_learned_filters import ONE_CHANNEL, one_channel_zoo

    one_channel_zoo(monkeypatch)
    shared, _, _ = ui.cached_model(ONE_CHANNEL, "cpu")
    before = {k: v.clone() for k, v in shared.state_dict().items()}

    def failing_head(x):
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError("head failed in a gradient pass")
        return nn.Linear.forward(shared.fc, x)

    monkeypatch.setattr(shared.fc, "forward", failing_head)
    pages = Path(PAGE).parent
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = ONE_CHANNEL
    at.run()
    assert not at.exception
    failed = [e for e in errors(at) if "head failed in a gradient pass" in e]
    assert [e.split(":")[0] for e in failed] == ["Saliency", "Integrated Gradients", "Grad-CAM"]
    assert len(at.get("plotly_chart")) == 2  # top-5 and Occlusion (no gradient)
    at.selectbox(key="attr.gc_layer").set_value("stem.0").run()
    assert not at.exception

    filters_page = AppTest.from_file(str(pages / "learned_filters.py"), default_timeout=120)
    filters_page.query_params["model"] = ONE_CHANNEL
    filters_page.run()
    filters_page.radio(key="filters.source").set_value("Sample image").run()
    filters_page.selectbox(key="filters.layer").set_value("layers.1.conv2").run()
    assert not filters_page.exception and not errors(filters_page)

    inspector = AppTest.from_file(str(pages / "model_inspector.py"), default_timeout=120)
    inspector.query_params["model"] = ONE_CHANNEL
    inspector.run()
    assert not inspector.exception
    assert any("head failed" in e for e in errors(inspector))

    hooks = [
        name
        for name, m in shared.named_modules()
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
    ]
    assert hooks == [], f"hooks left on {hooks}"
    assert not shared.training and not any(m.training for m in shared.modules())
    assert not any(p.requires_grad for p in shared.parameters())
    after = shared.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights or buffers changed"


def test_uploaded_weights_are_explained():
    """Weights whose head always says 7 (bias 50 on class 7): the page predicts and explains 7
    with the uploaded model, and every method runs on it."""
    from tests.pages.test_learned_filters import lenet_upload

    def always_seven(state):
        state["fc2.bias"][7] = 50.0

    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "upload"
    at = app.run()
    assert not at.exception and not errors(at)
    at.selectbox(key="attr.upload_arch").set_value("lenet_digits")
    uploader = next(u for u in at.get("file_uploader") if u.proto.id.endswith("upload_weights"))
    uploader.upload("seven.safetensors", lenet_upload(always_seven), "application/octet-stream")
    at.run()
    assert not at.exception and not errors(at)
    assert "Explaining class **7** (index 7)" in at.markdown[0].value
    assert len(at.get("plotly_chart")) == 5
    assert "attr.npz" in {d.key for d in at.get("download_button")}


def test_a_model_without_test_images_starts_on_a_sample_image(tmp_path, monkeypatch):
    """ImageNet models have no dataset on disk: the input picker offers (and starts on) the
    sample images instead of stopping at a message, also after switching from a digits model."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # random alexnet, no weights needed
    app = AppTest.from_file(PAGE, default_timeout=180)
    app.query_params["model"] = "lenet_digits"
    app.session_state["attr.methods"] = ["saliency"]
    at = app.run()
    assert at.radio(key="attr.source").value == "Dataset sample"
    at.selectbox(key="attr.model").set_value("alexnet").run()
    assert not at.exception and not errors(at)
    assert at.radio(key="attr.source").options == [
        "Image folder",
        "Sample image",
        "Upload an image",
    ]
    assert at.radio(key="attr.source").value == "Sample image"
    captions = _captions(at)
    # Not vizlib's "Unknown dataset 'imagenet'; choose from digits, ..." (no choice a visitor has)
    assert "The imagenet test images do not ship with the app" in captions
    assert "Unknown dataset" not in captions and "choose from" not in captions
    # what the sample image became for the model
    assert "Sample images are read as RGB (grey images repeated to three channels)" in captions
    assert "stretched to 224×224 pixels (the aspect ratio is not kept)" in captions
    assert len(at.get("plotly_chart")) == 2  # top-5 and saliency
    at.selectbox(key="attr.model").set_value("lenet_digits").run()
    assert not at.exception and not errors(at)
    assert "Dataset sample" in at.radio(key="attr.source").options


def test_an_image_from_a_folder_is_explained(tmp_path, monkeypatch):
    """An image folder's photo (an RGBA PNG: transparency on white) reaches lenet_digits as
    grey; the class explained is the model's own prediction on the file read by hand."""
    from tests.test_data_datasets import pixels_by_hand, write_image_folder
    from vizlib import zoo

    files = write_image_folder(tmp_path / "fruit")
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "lenet_digits"
    app.session_state["attr.methods"] = ["saliency"]
    at = app.run()
    at.radio(key="attr.source").set_value("Image folder").run()
    at.number_input(key="attr.folder_index").set_value(3).run()
    assert not at.exception and not errors(at)
    shown = [img.caption for im in at.get("image") for img in im.proto.imgs]
    assert shown == ["fruit image 3 of 9 (class bananas)"]
    assert "converted to grey" in _captions(at)
    assert "'bananas' is the name of this image's sub-folder, not one of the model's 10" in (
        _captions(at)
    )

    model, meta = zoo.load_model("lenet_digits")
    x = pixels_by_hand(files["bananas"][0], (28, 28), grey=True)[None]  # the RGBA one
    with torch.no_grad():
        predicted = int(model((x - meta["mean"][0]) / meta["std"][0]).argmax())
    assert f"Explaining class **{predicted}** (index {predicted})" in at.markdown[0].value
    assert len(at.get("plotly_chart")) == 2  # top-5 and saliency

    at.selectbox(key="attr.folder").set_value("Other image folder…").run()
    assert not at.exception and any("Type the path" in i.value for i in at.info)
    at.text_input(key="attr.folder_path").set_value(str(tmp_path / "missing")).run()
    assert not at.exception
    assert errors(at) == [f"{tmp_path / 'missing'} does not exist (no file or folder there)."]


def test_run_times_below_a_second_read_in_milliseconds(monkeypatch):
    """A 4 ms run reads "4 ms on cpu", not "0.00 s"; 2.5 s keeps seconds."""
    import streamlit as st

    from vizlib import attribution

    real = attribution.attribute

    def timed(*args, **kwargs):
        res = real(*args, **kwargs)
        res["seconds"] = 2.5 if res["method"] == "occlusion" else 0.004
        return res

    st.cache_data.clear()  # results cached by earlier tests would skip the patched call
    monkeypatch.setattr(attribution, "attribute", timed)
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "lenet_digits"
    app.run()
    captions = _captions(app)
    assert not app.exception
    assert captions.count("4 ms on cpu") == 3 and "2.50 s on cpu" in captions
    assert "0.00 s" not in captions
    st.cache_data.clear()


# The page's settings in the link. lenet_digits: conv1, conv2; 10 classes; 28×28 inputs; the
# digits test split (450 images) on disk. Every value differs from its default.
ATTR_LINK = {
    "input": "Sample image",
    "sample": "coins",
    "pred": "false",
    "target": "4",
    "methods": "occlusion,saliency",
    "steps": "16",
    "baseline": "blurred",
    "batch": "8",
    "relu": "true",
    "window": "6",
    "stride": "3",
    "layer": "conv1",
    "opacity": "0.35",
    "scale": "shared",
    "view": "signed",
}
DEFAULTS = {
    "input": "Dataset sample",
    "pred": True,
    "methods": ["saliency", "integrated_gradients", "gradcam", "occlusion"],
    "steps": 50,
    "baseline": "black",
    "batch": 32,
    "layer": "conv2",
    "relu": False,
    "window": 4,
    "stride": 2,
    "opacity": 0.6,
    "scale": "separate",
    "view": "absolute",
}


def _linked(query: dict, model: str = "lenet_digits") -> AppTest:
    return opened_with(PAGE, {"model": model, **query})


def _settings(at: AppTest) -> dict:
    """The widgets' values, by the link's names (the target class only where it is drawn)."""
    values = {
        "input": at.radio(key="attr.source").value,
        "pred": at.toggle(key="attr.use_pred").value,
        "methods": at.multiselect(key="attr.methods").value,
        "steps": at.slider(key="attr.ig_steps").value,
        "baseline": at.selectbox(key="attr.ig_baseline").value,
        "batch": at.select_slider(key="attr.ig_batch").value,
        "layer": at.selectbox(key="attr.gc_layer").value,
        "relu": at.checkbox(key="attr.gc_relu").value,
        "window": at.slider(key="attr.occ_window").value,
        "stride": at.slider(key="attr.occ_stride").value,
        "opacity": at.slider(key="attr.opacity").value,
        "scale": at.radio(key="attr.scale").value,
        "view": at.radio(key="attr.view").value,
    }
    if not values["pred"]:
        values["target"] = at.selectbox(key="attr.target").value
    return values


def _overlay_titles(at: AppTest) -> list[str]:
    return [fig["layout"]["title"]["text"] for _, fig in _overlay_tiles(at)[1]]


def test_a_link_opens_the_page_on_its_settings():
    at = _linked(ATTR_LINK)
    assert not errors(at) and not link_warnings(at)
    assert _settings(at) == {
        "input": "Sample image",
        "pred": False,
        "target": 4,
        "methods": ["occlusion", "saliency"],
        "steps": 16,
        "baseline": "blurred",
        "batch": 8,
        "layer": "conv1",
        "relu": True,
        "window": 6,
        "stride": 3,
        "opacity": 0.35,
        "scale": "shared",
        "view": "signed",
    }
    assert at.selectbox(key="attr.sample").value == "coins"
    shown = [img.caption for im in at.get("image") for img in im.proto.imgs]
    assert shown == ["sample image 'coins'"]
    assert "Explaining class **4** (index 4)" in at.markdown[0].value
    assert "64 occluded copies" in _captions(at)  # ((28 - 6) // 3 + 1) ** 2
    # what is drawn follows: the two methods in the link's order, one signed scale, the opacity
    assert _overlay_titles(at) == ["Occlusion", "Saliency"]
    heats = [fig["data"][1] for _, fig in _overlay_tiles(at)[1]]
    assert all(h["opacity"] == 0.35 and h["zmin"] == -h["zmax"] for h in heats)
    assert len({h["zmax"] for h in heats}) == 1
    assert [c.key for c in at.get("plotly_chart")].count("attr.colorbar") == 1
    assert dict(at.query_params) == {"model": "lenet_digits", **ATTR_LINK}


def test_a_link_holds_the_test_image_and_the_grad_cam_layer_that_are_computed():
    at = _linked({"index": "7", "methods": "gradcam", "layer": "conv1"})
    assert not errors(at) and not link_warnings(at)
    assert at.number_input(key="attr.index").value == 7
    shown = [img.caption for im in at.get("image") for img in im.proto.imgs]
    assert shown[0].startswith("digits test image 7 (true class")
    assert "layer conv1 (24×24 upsampled)" in _captions(at)


def _link_warning_cases() -> list:
    from vizlib.data import sample_image_names

    names = ", ".join(sample_image_names())
    methods = "saliency, integrated_gradients, gradcam, occlusion, guided_backprop"
    return [
        ("input", "Webcam", "expected Dataset sample, Image folder, Sample image, Upload an image"),
        ("index", "450", "expected a whole number from 0 to 449"),
        ("sample", "lena", f"expected one of {names}"),
        ("pred", "maybe", "expected true or false"),
        ("methods", "saliency,lime", f"no 'lime'; expected comma-separated choices of {methods}"),
        (
            "methods",
            "saliency,saliency",
            f"expected at least one of {methods}, comma-separated, each once",
        ),  # fmt: skip
        ("steps", "4", "expected a whole number from 8 to 256"),
        ("baseline", "white", "expected one of black, blurred, noise"),
        ("batch", "3", "expected 1, 2, 4, 8, 16, 32, 64, 128, 256"),
        ("layer", "fc1", "expected conv1, conv2"),
        ("relu", "yes", "expected true or false"),
        ("window", "29", "expected a whole number from 1 to 28"),  # the image's side
        ("stride", "0", "expected a whole number from 1 to 28"),
        ("opacity", "0.33", "expected a number from 0 to 1 in steps of 0.05"),
        ("scale", "log", "expected one of separate, shared"),
        ("view", "abs", "expected one of absolute, positive, negative, signed"),
    ]


@pytest.mark.parametrize(("key", "raw", "expected"), _link_warning_cases())
def test_a_bad_link_value_gives_a_warning_and_the_default(key, raw, expected):
    at = _linked({"steps": "30", key: raw})
    assert not errors(at)
    assert link_warnings(at) == [f"Ignored `{key}={raw}` from the link ({expected})."]
    assert _settings(at) == DEFAULTS | {"steps": 30 if key != "steps" else 50}
    assert at.number_input(key="attr.index").value == 0
    assert dict(at.query_params) == {"model": "lenet_digits"} | (
        {"steps": "30"} if key != "steps" else {}
    )


def test_a_bad_target_class_gives_a_warning_and_the_prediction():
    at = _linked({"pred": "false", "target": "10"})
    assert link_warnings(at) == [
        "Ignored `target=10` from the link (expected a whole number from 0 to 9)."
    ]
    assert "Explaining class **2** (index 2)" in at.markdown[0].value  # test image 0: a 2
    assert at.selectbox(key="attr.target").value == 2
    assert dict(at.query_params) == {"model": "lenet_digits", "pred": "false"}


def test_ranges_in_the_link_follow_the_model():
    """vit_digits takes 32×32 images and its one conv layer is patch_embed: a window of 30 and
    that layer are its settings, and lenet_digits (28×28; conv1, conv2) refuses both. Switched
    to lenet_digits in the session, they go back to lenet's defaults."""
    link = {"methods": "saliency,gradcam", "window": "30", "stride": "3", "layer": "patch_embed"}
    vit = _linked(link, model="vit_digits")
    assert not errors(vit) and not link_warnings(vit)
    assert (_settings(vit)["window"], _settings(vit)["layer"]) == (30, "patch_embed")
    lenet = _linked(link)
    assert sorted(link_warnings(lenet)) == [
        "Ignored `layer=patch_embed` from the link (expected conv1, conv2).",
        "Ignored `window=30` from the link (expected a whole number from 1 to 28).",
    ]
    assert (_settings(lenet)["window"], _settings(lenet)["layer"]) == (4, "conv2")
    vit.selectbox(key="attr.model").set_value("lenet_digits").run()
    assert not vit.exception and not errors(vit)
    assert (_settings(vit)["window"], _settings(vit)["layer"]) == (4, "conv2")
    assert _settings(vit)["stride"] == 3  # in range for both
    assert dict(vit.query_params) == {
        "model": "lenet_digits",
        "methods": "saliency,gradcam",
        "stride": "3",
    }


def test_changing_the_widgets_writes_the_link_and_the_link_reopens_them(at):
    assert dict(at.query_params) == {"model": "lenet_digits"}  # defaults stay out of the link
    at.number_input(key="attr.index").set_value(5)
    at.toggle(key="attr.use_pred").set_value(False).run()
    at.selectbox(key="attr.target").set_value(3)
    at.multiselect(key="attr.methods").set_value(["gradcam", "integrated_gradients"])
    at.slider(key="attr.ig_steps").set_value(20)
    at.selectbox(key="attr.ig_baseline").set_value("noise")
    at.select_slider(key="attr.ig_batch").set_value(64)
    at.selectbox(key="attr.gc_layer").set_value("conv1")
    at.checkbox(key="attr.gc_relu").check()
    at.slider(key="attr.occ_window").set_value(10)
    at.slider(key="attr.occ_stride").set_value(5).run()
    at.slider(key="attr.opacity").set_value(0.8)
    at.radio(key="attr.scale").set_value("shared")
    at.radio(key="attr.view").set_value("negative").run()
    assert not at.exception and not errors(at)
    assert dict(at.query_params) == {
        "model": "lenet_digits",
        "index": "5",
        "pred": "false",
        "target": "3",
        "methods": "gradcam,integrated_gradients",
        "steps": "20",
        "baseline": "noise",
        "batch": "64",
        "layer": "conv1",
        "relu": "true",
        "window": "10",
        "stride": "5",
        "opacity": "0.8",
        "scale": "shared",
        "view": "negative",
    }
    again = _linked({k: v for k, v in at.query_params.items() if k != "model"})
    assert not errors(again) and not link_warnings(again)
    assert _settings(again) == _settings(at)
    assert again.number_input(key="attr.index").value == 5
    assert again.markdown[0].value == at.markdown[0].value
    # settings survive reruns; back to the defaults, they leave the link
    at.toggle(key="attr.use_pred").set_value(True).run()
    assert "target" not in at.query_params and at.query_params["steps"] == "20"
    at.multiselect(key="attr.methods").set_value([]).run()
    assert at.query_params["methods"] == ""  # none: the empty choice travels too
    none = _linked({"methods": ""})
    assert not link_warnings(none) and none.multiselect(key="attr.methods").value == []
    assert any("at least one" in i.value for i in none.info)


def test_an_uploaded_image_is_not_in_the_link(at):
    import io

    import numpy as np
    from PIL import Image

    at.radio(key="attr.source").set_value("Upload an image").run()
    assert dict(at.query_params) == {"model": "lenet_digits", "input": "Upload an image"}
    buf = io.BytesIO()
    Image.fromarray((np.eye(40) * 255).astype(np.uint8)).save(buf, format="PNG")
    at.file_uploader(key="attr.upload").set_value(("diag.png", buf.getvalue(), "image/png")).run()
    at.slider(key="attr.ig_steps").set_value(12).run()
    assert not at.exception and not errors(at)
    assert dict(at.query_params) == {
        "model": "lenet_digits",
        "input": "Upload an image",
        "steps": "12",
    }
    # the link opens the empty uploader; the other settings wait for an image
    again = _linked({"input": "Upload an image", "steps": "12", "view": "bad"})
    assert any("Upload an image to explain it" in i.value for i in again.info)
    assert not link_warnings(again)
    assert dict(again.query_params) == {
        "model": "lenet_digits",
        "input": "Upload an image",
        "steps": "12",
        "view": "bad",
    }


def test_an_image_folder_in_the_link_but_never_a_typed_path(tmp_path, monkeypatch):
    import ui
    from tests.test_data_datasets import write_image_folder

    write_image_folder(tmp_path / "fruit")
    write_image_folder(tmp_path / "more")
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    folders = ui.image_folders()
    assert sorted(folders) == [f"imagefolder:{tmp_path / n}" for n in ("fruit", "more")]
    folder = folders[1]  # the first is the default, which the link leaves out
    link = {"input": "Image folder", "folder": folder, "folder_index": "3", "methods": "saliency"}
    at = _linked(link)
    assert not errors(at) and not link_warnings(at)
    shown = [img.caption for im in at.get("image") for img in im.proto.imgs]
    assert shown == [f"{Path(folder).name} image 3 of 9 (class bananas)"]
    assert dict(at.query_params) == {"model": "lenet_digits", **link}

    bad = _linked({**link, "folder_index": "9"})
    assert link_warnings(bad) == [
        "Ignored `folder_index=9` from the link (expected a whole number from 0 to 8)."
    ]
    assert bad.number_input(key="attr.folder_index").value == 0
    stale = _linked({**link, "folder": "imagefolder:/nowhere"})
    assert link_warnings(stale) == [
        f"Ignored `folder=imagefolder:/nowhere` from the link (expected {', '.join(folders)}, "
        "Other image folder…)."
    ]

    at.selectbox(key="attr.folder").set_value("Other image folder…").run()
    at.text_input(key="attr.folder_path").set_value(str(tmp_path / "fruit")).run()
    assert not at.exception and not errors(at)
    assert str(tmp_path) not in str(dict(at.query_params))  # the typed path stays here
    assert dict(at.query_params) == {
        "model": "lenet_digits",
        "input": "Image folder",
        "folder": "Other image folder…",
        "methods": "saliency",
    }
    at.radio(key="attr.source").set_value("Sample image").run()
    assert dict(at.query_params) == {
        "model": "lenet_digits",
        "input": "Sample image",
        "methods": "saliency",
    }


def test_a_folder_in_a_link_is_refused_where_no_folder_is_offered(monkeypatch, tmp_path):
    """With typed paths switched off and no image folder under VIZLIB_DATA, a link's folder
    names nothing this server offers: a warning, and it leaves the link."""
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))  # empty
    monkeypatch.setenv(ui.TYPED_FOLDERS_ENV, "0")
    at = _linked({"input": "Image folder", "folder": "/etc", "folder_index": "3"})
    assert not errors(at)
    assert link_warnings(at)[-1] == (
        "Ignored `folder=/etc` from the link (no image folder is offered on this server)."
    )
    assert "folder" not in at.query_params and "folder_index" not in at.query_params


@pytest.fixture
def deferred(monkeypatch) -> dict:
    """The callables of every deferred download button of the runs that follow, by file name:
    what Streamlit calls, on another thread, when the button is clicked."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    seen: dict = {}
    add = MediaFileManager.add_deferred

    def recording_add(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        seen[file_name] = data_callable
        return add(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", recording_add)
    return seen


def test_downloads_hold_the_signed_heatmaps_whatever_the_view(downloads, deferred):
    """The view shows |a| by default; each CSV says it is signed and holds the same signed map
    as the NPZ, which also holds the image shown. They are built when their button is clicked:
    built on every run (and every change of opacity, scale or view), the four CSVs and the NPZ
    of a 224 x 224 model cost about 0.45 s of a 2-core CPU."""
    import io

    import numpy as np
    import pandas as pd

    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "lenet_digits"
    app.run()
    assert app.radio(key="attr.view").value == "absolute"
    app.slider(key="attr.opacity").set_value(0.3).run()
    assert not app.exception and not downloads  # nothing built on either run
    buttons = {b.key: b for b in app.get("download_button")}
    assert all(b.proto.deferred_file_id and not b.proto.url for b in buttons.values())
    archive = np.load(io.BytesIO(deferred["lenet_digits_attributions_class2.npz"]()))
    for method in ("saliency", "integrated_gradients", "gradcam", "occlusion"):
        assert buttons[f"attr.csv.{method}"].proto.label == "Heatmap (CSV, signed)"
        table = pd.read_csv(io.BytesIO(deferred[f"lenet_digits_{method}_class2.csv"]()))
        assert table.shape == archive[method].shape == (28, 28)
        np.testing.assert_allclose(table.to_numpy(), archive[method], atol=1e-6)
    assert (archive["saliency"] < 0).any() and (archive["saliency"] > 0).any()
    assert archive["image"].shape == (28, 28, 3)


def test_an_input_that_scores_as_the_baseline_has_nothing_to_attribute(at):
    """A black upload with the black baseline: f(x) − f(baseline) is 0, and the caption said
    'convergence delta 0 (0.0% of f(x) − f(baseline) = 0)'."""
    import io

    import numpy as np
    from PIL import Image

    at.radio(key="attr.source").set_value("Upload an image").run()
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
    at.file_uploader(key="attr.upload").set_value(("black.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not errors(at)
    assert at.selectbox(key="attr.ig_baseline").value == "black"
    assert "% of f(x)" not in _captions(at)
    assert (
        "convergence delta 0; f(x) − f(baseline) = 0: the input scores as the baseline does, "
        "so there is nothing to attribute"
    ) in _captions(at)
    at.selectbox(key="attr.ig_baseline").set_value("noise").run()
    assert "% of f(x) − f(baseline) = " in _captions(at)
