"""vizlib.train.training_epochs: the interactive training loop, checked step by step against a
run written out by hand, and as the source of the shipped checkpoints' train()."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vizlib.data.datasets import load_dataset
from vizlib.train import (
    RECIPES,
    Predictions,
    TrainSettings,
    confusion_matrix,
    misclassified,
    predict_test_split,
    train,
    training_epochs,
)
from vizlib.zoo import build_model


def test_the_first_step_is_the_one_written_out_by_hand():
    """Seed, build, shuffle, one batch's loss and gradient norm, as the docstring promises."""
    settings = TrainSettings(optimizer="SGD", lr=0.05, batch_size=32, epochs=1, augment=False,
                             schedule="constant", seed=5)  # fmt: skip
    _, record = next(training_epochs(settings, device="cpu"))
    torch.manual_seed(5)
    model = build_model("lenet", RECIPES["lenet"]["config"])
    generator = torch.Generator().manual_seed(5)
    x, y, _ = load_dataset("digits", "train", RECIPES["lenet"]["input_size"])
    first = torch.randperm(len(x), generator=generator)[:32]
    loss = F.cross_entropy(model(x[first]), y[first])
    loss.backward()
    norm = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters()))
    assert record.step_losses[0] == pytest.approx(float(loss.detach()), rel=1e-5)
    assert record.grad_norms[0] == pytest.approx(float(norm), rel=1e-4)
    assert record.lrs == [0.05] * math.ceil(len(x) / 32)  # constant schedule
    assert len(record.step_losses) == len(record.grad_norms) == math.ceil(len(x) / 32)
    # the epoch's loss is the mean over images of each step's batch mean
    sizes = [min(32, len(x) - i) for i in range(0, len(x), 32)]
    mean = sum(v * n for v, n in zip(record.step_losses, sizes, strict=True)) / len(x)
    assert record.train_loss == pytest.approx(mean, rel=1e-9)
    assert 0 <= record.test_accuracy <= 1 and record.epoch == 1 and not record.diverged


def test_each_layers_gradient_norm_and_update_ratio_are_the_ones_worked_out_by_hand():
    """One step an epoch (a batch bigger than the split): the epoch's means are that step's
    values. Plain SGD with weight decay moves a kernel by lr * (g + wd * w) and a bias by
    lr * g, so the update ratio is |lr * (g + wd * w)| / |w| over the layer's parameters."""
    lr, wd = 0.05, 0.01
    settings = TrainSettings(optimizer="SGD", lr=lr, weight_decay=wd, batch_size=2048, epochs=1,
                             augment=False, schedule="constant", seed=2)  # fmt: skip
    _, record = next(training_epochs(settings, device="cpu"))
    torch.manual_seed(2)
    model = build_model("lenet", RECIPES["lenet"]["config"])
    x, y, _ = load_dataset("digits", "train", RECIPES["lenet"]["input_size"])
    F.cross_entropy(model(x), y).backward()  # the whole split, in any order: the same mean
    assert list(record.layer_grad_norms) == ["conv1", "conv2", "fc1", "fc2"]
    assert list(record.layer_update_ratios) == ["conv1", "conv2", "fc1", "fc2"]
    for layer in ("conv1", "conv2", "fc1", "fc2"):
        module = getattr(model, layer)
        w, b = module.weight.detach(), module.bias.detach()
        g_w, g_b = module.weight.grad, module.bias.grad
        norm = torch.sqrt((g_w**2).sum() + (g_b**2).sum())
        step = torch.sqrt(((lr * (g_w + wd * w)) ** 2).sum() + ((lr * g_b) ** 2).sum())
        ratio = step / torch.sqrt((w**2).sum() + (b**2).sum())
        assert record.layer_grad_norms[layer] == pytest.approx(float(norm), rel=1e-4)
        assert record.layer_update_ratios[layer] == pytest.approx(float(ratio), rel=1e-3)
    # the layers' norms make up the global one
    total = math.sqrt(sum(v**2 for v in record.layer_grad_norms.values()))
    assert record.grad_norms[0] == pytest.approx(total, rel=1e-5)


