"""AppTest of the embeddings page: compute a small map, metrics, stop, uploads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.pages._shared import errors, link_warnings, opened_with

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "embeddings.py")


def _app() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def test_compute_small_tsne_and_pca():
    at = _app()
    assert any("Compute" in i.value for i in at.info)
    at.number_input(key="tsne.points").set_value(150)
    at.number_input(key="tsne.iters").set_value(100)
    at.button(key="tsne.run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert list(table["layer"]) == at.multiselect(key="tsne.layers").value
    penultimate = table.iloc[-1]
    assert penultimate["linear probe"] > 0.8
    assert 0.5 < penultimate["trustworthiness"] <= 1.0

    at.radio(key="tsne.method").set_value("PCA")
    at.button(key="tsne.run").click().run()
    assert not at.exception and not at.error
    assert len(at.dataframe) == 1


def test_stop_button_and_bad_uploads():
    at = _app()
    at.button(key="tsne.stop").click().run()
    assert any("Stopped" in w.value for w in at.warning)

    at.radio(key="tsne.source").set_value("Uploaded features").run()
    assert not at.exception
    at.radio(key="tsne.source").set_value("Uploaded coordinates").run()
    assert not at.exception


class _Upload:
    """The parts of Streamlit's UploadedFile that read_table uses."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self._data, self.size = name, data, len(data)

    def getvalue(self) -> bytes:
        return self._data


def test_read_table_validates_uploads():
    import io

    import numpy as np

    from ui.embeddings import read_table

    good = np.arange(12.0).reshape(4, 3)
    buf = io.BytesIO()
    np.save(buf, good)
    np.testing.assert_array_equal(read_table(_Upload("f.npy", buf.getvalue()), "Features"), good)
    csv = b"a,b,c\n" + b"\n".join(b"%d,%d,%d" % tuple(r) for r in good.astype(int))
    np.testing.assert_array_equal(read_table(_Upload("f.csv", csv), "Features"), good)
    # errors are shown with st.error (a no-op outside a running app) and give None
    assert read_table(_Upload("f.csv", b"1,2\n3,nan\n"), "Features") is None
    assert read_table(_Upload("f.csv", b"x,y\nfoo,bar\n"), "Features") is None
    assert read_table(_Upload("f.npy", b"not a numpy file"), "Features") is None
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert read_table(_Upload("f.npy", pickled.getvalue()), "Features") is None
    assert read_table(_Upload("f.npy", b""), "Features") is None  # EOFError inside numpy
    assert read_table(_Upload("f.npy", buf.getvalue()[:60]), "Features") is None  # truncated


