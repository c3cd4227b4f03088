"""vizlib.models: LeNetLike's exact architecture, SmallResNet's shapes, ViT attention weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vizlib.models import LeNetLike, SmallResNet, ViT


def test_lenet_layers_and_parameter_count():
    model = LeNetLike()
    # 832 + 51,264 + 51,400 + 2,010, worked out from the layer sizes
    assert sum(p.numel() for p in model.parameters()) == 105_506
    assert [type(m) for m in model.children()] == [
        nn.Conv2d,
        nn.MaxPool2d,
        nn.ReLU,
        nn.Conv2d,
        nn.MaxPool2d,
        nn.ReLU,
        nn.Flatten,
        nn.Linear,
        nn.ReLU,
        nn.Linear,
    ]
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_lenet_matches_an_independent_sequential():
    torch.manual_seed(0)
    model = LeNetLike().eval()
    reference = nn.Sequential(
        nn.Conv2d(1, 32, 5),
        nn.MaxPool2d(3),
        nn.ReLU(),
        nn.Conv2d(32, 64, 5),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(256, 200),
        nn.ReLU(),
        nn.Linear(200, 10),
    ).eval()
    reference.load_state_dict(
        dict(zip(reference.state_dict(), model.state_dict().values(), strict=True))
    )
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model(x), reference(x))


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_small_resnet_shapes_and_residuals(channels, size):
    model = SmallResNet(in_channels=channels, num_classes=7).eval()
    assert model(torch.zeros(2, channels, size, size)).shape == (2, 7)
    feats = model.forward_features(torch.zeros(2, channels, size, size))
    assert feats.shape == (2, 64, size // 4, size // 4)  # two stride-2 stages
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_small_resnet_rejects_other_channel_counts():
    with pytest.raises(ValueError, match="1 or 3"):
        SmallResNet(in_channels=2)


def test_vit_attention_equals_manual_recomputation_from_qkv(tiny_vit):
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, attentions = tiny_vit(x, return_attention=True)
        fused = tiny_vit(x)
        torch.testing.assert_close(logits, fused, atol=1e-5, rtol=1e-5)
        tokens = tiny_vit.embed(x)  # (B, T, D)
        heads, d = 4, 32 // 4
        for block, attn in zip(tiny_vit.blocks, attentions, strict=True):
            h = block.norm1(tokens)
            qkv = h @ block.attn.qkv.weight.T + block.attn.qkv.bias  # (B, T, 3D)
            q, k, _ = qkv.split(32, dim=-1)
            q = q.reshape(2, 17, heads, d).transpose(1, 2)  # (B, h, T, d)
            k = k.reshape(2, 17, heads, d).transpose(1, 2)
            manual = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)  # (B, h, T, T)
            assert attn.shape == (2, heads, 17, 17)
            torch.testing.assert_close(attn, manual, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(attn.sum(-1), torch.ones(2, heads, 17))
            tokens, _ = block(tokens)


def test_vit_rejects_wrong_input_size(tiny_vit):
    with pytest.raises(ValueError, match="16x16"):
        tiny_vit(torch.zeros(1, 1, 32, 32))
    assert isinstance(ViT(), nn.Module)
