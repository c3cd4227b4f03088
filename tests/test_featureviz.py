"""vizlib.featureviz: known answers for gradient ascent on the input, and a shared model left as
it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vizlib.data.datasets import denormalize
from vizlib.featureviz import (
    input_bounds,
    objective_scores,
    optimise_input,
)

PLAIN = dict(jitter=0, blur_every=0, clamp=False)  # gradient ascent with the L2 decay only


@pytest.fixture(scope="module")
def lenet_digits():
    from vizlib import zoo

    return zoo.load_model("lenet_digits", device="cpu")


@pytest.fixture(scope="module")
def digits_test(lenet_digits):
    from vizlib.data import load_dataset_for_model

    images, labels, _ = load_dataset_for_model("digits", lenet_digits[1], "test")
    return images, labels


def linear_logits(seed: int = 0) -> nn.Module:
    """(N, 2, 3, 3) -> (N, 4): a flatten and one linear layer, seeded, in eval mode."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(18, 4)).eval()


def test_linear_logits_converge_to_the_closed_form_maximiser():
    """w.x + b - l2 |x|^2 is largest at x* = w / (2 l2): one image per class, as one batch."""
    model = linear_logits()
    w = model[1].weight.detach()  # (4, 18)
    for l2 in (0.5, 2.0):
        out = optimise_input(
            model, None, [2, 0, 3], input_shape=(2, 3, 3), mean=[0.0, 0.0], std=[1.0, 1.0],
            steps=1500, lr=0.02, l2=l2, **PLAIN,
        )  # fmt: skip
        expected = (w[[2, 0, 3]] / (2 * l2)).view(3, 2, 3, 3)
        torch.testing.assert_close(out.inputs, expected, atol=2e-3, rtol=0)
        with torch.no_grad():
            logits = model(expected)[[0, 1, 2], [2, 0, 3]]
        torch.testing.assert_close(out.final, logits, atol=1e-2, rtol=0)
        assert out.objective.shape == (1500, 3) and out.steps == 1500


def test_a_one_by_one_conv_channel_mean_converges_to_its_closed_form():
    """The mean over the 3x3 map of a 1x1 conv is sum_p w.x_p / 9 + b: its maximiser under the
    L2 decay is w / (2 l2 9) at every position; display space is x * std + mean."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 3, kernel_size=1)).eval()
    w = model[0].weight.detach()[:, :, 0, 0]  # (3, 2)
    mean, std = [0.5, 0.2], [0.25, 2.0]
    out = optimise_input(
        model, "0", [1, 2], input_shape=(2, 3, 3), mean=mean, std=std, steps=1500, lr=0.01,
        l2=0.1, **PLAIN,
    )  # fmt: skip
    expected = (w[[1, 2]] / (2 * 0.1 * 9))[:, :, None, None].expand(2, 2, 3, 3)
    torch.testing.assert_close(out.inputs, expected, atol=2e-3, rtol=0)
    torch.testing.assert_close(out.images, denormalize(out.inputs, mean, std, clip=False))
    torch.testing.assert_close(
        out.images[:, 1], 2.0 * out.inputs[:, 1] + 0.2, atol=1e-6, rtol=0
    )  # by hand


def test_clamped_pixels_sit_at_the_corner_of_the_valid_range():
    """Without the decay a linear objective is largest at the box's corner: each pixel at its
    channel's 0 or 1 (before normalisation), by the sign of its weight; the images are in [0, 1]."""
    model = linear_logits(seed=3)
    mean, std = [0.3, 0.6], [0.5, 0.25]
    out = optimise_input(
        model, None, [1], input_shape=(2, 3, 3), mean=mean, std=std, steps=300, lr=0.1, l2=0.0,
        jitter=0, blur_every=0,
    )  # fmt: skip
    w = model[1].weight.detach()[1].view(2, 3, 3)
    torch.testing.assert_close(out.images[0], (w > 0).float(), atol=1e-5, rtol=0)
    low, high = input_bounds(mean, std)
    torch.testing.assert_close(low.flatten(), torch.tensor([-0.6, -2.4]))
    torch.testing.assert_close(high.flatten(), torch.tensor([1.4, 1.6]))


