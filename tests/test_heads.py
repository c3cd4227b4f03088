"""vizlib.heads: a gate at 0 removes exactly one head (against its value rows zeroed by hand and
against the head's output zeroed in vizlib's explicit attention), the importance is |dL/dg| (against
finite differences in float64), and the shared model is only read."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vizlib import zoo
from vizlib.data import load_dataset
from vizlib.heads import (  # the gating itself, checked by hand
    _gated_parameters,
    _logits,
    agreement_with_heads,
    head_importance,
    pruning_curve,
    value_projections,
)


@pytest.fixture(scope="module")
def vit():
    model, meta = zoo.load_model("vit_digits")
    images, _, _ = load_dataset("digits", "test", input_size=meta["input_size"][1:])
    return model, images[:48]


def _tiny_torchvision_vit() -> nn.Module:
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(
        image_size=16, patch_size=8, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=16,
        num_classes=5,
    )  # fmt: skip
    nn.init.normal_(model.heads.head.weight)  # torchvision starts the head at 0: no gradient
    return model.eval().requires_grad_(False)


def _without_head(model: nn.Module, layer: int, head: int) -> nn.Module:
    """A copy of the model with head ``head`` of block ``layer`` removed by zeroing its value
    rows of the fused q/k/v projection in place (the copy's own weights)."""
    twin = copy.deepcopy(model)
    weight, bias = value_projections(twin)[layer]
    params = dict(twin.named_parameters())
    d = params[weight].shape[0] // 3
    heads = twin.config.heads if hasattr(twin, "config") else twin.encoder.layers[0].num_heads
    rows = slice(2 * d + head * (d // heads), 2 * d + (head + 1) * (d // heads))
    with torch.no_grad():
        params[weight][rows] = 0
        if bias is not None:
            params[bias][rows] = 0
    return twin


def _gated(model: nn.Module, gates: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    params = dict(model.named_parameters())
    gated = params | _gated_parameters(params, value_projections(model), gates)
    with torch.no_grad():
        return _logits(model, gated, x)


@pytest.mark.parametrize("which", ["vizlib", "torchvision"])
def test_a_closed_gate_removes_exactly_its_head(which, vit):
    model, images = vit
    if which == "torchvision":
        model, x = _tiny_torchvision_vit(), torch.randn(6, 3, 16, 16)
    else:
        x = images[:6]
    layers = len(value_projections(model))
    heads = 4 if which == "vizlib" else 2
    with torch.no_grad():
        assert torch.allclose(_gated(model, torch.ones(layers, heads), x), model(x), atol=1e-6)
    gates = torch.ones(layers, heads)
    gates[1, 1] = 0
    with torch.no_grad():
        expected = _without_head(model, 1, 1)(x)
    assert torch.allclose(_gated(model, gates, x), expected, atol=1e-5)
    assert not torch.allclose(expected, model(x), atol=1e-3)  # the head did matter


def test_zeroed_value_rows_are_a_zeroed_head_output(vit):
    """The principle, in vizlib's explicit attention: the block's attention output with head 2's
    value rows zeroed equals the output computed with head 2's (attention @ values) set to 0."""
    model, images = vit
    attn = model.blocks[0].attn
    x = torch.randn(3, 10, attn.qkv.in_features)
    with torch.no_grad():
        B, T, D = x.shape
        q, k, v = attn.qkv(x).reshape(B, T, 3, attn.heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        out = torch.softmax(q @ k.transpose(-2, -1) * attn.scale, dim=-1) @ v  # (B, h, T, d)
        out[:, 2] = 0
        by_hand = attn.proj(out.transpose(1, 2).reshape(B, T, D))
        gated = _without_head(model, 0, 2).blocks[0].attn(x)[0]
    assert torch.allclose(gated, by_hand, atol=1e-5)


def test_importance_is_the_gates_gradient(vit):
    model, images = vit
    twin = copy.deepcopy(model).double()
    x = images[:16].double()
    result = head_importance(twin, x, batch_size=16)
    answers = result.predictions
    eps = 1e-6
    for layer, head in [(0, 0), (2, 3), (3, 1)]:
        losses = []
        for sign in (1, -1):
            gates = torch.ones(4, 4, dtype=torch.float64)
            gates[layer, head] += sign * eps
            losses.append(float(F.cross_entropy(_gated(twin, gates, x), answers)))
        finite = abs(losses[0] - losses[1]) / (2 * eps)
        assert result.importance[layer, head] == pytest.approx(finite, rel=1e-4)
    assert np.allclose(np.linalg.norm(result.normalized, axis=1), 1.0)
    assert torch.equal(answers, twin(x).argmax(1))


def test_pruning_keeps_or_loses_the_answers(vit):
    model, images = vit
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = head_importance(model, images, batch_size=16)
    order = [
        tuple(int(i) for i in np.unravel_index(j, (4, 4)))
        for j in np.argsort(result.importance, axis=None)
    ]
    curve = pruning_curve(model, images, result.predictions, order, [0, 1, 16])
    assert curve[0] == 1.0
    none_left = agreement_with_heads(
        model, images, result.predictions, torch.zeros(4, 4, dtype=torch.bool)
    )
    assert curve[2] == none_left < 0.5  # no attention at all: most answers change
    one = torch.ones(4, 4, dtype=torch.bool)
    one[order[0]] = False
    assert curve[1] == agreement_with_heads(model, images, result.predictions, one)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_a_cnn_is_refused():
    lenet, _ = zoo.load_model("lenet_digits")
    with pytest.raises(TypeError, match="not a supported ViT"):
        value_projections(lenet)


@pytest.mark.gpu
def test_the_gpu_gives_the_cpus_importance(vit):
    model, images = vit
    cpu = head_importance(model, images, batch_size=16)
    gpu = head_importance(copy.deepcopy(model).to("cuda"), images, batch_size=16)
    assert np.allclose(gpu.importance, cpu.importance, rtol=1e-3, atol=1e-6)
