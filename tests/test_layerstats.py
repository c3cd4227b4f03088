"""vizlib.layerstats against direct computations: each layer's outputs and gradients worked out
by running the layers one by one with torch, outside any hook."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vizlib import zoo
from vizlib.layerstats import depth_summary, layer_statistics


def _hooks_left(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 3)).eval()
    with torch.no_grad():
        model[0].bias[2] = -100.0  # unit 2 never fires: a dead ReLU unit
    return model.requires_grad_(False)


def _by_hand(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> list[tuple]:
    """Return (output, gradient of the summed cross-entropy w.r.t. it) of layers 0, 1 and 3."""
    h0 = model[0](x)
    h1 = F.relu(h0)
    h3 = model[3](h1)
    outs = [h0, h1, h3]
    grads = torch.autograd.grad(F.cross_entropy(h3, y, reduction="sum"), outs)
    return [(out.detach(), grad) for out, grad in zip(outs, grads, strict=True)]


def test_statistics_equal_the_layers_run_by_hand():
    model = _mlp()
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    y = torch.arange(50) % 3
    flat = nn.Sequential(nn.Flatten(), *model).eval()  # the images are (N, 1, 2, 2)
    stats = layer_statistics(flat, x.detach().reshape(50, 1, 2, 2), y, batch_size=7)
    rows = {r["layer"]: r for r in stats.rows}
    # the flatten, both linears and the ReLU; the dropout (identity in eval) has no row
    assert list(rows) == ["0", "1", "2", "4"]
    expected = _by_hand(_mlp(), x.detach().requires_grad_(True), y)
    for name, (out, grad) in zip(["1", "2", "4"], expected, strict=True):
        row = rows[name]
        assert row["mean"] == pytest.approx(float(out.mean()), rel=1e-5, abs=1e-6)
        assert row["std"] == pytest.approx(float(out.std(unbiased=False)), rel=1e-5)
        assert (row["min"], row["max"]) == pytest.approx((float(out.min()), float(out.max())))
        assert row["zero_fraction"] == pytest.approx(float((out == 0).float().mean()))
        assert row["grad_rms"] == pytest.approx(float(grad.pow(2).mean().sqrt()), rel=1e-5)
        assert row["output_shape"] == tuple(out.shape[1:])
    assert rows["2"]["dead_channels"] == 1 and rows["2"]["channels"] == 6
    assert rows["1"]["dead_channels"] == 0 and rows["1"]["type"] == "Linear"
    assert stats.targets == "labels"
    summary = depth_summary(stats.rows)
    assert summary["dead"] == [("2", 1, 6)] and summary["no_gradient"] == []
    first, last = rows["0"]["grad_rms"], rows["4"]["grad_rms"]  # the flatten, the logits
    assert summary["grad_ratio"] == pytest.approx(first / last)
    assert (summary["grad_first"], summary["grad_last"]) == ("0", "4")
    assert summary["saturated"] is False


def test_a_zero_weight_layer_stops_every_gradient_before_it():
    """torchvision's untrained ViT has an all-zero head: no gradient reaches what feeds it."""
    model = nn.Sequential(nn.Flatten(), *_mlp()).eval().requires_grad_(False)
    with torch.no_grad():
        model[4].weight.zero_()
    stats = layer_statistics(model, torch.randn(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1]))
    assert depth_summary(stats.rows)["no_gradient"] == ["0", "1", "2"]
    assert stats.rows[-1]["grad_rms"] > 0


