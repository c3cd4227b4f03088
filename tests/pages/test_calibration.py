"""AppTest for the Predictions & Calibration page: every number shown is vizlib.calibration's on
the same (shifted) images, the settings travel in the link, an image folder's classes are
matched to the model's by name, and a model without labelled images says why."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.pages._shared import errors, link_warnings, opened_with, plotly_array
from vizlib import calibration, zoo
from vizlib.data import dataset_normalization, denormalize, load_dataset

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "calibration.py")


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def _answers(name: str, **shift) -> tuple[torch.Tensor, np.ndarray]:
    """The model's logits on the digits test split shifted as asked, and the labels."""
    model, meta = zoo.load_model(name)
    images, labels, _ = load_dataset("digits", "test", input_size=meta["input_size"][1:])
    shifted = calibration.corrupt_images(images, mean=meta["mean"], std=meta["std"], **shift)
    return calibration.class_logits(model, shifted), labels.numpy()


def test_the_shipped_lenet_gets_every_test_digit_right_and_says_what_that_means(downloads):
    at = opened_with(PAGE, {})
    assert not errors(at) and not link_warnings(at)
    logits, labels = _answers("lenet_digits")
    confidence = torch.softmax(logits, 1).max(1).values.numpy()
    assert _metric(at, "Accuracy") == "100.0%"
    ece = calibration.reliability(confidence, np.ones(450, bool)).ece
    assert _metric(at, "Calibration error (ECE)") == f"{ece:.2%}"
    assert _metric(at, "Mean confidence") == f"{confidence.mean():.1%}"
    assert _metric(at, "Fitted temperature") == "T = 0.01"  # at its bound: all right
    tile = next(m for m in at.metric if m.label == "Fitted temperature")
    assert tile.delta == "at the fit's bound"
    # scaling to certainty is no improvement: no scaled curve, no scaled ECE
    spec = _chart(at, "calibration.reliability")
    assert not any(t["name"] == "temperature-scaled" for t in spec["data"])
    assert not next(m for m in at.metric if m.label.startswith("Calibration")).delta
    assert any("Shift the images" in i.value for i in at.info)  # what to try instead
    assert any("fit stops at its bound T = 0.01" in c.value for c in at.caption)
    assert any("All 450 answers are right" in s.value for s in at.success)
    assert "calibration.coverage" not in {c.key for c in at.get("plotly_chart")}
    table = pd.read_csv(io.BytesIO(downloads["lenet_digits_predictions.csv"]))
    assert len(table) == 450 and table["correct"].all()
    np.testing.assert_allclose(table["confidence"], confidence, atol=1e-6)


