"""Attributions: against autograd, Captum's own classes and hand-worked cases; model left untouched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from tests.test_device import MetaAsGPU, exact_float32
from vizlib import attribution
from vizlib._hooks import private_copy
from vizlib.attribution import attribute, make_baseline, top_predictions
from vizlib.models import LeNetLike

MEAN, STD = [0.3], [0.3]


def _untouched(net: nn.Module):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    yield net
    assert all(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) == 0
        for m in net.modules()
    ), "hooks left on the model"
    assert not any(m.training for m in net.modules()), "model left in training mode"
    assert not any(p.requires_grad for p in net.parameters()), "requires_grad changed"
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "weights changed"


@pytest.fixture
def lenet():
    """A seeded LeNet with frozen parameters, as the app's shared cache holds it."""
    torch.manual_seed(0)
    yield from _untouched(LeNetLike().eval().requires_grad_(False))


@pytest.fixture
def image():
    return torch.randn(1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_saliency_is_the_input_gradient(lenet, image):
    res = attribute(lenet, image, 3, "saliency")
    x = image[None].clone().requires_grad_(True)
    with torch.enable_grad():
        lenet(x)[0, 3].backward()
    assert res["heatmap"].shape == (28, 28)
    torch.testing.assert_close(torch.from_numpy(res["heatmap"]), x.grad[0].sum(0))


@pytest.mark.parametrize("baseline", ["black", "blurred", "noise"])
def test_integrated_gradients_completeness(lenet, image, baseline):
    res = attribute(
        lenet,
        image,
        7,
        "integrated_gradients",
        n_steps=64,
        baseline=baseline,
        mean=MEAN,
        std=STD,
        internal_batch_size=16,
    )
    with torch.no_grad():
        gap = lenet(image[None])[0, 7] - lenet(res["baseline"])[0, 7]
    total = float(res["attribution"].sum())
    assert total - float(gap) == pytest.approx(res["delta"], abs=1e-4)
    assert res["gap"] == pytest.approx(float(gap), abs=1e-4)
    assert abs(res["delta"]) < 0.05 * max(abs(float(gap)), 1e-3)


def test_black_baseline_is_normalised_zero(image):
    b = make_baseline(image, "black", mean=MEAN, std=STD)
    torch.testing.assert_close(b, torch.full((1, 1, 28, 28), -1.0))
    assert make_baseline(image, "noise").shape == (1, 1, 28, 28)
    with pytest.raises(ValueError):
        make_baseline(image, "grey")


def test_gradcam_equals_captums_layergradcam(lenet, image):
    # imported here: a missing captum fails the tests that need it, not this file's collection
    # (which would stop a `pytest -m gpu` run over several files before any test ran)
    from captum.attr import LayerAttribution, LayerGradCam

    res = attribute(lenet, image, 2, "gradcam", layer="conv2")
    x = image[None].clone().requires_grad_(True)
    ref = LayerGradCam(lenet, lenet.conv2).attribute(x, target=2)  # (1, 1, 4, 4)
    torch.testing.assert_close(torch.from_numpy(res["attribution"]), ref[0].detach())
    up = LayerAttribution.interpolate(ref.detach(), (28, 28), "bilinear")
    torch.testing.assert_close(torch.from_numpy(res["heatmap"]), up[0, 0])
    assert attribute(lenet, image, 2, "gradcam")["layer"] == "conv2"  # last conv by default


def test_gradcam_layer_is_the_last_conv_larger_than_one_by_one():
    """resnet_digits defines its last block's 1 x 1 shortcut after the block's second conv:
    Grad-CAM's default is the 3 x 3 conv2, which sees the block's main path. A model of 1 x 1
    convs only gets its last; one without convs gets None."""
    from vizlib import zoo
    from vizlib.attribution import gradcam_layer
    from vizlib.filters import conv_layer_names

    model, _ = zoo.load_model("resnet_digits")
    assert conv_layer_names(model)[-1] == "layers.2.shortcut.0"
    assert gradcam_layer(model) == "layers.2.conv2"
    assert tuple(dict(model.named_modules())["layers.2.conv2"].kernel_size) == (3, 3)
    pointwise = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Conv2d(2, 2, 1))
    assert gradcam_layer(pointwise) == "2"
    assert gradcam_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2))) is None


