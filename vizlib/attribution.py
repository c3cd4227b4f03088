"""Which input pixels drove a prediction: Captum's Saliency, Integrated Gradients, LayerGradCam and
Occlusion behind one call, plus the top-k predictions.

The model may be shared (cached for every session): it is never moved, put in training mode or
edited. Gradients flow to a private copy of the input only, so models whose parameters have
``requires_grad=False`` work. Captum's Grad-CAM registers a hook on the chosen layer for the
duration of the call; callers sharing a model between threads hold its lock around ``attribute``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .device import resolve_device
from .features import _is_oom, _same_device, model_device

__all__ = [
    "BASELINES",
    "GRADIENT_COST",
    "METHODS",
    "PassTimes",
    "VIEWS",
    "attribute",
    "estimate_seconds",
    "heatmap_view",
    "make_baseline",
    "pass_seconds",
    "top_predictions",
]

METHODS = ("saliency", "integrated_gradients", "gradcam", "occlusion")
BASELINES = ("black", "blurred", "noise")
VIEWS = ("absolute", "positive", "negative", "signed")


def heatmap_view(heatmap: np.ndarray, view: str) -> np.ndarray:
    """Return the heatmap (H, W) as shown: |a|, max(a, 0), max(-a, 0) (as a magnitude) or a itself."""
    a = np.asarray(heatmap, dtype=np.float32)
    if view == "absolute":
        return np.abs(a)
    if view == "positive":
        return np.maximum(a, 0.0)
    if view == "negative":
        return np.maximum(-a, 0.0)
    if view == "signed":
        return a
    raise ValueError(f"Unknown view {view!r}; choose from {', '.join(VIEWS)}.")


def _as_batch(image: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(image, dtype=torch.float32)
    if x.ndim == 3:
        x = x[None]  # (1, C, H, W)
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"image must be (C, H, W) or (1, C, H, W), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("image contains NaN or infinite values")
    return x


def _check_device(model: nn.Module, device) -> torch.device:
    on = model_device(model)
    if device is not None and not _same_device(resolve_device(device), on):
        raise ValueError(
            f"The model lives on {on} but device={str(device)!r} was asked for; load the model "
            "on that device (a shared model is never moved)."
        )
    return on


def top_predictions(
    model: nn.Module,
    image: torch.Tensor,
    k: int = 5,
    *,
    class_names: Sequence[str] | None = None,
    device=None,
) -> list[dict]:
    """Return the k most probable classes, best first, as dicts {class, label, probability}.

    image: (C, H, W) or (1, C, H, W), normalised as the model expects; probability is the
    softmax of the logits, in [0, 1].
    """
    on = _check_device(model, device)
    x = _as_batch(image)
    with torch.inference_mode():
        probs = torch.softmax(model(x.to(on)).float(), dim=1)[0].cpu()  # (classes,)
    values, indices = probs.topk(min(k, probs.numel()))
    return [
        {
            "class": int(i),
            "label": class_names[int(i)] if class_names is not None else str(int(i)),
            "probability": float(p),
        }
        for p, i in zip(values, indices, strict=True)
    ]


# A forward plus a backward pass costs about three forward passes (the backward computes two
# products per layer: the gradients of its input and of its weights).
GRADIENT_COST = 3.0


class PassTimes(NamedTuple):
    """Measured seconds of a warm forward pass of one image and of ``batch`` images."""

    single: float
    batched: float
    batch: int

    def seconds(self, images: int) -> float:
        """Return the seconds of one forward pass of ``images`` images, never an underestimate.

        A pass costs overhead + images x per-image time, and load only ever adds time to the
        two measurements, so the line through them bounds a pass of up to ``batch`` images from
        above; a larger pass costs at most images / batch times the measured batch.
        """
        if images <= self.batch:
            slope = (self.batched - self.single) / (self.batch - 1)
            return self.single + slope * (images - 1)
        return self.batched * images / self.batch


def pass_seconds(
    model: nn.Module,
    image: torch.Tensor,
    *,
    batch: int = 4,
    budget_s: float = 0.25,
    min_repeats: int = 2,
    max_repeats: int = 10,
    device=None,
) -> PassTimes:
    """Return the seconds of a warm forward pass of one image and of ``batch`` copies of it.

    image: (C, H, W) or (1, C, H, W). After a warm-up pass, each is the fastest of
    ``min_repeats`` to ``max_repeats`` passes (no more once ``budget_s`` is spent), so a busy
    machine inflates it little. Both sizes matter: a tiny model's pass is mostly fixed overhead, so batching steps
    or windows costs little more than one pass; a big model's grows with every image.
    """
    if batch < 2:
        raise ValueError(f"batch must be at least 2 to separate the two costs, got {batch}.")
    on = _check_device(model, device)
    x = _as_batch(image).to(on)  # (1, C, H, W)

    def fastest(inputs: torch.Tensor) -> float:
        timings: list[float] = []
        while len(timings) < max(1, min_repeats) or (
            len(timings) < max_repeats and sum(timings) < budget_s
        ):
            started = time.perf_counter()
            model(inputs)
            if on.type == "cuda":
                torch.cuda.synchronize(on)
            timings.append(time.perf_counter() - started)
        return min(timings)

    with torch.inference_mode():
        model(x)  # warm-up: the first pass carries one-off costs (allocation, kernel choice)
        single = fastest(x)
        batched = fastest(x.expand(batch, *x.shape[1:]))  # (batch, C, H, W)
    return PassTimes(single, batched, batch)


def estimate_seconds(
    method: str,
    times: PassTimes,
    *,
    n_steps: int = 50,
    internal_batch_size: int | None = None,
    n_windows: int = 1,
    perturbations_per_eval: int = 16,
) -> float:
    """Return the seconds ``attribute`` is expected to take, from ``pass_seconds``'s timings.

    Counts the passes each method makes as Captum batches them: one forward to check the target
    in every method; Saliency and Grad-CAM one gradient pass; Integrated Gradients ``n_steps``
    images in gradient passes of ``internal_batch_size`` (all at once when None), plus two
    forwards for its convergence delta; Occlusion one forward of the input and ``n_windows``
    occluded copies in passes of ``perturbations_per_eval``. A gradient pass costs
    ``GRADIENT_COST`` forward passes.
    """

    def passes(images: int, per_pass: int) -> float:
        full, rest = divmod(images, max(1, per_pass))
        return full * times.seconds(per_pass) + (times.seconds(rest) if rest else 0.0)

    one = times.seconds(1)
    if method in ("saliency", "gradcam"):
        return one + GRADIENT_COST * one
    if method == "integrated_gradients":
        per_pass = min(internal_batch_size or n_steps, n_steps)
        return one + GRADIENT_COST * passes(n_steps, per_pass) + 2 * one
    if method == "occlusion":
        return 2 * one + passes(n_windows, perturbations_per_eval)
    raise ValueError(f"Unknown method {method!r}; choose from {', '.join(METHODS)}.")


def make_baseline(
    image: torch.Tensor,
    kind: str,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Return an Integrated Gradients baseline like ``image`` (1, C, H, W), in the same normalisation.

    "black": pixels 0, i.e. (0 - mean) / std (the zero tensor when mean/std are not given);
    "blurred": the image under a Gaussian blur (sigma = 1/10 of the shorter side, pixels);
    "noise": uniform pixel noise in [0, 1], normalised, seeded.
    """
    x = _as_batch(image)
    channels = x.shape[1]
    m = torch.tensor(list(mean) if mean is not None else [0.0] * channels).view(1, -1, 1, 1)
    s = torch.tensor(list(std) if std is not None else [1.0] * channels).view(1, -1, 1, 1)
    if m.shape[1] not in (1, channels) or s.shape[1] not in (1, channels):
        raise ValueError(f"mean/std need 1 or {channels} values")
    if kind == "black":
        return ((torch.zeros_like(x) - m) / s).expand_as(x).clone()
    if kind == "noise":
        gen = torch.Generator().manual_seed(seed)
        return (torch.rand(x.shape, generator=gen) - m) / s
    if kind == "blurred":
        from torchvision.transforms.functional import gaussian_blur

        sigma = max(min(x.shape[-2:]) / 10.0, 0.5)
        size = int(2 * round(3 * sigma) + 1)
        size = min(size, 2 * (min(x.shape[-2:]) // 2) - 1)  # reflect padding needs size < side
        # A normalised blur commutes with the per-channel affine normalisation.
        return gaussian_blur(x, [size, size], [sigma, sigma])
    raise ValueError(f"Unknown baseline {kind!r}; choose from {', '.join(BASELINES)}.")


def _cpu_copy(model: nn.Module) -> nn.Module:
    # A private CPU copy for the out-of-memory fallback: the shared model must not move. Hooks
    # another thread may have registered are dropped from the copy. Parameters and buffers are
    # copied straight to the CPU (the memo hands deepcopy the copies): deepcopy itself would
    # first clone each one on the GPU, which has just run out of memory.
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(p.detach().to("cpu", copy=True), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = b.detach().to("cpu", copy=True)
    clone = copy.deepcopy(model, memo).to("cpu")
    for module in clone.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
        module._backward_hooks.clear()
    return clone


def _run(model: nn.Module, x: torch.Tensor, target: int, method: str, opts: dict):
    """Return (attribution (1, C, H, W) or (1, 1, h, w) for Grad-CAM, delta or None)."""
    from captum.attr import IntegratedGradients, LayerGradCam, Occlusion, Saliency

    on = model_device(model)
    # Captum needs gradients w.r.t. the input only; the shared model's parameters may be frozen.
    inp = x.to(on).detach().clone().requires_grad_(True)
    if method == "saliency":
        return Saliency(model).attribute(inp, target=target, abs=False), None
    if method == "integrated_gradients":
        ig = IntegratedGradients(model)
        attr, delta = ig.attribute(
            inp,
            baselines=opts["baseline_tensor"].to(on),
            target=target,
            n_steps=opts["n_steps"],
            internal_batch_size=opts["internal_batch_size"],
            return_convergence_delta=True,
        )
        return attr, float(delta.reshape(-1)[0])
    if method == "gradcam":
        layer = dict(model.named_modules())[opts["layer"]]
        cam = LayerGradCam(model, layer).attribute(
            inp, target=target, relu_attributions=opts["relu"]
        )  # (1, 1, h, w)
        return cam, None
    if method == "occlusion":
        c = x.shape[1]
        attr = Occlusion(model).attribute(
            inp.detach(),
            sliding_window_shapes=(c, opts["window"], opts["window"]),
            strides=(c, opts["stride"], opts["stride"]),
            baselines=0.0,
            target=target,
            perturbations_per_eval=opts["perturbations_per_eval"],
        )
        return attr, None
    raise AssertionError(method)


def attribute(
    model: nn.Module,
    image: torch.Tensor,
    target: int,
    method: str,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    n_steps: int = 50,
    baseline: str = "black",
    internal_batch_size: int | None = None,
    layer: str | None = None,
    relu: bool = False,
    window: int = 8,
    stride: int = 4,
    perturbations_per_eval: int = 16,
    device=None,
) -> dict:
    """Return a Captum attribution of ``target``'s logit to the input pixels of one image.

    image: (C, H, W) or (1, C, H, W), normalised as the model expects (``mean``/``std`` per
    channel of pixel values in [0, 1] define the black and noise baselines).
    Result keys: "heatmap" float32 (H, W) numpy (signed, summed over channels; Grad-CAM upsampled
    bilinearly to the input size with ``LayerAttribution.interpolate``), "attribution" (C, H, W)
    numpy (Grad-CAM: (1, h, w) at the layer's resolution), "method", "target", "delta"
    (Integrated Gradients' convergence delta = sum(attr) - (f(x) - f(baseline)), else None),
    "gap" (IG: f(x) - f(baseline) of the target logit, else None), "baseline" (1, C, H, W) tensor for IG, "notice" (str or None: what the out-of-memory fallback
    did), "device" (str) and "seconds" (wall time).
    Options: IG ``n_steps``, ``baseline`` in BASELINES, ``internal_batch_size``; Grad-CAM
    ``layer`` (a conv layer's name; default the last one) and ``relu``; Occlusion ``window`` and
    ``stride`` (pixels, square) and ``perturbations_per_eval``. A GPU out-of-memory error halves
    the batch, then falls back to a private CPU copy of the model, and says so in "notice".
    """
    from captum.attr import LayerAttribution

    from .filters import conv_layer_names

    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose from {', '.join(METHODS)}.")
    _check_device(model, device)
    x = _as_batch(image)
    with torch.inference_mode():
        n_classes = model(x.to(model_device(model))).shape[1]
    if not 0 <= int(target) < n_classes:
        raise ValueError(f"target must be a class index in [0, {n_classes - 1}], got {target}.")
    target = int(target)
    opts: dict = {
        "n_steps": int(n_steps),
        "internal_batch_size": internal_batch_size,
        "layer": layer,
        "relu": relu,
        "window": int(window),
        "stride": int(stride),
        "perturbations_per_eval": max(1, int(perturbations_per_eval)),
    }
    if method == "integrated_gradients":
        if n_steps < 2:
            raise ValueError(f"n_steps must be at least 2, got {n_steps}.")
        opts["baseline_tensor"] = make_baseline(x, baseline, mean=mean, std=std)
        if internal_batch_size is not None and internal_batch_size < 1:
            raise ValueError("internal_batch_size must be at least 1.")
    if method == "gradcam":
        convs = conv_layer_names(model)
        if not convs:
            raise ValueError("Grad-CAM needs a Conv2d layer; this model has none.")
        if layer is None:
            opts["layer"] = convs[-1]
        elif layer not in convs:
            raise ValueError(f"{layer!r} is not a conv layer; choose from {', '.join(convs)}.")
    if method == "occlusion":
        h, w = x.shape[-2:]
        if not (1 <= window <= min(h, w)) or not (1 <= stride <= min(h, w)):
            raise ValueError(
                f"window and stride must be between 1 and {min(h, w)} pixels, got {window}, {stride}."
            )
        if stride > window:
            # Captum asserts here; a stride past the window would also leave pixels unoccluded.
            raise ValueError(
                f"The occlusion stride ({stride} px) must not exceed the window ({window} px)."
            )

    notices: list[str] = []
    runner = model
    start = time.perf_counter()
    while True:
        try:
            attr, delta = _run(runner, x, target, method, opts)
            if model_device(runner).type == "cuda":
                torch.cuda.synchronize(model_device(runner))  # "seconds" must include the work
            break
        except Exception as err:
            if not _is_oom(err):
                raise
            if model_device(runner).type == "cuda":
                torch.cuda.empty_cache()
            key = {
                "integrated_gradients": "internal_batch_size",
                "occlusion": "perturbations_per_eval",
            }.get(method)
            current = opts.get(key) if key else None
            if key and current is None:
                current = opts["n_steps"]
            if key and current > 1:
                opts[key] = max(1, current // 2)
                notices.append(f"Out of memory: retried with {key}={opts[key]}.")
            elif model_device(runner).type != "cpu":
                runner = _cpu_copy(model)
                notices.append("Out of GPU memory: computed on the CPU instead.")
            else:
                raise
    seconds = time.perf_counter() - start
    attr = attr.detach().float().cpu()  # (1, C, H, W) or (1, 1, h, w)
    # Completeness: sum(attr) = f(x) - f(baseline) + delta, so the gap follows without a forward.
    gap = float(attr.sum()) - delta if delta is not None else None
    if method == "gradcam":
        heat = LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), "bilinear")  # (1, 1, H, W)
    else:
        heat = attr
    return {
        "method": method,
        "target": target,
        "heatmap": heat[0].sum(0).numpy().astype(np.float32),  # (H, W)
        "attribution": attr[0].numpy(),
        "delta": delta,
        "gap": gap,
        "baseline": opts.get("baseline_tensor"),
        "layer": opts["layer"] if method == "gradcam" else None,
        "notice": " ".join(notices) or None,
        "device": str(model_device(runner)),
        "seconds": seconds,
    }
