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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._hooks import forward_hooks
from .features import model_device
from .summary import _first_tensor

__all__ = ["EffectiveField", "effective_receptive_field", "field_box", "gradient_share"]


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
