"""Which attention heads a Vision Transformer needs: gradient importance and pruning.

Each head h of block l gets a gate g[l, h] that scales its value vectors, so the head's output
(its attention-weighted values, before the output projection) is g times what it was, and the
attention weights stay as they were. With every gate at 1 the network is unchanged; a gate at 0
removes the head. The importance of a head is |dL/dg| at g = 1 (Michel, Levy and Neubig, "Are
sixteen heads really better than one?", NeurIPS 2019), summed over minibatches, with L the
cross-entropy of the model's own predictions on the images (so no labels are needed: it measures
what the model's answers depend on). Pruning the least important heads first and counting how
often the answers stay the same tests the ranking: a good one keeps them longer than a random
order.

The gates act through ``torch.func.functional_call`` on a private copy of the model (the shared
model is only read, to copy it): functional_call swaps the module's parameters while it runs, so
on a shared model another thread would see the gated weights. The value rows of the fused
q/k/v projection are the last third of its output rows, head by head, in all three supported
ViTs (vizlib's ``ViT``, torchvision's ``VisionTransformer``, timm's ``VisionTransformer``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import private_copy
from .attention import _is_timm_vit, _is_torchvision_vit, vit_geometry

__all__ = [
    "HeadImportance",
    "agreement_with_heads",
    "head_importance",
    "pruning_curve",
    "value_projections",
]


def value_projections(model: nn.Module) -> list[tuple[str, str | None]]:
    """Return, per block, the names of the fused q/k/v projection's weight (3D, D) and bias (3D,)
    (None without one), whose last D rows make the values, ``head_dim`` rows per head."""
    from .models import ViT

    if isinstance(model, ViT):
        names = [f"blocks.{i}.attn.qkv" for i in range(len(model.blocks))]
        return [(f"{n}.weight", f"{n}.bias") for n in names]
    if _is_torchvision_vit(model):
        out = []
        for name, block in model.encoder.layers.named_children():
            mha = block.self_attention
            if mha.in_proj_weight is None:
                raise ValueError("separate q/k/v projections are not supported")
            prefix = f"encoder.layers.{name}.self_attention"
            bias = f"{prefix}.in_proj_bias" if mha.in_proj_bias is not None else None
            out.append((f"{prefix}.in_proj_weight", bias))
        return out
    if _is_timm_vit(model):
        vit_geometry(model)  # refuses the blocks it cannot handle
        out = []
        for i, block in enumerate(model.blocks):
            bias = f"blocks.{i}.attn.qkv.bias" if block.attn.qkv.bias is not None else None
            out.append((f"blocks.{i}.attn.qkv.weight", bias))
        return out
    vit_geometry(model)  # raises a TypeError naming the model
    raise TypeError(f"{type(model).__name__} has no fused q/k/v projection")


def _gated_parameters(
    params: dict[str, torch.Tensor], projections: list[tuple[str, str | None]], gates: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The q/k/v projections with each head's value rows scaled by its gate: gates (L, H)."""
    gated = {}
    for layer, (weight, bias) in enumerate(projections):
        w = params[weight]  # (3D, D)
        d = w.shape[0] // 3
        heads = gates.shape[1]
        scale = torch.cat([gates.new_ones(2 * d), gates[layer].repeat_interleave(d // heads)])
        gated[weight] = w * scale[:, None].to(w.dtype)
        if bias is not None:
            gated[bias] = params[bias] * scale.to(params[bias].dtype)
    return gated


def _logits(model: nn.Module, params: dict, x: torch.Tensor) -> torch.Tensor:
    out = torch.func.functional_call(model, params, (x,))
    return out[0] if isinstance(out, tuple) else out


@dataclass
class HeadImportance:
    """What ``head_importance`` returns: ``importance`` (layers, heads), |dL/dg| summed over the
    minibatches (L the mean cross-entropy of each batch); ``normalized``: each layer's row divided
    by its L2 norm (Michel et al.'s per-layer normalisation); ``predictions`` (N,) the model's
    answers the loss used; ``images``, ``seconds``."""

    importance: np.ndarray
    normalized: np.ndarray
    predictions: torch.Tensor
    images: int
    seconds: float


def _prepared(model: nn.Module, lock) -> tuple[nn.Module, list[tuple[str, str | None]], dict]:
    with lock or contextlib.nullcontext():
        clone = private_copy(model)
    projections = value_projections(clone)
    params = dict(clone.named_parameters())
    return clone, projections, params


def head_importance(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 32,
    lock: contextlib.AbstractContextManager | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> HeadImportance:
    """Return each head's importance for the model's own answers on ``images`` (N, C, H, W),
    normalised as the model expects, passed ``batch_size`` at a time on the model's device.
    ``lock`` is held while the model is copied; ``progress(done, total)`` after each batch."""
    start = time.perf_counter()
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be (N, C, H, W) with N >= 1, got {tuple(images.shape)}")
    geo = vit_geometry(model)
    clone, projections, params = _prepared(model, lock)
    device = next(iter(params.values())).device
    gates = torch.ones(geo.num_layers, geo.num_heads, device=device, requires_grad=True)
    total = torch.zeros(geo.num_layers, geo.num_heads, dtype=torch.float64)
    answers = []
    batches = range(0, len(images), batch_size)
    for done, lo in enumerate(batches, start=1):
        x = images[lo : lo + batch_size].to(device)
        with torch.enable_grad():
            logits = _logits(clone, params | _gated_parameters(params, projections, gates), x)
            predicted = logits.argmax(dim=1)
            loss = F.cross_entropy(logits, predicted)
            (grad,) = torch.autograd.grad(loss, gates)
        total += grad.detach().abs().double().cpu()
        answers.append(predicted.cpu())
        if progress is not None:
            progress(done, len(batches))
    importance = total.numpy()
    norms = np.linalg.norm(importance, axis=1, keepdims=True)
    normalized = np.divide(importance, norms, out=np.zeros_like(importance), where=norms > 0)
    return HeadImportance(
        importance=importance,
        normalized=normalized,
        predictions=torch.cat(answers),
        images=len(images),
        seconds=time.perf_counter() - start,
    )


def agreement_with_heads(
    model: nn.Module,
    images: torch.Tensor,
    answers: torch.Tensor,
    keep: torch.Tensor,
    *,
    batch_size: int = 32,
    lock: contextlib.AbstractContextManager | None = None,
) -> float:
    """Return the share of ``images`` on which the model with only the heads ``keep`` (L, H)
    bool (False: removed) still gives ``answers`` (N,)."""
    clone, projections, params = _prepared(model, lock)
    return _agreement(clone, projections, params, images, answers, keep, batch_size)


def _agreement(clone, projections, params, images, answers, keep, batch_size) -> float:
    device = next(iter(params.values())).device
    gates = keep.to(device=device, dtype=torch.float32)
    gated = params | _gated_parameters(params, projections, gates)
    same = 0
    with torch.inference_mode():
        for lo in range(0, len(images), batch_size):
            x = images[lo : lo + batch_size].to(device)
            same += int(
                (_logits(clone, gated, x).argmax(1).cpu() == answers[lo : lo + batch_size]).sum()
            )
    return same / len(images)


def pruning_curve(
    model: nn.Module,
    images: torch.Tensor,
    answers: torch.Tensor,
    order: Sequence[tuple[int, int]],
    counts: Sequence[int],
    *,
    batch_size: int = 32,
    lock: contextlib.AbstractContextManager | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[float]:
    """Return, for each number of heads removed in ``counts``, the share of ``images`` on which
    the model keeps its ``answers`` when the first that many heads of ``order`` ((layer, head)
    pairs) are removed. One copy of the model serves every count."""
    geo = vit_geometry(model)
    clone, projections, params = _prepared(model, lock)
    result = []
    for done, count in enumerate(counts, start=1):
        keep = torch.ones(geo.num_layers, geo.num_heads, dtype=torch.bool)
        for layer, head in order[: int(count)]:
            keep[layer, head] = False
        result.append(_agreement(clone, projections, params, images, answers, keep, batch_size))
        if progress is not None:
            progress(done, len(counts))
    return result
