"""Per-layer summaries of any ``nn.Module`` (output shapes, parameters, multiply-adds) and a
batching demo.

Multiply-add (MAC) convention, per sample (the forward pass runs on a batch of one):

- ``Conv1d/2d/3d``: output elements x (in_channels / groups) x kernel elements;
  ``ConvTranspose``: input elements x (out_channels / groups) x kernel elements.
- ``Linear``: output elements x in_features (so a (T, D) token input counts T times).
- ``nn.MultiheadAttention`` (one row, its ``out_proj`` included, because torch calls that
  projection functionally): the q, k, v and output projections, plus the two attention
  products QK^T and AV, each Lq x Lk x embed_dim.
- vizlib's ``ViT`` attention: its ``qkv`` and ``proj`` Linear rows, plus a row for the
  attention module itself with QK^T and AV (2 x T x T x D), fused or explicit path alike.
- Bias additions, normalisation, activations, pooling, softmax, dropout and residual additions
  count 0: they are not multiply-adds of weights (the usual convention; LeNet's 1,333,200).

Receptive fields (``vizlib.receptive``, recorded in the same forward pass) for image inputs
(C, H, W): ``receptive_field`` (H, W) in input pixels, "whole image" or "unknown", ``jump`` (H,
W) in input pixels between neighbouring units, ``rf_start`` the first input pixel (row, column)
seen by unit (0, 0); None where they do not apply (token inputs, layers never called, outputs not
computed from the image). A module called more than once reports its last call, like its shape.

Rows are the leaf modules in call order, plus ``nn.MultiheadAttention`` as one leaf, plus one
row for each parameter that a module with children holds itself (a ViT's class token and
position embeddings): named by its state-dict name (``cls_token``, ``encoder.pos_embedding``),
its type what it is ("class token", "position embeddings"; "Parameter" for a name not known),
its shape in ``parameter_shape``, ``output_shape`` None (it is read, not called), 0 MACs and no
receptive field, placed where the pass first reads it. Shared parameters are counted once.
Modules that the forward pass never calls, and parameters it never reads, are listed last
with ``output_shape`` None and 0 MACs.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from ._hooks import forward_hooks
from .device import resolve_device
from .features import _same_device
from .receptive import ReceptiveFieldTracer, field_columns

__all__ = [
    "batch_matmul_timing",
    "count_parameters",
    "layer_table",
    "shape_text",
    "shorten_layer_names",
    "table_totals",
    "transformer_block_counts",
]


def count_parameters(model: nn.Module) -> int:
    """Return the number of parameters of ``model`` (shared tensors counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _is_vizlib_attention(module: nn.Module) -> bool:
    from .models.vit import Attention

    return isinstance(module, Attention)


def _first_tensor(obj: Any) -> torch.Tensor | None:
    if torch.is_tensor(obj):
        return obj
    if isinstance(obj, (tuple, list)) and obj:
        return _first_tensor(obj[0])
    if isinstance(obj, dict) and obj:
        return _first_tensor(next(iter(obj.values())))
    return None


# what the parameters that ViTs hold outside their layers are, by the names timm, torchvision,
# vit-pytorch and vizlib give them
_PARAMETER_TYPES = {
    "cls_token": "class token",
    "class_token": "class token",
    "dist_token": "distillation token",
    "reg_token": "register tokens",
    "register_tokens": "register tokens",
    "mask_token": "mask token",
    "pos_embed": "position embeddings",
    "pos_embedding": "position embeddings",
    "position_embedding": "position embeddings",
    "position_embeddings": "position embeddings",
}


class _FirstRead(TorchFunctionMode):
    """Call ``on_read(row)`` whenever an op reads one of the ``watched`` tensors (id -> row)."""

    def __init__(self, watched: dict[int, str], on_read) -> None:
        super().__init__()
        self._watched = watched
        self._on_read = on_read

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for leaf in tree_leaves((args, kwargs)):
            if isinstance(leaf, torch.Tensor) and id(leaf) in self._watched:
                self._on_read(self._watched[id(leaf)])
        return func(*args, **kwargs)


def _row_modules(model: nn.Module) -> dict[str, tuple[nn.Module, bool]]:
    """Return name -> (module, counts all its parameters) for every module that gets a row;
    False: a module with children, whose row holds only its own parameters (or, for vizlib's
    attention, its attention products)."""
    rows: dict[str, tuple[nn.Module, bool]] = {}
    skip_prefixes: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(p) for p in skip_prefixes):
            continue
        if isinstance(module, nn.MultiheadAttention):
            rows[name] = (module, True)
            skip_prefixes.append(f"{name}." if name else "")
        elif not any(True for _ in module.children()):
            rows[name] = (module, True)
        elif any(True for _ in module.parameters(recurse=False)) or _is_vizlib_attention(module):
            rows[name] = (module, False)
    return rows