def test_layers_are_grouped_by_module_with_residual_and_transformer_blocks_whole():
    from vizlib.train import layer_groups

    resnet = build_model("resnet", RECIPES["resnet"]["config"])
    groups = layer_groups(resnet)
    assert list(groups) == ["stem", "layers.0", "layers.1", "layers.2", "fc"]
    assert "layers.1.shortcut.0.weight" in groups["layers.1"]
    vit = build_model("vit", RECIPES["vit"]["config"])
    groups = layer_groups(vit)
    assert list(groups) == ["cls_token", "pos_embed", "patch_embed", "blocks.0", "blocks.1",
                            "blocks.2", "blocks.3", "norm", "head"]  # fmt: skip
    # every parameter in exactly one group
    names = [n for members in groups.values() for n in members]
    assert sorted(names) == sorted(n for n, _ in vit.named_parameters())


def test_a_diverging_run_keeps_its_layers_last_finite_gradients():
    settings = TrainSettings(optimizer="SGD", lr=1e6, epochs=5, init_scale=5.0, augment=False)
    records = [r for _, r in training_epochs(settings, device="cpu")]
    first = records[0].layer_grad_norms
    assert set(first) == {"conv1", "conv2", "fc1", "fc2"}
    # NaN only where no step of the epoch had a finite gradient; the rest are real numbers
    assert any(math.isfinite(v) and v > 0 for v in first.values())


def test_same_settings_same_run_and_the_accuracies_are_the_models():
    settings = TrainSettings(epochs=2, seed=1)
    first = list(training_epochs(settings, device="cpu"))
    second = list(training_epochs(settings, device="cpu"))
    assert [r.step_losses for _, r in first] == [r.step_losses for _, r in second]
    model, record = first[-1]
    assert not model.training  # yielded in eval mode
    x, y, _ = load_dataset("digits", "test", RECIPES["lenet"]["input_size"])
    with torch.no_grad():
        logits = model(x)
    assert record.test_accuracy == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert record.test_loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    # warm-up then cosine: the rate climbs, then falls towards 0 by the last step
    lrs = [lr for _, r in first for lr in r.lrs]
    peak = lrs.index(max(lrs))
    assert 0 < peak < len(lrs) - 1 and max(lrs) <= settings.lr and lrs[-1] < 0.1 * settings.lr


def test_train_writes_the_last_epoch_of_the_recipe_run(tmp_path):
    """The shipped checkpoints come from train(), which runs training_epochs on the recipe."""
    from safetensors.torch import load_file

    train("lenet", epochs=2, seed=3, out_dir=tmp_path, name="t", progress=False)
    saved = load_file(str(tmp_path / "t.safetensors"))
    *_, (model, _) = training_epochs(TrainSettings.recipe("lenet", epochs=2, seed=3))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(saved[key], value, rtol=0, atol=0)


def test_a_learning_rate_far_too_high_stops_the_run_when_the_loss_is_not_a_number():
    settings = TrainSettings(optimizer="SGD", lr=1e6, epochs=5, init_scale=5.0, augment=False)
    records = [r for _, r in training_epochs(settings, device="cpu")]
    assert records[-1].diverged and len(records) < 5
    assert math.isnan(records[-1].test_accuracy) and math.isnan(records[-1].test_loss)


def test_zero_initial_weights_leave_every_unit_of_a_layer_the_same():
    """init_scale multiplies every weight matrix and kernel: at 0 all of conv1's filters start
    equal, get equal gradients, and stay equal."""
    settings = TrainSettings(init_scale=0.0, epochs=1, augment=False)
    model, _ = next(training_epochs(settings, device="cpu"))
    w = model.conv1.weight.detach()  # (32, 1, 5, 5)
    torch.testing.assert_close(w, w[:1].expand_as(w))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"architecture": "alexnet"}, "Unknown model"),
        ({"optimizer": "Adagrad"}, "Unknown optimizer"),
        ({"schedule": "step"}, "Unknown schedule"),
        ({"lr": 0.0}, "learning rate"),
        ({"lr": float("nan")}, "learning rate"),
        ({"batch_size": 0}, "at least 1"),
        ({"weight_decay": -1.0}, "Weight decay"),
        ({"init_scale": -1.0}, "init_scale"),
    ],
)
def test_impossible_settings_are_refused_before_any_work(change, message):
    with pytest.raises(ValueError, match=message):
        next(training_epochs(TrainSettings(**change)))