def test_occlusion_on_a_linear_model_by_hand():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(16, 2, bias=False)).eval().requires_grad_(False)
    x = torch.randn(1, 4, 4)
    res = attribute(lin, x, 1, "occlusion", window=2, stride=2)
    contrib = lin[1].weight[1].view(4, 4) * x[0]  # (4, 4)
    # Non-overlapping 2x2 windows: every pixel gets its whole window's contribution.
    expected = contrib.view(2, 2, 2, 2).sum((1, 3)).repeat_interleave(2, 0).repeat_interleave(2, 1)
    torch.testing.assert_close(torch.from_numpy(res["heatmap"]), expected)


def test_out_of_memory_halves_the_internal_batch(lenet, image, monkeypatch):
    original = lenet.forward

    def small_batches_only(x):
        if x.shape[0] > 8:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(x)

    monkeypatch.setattr(lenet, "forward", small_batches_only)
    res = attribute(lenet, image, 1, "integrated_gradients", n_steps=32, mean=MEAN, std=STD)
    monkeypatch.undo()
    assert "internal_batch_size=8" in res["notice"]
    assert res["heatmap"].shape == (28, 28)


def test_bad_options_raise_clear_errors(lenet, image):
    with pytest.raises(ValueError, match="choose from"):
        attribute(lenet, image, 0, "lime")
    with pytest.raises(ValueError, match="class index"):
        attribute(lenet, image, 10, "saliency")
    with pytest.raises(ValueError, match="not a conv layer"):
        attribute(lenet, image, 0, "gradcam", layer="fc1")
    with pytest.raises(ValueError, match="window"):
        attribute(lenet, image, 0, "occlusion", window=40)
    with pytest.raises(ValueError, match="must not exceed the window"):
        attribute(lenet, image, 0, "occlusion", window=4, stride=5)
    with pytest.raises(ValueError, match="NaN"):
        attribute(lenet, torch.full((1, 28, 28), float("nan")), 0, "saliency")


def test_top_predictions_match_softmax(lenet, image):
    top = top_predictions(lenet, image, k=5, class_names=[f"digit {i}" for i in range(10)])
    probs = torch.softmax(lenet(image[None]), 1)[0]
    assert [t["class"] for t in top] == probs.argsort(descending=True)[:5].tolist()
    assert top[0]["probability"] == pytest.approx(float(probs.max()))
    assert top[0]["label"] == f"digit {top[0]['class']}"


def test_vit_gradcam_on_patch_embedding(tiny_vit):
    tiny_vit.requires_grad_(False)
    x = torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(1))
    res = attribute(tiny_vit, x, 0, "gradcam", layer="patch_embed")
    assert res["attribution"].shape == (1, 4, 4) and res["heatmap"].shape == (16, 16)
    assert all(len(m._forward_hooks) == 0 for m in tiny_vit.modules())


def test_integrated_gradients_delta_is_small_on_a_shipped_model():
    from vizlib import data, zoo

    if "lenet_digits" not in zoo.list_models():
        pytest.skip("the shipped lenet_digits checkpoint is not in checkpoints/")
    model, meta = zoo.load_model("lenet_digits", device="cpu")
    model.requires_grad_(False)
    images, labels, _ = data.load_dataset("digits", "test")
    for i in range(3):
        res = attribute(
            model,
            images[i],
            int(labels[i]),
            "integrated_gradients",
            n_steps=64,
            mean=meta["mean"],
            std=meta["std"],
            internal_batch_size=64,
        )
        assert abs(res["delta"]) < 0.02 * abs(res["gap"]), (i, res["delta"], res["gap"])
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


@pytest.mark.gpu
def test_attributions_on_the_gpu_match_the_cpu(image):
    torch.manual_seed(0)
    cpu = LeNetLike().eval().requires_grad_(False)
    gpu = LeNetLike().eval().requires_grad_(False).to("cuda")
    gpu.load_state_dict(cpu.state_dict())
    for method in attribution.METHODS:
        a = attribute(cpu, image, 3, method, mean=MEAN, std=STD, baseline="noise")
        with exact_float32():
            b = attribute(
                gpu, image, 3, method, mean=MEAN, std=STD, baseline="noise", device="cuda"
            )
        assert b["device"].startswith("cuda") and b["notice"] is None
        assert np.abs(a["heatmap"]).max() > 0
        torch.testing.assert_close(
            torch.from_numpy(b["heatmap"]), torch.from_numpy(a["heatmap"]), rtol=1e-4, atol=1e-6
        )
        if method == "integrated_gradients":
            assert b["delta"] == pytest.approx(a["delta"], abs=1e-5)
    top_cpu, top_gpu = top_predictions(cpu, image), top_predictions(gpu, image, device="cuda")
    assert [t["class"] for t in top_gpu] == [t["class"] for t in top_cpu]
    with pytest.raises(ValueError, match="never moved"):
        attribute(cpu, image, 3, "saliency", device="cuda")


