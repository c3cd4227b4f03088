"""ViT embedding probes: learned position-embedding similarity, patch-embedding principal
components, and the original Transformer's sinusoidal encoding for comparison."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "ViTEmbeddings",
    "patch_embedding_components",
    "position_similarity",
    "sinusoidal_encoding",
    "sinusoidal_similarity",
    "vit_embeddings",
]


@dataclass(frozen=True)
class ViTEmbeddings:
    """A ViT's learned embeddings, copied to the CPU.

    ``pos_embed`` (T, D) with T = ``num_prefix_tokens`` + gh * gw; ``patch_weight`` (D, C, P, P).
    ``num_prefix_tokens`` counts prefix rows IN ``pos_embed`` (0 for timm's ``no_embed_class``).
    """

    pos_embed: torch.Tensor
    patch_weight: torch.Tensor
    grid_size: tuple[int, int]
    num_prefix_tokens: int


def vit_embeddings(model: nn.Module) -> ViTEmbeddings:
    """Return the position embedding, patch-embedding weight, grid and prefix count of a ViT.

    Supported: ``vizlib.models.ViT`` (``pos_embed``, ``patch_embed``), torchvision's
    ``VisionTransformer`` (``encoder.pos_embedding``, ``conv_proj``) and timm's ViTs
    (``pos_embed``, ``patch_embed.proj``). Raises ``TypeError`` otherwise.
    """
    from .attention import _is_timm_vit, _is_torchvision_vit, vit_geometry
    from .models import ViT

    geo = vit_geometry(model)  # raises TypeError for unsupported models
    if isinstance(model, ViT):
        pos, weight = model.pos_embed, model.patch_embed.weight
    elif _is_torchvision_vit(model):
        pos, weight = model.encoder.pos_embedding, model.conv_proj.weight
    elif _is_timm_vit(model):
        if getattr(model, "pos_embed", None) is None:
            raise ValueError("this timm model has no learned absolute position embedding")
        pos, weight = model.pos_embed, model.patch_embed.proj.weight
    else:  # pragma: no cover - vit_geometry already raised
        raise TypeError(type(model).__name__)
    pos = pos.detach().float().cpu().reshape(-1, pos.shape[-1])  # (T, D)
    prefix = pos.shape[0] - geo.num_patches
    if prefix not in (0, geo.num_prefix_tokens):
        raise ValueError(
            f"position embedding has {pos.shape[0]} rows for {geo.num_patches} patches and "
            f"{geo.num_prefix_tokens} prefix tokens"
        )
    return ViTEmbeddings(
        pos_embed=pos,
        patch_weight=weight.detach().float().cpu().clone(),
        grid_size=geo.grid_size,
        num_prefix_tokens=prefix,
    )


def position_similarity(
    pos_embed: torch.Tensor, grid_hw: tuple[int, int], num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Return the cosine similarity between patch position embeddings, (gh, gw, gh, gw).

    ``pos_embed`` (1, T, D) or (T, D), T = ``num_prefix_tokens`` + gh * gw; prefix rows (class
    token) are dropped. Entry [r, c, i, j] compares patch (r, c) with patch (i, j); in [-1, 1].
    """
    gh, gw = grid_hw
    pos = pos_embed.detach().reshape(-1, pos_embed.shape[-1]).double()  # (T, D)
    patches = pos[num_prefix_tokens:]  # (N, D)
    if patches.shape[0] != gh * gw:
        raise ValueError(
            f"{pos.shape[0]} embeddings minus {num_prefix_tokens} prefix tokens do not fill a "
            f"{gh}x{gw} grid"
        )
    unit = torch.nn.functional.normalize(patches, dim=-1)  # (N, D)
    return (unit @ unit.T).reshape(gh, gw, gh, gw).float()


def patch_embedding_components(
    weight: torch.Tensor, k: int = 28
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the top-k principal components of patch-embedding filters and their variance ratios.

    ``weight`` (D, C, P, P): the D filters, each a sample of C*P*P features (PCA with the
    filters' mean removed, as scikit-learn's PCA). Returns components (k, C, P, P), unit norm, sign
    fixed so each component's largest-magnitude entry is positive, and explained-variance ratios
    (k,), summing to at most 1. ``k`` is clamped to min(D, C*P*P) with a warning.
    """
    if weight.ndim != 4:
        raise ValueError(f"weight must be (D, C, P, P), got shape {tuple(weight.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    D, C, ph, pw = weight.shape
    x = weight.detach().double().reshape(D, C * ph * pw).cpu()  # (D, C*P*P)
    limit = min(D, C * ph * pw)
    if k > limit:
        warnings.warn(
            f"k={k} exceeds the rank bound min(D, C*P*P) = {limit}; using k={limit}.",
            stacklevel=2,
        )
        k = limit
    x = x - x.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)  # vh (r, C*P*P)
    comps = vh[:k]  # (k, C*P*P)
    # deterministic sign: largest-magnitude entry positive
    idx = comps.abs().argmax(dim=1, keepdim=True)
    comps = comps * torch.sign(comps.gather(1, idx))
    var = s**2
    ratios = var[:k] / var.sum().clamp_min(torch.finfo(var.dtype).tiny)
    return comps.reshape(k, C, ph, pw).float(), ratios.float()


def sinusoidal_encoding(n_positions: int, dim: int) -> torch.Tensor:
    """Return the Transformer's sinusoidal position encoding (Vaswani et al., 2017), (n, dim).

    PE[pos, 2i] = sin(pos / 10000^(2i/dim)), PE[pos, 2i+1] = cos(pos / 10000^(2i/dim)).
    """
    if n_positions < 1 or dim < 1:
        raise ValueError(f"n_positions and dim must be >= 1, got {n_positions}, {dim}")
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]  # (n, 1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)  # (ceil(dim/2),)
    angle = pos * torch.exp(-math.log(10000.0) * two_i / dim)  # (n, ceil(dim/2))
    pe = torch.zeros(n_positions, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return pe.float()


def sinusoidal_similarity(encoding: torch.Tensor) -> torch.Tensor:
    """Return the dot products between positions of an encoding (n, dim): (n, n)."""
    enc = encoding.double()
    return (enc @ enc.T).float()