def test_huge_outputs_and_tiny_gradients_keep_their_size():
    """Uploaded weights of 1e24 give outputs of about 1e24, whose float32 squares are inf (the
    std was inf for finite values); weights of 1e-26 after a layer give it gradients of about
    1e-26, whose float32 squares are 0 (the gradient was called exactly 0). Both against float64
    computations by hand."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.Linear(6, 3)).eval()
    with torch.no_grad():
        model[1].weight.mul_(1e24)
        model[2].weight.mul_(1e-26)
    model.requires_grad_(False)
    x = torch.randn(10, 1, 2, 2, generator=torch.Generator().manual_seed(10))
    y = torch.arange(10) % 3
    rows = {r["layer"]: r for r in layer_statistics(model, x, y, batch_size=4).rows}
    xx = x.flatten(1).requires_grad_(True)
    h1 = model[1](xx)
    (g1,) = torch.autograd.grad(F.cross_entropy(model[2](h1), y, reduction="sum"), [h1])
    assert float(h1.detach().abs().max()) > 1e22
    assert rows["1"]["std"] == pytest.approx(float(h1.detach().double().std(unbiased=False)))
    assert 0 < float(g1.abs().max()) < 1e-24
    expected = float(g1.double().pow(2).mean().sqrt())
    assert rows["1"]["grad_rms"] == pytest.approx(expected, rel=1e-5)


def test_dead_units_are_counted_at_the_relu_not_again_after_it():
    """A flatten after a ReLU repeats its dead channels (each position a channel): the summary
    names the ReLU alone; the rows keep both."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2)
    ).eval().requires_grad_(False)  # fmt: skip
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.copy_(torch.tensor([0.0, -100.0, 0.0]))  # channel 1 never fires
    rows = layer_statistics(model, torch.rand(6, 1, 2, 2) + 0.1).rows
    assert [r["dead_channels"] for r in rows] == [0, 1, 4, 0]
    assert depth_summary(rows)["dead"] == [("1", 1, 3)]


def test_no_gradient_at_the_first_layer_gives_a_ratio_of_zero():
    """Every unit of the first ReLU dead: the layers before it get no gradient, the ReLU does.
    The ratio is the first layer's (0), not that of the first layer with a gradient."""
    model = nn.Sequential(nn.Flatten(), *_mlp()).eval().requires_grad_(False)
    with torch.no_grad():
        model[1].bias.fill_(-100.0)
    rows = layer_statistics(model, torch.randn(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])).rows
    summary = depth_summary(rows)
    assert summary["no_gradient"] == ["0", "1"] and rows[2]["grad_rms"] > 0
    assert summary["grad_ratio"] == 0 and summary["grad_first"] == "0"
    assert summary["saturated"] is False


def test_a_saturated_softmax_gives_no_gradient_anywhere():
    """Logits of about 1e6 put each image's predicted class at probability 1 in float32: the
    loss against it is 0, and so is every gradient, the output's included."""
    model = nn.Sequential(nn.Flatten(), *_mlp()).eval().requires_grad_(False)
    with torch.no_grad():
        model[4].weight.mul_(1e6)
    rows = layer_statistics(model, torch.randn(5, 1, 2, 2)).rows
    summary = depth_summary(rows)
    assert summary["saturated"] is True
    assert summary["no_gradient"] == [r["layer"] for r in rows]
    assert math.isnan(summary["grad_ratio"])


def test_the_shipped_resnets_batchnorm_rows_equal_the_formula_run_by_hand():
    """resnet_digits' stem: conv, BatchNorm (eval: its running statistics), ReLU. The BatchNorm
    row's statistics and gradient against (x - running mean) / sqrt(running var + eps) * weight
    + bias written out, the rest of the network run from there by hand."""
    model, meta = zoo.load_model("resnet_digits")
    model.eval().requires_grad_(False)
    x = torch.randn(12, *meta["input_size"], generator=torch.Generator().manual_seed(11))
    y = torch.arange(12) % 10
    rows = {r["layer"]: r for r in layer_statistics(model, x, y, batch_size=5).rows}
    conv, bn = model.stem[0], model.stem[1]
    h0 = conv(x)  # (12, 16, 28, 28)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps))[:, None, None]  # (16, 1, 1)
    h1 = ((h0 - bn.running_mean[:, None, None]) * scale + bn.bias[:, None, None]).requires_grad_()
    logits = model.fc(model.flatten(model.pool(model.layers(F.relu(h1)))))
    (g1,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), [h1])
    h1 = h1.detach().double()
    row = rows["stem.1"]
    assert row["type"] == "BatchNorm2d" and row["output_shape"] == (16, 28, 28)
    assert row["mean"] == pytest.approx(float(h1.mean()), rel=1e-4, abs=1e-6)
    assert row["std"] == pytest.approx(float(h1.std(unbiased=False)), rel=1e-4)
    assert (row["min"], row["max"]) == pytest.approx((float(h1.min()), float(h1.max())), rel=1e-5)
    assert row["grad_rms"] == pytest.approx(float(g1.double().pow(2).mean().sqrt()), rel=1e-4)
    relu = rows["stem.2"]
    assert relu["zero_fraction"] == pytest.approx(float((h1 <= 0).double().mean()), abs=1e-4)


