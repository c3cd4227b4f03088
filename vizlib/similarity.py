"""How alike two layers' representations are: linear centred kernel alignment (CKA).

CKA (Kornblith, Norouzi, Lee and Hinton, "Similarity of neural network representations
revisited", ICML 2019) compares two layers through the images they are shown: each layer's
features of n images give an n x n Gram matrix K = X X^T, and

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),

a number in [0, 1] that does not change when either layer's features are rotated, scaled as a
whole or shifted, yet does change under any other linear map. It needs no correspondence
between the layers' units, so a convolution can be compared with a transformer block (Raghu et
al., "Do Vision Transformers see like convolutional neural networks?", NeurIPS 2021).

Over many images the Gram matrices would not fit, so the HSICs are accumulated over minibatches
with the unbiased estimator of Song et al. (JMLR 2012), as Nguyen, Raghu and Kornblith do ("Do
wide and deep networks learn the same things?", ICLR 2021): the estimate does not depend on the
batch size, and only one n x n matrix per layer is held at a time. Each layer's Gram matrix is
computed inside its forward hook, so no activation outlives its layer's call; hooks go through
``vizlib._hooks.forward_hooks`` (this thread's passes only, always removed).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ._hooks import forward_hooks
from .device import resolve_device
from .embedding import INPUT_LAYER, _is_vit, embedding_layers

__all__ = [
    "GRANULARITIES",
    "MIN_IMAGES",
    "OUTPUT_LAYER",
    "TOKEN_MODES",
    "CKAAccumulator",
    "LayerSimilarity",
    "cka",
    "gram_linear",
    "has_tokens",
    "hsic_unbiased",
    "layer_grams",
    "layer_similarity",
    "similarity_layers",
]

OUTPUT_LAYER = "output"  # pseudo layer name: what the model returns (the logits)
GRANULARITIES = ("blocks", "all")
TOKEN_MODES = ("all", "class")  # a ViT layer's (B, T, D) output: every token, or token 0
_SKIPPED = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
MIN_IMAGES = 4  # in a minibatch: the unbiased HSIC divides by n (n - 3)
CONSTANT_RTOL = 1e-5  # a feature whose images differ by at most this share of its size is constant


# ----------------------------------------------------------------------------- the statistics


def _features(output: torch.Tensor, tokens: str) -> torch.Tensor:
    """Return (B, F) float32 features of a layer's output, centred over the batch.

    A (B, T, D) output is a ViT's tokens: all of them flattened, or the class token (token 0).
    The centring changes no linear-kernel HSIC (see ``hsic_unbiased``) but keeps float32
    Gram matrices of large positive features (after a ReLU) from losing their digits.
    """
    if tokens not in TOKEN_MODES:
        raise ValueError(f"tokens must be one of {', '.join(TOKEN_MODES)}, got {tokens!r}")
    if tokens == "class" and output.ndim == 3:
        output = output[:, 0]
    x = output.detach().flatten(1).float()
    centred = x - x.mean(dim=0, keepdim=True)
    # A layer the same for every image up to float32 rounding (a ViT's class token before the
    # first attention: 2.5e-7 of its size apart) is constant: exactly, so that its CKA is NaN
    # rather than its rounding noise against the other layers (which read as CKA 0, unrelated).
    if (centred.abs().amax(dim=0) <= CONSTANT_RTOL * x.abs().amax(dim=0)).all():
        centred.zero_()
    return centred


def gram_linear(features: torch.Tensor, *, tokens: str = "all") -> torch.Tensor:
    """Return the linear-kernel Gram matrix (n, n) float64 of features (n, ...) of n images.

    The features are flattened per image (a ViT's tokens: see ``_features``) and centred over
    the n images first, which changes no CKA.
    """
    x = _features(torch.as_tensor(features), tokens)
    return (x @ x.T).double()


def hsic_unbiased(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Return the unbiased HSIC estimates of every pair of Gram matrices.

    K: (a, n, n) or (n, n), L: (b, n, n) or (n, n), symmetric, n >= 4. Returns (a, b) (a scalar
    for two single matrices): Song et al. (2012), eq. 5,

        HSIC_1 = [tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~ L~1] / (n (n-3)),

    with K~, L~ the matrices with their diagonals set to zero. It is the U-statistic of the
    population HSIC, so its mean over minibatches is an unbiased estimate whatever their size;
    for linear kernels it is unchanged by shifting either set of features.
    """
    single = K.ndim == 2 and L.ndim == 2
    K = K[None] if K.ndim == 2 else K
    L = L[None] if L.ndim == 2 else L
    n = K.shape[-1]
    if n < MIN_IMAGES or L.shape[-1] != n:
        raise ValueError(
            f"need Gram matrices of the same n >= {MIN_IMAGES}, got {n}, {L.shape[-1]}"
        )
    eye = torch.eye(n, dtype=torch.bool, device=K.device)
    K = K.double().masked_fill(eye, 0)
    L = L.double().to(K.device).masked_fill(eye, 0)
    trace = torch.einsum("inm,jnm->ij", K, L)  # tr(K~ L~) of symmetric matrices
    k_rows, l_rows = K.sum(dim=2), L.sum(dim=2)  # (a, n), (b, n): K~ 1 and L~ 1
    totals = k_rows.sum(dim=1)[:, None] * l_rows.sum(dim=1)[None, :] / ((n - 1) * (n - 2))
    cross = k_rows @ l_rows.T * (2 / (n - 2))  # 1' K~ L~ 1 = (K~ 1) . (L~ 1)
    hsic = (trace + totals - cross) / (n * (n - 3))
    return hsic[0, 0] if single else hsic


def cka(x, y, *, unbiased: bool = False, tokens: str = "all") -> float:
    """Return the linear CKA of two layers' features of the same n images, x (n, ...), y (n, ...).

    Biased (default, Kornblith et al. 2019, eq. 5): ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F) of
    the centred features; unbiased: from ``hsic_unbiased``. NaN when either layer is constant
    over the images.
    """
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} images but y has {y.shape[0]}")
    K, L = gram_linear(x, tokens=tokens), gram_linear(y, tokens=tokens)
    if unbiased:
        kl, kk, ll = (float(hsic_unbiased(a, b)) for a, b in ((K, L), (K, K), (L, L)))
    else:  # K and L are centred already: HSIC = tr(K L) up to a factor that cancels
        kl, kk, ll = float((K * L).sum()), float((K * K).sum()), float((L * L).sum())
    denominator = math.sqrt(kk * ll) if kk > 0 and ll > 0 else 0.0
    return kl / denominator if denominator > 0 else float("nan")