def _macs(module: nn.Module, inputs: tuple, output: torch.Tensor | None) -> int:
    """Return the multiply-adds of one call of ``module`` (convention in the module docstring)."""
    if isinstance(module, nn.modules.conv._ConvNd) and output is not None:
        kernel = math.prod(module.kernel_size)
        if module.transposed:
            return inputs[0].numel() * (module.out_channels // module.groups) * kernel
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear) and output is not None:
        return output.numel() * module.in_features
    if isinstance(module, nn.MultiheadAttention):
        query = inputs[0]
        key = inputs[1] if len(inputs) > 1 else query
        seq_dim = 1 if module.batch_first else 0
        lq, lk = query.shape[seq_dim], key.shape[seq_dim]
        batch = query.numel() // (lq * query.shape[-1])
        e = module.embed_dim
        projections = lq * e * e + lk * module.kdim * e + lk * module.vdim * e + lq * e * e
        return batch * (projections + 2 * lq * lk * e)
    if _is_vizlib_attention(module):
        b, t, d = inputs[0].shape
        return b * 2 * t * t * d  # QK^T and AV over all heads
    return 0


def layer_table(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    device: str | torch.device | None = None,
) -> list[dict[str, Any]]:
    """Return one dict per layer: name, type, output_shape (list, batch of 1), parameter_shape
    (list, for a parameter held outside the layers, such as a class token; None for a layer),
    params, macs, receptive_field, jump, rf_start.

    ``input_shape`` excludes the batch: (C, H, W) for images, (T, D) for token sequences
    (``nn.MultiheadAttention`` gets it as query, key and value). MACs are per sample, see the
    module docstring for the convention; receptive fields are given for a (C, H, W)
    ``input_shape`` only, in input pixels (see the module docstring). The forward pass runs on
    ``device`` (default: where the model's parameters are) under ``torch.enable_grad`` on an
    input that requires grad, so that torch's fused transformer fast paths, which skip the
    per-layer modules, are not taken; no parameter, buffer or mode of ``model`` is changed, and
    every hook is removed on exit (errors included). A model in training mode is briefly
    switched to eval mode so that BatchNorm statistics are not updated.
    """
    reference = next(iter(model.parameters()), None)
    if reference is None:
        reference = next(iter(model.buffers()), None)
    model_device = reference.device if reference is not None else torch.device("cpu")
    dev = resolve_device(device) if device is not None else model_device
    # _same_device, not ==: device="cuda" names the model's "cuda:0" when that GPU is current
    if reference is not None and not _same_device(dev, model_device):
        raise ValueError(f"the model is on {model_device}, not on the requested {dev}")
    dev = model_device if reference is not None else dev
    shape = tuple(int(s) for s in input_shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must be positive sizes without the batch, got {shape}")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else None

    row_modules = _row_modules(model)
    seen: set[int] = set()
    rows: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    called: dict[str, nn.Module] = {}  # rows filled by a forward hook
    read: dict[int, str] = {}  # id of a parameter held outside the layers -> its row

    def count(tensors) -> int:
        fresh = [p for p in tensors if id(p) not in seen]
        seen.update(id(p) for p in fresh)
        return sum(p.numel() for p in fresh)

    for name, (module, recurse) in row_modules.items():
        if recurse or _is_vizlib_attention(module):  # a layer
            called[name] = module
            rows[name] = {
                "name": name or "(model)",
                "type": type(module).__name__,
                "output_shape": None,
                "parameter_shape": None,
                "params": count(module.parameters(recurse=recurse)),
                "macs": 0,
                **field_columns(None),
            }
            continue
        for short, p in module.named_parameters(recurse=False):
            key = f"{name}.{short}" if name else short
            read[id(p)] = key
            rows[key] = {
                "name": key,
                "type": _PARAMETER_TYPES.get(short, "Parameter"),
                "output_shape": None,
                "parameter_shape": list(p.shape),
                "params": count([p]),
                "macs": 0,
                **field_columns(None),
            }

    def first_read(key: str) -> None:
        if key not in order:
            order.append(key)

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            out = _first_tensor(output)
            row = rows[name]
            row["output_shape"] = list(out.shape) if out is not None else None
            row["macs"] += _macs(module, inputs, out)
            if tracer is not None:
                row.update(field_columns(tracer.field(out)))
            if name not in order:
                order.append(name)

        return hook

    if isinstance(model, nn.MultiheadAttention) and not model.batch_first:
        x_shape = (shape[0], 1, *shape[1:])  # (T, B, D)
    else:
        x_shape = (1, *shape)
    x = torch.zeros(x_shape, device=dev, dtype=dtype or torch.float32, requires_grad=True)
    is_image = len(shape) == 3 and not isinstance(model, nn.MultiheadAttention)
    tracer = ReceptiveFieldTracer(x) if is_image else None
    was_training = model.training
    try:
        if was_training:
            model.eval()
        hooks = ((m, make_hook(n)) for n, m in called.items())
        reads = _FirstRead(read, first_read) if read else contextlib.nullcontext()
        with forward_hooks(hooks), torch.enable_grad(), reads, tracer or contextlib.nullcontext():
            if isinstance(model, nn.MultiheadAttention):
                model(x, x, x)
            else:
                model(x)
    finally:
        if was_training:
            model.train()
    order += [n for n in rows if n not in order]
    return [rows[n] for n in order]


def shape_text(row: dict[str, Any]) -> str:
    """Return a layer-table row's shape as text, sizes joined by "×": its output shape
    ("1×32×24×24", batch of 1 first), the shape of a parameter held outside the layers
    ("1×65×64"; "scalar" for a 0-d one), or "not called" for a layer the pass never called."""
    shape = row["output_shape"] if row.get("parameter_shape") is None else row["parameter_shape"]
    if shape is None:
        return "not called"
    return "×".join(map(str, shape)) or "scalar"


def shorten_layer_names(names: Sequence[str], *, max_chars: int) -> tuple[list[str], str]:
    """Return the layer names as a narrow table shows them, and the prefix they leave out.

    When some names are longer than ``max_chars`` characters, a start that all of those share,
    ended at a "." or "_" so that no word is cut, is written "…" in every name that begins with
    it; the prefix comes back so that the reader can be told what "…" stands for. The prefix is
    the shortest such start that brings every long name within ``max_chars`` (the least left
    out), else the longest one. torchvision's vit_b_16 with ``max_chars=22``:
    "encoder.layers.encoder_layer_11.self_attention" (46 characters) reads
    "…11.self_attention", prefix "encoder.layers.encoder_layer_". A name equal to the prefix
    stays whole. With every name within ``max_chars``, or long names sharing no such start,
    the names come back unchanged with prefix "".
    """
    long = [n for n in names if len(n) > max_chars]
    shared = os.path.commonprefix(long) if long else ""
    # separator-ended starts only: "layer_1" is shared by layer_1.x and layer_10.x, and
    # leaving it out would show layer_10.x as "…0.x"
    starts = [shared[: i + 1] for i, c in enumerate(shared) if c in "._"]
    if not starts:
        return list(names), ""
    longest = max(len(n) for n in long)
    prefix = next((s for s in starts if 1 + longest - len(s) <= max_chars), starts[-1])
    shown = [f"…{n[len(prefix) :]}" if n.startswith(prefix) and n != prefix else n for n in names]
    return shown, prefix


def table_totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Return {"params": total parameters, "macs": total multiply-adds per sample} of a layer table."""
    return {
        "params": sum(r["params"] for r in rows),
        "macs": sum(r["macs"] for r in rows),
    }


def transformer_block_counts() -> list[dict[str, Any]]:
    """Return parameter counts of torch's transformer building blocks (d_model 6, 2 heads).

    ``nn.MultiheadAttention(6, 2)``, ``nn.TransformerEncoderLayer(6, 2, dim_feedforward=10)`` and a
    2-layer ``nn.TransformerEncoder`` with a final ``LayerNorm(6)``; counts are computed from the
    built modules, with the formula that explains each: weights, then biases, products written
    with "×" (a table that renders Markdown would read "*" as emphasis and drop it).
    """
    d, ff = 6, 10
    mha = nn.MultiheadAttention(embed_dim=d, num_heads=2)
    layer = nn.TransformerEncoderLayer(d_model=d, nhead=2, dim_feedforward=ff, batch_first=True)
    encoder = nn.TransformerEncoder(
        layer, num_layers=2, norm=nn.LayerNorm(d), enable_nested_tensor=False
    )
    return [
        {
            "block": "nn.MultiheadAttention(embed_dim=6, num_heads=2)",
            "params": count_parameters(mha),
            "formula": "in-proj 3×6×6 + 3×6, out-proj 6×6 + 6",
        },
        {
            "block": "nn.TransformerEncoderLayer(d_model=6, nhead=2, dim_feedforward=10)",
            "params": count_parameters(layer),
            "formula": "attention 168 + linear1 6×10 + 10 + linear2 10×6 + 6 + two LayerNorms 2×(6 + 6)",
        },
        {
            "block": "nn.TransformerEncoder(that layer, num_layers=2, norm=nn.LayerNorm(6))",
            "params": count_parameters(encoder),
            "formula": "two layers 2×328 + final LayerNorm 6 + 6",
        },
    ]


def batch_matmul_timing(
    *,
    n_samples: int = 2500,
    n_in: int = 1000,
    n_out: int = 1500,
    repeats: int = 3,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Return timings of one layer y = W x over a batch: a Python loop over samples vs one matmul.

    Inputs X (n_samples, n_in), weights W (n_out, n_in), float32. Returns ``loop_s`` and
    ``batched_s`` (best of ``repeats``, seconds), ``speedup`` (loop / batched),
    ``max_abs_diff`` between the two results, the sizes and the device.
    """
    if min(n_samples, n_in, n_out, repeats) < 1:
        raise ValueError("sizes and repeats must be positive")
    dev = resolve_device(device)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_samples, n_in, generator=gen).to(dev)  # (N, in)
    w = torch.randn(n_out, n_in, generator=gen).to(dev)  # (out, in)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def loop() -> torch.Tensor:
        out = torch.empty(n_samples, n_out, device=dev)  # (N, out)
        for i in range(n_samples):
            out[i] = w @ x[i]  # (out,)
        return out

    def batched() -> torch.Tensor:
        return x @ w.T  # (N, out)

    timings = {}
    results = {}
    with torch.no_grad():
        for label, fn in (("batched", batched), ("loop", loop)):
            fn()  # warm-up (kernel selection, allocator)
            best = math.inf
            for _ in range(repeats):
                sync()
                start = time.perf_counter()
                results[label] = fn()
                sync()
                best = min(best, time.perf_counter() - start)
            timings[label] = best
        diff = float((results["loop"] - results["batched"]).abs().max())
    return {
        "device": str(dev),
        "n_samples": n_samples,
        "n_in": n_in,
        "n_out": n_out,
        "loop_s": timings["loop"],
        "batched_s": timings["batched"],
        "speedup": timings["loop"] / timings["batched"],
        "max_abs_diff": diff,
    }
