"""Activations recorded by hooks: values against direct computation, hook hygiene, thread safety."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.test_device import MetaAsGPU, exact_float32
from vizlib.features import activations, layer_names, model_device, recording


def _tiny_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 5),
    ).eval()


def _all_hooks(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


@pytest.fixture
def model():
    """A tiny seeded CNN; the test fails if it is left with hooks, moved, retrained or edited."""
    net = _tiny_cnn().requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    yield net
    assert _all_hooks(net) == 0, "hooks left on the model"
    assert not any(m.training for m in net.modules()), "model left in training mode"
    assert not any(p.requires_grad for p in net.parameters()), "requires_grad changed"
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights changed"


def test_layer_names_lists_conv_and_linear_in_order(model):
    assert layer_names(model) == ["0", "3", "6"]
    assert layer_names(model, kinds=nn.ReLU) == ["1", "4"]


def test_conv_activation_equals_direct_convolution(model):
    x = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    out = activations(model, x, ["0", "3", "6"], batch_size=3)
    conv0 = model[0]
    expected0 = F.conv2d(x, conv0.weight, conv0.bias, padding=1)  # (10, 4, 8, 8)
    assert out["0"].shape == (10, 4, 8, 8)
    torch.testing.assert_close(out["0"], expected0)
    pooled = F.max_pool2d(F.relu(expected0), 2)  # (10, 4, 4, 4)
    expected3 = F.conv2d(pooled, model[3].weight, model[3].bias)  # (10, 6, 2, 2)
    torch.testing.assert_close(out["3"], expected3)
    torch.testing.assert_close(out["6"], model(x))
    assert out["6"].device.type == "cpu"
    assert not out["6"].is_inference()


def test_hand_worked_single_pixel_case():
    conv = nn.Conv2d(1, 1, 2, bias=False).eval()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
    model = nn.Sequential(conv)
    x = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])  # 1*1 + 4*1 = 5
    assert activations(model, x, "0")["0"].item() == 5.0


def test_inplace_relu_after_a_layer_does_not_change_its_recording():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True)).eval()
    x = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(5))
    out = activations(model, x, "0")["0"]
    assert (out < 0).any()
    torch.testing.assert_close(out, F.conv2d(x, model[0].weight, model[0].bias))


def test_tuple_outputs_take_element_zero(tiny_vit):
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    out = activations(tiny_vit, x, ["blocks.0", "blocks.1"])
    assert out["blocks.0"].shape == (3, 17, 32)  # (B, 1 + 4*4 tokens, dim)
    assert _all_hooks(tiny_vit) == 0


def test_unknown_layer_lists_valid_names(model):
    with pytest.raises(ValueError, match=r"valid names are: 0, 1, 2"):
        activations(model, torch.zeros(1, 1, 8, 8), ["nope"])


def test_hooks_removed_when_forward_raises(model):
    with pytest.raises(RuntimeError):
        activations(model, torch.zeros(2, 3, 8, 8), ["0", "3"])  # wrong channel count
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    with pytest.raises(KeyError), recording(model, ["0"]):
        raise KeyError("boom")
    assert len(model[0]._forward_hooks) == 0


def test_other_device_than_the_models_is_refused(model):
    assert model_device(model).type == "cpu"
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="never moved"):
            activations(model, torch.zeros(1, 1, 8, 8), "0", device="cuda")
    else:
        with pytest.raises(ValueError, match="no CUDA GPU"):
            activations(model, torch.zeros(1, 1, 8, 8), "0", device="cuda")


def test_out_of_memory_halves_the_batch(model, monkeypatch):
    calls = []
    original = model.forward

    def flaky_forward(x):
        calls.append(x.shape[0])
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(x)

    monkeypatch.setattr(model, "forward", flaky_forward)
    x = torch.randn(7, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    out = activations(model, x, "0", batch_size=8)
    monkeypatch.undo()
    assert calls[:3] == [7, 4, 2]
    torch.testing.assert_close(out["0"], F.conv2d(x, model[0].weight, model[0].bias, padding=1))


def test_two_threads_sharing_one_model_get_their_own_results(model):
    gen = torch.Generator().manual_seed(4)
    inputs = [torch.randn(64, 1, 8, 8, generator=gen), torch.randn(48, 1, 8, 8, generator=gen) * 3]
    expected = [F.conv2d(x, model[0].weight, model[0].bias, padding=1) for x in inputs]
    results: list[list] = [[], []]
    barrier = threading.Barrier(2)
    errors = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(15):
                results[i].append(activations(model, inputs[i], ["0", "6"], batch_size=4)["0"])
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(2):
        assert len(results[i]) == 15
        for got in results[i]:
            torch.testing.assert_close(got, expected[i])


@pytest.mark.gpu
def test_activations_of_a_gpu_model_come_back_on_the_cpu(model):
    gpu = _tiny_cnn().to("cuda").requires_grad_(False)
    x = torch.randn(5, 1, 8, 8)
    with exact_float32():
        out = activations(gpu, x, ["0", "6"], batch_size=2, device="cuda")
    assert out["0"].device.type == "cpu" and out["6"].device.type == "cpu"
    with torch.no_grad():
        torch.testing.assert_close(out["0"], model[0](x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out["6"], model(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="never moved"):
        activations(model, x, "0", device="cuda")


def test_activations_run_on_the_models_device():
    """The meta device as a GPU: images go to the model's device, nothing there is read on the
    host, every recorded output comes back to the CPU with its shape."""
    gpu = _tiny_cnn().requires_grad_(False).to("meta")
    with MetaAsGPU() as mode:
        out = activations(gpu, torch.randn(5, 1, 8, 8), ["0", "3", "6"], batch_size=2)
    assert {name: tuple(t.shape) for name, t in out.items()} == {
        "0": (5, 4, 8, 8),
        "3": (5, 6, 2, 2),
        "6": (5, 5),
    }
    assert all(t.device.type == "cpu" for t in out.values())
    assert "conv2d" in mode.device_ops and mode.host_reads == 0
