"""Which input pixels drove a prediction: Captum's Saliency, Integrated Gradients, LayerGradCam and
Occlusion, and Guided Backprop, behind one call, plus the top-k predictions, and the model randomisation test of
Adebayo et al. (2018) that checks whether a map depends on the network at all.

The model may be shared (cached for every session): it is never moved, put in training mode or
edited. Gradients flow to a private copy of the input only, so models whose parameters have
``requires_grad=False`` work. Captum's Grad-CAM registers a hook on the chosen layer for the
duration of the call; callers sharing a model between threads hold its lock around ``attribute``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ._hooks import forward_hooks, private_copy
from .device import resolve_device
from .features import _is_oom, _same_device, model_device

__all__ = [
    "BASELINES",
    "GRADIENT_COST",
    "METHODS",
    "PassTimes",
    "RandomizationResult",
    "VIEWS",
    "attribute",
    "cascading_randomization",
    "map_similarity",
    "randomization_stages",
    "estimate_seconds",
    "heatmap_view",
    "make_baseline",
    "pass_seconds",
    "top_predictions",
]

METHODS = ("saliency", "integrated_gradients", "gradcam", "occlusion", "guided_backprop")
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
    in every method; Saliency, Guided Backprop and Grad-CAM one gradient pass; Integrated
    Gradients ``n_steps`` images in gradient passes of ``internal_batch_size`` (all at once when
    None), plus two forwards for its convergence delta; Occlusion one forward of the input and ``n_windows``
    occluded copies in passes of ``perturbations_per_eval``. A gradient pass costs
    ``GRADIENT_COST`` forward passes.
    """

    def passes(images: int, per_pass: int) -> float:
        full, rest = divmod(images, max(1, per_pass))
        return full * times.seconds(per_pass) + (times.seconds(rest) if rest else 0.0)

    one = times.seconds(1)
    if method in ("saliency", "gradcam", "guided_backprop"):
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


class _GuidedReLU(torch.autograd.Function):
    """Identity on a ReLU's output (y >= 0) whose backward passes only the positive gradient
    where the unit fired: with the ReLU's own backward before it, Guided Backprop's rule
    (Springenberg et al., "Striving for simplicity", 2015)."""

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(y > 0)
        return y.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (fired,) = ctx.saved_tensors
        return grad.clamp(min=0) * fired


