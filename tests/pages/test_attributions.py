"""AppTest for the Attributions page."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "attributions.py")


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


@pytest.fixture
def at():
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "lenet_digits"
    return app.run()


def _captions(at: AppTest) -> str:
    return " | ".join(c.value for c in at.caption)


def test_default_explains_the_prediction_with_four_methods(at):
    assert not at.exception and not _errors(at)
    assert "Explaining class" in at.markdown[0].value
    # top-5 chart plus one overlay per method
    assert len(at.get("plotly_chart")) == 5
    assert "convergence delta" in _captions(at)
    assert "layer conv2" in _captions(at)


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
    assert not at.exception and not _errors(at)
    assert "layer conv1 (24×24 upsampled)" in _captions(at)
    at.multiselect(key="attr.methods").set_value(["saliency"]).run()
    assert len(at.get("plotly_chart")) == 2
    at.multiselect(key="attr.methods").set_value([]).run()
    assert any("at least one" in i.value for i in at.info)
    assert not at.exception


def test_sample_image_input(at):
    at.radio(key="attr.source").set_value("Sample image").run()
    at.selectbox(key="attr.sample").set_value("camera").run()
    assert not at.exception and not _errors(at)
    assert len(at.get("plotly_chart")) == 5


def test_uploads_good_and_corrupt(at):
    import io

    import numpy as np
    from PIL import Image

    at.radio(key="attr.source").set_value("Upload an image").run()
    assert any("Upload an image" in i.value for i in at.info)
    buf = io.BytesIO()
    Image.fromarray((np.eye(40) * 255).astype(np.uint8)).save(buf, format="PNG")
    at.file_uploader(key="attr.upload").set_value(("diag.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not _errors(at)
    assert len(at.get("plotly_chart")) == 5
    at.file_uploader(key="attr.upload").set_value(("bad.png", b"not a png", "image/png")).run()
    assert not at.exception
    assert "Could not use 'bad.png'" in _errors(at)[0]


def test_slow_methods_wait_for_the_switch(monkeypatch):
    """A model whose forward pass takes 0.5 s (vgg16/vit_b_16 on a CPU) does not start minutes
    of Integrated Gradients and Occlusion on its own: the page estimates and asks."""
    import time

    from vizlib import attribution

    real = attribution.top_predictions

    def slow_top(*args, **kwargs):
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(attribution, "top_predictions", slow_top)
    monkeypatch.setattr(attribution, "forward_seconds", lambda *args, **kwargs: 0.5)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = "lenet_digits"
    at.run()
    assert not at.exception and not _errors(at)
    warning = " ".join(w.value for w in at.warning)
    assert "Integrated Gradients about" in warning and "Occlusion about" in warning
    assert "Saliency about" not in warning
    skipped = " ".join(i.value for i in at.info)
    assert "Integrated Gradients: skipped" in skipped and "Occlusion: skipped" in skipped
    assert len(at.get("plotly_chart")) == 3  # top-5, saliency, Grad-CAM
    at.toggle(key="attr.run_slow").set_value(True).run()
    assert not at.exception and not _errors(at)
    assert len(at.get("plotly_chart")) == 5
    assert "convergence delta" in _captions(at)


def test_occlusion_stride_past_the_window_is_explained_not_raised(at):
    at.multiselect(key="attr.methods").set_value(["saliency", "occlusion"]).run()
    at.slider(key="attr.occ_window").set_value(4).run()
    at.slider(key="attr.occ_stride").set_value(28).run()
    assert not at.exception
    assert any("must not exceed the window" in e for e in _errors(at))
    assert len(at.get("plotly_chart")) == 2  # top-5 and saliency still drawn
    at.slider(key="attr.occ_stride").set_value(4).run()
    assert not at.exception and not _errors(at)
    assert len(at.get("plotly_chart")) == 3


def test_upload_offers_only_what_the_reader_accepts(at):
    import io

    import numpy as np
    from PIL import Image

    at.radio(key="attr.source").set_value("Upload an image").run()
    uploader = at.get("file_uploader")[0]
    assert sorted(uploader.allowed_type) == [".jpeg", ".jpg", ".png"]
    buf = io.BytesIO()
    Image.fromarray((np.arange(400).reshape(20, 20) % 256).astype(np.uint8)).save(buf, "PNG")
    uploader.upload("digit.png", buf.getvalue(), "image/png").run()
    assert not at.exception and not _errors(at)
    assert len(at.get("plotly_chart")) == 5
    at.get("file_uploader")[0].upload("broken.png", b"\x89PNG not really", "image/png").run()
    assert not at.exception
    assert any("could not be read" in e for e in _errors(at))


def test_vit_runs_and_explains_grad_cam_on_the_patch_embedding():
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "vit_digits"
    app.session_state["attr.methods"] = ["saliency", "gradcam"]
    app.run()
    assert not app.exception and not _errors(app)
    assert len(app.get("plotly_chart")) == 3
    assert "patch embedding" in _captions(app)
    assert "layer patch_embed (8×8 upsampled)" in _captions(app)
