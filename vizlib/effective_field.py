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
its magnitude summed over the input channels, averaged over images. A Vision Transformer's layers
output tokens (batch, tokens, features): there the unit is a token, its features summed, so the
same measurement shows how far attention has spread a patch's view (or the class token's) block
by block; ``vit_blocks`` names a ViT's blocks and ``patch_token`` numbers its tokens. ``gradient_share`` counts
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
    "UNIT_MODES",
    "EffectiveField",
    "FieldLayer",
    "conv_stack",
    "default_layer",
    "effective_receptive_field",
    "field_box",
    "field_layers",
    "field_steps",
    "gradient_share",
    "profile_spread",
    "patch_token",
    "stack_effective_field",
    "unit_for",
    "vit_blocks",
]

CENTRE, CORNER, CLASS_TOKEN = "centre", "top-left corner", "class token"
UNIT_MODES = (CENTRE, CORNER, CLASS_TOKEN)  # which unit of a layer, as ``unit_for`` reads them

# how the weights of ``conv_stack`` are set: every tap 1/(K^2 C) (each layer averages its
# window), He-normal random, or He-normal random with a ReLU after every layer but the last
STACK_WEIGHTS = ("uniform", "random", "random + ReLU")
MAX_STACK_INPUT = 1024  # the largest input side ``stack_effective_field`` builds