def test_noisy_digits_make_the_vit_overconfident_and_scaling_mends_it(downloads):
    at = opened_with(PAGE, {"model": "vit_digits", "noise": "0.3"})
    assert not errors(at) and not link_warnings(at)
    logits, labels = _answers("vit_digits", noise=0.3)
    probabilities = torch.softmax(logits, 1).numpy()
    predicted, confidence = probabilities.argmax(1), probabilities.max(1)
    correct = predicted == labels
    before = calibration.reliability(confidence, correct)
    assert _metric(at, "Accuracy") == f"{correct.mean():.1%}"
    assert _metric(at, "Calibration error (ECE)") == f"{before.ece:.2%}"
    temperature = calibration.fit_temperature(logits, labels)
    assert temperature > 1.5  # overconfident on noise
    assert _metric(at, "Fitted temperature") == f"T = {temperature:.3g}"
    per_image, _ = calibration.cross_fitted_temperatures(logits, labels, folds=2)
    scaled = torch.softmax(logits / torch.from_numpy(per_image).float()[:, None], 1).numpy()
    after = calibration.reliability(scaled.max(1), correct)
    assert after.ece < before.ece / 3
    assert any(f"from {before.ece:.2%} to {after.ece:.2%}" in c.value for c in at.caption)
    # differences of two percentages in percentage points, not "%" (a relative change)
    tiles = {m.label: m for m in at.metric}
    gap = 100 * (confidence.mean() - correct.mean())
    assert tiles["Mean confidence"].delta == f"{gap:+.1f} pts vs accuracy"
    drop = 100 * (after.ece - before.ece)
    assert tiles["Calibration error (ECE)"].delta == f"{drop:+.2f} pts scaled"
    # the matrix on the page's background (a white box in the dark theme), its accuracies in
    # the theme's text colour
    matrix = _chart(at, "calibration.confusion")
    assert matrix["layout"]["plot_bgcolor"] == "rgba(0,0,0,0)"
    wrong_cells = next(t for t in matrix["data"] if t["name"] == "wrong")
    assert wrong_cells["colorscale"][0][1] == "rgba(0,0,0,0)"  # no mistakes: no white cell
    assert not any("color" in a.get("font", {}) for a in matrix["layout"]["annotations"])
    # the surest mistake's probability to one decimal, never rounded up to "100%"
    surest = confidence[~correct].max()
    caption = _chart(at, "calibration.mistakes")["layout"]["annotations"][0]["text"]
    expected = ">99.9%" if round(100 * surest, 1) >= 99.95 else f"{100 * surest:.1f}%"
    assert caption.endswith(f"<br>({expected})"), caption
    # the diagram's points are the bins' accuracy at their mean confidence
    spec = _chart(at, "calibration.reliability")
    points = next(t for t in spec["data"] if t["name"] == "as the model answers")
    np.testing.assert_allclose(plotly_array(points["y"]), before.accuracy[before.counts > 0])
    assert any(t["name"] == "temperature-scaled" for t in spec["data"])
    # the surest mistakes first, the CSV holding every answer
    table = pd.read_csv(io.BytesIO(downloads["vit_digits_predictions.csv"]))
    assert (table["correct"] == correct).all()
    np.testing.assert_allclose(table["scaled_confidence"], scaled.max(1), atol=1e-6)
    assert any(f"of the {(~correct).sum():,} mistakes" in c.value for c in at.caption)
    classes = pd.read_csv(io.BytesIO(downloads["vit_digits_class_scores.csv"]))
    scores = calibration.class_scores(labels, predicted, num_classes=10)
    np.testing.assert_allclose(classes["recall"], scores["recall"], atol=1e-6)
    shown = at.dataframe[0].value  # the table in percent, the CSV in fractions
    np.testing.assert_allclose(shown["recall"], 100 * scores["recall"], atol=1e-4)


def test_settings_travel_in_the_link_and_a_bad_one_is_explained():
    at = opened_with(PAGE, {"model": "resnet_digits", "bins": "99", "rotation": "30"})
    assert any("bins" in w for w in link_warnings(at))
    assert at.slider(key="calibration.bins").value == 15
    assert at.slider(key="calibration.rotation").value == 30
    at.toggle(key="calibration.scaling").set_value(False).run()
    at.slider(key="calibration.n").set_value(100).run()
    assert not errors(at)
    assert at.query_params["scaling"] == "false" and at.query_params["n"] == "100"
    assert at.query_params["rotation"] == "30" and "bins" not in at.query_params
    assert "on the first 100 images of the digits test split, rotated 30°" in at.markdown[0].value
    spec = _chart(at, "calibration.reliability")
    assert not any(t["name"] == "temperature-scaled" for t in spec["data"])


