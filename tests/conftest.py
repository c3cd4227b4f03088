"""Shared fixtures: seeded tiny models and inputs; the gpu marker's skip rule."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch


def worker_threads() -> int:
    """The torch threads each pytest-xdist worker gets: the machine's cores shared among the
    workers (``make test`` runs two on a 2-core machine), all of them without xdist."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (os.cpu_count() or 1) // workers)


def pytest_configure(config):
    # torch's default is a thread per core in every process: two workers, and their browser
    # tests' app servers, would each run as many threads as the machine has cores and thrash.
    torch.set_num_threads(worker_threads())


def pytest_collection_modifyitems(config, items):
    _spread_browser_tests(items)
    # gpu tests skip with a reason where there is no CUDA
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def _spread_browser_tests(items: list) -> None:
    """Spread the browser tests evenly through the run, in their own order.

    Collected first (tests/e2e), they all went to the first pytest-xdist worker: its first
    batch is a quarter of its half of the suite (140 tests), and a worker keeps its batch. That
    worker then ran every browser test, one after another. Spread out, both workers (each with
    its own app server) run browser tests, and one computes while the other's browser waits for
    the app. (Measured once each: 14 min 7 s before, 13 min 17 s after; the host's speed varies.)"""
    browser = [item for item in items if "e2e" in item.path.parts]
    rest = [item for item in items if "e2e" not in item.path.parts]
    if not browser or not rest:
        return
    step = len(rest) / len(browser)
    spread = []
    for k, item in enumerate(browser):
        spread.extend(rest[round(k * step) : round((k + 1) * step)])
        spread.append(item)
    items[:] = spread


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


def _write_idx(path, array: np.ndarray) -> None:
    """Write an uint8 array in MNIST's IDX format (magic 0x08 = ubyte, then the dimensions)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fake_mnist(root, n_train: int = 50, n_test: int = 20) -> dict:
    """Write a small MNIST (random pixels and labels) in torchvision's layout under ``root``;
    return {split: (images (N, 28, 28) uint8, labels (N,) uint8)}."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[split] = (images, labels)
    return arrays
