"""How far a classifier's confidence can be trusted: its answers over a set of images, reliability
bins and the expected calibration error, temperature scaling, and per-class scores.

A model is calibrated when, of the answers it gives with confidence 0.8, 80% are right. Guo, Pleiss,
Sun and Weinberger ("On calibration of modern neural networks", ICML 2017) measure the gap by
sorting the answers into M equal-width bins of confidence, B_m = ((m-1)/M, m/M]:

    ECE = sum_m |B_m| / n * |accuracy(B_m) - confidence(B_m)|,

and show that one scalar, a temperature T dividing every logit before the softmax and fitted by
maximum likelihood on held-out images, removes most of it without changing a single answer
(dividing all logits by T > 0 keeps their order). The negative log-likelihood is convex in
beta = 1/T (its second derivative is the variance of the logit under the softmax), so the fit here
is a bisection on the sign of its derivative: exact to the tolerance, no learning rate.

Fitting T on the images it is then scored on flatters it; ``cross_fitted_temperatures`` gives
each image the temperature fitted on the other folds only.

Calibration measured on the test split says little about images unlike it: ``corrupt_images``
rotates, blurs and adds noise (in the spirit of Hendrycks and Dietterich's ImageNet-C, 2019), and
Ovadia et al. ("Can you trust your model's uncertainty?", NeurIPS 2019) found accuracy falling
faster than confidence as such shifts grow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchvision.transforms.v2 import functional as tvf

from .data import denormalize
from .features import model_device

__all__ = [
    "TEMPERATURE_BOUNDS",
    "Reliability",
    "class_logits",
    "class_scores",
    "corrupt_images",
    "coverage_curve",
    "cross_fitted_temperatures",
    "fit_temperature",
    "match_classes",
    "negative_log_likelihood",
    "reliability",
    "summarize",
    "top_k_accuracy",
]

TEMPERATURE_BOUNDS = (0.01, 100.0)  # the fit's range of T; a fit at a bound says so


def class_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 256,
    progress: Callable[[int, int], bool | None] | None = None,
) -> torch.Tensor:
    """Return the model's logits (N, K) float32 on the CPU for ``images`` (N, C, H, W), normalised
    as the model expects, in batches on the model's own device.

    The model is only called (no hook, no change of mode: a shared model stays as it is).
    ``progress(done, total)`` is called after each batch with images done so far and may return
    False to stop: the logits of the batches done are returned.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = model_device(model)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)  # (B, C, H, W)
            out = model(batch)
            if out.ndim != 2 or out.shape[0] != len(batch):
                raise ValueError(
                    f"the model returned shape {tuple(out.shape)} for {len(batch)} images; "
                    "a classifier's (B, classes) logits are needed"
                )
            chunks.append(out.float().cpu())  # (B, K)
            done = start + len(batch)
            if progress is not None and progress(done, len(images)) is False:
                break
    if not chunks:
        return torch.zeros(0, 0)
    return torch.cat(chunks)