def test_batches_change_nothing_and_the_model_is_left_as_it_was():
    model = nn.Sequential(nn.Flatten(), *_mlp()).eval().requires_grad_(False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(40, 1, 2, 2, generator=torch.Generator().manual_seed(2))
    one = layer_statistics(model, x, batch_size=40)
    many = layer_statistics(model, x, batch_size=3)
    for a, b in zip(one.rows, many.rows, strict=True):
        for key in ("mean", "std", "min", "max", "zero_fraction", "grad_rms"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key
    assert one.targets == "predicted"
    assert _hooks_left(model) == 0
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_without_targets_the_loss_is_taken_against_the_predicted_class():
    model = nn.Sequential(nn.Flatten(), *_mlp()).eval().requires_grad_(False)
    x = torch.randn(20, 1, 2, 2, generator=torch.Generator().manual_seed(3))
    predicted = model(x).argmax(1)
    assert layer_statistics(model, x).rows == layer_statistics(model, x, predicted).rows


def test_in_place_relu_after_batchnorm_keeps_each_layers_own_values():
    """torchvision's ResNets run BatchNorm then ReLU(inplace=True) on the same tensor: the
    BatchNorm row must hold its own (negative) outputs and its own gradient, as run by hand."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    ).eval().requires_grad_(False)  # fmt: skip
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(8, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    rows = {r["layer"]: r for r in layer_statistics(model, x, y, batch_size=3).rows}
    xx = x.clone().requires_grad_(True)
    bn = model[1](model[0](xx))
    relu = F.relu(bn)
    logits = model[4](relu.flatten(1))
    g_bn, g_relu = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), [bn, relu])
    assert rows["1"]["min"] < 0 and rows["1"]["min"] == pytest.approx(float(bn.detach().min()))
    assert rows["2"]["min"] == 0
    assert rows["1"]["grad_rms"] == pytest.approx(float(g_bn.pow(2).mean().sqrt()), rel=1e-5)
    assert rows["2"]["grad_rms"] == pytest.approx(float(g_relu.pow(2).mean().sqrt()), rel=1e-5)
    assert rows["1"]["channels"] == 4 and rows["1"]["output_shape"] == (4, 4, 4)


class _Twice(nn.Module):
    """One ReLU called twice, as torchvision's BasicBlock does."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.relu = nn.ReLU()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.fc(x.flatten(1)))
        return self.head(self.relu(h - 1.0))


def test_a_module_called_twice_gets_a_row_per_call():
    torch.manual_seed(0)
    model = _Twice().eval().requires_grad_(False)
    x = torch.randn(10, 1, 2, 2, generator=torch.Generator().manual_seed(5))
    rows = {r["layer"]: r for r in layer_statistics(model, x).rows}
    assert list(rows) == ["fc", "relu", "relu (call 2)", "head"]
    first = F.relu(model.fc(x.flatten(1)))
    second = F.relu(first - 1.0)
    assert rows["relu"]["mean"] == pytest.approx(float(first.mean()), rel=1e-6)
    assert rows["relu (call 2)"]["mean"] == pytest.approx(float(second.mean()), rel=1e-6)


class _Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.log = _Log()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log(self.fc(x.flatten(1)))


class _Log(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)  # NaN for negative inputs, -inf for 0


def test_nan_outputs_are_counted_and_left_out_of_the_statistics():
    torch.manual_seed(0)
    model = _Broken().eval().requires_grad_(False)
    x = torch.randn(30, 1, 2, 2, generator=torch.Generator().manual_seed(6))
    stats = layer_statistics(model, x, gradients=False)
    row = stats.rows[1]
    out = torch.log(model.fc(x.flatten(1)))
    finite = out[torch.isfinite(out)]
    assert row["nonfinite"] == int((~torch.isfinite(out)).sum()) > 0
    assert row["mean"] == pytest.approx(float(finite.mean()), rel=1e-5)
    assert np.isfinite(stats.samples["log"]).all()
    assert math.isnan(row["grad_rms"])
    assert depth_summary(stats.rows)["nonfinite"] == ["log"]


def test_bad_arguments_raise_and_leave_no_hook():
    model = nn.Sequential(nn.Flatten(), *_mlp()).eval().requires_grad_(False)
    x = torch.randn(6, 1, 2, 2)
    with pytest.raises(ValueError, match="class indices 0 to 2"):
        layer_statistics(model, x, torch.tensor([0, 1, 2, 3, 0, 1]))
    assert _hooks_left(model) == 0
    with pytest.raises(ValueError, match="6 images"):
        layer_statistics(model, x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="non-empty batch"):
        layer_statistics(model, torch.zeros(0, 1, 2, 2))
    with pytest.raises(ValueError, match="batch_size"):
        layer_statistics(model, x, batch_size=0)


def test_samples_are_drawn_from_the_outputs_and_repeat_with_the_seed():
    model = nn.Sequential(nn.Flatten(), *_mlp()).eval().requires_grad_(False)
    x = torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(7))
    a = layer_statistics(model, x, gradients=False, sample_size=50, batch_size=16)
    b = layer_statistics(model, x, gradients=False, sample_size=50, batch_size=16)
    out = model[1](x.flatten(1)).numpy().ravel()
    assert len(a.samples["1"]) == 50
    assert np.isin(a.samples["1"], out).all()
    np.testing.assert_array_equal(a.samples["1"], b.samples["1"])


def test_a_layer_with_fewer_values_than_the_sample_gives_every_one():
    """The page's histogram caption says 'all of them where there are fewer': 30 logits with a
    sample of 1,000 are those 30 values, not 30 draws with replacement (about a third repeats)."""
    model = nn.Sequential(nn.Flatten(), *_mlp()).eval().requires_grad_(False)
    x = torch.randn(30, 1, 2, 2, generator=torch.Generator().manual_seed(12))
    stats = layer_statistics(model, x, gradients=False, sample_size=1_000, batch_size=7)
    logits = model(x).numpy().ravel()  # (90,)
    np.testing.assert_array_equal(np.sort(stats.samples["4"]), np.sort(logits))


def test_a_shipped_vit_gives_token_rows_with_features_as_channels():
    model, meta = zoo.load_model("vit_digits")
    model.eval().requires_grad_(False)
    x = torch.randn(4, *meta["input_size"], generator=torch.Generator().manual_seed(8))
    rows = {r["layer"]: r for r in layer_statistics(model, x, torch.tensor([0, 1, 2, 3])).rows}
    norm = rows["blocks.0.norm1"]
    assert norm["output_shape"] == (65, 64) and norm["channels"] == 64
    logits = model(x)
    assert rows["head"]["mean"] == pytest.approx(float(logits.mean()), rel=1e-5, abs=1e-6)
    assert all(r["grad_rms"] > 0 for r in rows.values())
    assert _hooks_left(model) == 0


@pytest.mark.gpu
def test_a_model_on_the_gpu_gives_the_cpus_statistics():
    from tests.test_device import exact_float32

    torch.manual_seed(0)
    cpu = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    ).eval().requires_grad_(False)  # fmt: skip
    gpu = copy.deepcopy(cpu).to("cuda")
    x = torch.randn(20, 1, 6, 6, generator=torch.Generator().manual_seed(9))
    y = torch.arange(20) % 3
    with exact_float32():
        on_gpu = layer_statistics(gpu, x, y, batch_size=8, device="cuda")
    on_cpu = layer_statistics(cpu, x, y, batch_size=8)
    for a, b in zip(on_gpu.rows, on_cpu.rows, strict=True):
        for key in ("mean", "std", "min", "max", "zero_fraction", "grad_rms"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (a["layer"], key)
        assert a["dead_channels"] == b["dead_channels"]
    assert all(isinstance(v, np.ndarray) for v in on_gpu.samples.values())
    assert _hooks_left(gpu) == 0
    with pytest.raises(ValueError, match="never moved"):
        layer_statistics(cpu, x, device="cuda")


class _WhereSqrt(nn.Module):
    """sqrt(x) where x > 0, else 0: finite outputs, but the unpicked branch's sqrt(x < 0) is
    NaN, and its backward (0 / (2 NaN)) is NaN too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x.sqrt(), torch.zeros_like(x))


class _Sqrt(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sqrt()  # d/dx at 0 is 1 / (2 * 0) = inf


class _Flat(nn.Module):
    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))  # (N, 4)


def test_non_finite_gradients_are_counted_where_the_outputs_are_finite():
    """The counts worked out by hand: torch.where's NaN branch makes every entry of the first
    Linear's output at or below 0 a NaN gradient; sqrt(relu(x)) gives an infinite gradient at
    each ReLU zero, which the ReLU's own backward then sets to 0 (the Linear before it is
    spared)."""
    torch.manual_seed(0)
    x = torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(1))  # (5, 4) flat
    y = torch.tensor([0, 1, 2, 0, 1])
    model = _Flat(nn.Linear(4, 6), _WhereSqrt(), nn.Linear(6, 3)).eval().requires_grad_(False)
    stats = layer_statistics(model, x, y)
    first = model.net[0](x.flatten(1))  # (5, 6)
    assert [r["nonfinite"] for r in stats.rows] == [0, 0, 0]  # every output a number
    assert [r["grad_nonfinite"] for r in stats.rows] == [int((first <= 0).sum()), 0, 0]
    assert 0 < stats.rows[0]["grad_nonfinite"] < first.numel()  # some positive, some not
    assert math.isnan(stats.rows[0]["grad_rms"]) and math.isfinite(stats.rows[1]["grad_rms"])
    summary = depth_summary(stats.rows)
    assert summary["grad_nonfinite"] == ["net.0"] and summary["nonfinite"] == []
    assert summary["grad_nonfinite_at"] == ("net.0", "net.1")  # between them: the where

    relu = _Flat(nn.Linear(4, 6), nn.ReLU(), _Sqrt(), nn.Linear(6, 3)).eval().requires_grad_(False)
    stats = layer_statistics(relu, x, y)
    zeros = int((F.relu(relu.net[0](x.flatten(1))) == 0).sum())
    assert [r["grad_nonfinite"] for r in stats.rows] == [0, zeros, 0, 0] and zeros > 0
    assert depth_summary(stats.rows)["grad_nonfinite_at"] == ("net.1", "net.2")
    # without gradients nothing is counted; a healthy model has none
    assert layer_statistics(relu, x, gradients=False).rows[1]["grad_nonfinite"] == 0
    healthy = depth_summary(layer_statistics(_Flat(*_mlp()), x, y).rows)
    assert healthy["grad_nonfinite"] == [] and healthy["grad_nonfinite_at"] is None