@dataclass(frozen=True)
class EffectiveField:
    """An effective receptive field, as ``effective_receptive_field`` returns it.

    gradient: (H, W) float64, input pixels: the mean over images of sum over input channels of
    |d (sum over channels of the unit) / d pixel|. unit: (row, column) of the unit in the
    layer's feature map of ``map_size`` (rows, columns), or for a layer of tokens the token's
    index, ``map_size`` then (tokens,). images: how many were averaged.
    """

    gradient: np.ndarray
    unit: tuple[int, int] | int
    map_size: tuple[int, ...]
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
    unit: tuple[int, int] | int | None = None,
    batch_size: int = 16,
    callback: Callable[[int, int], bool | None] | None = None,
) -> EffectiveField:
    """Return the effective receptive field of one unit of ``layer`` over ``images``.

    images: (N, C, H, W), normalised as the model expects, on any device (each batch moves to
    the model's). layer: a module name whose output is a feature map (B, C', h, w), or tokens
    (B, T, D) batch first; a module called more than once in a pass (torchvision's ReLU in a
    ResNet block) is taken at its last call, as the Model Inspector's layer table shows it.
    unit: (row, column) in the map, the centre (``centre_unit``) by default; for tokens the
    token's index, which must be given (``patch_token``). ``callback(images_done,
    images_total)`` after each batch may return False to stop early; the field then averages
    the images done.

    Raises ValueError for an unknown layer, an output that is neither, a unit outside it, or
    images of the wrong shape.
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
    unit: tuple[int, int] | int | None,
) -> tuple[torch.Tensor, tuple[int, int] | int, tuple[int, ...]]:
    """Return (the gradient (B, C, H, W) of ``unit`` of ``module``'s output summed over its
    channels with respect to ``x``, the unit, the output's size) at the module's last call."""
    x = x.requires_grad_(True)
    found: list[tuple[torch.Tensor, tuple[int, int] | int, tuple[int, ...]]] = []

    def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
        out = _first_tensor(output)
        if out is not None and out.ndim == 3:  # (B, T, D): a token's features
            size: tuple[int, ...] = (int(out.shape[1]),)
            if not isinstance(unit, int):
                raise ValueError(f"{layer} outputs {size[0]} tokens: name one by its index")
            if not 0 <= unit < size[0]:
                raise ValueError(f"token {unit} is outside {layer}'s {size[0]} tokens")
            where: tuple[int, int] | int = unit
            value = out[:, unit, :].sum()
        elif out is not None and out.ndim == 4:  # (B, C', h, w): a unit of every channel
            size = (int(out.shape[2]), int(out.shape[3]))
            if isinstance(unit, int):
                raise ValueError(f"{layer} outputs a feature map: name a unit by (row, column)")
            where = centre_unit(size) if unit is None else (int(unit[0]), int(unit[1]))
            if not (0 <= where[0] < size[0] and 0 <= where[1] < size[1]):
                raise ValueError(f"unit {where} is outside {layer}'s {size[0]}x{size[1]} map")
            value = out[:, :, where[0], where[1]].sum()
        else:
            shape = None if out is None else tuple(out.shape)
            raise ValueError(
                f"{layer}'s output {shape} is neither a feature map (batch, channels, rows, "
                "columns) nor tokens (batch, tokens, features): an effective receptive field "
                "needs one"
            )
        # taken here, at this call: an in-place op later in the pass (a ReLU after a BatchNorm)
        # would rewrite this tensor and its history
        (grad,) = torch.autograd.grad(
            value, x, retain_graph=True, allow_unused=True
        )  # (B, C, H, W); None where the unit does not depend on the input
        found[:] = [(torch.zeros_like(x) if grad is None else grad.detach(), where, size)]

    with torch.enable_grad(), forward_hooks([(module, hook)]):
        model(x)
    if not found:
        raise ValueError(f"{layer} was not called in the forward pass")
    return found[0]


def vit_blocks(model: nn.Module) -> list[str]:
    """Return the module names of a ViT's transformer blocks, first first (vizlib's ViT, torchvision's
    and timm's VisionTransformer); TypeError for another model."""
    from .attention import _is_timm_vit, _is_torchvision_vit
    from .models import ViT

    if isinstance(model, ViT) or _is_timm_vit(model):
        blocks = list(model.blocks)
    elif _is_torchvision_vit(model):
        blocks = list(model.encoder.layers)
    else:
        raise TypeError(f"{type(model).__name__} is not a supported ViT")
    names = {id(m): name for name, m in model.named_modules()}
    return [names[id(b)] for b in blocks]


def patch_token(
    patch: tuple[int, int], *, grid_size: tuple[int, int], num_prefix_tokens: int
) -> int:
    """Return the token index of the patch at (row, column) of a ViT's grid, counted from 0 at
    the top left, after the ``num_prefix_tokens`` (class and register tokens) that come first."""
    if not (0 <= patch[0] < grid_size[0] and 0 <= patch[1] < grid_size[1]):
        raise ValueError(f"patch {patch} is outside the {grid_size[0]}x{grid_size[1]} grid")
    return num_prefix_tokens + patch[0] * grid_size[1] + patch[1]


@dataclass(frozen=True)
class FieldLayer:
    """A layer whose effective receptive field can be measured, as ``field_layers`` lists them.

    kind: the module's type, or "block i" for a ViT's blocks. receptive_field, jump, start:
    (rows, columns) in input pixels as ``vizlib.receptive`` gives them, or for a block of tokens
    "whole image", None and None. map_size: the feature map's (rows, columns); None for tokens.
    """

    name: str
    kind: str
    receptive_field: tuple[int, int] | str
    jump: tuple[int, int] | None
    start: tuple[int, int] | None
    map_size: tuple[int, int] | None

    @property
    def tokens(self) -> bool:
        return self.map_size is None

    def box(self, unit: tuple[int, int] | int, image_hw: tuple[int, int]) -> tuple[int, ...]:
        """The theoretical field of ``unit`` (top, left, bottom, right), input pixels; the whole
        image for a block of tokens, which attention has mixed."""
        if self.tokens:
            return (0, 0, image_hw[0] - 1, image_hw[1] - 1)
        assert isinstance(self.receptive_field, tuple) and self.jump and self.start
        return field_box(self.receptive_field, self.jump, self.start, unit)  # type: ignore[arg-type]


def field_layers(model: nn.Module, rows: list[dict]) -> list[FieldLayer]:
    """Return the layers of ``model`` whose effective field ``effective_receptive_field`` can
    measure, in call order: those of ``rows`` (``vizlib.summary.layer_table``) that output a
    feature map with a field in pixels, then, for a ViT, its transformer blocks."""
    layers = [
        FieldLayer(
            r["name"],
            r["type"],
            tuple(r["receptive_field"]),
            tuple(r["jump"]),
            tuple(r["rf_start"]),
            tuple(r["output_shape"][2:]),
        )
        for r in rows
        if r["output_shape"]
        and len(r["output_shape"]) == 4
        and isinstance(r["receptive_field"], tuple)
        and r["jump"] is not None
    ]
    try:
        blocks = vit_blocks(model)
    except TypeError:
        return layers
    return layers + [
        FieldLayer(name, f"block {i}", "whole image", None, None, None)
        for i, name in enumerate(blocks)
    ]


def field_steps(layers: list[FieldLayer]) -> list[FieldLayer]:
    """Return the layers where the theoretical field changes (size, jump or start): the
    convolutions and poolings that grow it and the residual merges that widen it, without the
    norms and activations that repeat it; and every transformer block."""
    steps: list[FieldLayer] = []
    for layer in layers:
        field = (layer.receptive_field, layer.jump, layer.start)
        if (
            layer.tokens
            or not steps
            or field != (steps[-1].receptive_field, steps[-1].jump, steps[-1].start)
        ):
            steps.append(layer)
    return steps


def default_layer(layers: list[FieldLayer], image_hw: tuple[int, int]) -> str:
    """Return the layer to show first: a ViT's first block; else the deepest layer of the main
    path (not a shortcut, whose field is smaller than one met before it) that grows the field
    while it still fits in the image, on a map with a centre (3 x 3 or more), so that the
    falling-off shows whole; else the last layer."""
    blocks = [layer.name for layer in layers if layer.tokens]
    if blocks:
        return blocks[0]
    fitting, largest = [], (0, 0)
    for layer in field_steps(layers):
        size = layer.receptive_field
        assert isinstance(size, tuple) and layer.map_size is not None
        branch = any(f < m for f, m in zip(size, largest, strict=True))
        largest = tuple(max(f, m) for f, m in zip(size, largest, strict=True))
        fits = all(f <= s for f, s in zip(size, image_hw, strict=True))
        if not branch and fits and min(layer.map_size) >= 3:
            fitting.append(layer.name)
    return (fitting or [layer.name for layer in layers])[-1]


def unit_for(layer: FieldLayer, mode: str, model: nn.Module) -> tuple[int, int] | int:
    """Return the unit of ``layer`` that ``mode`` (one of UNIT_MODES) names: the centre or
    top-left unit of a feature map, or of a ViT's blocks the token of the centre or top-left
    patch, or the class token. ValueError where there is no such unit."""
    if mode not in UNIT_MODES:
        raise ValueError(f"mode must be one of {', '.join(UNIT_MODES)}, got {mode!r}")
    if not layer.tokens:
        assert layer.map_size is not None
        if mode == CLASS_TOKEN:
            raise ValueError(
                f"{layer.name} outputs a feature map, before the class token joins the patches: "
                "choose a block"
            )
        return centre_unit(layer.map_size) if mode == CENTRE else (0, 0)
    from .attention import vit_geometry

    geometry = vit_geometry(model)
    if mode == CLASS_TOKEN:
        if not geometry.has_class_token:
            raise ValueError("this ViT has no class token")
        return 0
    patch = centre_unit(geometry.grid_size) if mode == CENTRE else (0, 0)
    return patch_token(
        patch, grid_size=geometry.grid_size, num_prefix_tokens=geometry.num_prefix_tokens
    )


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
