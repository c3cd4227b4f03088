"""Shared fixtures: seeded tiny models and inputs; the gpu marker's skip rule."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture
def tiny_vit():
    """A 16x16, patch-4 ViT (4x4 grid plus the class token), seeded, in eval mode."""
    from vizlib.models import ViT

    torch.manual_seed(0)
    return ViT(
        image_size=16,
        patch_size=4,
        in_channels=1,
        num_classes=10,
        dim=32,
        depth=2,
        heads=4,
        mlp_dim=64,
    ).eval()
