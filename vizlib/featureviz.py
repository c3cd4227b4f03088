"""Feature visualisation by optimisation: the input that drives a channel (or a class logit) most.

Gradient ascent on the input image, starting from faint noise, with the regularisers that make
the result readable (Erhan et al. 2009, "Visualizing higher-layer features of a deep network";
Simonyan, Vedaldi & Zisserman 2013, "Deep inside convolutional networks", arXiv:1312.6034;
Yosinski et al. 2015, "Understanding neural networks through deep visualization",
arXiv:1506.06579; Olah, Mordvintsev & Schubert 2017, "Feature Visualization", Distill):

- L2 decay: the objective loses ``l2 * |x|^2`` (x the model's normalised input, so the pull is
  towards the dataset's mean pixel); without it pixels that barely matter drift to extremes;
- jitter: each step sees the image rolled by up to ``jitter`` pixels each way, so the image may
  not rely on one exact alignment (high-frequency patterns that only work at one offset fade);
- blur: every ``blur_every`` steps the image is smoothed by a Gaussian of ``blur_sigma`` pixels,
  which damps the high frequencies that gradient ascent otherwise fills the image with;
- clamp: after each step the pixels are kept inside the range a real image can have, 0 to 1
  before normalisation, that is ``(0 - mean) / std`` to ``(1 - mean) / std`` per channel.

The objective of image i is the mean over positions of channel ``channels[i]``'s feature map at
``layer`` (the layer's raw output: the conv's, before any activation that follows it; a (N, F)
output's unit, the mean over tokens of a (N, T, D) one), or its centre unit with
``reduce="centre"`` (Olah et al.'s "neuron" objective: a first conv layer is linear in the
image, so its channel mean is maximised by a flat image, its centre unit by the filter's own
pattern), or, with ``layer=None``, the model's output ``channels[i]``: a class logit. All
images are optimised as one batch with Adam.

The model may be shared between threads (one cached model serves every Streamlit session), so
nothing here mutates it: no ``.train()``/``.eval()``, no ``.to()``, gradients taken with
``torch.autograd.grad`` with respect to the input only (no parameter's ``.grad`` is written), and
the one forward hook lives in ``vizlib._hooks.forward_hooks``, removed on exit even on error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import forward_hooks
from .data.datasets import denormalize
from .device import resolve_device
from .embedding import _torch_threads
from .features import _first_tensor, _resolve_modules, _same_device, model_device

__all__ = [
    "OptimisedInputs",
    "input_bounds",
    "optimise_input",
    "objective_scores",
]


@dataclass
class OptimisedInputs:
    """What ``optimise_input`` found (CPU tensors).

    images: (N, C, H, W) in display space, ``inputs * std + mean``: in [0, 1] when the pixels
    were clamped (the default). inputs: (N, C, H, W) the optimised model inputs (normalised).
    objective: (steps_done, N) each image's objective (the channel's mean activation or the
    logit, without the L2 penalty) at each step, on the jittered image that step saw.
    final: (N,) the objective of the returned images, unjittered. steps: steps done (fewer than
    asked when the callback stopped the run).
    """

    images: torch.Tensor
    inputs: torch.Tensor
    objective: torch.Tensor
    final: torch.Tensor
    steps: int


class _Reached(Exception):
    """Raised by the hook once the layer's output is recorded: the rest of the network is not
    needed (vgg16's first conv at 224 x 224 costs a fraction of the whole forward pass)."""


def input_bounds(mean: Sequence[float], std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (low, high), each (C, 1, 1): the normalised values of pixel 0 and pixel 1 per channel."""
    m = torch.tensor([float(v) for v in mean], dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor([float(v) for v in std], dtype=torch.float32).view(-1, 1, 1)
    return (0.0 - m) / s, (1.0 - m) / s


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Return x (N, C, H, W) smoothed by a separable Gaussian of ``sigma`` pixels (reflected edges)."""
    radius = min(max(1, math.ceil(3 * sigma)), x.shape[-2] - 1, x.shape[-1] - 1)
    if radius < 1:
        return x
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()  # (K,)
    c = x.shape[1]
    out = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # along W
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # along H


REDUCTIONS = ("mean", "centre")
# Inputs up to this many pixels a side run on one CPU thread by default: the per-step ops are
# small, and on this busy 2-core CPU a second thread made them slower (lenet_digits, 8 images
# of conv2, 128 steps: 3.7 ms a step on 1 thread, 81 ms on 2; resnet_digits 15 against 100+).
SINGLE_THREAD_MAX_SIDE = 64


def _reduce(out: torch.Tensor, reduce: str) -> torch.Tensor:
    """Return (N, C) from a layer's output: conv maps (N, C, h, w) averaged over positions (as
    ``channel_scores`` does) or, with ``reduce="centre"``, their centre unit (h // 2, w // 2);
    token outputs (N, T, D) averaged over tokens or their middle token; (N, F) as they are."""
    if out.ndim == 4:
        centre = out[:, :, out.shape[2] // 2, out.shape[3] // 2]
        return centre if reduce == "centre" else out.mean(dim=(2, 3))
    if out.ndim == 3:
        return out[:, out.shape[1] // 2] if reduce == "centre" else out.mean(dim=1)
    return out.reshape(out.shape[0], -1)


def _scorer(
    model: nn.Module, layer: str | None, reduce: str
) -> tuple[Callable[[torch.Tensor], torch.Tensor], list[tuple[nn.Module, Callable]]]:
    """Return (f, hooks): f(x (N, C, H, W)) -> (N, K) scores of every channel of ``layer`` (or
    every logit), with the autograd graph back to x, once ``hooks`` are registered
    (``forward_hooks(hooks)``; none for the logits)."""
    if layer is None:
        return (lambda x: _reduce(_first_tensor(model(x)), reduce)), []
    module = _resolve_modules(model, [layer])[layer]  # ValueError naming the valid layers
    store: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        # Reduced here, before any in-place activation after the layer (vgg16's ReLU(inplace))
        # can overwrite the output: the mean and the indexing save no values for backward.
        store["out"] = _reduce(_first_tensor(output), reduce)
        raise _Reached

    def run(x: torch.Tensor) -> torch.Tensor:
        store.clear()
        try:
            model(x)
        except _Reached:
            pass
        if "out" not in store:
            raise ValueError(f"Layer {layer!r} did not run in the model's forward pass.")
        return store.pop("out")

    return run, [(module, hook)]


def optimise_input(
    model: nn.Module,
    layer: str | None,
    channels: Sequence[int],
    *,
    input_shape: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    steps: int = 256,
    lr: float = 0.1,
    l2: float = 1e-3,
    jitter: int = 1,
    blur_every: int = 4,
    blur_sigma: float = 0.5,
    reduce: str = "mean",
    clamp: bool = True,
    init_std: float = 0.1,
    seed: int = 0,
    device: str | torch.device | None = None,
    callback: Callable[[int, float], bool | None] | None = None,
    callback_every: int = 1,
    num_threads: int | None = None,
) -> OptimisedInputs:
    """Return the inputs that maximise each requested channel of ``layer`` (one image each).

    ``layer``: a module name of ``model`` (``named_modules``), or None for the model's output,
    whose ``channels`` are then class indices (the objective is the logit). ``reduce``: "mean"
    (the channel's mean over positions) or "centre" (its unit at the map's centre); no effect on
    a (N, F) output such as the logits. ``input_shape``: (C, H, W) of one input; ``mean``,
    ``std``: the model's input normalisation (C values each).
    Each image i maximises ``objective_i(x_i) - l2 * sum(x_i ** 2)`` over the normalised input
    x_i by Adam (learning rate ``lr``, in normalised pixel units), starting from
    ``init_std * N(0, 1)`` noise (around the mean pixel), for ``steps`` steps. Before each step
    the batch is rolled by a random shift of up to ``jitter`` pixels each way (0: off); after
    it, every ``blur_every`` steps (0: never) it is blurred by a Gaussian of ``blur_sigma``
    pixels, then with ``clamp`` its pixels are clipped to the range of real images, [0, 1]
    before normalisation. See the module docstring for why each regulariser helps.

    ``callback(step, objective)`` is called every ``callback_every`` steps and after the last,
    with the steps done and the batch's mean objective at that step; return ``False`` to stop
    early: the images as they are then are returned. An exception it raises ends the run (the
    hook is removed all the same).

    ``num_threads``: torch CPU threads for the run (restored after); None = 1 on a CPU for
    inputs up to ``SINGLE_THREAD_MAX_SIDE`` pixels a side, else torch's setting.

    Runs on the model's device (the model is never moved; a ``device`` other than the model's
    raises ``ValueError``). The same seed, arguments and device give the same images. Raises
    ``ValueError`` for an unknown layer, a channel out of range, steps < 1 and other bad values.
    """
    channels = [int(c) for c in channels]
    lr, l2, blur_sigma = float(lr), float(l2), float(blur_sigma)
    jitter, blur_every = int(jitter), int(blur_every)
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}.")
    if layer is not None:
        _resolve_modules(model, [layer])  # ValueError naming the valid layers
    if len(input_shape) != 3 or any(int(v) < 1 for v in input_shape):
        raise ValueError(f"input_shape must be (C, H, W) of positive sizes, got {input_shape}.")
    if len(mean) != input_shape[0] or len(std) != input_shape[0]:
        raise ValueError(
            f"mean and std need one value per input channel ({input_shape[0]}), got "
            f"{len(mean)} and {len(std)}."
        )
    if any(not float(s) > 0 for s in std):
        raise ValueError(f"std must be positive, got {list(std)}.")
    if len(channels) == 0:
        raise ValueError("Give at least one channel to optimise for.")
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be a whole number of at least 1, got {steps!r}.")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    for name, value in (("l2", l2), ("blur_sigma", blur_sigma)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be 0 or a positive number, got {value!r}.")
    if jitter < 0 or blur_every < 0:
        raise ValueError(f"jitter and blur_every must be 0 or more, got {jitter} and {blur_every}.")
    if callback_every < 1:
        raise ValueError(f"callback_every must be at least 1, got {callback_every}.")
    on = model_device(model)
    if device is not None and not _same_device(resolve_device(device), on):
        raise ValueError(
            f"The model lives on {on} but device={str(device)!r} was asked for; load the model on "
            "that device (a shared model is never moved)."
        )
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    if not dtype.is_floating_point:
        dtype = torch.float32
    shape = tuple(int(v) for v in input_shape)
    low, high = (b.to(on, dtype) for b in input_bounds(mean, std))  # (C, 1, 1) each
    n = len(channels)
    rows = torch.arange(n, device=on)
    index = torch.tensor(channels, device=on)
    gen = torch.Generator().manual_seed(int(seed))  # CPU: the same draws on every device
    x = (float(init_std) * torch.randn((n, *shape), generator=gen)).to(on, dtype)  # (N, C, H, W)
    if clamp:
        x = torch.maximum(torch.minimum(x, high), low)
    x.requires_grad_(True)
    shifts = torch.randint(-jitter, jitter + 1, (steps, 2), generator=gen).tolist()  # (dy, dx)
    optimiser = torch.optim.Adam([x], lr=lr)
    history: list[torch.Tensor] = []
    score, hooks = _scorer(model, layer, reduce)
    if num_threads is None and on.type == "cpu" and max(shape[1:]) <= SINGLE_THREAD_MAX_SIDE:
        num_threads = 1
    with _torch_threads(num_threads), forward_hooks(hooks), torch.enable_grad():
        with torch.no_grad():  # one pass to learn the number of channels before any work
            width = score(x[:1].detach()).shape[1]
        bad = [c for c in channels if not 0 <= c < width]
        if bad:
            what = "class" if layer is None else f"channel of {layer}"
            raise ValueError(
                f"No {what} {bad[0]}: " + ("the model has" if layer is None else "it has")
                + f" {width} {'outputs' if layer is None else 'channels'}, 0 to {width - 1}."
            )  # fmt: skip
        done = 0
        for step in range(steps):
            dy, dx = shifts[step]
            seen = torch.roll(x, shifts=(dy, dx), dims=(2, 3)) if (dy or dx) else x
            objective = score(seen)[rows, index]  # (N,)
            total = objective.sum() - l2 * (x * x).sum()
            (grad,) = torch.autograd.grad(total, x)
            x.grad = -grad  # Adam minimises: ascend the objective
            optimiser.step()
            x.grad = None
            with torch.no_grad():
                if blur_every and (step + 1) % blur_every == 0 and blur_sigma > 0:
                    x.copy_(_gaussian_blur(x, blur_sigma))
                if clamp:
                    x.copy_(torch.maximum(torch.minimum(x, high), low))
            history.append(objective.detach())
            done = step + 1
            if callback is not None and (done % callback_every == 0 or done == steps):
                if callback(done, float(objective.detach().mean())) is False:
                    break
        with torch.no_grad():
            final = score(x.detach())[rows, index]  # (N,)
    inputs = x.detach().to("cpu", torch.float32)
    return OptimisedInputs(
        images=denormalize(inputs, mean, std, clip=False),
        inputs=inputs,
        objective=torch.stack(history).to("cpu", torch.float32),  # (steps_done, N)
        final=final.to("cpu", torch.float32),
        steps=done,
    )


def objective_scores(
    model: nn.Module,
    images: torch.Tensor,
    layer: str | None,
    *,
    reduce: str = "mean",
    batch_size: int = 128,
) -> torch.Tensor:
    """Return (N, K) the objective ``optimise_input`` maximises, for each of ``images`` and each
    channel K of ``layer`` (None: each logit), to compare the optimised images with real ones.

    images: (N, C, H, W) normalised as the model expects; run on the model's device in batches.
    ``reduce`` as for ``optimise_input``.
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}.")
    on = model_device(model)
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    score, hooks = _scorer(model, layer, reduce)
    parts = []
    with forward_hooks(hooks), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            parts.append(score(images[start : start + batch_size].to(on, dtype)).float().cpu())
    return torch.cat(parts)
