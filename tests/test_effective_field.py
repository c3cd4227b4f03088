"""vizlib.effective_field against hand-worked cases, torch.func's Jacobian of the network cut at
the layer, and vizlib.receptive's theoretical boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vizlib import summary, zoo
from vizlib.data.datasets import load_dataset
from vizlib.effective_field import (
    centre_unit,
    conv_stack,
    default_layer,
    effective_receptive_field,
    field_box,
    field_layers,
    field_steps,
    gradient_share,
    patch_token,
    profile_spread,
    stack_effective_field,
    unit_for,
    vit_blocks,
)
from vizlib.plots import plot_effective_field, plot_effective_growth


def _reference(prefix: nn.Module, images: torch.Tensor, unit: tuple[int, int]) -> np.ndarray:
    """Mean over images of sum over input channels of |d sum_c prefix(x)[c, unit] / dx|, each
    image's gradient a row of torch.func's Jacobian of the network cut at the layer."""
    total = torch.zeros(images.shape[-2:], dtype=torch.float64)
    for x in images:

        def unit_sum(x1: torch.Tensor) -> torch.Tensor:
            return prefix(x1[None])[0, :, unit[0], unit[1]].sum()

        grad = torch.func.jacrev(unit_sum)(x)  # (C, H, W)
        total += grad.detach().abs().sum(0).double()
    return (total / len(images)).numpy()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _untouched(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    after = model.state_dict()
    same = all(torch.equal(before[k], after[k]) for k in before)
    no_grads = all(p.grad is None for p in model.parameters())
    no_hooks = all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    return same and no_grads and no_hooks


def test_two_box_filters_by_hand():
    # two 3x3 convolutions of ones without padding: the centre unit of the 5x5 output is reached
    # from pixel (r, c) of its 5x5 field by t[r] * t[c] paths, t = 1 2 3 2 1
    net = nn.Sequential(nn.Conv2d(1, 1, 3, bias=False), nn.Conv2d(1, 1, 3, bias=False))
    for conv in net:
        nn.init.ones_(conv.weight)
    images = torch.randn(3, 1, 9, 9)
    field = effective_receptive_field(net, "1", images)
    t = np.array([1.0, 2.0, 3.0, 2.0, 1.0])
    expected = np.zeros((9, 9))
    expected[2:7, 2:7] = np.outer(t, t)
    assert field.unit == (2, 2) and field.map_size == (5, 5) and field.images == 3
    np.testing.assert_array_equal(field.gradient, expected)
    assert field_box((5, 5), (1, 1), (0, 0), field.unit) == (2, 2, 6, 6)


class _ConvBnReLU(nn.Module):
    """conv -> BatchNorm -> in-place ReLU -> the same ReLU module again after a pool."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 3, 3, stride=2, dilation=2, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.conv(x)))  # the in-place ReLU rewrites bn's output
        return self.relu(self.conv2(self.pool(x)))  # relu's last call is here


@pytest.fixture
def conv_bn_relu() -> _ConvBnReLU:
    torch.manual_seed(0)
    net = _ConvBnReLU()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize(
    ("layer", "unit"),
    [("conv", None), ("bn", (0, 5)), ("pool", None), ("conv2", (2, 0)), ("relu", None)],
)
def test_matches_the_jacobian_of_the_cut_network(conv_bn_relu, layer, unit):
    net = conv_bn_relu
    prefixes = {
        "conv": net.conv,
        "bn": nn.Sequential(net.conv, net.bn),  # before the in-place ReLU rewrote it
        "pool": nn.Sequential(net.conv, net.bn, nn.ReLU(), net.pool),
        "conv2": nn.Sequential(net.conv, net.bn, nn.ReLU(), net.pool, net.conv2),
        "relu": nn.Sequential(net.conv, net.bn, nn.ReLU(), net.pool, net.conv2, nn.ReLU()),
    }
    images = torch.randn(5, 2, 12, 12, generator=torch.Generator().manual_seed(1))
    before = _state(net)
    field = effective_receptive_field(net, layer, images, unit=unit, batch_size=2)
    expected_unit = unit or centre_unit(field.map_size)
    assert field.unit == expected_unit
    np.testing.assert_allclose(
        field.gradient, _reference(prefixes[layer], images, expected_unit), rtol=1e-5, atol=1e-7
    )
    assert _untouched(net, before)


