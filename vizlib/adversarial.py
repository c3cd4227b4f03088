"""Adversarial examples: changes to an image too small to see that change the network's answer.

FGSM, the fast gradient sign method (Goodfellow, Shlens and Szegedy, "Explaining and harnessing
adversarial examples", ICLR 2015), takes one step of size eps along the sign of the loss's
gradient with respect to the pixels. PGD, projected gradient descent (Madry et al., "Towards deep
learning models resistant to adversarial attacks", ICLR 2018), takes several steps of size alpha,
each projected back into the L-infinity ball of radius eps around the image. A targeted attack
lowers the loss of a chosen class instead of raising that of the true one.

Everything works in pixel space, values in [0, 1], so that eps means what it says on the image
(8/255: no pixel moves by more than 8 grey levels); the model's normalisation is applied inside
the loss, and every step is clipped to [0, 1]. The shared model is not changed: the gradient is
taken with ``torch.autograd.grad`` (no parameter's ``.grad`` is written) and no hook is added.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .features import model_device

__all__ = ["ATTACKS", "AttackResult", "accuracy_under_attack", "attack"]

ATTACKS = ("FGSM", "PGD")


@dataclass(frozen=True)
class AttackResult:
    """What ``attack`` returns; tensors on the CPU.

    adversarial: (N, C, H, W) pixel values in [0, 1]. perturbation: adversarial minus the clean
    images, each value within [-eps, eps]. clean_probs, adversarial_probs: (N, classes) softmax.
    losses: the mean cross-entropy (of the labels, or of the target for a targeted attack) before
    the first step and after each step.
    """

    adversarial: torch.Tensor
    perturbation: torch.Tensor
    clean_probs: torch.Tensor
    adversarial_probs: torch.Tensor
    losses: list[float]


def _normaliser(
    mean: Sequence[float], std: Sequence[float], device: torch.device
) -> Callable[[torch.Tensor], torch.Tensor]:
    m = torch.tensor([float(v) for v in mean], device=device).view(1, -1, 1, 1)  # (1, C, 1, 1)
    s = torch.tensor([float(v) for v in std], device=device).view(1, -1, 1, 1)
    if (s <= 0).any():
        raise ValueError(f"std must be positive, got {list(std)}")
    return lambda pixels: (pixels - m) / s


def _check(images: torch.Tensor, labels: torch.Tensor, eps: float) -> None:
    if images.ndim != 4 or len(images) < 1:
        raise ValueError(f"images must be (N, C, H, W) with N >= 1, got {tuple(images.shape)}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must be ({len(images)},), got {tuple(labels.shape)}")
    if not 0 <= eps <= 1:
        raise ValueError(f"eps is a pixel change in [0, 1] (8/255 = {8 / 255:.4f}), got {eps}")
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ValueError("images must be finite pixel values in [0, 1]")


def _step_count(method: str, steps: int) -> int:
    if method not in ATTACKS:
        raise ValueError(f"method must be one of {', '.join(ATTACKS)}, got {method!r}")
    if method == "PGD" and int(steps) < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return 1 if method == "FGSM" else int(steps)


def attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    mean: Sequence[float],
    std: Sequence[float],
    method: str = "FGSM",
    steps: int = 10,
    step_size: float | None = None,
    targeted: bool = False,
    callback: Callable[[int, int], bool | None] | None = None,
) -> AttackResult:
    """Return adversarial versions of ``images`` within ``eps`` of them (L-infinity).

    images: (N, C, H, W) pixel values in [0, 1], on any device. labels: (N,) class indices: the
    classes to move away from, or with ``targeted`` the classes to move towards. method: "FGSM"
    (one step of eps) or "PGD" (``steps`` steps of ``step_size``, default 2.5 * eps / steps as
    Madry et al. use, starting at the image). ``callback(step, steps)`` after each step may
    return False to stop early. Raises ValueError for bad arguments.
    """
    _check(images, labels, eps)
    n_steps = _step_count(method, steps)
    alpha = eps if method == "FGSM" else (2.5 * eps / n_steps if step_size is None else step_size)
    if alpha < 0:
        raise ValueError(f"step_size must not be negative, got {step_size}")
    device = model_device(model)
    normalise = _normaliser(mean, std, device)
    clean = images.detach().to(device, torch.float32)  # (N, C, H, W)
    y = labels.to(device)
    adversarial, losses = _perturb(
        model, normalise, clean, y, eps, alpha, n_steps, targeted=targeted, callback=callback
    )
    with torch.inference_mode():
        clean_probs = torch.softmax(model(normalise(clean)).float(), dim=1)  # (N, classes)
        logits = model(normalise(adversarial)).float()
        adversarial_probs = torch.softmax(logits, dim=1)
        losses.append(float(F.cross_entropy(logits, y)))
    return AttackResult(
        adversarial.cpu(),
        (adversarial - clean).cpu(),
        clean_probs.cpu(),
        adversarial_probs.cpu(),
        losses,
    )


def _perturb(
    model: nn.Module,
    normalise: Callable[[torch.Tensor], torch.Tensor],
    clean: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    n_steps: int,
    *,
    targeted: bool = False,
    callback: Callable[[int, int], bool | None] | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """Return (the adversarial pixels (N, C, H, W), the loss before each step)."""
    sign = -1.0 if targeted else 1.0  # towards the target: descend its loss
    adversarial, losses = clean.clone(), []
    if eps == 0:  # nothing may move
        return adversarial, losses
    for step in range(1, n_steps + 1):
        x = adversarial.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(normalise(x)).float(), y)
            (grad,) = torch.autograd.grad(loss, x)  # (N, C, H, W)
        losses.append(float(loss.detach()))
        adversarial = adversarial + sign * alpha * grad.sign()
        # project into the eps-ball around the image, then into the pixel range
        adversarial = torch.clamp(adversarial, clean - eps, clean + eps).clamp(0.0, 1.0)
        if callback is not None and callback(step, n_steps) is False:
            break
    return adversarial.detach(), losses


def accuracy_under_attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps_values: Sequence[float],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    method: str = "FGSM",
    steps: int = 10,
    batch_size: int = 128,
    callback: Callable[[int, int], bool | None] | None = None,
) -> list[float]:
    """Return the model's accuracy (a share in [0, 1]) on ``images`` attacked at each of
    ``eps_values`` (untargeted, the labels' loss raised), in that order.

    images: (N, C, H, W) pixel values in [0, 1]; labels (N,). eps 0 gives the clean accuracy.
    ``callback(done, total)`` counts (eps, batch) pairs and may return False to stop: the
    accuracies of the eps values finished are returned.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    _check(images, labels, max((float(e) for e in eps_values), default=0.0))
    n_steps = _step_count(method, steps)
    device = model_device(model)
    normalise = _normaliser(mean, std, device)
    batches = range(0, len(images), batch_size)
    total, done, accuracies = len(eps_values) * len(batches), 0, []
    for eps in eps_values:
        alpha = eps if method == "FGSM" else 2.5 * eps / n_steps
        correct = 0
        for start in batches:
            x = images[start : start + batch_size].detach().to(device, torch.float32)
            y = labels[start : start + batch_size].to(device)
            adversarial, _ = _perturb(model, normalise, x, y, float(eps), alpha, n_steps)
            with torch.inference_mode():
                correct += int((model(normalise(adversarial)).argmax(1) == y).sum())
            done += 1
            if callback is not None and callback(done, total) is False:
                return accuracies
        accuracies.append(correct / len(images))
    return accuracies