@pytest.mark.parametrize("method", attribution.METHODS)
def test_attributions_run_on_the_models_device(method, image):
    """The meta device as a GPU: Captum's passes run on the model's device (an operation mixing
    devices raises), baselines included, and the results come back as CPU arrays."""
    torch.manual_seed(0)
    model = LeNetLike().eval().requires_grad_(False).to("meta")
    with MetaAsGPU() as mode:
        res = attribute(model, image, 3, method, mean=MEAN, std=STD, n_steps=8, baseline="noise")
        top = top_predictions(model, image)
    assert res["device"] == "meta" and res["notice"] is None
    assert res["heatmap"].shape == (28, 28) and isinstance(res["attribution"], np.ndarray)
    assert len(top) == 5 and "conv2d" in mode.device_ops
    assert mode.host_reads == (1 if method == "integrated_gradients" else 0)  # IG's delta


class _TooBigForTheGPU(LeNetLike):
    """Runs out of device memory in every gradient pass on the device (meta), not on the CPU."""

    def forward(self, x):
        if x.is_meta and torch.is_grad_enabled():
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().forward(x)


def test_out_of_gpu_memory_falls_back_to_a_cpu_copy_made_off_the_gpu(image):
    """The CPU copy must not be made on the GPU, which has just run out of memory (deepcopy
    would clone every tensor where it is): only views and copies to the CPU touch the device."""
    torch.manual_seed(0)
    cpu = _TooBigForTheGPU().eval().requires_grad_(False)
    model = copy.deepcopy(cpu).to("meta")
    with MetaAsGPU():
        res = attribute(model, image, 3, "saliency")
    assert res["device"] == "cpu" and "computed on the CPU" in res["notice"]
    assert res["heatmap"].shape == (28, 28)
    assert all(p.is_meta for p in model.parameters())  # the shared model did not move
    with MetaAsGPU() as mode:
        private_copy(model, "cpu")
    assert set(mode.device_ops) <= {"__get__", "detach", "to"}
    # the copy holds the model's values in storage of its own, without the model's hooks
    handle = cpu.conv1.register_forward_hook(lambda *args: None)
    try:
        clone = private_copy(cpu, "cpu")
    finally:
        handle.remove()
    assert all(len(m._forward_hooks) == 0 for m in clone.modules())
    for a, b in zip(clone.state_dict().values(), cpu.state_dict().values(), strict=True):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_pass_seconds_times_warm_passes_at_two_batch_sizes(lenet, image):
    calls = []
    real_forward = lenet.forward

    def counting(x):
        calls.append(x.shape[0])
        return real_forward(x)

    lenet.forward = counting
    try:
        times = attribution.pass_seconds(lenet, image, batch=4, budget_s=0.0)
        assert calls == [1, 1, 1, 4, 4]  # warm-up, then at least min_repeats=2 of each size
        calls.clear()
        attribution.pass_seconds(lenet, image, batch=4, budget_s=1e6, max_repeats=3)
        assert calls == [1, 1, 1, 1, 4, 4, 4]  # a generous budget stops at max_repeats
    finally:
        del lenet.forward
    assert times.batch == 4 and 0 < times.single < 5 and 0 < times.batched < 5
    with pytest.raises(ValueError, match="at least 2"):
        attribution.pass_seconds(lenet, image, batch=1)


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("saliency", {}),
        ("gradcam", {}),
        ("integrated_gradients", {"n_steps": 50, "internal_batch_size": 32}),
        ("integrated_gradients", {"n_steps": 20, "internal_batch_size": None}),
        ("occlusion", {"window": 4, "stride": 2}),
    ],
)
def test_estimate_counts_the_passes_captum_makes(lenet, image, method, options):
    """Count every forward pass attribute() really runs (a pass under autograd costs
    GRADIENT_COST): the estimate from passes costing 1 s whatever their size is the weighted
    number of passes, and from passes costing 1 s per image the weighted number of images."""
    passes = images = 0.0
    real_forward = lenet.forward

    def counting(x):
        nonlocal passes, images
        weight = attribution.GRADIENT_COST if torch.is_grad_enabled() and x.requires_grad else 1.0
        passes += weight
        images += weight * x.shape[0]
        return real_forward(x)

    lenet.forward = counting
    try:
        attribute(lenet, image, 3, method, **options)
    finally:
        del lenet.forward
    n_windows = ((28 - 4) // 2 + 1) ** 2
    kwargs = {k: v for k, v in options.items() if k in ("n_steps", "internal_batch_size")}
    if method == "occlusion":
        kwargs["n_windows"] = n_windows
    per_pass = attribution.PassTimes(1.0, 1.0, 4)
    per_image = attribution.PassTimes(1.0, 4.0, 4)
    assert attribution.estimate_seconds(method, per_pass, **kwargs) >= passes
    assert attribution.estimate_seconds(method, per_image, **kwargs) == images


def test_pass_times_interpolate_then_scale_up():
    # 0.1 s overhead + 0.01 s per image, measured exactly at 1 and 4 images
    times = attribution.PassTimes(0.11, 0.14, 4)
    assert times.seconds(1) == pytest.approx(0.11)
    assert times.seconds(3) == pytest.approx(0.13)
    # past the measured batch, never below the truth (0.1 + 16 x 0.01 = 0.26 s)
    assert times.seconds(16) == pytest.approx(0.14 * 4)
    assert times.seconds(16) >= 0.26


def test_estimate_by_hand():
    times = attribution.PassTimes(0.5, 2.0, 4)  # 0.5 s per image, no overhead
    # 1 check pass + 3 x (passes of 32 and 18 steps) + 2 delta passes
    ig = attribution.estimate_seconds(
        "integrated_gradients", times, n_steps=50, internal_batch_size=32
    )
    assert ig == pytest.approx(0.5 + 3 * 25.0 + 1.0)
    # 2 unoccluded passes + 169 windows in passes of 16
    occ = attribution.estimate_seconds("occlusion", times, n_windows=169)
    assert occ == pytest.approx(1.0 + 84.5)
    assert attribution.estimate_seconds("saliency", times) == pytest.approx(4 * 0.5)
    with pytest.raises(ValueError, match="Unknown method"):
        attribution.estimate_seconds("lime", times)


class _Block(nn.Module):
    """A residual block whose one in-place ReLU is called twice, as torchvision's BasicBlock."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.conv1(x))
        out = self.conv2(out)
        out += x
        return self.relu(out)


def _residual_net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), _Block(), nn.Flatten(), nn.Linear(3 * 8 * 8, 4)
    ).eval().requires_grad_(False)  # fmt: skip


@pytest.mark.parametrize("net", ["lenet", "residual"])
def test_guided_backprop_is_captums(net, lenet):
    from captum.attr import GuidedBackprop

    model = lenet if net == "lenet" else _residual_net()
    shape = (1, 28, 28) if net == "lenet" else (1, 8, 8)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    ours = attribute(model, x, 2, "guided_backprop")
    twin = copy.deepcopy(model)  # Captum's hooks on a model of their own
    with pytest.warns(UserWarning, match="backward hooks"):
        theirs = GuidedBackprop(twin).attribute(x[None].clone().requires_grad_(True), target=2)
    np.testing.assert_allclose(ours["heatmap"], theirs[0].sum(0).numpy(), rtol=1e-5, atol=1e-7)
    plain = attribute(model, x, 2, "saliency")["heatmap"]
    assert not np.allclose(ours["heatmap"], plain)  # the rule changed the gradient
    assert ours["notice"] is None
    assert all(not m._forward_hooks for m in model.modules())


def test_guided_backprop_without_relus_is_the_gradient_and_says_so():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.GELU(), nn.Linear(8, 3)).eval()
    x = torch.randn(1, 4, 4)
    guided = attribute(model, x, 1, "guided_backprop")
    assert np.allclose(guided["heatmap"], attribute(model, x, 1, "saliency")["heatmap"])
    assert "no ReLU" in guided["notice"]
