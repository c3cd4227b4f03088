"""Learned convolution filters: weights, their scaling for display, norms, histograms, and the
dataset images that excite a channel most. Nothing here changes the model it reads.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .features import activations, layer_names

__all__ = [
    "channel_scores",
    "conv_filters",
    "conv_layer_names",
    "feature_maps",
    "filter_norms",
    "filter_slices",
    "filter_tiles",
    "normalize_filters",
    "top_activating",
    "untrained_model",
    "weight_histogram",
    "weight_histograms",
]


def conv_layer_names(model: nn.Module) -> list[str]:
    """Return the dotted names of the model's ``nn.Conv2d`` layers, in definition order."""
    return layer_names(model, kinds=nn.Conv2d)


def conv_filters(model: nn.Module, layer_name: str) -> torch.Tensor:
    """Return a CPU copy of a conv layer's weights, shape (out_channels, in_channels / groups, kh, kw)."""
    modules = dict(model.named_modules())
    module = modules.get(layer_name)
    if not isinstance(module, nn.Conv2d):
        convs = conv_layer_names(model)
        what = "not a layer of this model" if module is None else f"a {type(module).__name__}"
        raise ValueError(
            f"{layer_name!r} is {what}, not a Conv2d; conv layers: {', '.join(convs) or '(none)'}."
        )
    return module.weight.detach().to("cpu", torch.float32, copy=True)


def untrained_model(meta: dict) -> nn.Module:
    """Return a fresh model of ``meta``'s architecture at its random initialisation, on the CPU.

    The weights are those training started from: ``torch.manual_seed(meta["seed"])`` (0 when the
    metadata has none, as for torchvision models) and then the constructor, as ``vizlib.train``
    and ``vizlib.zoo`` do. The caller's random stream is left as it was.
    """
    seed = int(meta.get("seed") or 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if meta.get("source") == "torchvision":
            from torchvision.models import get_model

            model = get_model(meta["architecture"], weights=None)
        else:
            from .zoo import build_model

            model = build_model(meta["architecture"], meta.get("config"))
    return model.eval()


def filter_tiles(weights: torch.Tensor, *, shared: bool = False) -> np.ndarray:
    """Return conv weights (out, in, kh, kw) as display tiles (out, 1 or 3, kh, kw) in [0, 1]:
    RGB for 3 input channels, grey for 1, else the mean over the input channels; scaled as
    ``normalize_filters`` does (each filter to its own range, or one range with ``shared``)."""
    if weights.shape[1] not in (1, 3):
        weights = weights.mean(dim=1, keepdim=True)  # (out, 1, kh, kw)
    return normalize_filters(weights, shared=shared).numpy()


def normalize_filters(weights: torch.Tensor, *, shared: bool = False) -> torch.Tensor:
    """Return weights min-max scaled to [0, 1] for display, same shape (out, ...).

    ``shared=False`` scales each filter (index 0) by its own range, so weak filters stay
    visible; ``shared=True`` uses one range for all, so strengths compare. A constant filter maps
    to 0.5.
    """
    w = weights.detach().to(torch.float32)
    if shared:
        lo, hi = w.min(), w.max()
    else:
        flat = w.reshape(w.shape[0], -1)  # (out, in * kh * kw)
        shape = (-1,) + (1,) * (w.ndim - 1)
        lo = flat.min(dim=1).values.view(shape)
        hi = flat.max(dim=1).values.view(shape)
    span = hi - lo
    scaled = (w - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, scaled, torch.full_like(w, 0.5))


def filter_slices(weights: torch.Tensor, filter_index: int, *, mean: bool = False) -> torch.Tensor:
    """Return one filter's slices per input channel (in, kh, kw), or their mean (1, kh, kw)."""
    if not 0 <= filter_index < weights.shape[0]:
        raise ValueError(
            f"filter_index must be in [0, {weights.shape[0] - 1}], got {filter_index}."
        )
    w = weights[filter_index]  # (in, kh, kw)
    return w.mean(dim=0, keepdim=True) if mean else w.clone()


def filter_norms(weights: torch.Tensor) -> torch.Tensor:
    """Return each filter's Euclidean (L2) norm over (in, kh, kw), shape (out,)."""
    return weights.detach().to(torch.float32).reshape(weights.shape[0], -1).norm(dim=1)


def weight_histogram(
    weights: torch.Tensor, *, bins: int = 50, value_range: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (counts (bins,), edges (bins + 1,)) of all weight values of one layer.

    ``value_range`` (low, high) fixes the bins' span (default: the weights' own minimum and
    maximum), so histograms of two weight tensors can share their bins and be compared.
    """
    values = weights.detach().to("cpu", torch.float32).reshape(-1).numpy()
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("weights are empty or contain NaN/inf")
    return np.histogram(values, bins=bins, range=value_range)


def weight_histograms(
    model: nn.Module, *, layers: list[str] | None = None, bins: int = 50
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return {layer: (counts, edges)} of the weights of each conv layer (or the named layers)."""
    names = conv_layer_names(model) if layers is None else layers
    return {name: weight_histogram(conv_filters(model, name), bins=bins) for name in names}


def feature_maps(
    model: nn.Module, image: torch.Tensor, layer_name: str, *, device=None
) -> torch.Tensor:
    """Return the layer's output for one image (C, H, W) (or (T, D) / (F,) for other layers), on the CPU.

    image: (C, H, W) or (1, C, H, W), normalised as the model expects.
    """
    x = image if image.ndim == 4 else image[None]  # (1, C, H, W)
    if x.shape[0] != 1:
        raise ValueError(f"give one image, got a batch of {x.shape[0]}")
    return activations(model, x, [layer_name], device=device)[layer_name][0]


def channel_scores(
    model: nn.Module,
    images: torch.Tensor,
    layer_name: str,
    *,
    reduce: str = "mean",
    batch_size: int = 128,
    device=None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Return how strongly each image drives each channel of a layer, shape (N, C), from one pass.

    images: (N, C_in, H, W). A conv output (N, C, h, w) is reduced over (h, w) by its "mean" or
    "max"; a token output (N, T, D) over tokens; a (N, F) output is used as it is. The dataset is
    walked in chunks so only (N, C) scores are kept, not the full feature maps.
    """
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    total = images.shape[0]
    parts = []
    for start in range(0, total, batch_size):
        chunk = images[start : start + batch_size]
        out = activations(model, chunk, [layer_name], batch_size=batch_size, device=device)
        act = out[layer_name]  # (n, C, h, w), (n, T, D) or (n, F)
        if act.ndim > 2:
            flat = act.flatten(2) if act.ndim == 4 else act.transpose(1, 2)  # (n, C, positions)
            act = flat.amax(dim=2) if reduce == "max" else flat.mean(dim=2)  # (n, C)
        parts.append(act.reshape(act.shape[0], -1))
        if progress is not None:
            progress(min(start + batch_size, total), total)
    return torch.cat(parts)


def top_activating(
    scores: torch.Tensor, channel: int, *, k: int = 9
) -> tuple[np.ndarray, np.ndarray]:
    """Return (indices (k,), scores (k,)) of the images with the highest score for ``channel``.

    scores: (N, C) from ``channel_scores``; ties keep the lower index first.
    """
    if not 0 <= channel < scores.shape[1]:
        raise ValueError(f"channel must be in [0, {scores.shape[1] - 1}], got {channel}.")
    column = scores[:, channel].to("cpu", torch.float64).numpy()
    order = np.argsort(-column, kind="stable")[: max(1, min(k, column.size))]
    return order, column[order]