def test_an_image_folder_is_scored_on_the_classes_the_model_has(tmp_path, monkeypatch):
    """Digits saved as PNGs in folders '3', '7' and 'dog': the dog's images are left out and
    named; the others are scored as the model's 3s and 7s, with a matrix of two rows."""
    import streamlit as st

    st.cache_data.clear()
    images, labels, _ = load_dataset("digits", "test", input_size=(8, 8))
    pixels = (images[:, 0] * 16).clamp(0, 16).numpy()  # scikit-learn's 0..16 back
    folder = tmp_path / "mine"
    for name, digit in (("3", 3), ("7", 7), ("dog", 5)):
        (folder / name).mkdir(parents=True)
        for i in np.flatnonzero(labels.numpy() == digit)[:4]:
            grey = (np.asarray(pixels[i]) / 16 * 255).astype(np.uint8)
            Image.fromarray(grey).resize((28, 28)).save(folder / name / f"{i}.png")
    other = tmp_path / "pets"  # none of the model's classes
    (other / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(other / "cat" / "a.png")
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    at = opened_with(PAGE, {"model": "lenet_digits"})
    at.selectbox(key="calibration.images").set_value(f"imagefolder:{folder}").run()
    assert not at.exception and not errors(at)
    assert any("1 of the folder's 3 classes is not a class of lenet_digits (dog): its images "
               "are left out" in c.value for c in at.caption)  # fmt: skip
    assert at.slider(key="calibration.n").value == 8
    assert "8 images of mine" in at.markdown[0].value
    right, wrong = _chart(at, "calibration.confusion")["data"]
    assert right["y"] == ["3", "7"] and right["x"][:2] == ["3", "7"]
    counts = np.where(np.isnan(plotly_array(right["z"]).astype(float)),
                      plotly_array(wrong["z"]), plotly_array(right["z"]))  # fmt: skip
    assert counts.sum() == 8 and counts[:, :2].sum() == 8 - counts[:, 2:].sum()
    assert at.query_params["images"] == f"imagefolder:{folder}"  # found under VIZLIB_DATA
    # a fresh session opened with that link lands on the same folder
    again = opened_with(PAGE, {"model": "lenet_digits", "images": f"imagefolder:{folder}"})
    assert not errors(again) and "8 images of mine" in again.markdown[0].value
    # back to the test split, the count goes back to all of it (not 5 of 450)
    at.slider(key="calibration.n").set_value(5).run()
    at.selectbox(key="calibration.images").set_value("digits").run()
    assert at.slider(key="calibration.n").value == 450 and "images" not in at.query_params
    # a folder with none of the model's classes is an error, not an empty page
    at.selectbox(key="calibration.images").set_value(f"imagefolder:{other}").run()
    assert not at.exception
    assert any("nothing to score" in e for e in errors(at))
    assert any(
        c.value.startswith("Reading its one image.") for c in at.caption
    )  # not "all of its 1"


def test_unreadable_files_of_a_folder_are_skipped_and_named_and_the_rest_scored(
    tmp_path, monkeypatch, downloads
):
    """Folders '3' and '7' of three digits each, a truncated PNG and a text file named .png
    among them, and a 'cat' folder: one warning names the two bad files, the six good digits
    are scored (the cat left out) with their own indices; a folder of nothing but broken files
    is one clear error."""
    import streamlit as st

    st.cache_data.clear()
    images, labels, _ = load_dataset("digits", "test", input_size=(28, 28))
    pixels = denormalize(images[:, 0], *dataset_normalization("digits")).numpy()  # in [0, 1]
    folder = tmp_path / "mixed"
    for name, digit in (("3", 3), ("7", 7), ("cat", 5)):
        (folder / name).mkdir(parents=True)
        for i in np.flatnonzero(labels.numpy() == digit)[: 1 if name == "cat" else 3]:
            Image.fromarray((pixels[i] * 255).astype(np.uint8)).save(folder / name / f"d{i}.png")
    whole = next((folder / "3").iterdir()).read_bytes()
    (folder / "7" / "corrupt.png").write_bytes(whole[: len(whole) // 2])
    (folder / "3" / "notes.png").write_bytes(b"not an image")
    broken = tmp_path / "broken"
    (broken / "3").mkdir(parents=True)
    (broken / "3" / "a.png").write_bytes(b"nothing")
    (broken / "3" / "b.png").write_bytes(b"nothing either")
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    at = opened_with(PAGE, {"model": "lenet_digits"})
    at.selectbox(key="calibration.images").set_value(f"imagefolder:{folder}").run()
    assert not at.exception and not errors(at)
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("2 of the 9 images could not be read and are left out (7 used): ")
    assert str(folder / "7" / "corrupt.png") in warning
    assert str(folder / "3" / "notes.png") in warning
    assert "6 images of mixed" in at.markdown[0].value
    assert at.slider(key="calibration.n").value == 6 and _metric(at, "Accuracy")
    # the images scored are the readable 3s and 7s, by their index in ImageFolder's order
    # (classes by name, files by name): 3/d*.png, 3/notes.png, 7/corrupt.png, 7/d*.png, cat
    listing = [p for c in ("3", "7", "cat") for p in sorted((folder / c).iterdir())]
    good = {i for i, p in enumerate(listing) if p.parent.name != "cat" and p.name[0] == "d"}
    table = pd.read_csv(io.BytesIO(downloads["lenet_digits_predictions.csv"]))
    assert len(table) == 6 and set(table["index"]) == good
    assert set(table["true"].astype(str)) == {"3", "7"}
    # every file unreadable: an error that says so, no traceback
    at.selectbox(key="calibration.images").set_value(f"imagefolder:{broken}").run()
    assert not at.exception
    assert any(f"None of the 2 images read from {broken} could be decoded" in e
               for e in errors(at))  # fmt: skip


def test_imagenet_models_without_labelled_images_say_what_they_need():
    at = opened_with(PAGE, {"model": "resnet18"})
    assert not errors(at)
    assert any(
        "Scoring the answers needs the model's test images or an image folder. The imagenet test images do not ship"
        in i.value
        for i in at.info
    )


@pytest.mark.parametrize("model", ["resnet_digits", "vit_digits"])
def test_a_blurred_and_rotated_set_is_scored_without_error(model):
    at = opened_with(PAGE, {"model": model, "blur": "1.5", "rotation": "-20", "n": "60"})
    assert not errors(at) and not link_warnings(at)
    logits, labels = _answers(model, blur=1.5, rotation=-20)
    right = (logits[:60].argmax(1).numpy() == labels[:60]).mean()
    assert _metric(at, "Accuracy") == f"{right:.1%}"


def test_the_shift_and_the_model_come_back_after_another_page():
    from tests.pages.test_navigation import _app_on, _visit_home_and_return

    page = "app_pages/calibration.py"
    at = _app_on(page)
    at.selectbox(key="calibration.model").set_value("resnet_digits").run()
    at.slider(key="calibration.noise").set_value(0.2).run()
    assert not at.exception and at.query_params["noise"] == "0.2"
    _visit_home_and_return(at, page)
    assert at.selectbox(key="calibration.model").value == "resnet_digits"
    assert at.slider(key="calibration.noise").value == pytest.approx(0.2)
    assert at.query_params["noise"] == "0.2" and not link_warnings(at)
    assert "with noise of σ 0.2" in at.markdown[0].value


def test_an_imagenet_model_scores_a_folder_named_after_its_classes(tmp_path, monkeypatch):
    """resnet18 (random weights here) on folders 'tench', 'Golden_Retriever' and 'goldfish':
    224-pixel inputs wait for the button; then the matrix has the three classes as rows and
    'another class' for the other 997 answers, and the numbers are vizlib's."""
    import streamlit as st

    st.cache_data.clear()
    rng = np.random.default_rng(0)
    folder = tmp_path / "fish"
    for name in ("tench", "Golden_Retriever", "goldfish"):
        (folder / name).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    at = opened_with(PAGE, {"model": "resnet18"})
    at.selectbox(key="calibration.images").set_value(f"imagefolder:{folder}").run()
    assert not at.exception and not errors(at)
    assert not at.metric  # waits for its button
    run = next(b for b in at.button if b.key == "calibration.run")
    assert run.label == "Run resnet18 on 6 images"
    run.click().run()
    assert not at.exception and not errors(at)
    right, _ = _chart(at, "calibration.confusion")["data"]
    # folder classes in the model's order: tench 0, goldfish 1, golden retriever 207
    assert right["y"] == ["tench", "goldfish", "golden retriever"]
    assert right["x"] == ["tench", "goldfish", "golden retriever", "another class"]
    from ui.inside_cnns import image_set

    model, meta = zoo.load_model("resnet18")
    images, labels, classes, _ = image_set(f"imagefolder:{folder}", meta)
    mapped = calibration.match_classes(classes, meta["class_names"])[labels.numpy()]
    logits = calibration.class_logits(model, images)
    right_share = (logits.argmax(1).numpy() == mapped).mean()
    assert _metric(at, "Accuracy") == f"{right_share:.1%}"
    top5 = calibration.top_k_accuracy(logits, mapped, 5)
    assert _metric(at, "Top-5 accuracy") == f"{top5:.1%}"


def test_uploaded_weights_with_a_tripled_last_layer_need_three_times_the_temperature():
    """lenet_digits with fc2's weights and bias times 3: every logit is 3 times the shipped
    model's, so the same answers and a fitted temperature exactly 3 times as large (on noisy
    digits, where the shipped model makes mistakes and its T is not at a bound)."""
    from tests.pages.test_learned_filters import lenet_upload

    def triple(state: dict) -> None:
        state["fc2.weight"] *= 3
        state["fc2.bias"] *= 3

    shipped = opened_with(PAGE, {"model": "lenet_digits", "noise": "0.5"})
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "upload"
    app.query_params["noise"] = "0.5"
    at = app.run()
    at.selectbox(key="calibration.upload_arch").set_value("lenet_digits")
    at.get("file_uploader")[0].upload(
        "hot.safetensors", lenet_upload(triple), "application/octet-stream"
    ).run()
    assert not at.exception and not errors(at)
    assert _metric(at, "Accuracy") == _metric(shipped, "Accuracy") != "100.0%"
    t_shipped = float(_metric(shipped, "Fitted temperature").removeprefix("T = "))
    t_upload = float(_metric(at, "Fitted temperature").removeprefix("T = "))
    assert t_upload == pytest.approx(3 * t_shipped, rel=1e-2)  # both shown to 3 digits
    assert float(_metric(at, "Mean confidence").rstrip("%")) > float(
        _metric(shipped, "Mean confidence").rstrip("%")
    )


@pytest.mark.parametrize(("n", "said"), [(1, "The one answer is right."), (3, None)])
def test_too_few_images_fit_no_temperature(n, said):
    at = opened_with(PAGE, {"n": n})
    assert not errors(at)
    images = "the first image" if n == 1 else f"the first {n} images"  # not "first 1 image"
    assert f"on {images} of the digits test split." in at.markdown[0].value
    assert _metric(at, "Fitted temperature") == "–"
    assert any("Temperature scaling needs 4 images or more" in c.value for c in at.caption)
    assert said is None or any(said == s.value for s in at.success)


def test_the_other_shipped_models_are_scored_on_the_same_shifted_images(downloads):
    at = opened_with(PAGE, {"noise": "0.3", "compare": "resnet_digits,vit_digits"})
    assert not errors(at) and not link_warnings(at)
    table = pd.read_csv(io.BytesIO(downloads["lenet_digits_calibration_comparison.csv"]))
    assert table["model"].tolist() == ["lenet_digits", "resnet_digits", "vit_digits"]
    for name, row in zip(table["model"], table.to_dict("records"), strict=True):
        logits, labels = _answers(name, noise=0.3)
        expected = calibration.summarize(logits, labels)
        for column, value in expected.items():
            assert row[column] == pytest.approx(value, abs=2e-6), (name, column)
    assert table["accuracy"][0] > 0.8 > table["accuracy"][2]  # the LeNet shrugs the noise off
    assert any("Most overconfident: vit_digits" in c.value for c in at.caption)
    assert at.query_params["compare"] == "resnet_digits,vit_digits"
    bad = opened_with(PAGE, {"compare": "vgg16"})
    assert any("Ignored `compare=vgg16`" in w for w in link_warnings(bad))