def test_confusion_matrix_by_hand_and_against_scikit_learn():
    from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

    # true 0 0 1 2 2 2, predicted 0 1 1 2 0 2: rows true, columns predicted
    counts = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]),
                              num_classes=4)  # fmt: skip
    np.testing.assert_array_equal(counts, [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0] * 4])
    rng = np.random.default_rng(0)
    labels, predicted = rng.integers(0, 9, 450), rng.integers(0, 10, 450)  # no true 9s
    np.testing.assert_array_equal(
        confusion_matrix(labels, predicted, num_classes=10),
        sklearn_confusion_matrix(labels, predicted, labels=list(range(10))),
    )
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), num_classes=3)
    with pytest.raises(ValueError, match="alike"):
        confusion_matrix(np.array([0, 1]), np.array([0]), num_classes=3)


def test_the_test_split_predictions_are_the_ones_the_epoch_record_counted():
    from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

    model, record = next(training_epochs(TrainSettings(epochs=1, seed=7), device="cpu"))
    model.train()  # the mode is put back afterwards
    predictions = predict_test_split(model, input_size=RECIPES["lenet"]["input_size"])
    assert model.training
    x, y, _ = load_dataset("digits", "test", (28, 28))
    np.testing.assert_array_equal(predictions.labels, y.numpy())
    assert predictions.probabilities.shape == (450, 10)
    np.testing.assert_allclose(predictions.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert predictions.accuracy == pytest.approx(record.test_accuracy)
    model.eval()
    with torch.no_grad():
        expected = model(x).argmax(1).numpy()
    np.testing.assert_array_equal(predictions.predicted, expected)
    np.testing.assert_array_equal(
        confusion_matrix(predictions.labels, predictions.predicted, num_classes=10),
        sklearn_confusion_matrix(y.numpy(), expected, labels=list(range(10))),
    )


def test_misclassified_puts_the_surest_mistakes_first():
    probabilities = np.array(
        [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.4, 0.6]], np.float32
    )  # predicted 0 1 0 1 0 1
    predictions = Predictions(labels=np.array([0, 0, 1, 0, 1, 0]), probabilities=probabilities)
    # wrong: 1 (0.8 sure), 2 (0.6), 3 (0.7), 4 (0.8), 5 (0.6); ties keep the split's order
    np.testing.assert_array_equal(misclassified(predictions), [1, 4, 3, 2, 5])
    np.testing.assert_array_equal(misclassified(predictions, limit=2), [1, 4])
    assert predictions.accuracy == pytest.approx(1 / 6)


def test_the_step_loop_reads_nothing_back_from_the_device(monkeypatch):
    """On a GPU every read-back (item, float, int, bool, tolist, cpu, numpy) waits for the
    device: the per-layer records must stay device tensors until the epoch ends. Counted on
    the CPU, an epoch of 22 steps (batch 64) reads back as often as one of 3 (batch 512)."""
    calls = []
    for name in ("item", "__float__", "__int__", "__bool__", "tolist", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            # the loop's own read-backs only: torch's Adam reads its step counter each step,
            # a CPU tensor even on a GPU (no wait)
            if sys._getframe(1).f_code.co_filename.endswith(os.path.join("vizlib", "train.py")):
                calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def read_backs(batch_size: int) -> int:
        settings = TrainSettings(batch_size=batch_size, epochs=1, augment=False)
        run = training_epochs(settings, device="cpu")
        calls.clear()
        _, record = next(run)
        assert len(record.layer_grad_norms) == 4 and len(record.layer_update_ratios) == 4
        return len(calls)

    assert read_backs(64) == read_backs(512)
