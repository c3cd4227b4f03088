"""AppTest for the Training Lab page."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

import ui
from tests.pages._shared import errors, link_warnings, opened_with, plotly_array
from vizlib import zoo
from vizlib.data.datasets import load_dataset
from vizlib.train import TrainSettings, training_epochs

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "training.py")


def _train(at: AppTest) -> AppTest:
    at.button(key="training.train").click().run()
    assert not at.exception and not errors(at)
    return at


def test_a_run_trains_what_the_settings_say_and_its_weights_open_elsewhere(downloads):
    at = opened_with(PAGE, {"epochs": "2", "lr": "0.003", "batch": "32", "seed": "4"})
    assert not link_warnings(at)
    assert any("press **Train**" in i.value for i in at.info)
    _train(at)
    assert at.subheader[0].value == "Run #1 lenet, AdamW, lr 0.003, batch 32, 2 epochs, seed 4"
    settings = TrainSettings(lr=0.003, batch_size=32, epochs=2, seed=4)
    *_, (model, record) = training_epochs(settings, device="cpu")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{record.test_accuracy:.1%}"
    assert metrics["Test loss"] == f"{record.test_loss:.3f}"
    # the weights file is this run's model, and the zoo's uploader takes it as lenet_digits
    data = downloads["lenet_digits_run1.safetensors"]
    uploaded, meta = zoo.load_uploaded(data, "lenet_digits")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(uploaded.state_dict()[key], value)
    assert meta["test_accuracy"] == pytest.approx(record.test_accuracy)
    table = pd.read_csv(io.BytesIO(downloads["training_runs.csv"]))
    assert list(table["epoch"]) == [1, 2]
    assert table["test_accuracy"].iloc[-1] == pytest.approx(record.test_accuracy)
    assert table["grad norm fc2"].iloc[-1] == pytest.approx(record.layer_grad_norms["fc2"])
    assert table["update ratio conv1"].iloc[-1] == pytest.approx(
        record.layer_update_ratios["conv1"]
    )
    # the gradient flow: layer by epoch, log10 of the record's means
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    grad, ratio = charts["training.gradient_flow"]["data"]
    assert grad["y"] == ["conv1", "conv2", "fc1", "fc2"] and grad["x"] == [1, 2]
    np.testing.assert_allclose(
        plotly_array(grad["z"])[:, -1], np.log10(list(record.layer_grad_norms.values())), rtol=1e-6
    )
    np.testing.assert_allclose(
        plotly_array(ratio["z"])[:, -1],
        np.log10(list(record.layer_update_ratios.values())),
        rtol=1e-6,
    )


def test_two_runs_compare_and_clear(downloads):
    at = opened_with(PAGE, {"epochs": "1"})
    _train(at)
    at.select_slider(key="training.lr").set_value(0.1).run()
    at.selectbox(key="training.optimizer").set_value("SGD").run()
    _train(at)
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    names = [t["name"] for t in charts["training.compare"]["data"] if t.get("showlegend", True)]
    assert names == [
        "#1 lenet, AdamW, lr 0.002, batch 64, 1 epoch",
        "#2 lenet, SGD, lr 0.1, batch 64, 1 epoch",
    ]
    assert list(at.dataframe[0].value["optimizer"]) == ["AdamW", "SGD"]
    assert set(downloads) >= {"lenet_digits_run2.safetensors", "training_runs.csv"}
    # only the run drawn keeps its weights and test predictions (18 kB each) in the session
    first, second = at.session_state["training.runs"]
    assert first["weights"] is None and first.get("predictions") is None
    assert second["weights"] is not None and second["predictions"].labels.shape == (450,)
    at.button(key="training.clear").click().run()
    assert not at.dataframe and any("press **Train**" in i.value for i in at.info)


def test_live_charts_are_paced_and_the_finished_run_is_drawn_whole(downloads, monkeypatch):
    """The charts are redrawn when ``ui.Pace`` says so (at most once a second); an epoch they
    skip is still in the results drawn after the run."""
    asked = []

    def due(self) -> bool:  # as if the epochs took a tenth of a second: only the first is drawn
        asked.append(self.seconds)
        return len(asked) == 1

    monkeypatch.setattr(ui.Pace, "due", due)
    at = _train(opened_with(PAGE, {"epochs": "3"}))
    assert asked == [1.0, 1.0, 1.0]  # asked each epoch
    assert list(pd.read_csv(io.BytesIO(downloads["training_runs.csv"]))["epoch"]) == [1, 2, 3]
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    assert charts["training.gradient_flow"]["data"][0]["x"] == [1, 2, 3]
    assert not any(".live" in key for key in charts)  # the live ones gave way to the results


def test_chance_level_is_explained():
    """All-zero initial weights: every filter stays the same and the model only guesses."""
    at = opened_with(PAGE, {"epochs": "1", "init": "0"})
    _train(at)
    assert any("no better than guessing" in w.value for w in at.warning)


def test_the_recipe_button_and_bad_link_values():
    at = opened_with(PAGE, {"arch": "vit", "lr": "7", "optimizer": "Adagrad"})
    assert link_warnings(at) == [
        "Ignored `optimizer=Adagrad` from the link (expected one of SGD, SGD with momentum, "
        "Adam, AdamW).",
        "Ignored `lr=7` from the link (expected 1e-05, 3e-05, 0.0001, 0.0003, 0.001, 0.002, "
        "0.003, 0.01, 0.03, 0.1, 0.3, 1).",
    ]
    at.button(key="training.recipe").click().run()
    recipe = TrainSettings.recipe("vit")
    assert at.select_slider(key="training.lr").value == recipe.lr
    assert at.slider(key="training.epochs").value == 200
    assert at.select_slider(key="training.weight_decay").value == recipe.weight_decay
    assert at.query_params["arch"] == "vit" and at.query_params["epochs"] == "200"
    assert at.select_slider(key="training.label_smoothing").value == recipe.label_smoothing == 0.1
    assert at.query_params["smoothing"] == "0.1"


def test_the_confusion_matrix_and_the_mistakes_are_the_models(downloads, monkeypatch):
    """One epoch: the matrix, its CSV and the gallery are the run's model's answers on the 450
    test images (sklearn's confusion_matrix), computed once per run, not on every rerun."""
    from sklearn.metrics import confusion_matrix

    from vizlib import train

    at = opened_with(PAGE, {"epochs": "1", "seed": "2"})
    _train(at)
    *_, (model, record) = training_epochs(TrainSettings(epochs=1, seed=2), device="cpu")
    x, y, _ = load_dataset("digits", "test", (28, 28))
    with torch.no_grad():
        logits = model(x)
    predicted = logits.argmax(1).numpy()
    expected = confusion_matrix(y.numpy(), predicted, labels=list(range(10)))
    wrong = int((predicted != y.numpy()).sum())
    assert wrong == round(450 * (1 - record.test_accuracy)) and wrong > 0
    assert any(s.value == f"The 450 test images: {wrong} wrong" for s in at.subheader)
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    right, mistakes = (plotly_array(t["z"]) for t in charts["training.confusion"]["data"])
    np.testing.assert_array_equal(np.where(np.isnan(right), mistakes, right), expected)
    table = pd.read_csv(io.BytesIO(downloads["confusion_matrix_run1.csv"]), index_col=0)
    np.testing.assert_array_equal(table.iloc[:, :10].to_numpy(), expected)
    assert list(table["images"]) == list(expected.sum(axis=1))
    np.testing.assert_allclose(table["accuracy"], expected.diagonal() / expected.sum(axis=1))
    # the caption names every cell of the largest count of mistakes, by hand from sklearn's
    off = expected - np.diag(expected.diagonal())
    tied = [f"{t} answered as {p}" for t, p in zip(*np.nonzero(off == off.max()), strict=True)]
    caption = next(c.value for c in at.caption if c.value.startswith("Rows: the true digit"))
    assert all(pair in caption for pair in tied[:4]), (tied, caption)
    # the gallery: the surest mistakes first, each captioned with its classes and probability
    from vizlib.plots import confidence_percent

    probs = torch.softmax(logits, 1)
    confidence = probs.max(1).values.numpy()
    order = sorted(np.flatnonzero(predicted != y.numpy()), key=lambda i: -confidence[i])[:24]
    notes = [a["text"] for a in charts["training.mistakes"]["layout"]["annotations"]]
    assert notes == [
        f"true {y[i]},<br>predicted {predicted[i]}<br>({confidence_percent(confidence[i])})"
        for i in order
    ]
    # a rerun (any widget) reuses the run's predictions instead of running the model again
    calls = []
    monkeypatch.setattr(train, "predict_test_split", lambda *a, **k: calls.append(a))
    at.select_slider(key="training.lr").set_value(0.01).run()
    assert not at.exception and calls == []
    assert any(s.value == f"The 450 test images: {wrong} wrong" for s in at.subheader)


def test_train_during_a_run_marks_the_interrupted_run_stopped():
    """Train pressed while a run trains interrupts it: the rerun finds it still "running"; it
    must say stopped, not stay running beside the new run."""
    at = opened_with(PAGE, {"epochs": "1"})
    interrupted = {"number": 1, "label": "#1 lenet, AdamW, lr 0.002, batch 64",
                   "settings": TrainSettings(epochs=1), "records": [], "status": "running",
                   "weights": None, "device": "cpu"}  # fmt: skip
    at.session_state["training.runs"] = [interrupted]
    _train(at)
    assert list(at.dataframe[0].value["status"]) == ["stopped", "done"]


def test_runs_that_differ_only_in_weight_decay_seed_or_epochs_have_different_names():
    at = opened_with(PAGE, {"epochs": "1", "wd": "0.01", "seed": "3"})
    _train(at)
    assert at.subheader[0].value == (
        "Run #1 lenet, AdamW, lr 0.002, batch 64, 1 epoch, weight decay 0.01, seed 3"
    )


def test_a_diverged_run_says_not_a_number_offers_no_weights_and_counts_its_epochs():
    """SGD at lr 1 (warm-up + cosine): NaN in epoch 2 of 3, training stops there."""
    at = opened_with(PAGE, {"epochs": "3", "optimizer": "SGD", "lr": "1"})
    _train(at)
    assert any("stopped being a number" in w.value for w in at.warning)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == metrics["Test loss"] == "not a number"
    assert not [b for b in at.get("download_button") if b.proto.label.startswith("Download the w")]
    table = at.dataframe[0].value
    assert list(table["epochs done"]) == [2] and list(table["epochs"]) == [3]
    # the explosion shows in the gradient flow: the epoch's finite steps, not NaN
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    grad = charts["training.gradient_flow"]["data"][0]
    assert np.isfinite(plotly_array(grad["z"])).all() and plotly_array(grad["z"])[:, 1].min() > 5


def test_a_run_stopped_early_is_framed_to_its_epochs_and_not_blamed_on_its_settings():
    """The ViT recipe (200 epochs) stopped after 2: near chance because it has barely begun
    (its rate still warming up), not because of a bad rate or initialisation; and its curves
    span the 2 epochs done, not 200 (a sliver at the left edge)."""
    settings = TrainSettings(lr=1e-5, epochs=200, seed=1)
    records = []
    for _, record in training_epochs(settings, device="cpu"):
        records.append(record)
        if len(records) == 2:
            break
    assert records[-1].test_accuracy < 0.2  # the case this test is about
    at = opened_with(PAGE, {"epochs": "1"})
    interrupted = {"number": 1, "label": "#1 lenet, AdamW, lr 1e-05, batch 64",
                   "settings": settings, "records": records, "status": "running",
                   "weights": None, "device": "cpu"}  # fmt: skip
    at.session_state["training.runs"] = [interrupted]
    at.run()
    warnings = [w.value for w in at.warning]
    assert any("Stopped after 2 of 200 epochs" in w and "still warming up" in w for w in warnings)
    assert not any("Common causes" in w for w in warnings)
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    assert charts["training.curves"]["layout"]["xaxis"]["range"] == [0, 2]
    assert charts["training.gradient_flow"]["layout"]["xaxis"]["range"] == [0.5, 2.5]


def test_filters_of_weights_near_zero_say_how_small_they_are():
    """All-zero initial weights under SGD: conv1's kernels stay ~1e-15, noise that the
    stretched grid draws as if it were structure; the caption gives the scale."""
    at = opened_with(PAGE, {"epochs": "1", "init": "0", "optimizer": "SGD", "lr": "0.1"})
    _train(at)
    *_, (model, _) = training_epochs(
        TrainSettings(epochs=1, init_scale=0.0, optimizer="SGD", lr=0.1), device="cpu"
    )
    largest = float(model.conv1.weight.detach().abs().max())
    assert largest < 1e-6
    assert any(f"the largest weight of conv1 is {largest:.2g} in size" in c.value
               for c in at.caption)  # fmt: skip


def test_a_run_stopped_in_its_cosine_decay_is_not_said_to_be_warming_up():
    """3 epochs at lr 1e-5: the warm-up is the first 6 steps; stopped after 2 epochs the rate
    is below its peak because it decays, not because it is still warming up."""
    settings = TrainSettings(lr=1e-5, epochs=3, seed=1)
    records = [r for _, r in itertools.islice(training_epochs(settings, device="cpu"), 2)]
    assert records[-1].test_accuracy < 0.2 and records[-1].lrs[-1] < 0.99 * settings.lr
    at = opened_with(PAGE, {"epochs": "1"})
    at.session_state["training.runs"] = [
        {"number": 1, "label": "#1", "settings": settings, "records": records,
         "status": "running", "weights": None, "device": "cpu"}
    ]  # fmt: skip
    at.run()
    warnings = [w.value for w in at.warning if "Stopped after 2 of 3 epochs" in w.value]
    assert len(warnings) == 1 and "warming up" not in warnings[0]


def test_label_smoothing_trains_a_less_sure_model_and_the_page_says_how_sure():
    """Two epochs of the LeNet with label smoothing 0.2: the run is named by it, trained with it
    (the same record as training_epochs), and the caption under the confusion matrix gives the
    test split's mean confidence, accuracy and ECE (vizlib.calibration on the run's answers),
    and the 82% the smoothed target asks of the true digit."""
    import numpy as np

    from vizlib import calibration, train

    at = _train(opened_with(PAGE, {"epochs": "2", "smoothing": "0.2"}))
    assert at.subheader[0].value.endswith("label smoothing 0.2")
    settings = TrainSettings(epochs=2, label_smoothing=0.2)
    *_, (model, record) = training_epochs(settings, device="cpu")
    assert {m.label: m.value for m in at.metric}["Test accuracy"] == f"{record.test_accuracy:.1%}"
    p = train.predict_test_split(model, input_size=train.RECIPES["lenet"]["input_size"])
    s = calibration.summarize(np.log(p.probabilities.astype(np.float64)), p.labels)
    note = next(c.value for c in at.caption if c.value.startswith("How sure it is"))
    assert f"a mean confidence of {s['mean_confidence']:.1%} for {s['accuracy']:.1%} right" in note
    assert f"calibration error of {s['ece']:.2%}" in note and "towards 82% for the true" in note
    assert s["mean_confidence"] < s["accuracy"] - 0.1  # smoothing made it underconfident