@dataclass
class CKAAccumulator:
    """Minibatch CKA of every layer of one set against every layer of another.

    ``add(grams_a, grams_b)`` takes one minibatch's Gram matrices, (a, n, n) and (b, n, n) of
    the same n images (pass the same tensor twice for a set against itself);
    ``matrix()`` returns the (a, b) CKA of the HSICs summed so far (Nguyen et al. 2021, eq. 2):
    NaN for a layer constant over every batch.
    """

    cross: torch.Tensor | None = None  # (a, b) summed HSIC_1(K_i, L_j)
    self_a: torch.Tensor | None = None  # (a,) summed HSIC_1(K_i, K_i)
    self_b: torch.Tensor | None = None  # (b,)
    batches: int = 0
    images: int = 0

    def add(self, grams_a: torch.Tensor, grams_b: torch.Tensor) -> None:
        same = grams_b is grams_a
        cross = hsic_unbiased(grams_a, grams_b).cpu()
        self_a = torch.diagonal(cross).clone() if same else _self_hsic(grams_a)
        self_b = self_a if same else _self_hsic(grams_b)
        if self.cross is None:  # copies: with ``same``, self_a and self_b are one tensor
            self.cross, self.self_a, self.self_b = cross, self_a.clone(), self_b.clone()
        else:
            self.cross += cross
            self.self_a += self_a
            self.self_b += self_b
        self.batches += 1
        self.images += grams_a.shape[-1]

    def matrix(self) -> np.ndarray:
        if self.cross is None:
            raise ValueError("no batch was added")
        scale = torch.sqrt(self.self_a.clamp(min=0)[:, None] * self.self_b.clamp(min=0)[None, :])
        values = self.cross / scale
        values[scale <= 0] = float("nan")
        return values.numpy()


def _self_hsic(grams: torch.Tensor) -> torch.Tensor:
    """HSIC_1(K_i, K_i) of each of (a, n, n) Gram matrices: (a,) on the CPU."""
    eye = torch.eye(grams.shape[-1], dtype=torch.bool, device=grams.device)
    K = grams.double().masked_fill(eye, 0)
    n = K.shape[-1]
    rows = K.sum(dim=2)  # (a, n)
    trace = (K * K).sum(dim=(1, 2))
    totals = rows.sum(dim=1) ** 2 / ((n - 1) * (n - 2))
    cross = (rows * rows).sum(dim=1) * (2 / (n - 2))
    return ((trace + totals - cross) / (n * (n - 3))).cpu()


# ----------------------------------------------------------------------------- the layers


