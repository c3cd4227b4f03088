"""Effective receptive fields: how much each input pixel really moves a unit of a layer.

The theoretical receptive field (``vizlib.receptive``) is the box of pixels that *can* change a
unit. Luo, Li, Urtasun and Zemel ("Understanding the effective receptive field in deep
convolutional neural networks", NeurIPS 2016) measured how much each of them *does*: the
gradient of the unit with respect to the input image. Its magnitude falls off from the centre
of the box roughly like a Gaussian, so most of the influence comes from a small part of the box,
and that part shrinks relative to the box as layers are stacked (the box grows like the number
of layers n, the Gaussian's width like its square root).

``effective_receptive_field`` follows the paper: for a unit (row, column) of a layer's feature
map, the gradient of that unit summed over the layer's channels with respect to the input,
its magnitude summed over the input channels, averaged over images. ``gradient_share`` counts
the pixels that hold a given share of it. Nothing in the model changes: the gradient is taken
with ``torch.autograd.grad`` (no parameter's ``.grad`` is written), and the hook lives only for
the pass, on the calling thread.

``stack_effective_field`` repeats the paper's first experiment on a plain stack of convolutions
(Fig. 1): uniform weights, random weights, random weights with ReLUs. With uniform weights each
axis's profile is the kernel's box convolved with itself once per layer, which by the central
limit theorem tends to a Gaussian whose width grows like the square root of the depth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._hooks import forward_hooks
from .features import model_device
from .summary import _first_tensor

__all__ = [
    "STACK_WEIGHTS",
    "EffectiveField",
    "conv_stack",
    "effective_receptive_field",
    "field_box",
    "gradient_share",
    "profile_spread",
    "stack_effective_field",
]

# how the weights of ``conv_stack`` are set: every tap 1/(K^2 C) (each layer averages its
# window), He-normal random, or He-normal random with a ReLU after every layer but the last
STACK_WEIGHTS = ("uniform", "random", "random + ReLU")
MAX_STACK_INPUT = 1024  # the largest input side ``stack_effective_field`` builds


@dataclass(frozen=True)
class EffectiveField:
    """An effective receptive field, as ``effective_receptive_field`` returns it.

    gradient: (H, W) float64, input pixels: the mean over images of sum over input channels of
    |d (sum over channels of the unit) / d pixel|. unit: (row, column) of the unit in the
    layer's feature map, of ``map_size`` (rows, columns). images: how many were averaged.
    """

    gradient: np.ndarray
    unit: tuple[int, int]
    map_size: tuple[int, int]
    images: int


def centre_unit(map_size: tuple[int, int]) -> tuple[int, int]:
    """Return the (row, column) of a feature map's centre unit; of the centre four of an even
    map, the upper left."""
    return ((map_size[0] - 1) // 2, (map_size[1] - 1) // 2)


def effective_receptive_field(
    model: nn.Module,
    layer: str,
    images: torch.Tensor,
    *,
    unit: tuple[int, int] | None = None,
    batch_size: int = 16,
    callback: Callable[[int, int], bool | None] | None = None,
) -> EffectiveField:
    """Return the effective receptive field of one unit of ``layer`` over ``images``.

    images: (N, C, H, W), normalised as the model expects, on any device (each batch moves to
    the model's). layer: a module name whose output is a feature map (B, C', h, w); a module
    called more than once in a pass (torchvision's ReLU in a ResNet block) is taken at its last
    call, as the Model Inspector's layer table shows it. unit: (row, column) in that map, the
    centre (``centre_unit``) by default. ``callback(images_done, images_total)`` after each batch
    may return False to stop early; the field then averages the images done.

    Raises ValueError for an unknown layer, a layer whose output is not a feature map, a unit
    outside the map, or images of the wrong shape.
    """
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        raise ValueError(f"no layer named {layer!r} in the model")
    if images.ndim != 4 or images.shape[0] < 1:
        raise ValueError(f"images must be (N, C, H, W) with N >= 1, got {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = model_device(model)
    total = torch.zeros(images.shape[-2:], dtype=torch.float64, device=device)  # (H, W)
    done = 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).detach()  # (B, C, H, W)
        grad, where, size = _unit_gradient(model, modules[layer], layer, x, unit)
        total += grad.abs().sum(1).sum(0, dtype=torch.float64)  # (H, W)
        done += len(x)
        if callback is not None and callback(done, len(images)) is False:
            break
    return EffectiveField((total / done).cpu().numpy(), where, size, done)


def _unit_gradient(
    model: nn.Module,
    module: nn.Module,
    layer: str,
    x: torch.Tensor,
    unit: tuple[int, int] | None,
) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    """Return (the gradient (B, C, H, W) of ``unit`` of ``module``'s output summed over its
    channels with respect to ``x``, the unit, the map's size) at the module's last call."""
    x = x.requires_grad_(True)
    found: list[tuple[torch.Tensor, tuple[int, int], tuple[int, int]]] = []

    def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
        out = _first_tensor(output)
        if out is None or out.ndim != 4:
            shape = None if out is None else tuple(out.shape)
            raise ValueError(
                f"{layer}'s output {shape} is not a feature map (batch, channels, rows, "
                "columns): an effective receptive field needs one"
            )
        size = (int(out.shape[2]), int(out.shape[3]))
        where = centre_unit(size) if unit is None else (int(unit[0]), int(unit[1]))
        if not (0 <= where[0] < size[0] and 0 <= where[1] < size[1]):
            raise ValueError(f"unit {where} is outside {layer}'s {size[0]}x{size[1]} map")
        # taken here, at this call: an in-place op later in the pass (a ReLU after a BatchNorm)
        # would rewrite this tensor and its history
        (grad,) = torch.autograd.grad(
            out[:, :, where[0], where[1]].sum(), x, retain_graph=True, allow_unused=True
        )  # (B, C, H, W); None where the unit does not depend on the input
        found[:] = [(torch.zeros_like(x) if grad is None else grad.detach(), where, size)]

    with torch.enable_grad(), forward_hooks([(module, hook)]):
        model(x)
    if not found:
        raise ValueError(f"{layer} was not called in the forward pass")
    return found[0]


def field_box(
    receptive_field: tuple[int, int],
    jump: tuple[int, int],
    start: tuple[int, int],
    unit: tuple[int, int],
) -> tuple[int, int, int, int]:
    """Return the theoretical receptive field of ``unit`` as (top, left, bottom, right), input
    pixels, inclusive; it may reach outside the image (into the padding).

    receptive_field, jump, start: (rows, columns) as ``vizlib.receptive`` gives them per layer.
    """
    top = start[0] + unit[0] * jump[0]
    left = start[1] + unit[1] * jump[1]
    return (top, left, top + receptive_field[0] - 1, left + receptive_field[1] - 1)


def gradient_share(gradient: np.ndarray, share: float = 0.9) -> int:
    """Return how many pixels hold ``share`` of the gradient's total: the fewest, largest first.

    gradient: (H, W), non-negative. 0 when the gradient is 0 everywhere.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    values = np.sort(np.asarray(gradient, dtype=np.float64).ravel())[::-1]
    total = values.sum()
    if total <= 0:
        return 0
    cumulative = np.cumsum(values)
    return int(np.searchsorted(cumulative, share * total * (1 - 1e-12)) + 1)


def conv_stack(
    layers: Sequence[tuple[int, int, int]],
    *,
    weights: str = "uniform",
    channels: int = 4,
    seed: int = 0,
) -> nn.Sequential:
    """Return a stack of bias-free, unpadded convolutions, (kernel, stride, dilation) per layer,
    first layer first, each with ``channels`` channels in and out (one input channel first).

    weights: one of STACK_WEIGHTS; the random ones are seeded He-normal (std sqrt(2 / fan-in)).
    """
    if weights not in STACK_WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(STACK_WEIGHTS)}, got {weights!r}")
    if not layers:
        raise ValueError("a stack needs at least one layer")
    generator = torch.Generator().manual_seed(seed)
    modules: list[nn.Module] = []
    for i, (k, s, d) in enumerate(layers):
        c_in = 1 if i == 0 else channels
        conv = nn.Conv2d(c_in, channels, int(k), stride=int(s), dilation=int(d), bias=False)
        with torch.no_grad():
            if weights == "uniform":
                conv.weight.fill_(1.0 / (int(k) ** 2 * c_in))
            else:
                std = math.sqrt(2.0 / (c_in * int(k) ** 2))
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)
        modules.append(conv)
        if weights == "random + ReLU" and i < len(layers) - 1:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).eval()