@pytest.mark.parametrize("name", ["lenet_digits", "resnet_digits"])
def test_the_gradient_stays_inside_the_theoretical_field(name):
    # two independent analyses: autograd's gradient is zero outside vizlib.receptive's box, and
    # it fills a box no smaller than the field in a layer with no ReLU before it
    model, meta = zoo.load_model(name)
    images = load_dataset("digits", "test", meta["input_size"][1:])[0][:16]
    rows = [
        r
        for r in summary.layer_table(model, meta["input_size"])
        if r["output_shape"]
        and len(r["output_shape"]) == 4
        and isinstance(r["receptive_field"], tuple)
    ]
    before = _state(model)
    for row in rows:
        field = effective_receptive_field(model, row["name"], images)
        top, left, bottom, right = field_box(
            row["receptive_field"], row["jump"], row["rf_start"], field.unit
        )
        g = field.gradient
        inside = g[max(top, 0) : bottom + 1, max(left, 0) : right + 1].sum()
        assert g.sum() > 0, row["name"]
        assert inside == pytest.approx(g.sum(), rel=1e-12), row["name"]
    first = effective_receptive_field(model, rows[0]["name"], images)
    top, left, bottom, right = field_box(
        rows[0]["receptive_field"], rows[0]["jump"], rows[0]["rf_start"], first.unit
    )
    nonzero = np.argwhere(first.gradient > 0)
    assert nonzero.min(0).tolist() == [max(top, 0), max(left, 0)]
    assert nonzero.max(0).tolist() == [bottom, right]
    assert _untouched(model, before)


def test_bad_arguments_raise_and_leave_the_model_as_it_was():
    model, meta = zoo.load_model("lenet_digits")
    images = torch.zeros(2, *meta["input_size"])
    before = _state(model)
    with pytest.raises(ValueError, match="no layer named"):
        effective_receptive_field(model, "conv9", images)
    with pytest.raises(ValueError, match="neither a feature map"):
        effective_receptive_field(model, "fc1", images)  # raised inside the hook
    with pytest.raises(ValueError, match=r"name a unit by \(row, column\)"):
        effective_receptive_field(model, "conv2", images, unit=3)
    with pytest.raises(ValueError, match="outside conv2's 4x4 map"):
        effective_receptive_field(model, "conv2", images, unit=(4, 0))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        effective_receptive_field(model, "conv2", images[0])
    with pytest.raises(ValueError, match="batch_size"):
        effective_receptive_field(model, "conv2", images, batch_size=0)
    assert _untouched(model, before)


def test_a_callback_can_stop_after_a_batch():
    model, meta = zoo.load_model("lenet_digits")
    images = load_dataset("digits", "test", meta["input_size"][1:])[0][:10]
    calls = []
    field = effective_receptive_field(
        model,
        "conv2",
        images,
        batch_size=4,
        callback=lambda done, n: calls.append((done, n)) or False,
    )
    assert calls == [(4, 10)] and field.images == 4
    whole = effective_receptive_field(model, "conv2", images[:4])
    np.testing.assert_allclose(field.gradient, whole.gradient)


def test_gradient_share_by_hand():
    g = np.array([[4.0, 3.0], [2.0, 1.0]])
    assert gradient_share(g, 0.7) == 2  # 4 + 3 = 7 of 10
    assert gradient_share(g, 0.71) == 3
    assert gradient_share(g, 1.0) == 4
    assert gradient_share(np.zeros((3, 3))) == 0
    with pytest.raises(ValueError):
        gradient_share(g, 0.0)


