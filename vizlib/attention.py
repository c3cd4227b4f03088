"""ViT attention probes: per-head attention weights, mean attention distance, attention rollout.

Works for ``vizlib.models.ViT`` (which returns its weights), torchvision's ``VisionTransformer``
and timm's ViTs (whose fused attention never forms the weight matrix: the weights are recomputed
exactly, softmax(QK^T / sqrt(d)), from each block's normalised input captured by a hook that is
always removed again). The model is never modified and its output is unchanged by the capture.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import forward_hooks
from .device import resolve_device
from .features import _same_device, model_device

__all__ = [
    "ViTGeometry",
    "attention_maps",
    "attention_rollout",
    "cls_attention",
    "fuse_heads",
    "mean_attention_distance",
    "mean_attention_distance_over",
    "patch_distances",
    "query_attention",
    "uniform_attention_distance",
    "vit_geometry",
]

HeadChoice = int | Literal["mean", "max", "min"]
LayerCallback = Callable[[int, torch.Tensor], None]


@dataclass(frozen=True)
class ViTGeometry:
    """How a ViT tiles its input: patch grid (rows, cols), patch size (pixels), prefix tokens."""

    grid_size: tuple[int, int]
    patch_size: int
    num_prefix_tokens: int
    num_layers: int
    num_heads: int
    has_class_token: bool = True  # token 0; timm ViTs can have none
    # what the classifier head reads: the class token ("class"), or the patch tokens pooled
    # ("patches": timm's global_pool="avg" and the like, with or without a class token)
    readout: Literal["class", "patches"] = "class"

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]


def _is_torchvision_vit(model: nn.Module) -> bool:
    try:
        from torchvision.models import VisionTransformer
    except ImportError:  # pragma: no cover - torchvision is a requirement
        return False
    return isinstance(model, VisionTransformer)


def _is_timm_vit(model: nn.Module) -> bool:
    """True for timm's ``VisionTransformer`` and its subclasses (DeiT, ...), recognised by name.

    By name, so timm need not be importable to ask. Other timm models that have ``blocks`` and a
    ``patch_embed`` (BEiT, EVA, CaiT, Swin, ...) are not ViTs of this kind.
    """
    return any(
        cls.__name__ == "VisionTransformer" and cls.__module__ == "timm.models.vision_transformer"
        for cls in type(model).__mro__
    )


# where timm's plain ``Attention`` has lived (timm >= 1.0: timm.layers; before: the ViT module)
_TIMM_ATTENTION_MODULES = ("timm.layers.attention", "timm.models.vision_transformer")


def _check_timm_blocks(model: nn.Module) -> None:
    """Raise TypeError unless every block is a plain timm ``Attention`` that we can recompute.

    The recomputation, softmax(q_norm(q) k_norm(k)^T * scale), is exactly timm's ``Attention``.
    Other attention layers add terms it would silently miss (BEiT's q/v biases and relative
    position bias, EVA's rotary embedding, the differential attention of ``attn_layer="diff"``),
    and parallel blocks have no ``attn`` module.
    """
    for i, block in enumerate(model.blocks):
        attn = getattr(block, "attn", None)
        kind = type(attn)
        if kind.__name__ != "Attention" or kind.__module__ not in _TIMM_ATTENTION_MODULES:
            what = type(block).__name__ if attn is None else kind.__name__
            raise TypeError(
                f"block {i} of this timm {type(model).__name__} uses {what}; only timm's plain "
                "Attention is supported (its weights are recomputed exactly from q and k)."
            )


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def vit_geometry(model: nn.Module) -> ViTGeometry:
    """Return the grid size, patch size, prefix-token count, depth and heads of a supported ViT.

    Supported: ``vizlib.models.ViT``, torchvision's ``VisionTransformer``, timm's ViTs. Raises
    ``TypeError`` for anything else. Non-square patches are not supported (``ValueError``).
    """
    from .models import ViT

    if isinstance(model, ViT):
        return ViTGeometry(
            grid_size=tuple(model.grid_size),
            patch_size=int(model.patch_size),
            num_prefix_tokens=int(model.num_prefix_tokens),
            num_layers=len(model.blocks),
            num_heads=int(model.config.heads),
        )
    if _is_torchvision_vit(model):
        side = model.image_size // model.patch_size
        layers = list(model.encoder.layers)
        return ViTGeometry(
            grid_size=(side, side),
            patch_size=int(model.patch_size),
            num_prefix_tokens=1,  # torchvision prepends only the class token
            num_layers=len(layers),
            num_heads=int(layers[0].num_heads),
        )
    if _is_timm_vit(model):
        _check_timm_blocks(model)
        ph, pw = _pair(model.patch_embed.patch_size)
        if ph != pw:
            raise ValueError(f"non-square patches {ph}x{pw} are not supported")
        return ViTGeometry(
            grid_size=_pair(model.patch_embed.grid_size),
            patch_size=ph,
            # timm orders the prefix as class token (if any), then register/distillation tokens
            num_prefix_tokens=int(model.num_prefix_tokens),
            num_layers=len(model.blocks),
            num_heads=int(model.blocks[0].attn.num_heads),
            has_class_token=getattr(model, "cls_token", None) is not None,
            readout="class" if getattr(model, "global_pool", "token") == "token" else "patches",
        )
    raise TypeError(
        f"{type(model).__name__} is not a supported ViT (vizlib ViT, torchvision VisionTransformer "
        "or timm VisionTransformer)."
    )


def _softmax_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Return softmax(q k^T / sqrt(d)) for q, k (B, h, T, d): (B, h, T, T)."""
    scale = q.shape[-1] ** -0.5
    return torch.softmax((q * scale) @ k.transpose(-2, -1), dim=-1)  # (B, h, T, T)


def _torchvision_weights(mha: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """Recompute nn.MultiheadAttention's per-head weights for self-attention on x (B, T, D)."""
    if mha.in_proj_weight is None:
        raise ValueError("separate q/k/v projections are not supported (in_proj_weight is None)")
    if not mha.batch_first:
        x = x.transpose(0, 1)
    B, T, D = x.shape
    h = mha.num_heads
    # one matmul for q and k together; v is not needed for the weights
    bias = None if mha.in_proj_bias is None else mha.in_proj_bias[: 2 * D]
    qk = F.linear(x, mha.in_proj_weight[: 2 * D], bias)  # (B, T, 2D)
    q, k = qk.reshape(B, T, 2, h, D // h).permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, T, d)
    return _softmax_scores(q, k)


def _timm_weights(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Recompute a timm ``Attention`` module's weights from its input x (B, T, D)."""
    if getattr(attn, "qkv", None) is None:
        raise TypeError(f"{type(attn).__name__} has no fused qkv projection; not supported")
    B, T, _ = x.shape
    h = attn.num_heads
    head_dim = getattr(attn, "head_dim", None) or attn.qkv.out_features // (3 * h)
    qkv = attn.qkv(x).reshape(B, T, 3, h, head_dim).permute(2, 0, 3, 1, 4)  # (3, B, h, T, d)
    q, k = qkv[0], qkv[1]
    if getattr(attn, "q_norm", None) is not None:
        q = attn.q_norm(q)
    if getattr(attn, "k_norm", None) is not None:
        k = attn.k_norm(k)
    scale = float(getattr(attn, "scale", head_dim**-0.5))
    return torch.softmax((q * scale) @ k.transpose(-2, -1), dim=-1)  # (B, h, T, T)


def _forward_with_attention(
    model: nn.Module, x: torch.Tensor, on_layer: LayerCallback
) -> torch.Tensor:
    """Run ``model`` on x (B, C, H, W), call ``on_layer(i, weights (B, h, T, T))`` per block.

    Returns the model's logits: for torchvision and timm exactly those of a plain ``model(x)``
    (the hooks only read); for vizlib's ViT those of its explicit-attention path, equal up to
    float rounding. Hooks are removed even when the forward pass or the callback raises.
    """
    from .models import ViT

    if isinstance(model, ViT):
        logits, attentions = model(x, return_attention=True)
        for i, attn in enumerate(attentions):
            on_layer(i, attn)
        return logits

    if _is_torchvision_vit(model):
        hooks = []
        for i, block in enumerate(model.encoder.layers):
            # ln_1's output is exactly what the block feeds to self_attention as q, k and v
            def hook(_mod, _inp, out, i=i, mha=block.self_attention):
                on_layer(i, _torchvision_weights(mha, out))

            hooks.append((block.ln_1, hook))
        with forward_hooks(hooks):
            return model(x)
    if _is_timm_vit(model):
        _check_timm_blocks(model)  # before any hook: an unsupported block must not half-run
        pre_hooks = []
        for i, block in enumerate(model.blocks):
            # the pre-hook sees attn's input, i.e. norm1's output
            def pre_hook(mod, args, i=i):
                on_layer(i, _timm_weights(mod, args[0]))

            pre_hooks.append((block.attn, pre_hook))
        with forward_hooks(pre_hooks, pre=True):
            return model(x)
    vit_geometry(model)  # raises a TypeError naming the model
    return model(x)


def _check_model_device(model: nn.Module, device: torch.device) -> None:
    # by index too: "cuda" (the current GPU) matches "cuda:0" only when GPU 0 is the current one
    on = model_device(model)
    if not _same_device(on, device):
        raise ValueError(
            f"The model is on {on} but device={device} was asked for; load the model on "
            "that device (the shared model is never moved)."
        )


def _batches(images: torch.Tensor, batch_size: int):
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, images.shape[0], batch_size):
        yield start, images[start : start + batch_size]


@torch.inference_mode()
def attention_maps(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> list[torch.Tensor]:
    """Return each block's attention weights, a list of (N, heads, T, T) CPU float tensors.

    ``images`` (N, C, H, W) normalised as the model expects; T = prefix tokens + patches. Rows
    sum to 1 (softmax over keys). Computed in batches of ``batch_size`` on ``device``.
    """
    dev = resolve_device(device)
    _check_model_device(model, dev)
    per_layer: dict[int, list[torch.Tensor]] = {}

    def keep(i: int, attn: torch.Tensor) -> None:
        per_layer.setdefault(i, []).append(attn.float().cpu())

    for _, batch in _batches(images, batch_size):
        _forward_with_attention(model, batch.to(dev), keep)
    return [torch.cat(per_layer[i]) for i in sorted(per_layer)]


def patch_distances(
    grid_hw: tuple[int, int],
    patch_size: int | float,
    *,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Return the pixel distances between patch centres, (N, N) with N = gh * gw, row-major."""
    gh, gw = grid_hw
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()], dim=1).double()  # (N, 2)
    dist = torch.cdist(coords, coords) * float(patch_size)  # (N, N) pixels
    return dist.to(resolve_device(device) if device is not None else "cpu")


def uniform_attention_distance(grid_hw: tuple[int, int], patch_size: int | float) -> float:
    """Return the mean attention distance (pixels) of attention spread evenly over the grid.

    It is the mean pairwise distance between patch centres, self-pairs included: each query
    gives weight 1/N to all N patches. 14 x 14 patches of 16 pixels give about 116.5 pixels.
    """
    return float(patch_distances(grid_hw, patch_size).mean())


def _layer_distance_sum(
    attn: torch.Tensor, dist: torch.Tensor, num_prefix_tokens: int, renormalize: bool
) -> torch.Tensor:
    """Return per-head sums over images and query patches of the weighted distance, (heads,)."""
    p = num_prefix_tokens
    n = dist.shape[0]
    if attn.shape[-1] != p + n or attn.shape[-2] != p + n:
        raise ValueError(
            f"attention over {attn.shape[-1]} tokens does not match {p} prefix tokens + {n} patches"
        )
    a = attn[..., p:, p:].float()  # (B, h, N, N) patch-to-patch weights only
    if renormalize:
        a = a / a.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)
    per_query = torch.einsum("bhqk,qk->bhq", a, dist.float())  # (B, h, N) pixels
    # float32 within a query (N terms); float64 across queries and images
    acc = torch.float32 if per_query.device.type == "mps" else torch.float64  # no fp64 on MPS
    return per_query.to(acc).sum(dim=(0, 2))  # (h,)


def mean_attention_distance(
    attentions: Sequence[torch.Tensor] | torch.Tensor,
    grid_hw: tuple[int, int],
    patch_size: int | float,
    num_prefix_tokens: int = 1,
    *,
    renormalize: bool = False,
) -> torch.Tensor:
    """Return the mean attention distance in pixels, (layers, heads).

    ``attentions``: a list of (B, heads, T, T) or one (layers, B, heads, T, T) tensor,
    T = ``num_prefix_tokens`` + gh * gw. For each query patch, the attention-weighted sum of the
    distances from its centre to every key patch centre (prefix tokens' rows and columns left
    out), averaged over query patches and images. By default the weights are used as they come
    (they then sum to less than 1 over the patches); ``renormalize`` rescales each query's patch
    weights to sum to 1.
    """
    layers = (
        list(attentions.unbind(0)) if isinstance(attentions, torch.Tensor) else list(attentions)
    )
    if not layers:
        raise ValueError("no attention tensors given")
    dist = patch_distances(grid_hw, patch_size).to(layers[0].device)
    out = []
    for attn in layers:
        if attn.ndim != 4:
            raise ValueError(
                f"each layer's attention must be (B, heads, T, T), got {tuple(attn.shape)}"
            )
        count = attn.shape[0] * dist.shape[0]
        out.append(_layer_distance_sum(attn, dist, num_prefix_tokens, renormalize) / count)
    return torch.stack(out).float().cpu()  # (L, h)


@torch.inference_mode()
def mean_attention_distance_over(
    model: nn.Module,
    images: torch.Tensor,
    *,
    renormalize: bool = False,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Return the mean attention distance (pixels) of every head over a set of images, (L, h).

    Streams: each layer's weights are reduced on ``device`` as soon as they are computed, so
    memory holds one layer of one batch, not all maps. ``images`` (N, C, H, W) normalised for
    the model. ``callback(done, total)`` is called after each batch (progress, in images).
    """
    dev = resolve_device(device)
    _check_model_device(model, dev)
    geo = vit_geometry(model)
    dist = patch_distances(geo.grid_size, geo.patch_size).float().to(dev)  # (N, N) pixels
    sums: dict[int, torch.Tensor] = {}

    def accumulate(i: int, attn: torch.Tensor) -> None:
        part = _layer_distance_sum(attn, dist, geo.num_prefix_tokens, renormalize)  # (h,)
        sums[i] = sums[i] + part if i in sums else part

    total = images.shape[0]
    done = 0
    for _, batch in _batches(images, batch_size):
        _forward_with_attention(model, batch.to(dev), accumulate)
        done += batch.shape[0]
        if callback is not None:
            callback(done, total)
    if not sums:
        raise ValueError("no images given")
    count = total * geo.num_patches
    return torch.stack([sums[i] for i in sorted(sums)]).div(count).float().cpu()  # (L, h)


def _fuse_heads(attn: torch.Tensor, head: HeadChoice) -> torch.Tensor:
    """Return one head's weights or the mean/max/min over heads: (B, h, T, T) -> (B, T, T)."""
    if isinstance(head, str):
        if head == "mean":
            return attn.mean(dim=1)
        if head == "max":
            return attn.amax(dim=1)
        if head == "min":
            return attn.amin(dim=1)
        raise ValueError(f"head must be an index or 'mean', 'max', 'min', got {head!r}")
    if not 0 <= head < attn.shape[1]:
        raise ValueError(f"head {head} out of range 0..{attn.shape[1] - 1}")
    return attn[:, head]


def fuse_heads(
    attentions: Sequence[torch.Tensor] | torch.Tensor, head_fusion: Literal["mean", "max", "min"]
) -> torch.Tensor:
    """Return every layer's attention with the heads fused, (L, B, 1, T, T).

    ``attentions``: list of (B, heads, T, T) or (L, B, heads, T, T). Rollout of the result
    (any ``head_fusion``: one head is its own mean, max and min) equals rollout of the input
    with ``head_fusion``; it is ``heads`` times smaller to keep.
    """
    layers = (
        list(attentions.unbind(0)) if isinstance(attentions, torch.Tensor) else list(attentions)
    )
    if head_fusion not in ("mean", "max", "min"):
        raise ValueError(f"head_fusion must be 'mean', 'max' or 'min', got {head_fusion!r}")
    return torch.stack([_fuse_heads(a, head_fusion)[:, None] for a in layers])


def _to_grid(rows: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    gh, gw = grid_hw
    if rows.shape[-1] != gh * gw:
        raise ValueError(f"{rows.shape[-1]} patch weights do not fill a {gh}x{gw} grid")
    return rows.reshape(*rows.shape[:-1], gh, gw)


def _check_class_token(num_prefix_tokens: int, has_class_token: bool) -> None:
    if has_class_token and num_prefix_tokens < 1:
        raise ValueError("a class token needs num_prefix_tokens >= 1")
    if not has_class_token:
        raise ValueError(
            "this model has no class token (it pools the patch tokens); token 0 is "
            + ("a register token" if num_prefix_tokens else "a patch")
        )


def cls_attention(
    attentions: Sequence[torch.Tensor] | torch.Tensor,
    grid_hw: tuple[int, int],
    *,
    layer: int,
    head: HeadChoice = "mean",
    num_prefix_tokens: int = 1,
    has_class_token: bool = True,
) -> torch.Tensor:
    """Return the class token's attention to the patches at one layer, (B, gh, gw).

    ``head`` is an index or "mean"/"max"/"min" over heads. Weights as computed (not rescaled).
    The class token is token 0; a model without one (``has_class_token=False``) raises.
    """
    _check_class_token(num_prefix_tokens, has_class_token)
    attn = _fuse_heads(attentions[layer], head)  # (B, T, T)
    return _to_grid(attn[:, 0, num_prefix_tokens:], grid_hw)


def query_attention(
    attentions: Sequence[torch.Tensor] | torch.Tensor,
    grid_hw: tuple[int, int],
    query: tuple[int, int],
    *,
    layer: int,
    head: HeadChoice = "mean",
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """Return how the patch at grid position ``query`` (row, col) attends to all patches, (B, gh, gw)."""
    gh, gw = grid_hw
    r, c = query
    if not (0 <= r < gh and 0 <= c < gw):
        raise ValueError(f"query patch {query} outside the {gh}x{gw} grid")
    attn = _fuse_heads(attentions[layer], head)  # (B, T, T)
    return _to_grid(attn[:, num_prefix_tokens + r * gw + c, num_prefix_tokens:], grid_hw)


def attention_rollout(
    attentions: Sequence[torch.Tensor] | torch.Tensor,
    *,
    head_fusion: Literal["mean", "max", "min"] = "mean",
    discard_ratio: float = 0.0,
    num_prefix_tokens: int = 1,
    grid_hw: tuple[int, int] | None = None,
    normalize: bool = True,
    readout: Literal["class", "patches"] = "class",
) -> torch.Tensor:
    """Return the attention rollout (Abnar and Zuidema, 2020) of the class token, (B, gh, gw).

    ``attentions``: list of (B, heads, T, T) or (L, B, heads, T, T). Per layer: fuse heads
    (mean, max or min); zero the ``discard_ratio`` fraction of smallest fused weights of each
    image's T x T matrix, never the class token's own entry (0, 0), as in the reference
    implementation (jacobgil/vit-explain); add the identity for the residual path, (A + I) / 2;
    renormalise each ROW to sum to 1 (the reference divides by the wrong sum, broadcasting row
    sums along columns); multiply through the layers, R = A_L ... A_1. Returns the class token's
    row over the patches; with ``normalize`` it is divided by its maximum (max 1, for display;
    an all-zero row stays zero). ``grid_hw`` defaults to a square grid.

    ``readout="patches"`` is for a model whose head pools the patch tokens instead (timm's
    ``global_pool="avg"``, see ``ViTGeometry.readout``): it returns the mean of the patch
    tokens' rows over the patches, what average pooling reads, and no entry is protected from
    the discard. Prefix tokens (class, register, distillation) are never in the mask.
    """
    layers = (
        list(attentions.unbind(0)) if isinstance(attentions, torch.Tensor) else list(attentions)
    )
    if not layers:
        raise ValueError("no attention tensors given")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    if readout not in ("class", "patches"):
        raise ValueError(f"readout must be 'class' or 'patches', got {readout!r}")
    if readout == "class" and num_prefix_tokens < 1:
        raise ValueError("the class token's rollout needs num_prefix_tokens >= 1")
    B, _, T, _ = layers[0].shape
    p = num_prefix_tokens
    n = T - p
    if grid_hw is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} patches are not a square grid; pass grid_hw")
        grid_hw = (side, side)
    eye = torch.eye(T, dtype=torch.float64, device=layers[0].device)
    result = eye.expand(B, T, T).clone()  # (B, T, T)
    for attn in layers:
        fused = _fuse_heads(attn.to(eye.device, torch.float64), head_fusion)  # (B, T, T)
        if discard_ratio > 0:
            flat = fused.reshape(B, T * T).clone()
            k = int(T * T * discard_ratio)
            if k:
                # rank the class token's own entry last so it is never discarded
                ranked = flat.clone()
                if readout == "class":
                    ranked[:, 0] = math.inf
                idx = ranked.topk(k, dim=-1, largest=False).indices  # (B, k)
                flat.scatter_(1, idx, 0.0)
            fused = flat.reshape(B, T, T)
        a = (fused + eye) / 2
        a = a / a.sum(dim=-1, keepdim=True)  # rows sum to 1
        result = a @ result  # (B, T, T)
    if readout == "class":
        rows = result[:, 0, p:]  # (B, N)
    else:  # average pooling reads the patch tokens: average their rows
        rows = result[:, p:, p:].mean(dim=1)  # (B, N)
    mask = _to_grid(rows, grid_hw)  # (B, gh, gw)
    if normalize:
        peak = mask.amax(dim=(-2, -1), keepdim=True)
        mask = torch.where(peak > 0, mask / peak.clamp_min(torch.finfo(mask.dtype).tiny), mask)
    return mask.float().cpu()