def _modules(model: nn.Module) -> dict[str, nn.Module]:
    return {name: module for name, module in model.named_modules() if name}


def _label(name: str, call: int, calls: int) -> str:
    """A layer's name; a module called more than once in a pass names its call (1-based)."""
    return name if calls == 1 else f"{name} (call {call + 1})"


def _parse_label(label: str) -> tuple[str, int]:
    if label.endswith(")") and " (call " in label:
        name, call = label[:-1].rsplit(" (call ", 1)
        return name, int(call) - 1
    return label, 0


def _first_tensor(output: object) -> torch.Tensor | None:
    while isinstance(output, tuple | list) and output:
        output = output[0]
    return output if isinstance(output, torch.Tensor) else None


def has_tokens(model: nn.Module) -> bool:
    """Return whether the model is a Vision Transformer, whose layers put out (B, T, D) tokens:
    the choice of ``tokens`` ("all" or "class") matters for it."""
    return _is_vit(model)


def similarity_layers(
    model: nn.Module,
    example: torch.Tensor,
    granularity: str = "blocks",
    *,
    tokens: str = "all",
) -> list[str]:
    """Return the layers to compare, in the order their outputs are computed.

    ``"blocks"``: ``vizlib.embedding.embedding_layers`` (the input, each stage or ViT block, the
    penultimate layer) and the model's output. ``"all"``: every module's output in one forward
    pass of ``example`` (a few images, (B, C, H, W) as the model expects), skipping any whose
    Gram matrix equals that of the layer kept just before it (dropout and identity, flattening,
    a container that returns its last child's output): it would repeat its row. A module called
    more than once in a pass (a ResNet block's ReLU) is one layer per call, "name (call k)".
    The input comes first either way.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}")
    if granularity == "blocks":
        return [*embedding_layers(model), OUTPUT_LAYER]
    example = example[: max(2, min(len(example), 8))].to(_device_of(model))
    grams: list[tuple[str, torch.Tensor]] = []  # (name, Gram) in completion order, every call

    def hook(name: str) -> Callable:
        def record(module, inputs, output) -> None:
            out = _first_tensor(output)
            if (
                out is not None
                and out.shape[0] == len(example)
                and not isinstance(module, _SKIPPED)
            ):
                grams.append((name, gram_linear(out, tokens=tokens)))

        return record

    with forward_hooks([(m, hook(n)) for n, m in _modules(model).items()]), torch.no_grad():
        model(example)
    calls: dict[str, int] = {}
    for name, _ in grams:
        calls[name] = calls.get(name, 0) + 1
    kept = [INPUT_LAYER]
    last = gram_linear(example)
    seen: dict[str, int] = {}
    for name, gram in grams:
        call = seen.get(name, 0)
        seen[name] = call + 1
        if torch.allclose(gram, last, rtol=1e-5, atol=1e-8 * float(last.abs().max())):
            continue  # the same representation as the layer before it
        kept.append(_label(name, call, calls[name]))
        last = gram
    return kept


def _device_of(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def layer_grams(
    model: nn.Module, images: torch.Tensor, layers: Sequence[str], *, tokens: str = "all"
) -> torch.Tensor:
    """Return the Gram matrices (len(layers), n, n) float64 of n images (n, C, H, W) at each
    layer, on the model's device, from one forward pass without gradients.

    ``layers`` as ``similarity_layers`` names them (also "input" and "output"). Each Gram
    matrix is computed in its layer's hook, at the call named, before any in-place operation
    after it (a ReLU) changes the output. ``ValueError`` for a name the model lacks or a layer
    the pass never reached.
    """
    modules = _modules(model)
    wanted: dict[str, dict[int, int]] = {}  # module -> call -> row
    for row, label in enumerate(layers):
        if label in (INPUT_LAYER, OUTPUT_LAYER):
            continue
        name, call = _parse_label(label)
        if name not in modules:
            raise ValueError(f"the model has no layer {label!r}")
        wanted.setdefault(name, {})[call] = row
    device = _device_of(model)
    images = images.to(device)
    n = len(images)
    grams = torch.full((len(layers), n, n), float("nan"), dtype=torch.float64, device=device)
    filled = torch.zeros(len(layers), dtype=torch.bool)
    calls: dict[str, int] = {}

    def hook(name: str) -> Callable:
        def record(module, inputs, output) -> None:
            call = calls.get(name, 0)
            calls[name] = call + 1
            row = wanted[name].get(call)
            out = _first_tensor(output)
            if row is not None and out is not None:
                grams[row] = gram_linear(out, tokens=tokens)
                filled[row] = True

        return record

    with forward_hooks([(modules[n], hook(n)) for n in wanted]), torch.no_grad():
        output = _first_tensor(model(images))
    for row, label in enumerate(layers):
        if label == INPUT_LAYER:
            grams[row], filled[row] = gram_linear(images), True
        elif label == OUTPUT_LAYER and output is not None:
            grams[row], filled[row] = gram_linear(output, tokens=tokens), True
    missing = [label for label, done in zip(layers, filled.tolist(), strict=True) if not done]
    if missing:
        raise ValueError(f"the forward pass never reached {', '.join(missing)}")
    return grams


# ----------------------------------------------------------------------------- two models


@dataclass
class LayerSimilarity:
    """What ``layer_similarity`` returns: ``matrix`` (len(layers_a), len(layers_b)) CKA in
    [0, 1] of ``images`` images in ``batches`` minibatches, NaN where a layer is constant over
    the images or, listed in ``nonfinite_a`` / ``nonfinite_b``, put out NaN or infinite values."""

    matrix: np.ndarray
    layers_a: list[str]
    layers_b: list[str]
    images: int
    batches: int
    seconds: float = 0.0
    nonfinite_a: list[str] = field(default_factory=list)
    nonfinite_b: list[str] = field(default_factory=list)


def _batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Split n images into runs of nearly equal size, none below MIN_IMAGES nor over batch_size."""
    if n < MIN_IMAGES:
        raise ValueError(f"CKA needs at least {MIN_IMAGES} images, got {n}")
    count = max(1, math.ceil(n / max(batch_size, MIN_IMAGES)))
    count = min(count, n // MIN_IMAGES)
    edges = np.linspace(0, n, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def layer_similarity(
    model_a: nn.Module,
    images_a: torch.Tensor,
    layers_a: Sequence[str],
    model_b: nn.Module | None = None,
    images_b: torch.Tensor | None = None,
    layers_b: Sequence[str] | None = None,
    *,
    tokens: str = "all",
    batch_size: int = 64,
    device: str | torch.device | None = None,
    lock_a: contextlib.AbstractContextManager | None = None,
    lock_b: contextlib.AbstractContextManager | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LayerSimilarity:
    """Return the minibatch CKA of every layer of ``model_a`` against every layer of ``model_b``.

    images_a (N, C, H, W) as model_a expects them; images_b the same N images as model_b
    expects them (default: images_a). Without model_b the model is compared with itself (one
    pass per batch). The models stay where they are; each batch goes to ``device`` (default:
    model_a's). ``lock_a`` / ``lock_b`` are held around each of that model's passes (the app's
    shared models), never both at once. ``progress(done, total)`` after each batch.
    """
    import time

    start = time.perf_counter()
    same = model_b is None
    images_b = images_a if images_b is None else images_b
    if len(images_a) != len(images_b):
        raise ValueError(f"the two sets differ in size: {len(images_a)} and {len(images_b)} images")
    for images in (images_a, images_b):
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    if not layers_a or (not same and not layers_b):
        raise ValueError("Choose at least one layer of each model.")
    target = resolve_device(device) if device is not None else _device_of(model_a)
    accumulator = CKAAccumulator()
    runs = _batches(len(images_a), batch_size)
    broken_a = torch.zeros(len(layers_a), dtype=torch.bool)  # a non-finite Gram in some batch
    broken_b = torch.zeros(len(layers_a if same else layers_b), dtype=torch.bool)
    for done, (lo, hi) in enumerate(runs, start=1):
        with lock_a or contextlib.nullcontext():
            grams_a = layer_grams(model_a, images_a[lo:hi], layers_a, tokens=tokens).to(target)
        if same:
            grams_b = grams_a
        else:
            with lock_b or contextlib.nullcontext():
                grams_b = layer_grams(model_b, images_b[lo:hi], layers_b, tokens=tokens).to(target)
        broken_a |= ~torch.isfinite(grams_a).all(dim=(1, 2)).cpu()
        broken_b |= ~torch.isfinite(grams_b).all(dim=(1, 2)).cpu()
        accumulator.add(grams_a, grams_b)
        if progress is not None:
            progress(done, len(runs))
    return LayerSimilarity(
        matrix=accumulator.matrix(),
        layers_a=list(layers_a),
        layers_b=list(layers_a if same else layers_b),
        images=accumulator.images,
        batches=accumulator.batches,
        seconds=time.perf_counter() - start,
        nonfinite_a=[name for name, bad in zip(layers_a, broken_a.tolist(), strict=True) if bad],
        nonfinite_b=[
            name
            for name, bad in zip(layers_a if same else layers_b, broken_b.tolist(), strict=True)
            if bad
        ],
    )