def test_uploaded_coordinates_with_no_rows_or_text_labels():
    at = _app()
    at.radio(key="tsne.source").set_value("Uploaded coordinates").run()
    uploader = at.get("file_uploader")[0]
    uploader.upload("coords.csv", b"layer,index,x,y,label\n", "text/csv").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["The CSV has a header but no rows."]

    csv = b"layer,index,x,y,label\nA,0,1,2,cat\nA,1,2,3,dog\nB,0,0,1,cat\nB,1,1,0,dog\n"
    at.get("file_uploader")[0].upload("coords.csv", csv, "text/csv").run()
    assert not at.exception and not at.error
    assert any("without labels" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 1


def test_slow_extraction_is_estimated_at_the_points_control():
    at = _app()
    at.selectbox(key="tsne.model").set_value("alexnet")
    at.number_input(key="tsne.points").set_value(70000).run()
    assert not at.exception and not at.error
    assert any("Extracting features of 70,000 points takes about" in w.value for w in at.warning)
    at.number_input(key="tsne.points").set_value(1000)
    at.selectbox(key="tsne.model").set_value("lenet_digits").run()
    assert not any("Extracting features" in w.value for w in at.warning)


@pytest.mark.parametrize(
    ("pass_seconds", "expected"),
    [
        # 128 ms a pass + 1 ms an image: 3 ms an image in passes of 64 (was 65 ms, at 2 alone)
        ({1: 0.129, 2: 0.130, 16: 0.144}, "210 s"),
        # a busy machine slowed the pass of 2: its cost per image at 16 is used, unextrapolated
        ({1: 0.129, 2: 0.200, 16: 0.160}, "700 s"),
        # a pass of 16 would take 25 s: timed at 8 (12.8 s a pass + 0.1 s an image)
        ({1: 12.9, 2: 13.0, 8: 13.6}, "21,000 s"),
    ],
)
def test_the_estimate_is_per_image_in_the_extractions_batches(pass_seconds, expected, monkeypatch):
    """Extraction runs passes of 64 images, far cheaper per image on a CPU than the pass of 2 the
    estimate timed alone: 'about 44 s for 1,000 points' took 10-13 s for 500. A model on a fake
    clock (each pass advances it by its cost) shows the estimate is the cost per image at 64,
    fitted to passes of 2 and 16 (8 for a slow model)."""
    import time

    import streamlit as st

    from vizlib.models.lenet import LeNetLike

    clock, sizes = [0.0], []
    real = LeNetLike.forward

    def costly_forward(self, x):
        sizes.append(len(x))
        clock[0] += pass_seconds[len(x)]
        return real(self, x)

    at = _app()
    at.number_input(key="tsne.points").set_value(70000)
    st.cache_data.clear()  # lenet_digits is timed again, on the fake clock (and after the test)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(LeNetLike, "forward", costly_forward)
            patch.setattr(time, "perf_counter", lambda: clock[0])
            at.run()
    finally:
        st.cache_data.clear()
    assert not at.exception and not at.error
    (warning,) = [w.value for w in at.warning if "Extracting features" in w.value]
    assert warning.startswith(f"Extracting features of 70,000 points takes about {expected} on ")
    assert set(sizes) == set(pass_seconds)  # a warm-up of 1, then passes of 2 and of 16 (or 8)


def test_a_large_input_is_estimated_in_its_own_passes_of_16_with_their_preparation(monkeypatch):
    """resnet18 (224 x 224) on a CPU is extracted 16 images a pass, not 64, which cost more per
    image (6.2 s against 5.6 s for 200 digits on this 2-core CPU), and the estimate, fitted at
    2 and 16 and extrapolated to 64, ran 10-20% low. On a fake clock a pass costs 50 ms + 100 ms
    an image and preparing a batch (resizing the 8 x 8 digits to 224 x 224, normalising) 2 ms an
    image: 0.1 + 0.05 / 16 + 0.002 s an image, 105 s for 1,000 points (the old arithmetic,
    0.1 + 0.05 / 64 and no preparation: 101 s)."""
    import time

    import streamlit as st
    from torchvision.models.resnet import ResNet

    import vizlib.data

    clock, sizes = [0.0], []
    real_forward, real_prepare = ResNet.forward, vizlib.data.to_model_input

    def costly_forward(self, x):
        sizes.append(len(x))
        clock[0] += 0.05 + 0.1 * len(x)
        return real_forward(self, x)

    def costly_prepare(images, name, meta):
        clock[0] += 0.002 * len(images)
        return real_prepare(images, name, meta)

    at = _app()
    at.selectbox(key="tsne.model").set_value("resnet18")
    at.number_input(key="tsne.points").set_value(1000)
    st.cache_data.clear()  # timed again, on the fake clock (and after the test)
    monkeypatch.setattr(ResNet, "forward", costly_forward)
    monkeypatch.setattr(vizlib.data, "to_model_input", costly_prepare)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(time, "perf_counter", lambda: clock[0])
            at.run()
    finally:
        st.cache_data.clear()
    assert not at.exception and not at.error
    (warning,) = [w.value for w in at.warning if "Extracting features" in w.value]
    assert warning.startswith("Extracting features of 1,000 points takes about 105 s on cpu")
    assert set(sizes) == {1, 2, 16}  # a warm-up, then passes of 2 and 16
    # and the extraction runs those passes of 16 (50 points: three of 16, one of 2)
    sizes.clear()
    at.number_input(key="tsne.points").set_value(50)
    at.radio(key="tsne.method").set_value("PCA")
    at.button(key="tsne.run").click().run()
    assert not at.exception and not at.error
    assert sizes[-4:] == [16, 16, 16, 2] and max(sizes) == 16


def test_bad_link_values_are_reported():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = "nonexistent"
    at.query_params["method"] = "LDA"
    at.run()
    assert not at.exception and not at.error
    warnings = " ".join(w.value for w in at.warning)
    assert "Ignored `model=nonexistent`" in warnings and "Ignored `method=LDA`" in warnings
    assert at.radio(key="tsne.method").value == "t-SNE"


def test_time_left_extrapolates_the_rate():
    import ui

    assert ui.time_left(10.0, 1, 4) == ", about 30 s left"
    assert ui.time_left(10.0, 0.5, 10) == ", about 3.2 min left"
    assert ui.time_left(0.5, 1, 4) == ""  # too early for a rate
    assert ui.time_left(10.0, 4, 4) == ""  # done


def test_a_dataset_on_disk_feeds_a_model_with_a_bigger_input(tmp_path, monkeypatch):
    # MNIST's 28x28 digits into vit_digits (32x32): the subset is kept at 28x28 and each batch
    # is prepared for the model; the display images are the digits themselves.
    import numpy as np
    import torch

    from tests.conftest import write_fake_mnist
    from vizlib import zoo

    arrays = write_fake_mnist(tmp_path, n_train=40, n_test=20)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    at = _app()
    at.selectbox(key="tsne.model").set_value("vit_digits").run()
    assert "mnist" in at.selectbox(key="tsne.dataset").options
    at.selectbox(key="tsne.dataset").set_value("mnist")
    at.number_input(key="tsne.points").set_value(100)
    at.radio(key="tsne.method").set_value("PCA")
    at.button(key="tsne.run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("has 60 images" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert table["features"].iloc[0] == 32 * 32  # the input layer: the model's own input size
    feats, labels, _, shown = next(iter(at.session_state["tsne.features"].values()))
    assert len(labels) == 60 and shown.shape == (60, 28, 28)
    # 100 points of 60: all of them, train then test; shown as the files' own bytes
    assert shown.dtype == np.uint8
    np.testing.assert_array_equal(shown, np.concatenate([arrays["train"][0], arrays["test"][0]]))
    np.testing.assert_array_equal(labels, np.concatenate([arrays["train"][1], arrays["test"][1]]))
    # the input layer is the model's input: the bytes normalised for vit_digits, resized 28 -> 32
    pixels = torch.from_numpy(shown).float()[:, None] / 255.0  # (60, 1, 28, 28) in [0, 1]
    resized = torch.nn.functional.interpolate(
        pixels, size=(32, 32), mode="bilinear", antialias=True, align_corners=False
    )
    meta = zoo.checkpoint_metadata("vit_digits")
    expected = ((resized - meta["mean"][0]) / meta["std"][0]).reshape(60, -1).numpy()
    np.testing.assert_allclose(feats["input"], expected, atol=1e-5)


def test_an_image_folder_on_disk_is_mapped_with_its_class_names(tmp_path, monkeypatch):
    """A folder of class sub-folders under VIZLIB_DATA is offered by name; its photos reach a
    1-channel digits model as grey (ITU-R 601 luma), and the legend names the sub-folders."""
    import numpy as np

    from tests.test_data_datasets import FRUIT, pixels_by_hand, write_image_folder
    from vizlib import zoo

    files = write_image_folder(tmp_path / "fruit", n_per_class=8)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    at = _app()
    name = f"imagefolder:{tmp_path / 'fruit'}"
    label = f"fruit — image folder, {tmp_path / 'fruit'}"  # the option as the picker shows it
    assert label in at.selectbox(key="tsne.dataset").options
    at.selectbox(key="tsne.dataset").set_value(name).run()
    assert any("converted to grey (ITU-R 601 luma)" in c.value for c in at.caption)
    at.number_input(key="tsne.points").set_value(100)
    at.radio(key="tsne.method").set_value("PCA")
    at.button(key="tsne.run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("has 24 images" in i.value for i in at.info)
    payload = at.session_state["tsne.payload"][1]
    assert [c["name"] for c in payload["classes"]] == list(FRUIT)
    feats, labels, class_names, shown = next(iter(at.session_state["tsne.features"].values()))
    assert class_names == list(FRUIT) and labels.tolist() == [0] * 8 + [1] * 8 + [2] * 8
    assert shown.shape == (24, 28, 28, 3) and shown.dtype == np.uint8
    assert len(at.dataframe[0].value) == len(feats)  # one row of metrics per layer
    # the input layer, independently: the first apple read by PIL, resized, grey, normalised
    meta = zoo.checkpoint_metadata("lenet_digits")
    grey = pixels_by_hand(files["apples"][0], (28, 28), grey=True)
    expected = ((grey - meta["mean"][0]) / meta["std"][0]).reshape(-1).numpy()
    np.testing.assert_allclose(feats["input"][0], expected, atol=1e-4)


def test_a_typed_image_folder_path_is_checked(tmp_path):
    from tests.test_data_datasets import FRUIT, write_image_folder

    at = _app()
    at.selectbox(key="tsne.dataset").set_value("Other image folder…").run()
    assert not at.exception
    assert any("Type the path" in i.value for i in at.info)
    at.text_input(key="tsne.folder_path").set_value(str(tmp_path / "nowhere")).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        f"{tmp_path / 'nowhere'} does not exist (no file or folder there)."
    ]
    at.button(key="tsne.run").click().run()  # Compute with no usable folder: said, not raised
    assert not at.exception
    assert any("Give the path of an image folder" in e.value for e in at.error)

    write_image_folder(tmp_path / "fruit", n_per_class=6)
    (tmp_path / "fruit" / "dates").mkdir()
    at.text_input(key="tsne.folder_path").set_value(str(tmp_path / "fruit")).run()
    assert not at.exception
    assert any("'dates'" in e.value and "no image files" in e.value for e in at.error)
    (tmp_path / "fruit" / "dates").rmdir()
    at.text_input(key="tsne.folder_path").set_value(f" {tmp_path / 'fruit'} ").run()
    assert not at.exception and not at.error
    assert any(c.value == f"3 classes: {', '.join(FRUIT)}" for c in at.caption)
    at.radio(key="tsne.method").set_value("PCA")
    at.button(key="tsne.run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [c["name"] for c in at.session_state["tsne.payload"][1]["classes"]] == list(FRUIT)


def test_tsne_reduces_to_50_principal_components_unless_unticked(monkeypatch):
    from vizlib import embedding

    seen = []
    real = embedding.tsne
    monkeypatch.setattr(
        embedding, "tsne", lambda X, **kw: seen.append((X.shape, kw["pca_dims"])) or real(X, **kw)
    )
    at = _app()
    at.number_input(key="tsne.points").set_value(120)
    at.number_input(key="tsne.iters").set_value(60)
    at.button(key="tsne.run").click().run()
    assert not at.exception and not at.error
    assert seen and all(dims == 50 for _shape, dims in seen)
    seen.clear()
    at.checkbox(key="tsne.pca_first").uncheck()
    at.button(key="tsne.run").click().run()
    assert not at.exception and not at.error
    assert seen and all(dims is None for _shape, dims in seen)


def test_no_typed_folder_path_when_switched_off(monkeypatch):
    monkeypatch.setenv("VIZLIB_TYPED_FOLDERS", "0")
    at = _app()
    assert "Other image folder…" not in at.selectbox(key="tsne.dataset").options
    assert "digits" in at.selectbox(key="tsne.dataset").options


def test_few_points_lower_the_perplexity_once_and_are_all_scored():
    at = _app()
    at.number_input(key="tsne.points").set_value(50)
    at.number_input(key="tsne.iters").set_value(60)
    at.button(key="tsne.run").click().run()
    assert not at.exception and not at.error
    lowered = [w.value for w in at.warning if "Perplexity lowered" in w.value]
    assert lowered == ["Perplexity lowered to 16.0 for 50 points: t-SNE uses 3 x perplexity "
                       "neighbours of each point, so it must stay below (points - 2) / 3."]  # fmt: skip
    assert len(at.multiselect(key="tsne.layers").value) > 1  # one warning for several layers
    assert any("trustworthiness (k = 10) on all points" in c.value for c in at.caption)


def test_fractional_labels_are_refused_not_truncated():
    """Labels 0.5, 1.5, 2.5 were cast to int (0, 1, 2) and drawn as classes without a word."""
    import io

    import numpy as np

    at = _app()
    at.radio(key="tsne.source").set_value("Uploaded features").run()
    features = io.BytesIO()
    np.save(features, np.random.default_rng(0).normal(size=(60, 5)))
    at.file_uploader(key="tsne.feat").set_value(("f.npy", features.getvalue(), "")).run()
    labels = np.arange(60) % 3 + 0.5
    text = "\n".join(f"{v}" for v in labels).encode()
    at.file_uploader(key="tsne.lab").set_value(("labels.csv", text, "text/csv")).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Labels: need whole numbers (class indices), got 0.5 in row 0; the points are drawn "
        "without labels."
    ]
    whole = "\n".join(f"{v:.0f}" for v in labels - 0.5).encode()  # 0, 1, 2 as "0", "1", "2"
    at.file_uploader(key="tsne.lab").set_value(("labels.csv", whole, "text/csv")).run()
    assert not at.exception and not at.error


def _lenet_safetensors() -> bytes:
    """The shipped lenet_digits weights, as vizlib.zoo.load_model gives them, in .safetensors."""
    from safetensors.torch import save

    from vizlib import zoo

    model, _ = zoo.load_model("lenet_digits")
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


def _upload_lenet(at: AppTest, name: str, data: bytes) -> None:
    at.selectbox(key="tsne.model").set_value("Upload weights…").run()
    assert not at.exception and not at.error
    at.selectbox(key="tsne.upload_arch").set_value("lenet_digits")
    at.file_uploader(key="tsne.upload_weights").set_value(
        (name, data, "application/octet-stream")
    ).run()
    assert not at.exception, at.exception


def _pca_result(at: AppTest) -> dict:
    """Compute a PCA map of 200 points; return the page's stored result."""
    at.number_input(key="tsne.points").set_value(200)
    at.radio(key="tsne.method").set_value("PCA")
    at.button(key="tsne.run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    (result,) = at.session_state["tsne.results"].values()
    return result


def test_uploaded_weights_map_as_the_same_zoo_model(downloads):
    """The shipped lenet_digits weights uploaded: the same layers, features, PCA coordinates and
    scores as lenet_digits from the zoo; the download is named after the upload."""
    import io

    import numpy as np
    import pandas as pd

    at = _app()
    assert at.selectbox(key="tsne.model").value == "lenet_digits"
    zoo_layers = at.multiselect(key="tsne.layers").options
    zoo_result = _pca_result(at)
    zoo_scores = at.dataframe[0].value
    assert set(downloads) == {"embedding_coordinates_lenet_digits.csv"}

    at.selectbox(key="tsne.model").set_value("Upload weights…").run()
    assert at.query_params["model"] == "upload"
    assert any("your own model's layers" in i.value for i in at.info)
    _upload_lenet(at, "mine.safetensors", _lenet_safetensors())
    assert not at.error, [e.value for e in at.error]
    assert at.multiselect(key="tsne.layers").options == zoo_layers
    result = _pca_result(at)
    assert list(result["maps"]) == list(zoo_result["maps"])
    for name, coords in zoo_result["maps"].items():
        np.testing.assert_allclose(result["maps"][name], coords, atol=1e-5)
    np.testing.assert_array_equal(result["labels"], zoo_result["labels"])
    pd.testing.assert_frame_equal(at.dataframe[0].value, zoo_scores)
    # the features came from the uploaded model, keyed on its file's SHA-256
    (key,) = at.session_state["tsne.features"]
    assert key[0].key.startswith("upload:") and key[0].architecture == "lenet_digits"

    table = pd.read_csv(io.BytesIO(downloads["embedding_coordinates_upload_lenet_digits.csv"]))
    for name, coords in result["maps"].items():
        rows = table[table["layer"] == name]
        np.testing.assert_allclose(rows[["x", "y"]].to_numpy(), coords, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(rows["label"], result["labels"])


def test_a_result_keeps_its_models_name_until_computed_again(downloads):
    at = _app()
    _pca_result(at)
    _upload_lenet(at, "mine.safetensors", _lenet_safetensors())
    assert any("press Compute to apply" in i.value for i in at.info)
    downloads.clear()
    at.run()
    assert set(downloads) == {"embedding_coordinates_lenet_digits.csv"}  # still the zoo's map


def test_the_estimate_times_the_uploaded_model(monkeypatch):
    """seconds_per_image times the uploaded model itself, once per file (keyed on its digest)."""
    import time

    from safetensors.torch import load, save

    from vizlib.models.lenet import LeNetLike

    state = load(_lenet_safetensors())
    state["conv1.bias"][0] += 1e-3  # a file of its own: no estimate of it is cached yet
    data = save(state)
    timed: list[int] = []
    real = LeNetLike.forward

    def slow_forward(self, x):
        timed.append(id(self))
        time.sleep(0.005 * len(x))  # 5 ms per image: 70,000 points take about 350 s
        return real(self, x)

    monkeypatch.setattr(LeNetLike, "forward", slow_forward)
    at = _app()
    at.number_input(key="tsne.points").set_value(70000).run()
    timed.clear()
    _upload_lenet(at, "slow.safetensors", data)
    assert not at.error, [e.value for e in at.error]
    warnings = [w.value for w in at.warning if "Extracting features" in w.value]
    assert len(warnings) == 1 and "70,000 points" in warnings[0]
    assert "with upload (lenet_digits)" in warnings[0]
    # one model: scored on the digits test split when loaded, then warm-up and 3 timed passes
    assert len(set(timed)) == 1 and len(timed) >= 4
    import ui

    zoo_model = ui.cached_model("lenet_digits", str(ui.current_device()))[0]
    assert timed[0] != id(zoo_model)
    timed.clear()
    at.run()
    assert not timed  # the estimate is cached under the file's digest
    assert any("with upload (lenet_digits)" in w.value for w in at.warning)


def test_a_corrupt_upload_is_refused_and_a_link_opens_the_picker():
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "upload"
    at = app.run()
    assert not at.exception and not at.error
    assert not at.warning, [w.value for w in at.warning]  # "upload" is no unknown model
    assert at.selectbox(key="tsne.model").value == "Upload weights…"
    assert any("your own model's layers" in i.value for i in at.info)

    data = _lenet_safetensors()
    at.number_input(key="tsne.points").set_value(300)
    at.selectbox(key="tsne.upload_arch").set_value("lenet_digits")
    at.file_uploader(key="tsne.upload_weights").set_value(
        ("broken.safetensors", data[: len(data) // 2], "application/octet-stream")
    ).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Could not use 'broken.safetensors': ")
    # the controls above keep their values; nothing needing a model is drawn
    assert at.number_input(key="tsne.points").value == 300
    assert not at.get("download_button") and not at.get("multiselect")
    # a good file then works on the same page
    at.file_uploader(key="tsne.upload_weights").set_value(
        ("good.safetensors", data, "application/octet-stream")
    ).run()
    assert not at.exception and not at.error
    assert at.multiselect(key="tsne.layers").options


# ----------------------------------------------------------------------------- the link
SOURCES = ("Model layers", "Uploaded features", "Uploaded coordinates")
METHODS = ["t-SNE", "PCA", *(["UMAP"] if importlib.util.find_spec("umap") else [])]
LENET = "input, relu1, relu2, relu3"  # lenet_digits' layers, as the warnings list them
# every shareable setting away from its default, for resnet_digits on MNIST (on disk in the test)
LINK = {
    "model": "resnet_digits",
    "dataset": "mnist",
    "points": "300",
    "layers": "stem,flatten",
    "method": "PCA",
    "perplexity": "12.5",
    "lr_auto": "false",
    "lr": "500",
    "iters": "250",
    "exaggeration": "4",
    "seed": "7",
    "pca": "false",
}
DEFAULTS = {
    "source": "Model layers",
    "dataset": "digits",
    "points": 1000,
    "layers": ["input", "relu2", "relu3"],  # lenet_digits
    "method": "t-SNE",
    "perplexity": 30.0,
    "lr_auto": True,
    "lr": 200.0,
    "iters": 1000,
    "exaggeration": 12.0,
    "seed": 0,
    "pca": True,
}


def _linked(query: dict) -> AppTest:
    return opened_with(PAGE, query)


def _settings(at: AppTest) -> dict:
    """The page's setting widgets, by link key (those of the model's layers where drawn)."""
    settings = {"source": at.radio(key="tsne.source").value}
    if settings["source"] == "Model layers":
        settings["dataset"] = at.selectbox(key="tsne.dataset").value
        settings["points"] = at.number_input(key="tsne.points").value
        settings["layers"] = at.multiselect(key="tsne.layers").value
    return settings | {
        "method": at.radio(key="tsne.method").value,
        "perplexity": at.number_input(key="tsne.perplexity").value,
        "lr_auto": at.checkbox(key="tsne.lr_auto").value,
        "lr": at.number_input(key="tsne.lr").value,
        "iters": at.number_input(key="tsne.iters").value,
        "exaggeration": at.number_input(key="tsne.exag").value,
        "seed": at.number_input(key="tsne.seed").value,
        "pca": at.checkbox(key="tsne.pca_first").value,
    }


def test_a_link_opens_the_page_on_its_settings_and_computes_only_on_compute(tmp_path, monkeypatch):
    from tests.conftest import write_fake_mnist

    write_fake_mnist(tmp_path, n_train=200, n_test=150)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    at = _linked(LINK)
    assert not errors(at) and not link_warnings(at)
    assert at.selectbox(key="tsne.model").value == "resnet_digits"
    assert _settings(at) == {
        "source": "Model layers",
        "dataset": "mnist",
        "points": 300,
        "layers": ["stem", "flatten"],
        "method": "PCA",
        "perplexity": 12.5,
        "lr_auto": False,
        "lr": 500.0,
        "iters": 250,
        "exaggeration": 4.0,
        "seed": 7,
        "pca": False,
    }
    assert dict(at.query_params) == LINK  # the link stays as it came
    # a link only sets the controls: nothing is extracted or mapped before Compute
    assert any("press **Compute**" in i.value for i in at.info)
    assert not at.session_state["tsne.results"] and "tsne.features" not in at.session_state

    at.button(key="tsne.run").click().run()
    assert not at.exception and not errors(at)
    (result,) = at.session_state["tsne.results"].values()
    assert list(result["maps"]) == ["stem", "flatten"] and len(result["labels"]) == 300
    ((choice, dataset, n_points, layers, seed),) = at.session_state["tsne.features"]
    assert (choice.key, dataset, n_points, layers, seed) == (
        "resnet_digits", "mnist", 300, ("stem", "flatten"), 7,
    )  # fmt: skip


def test_a_link_to_uploaded_coordinates_opens_their_uploader():
    at = _linked({"model": "lenet_digits", "source": "Uploaded coordinates", "points": "300"})
    assert not errors(at) and not link_warnings(at)
    assert at.radio(key="tsne.source").value == "Uploaded coordinates"
    assert at.file_uploader(key="tsne.coords") is not None
    # the points apply to the model's layers only: kept for the session, not in this link
    assert dict(at.query_params) == {"model": "lenet_digits", "source": "Uploaded coordinates"}
    at.radio(key="tsne.source").set_value("Model layers").run()
    assert at.number_input(key="tsne.points").value == 300
    assert dict(at.query_params) == {"model": "lenet_digits", "points": "300"}


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("source", "Webcam", f"expected one of {', '.join(SOURCES)}"),
        ("dataset", "mnist", "expected one of digits"),  # not on this machine
        ("dataset", "Other image folder…", "expected one of digits"),  # never a typed path
        ("points", "10", "expected a whole number from 50 to 70000"),
        ("layers", "relu1,stem", f"no 'stem'; expected comma-separated choices of {LENET}"),
        ("layers", "relu1,relu1", f"expected at least one of {LENET}, comma-separated, each once"),
        ("method", "LDA", f"expected one of {', '.join(METHODS)}"),
        ("perplexity", "500", "expected a number from 2 to 200"),
        ("perplexity", "nan", "expected a number from 2 to 200"),
        ("lr_auto", "maybe", "expected true or false"),
        ("lr", "x", "expected a number from 1 to 10000"),
        ("iters", "2.5", "expected a whole number from 50 to 5000"),
        ("exaggeration", "0", "expected a number from 1 to 50"),
        ("seed", "-1", "expected a whole number from 0 to 2147483647"),
        ("pca", "2", "expected true or false"),
    ],
)
def test_a_bad_link_value_gives_a_warning_and_the_default(key, raw, expected, monkeypatch):
    monkeypatch.delenv("VIZLIB_DATA", raising=False)
    at = _linked({"model": "lenet_digits", "seed": "3", key: raw})
    assert not errors(at)
    assert link_warnings(at) == [f"Ignored `{key}={raw}` from the link ({expected})."]
    assert _settings(at) == {**DEFAULTS, "seed": 3 if key != "seed" else 0}
    assert key not in at.query_params and at.query_params["model"] == "lenet_digits"


def test_five_layers_in_a_link_are_too_many():
    at = _linked({"model": "vit_digits", "layers": "input,blocks.0,blocks.1,blocks.2,norm"})
    assert link_warnings(at) == [
        "Ignored `layers=input,blocks.0,blocks.1,blocks.2,norm` from the link (expected at most "
        "4 of input, blocks.0, blocks.1, blocks.2, blocks.3, norm, comma-separated)."
    ]
    assert at.multiselect(key="tsne.layers").value == ["input", "blocks.3", "norm"]


def test_changing_the_widgets_writes_the_link_and_the_link_reopens_them():
    at = _linked({})
    assert dict(at.query_params) == {"model": "lenet_digits"}  # defaults stay out of the link
    at.selectbox(key="tsne.model").set_value("resnet_digits").run()
    at.multiselect(key="tsne.layers").set_value(["layers", "input"])
    at.number_input(key="tsne.points").set_value(450)
    at.radio(key="tsne.method").set_value("PCA")
    at.number_input(key="tsne.perplexity").set_value(7.25)
    at.checkbox(key="tsne.lr_auto").uncheck().run()  # the learning rate box is enabled
    at.number_input(key="tsne.lr").set_value(1234.5)
    at.number_input(key="tsne.iters").set_value(300)
    at.number_input(key="tsne.exag").set_value(20.0)
    at.number_input(key="tsne.seed").set_value(2**31 - 1)
    at.checkbox(key="tsne.pca_first").uncheck().run()
    assert not at.exception and not errors(at)
    assert dict(at.query_params) == {
        "model": "resnet_digits",
        "layers": "layers,input",
        "points": "450",
        "method": "PCA",
        "perplexity": "7.25",
        "lr_auto": "false",
        "lr": "1234.5",
        "iters": "300",
        "exaggeration": "20",
        "seed": "2147483647",
        "pca": "false",
    }
    again = _linked(dict(at.query_params))
    assert not link_warnings(again) and _settings(again) == _settings(at)
    assert again.selectbox(key="tsne.model").value == "resnet_digits"

    # another model's layers: the choice (resnet_digits' "layers") goes back to its default
    at.selectbox(key="tsne.model").set_value("lenet_digits").run()
    assert not at.exception and not link_warnings(at)
    assert at.multiselect(key="tsne.layers").value == DEFAULTS["layers"]
    assert "layers" not in at.query_params and at.query_params["points"] == "450"
    at.multiselect(key="tsne.layers").set_value([]).run()  # none chosen: said at Compute
    assert at.query_params["layers"] == ""
    again = _linked(dict(at.query_params))
    assert not link_warnings(again) and again.multiselect(key="tsne.layers").value == []


def test_a_link_waits_for_the_uploaded_model():
    """?model=upload opens the picker; the layers stay in the link until the model is there to
    check them against, and a bad one is then said."""
    at = _linked({"model": "upload", "layers": "relu1,relu3", "method": "PCA"})
    assert not at.warning and at.selectbox(key="tsne.model").value == "Upload weights…"
    assert dict(at.query_params) == {"model": "upload", "layers": "relu1,relu3", "method": "PCA"}
    _upload_lenet(at, "mine.safetensors", _lenet_safetensors())
    assert not errors(at) and not link_warnings(at)
    assert at.multiselect(key="tsne.layers").value == ["relu1", "relu3"]
    assert at.radio(key="tsne.method").value == "PCA"
    assert dict(at.query_params) == {"model": "upload", "layers": "relu1,relu3", "method": "PCA"}

    at = _linked({"model": "upload", "layers": "conv9"})
    _upload_lenet(at, "mine.safetensors", _lenet_safetensors())
    assert link_warnings(at) == [
        "Ignored `layers=conv9` from the link (no 'conv9'; expected comma-separated choices of "
        "input, relu1, relu2, relu3)."
    ]
    assert dict(at.query_params) == {"model": "upload"}


def _app_at_embeddings() -> AppTest:
    """The whole app (router and sidebar), on the Embeddings page."""
    at = AppTest.from_file(str(Path(PAGE).parents[1] / "app.py"), default_timeout=120).run()
    at.switch_page("app_pages/embeddings.py").run()
    assert not at.exception, at.exception
    return at


def test_settings_survive_a_visit_to_another_page():
    """Streamlit drops the state of widgets a run does not draw (another page, another source);
    the page's own record brings the model, its layers and the other settings back."""
    at = _app_at_embeddings()
    at.selectbox(key="tsne.model").set_value("resnet_digits").run()
    at.multiselect(key="tsne.layers").set_value(["stem"])
    at.number_input(key="tsne.points").set_value(400)
    at.number_input(key="tsne.perplexity").set_value(9.5)
    at.radio(key="tsne.method").set_value("PCA").run()
    assert not at.exception
    shown = _settings(at)
    at.radio(key="tsne.source").set_value("Uploaded features").run()  # the dataset row is gone
    at.radio(key="tsne.source").set_value("Model layers").run()
    assert _settings(at) == shown
    at.switch_page("app_pages/home.py").run()
    assert "tsne.model" not in at.session_state and "tsne.layers" not in at.session_state
    at.query_params.clear()  # the browser's address bar loses the page's values on the way
    at.switch_page("app_pages/embeddings.py").run()
    assert not at.exception and not at.warning
    assert at.selectbox(key="tsne.model").value == "resnet_digits"
    assert _settings(at) == shown
    assert dict(at.query_params) == {
        "model": "resnet_digits", "layers": "stem", "points": "400", "method": "PCA",
        "perplexity": "9.5",
    }  # fmt: skip


def test_a_typed_folder_stays_for_the_session_but_out_of_the_link(tmp_path):
    from tests.test_data_datasets import write_image_folder

    write_image_folder(tmp_path / "fruit", n_per_class=4)
    at = _app_at_embeddings()
    at.number_input(key="tsne.points").set_value(200)
    at.selectbox(key="tsne.dataset").set_value("Other image folder…").run()
    at.text_input(key="tsne.folder_path").set_value(str(tmp_path / "fruit")).run()
    assert not at.exception and not errors(at)
    assert dict(at.query_params) == {"model": "lenet_digits", "points": "200"}  # no path
    at.switch_page("app_pages/home.py").run()
    assert "tsne.folder_path" not in at.session_state
    at.switch_page("app_pages/embeddings.py").run()
    assert not at.exception and not errors(at)
    assert at.selectbox(key="tsne.dataset").value == "Other image folder…"
    assert at.text_input(key="tsne.folder_path").value == str(tmp_path / "fruit")
    assert any(c.value.startswith("3 classes: ") for c in at.caption)
    assert dict(at.query_params) == {"model": "lenet_digits", "points": "200"}


def test_data_settings_first_hidden_by_a_link_keep_their_later_values():
    """A link to uploaded features does not draw the dataset and points; once the user turns to
    the model's layers and sets them, hiding them again (another source, another page) must not
    bring back the values they had before they were first drawn."""
    at = AppTest.from_file(str(Path(PAGE).parents[1] / "app.py"), default_timeout=120)
    at.query_params["source"] = "Uploaded features"
    at.run()
    at.switch_page("app_pages/embeddings.py").run()
    assert at.radio(key="tsne.source").value == "Uploaded features"
    at.radio(key="tsne.source").set_value("Model layers").run()
    at.number_input(key="tsne.points").set_value(400).run()
    at.radio(key="tsne.source").set_value("Uploaded features").run()
    at.radio(key="tsne.source").set_value("Model layers").run()
    assert at.number_input(key="tsne.points").value == 400
    at.switch_page("app_pages/home.py").run()
    at.query_params.clear()
    at.switch_page("app_pages/embeddings.py").run()
    assert not at.exception
    assert at.number_input(key="tsne.points").value == 400
    assert dict(at.query_params) == {"model": "lenet_digits", "points": "400"}


def _npy(array) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _upload_features(name: str, data: bytes, *, method: str = "t-SNE") -> AppTest:
    at = _app()
    at.radio(key="tsne.source").set_value("Uploaded features").run()
    at.file_uploader(key="tsne.feat").set_value((name, data, "")).run()
    at.radio(key="tsne.method").set_value(method)
    at.number_input(key="tsne.iters").set_value(50)
    at.button(key="tsne.run").click().run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize(
    ("name", "array", "method", "expected"),
    [
        # was "uploaded: init='pca' needs n_components <= min(N, D) = 1."
        ("one column", [[0.5]] * 60, "t-SNE",
         "Features: 60 rows but only 1 column; a 2-D map needs at least 2 feature columns "
         "(rows = points, columns = features)."),
        # was "uploaded: k must be between 1 and min(N, D) = 1, got 2."
        ("one column", [[0.5]] * 60, "PCA",
         "Features: 60 rows but only 1 column; a 2-D map needs at least 2 feature columns "
         "(rows = points, columns = features)."),
        # was "uploaded: X contains NaN or infinite values in 60 row(s)." (float32 overflow)
        ("huge", [[1e300, 1.0]] * 60, "PCA",
         "Features: 60 value(s) beyond ±3.4e38 do not fit the float32 numbers the maps are "
         "computed in; rescale the features."),
        # was a warning "Perplexity lowered to -0.3 for 1 points" above the error
        ("one row", [[1.0, 2.0, 3.0]], "t-SNE", "t-SNE needs at least 4 points; the features have 1."),
        ("three rows", [[1.0, 2.0], [3.0, 1.0], [0.0, 5.0]], "t-SNE",
         "t-SNE needs at least 4 points; the features have 3."),
        ("one row", [[1.0, 2.0, 3.0]], "PCA", "PCA needs at least 2 points; the features have 1."),
    ],
)  # fmt: skip
def test_unmappable_uploaded_features_are_refused_in_words(name, array, method, expected):
    import numpy as np

    at = _upload_features("f.npy", _npy(np.array(array)), method=method)
    assert [e.value for e in at.error] == [expected]
    # no lowered perplexity of -0.3 (the 50 iterations' hourglass advice is about the settings)
    shown = [w.value for w in at.warning if w.icon != ":material/hourglass_empty:"]
    assert not shown, shown
    assert not at.dataframe


def test_an_unreadable_upload_is_not_called_missing():
    """A CSV with semicolons says why it was refused, not also 'Upload a features file first.'"""
    at = _upload_features("f.csv", b"1;2;3\n4;5;6\n7;8;9\n")
    assert [e.value for e in at.error] == [
        "Features: 'f.csv' separates its columns with semicolons: a CSV needs commas."
    ]


def test_metrics_fit_a_projector_and_say_why_accuracies_are_blank():
    """Short headers (the table was cut after two accuracy columns at 1024 px), their meaning in
    each column's help; without labels the blank accuracies are explained, and the
    trustworthiness' k is the one used (5 points allow k = 1, scikit-learn computed here)."""
    import numpy as np
    from sklearn.manifold import trustworthiness

    features = np.random.default_rng(0).normal(size=(40, 6))
    at = _upload_features("f.npy", _npy(features), method="PCA")
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert list(table.columns) == [
        "layer", "features", "k-NN, features", "k-NN, map", "linear probe", "trustworthiness"
    ]  # fmt: skip
    assert table[["k-NN, features", "k-NN, map", "linear probe"]].isna().all(axis=None)
    captions = [c.value for c in at.caption]
    assert (
        "Accuracies (fractions of held-out points classified right) are left blank: no labels "
        "were given. Trustworthiness (k = 10) on all points."
    ) in captions
    coords = np.array(at.session_state["tsne.results"][at.session_state["tsne.last"]]["maps"]
                      ["uploaded"])  # fmt: skip
    expected = trustworthiness(features.astype(np.float32), coords, n_neighbors=10)
    assert table["trustworthiness"][0] == pytest.approx(expected, abs=1e-6)

    few = _upload_features("f.npy", _npy(features[:5]), method="PCA")
    assert any("Trustworthiness (k = 1) on all points." in c.value for c in few.caption)


def test_the_learning_rate_box_comes_before_its_auto_tick():
    """At 1024 px the tick's label 'Learning rate auto' above the box was cut to 'Learn…': the
    box is labelled 'Learning rate' and the tick under it 'auto', which still disables it."""
    at = _app()
    column = next(
        c
        for c in at.columns
        if "Learning rate" in [getattr(w, "label", None) for w in c.children.values()]
    )
    assert [getattr(w, "label", None) for w in column.children.values()][:2] == [
        "Learning rate",
        "auto",
    ]
    assert at.number_input(key="tsne.lr").disabled
    # the greyed box keeps the typed rate: the rate auto uses is said under it
    assert any(c.value == "auto uses 50 for 1,000 points" for c in at.caption)  # max(1000/12/4, 50)
    at.number_input(key="tsne.points").set_value(6000).run()
    assert any(c.value == "auto uses 125 for 6,000 points" for c in at.caption)
    at.checkbox(key="tsne.lr_auto").uncheck().run()
    assert not at.number_input(key="tsne.lr").disabled


def _upload_coordinates(csv: bytes) -> AppTest:
    at = _app()
    at.radio(key="tsne.source").set_value("Uploaded coordinates").run()
    at.file_uploader(key="tsne.coords").set_value(("coords.csv", csv, "text/csv")).run()
    assert not at.exception, at.exception
    return at


def test_uploaded_coordinates_pair_points_by_their_index(downloads):
    """Layer B's rows in another order are the same points by their index column; they were
    paired by row, so point 0 of A was drawn (and downloaded) with point 2 of B."""
    import io

    import pandas as pd

    csv = (
        b"layer,index,x,y,label\nA,0,0,0,0\nA,1,1,1,1\nA,2,2,2,2\n"
        b"B,2,20,-2,2\nB,0,0,0,0\nB,1,10,-1,1\n"
    )
    at = _upload_coordinates(csv)
    assert not at.error, [e.value for e in at.error]
    table = pd.read_csv(io.BytesIO(downloads["embedding_coordinates.csv"]))
    b = table[table["layer"] == "B"]
    assert b["index"].tolist() == [0, 1, 2]
    assert b["x"].tolist() == [0, 10, 20] and b["label"].tolist() == [0, 1, 2]

    other = csv.replace(b"B,1,10,-1,1", b"B,7,10,-1,1")
    at = _upload_coordinates(other)
    assert [e.value for e in at.error] == [
        "Layer 'B' holds other indices than the first layer; it is left out."
    ]


def test_uploaded_coordinates_say_what_is_wrong_and_what_is_left_out():
    rows = "".join(f"L{layer},{i},{i},{layer}\n" for layer in range(5) for i in range(3))
    at = _upload_coordinates(("layer,index,x,y\n" + rows).encode())
    assert [i.value for i in at.info] == [
        "The CSV holds 5 layers: the first 4 are drawn and downloaded (L0, L1, L2, L3)."
    ]
    at = _upload_coordinates(b"layer;index;x;y\nA;0;1;2\n")
    assert [e.value for e in at.error] == [
        "The CSV lacks the column(s) ['layer', 'x', 'y'] (it looks separated by ';', not commas)."
    ]
    at = _upload_coordinates(b"")
    assert [e.value for e in at.error] == ["The CSV is empty."]


def test_uploaded_features_are_not_promised_images():
    """A map of uploaded features has no images: the caption said 'Click a point to see its image
    and its nearest neighbours in the map.'"""
    import numpy as np

    at = _upload_features(
        "f.npy", _npy(np.random.default_rng(0).normal(size=(30, 4))), method="PCA"
    )
    captions = [c.value for c in at.caption]
    assert "Click a point to see its index." in captions
    assert not any("see its image" in c for c in captions)


def test_uploaded_coordinates_hide_the_method_and_keep_it(downloads):
    """A CSV's coordinates are drawn as they are: the method, the t-SNE options, Compute and Stop
    did nothing there, and the axes said 't-SNE 1'. They are hidden (and out of the link), the
    axes are the CSV's x and y, and back on the model's layers the user's method and options are
    there again (the router parks a hidden widget's value)."""
    import json

    at = _app_at_embeddings()
    at.radio(key="tsne.method").set_value("PCA")
    at.number_input(key="tsne.perplexity").set_value(9.5)
    at.number_input(key="tsne.iters").set_value(300)
    at.checkbox(key="tsne.pca_first").uncheck().run()
    mine = {"method": "PCA", "perplexity": "9.5", "iters": "300", "pca": "false"}
    assert mine.items() <= dict(at.query_params).items()

    at.radio(key="tsne.source").set_value("Uploaded coordinates").run()
    assert not at.exception and not errors(at)
    assert [r.label for r in at.radio] == ["Data"]
    assert not at.expander and not at.number_input and not at.checkbox
    assert not [b for b in at.button if b.key in ("tsne.run", "tsne.stop")]
    assert [i.value for i in at.info] == ["Upload a CSV of coordinates to draw its maps."]
    assert dict(at.query_params) == {"model": "lenet_digits", "source": "Uploaded coordinates"}
    csv = b"layer,index,x,y,label\nA,0,0,0,0\nA,1,1,1,1\nA,2,2,0,1\n"
    at.file_uploader(key="tsne.coords").set_value(("coords.csv", csv, "text/csv")).run()
    assert not at.exception and not errors(at)
    (chart,) = at.get("plotly_chart")
    spec = json.loads(chart.proto.spec)
    layout = spec["layout"]
    assert (layout["xaxis"]["title"]["text"], layout["yaxis"]["title"]["text"]) == ("x", "y")
    assert all("(x, y) = (" in trace["hovertemplate"] for trace in spec["data"])
    assert "t-SNE" not in json.dumps(spec)
    assert b"t-SNE" not in downloads["embedding_coordinates.csv"]

    at.radio(key="tsne.source").set_value("Model layers").run()
    assert not at.exception and not errors(at)
    assert at.radio(key="tsne.method").value == "PCA"
    assert at.number_input(key="tsne.perplexity").value == 9.5
    assert at.number_input(key="tsne.iters").value == 300
    assert not at.checkbox(key="tsne.pca_first").value
    assert mine.items() <= dict(at.query_params).items()
    assert at.button(key="tsne.run") and at.button(key="tsne.stop")


def test_too_few_iterations_to_settle_are_said_before_compute():
    """250 iterations or fewer are all early exaggeration: the map came out as one squeezed blob
    (5-NN accuracy 0.17 where 500 iterations gave 0.95), with no word. The page says so, and
    says nothing for PCA or from 500 iterations on."""
    at = _app()
    hourglass = lambda: [w.value for w in at.warning if w.icon == ":material/hourglass_empty:"]  # noqa: E731
    assert hourglass() == []  # 1,000 by default
    at.number_input(key="tsne.iters").set_value(250).run()
    assert hourglass() and hourglass()[0].startswith("All 250 iterations come after")
    at.number_input(key="tsne.iters").set_value(400).run()
    assert hourglass() and hourglass()[0].startswith("Only 150 of the iterations")
    at.radio(key="tsne.method").set_value("PCA").run()
    assert hourglass() == []
    assert any(e.label == "t-SNE options (not used by PCA)" for e in at.expander)
    at.radio(key="tsne.method").set_value("t-SNE").run()
    at.number_input(key="tsne.iters").set_value(500).run()
    assert hourglass() == []