def stack_effective_field(
    layers: Sequence[tuple[int, int, int]],
    *,
    weights: str = "uniform",
    channels: int = 4,
    images: int = 16,
    seed: int = 0,
) -> tuple[EffectiveField, tuple[int, int, int, int]]:
    """Return (the effective receptive field of the centre unit of ``conv_stack``'s output, its
    theoretical box (top, left, bottom, right)) over seeded standard-normal noise images.

    The square input holds the field with a margin of one jump (the product of the strides) on
    each side, so that the centre unit's map is 3 x 3 and the zeros around the box show; its
    side is at most MAX_STACK_INPUT pixels, else ValueError.
    """
    model = conv_stack(layers, weights=weights, channels=channels, seed=seed)
    size, jump = 1, 1
    for k, s, d in layers:
        size += int(d) * (int(k) - 1) * jump
        jump *= int(s)
    side = size + 2 * jump
    if side > MAX_STACK_INPUT:
        raise ValueError(
            f"the stack's field is {size} pixels: with its margin, {side} pixels a side is more "
            f"than the {MAX_STACK_INPUT} this draws"
        )
    noise = torch.randn(images, 1, side, side, generator=torch.Generator().manual_seed(seed + 1))
    last = str(len(model) - 1)
    field = effective_receptive_field(model, last, noise, unit=(1, 1))
    return field, field_box((size, size), (jump, jump), (0, 0), field.unit)


def profile_spread(profile: np.ndarray) -> tuple[float, float]:
    """Return (mean, standard deviation) in pixels of a 1-D profile read as a distribution.

    profile: (L,), non-negative, not all zero.
    """
    p = np.asarray(profile, dtype=np.float64)
    if p.ndim != 1 or p.sum() <= 0 or (p < 0).any():
        raise ValueError("a profile is one non-negative, not all zero row of values")
    x = np.arange(len(p), dtype=np.float64)
    weights = p / p.sum()
    mean = float((weights * x).sum())
    return mean, float(math.sqrt((weights * (x - mean) ** 2).sum()))
