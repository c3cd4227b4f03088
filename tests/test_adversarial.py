"""vizlib.adversarial against FGSM worked out by hand on a linear model, and the defining
properties of PGD (the eps-ball, the pixel range, a loss no lower than FGSM's) on lenet_digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vizlib import zoo
from vizlib.adversarial import accuracy_under_attack, attack
from vizlib.data.datasets import denormalize, load_dataset
from vizlib.plots import perturbation_tile, plot_attack_accuracy


@pytest.fixture(scope="module")
def lenet():
    model, meta = zoo.load_model("lenet_digits")
    images, labels, _ = load_dataset("digits", "test", meta["input_size"][1:])
    pixels = denormalize(images[:64], meta["mean"], meta["std"])  # (64, 1, 28, 28) in [0, 1]
    return model, meta, pixels, labels[:64]


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_fgsm_on_a_linear_model_by_hand():
    torch.manual_seed(0)
    linear = nn.Linear(4, 3)
    model = nn.Sequential(nn.Flatten(), linear).eval()
    x = torch.tensor([[[[0.5, 0.3], [0.98, 0.02]]]])  # (1, 1, 2, 2), two pixels near the edges
    y = torch.tensor([2])
    mean, std, eps = [0.4], [0.25], 0.05
    w, b = linear.weight.detach().numpy(), linear.bias.detach().numpy()
    z = (x.numpy().reshape(4) - 0.4) / 0.25
    logits = w @ z + b
    p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    grad = w.T @ (p - np.eye(3)[2]) / 0.25  # dL/dpixel of the cross-entropy
    expected = np.clip(x.numpy().reshape(4) + eps * np.sign(grad), 0, 1)
    result = attack(model, x, y, eps=eps, mean=mean, std=std, method="FGSM")
    np.testing.assert_allclose(result.adversarial.numpy().reshape(4), expected, atol=1e-6)
    np.testing.assert_allclose(result.clean_probs.numpy()[0], p, rtol=1e-5)
    assert result.losses[0] == pytest.approx(-np.log(p[2]), rel=1e-5)
    # targeted towards class 2 moves the other way
    towards = attack(model, x, y, eps=eps, mean=mean, std=std, method="FGSM", targeted=True)
    expected_towards = np.clip(x.numpy().reshape(4) - eps * np.sign(grad), 0, 1)
    np.testing.assert_allclose(towards.adversarial.numpy().reshape(4), expected_towards, atol=1e-6)


def test_pgd_stays_in_the_ball_and_beats_fgsm(lenet):
    model, meta, pixels, labels = lenet
    before = _state(model)
    eps = 16 / 255
    fgsm = attack(model, pixels, labels, eps=eps, mean=meta["mean"], std=meta["std"])
    pgd = attack(model, pixels, labels, eps=eps, mean=meta["mean"], std=meta["std"], method="PGD")
    for result in (fgsm, pgd):
        assert result.perturbation.abs().max() <= eps + 1e-6
        assert result.adversarial.min() >= 0 and result.adversarial.max() <= 1
        torch.testing.assert_close(result.adversarial - pixels, result.perturbation)
    assert len(pgd.losses) == 11  # before each of the 10 steps, and after the last
    assert pgd.losses[-1] > fgsm.losses[-1] > fgsm.losses[0]
    # the losses are the model's own: recompute the last one
    x = (pgd.adversarial - meta["mean"][0]) / meta["std"][0]
    with torch.no_grad():
        assert pgd.losses[-1] == pytest.approx(float(F.cross_entropy(model(x), labels)), rel=1e-5)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_a_targeted_pgd_reaches_its_class(lenet):
    model, meta, pixels, labels = lenet
    target = (labels + 1) % 10
    result = attack(
        model,
        pixels,
        target,
        eps=64 / 255,
        mean=meta["mean"],
        std=meta["std"],
        method="PGD",
        steps=20,
        targeted=True,
    )
    assert (result.adversarial_probs.argmax(1) == target).float().mean() >= 0.9
    assert (result.clean_probs.argmax(1) == target).sum() == 0


def test_accuracy_under_attack_falls_from_the_clean_accuracy(lenet):
    model, meta, pixels, labels = lenet
    x = (pixels - meta["mean"][0]) / meta["std"][0]
    with torch.no_grad():
        clean = float((model(x).argmax(1) == labels).float().mean())
    levels = [0, 8 / 255, 32 / 255]
    kwargs = {"mean": meta["mean"], "std": meta["std"], "batch_size": 24}
    fgsm = accuracy_under_attack(model, pixels, labels, levels, **kwargs)
    pgd = accuracy_under_attack(model, pixels, labels, levels, method="PGD", **kwargs)
    assert fgsm[0] == pgd[0] == pytest.approx(clean)
    assert fgsm[0] >= fgsm[1] >= fgsm[2] and pgd[2] <= fgsm[2] and pgd[2] < 0.5
    # one batch per (eps, batch): stopping after the fourth keeps the first eps's accuracy
    calls = []
    stopped = accuracy_under_attack(
        model,
        pixels,
        labels,
        levels,
        callback=lambda d, t: calls.append((d, t)) or d < 4,
        **kwargs,
    )
    assert calls[-1] == (4, 9) and stopped == fgsm[:1]


def test_bad_arguments(lenet):
    model, meta, pixels, labels = lenet
    kwargs = {"mean": meta["mean"], "std": meta["std"]}
    with pytest.raises(ValueError, match="method must be one of"):
        attack(model, pixels, labels, eps=0.1, method="CW", **kwargs)
    with pytest.raises(ValueError, match="8/255"):
        attack(model, pixels, labels, eps=8, **kwargs)  # grey levels, not a pixel change
    with pytest.raises(ValueError, match="pixel values in"):
        attack(model, pixels * 255, labels, eps=0.1, **kwargs)
    with pytest.raises(ValueError, match="labels must be"):
        attack(model, pixels, labels[:3], eps=0.1, **kwargs)
    with pytest.raises(ValueError, match="steps must be"):
        attack(model, pixels, labels, eps=0.1, method="PGD", steps=0, **kwargs)
    with pytest.raises(ValueError, match="std must be positive"):
        attack(model, pixels, labels, eps=0.1, mean=[0.5], std=[0.0])
    nan = pixels.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        attack(model, nan, labels, eps=0.1, **kwargs)


def test_perturbation_tile_and_the_accuracy_plot():
    d = np.array([[-0.1, 0.0, 0.05, 0.1]])
    np.testing.assert_allclose(perturbation_tile(d, 0.1), [[0.0, 0.5, 0.75, 1.0]])
    fig = plot_attack_accuracy(
        [0, 8, 16], {"lenet": {"FGSM": [1.0, 0.6, 0.2], "PGD": [1.0, 0.4]}}, images=64, chance=0.1
    )
    fgsm, pgd = fig.data
    assert list(fgsm.x) == [0, 8, 16] and list(pgd.x) == [0, 8]  # PGD stopped early
    assert (fgsm.name, pgd.name) == ("FGSM", "PGD") and fgsm.line.color != pgd.line.color
    assert fig.layout.shapes[0].y0 == 0.1
    # several models: a colour per model, FGSM dotted
    both = plot_attack_accuracy(
        [0, 8],
        {"lenet": {"FGSM": [1, 0.5], "PGD": [1, 0.3]}, "vit": {"FGSM": [1, 0.2], "PGD": [1, 0]}},
        images=64,
    )
    assert [t.name for t in both.data] == ["lenet, FGSM", "lenet, PGD", "vit, FGSM", "vit, PGD"]
    assert [t.line.dash for t in both.data] == ["dot", None, "dot", None]
    assert both.data[0].line.color == both.data[1].line.color != both.data[2].line.color


@pytest.mark.gpu
def test_a_model_on_the_gpu_makes_the_cpus_attack(lenet):
    import copy

    from tests.test_device import exact_float32

    model, meta, pixels, labels = lenet
    gpu = copy.deepcopy(model).to("cuda")
    kwargs = {"eps": 8 / 255, "mean": meta["mean"], "std": meta["std"], "method": "PGD"}
    with exact_float32():
        on_gpu = attack(gpu, pixels[:16], labels[:16], **kwargs)  # CPU images, results on the CPU
    on_cpu = attack(model, pixels[:16], labels[:16], **kwargs)
    assert on_gpu.adversarial.device.type == "cpu"
    # a sign may flip where the gradient is near 0, so a pixel or two may differ: compare the
    # step's pixels, the predictions and the losses
    assert (on_gpu.adversarial != on_cpu.adversarial).float().mean() < 0.01
    agree = on_gpu.adversarial_probs.argmax(1) == on_cpu.adversarial_probs.argmax(1)
    assert int(agree.sum()) >= 15
    assert on_gpu.losses == pytest.approx(on_cpu.losses, rel=1e-2)