def test_plots_draw_the_box_the_outline_and_the_sides():
    g = np.zeros((9, 9))
    g[3:6, 3:6] = 1.0
    g[4, 4] = 10.0  # 10 of 18: the centre alone holds 56%, the 3x3 block all
    fig = plot_effective_field(g, (2, 2, 6, 6), share=0.9)
    heat, outline, box = fig.data
    assert heat.zmax == 1.0 and np.max(heat.z) == 1.0
    assert np.asarray(outline.z).sum() == 9  # the 3x3 block holds 90%
    assert list(box.x) == [1.5, 6.5, 6.5, 1.5, 1.5] and list(box.y) == [1.5, 1.5, 6.5, 6.5, 1.5]
    assert "5×5" in box.name
    logged = plot_effective_field(g, (2, 2, 6, 6), log=True)
    assert logged.data[0].zmin == -4 and np.min(logged.data[0].z) == -4
    growth = plot_effective_growth(
        [
            {"name": "a", "type": "Conv2d", "field_px": 25, "effective_px": 9},
            {"name": "b", "type": "Conv2d", "field_px": 100, "effective_px": 16},
        ]
    )
    assert list(growth.data[0].y) == [5.0, 10.0] and list(growth.data[1].y) == [3.0, 4.0]
    assert [c[1] for c in growth.data[1].customdata] == [0.36, 0.16]


def test_no_outline_on_large_inputs_where_it_would_be_speckle():
    g = np.random.default_rng(0).random((224, 224))
    fig = plot_effective_field(g, (10, 10, 200, 200))
    assert [type(t).__name__ for t in fig.data] == ["Heatmap", "Scatter"]
    assert fig.layout.showlegend  # a lone trace's legend is hidden by default
    small = plot_effective_field(g[:9, :9], (1, 1, 7, 7), outline=False)
    assert [type(t).__name__ for t in small.data] == ["Heatmap", "Scatter"]


@pytest.mark.parametrize(
    "layers",
    [((3, 1, 1),) * 6, ((5, 1, 1), (3, 2, 1), (3, 1, 2)), ((7, 2, 1), (3, 1, 1), (2, 2, 3))],
)
def test_uniform_stacks_spread_as_convolved_boxes(layers):
    # each layer's box of K taps D * J apart (J the jump before it) is a uniform distribution of
    # variance (D J)^2 (K^2 - 1) / 12; the column profile is their convolution
    field, box = stack_effective_field(layers, weights="uniform")
    profile = field.gradient.sum(0)
    expected, variance, jump = np.ones(1), 0.0, 1
    for k, s, d in layers:
        taps = np.zeros((k - 1) * d * jump + 1)
        taps[:: d * jump] = 1.0 / k
        expected = np.convolve(expected, taps)
        variance += (d * jump) ** 2 * (k * k - 1) / 12
        jump *= s
    np.testing.assert_allclose(
        profile[box[1] : box[3] + 1] / profile.sum(), expected, rtol=1e-5, atol=1e-9
    )
    assert profile_spread(profile)[1] == pytest.approx(np.sqrt(variance), rel=1e-5)
    assert box == (jump, jump, jump + len(expected) - 1, jump + len(expected) - 1)
    assert profile[: box[1]].sum() == 0 and profile[box[3] + 1 :].sum() == 0


def test_random_stacks_are_seeded_and_relu_changes_them():
    layers = ((3, 1, 1),) * 4
    a, _ = stack_effective_field(layers, weights="random")
    b, _ = stack_effective_field(layers, weights="random")
    c, _ = stack_effective_field(layers, weights="random + ReLU")
    np.testing.assert_array_equal(a.gradient, b.gradient)
    assert not np.allclose(a.gradient, c.gradient)
    relus = [type(m).__name__ for m in conv_stack(layers, weights="random + ReLU")]
    assert relus == ["Conv2d", "ReLU"] * 3 + ["Conv2d"]
    with pytest.raises(ValueError, match="weights must be one of"):
        conv_stack(layers, weights="ones")
    with pytest.raises(ValueError, match="more than the 1024"):
        stack_effective_field(((31, 8, 8),) * 3)
    with pytest.raises(ValueError, match="non-negative"):
        profile_spread(np.zeros(4))


@pytest.mark.gpu
def test_a_model_on_the_gpu_gives_the_cpus_field(conv_bn_relu):
    import copy

    from tests.test_device import exact_float32

    gpu = copy.deepcopy(conv_bn_relu).to("cuda")
    images = torch.randn(6, 2, 12, 12, generator=torch.Generator().manual_seed(3))
    with exact_float32():
        on_gpu = effective_receptive_field(gpu, "bn", images, batch_size=4)  # CPU images
    on_cpu = effective_receptive_field(conv_bn_relu, "bn", images, batch_size=4)
    np.testing.assert_allclose(on_gpu.gradient, on_cpu.gradient, rtol=1e-4, atol=1e-7)
    assert on_gpu.unit == on_cpu.unit
    assert all(not m._forward_hooks for m in gpu.modules())