def corrupt_images(
    images: torch.Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    rotation: float = 0.0,
    blur: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> torch.Tensor:
    """Return ``images`` (N, C, H, W), normalised with ``mean``/``std``, shifted away from the
    data the model was trained on, normalised again: in pixel space, rotated by ``rotation``
    degrees anticlockwise about the centre (bilinear, the corners filled with black), blurred by
    a Gaussian of ``blur`` pixels' standard deviation (kernel 2 ceil(3 blur) + 1 wide, edges
    mirrored), then given Gaussian noise of standard deviation ``noise`` (pixel values in [0, 1];
    drawn from a generator seeded with ``seed``, the same for every call) and clipped to [0, 1].
    All zero, the images come back unchanged.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    for name, value, most in (("rotation", abs(rotation), 360.0), ("blur", blur, 20.0),
                              ("noise", noise, 10.0)):  # fmt: skip
        if not (np.isfinite(value) and 0 <= value <= most):
            raise ValueError(f"{name} must be a number between 0 and {most}, got {value}")
    if np.ceil(3 * blur) >= min(images.shape[-2:]):
        raise ValueError(
            f"a blur of {blur} pixels needs images larger than {int(np.ceil(3 * blur))} pixels "
            f"a side, got {tuple(images.shape[-2:])}"
        )
    if rotation == 0 and blur == 0 and noise == 0:
        return images
    x = denormalize(images, mean, std)  # (N, C, H, W) pixel values in [0, 1]
    if rotation:
        x = tvf.rotate(x, float(rotation), interpolation=tvf.InterpolationMode.BILINEAR)
    if blur:
        size = 2 * int(np.ceil(3 * blur)) + 1
        x = tvf.gaussian_blur(x, kernel_size=[size, size], sigma=[float(blur), float(blur)])
    if noise:
        generator = torch.Generator().manual_seed(seed)
        draw = torch.randn(x.shape, generator=generator, dtype=torch.float32)
        x = (x + noise * draw.to(x.device)).clamp(0, 1)
    m = torch.tensor([float(v) for v in mean], device=x.device).view(-1, 1, 1)
    s = torch.tensor([float(v) for v in std], device=x.device).view(-1, 1, 1)
    return (x - m) / s


def _labels(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (n,):
        raise ValueError(f"{n} images need {n} labels, got shape {labels.shape}")
    return labels


def _logits(logits) -> np.ndarray:
    """logits as float64 (N, K), checked finite."""
    z = np.asarray(torch.as_tensor(logits).detach().cpu(), dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"logits must be (N, classes), got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("the logits hold NaN or infinite values: there is nothing to calibrate")
    return z


def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def negative_log_likelihood(logits, labels, *, temperature: float | np.ndarray = 1.0) -> float:
    """Return the mean negative log-likelihood (nats) of the true classes under
    softmax(logits / temperature); logits (N, K), labels (N,) class indices, temperature one
    number or one per image (N,) (as ``cross_fitted_temperatures`` gives)."""
    z = _logits(logits)
    y = _labels(labels, len(z))
    t = np.asarray(temperature, dtype=np.float64)
    if t.ndim > 1 or (t.ndim == 1 and t.shape != (len(z),)) or not (t > 0).all():
        raise ValueError(f"the temperature must be positive, one number or one per image: {t}")
    t = t[:, None] if t.ndim == 1 else t  # (N, 1) or a scalar
    return float(-_log_softmax(z / t)[np.arange(len(z)), y].mean())


def _nll_slope(z: np.ndarray, y: np.ndarray, beta: float) -> float:
    """d/d beta of the mean NLL of softmax(beta z): E_p[z] - z_y averaged, increasing in beta."""
    p = np.exp(_log_softmax(beta * z))  # (N, K)
    return float(((p * z).sum(axis=1) - z[np.arange(len(z)), y]).mean())


def fit_temperature(
    logits, labels, *, bounds: tuple[float, float] = TEMPERATURE_BOUNDS, tol: float = 1e-7
) -> float:
    """Return the temperature T in ``bounds`` that minimises the mean NLL of softmax(logits / T)
    over (logits (N, K), labels (N,)): Guo et al.'s temperature scaling.

    T > 1 softens an overconfident model, T < 1 sharpens an underconfident one. Where the NLL
    still falls at a bound (every image right by a growing margin as T -> 0, or logits that do
    not depend on the image), that bound is returned.
    """
    z = _logits(logits)
    y = _labels(labels, len(z))
    if len(z) == 0:
        raise ValueError("no images to fit a temperature on")
    low, high = 1.0 / bounds[1], 1.0 / bounds[0]  # beta = 1 / T
    if _nll_slope(z, y, low) >= 0:
        return float(bounds[1])
    if _nll_slope(z, y, high) <= 0:
        return float(bounds[0])
    # bisection in log beta: the bounds span four orders of magnitude
    a, b = np.log(low), np.log(high)
    while b - a > tol:
        mid = 0.5 * (a + b)
        if _nll_slope(z, y, float(np.exp(mid))) < 0:
            a = mid
        else:
            b = mid
    return float(1.0 / np.exp(0.5 * (a + b)))


def cross_fitted_temperatures(
    logits, labels, *, folds: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return (each image's temperature (N,), each fold's temperature (folds,)): the images are
    dealt into ``folds`` seeded random folds of near-equal size, and fold f's images get the
    temperature fitted on the other folds' images only, so scaling is judged on images it never
    saw."""
    z = _logits(logits)
    y = _labels(labels, len(z))
    if not 2 <= folds <= len(z):
        raise ValueError(f"folds must be between 2 and the {len(z)} images, got {folds}")
    fold_of = np.empty(len(z), dtype=np.int64)
    fold_of[np.random.default_rng(seed).permutation(len(z))] = np.arange(len(z)) % folds
    per_fold = np.array([fit_temperature(z[fold_of != f], y[fold_of != f]) for f in range(folds)])
    return per_fold[fold_of], per_fold


@dataclass(frozen=True)
class Reliability:
    """Answers sorted into equal-width bins of confidence ((m-1)/M, m/M], m = 1..M (a confidence
    of exactly 0 goes in the first): per bin, how many, their mean confidence and their accuracy
    (NaN for an empty bin)."""

    edges: np.ndarray  # (M + 1,) from 0 to 1
    counts: np.ndarray  # (M,) int64
    confidence: np.ndarray  # (M,) mean confidence, NaN where empty
    accuracy: np.ndarray  # (M,) share right, NaN where empty

    @property
    def gaps(self) -> np.ndarray:
        """(M,) accuracy - confidence: negative where the model is overconfident, NaN if empty."""
        return self.accuracy - self.confidence

    @property
    def ece(self) -> float:
        """Expected calibration error: the bins' |gap| weighted by their share of the answers."""
        full = self.counts > 0
        if not full.any():
            return float("nan")
        return float((self.counts[full] * np.abs(self.gaps[full])).sum() / self.counts.sum())

    @property
    def mce(self) -> float:
        """Maximum calibration error: the largest |gap| over the non-empty bins."""
        full = self.counts > 0
        return float(np.abs(self.gaps[full]).max()) if full.any() else float("nan")


def reliability(confidence, correct, *, n_bins: int = 15) -> Reliability:
    """Return the Reliability bins of answers given with ``confidence`` (N,) in [0, 1], each
    ``correct`` (N,) or not, in ``n_bins`` equal-width bins (Guo et al. use 15)."""
    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    if conf.ndim != 1 or right.shape != conf.shape:
        raise ValueError(f"confidence and correct must be (N,) alike: {conf.shape}, {right.shape}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    if conf.size and not (np.isfinite(conf).all() and conf.min() >= 0 and conf.max() <= 1):
        raise ValueError("confidences must be numbers in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bins closed on the right: a confidence on an edge belongs to the bin below it
    bin_of = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(bin_of, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bin_of, weights=conf, minlength=n_bins) / counts
        accuracy = np.bincount(bin_of, weights=right.astype(np.float64), minlength=n_bins) / counts
    return Reliability(edges, counts.astype(np.int64), mean_conf, accuracy)


def coverage_curve(confidence, correct) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (coverage (N,), accuracy (N,), threshold (N,)): answering only the k most confident
    images, k = 1..N, the share answered, the accuracy of those answers and the lowest confidence
    among them (ties broken by index, the earlier image first)."""
    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    if conf.ndim != 1 or right.shape != conf.shape:
        raise ValueError(f"confidence and correct must be (N,) alike: {conf.shape}, {right.shape}")
    order = np.argsort(-conf, kind="stable")  # (N,) most confident first
    k = np.arange(1, len(conf) + 1)
    return k / max(len(conf), 1), np.cumsum(right[order]) / k, conf[order]


def top_k_accuracy(logits, labels, k: int) -> float:
    """Return the share of images whose true class is among the ``k`` largest logits (ties
    counted in the true class's favour only when strictly fewer than k classes are larger)."""
    z = _logits(logits)
    y = _labels(labels, len(z))
    if not 1 <= k <= z.shape[1]:
        raise ValueError(f"k must be between 1 and the {z.shape[1]} classes, got {k}")
    larger = (z > z[np.arange(len(z)), y][:, None]).sum(axis=1)  # (N,) classes above the truth
    return float((larger < k).mean()) if len(z) else float("nan")


def class_scores(labels, predicted, *, num_classes: int) -> dict[str, np.ndarray]:
    """Return per class (K,) arrays: ``support`` (images of the class), ``predicted`` (answers of
    the class), ``precision`` (NaN where never answered), ``recall`` (NaN where no images) and
    ``f1`` (NaN where neither)."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if labels.shape != predicted.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and predicted must be (N,) alike: {labels.shape}, {predicted.shape}"
        )
    right = np.bincount(labels[labels == predicted], minlength=num_classes)[:num_classes]
    support = np.bincount(labels, minlength=num_classes)[:num_classes]
    answered = np.bincount(predicted, minlength=num_classes)[:num_classes]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(answered > 0, right / answered, np.nan)
        recall = np.where(support > 0, right / support, np.nan)
        # 2 TP / (2 TP + FP + FN): 0 for a class never answered right, NaN only for one absent
        # from both the images and the answers
        f1 = np.where(support + answered > 0, 2 * right / (support + answered), np.nan)
    return {
        "support": support,
        "predicted": answered,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def _class_key(name: str) -> str:
    """'Golden_Retriever', 'golden-retriever' and ' golden retriever ' all read 'golden retriever'."""
    return re.sub(r"[\s_\-]+", " ", str(name)).strip().casefold()


def match_classes(names: Sequence[str], model_classes: Sequence[str]) -> np.ndarray:
    """Return (len(names),) int64: for each class name of an image set (an image folder's
    sub-folders), the index of the model class of the same name, or -1 where the model has none.

    Names match ignoring case and the difference between spaces, underscores and hyphens.
    """
    index = {}
    for i, name in enumerate(model_classes):
        index.setdefault(_class_key(name), i)  # ImageNet has two 'crane's: the first wins
    return np.array([index.get(_class_key(n), -1) for n in names], dtype=np.int64)


def summarize(logits, labels, *, n_bins: int = 15) -> dict[str, float]:
    """Return a classifier's headline numbers over (logits (N, K), labels (N,)): ``accuracy``,
    ``top5`` (top-min(5, K) accuracy), ``mean_confidence``, ``ece`` over ``n_bins`` bins,
    ``temperature`` (``fit_temperature`` on all the images, NaN below 4 of them) and ``nll``
    (nats), so that models can be compared on the same images."""
    z = _logits(logits)
    y = _labels(labels, len(z))
    p = np.exp(_log_softmax(z))  # (N, K)
    confidence, right = p.max(axis=1), p.argmax(axis=1) == y
    return {
        "accuracy": float(right.mean()),
        "top5": top_k_accuracy(z, y, min(5, z.shape[1])),
        "mean_confidence": float(confidence.mean()),
        "ece": reliability(confidence, right, n_bins=n_bins).ece,
        "temperature": fit_temperature(z, y) if len(z) >= 4 else float("nan"),
        "nll": negative_log_likelihood(z, y),
    }