def _guide(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return _GuidedReLU.apply(output)


def _guided_relus(model: nn.Module) -> list[nn.Module]:
    """The ``nn.ReLU`` modules Guided Backprop changes (as Captum's: a functional ``F.relu`` in
    a ``forward`` is not seen)."""
    return [m for m in model.modules() if isinstance(m, nn.ReLU)]


def _run(model: nn.Module, x: torch.Tensor, target: int, method: str, opts: dict):
    """Return (attribution (1, C, H, W) or (1, 1, h, w) for Grad-CAM, delta or None)."""
    from captum.attr import IntegratedGradients, LayerGradCam, Occlusion, Saliency

    on = model_device(model)
    # Captum needs gradients w.r.t. the input only; the shared model's parameters may be frozen.
    inp = x.to(on).detach().clone().requires_grad_(True)
    if method == "saliency":
        return Saliency(model).attribute(inp, target=target, abs=False), None
    if method == "guided_backprop":
        # forward hooks of this thread only (Captum's backward hooks would guide every thread's
        # gradients through a shared model's ReLUs while they are on)
        with forward_hooks([(relu, _guide) for relu in _guided_relus(model)]):
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


def gradcam_layer(model: nn.Module) -> str | None:
    """Return the conv layer Grad-CAM uses by default: the last ``nn.Conv2d`` whose kernel is
    larger than 1 x 1, or the last one where none is; None for a model without one.

    The usual choice is the last conv layer of the feature extractor. In definition order that
    can be a residual block's 1 x 1 shortcut projection (``layers.2.shortcut.0`` in
    ``resnet_digits``), which sees one position of the block's input and none of its main path.
    """
    from .filters import conv_layer_names

    convs = dict(model.named_modules())
    names = conv_layer_names(model)
    spatial = [n for n in names if tuple(convs[n].kernel_size) != (1, 1)]
    return (spatial or names or [None])[-1]


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
            opts["layer"] = gradcam_layer(model)
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
                runner = private_copy(model, "cpu")  # the shared model must not move
                notices.append("Out of GPU memory: computed on the CPU instead.")
            else:
                raise
    seconds = time.perf_counter() - start
    if method == "guided_backprop" and not _guided_relus(model):
        notices.append("The model has no ReLU module: Guided Backprop is the plain gradient here.")
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


# ----------------------------------------------------------------------------- sanity check


def _parameter_owners(model: nn.Module) -> list[str]:
    """Names of the modules that hold parameters of their own, in ``named_modules`` order (the
    model itself is "", e.g. a ViT's class token and position embedding)."""
    return [
        n for n, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None
    ]


def randomization_stages(model: nn.Module, max_stages: int = 8) -> list[list[str]]:
    """Return the cascade of Adebayo et al. (2018): groups of parameter-holding modules from the
    output end towards the input; stage k re-initialises groups 0..k.

    Each module is a stage of its own when there are at most ``max_stages`` of them; more are
    split into ``max_stages`` runs of consecutive modules (nearly equal in number), the output
    end first. The model itself ("") holds a ViT's class token and position embedding.
    """
    if max_stages < 1:
        raise ValueError(f"max_stages must be at least 1, got {max_stages}")
    owners = _parameter_owners(model)[::-1]  # the output end first
    if not owners:
        raise ValueError("the model has no parameters to randomise")
    runs = np.array_split(np.arange(len(owners)), min(max_stages, len(owners)))
    return [[owners[i] for i in run] for run in runs]


def _reinitialise(module: nn.Module, seed: int) -> None:
    """Draw ``module``'s own parameters afresh: its ``reset_parameters`` (the architecture's own
    initialisation, BatchNorm's statistics included), else each parameter from a normal of its
    current standard deviation (0.02 for a constant one, as ViTs draw their embeddings)."""
    # drawn on the CPU from the CPU's generator alone, whatever the module's device: a stage is
    # the same network on a GPU, and the caller's random streams (CUDA's too) are left alone
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.default_generator.manual_seed(seed)
        leaf = not any(True for _ in module.children())
        if leaf and hasattr(module, "reset_parameters"):
            on_cpu = all(t.device.type == "cpu" for t in (*module.parameters(), *module.buffers()))
            fresh = module if on_cpu else copy.deepcopy(module).cpu()
            fresh.reset_parameters()
            if fresh is not module:
                module.load_state_dict(fresh.state_dict())
            return
        for parameter in module.parameters(recurse=False):
            scale = float(parameter.float().std()) if parameter.numel() > 1 else 0.0
            generator = torch.Generator().manual_seed(seed)
            fresh = torch.randn(parameter.shape, generator=generator) * (scale or 0.02)
            parameter.copy_(fresh.to(parameter.device, parameter.dtype))


def map_similarity(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Return how alike two attribution maps (H, W) are, as Adebayo et al. (2018) measure it:
    "spearman_abs", the Spearman rank correlation of their magnitudes; "spearman", of the signed
    maps; "ssim", the structural similarity of the magnitudes each scaled to [0, 1]. NaN where a
    map is constant."""
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    a, b = np.asarray(reference, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"the maps differ in shape: {a.shape} and {b.shape}")
    result = {"spearman_abs": float("nan"), "spearman": float("nan"), "ssim": float("nan")}
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return result
    result["spearman"] = float(spearmanr(a.ravel(), b.ravel())[0])
    abs_a, abs_b = np.abs(a), np.abs(b)
    if np.ptp(abs_a) > 0 and np.ptp(abs_b) > 0:
        result["spearman_abs"] = float(spearmanr(abs_a.ravel(), abs_b.ravel())[0])
        side = min(a.shape)
        window = min(7, side if side % 2 else side - 1)
        if window >= 3:
            result["ssim"] = float(
                structural_similarity(
                    abs_a / abs_a.max(), abs_b / abs_b.max(), data_range=1.0, win_size=window
                )
            )
    return result


@dataclass
class RandomizationResult:
    """What ``cascading_randomization`` returns.

    stages: "trained", then each stage's lowest module re-initialised ("conv1"; "(model)" for
    the model's own parameters); randomized: the modules re-initialised at each stage (the
    cascade keeps those before random, the independent test trained); heatmaps: method -> one signed (H, W) map per stage;
    similarity: method -> metric (``map_similarity``'s keys) -> one value per stage, against the
    trained map; target_logit: the target's logit at each stage; seconds: wall time.
    """

    stages: list[str]
    randomized: list[list[str]]
    heatmaps: dict[str, list[np.ndarray]]
    similarity: dict[str, dict[str, list[float]]]
    target_logit: list[float]
    seconds: float


def cascading_randomization(
    model: nn.Module,
    image: torch.Tensor,
    target: int,
    methods: Sequence[str],
    *,
    options: dict[str, dict] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    max_stages: int = 8,
    seed: int = 0,
    independent: bool = False,
    lock: AbstractContextManager | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RandomizationResult:
    """The model randomisation test of Adebayo et al. ("Sanity checks for saliency maps",
    NeurIPS 2018): re-initialise the weights from the output towards the input, a stage at a
    time (``randomization_stages``), and explain ``target`` again after each. With
    ``independent``, each stage re-initialises its own layers only, the others trained (the
    paper's independent randomisation: which layers does the map depend on?).

    A map that stays the same while the network it explains is destroyed does not explain the
    network. ``options``: per method, the keyword options of ``attribute`` (IG steps, the
    Grad-CAM layer, ...). Each module's fresh weights are seeded by ``seed`` and its place in the
    cascade, so a stage is the same whatever methods run. The randomised network is a private
    copy: the (shared) model is only read, once, to copy it, with ``lock`` held (another
    thread's hooks must not come and go meanwhile). ``progress(done, total)`` after each
    attribution.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"choose methods from {', '.join(METHODS)}, got {list(methods)}")
    start = time.perf_counter()
    options = options or {}
    groups = randomization_stages(model, max_stages)
    with lock or nullcontext():
        trained = private_copy(model)
    clone = private_copy(trained) if independent else trained
    modules = dict(clone.named_modules())
    x = _as_batch(image)
    heatmaps: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    logits: list[float] = []
    stages, randomized = ["trained"], [[]]
    total, done = (len(groups) + 1) * len(methods), 0
    order = 0
    for stage in range(len(groups) + 1):
        if stage:
            if independent:  # the trained weights again, but for this stage's layers
                clone = private_copy(trained)
                modules = dict(clone.named_modules())
            for name in groups[stage - 1]:
                _reinitialise(modules[name], seed + order)  # a module's draw: either mode
                order += 1
            stages.append(groups[stage - 1][-1] or "(model)")
            randomized.append(list(groups[stage - 1]))
        with torch.inference_mode():
            logits.append(float(clone(x.to(model_device(clone)))[0, int(target)]))
        for method in methods:
            result = attribute(
                clone, x, target, method, mean=mean, std=std, **options.get(method, {})
            )
            heatmaps[method].append(result["heatmap"])
            done += 1
            if progress is not None:
                progress(done, total)
    similarity = {}
    for method, maps in heatmaps.items():
        measured = [map_similarity(maps[0], m) for m in maps]
        similarity[method] = {key: [v[key] for v in measured] for key in measured[0]}
    return RandomizationResult(
        stages=stages,
        randomized=randomized,
        heatmaps=heatmaps,
        similarity=similarity,
        target_logit=logits,
        seconds=time.perf_counter() - start,
    )