def test_a_vit_tokens_field_matches_autograd_through_its_blocks(tiny_vit):
    images = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    before = _state(tiny_vit)
    for block in (0, 1):

        def upto(x: torch.Tensor, block: int = block) -> torch.Tensor:
            tokens = tiny_vit.embed(x)  # (B, 17, 32)
            for b in tiny_vit.blocks[: block + 1]:
                tokens, _ = b(tokens)
            return tokens

        for token in (0, 6):  # the class token; patch (1, 1) of the 4 x 4 grid
            field = effective_receptive_field(tiny_vit, f"blocks.{block}", images, unit=token)
            total = torch.zeros(16, 16, dtype=torch.float64)
            for x in images:  # one image at a time: d (the token's features summed) / dx
                x1 = x[None].clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(upto(x1)[0, token].sum(), x1)
                total += grad[0].abs().sum(0).double()
            np.testing.assert_allclose(field.gradient, (total / 3).numpy(), rtol=1e-4, atol=1e-8)
            assert field.unit == token and field.map_size == (17,)
    # attention reaches every patch from the first block: no pixel is left at 0
    assert (effective_receptive_field(tiny_vit, "blocks.0", images, unit=6).gradient > 0).all()
    with pytest.raises(ValueError, match="name one by its index"):
        effective_receptive_field(tiny_vit, "blocks.0", images)
    with pytest.raises(ValueError, match="outside blocks.0's 17 tokens"):
        effective_receptive_field(tiny_vit, "blocks.0", images, unit=17)
    assert _untouched(tiny_vit, before)


def test_layers_units_and_defaults_for_a_vit_and_cnns(tiny_vit):
    rows = summary.layer_table(tiny_vit, (1, 16, 16))
    layers = field_layers(tiny_vit, rows)
    assert [layer.name for layer in layers] == ["patch_embed", "blocks.0", "blocks.1"]
    embed, first = layers[0], layers[1]
    assert embed.receptive_field == (4, 4) and embed.map_size == (4, 4) and not embed.tokens
    assert first.tokens and first.kind == "block 0" and first.box(6, (16, 16)) == (0, 0, 15, 15)
    assert default_layer(layers, (16, 16)) == "blocks.0"
    assert [unit_for(first, m, tiny_vit) for m in ("centre", "top-left corner", "class token")] == [
        6,  # patch (1, 1), the upper left of the centre four: 1 + 1 * 4 + 1
        1,
        0,
    ]
    assert unit_for(embed, "centre", tiny_vit) == (1, 1)
    with pytest.raises(ValueError, match="before the class token joins"):
        unit_for(embed, "class token", tiny_vit)
    assert patch_token((3, 2), grid_size=(4, 4), num_prefix_tokens=1) == 15
    with pytest.raises(ValueError, match="outside the 4x4 grid"):
        patch_token((4, 0), grid_size=(4, 4), num_prefix_tokens=1)
    assert vit_blocks(tiny_vit) == ["blocks.0", "blocks.1"]
    with pytest.raises(TypeError):
        vit_blocks(nn.Conv2d(1, 1, 3))
    # CNNs: the deepest main-path layer that grows the field inside the image on a map with a
    # centre; the steps drop the norms and activations that repeat a field
    lenet, meta = zoo.load_model("lenet_digits")
    cnn = field_layers(lenet, summary.layer_table(lenet, meta["input_size"]))
    assert [layer.name for layer in field_steps(cnn)] == ["conv1", "pool1", "conv2", "pool2"]
    assert default_layer(cnn, (28, 28)) == "conv2"  # pool2's 2 x 2 map has no centre
    resnet, meta = zoo.load_model("resnet_digits")
    cnn = field_layers(resnet, summary.layer_table(resnet, meta["input_size"]))
    assert default_layer(cnn, (28, 28)) == "layers.2.relu2"  # 25 x 25 on 7 x 7
