"""Activation and gradient statistics, layer by layer: where a network's signal shrinks, grows,
saturates or dies, and how large the gradients that reach each layer are.

One pass over a batch of images records, for every leaf module (and ``nn.MultiheadAttention`` as
one), its output's mean, standard deviation, range, share of exact zeros, channels that are zero
for every image (dead units), non-finite values, a random sample of the values for histograms,
and, with ``gradients=True``, the root mean square of the loss's gradient with respect to that
output and how many of its values are NaN or infinite. Hooks live only for the pass, on the calling thread; the model is not changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import forward_hooks
from .features import model_device
from .summary import _first_tensor, _row_modules

__all__ = ["LayerStatistics", "depth_summary", "layer_statistics"]

# modules that pass their input through unchanged in eval mode: a row of theirs repeats the last
_PASS_THROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
# nonlinearities whose zeros are units switched off: a channel of theirs that is 0 for every image
# is a dead unit (a pooling or flatten layer after one only repeats its dead channels)
ZEROING = ("ReLU", "ReLU6")
# float32 squares overflow above about 1.8e19 and flush to 0 below about 1e-23: outside these
# bounds the values are divided by their largest magnitude before squaring
_SAFE_SQUARES = (1e-15, 1e15)


def _sum_of_squares(x: torch.Tensor, centre: float = 0.0) -> float:
    """Return sum((x - centre)^2) in float64 without float32 overflow or underflow of the squares.

    x: any shape, finite values. Weights of 1e8 give a lenet's logits of 1e33, whose squares are
    inf in float32; a vanishing gradient of 1e-25 would square to exactly 0.
    """
    d = x - centre if centre else x
    scale = float(d.abs().max()) if d.numel() else 0.0
    if scale == 0.0:
        return 0.0
    if _SAFE_SQUARES[0] <= scale <= _SAFE_SQUARES[1]:
        return float((d * d).sum(dtype=torch.float64))
    scaled = d / scale  # (same shape) magnitudes at most 1
    return float((scaled * scaled).sum(dtype=torch.float64)) * scale * scale


@dataclass
class _Running:
    """Streaming statistics of one layer's outputs (float64 sums; Chan's merge for the variance)."""

    kind: str
    shape: tuple[int, ...]
    count: int = 0  # finite values seen
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    low: float = math.inf
    high: float = -math.inf
    zeros: int = 0
    nonfinite: int = 0
    alive: torch.Tensor | None = None  # (channels,) bool: non-zero somewhere, some image
    grad_sq: float = 0.0
    grad_count: int = 0
    grad_nonfinite: int = 0  # NaN and infinite gradient values
    samples: list[np.ndarray] = field(default_factory=list)

    def add(self, out: torch.Tensor, take: int, generator: torch.Generator) -> None:
        x = out.detach()
        finite = torch.isfinite(x)
        self.nonfinite += int((~finite).sum())
        self.zeros += int((x == 0).sum())
        if x.ndim in (2, 4):  # (B, C) or (B, C, H, W): channels on axis 1
            alive = (x != 0).flatten(2).any(-1).any(0) if x.ndim == 4 else (x != 0).any(0)
        elif x.ndim == 3:  # (B, tokens, D): a ViT's features on the last axis
            alive = (x != 0).any(1).any(0)
        else:
            alive = None
        if alive is not None:
            alive = alive.cpu()
            self.alive = alive if self.alive is None else self.alive | alive
        values = x.flatten() if bool(finite.all()) else x[finite]  # (n,) the finite values
        n = values.numel()
        if n == 0:
            return
        mean = float(values.sum(dtype=torch.float64)) / n
        m2 = _sum_of_squares(values, mean)
        delta = mean - self.mean
        total = self.count + n
        self.m2 += m2 + delta * delta * self.count * n / total
        self.mean += delta * n / total
        self.count = total
        low, high = values.aminmax()
        self.low, self.high = min(self.low, float(low)), max(self.high, float(high))
        if take >= n:  # every value: drawn with replacement, a third of them would be missing
            self.samples.append(values.float().cpu().numpy())
        elif take > 0:  # with replacement: a permutation of vgg16's 51 million would cost 400 MB
            picks = torch.randint(n, (take,), generator=generator)
            self.samples.append(values[picks.to(values.device)].float().cpu().numpy())

    def add_grad(self, grad: torch.Tensor) -> None:
        g = grad.detach()
        finite = torch.isfinite(g)
        bad = int((~finite).sum())
        self.grad_nonfinite += bad
        # a NaN or infinite gradient makes the RMS NaN (it is not a number to draw)
        self.grad_sq += math.nan if bad else _sum_of_squares(g)
        self.grad_count += grad.numel()

    def row(self, name: str, gradients: bool) -> dict[str, Any]:
        channels = 0 if self.alive is None else int(self.alive.numel())
        return {
            "layer": name,
            "type": self.kind,
            "output_shape": self.shape,
            "mean": self.mean if self.count else math.nan,
            "std": math.sqrt(self.m2 / self.count) if self.count else math.nan,
            "min": self.low if self.count else math.nan,
            "max": self.high if self.count else math.nan,
            "zero_fraction": self.zeros / max(1, self.count + self.nonfinite),
            "channels": channels,
            "dead_channels": channels - int(self.alive.sum()) if self.alive is not None else 0,
            "nonfinite": self.nonfinite,
            "grad_rms": (
                math.sqrt(self.grad_sq / self.grad_count)
                if gradients and self.grad_count
                else math.nan
            ),
            "grad_nonfinite": self.grad_nonfinite,
        }


@dataclass(frozen=True)
class LayerStatistics:
    """What ``layer_statistics`` returns.

    rows: one dict per layer call, in the order the forward pass made them: layer (its dotted
    name; "name (call 2)" for a module called again, as torchvision's ResNet blocks call their
    ReLU twice), type, output_shape (one image's), mean, std, min, max (over the finite values),
    zero_fraction, channels, dead_channels (channels zero at every position of every image),
    nonfinite (NaN and infinite values), grad_rms (NaN without gradients, or with a
    non-finite gradient value) and grad_nonfinite (the gradient's NaN and infinite values; 0
    without gradients).
    samples: layer -> up to ``sample_size`` of its finite output values, drawn at random
    (float32), for histograms.
    targets: "labels" or "predicted": what the loss of the gradients was taken against.
    """

    rows: list[dict[str, Any]]
    samples: dict[str, np.ndarray]
    targets: str


def _recorded_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Return name -> module for every module that gets a row: leaf modules and whole
    ``nn.MultiheadAttention`` blocks (as ``vizlib.summary.layer_table``), pass-throughs left out."""
    return {
        name: module
        for name, (module, whole) in _row_modules(model).items()
        if whole and name and not isinstance(module, _PASS_THROUGH)
    }


def layer_statistics(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    gradients: bool = True,
    batch_size: int = 32,
    sample_size: int = 20_000,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LayerStatistics:
    """Return the statistics of every layer's output over ``images``, and of the gradients.

    images: (N, C, H, W) normalised for the model, which runs where it lives (``device``, when
    given, must be that device). targets: (N,) class indices for the cross-entropy loss whose
    gradients are measured; without them each image's predicted class is the target. The loss
    is summed over the images, so a gradient's size does not depend on the batch size. The model
    is read, never changed (no parameter gets a gradient); BatchNorm and dropout run as the
    model's mode says (eval for the app's shared models). ``progress(done, total)`` after each
    batch. Same seed, same samples.
    """
    images = torch.as_tensor(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            f"images must be a non-empty batch (N, C, H, W), got {tuple(images.shape)}"
        )
    if targets is not None and len(targets) != len(images):
        raise ValueError(f"{len(targets)} targets for {len(images)} images")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    on = model_device(model)
    if device is not None and torch.device(device).type != on.type:
        raise ValueError(f"The model lives on {on}, not {device}; a shared model is never moved.")
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    modules = _recorded_modules(model)
    total = len(images)
    batches = math.ceil(total / batch_size)
    take = math.ceil(sample_size / batches)
    generator = torch.Generator().manual_seed(seed)
    running: dict[str, _Running] = {}
    calls: dict[str, int] = {}

    def make_hook(name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            out = _first_tensor(output)
            if out is None or not out.is_floating_point():
                return
            calls[name] = calls.get(name, 0) + 1
            key = name if calls[name] == 1 else f"{name} (call {calls[name]})"
            stats = running.get(key)
            if stats is None:
                stats = running[key] = _Running(type(module).__name__, tuple(out.shape[1:]))
            stats.add(out, take, generator)
            if gradients and out.requires_grad:
                out.register_hook(stats.add_grad)  # on this pass's tensor, not on the model

        return hook

    with forward_hooks([(module, make_hook(name)) for name, module in modules.items()]):
        for start in range(0, total, batch_size):
            x = images[start : start + batch_size].to(on, dtype=dtype)  # (B, C, H, W)
            calls.clear()
            if not gradients:
                with torch.inference_mode():
                    model(x)
            else:
                with torch.enable_grad():
                    x.requires_grad_(True)  # the parameters may be frozen: the input carries it
                    logits = _first_tensor(model(x))  # (B, classes)
                    if logits is None or logits.ndim != 2:
                        raise ValueError("gradients need a model that returns (N, classes) logits")
                    wanted = (
                        logits.argmax(1)
                        if targets is None
                        else torch.as_tensor(targets[start : start + len(x)]).to(on)
                    )
                    if int(wanted.min()) < 0 or int(wanted.max()) >= logits.shape[1]:
                        raise ValueError(
                            f"targets must be class indices 0 to {logits.shape[1] - 1}"
                        )
                    F.cross_entropy(logits.float(), wanted.long(), reduction="sum").backward()
            if progress is not None:
                progress(min(start + batch_size, total), total)
    rows = [stats.row(name, gradients) for name, stats in running.items()]
    samples = {
        name: np.concatenate(stats.samples)[:sample_size] if stats.samples else np.zeros(0, "f4")
        for name, stats in running.items()
    }
    return LayerStatistics(rows, samples, "predicted" if targets is None else "labels")


def depth_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return what a reader should know first about ``layer_statistics``'s rows (forward order).

    nonfinite: the layers with NaN or infinite outputs. grad_nonfinite: those with NaN or
    infinite gradient values; grad_nonfinite_at: the last of them in the forward pass (the
    first the backward pass reaches, where the gradient stopped being a number) and the layer
    after it (None for the last layer): an operation between the two has a backward pass that
    is undefined at these values (a square root at 0) or overflows, finite outputs or not;
    None when every gradient is finite. no_gradient: those whose gradient is
    exactly 0 (nothing of the loss depends on them). saturated: True when the last layer (the
    logits) itself gets a gradient of exactly 0: every image's target class has probability 1 to
    float32 precision, so the loss and every layer's gradient are 0. dead: (layer, dead, channels)
    of the ReLU layers (``ZEROING``) with channels that are 0 for every image; other layers'
    channels that are always 0 mostly repeat a ReLU's before them. grad_first, grad_last: the
    first and last layers' names; grad_ratio: the first layer's gradient RMS over the last's
    (0 when no gradient reaches the first layer; NaN without gradients, with a non-finite one or
    a saturated loss).
    """
    first, last = (rows[0], rows[-1]) if rows else ({}, {})
    g_first, g_last = first.get("grad_rms", math.nan), last.get("grad_rms", math.nan)
    broken = [i for i, r in enumerate(rows) if r.get("grad_nonfinite", 0)]
    broken_at = None  # the backward pass runs last to first: the deepest is where it began
    if broken:
        i = broken[-1]
        broken_at = (rows[i]["layer"], rows[i + 1]["layer"] if i + 1 < len(rows) else None)
    return {
        "nonfinite": [r["layer"] for r in rows if r["nonfinite"]],
        "grad_nonfinite": [rows[i]["layer"] for i in broken],
        "grad_nonfinite_at": broken_at,
        "no_gradient": [r["layer"] for r in rows if r["grad_rms"] == 0],
        "saturated": g_last == 0,
        "dead": [
            (r["layer"], r["dead_channels"], r["channels"])
            for r in rows
            if r["dead_channels"] and r["type"] in ZEROING
        ],
        "grad_first": first.get("layer"),
        "grad_last": last.get("layer"),
        "grad_ratio": g_first / g_last if math.isfinite(g_first) and g_last > 0 else math.nan,
    }