def test_the_blur_is_torchvisions_gaussian_blur():
    from torchvision.transforms.functional import gaussian_blur

    from vizlib.featureviz import _gaussian_blur

    x = torch.randn(2, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    for sigma in (0.5, 1.0, 2.0):
        radius = max(1, int(torch.tensor(3 * sigma).ceil()))
        expected = gaussian_blur(x, kernel_size=2 * radius + 1, sigma=sigma)
        torch.testing.assert_close(_gaussian_blur(x, sigma), expected, atol=1e-5, rtol=1e-5)


def test_objective_scores_are_the_layers_channel_means_and_the_logits(lenet_digits, digits_test):
    from vizlib.filters import channel_scores

    model, _ = lenet_digits
    images = digits_test[0][:40]
    torch.testing.assert_close(
        objective_scores(model, images, "conv2", batch_size=16),
        channel_scores(model, images, "conv2"),
    )
    with torch.no_grad():
        torch.testing.assert_close(objective_scores(model, images, None), model(images))
        centre = model.conv1(images)[:, :, 12, 12]  # (40, 32): conv1's maps are 24x24
    torch.testing.assert_close(objective_scores(model, images, "conv1", reduce="centre"), centre)


def test_the_objective_is_the_conv_output_before_an_in_place_relu():
    """vgg16's convs are followed by ReLU(inplace=True), which overwrites the conv's output: the
    objective (and its gradient) must still be the conv's raw mean, negative values included,
    as ``channel_scores`` (the Top-activating tab) measures it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 3)).eval()
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        raw = model[0](x).mean(dim=(2, 3))  # (5, 4)
    assert (raw < 0).any()  # a ReLU'd output would read 0 or more here
    torch.testing.assert_close(objective_scores(model, x, "0"), raw)
    # minimising channel 0 of a conv whose bias is very negative: gradient ascent must still
    # move it up from below 0 (through the ReLU there would be no gradient at all)
    with torch.no_grad():
        model[0].bias[0] = -50.0
    out = optimise_input(
        model, "0", [0], input_shape=(1, 8, 8), mean=[0.0], std=[1.0], steps=20, lr=0.1, l2=0.0,
        **PLAIN,
    )  # fmt: skip
    assert out.objective[-1, 0] > out.objective[0, 0] + 0.5


def test_lenet_channels_beat_every_test_digit_and_logits_are_classified(lenet_digits, digits_test):
    model, meta = lenet_digits
    images, _ = digits_test
    kw = dict(input_shape=meta["input_size"], mean=meta["mean"], std=meta["std"])
    channels = list(range(8))
    best = objective_scores(model, images, "conv2")[:, channels].amax(dim=0)  # (8,)
    out = optimise_input(model, "conv2", channels, **kw)
    assert out.images.shape == (8, 1, 28, 28)
    assert out.images.min() >= 0 and out.images.max() <= 1
    assert (out.final > best).all(), (out.final, best)  # 450 test digits: every one lower
    assert (out.objective[-1] > out.objective[0]).all()  # it ascended

    classes = [3, 0, 7, 9]
    out = optimise_input(model, None, classes, **kw)
    with torch.no_grad():
        assert model(out.inputs).argmax(dim=1).tolist() == classes


@pytest.mark.slow
def test_resnet_digits_logits_too_with_the_defaults():
    """A network with global average pooling: its images are textures of strokes, but still
    its classes (at 128 steps of 0.05, the earlier defaults, class 1's image was taken for a 0)."""
    from vizlib import zoo

    model, meta = zoo.load_model("resnet_digits", device="cpu")
    classes = list(range(10))
    kw = dict(input_shape=meta["input_size"], mean=meta["mean"], std=meta["std"])
    out = optimise_input(model, None, classes, **kw)
    with torch.no_grad():
        assert model(out.inputs).argmax(dim=1).tolist() == classes


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("layer", ["conv2", None])
def test_the_shared_model_is_left_as_it_was_even_when_the_callback_raises(lenet_digits, layer):
    model, meta = lenet_digits
    before = _snapshot(model)
    kw = dict(input_shape=meta["input_size"], mean=meta["mean"], std=meta["std"], steps=6)
    optimise_input(model, layer, [1, 2], **kw)

    def boom(step: int, objective: float) -> None:
        if step == 3:
            raise RuntimeError("the page's Stop")

    with pytest.raises(RuntimeError, match="Stop"):
        optimise_input(model, layer, [1, 2], callback=boom, **kw)
    assert _hooks_left(model) == 0
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    after = _snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_callback_sees_each_step_and_can_stop_the_run(lenet_digits):
    model, meta = lenet_digits
    kw = dict(input_shape=meta["input_size"], mean=meta["mean"], std=meta["std"], steps=20)
    seen = []

    def stop_at_5(step: int, objective: float) -> bool:
        seen.append((step, objective))
        return step < 5

    out = optimise_input(model, "conv1", [0, 4, 9], callback=stop_at_5, **kw)
    assert [s for s, _ in seen] == [1, 2, 3, 4, 5]
    assert out.steps == 5 and out.objective.shape == (5, 3)
    torch.testing.assert_close(
        torch.tensor([o for _, o in seen]), out.objective.mean(dim=1), atol=1e-6, rtol=0
    )
    every = []
    optimise_input(
        model, "conv1", [0], callback_every=8, callback=lambda s, o: every.append(s), **kw
    )
    assert every == [8, 16, 20]  # and after the last


def test_same_seed_same_images_other_seed_other_images(lenet_digits):
    model, meta = lenet_digits
    kw = dict(input_shape=meta["input_size"], mean=meta["mean"], std=meta["std"], steps=12)
    kw |= dict(jitter=2, blur_every=3)
    a = optimise_input(model, "conv2", [5, 6], seed=4, **kw)
    b = optimise_input(model, "conv2", [5, 6], seed=4, **kw)
    c = optimise_input(model, "conv2", [5, 6], seed=5, **kw)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.objective, b.objective)
    assert not torch.equal(a.inputs, c.inputs)


@pytest.mark.parametrize(
    ("layer", "channels", "kwargs", "message"),
    [
        ("conv9", [0], {}, "Unknown layer name(s) ['conv9']; valid names are: conv1, pool1"),
        ("conv1", [3, 32], {}, "No channel of conv1 32: it has 32 channels, 0 to 31."),
        ("conv1", [-1], {}, "No channel of conv1 -1"),
        (None, [10], {}, "No class 10: the model has 10 outputs, 0 to 9."),
        ("conv1", [], {}, "Give at least one channel"),
        ("conv1", [0], {"steps": 0}, "steps must be a whole number of at least 1, got 0."),
        ("conv1", [0], {"lr": 0.0}, "lr must be a positive number"),
        ("conv1", [0], {"l2": -1.0}, "l2 must be 0 or a positive number"),
        ("conv1", [0], {"jitter": -1}, "jitter and blur_every must be 0 or more"),
        ("conv1", [0], {"reduce": "max"}, "reduce must be one of mean, centre"),
        ("conv1", [0], {"input_shape": (3, 28, 28)}, "mean and std need one value per input"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(
    lenet_digits, layer, channels, kwargs, message
):
    model, meta = lenet_digits
    kw = dict(input_shape=meta["input_size"], mean=meta["mean"], std=meta["std"], steps=2)
    with pytest.raises(ValueError) as err:
        optimise_input(model, layer, channels, **(kw | kwargs))
    assert message in str(err.value)
    assert _hooks_left(model) == 0


def test_the_models_own_device_is_accepted(lenet_digits):
    model, meta = lenet_digits
    kw = dict(input_shape=meta["input_size"], mean=meta["mean"], std=meta["std"], steps=3)
    a = optimise_input(model, "conv1", [0], device="cpu", **kw)
    assert torch.equal(a.inputs, optimise_input(model, "conv1", [0], **kw).inputs)


@pytest.mark.gpu
def test_on_a_gpu_it_runs_on_the_models_device_and_agrees_with_the_cpu(lenet_digits):
    """The start and the jitter are drawn on the CPU, so a GPU run follows the same path."""
    from vizlib import zoo

    model, meta = zoo.load_model("lenet_digits", device="cuda")
    kw = dict(input_shape=meta["input_size"], mean=meta["mean"], std=meta["std"], steps=32)
    on_gpu = optimise_input(model, "conv2", [0, 1, 2], **kw)
    on_cpu = optimise_input(lenet_digits[0], "conv2", [0, 1, 2], **kw)
    torch.testing.assert_close(on_gpu.inputs, on_cpu.inputs, atol=5e-3, rtol=0)
    assert on_gpu.inputs.device.type == "cpu"  # results come back to the CPU
    assert all(p.grad is None for p in model.parameters()) and _hooks_left(model) == 0
    with pytest.raises(ValueError, match="never moved"):
        optimise_input(model, "conv2", [0], device="cpu", **kw)


def test_vizlib_reexports_the_names():
    import vizlib

    assert vizlib.optimise_input is optimise_input
    assert "featureviz" in vizlib.__all__


def test_the_png_grid_keeps_the_pixel_values_and_enlarges_without_blur():
    """Unlike to_png_bytes, which stretches to the array's own range (a flat grey would be 0)."""
    import io

    import numpy as np
    from PIL import Image

    from vizlib.plots import image_grid_png

    tiles = np.full((2, 1, 2, 3), 0.5, dtype=np.float32)
    tiles[1, 0, 0, 0] = 1.0
    png = np.asarray(Image.open(io.BytesIO(image_grid_png(tiles, scale=2))))
    assert png.shape == (4, 2 * 6 + 1)  # two tiles of 4 x 6 side by side, one white column
    assert (png[:, 6] == 255).all()  # the line between them
    assert (png[:, :6] == 128).all()  # 0.5 -> 128, as it is
    assert (png[:2, 7:9] == 255).all() and (png[2:, 7:9] == 128).all()  # one pixel, 2 x 2
