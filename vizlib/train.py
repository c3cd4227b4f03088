"""Train a small model on the bundled digits and write ``checkpoints/<name>.safetensors`` + ``.json``.

    python -m vizlib.train --model lenet|resnet|vit --dataset digits [--epochs N --seed S]

AdamW with a warm-up then cosine learning-rate schedule, random shifts and small rotations as
augmentation, fixed seed, the GPU when present. The JSON sidecar holds everything needed to rebuild
the model without unpickling: architecture, config, dataset, input size, normalisation, class names,
test accuracy, epochs, seed, training time and device.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.datasets import dataset_normalization, load_dataset
from .device import describe_device, resolve_device
from .zoo import CHECKPOINT_DIR, build_model

__all__ = [
    "OPTIMIZERS",
    "RECIPES",
    "SCHEDULES",
    "EpochRecord",
    "Predictions",
    "TrainSettings",
    "augment",
    "confusion_matrix",
    "evaluate",
    "layer_groups",
    "misclassified",
    "position_embedding_structure",
    "predict_test_split",
    "train",
    "training_epochs",
    "weights_bytes",
]

# Per architecture: model config, input size (H, W) and optimiser settings.
RECIPES: dict[str, dict[str, Any]] = {
    "lenet": {
        "config": {"num_classes": 10},
        "input_size": (28, 28),
        "epochs": 30,
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "label_smoothing": 0.0,
        "batch_size": 64,
    },
    "resnet": {
        "config": {"in_channels": 1, "num_classes": 10, "widths": [16, 32, 64]},
        "input_size": (28, 28),
        "epochs": 20,
        "lr": 3e-3,
        "weight_decay": 5e-4,
        "label_smoothing": 0.0,
        "batch_size": 64,
    },
    "vit": {
        "config": {
            "image_size": 32,
            "patch_size": 4,
            "in_channels": 1,
            "num_classes": 10,
            "dim": 64,
            "depth": 4,
            "heads": 4,
            "mlp_dim": 128,
            "dropout": 0.0,
        },
        "input_size": (32, 32),
        "epochs": 200,
        "lr": 1e-3,
        "weight_decay": 0.05,
        "label_smoothing": 0.1,  # ViTs on small data overfit; softer targets help
        "batch_size": 64,
    },
}


def augment(
    images: torch.Tensor,
    *,
    background: float,
    max_shift: float = 0.1,
    max_degrees: float = 12.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return images (B, C, H, W) randomly shifted (up to ``max_shift`` of the size) and rotated.

    ``background`` is the normalised value of an empty pixel, used for the uncovered border.
    """
    b = images.shape[0]
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(max_degrees)  # (B,) rad
    shift = (
        (torch.rand(b, 2, generator=generator) * 2 - 1) * max_shift * 2
    )  # (B, 2) in [-1, 1] units
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    ).to(images)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
    out = F.grid_sample(images - background, grid, align_corners=False, padding_mode="zeros")
    return out + background  # (B, C, H, W)


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256
) -> float:
    """Return the accuracy (fraction in [0, 1]) of ``model`` on images (N, C, H, W), labels (N,)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        correct += int((model(x).argmax(1).cpu() == labels[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(images)


@torch.no_grad()
def position_embedding_structure(
    pos_embed: torch.Tensor, grid_size: tuple[int, int], *, num_prefix_tokens: int
) -> dict[str, float]:
    """Return mean cosine similarity of 4-neighbour patch position embeddings vs far-apart ones.

    ``pos_embed`` is (1, prefix + gh * gw, D); "far" means a grid distance of at least half the
    grid's side. 2-D structure shows as ``neighbour`` clearly above ``far``.
    """
    gh, gw = grid_size
    pe = F.normalize(pos_embed[0, num_prefix_tokens:].float(), dim=-1)  # (N, D)
    sim = pe @ pe.T  # (N, N)
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()], 1).float()  # (N, 2)
    dist = torch.cdist(coords, coords)  # (N, N) in patches
    neighbour = dist == 1
    far = dist >= max(gh, gw) / 2
    return {
        "neighbour_cosine": float(sim[neighbour].mean()),
        "far_cosine": float(sim[far].mean()),
    }


OPTIMIZERS = ("SGD", "SGD with momentum", "Adam", "AdamW")
SCHEDULES = ("constant", "warm-up + cosine")


@dataclass(frozen=True)
class TrainSettings:
    """How to train one of the RECIPES' architectures on a bundled dataset (``training_epochs``)."""

    architecture: str = "lenet"  # a key of RECIPES: lenet, resnet, vit
    optimizer: str = "AdamW"  # one of OPTIMIZERS (momentum 0.9 for "SGD with momentum")
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 1e-4  # on weight matrices and kernels only, never biases or norms
    batch_size: int = 64
    epochs: int = 10
    schedule: str = "warm-up + cosine"  # one of SCHEDULES
    augment: bool = True  # random shifts and rotations (``augment``)
    init_scale: float = 1.0  # every weight matrix and kernel times this after PyTorch's init
    label_smoothing: float = 0.0
    seed: int = 0

    @classmethod
    def recipe(cls, architecture: str, *, epochs: int | None = None, seed: int = 0):
        """Return the settings the shipped checkpoints of ``architecture`` were trained with."""
        if architecture not in RECIPES:
            raise ValueError(f"Unknown model {architecture!r}; choose from {', '.join(RECIPES)}.")
        r = RECIPES[architecture]
        return cls(
            architecture=architecture, optimizer="AdamW", lr=r["lr"],
            weight_decay=r["weight_decay"], batch_size=r["batch_size"],
            epochs=r["epochs"] if epochs is None else int(epochs), schedule="warm-up + cosine",
            augment=True, label_smoothing=r["label_smoothing"], seed=seed,
        )  # fmt: skip


@dataclass
class EpochRecord:
    """What one epoch of ``training_epochs`` did. Losses are cross-entropy (with the settings'
    label smoothing for the training steps, without it on the test split); accuracies are
    fractions; seconds of training alone (the two evaluations not counted)."""

    epoch: int  # 1 for the first
    step_losses: list[float]  # (steps,) each batch's loss, as the optimiser saw it
    grad_norms: list[float]  # (steps,) the global L2 norm of all gradients before the step
    lrs: list[float]  # (steps,) the learning rate of each step
    train_loss: float  # mean over the epoch's images (augmented, as trained)
    train_accuracy: float  # on the training split without augmentation, after the epoch
    test_loss: float
    test_accuracy: float
    seconds: float
    diverged: bool  # a loss that is not finite: training stops after this epoch (the losses
    # and accuracies after the epoch are then NaN)
    # per layer (``layer_groups``: name -> value, the model's order), means over the epoch's
    # steps where the value is finite (NaN if none is: a diverged epoch keeps its last
    # finite steps, so the explosion shows):
    layer_grad_norms: dict[str, float] = field(default_factory=dict)  # the L2 norm of the
    # layer's gradient before the step (all its parameters together, biases included)
    layer_update_ratios: dict[str, float] = field(default_factory=dict)  # |w_after - w_before|
    # / |w_before| over the layer's parameters: the step the optimiser took (learning rate,
    # momentum, Adam's scaling and weight decay all in it) relative to the weights; around
    # 1e-3 is the usual sign of a healthy rate, 1e-5 a layer that has stopped learning, 1e-1
    # one that is being thrown about. inf when the weights were all zero (NaN if the step was
    # zero too).


def layer_groups(model: nn.Module) -> dict[str, list[str]]:
    """Return the model's parameters grouped by layer: group name -> parameter names, in the
    order of ``model.named_parameters()``.

    A group is a top-level child module (``conv1``, ``fc2``, ``stem``, ``patch_embed``, ``norm``),
    except that a top-level container of blocks (a Sequential or ModuleList whose children have
    children, like a ResNet's ``layers`` or a ViT's ``blocks``) gives one group per block
    (``layers.0``, ``blocks.3``): one row per thing a lecturer would draw as a box, a residual
    block counted whole so its convolutions, norms and shortcut read as one unit. Parameters
    held by the model itself (a ViT's ``cls_token``, ``pos_embed``) are groups of their own.
    """
    blocks = {
        name
        for name, child in model.named_children()
        if isinstance(child, nn.Sequential | nn.ModuleList)
        and any(len(list(c.children())) for c in child.children())
    }
    groups: dict[str, list[str]] = {}
    for name, _ in model.named_parameters():
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] in blocks else parts[0]
        groups.setdefault(key, []).append(name)
    return groups


def _finite_mean(values: torch.Tensor) -> torch.Tensor:
    """(steps, G) -> (G,) the mean over the steps where the value is finite (NaN where none is)."""
    finite = torch.isfinite(values)
    return torch.where(finite, values, 0).sum(0) / finite.sum(0)


def _check_settings(settings: TrainSettings) -> None:
    if settings.architecture not in RECIPES:
        raise ValueError(
            f"Unknown model {settings.architecture!r}; choose from {', '.join(RECIPES)}."
        )
    if settings.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {settings.optimizer!r}; choose from {OPTIMIZERS}.")
    if settings.schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {settings.schedule!r}; choose from {SCHEDULES}.")
    if not (settings.lr > 0 and math.isfinite(settings.lr)):
        raise ValueError(f"The learning rate must be a positive number, got {settings.lr}.")
    if settings.batch_size < 1 or settings.epochs < 1:
        raise ValueError("The batch size and the number of epochs must be at least 1.")
    if settings.weight_decay < 0 or not 0 <= settings.label_smoothing < 1:
        raise ValueError("Weight decay must be >= 0 and label smoothing in [0, 1).")
    if not (settings.init_scale >= 0 and math.isfinite(settings.init_scale)):
        raise ValueError(f"init_scale must be a number >= 0, got {settings.init_scale}.")


def _optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "pos_embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or "pos_embed" in n]
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if settings.optimizer == "AdamW":
        return torch.optim.AdamW(groups, lr=settings.lr)
    if settings.optimizer == "Adam":  # weight decay as an L2 term in the gradient
        return torch.optim.Adam(groups, lr=settings.lr)
    momentum = 0.9 if settings.optimizer == "SGD with momentum" else 0.0
    return torch.optim.SGD(groups, lr=settings.lr, momentum=momentum)


@torch.no_grad()
def _loss_and_accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256
) -> tuple[float, float]:
    """Return (mean cross-entropy, accuracy) of ``model`` in eval mode over (N, C, H, W)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size].to(device))  # (B, classes)
        y = labels[start : start + batch_size].to(device)
        loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    return loss / len(images), correct / len(images)


def training_epochs(
    settings: TrainSettings,
    *,
    dataset: str = "digits",
    device: str | torch.device | None = None,
) -> Iterator[tuple[nn.Module, EpochRecord]]:
    """Train a fresh model as ``settings`` say; yield (the model, its EpochRecord) after each
    epoch, so a caller can draw, stop or save between epochs.

    The same settings and device give the same model: ``torch.manual_seed(settings.seed)``
    before the model is built, and a generator of that seed for the shuffles and augmentation
    (the caller's random stream is not restored). A loss that is not finite (too high a
    learning rate) ends the run after its epoch, with ``diverged`` set. The model is in train
    mode while it trains and in eval mode when yielded.
    """
    _check_settings(settings)
    recipe = RECIPES[settings.architecture]
    dev = resolve_device(device)
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)

    x_train, y_train, _ = load_dataset(dataset, "train", recipe["input_size"])
    x_test, y_test, _ = load_dataset(dataset, "test", recipe["input_size"])
    mean, std = dataset_normalization(dataset)
    background = -mean[0] / std[0]  # normalised value of a black pixel

    model = build_model(settings.architecture, recipe["config"]).to(dev)
    if settings.init_scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim > 1:
                    p.mul_(settings.init_scale)
    optimizer = _optimizer(model, settings)
    batch_size = settings.batch_size
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    total = settings.epochs * steps_per_epoch
    warmup = max(1, min(total // 10, 5 * steps_per_epoch))
    if settings.schedule == "warm-up + cosine":
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: (
                min(1.0, (step + 1) / warmup)
                * 0.5
                * (1 + math.cos(math.pi * min(1.0, step / total)))
            ),
        )
    else:
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    params = list(model.parameters())
    weights = [p.detach() for p in params]  # views of the parameters, for the update ratio
    groups = layer_groups(model)
    group_of = {n: g for g, names in enumerate(groups.values()) for n in names}
    # (params, G) one-hot: per-parameter squared norms @ this = per-layer squared norms
    membership = torch.zeros(len(params), len(groups), device=dev)
    for i, (n, _) in enumerate(model.named_parameters()):
        membership[i, group_of[n]] = 1.0

    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        # device scalars, read back once per epoch (a GPU sync per step would slow it down)
        losses, sizes, norms, lrs, layer_norms, layer_ratios = [], [], [], [], [], []
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x = x_train[idx]
            if settings.augment:
                x = augment(x, background=background, generator=generator)
            loss = loss_fn(model(x.to(dev)), y_train[idx].to(dev))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            lrs.append(optimizer.param_groups[0]["lr"])
            with torch.no_grad():
                # torch's foreach kernels (as clip_grad_norm_ uses): one call for all the
                # parameters instead of one per parameter (lenet: about half the overhead)
                grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
                grad_sq = torch.stack(torch._foreach_norm(grads)) ** 2  # (params,)
                norms.append(grad_sq.sum().sqrt())
                layer_norms.append((grad_sq @ membership).sqrt())  # (G,)
                before = torch._foreach_mul(weights, 1.0)  # copies of the weights
            optimizer.step()
            with torch.no_grad():
                step_sq = torch.stack(torch._foreach_norm(torch._foreach_sub(weights, before))) ** 2
                weight_sq = torch.stack(torch._foreach_norm(before)) ** 2  # (params,)
                layer_ratios.append(((step_sq @ membership) / (weight_sq @ membership)).sqrt())
            schedule.step()
            losses.append(loss.detach())
            sizes.append(len(idx))
        step_losses = torch.stack(losses).double().cpu()  # (steps,) each batch's mean loss
        seconds = time.perf_counter() - started
        train_loss = float((step_losses * torch.tensor(sizes)).sum()) / len(x_train)
        diverged = not math.isfinite(train_loss)
        if diverged:
            train_eval = test_eval = (math.nan, math.nan)
        else:
            train_eval = _loss_and_accuracy(model, x_train, y_train)
            test_eval = _loss_and_accuracy(model, x_test, y_test)
        model.eval()
        yield (
            model,
            EpochRecord(
                epoch=epoch,
                step_losses=step_losses.tolist(),
                grad_norms=torch.stack(norms).cpu().tolist(),
                layer_grad_norms=dict(
                    zip(groups, _finite_mean(torch.stack(layer_norms)).cpu().tolist(), strict=True)
                ),
                layer_update_ratios=dict(
                    zip(groups, _finite_mean(torch.stack(layer_ratios)).cpu().tolist(), strict=True)
                ),
                lrs=lrs,
                train_loss=train_loss,
                train_accuracy=train_eval[1],
                test_loss=test_eval[0],
                test_accuracy=test_eval[1],
                seconds=seconds,
                diverged=diverged,
            ),
        )
        if diverged:
            return


@dataclass(frozen=True)
class Predictions:
    """A model's answers on a split: the true ``labels`` (N,) int64 and the softmax
    ``probabilities`` (N, classes) float32, sample i being the split's i-th image."""

    labels: np.ndarray  # (N,) int64
    probabilities: np.ndarray  # (N, classes) float32, each row sums to 1

    @property
    def predicted(self) -> np.ndarray:
        """(N,) int64: the most probable class of each image (as the accuracies count it)."""
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """(N,) float32 in [0, 1]: the probability of the predicted class."""
        return self.probabilities.max(axis=1)

    @property
    def accuracy(self) -> float:
        """The fraction of images whose predicted class is the true one."""
        return float((self.predicted == self.labels).mean())


@torch.no_grad()
def predict_test_split(
    model: nn.Module,
    *,
    input_size: tuple[int, int],
    dataset: str = "digits",
    batch_size: int = 256,
) -> Predictions:
    """Return the model's Predictions on the test split of ``dataset``, loaded at ``input_size``
    (H, W) in pixels (a recipe's ``"input_size"``) and normalised as ``training_epochs`` feeds
    it, in eval mode on the model's own device (its train/eval mode is restored after)."""
    x_test, y_test, _ = load_dataset(dataset, "test", input_size)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, len(x_test), batch_size):
        logits = model(x_test[start : start + batch_size].to(device))  # (B, classes)
        chunks.append(torch.softmax(logits.float(), dim=1).cpu())
    model.train(was_training)
    return Predictions(labels=y_test.numpy(), probabilities=torch.cat(chunks).numpy())


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, *, num_classes: int) -> np.ndarray:
    """Return the (num_classes, num_classes) int64 counts: row = true class, column = predicted
    class, from labels (N,) and predicted (N,) class indices in [0, num_classes)."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if labels.shape != predicted.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and predicted must be (N,) alike: {labels.shape}, {predicted.shape}"
        )
    both = np.concatenate([labels, predicted])
    if both.size and (both.min() < 0 or both.max() >= num_classes):
        raise ValueError(
            f"class indices must be in [0, {num_classes}), got {both.min()}..{both.max()}"
        )
    cell = labels.astype(np.int64) * num_classes + predicted  # (N,) flat index of each pair
    return np.bincount(cell, minlength=num_classes**2).reshape(num_classes, num_classes)


def misclassified(predictions: Predictions, *, limit: int | None = None) -> np.ndarray:
    """Return the indices (M,) of the wrongly predicted images, the most confident mistakes
    first (ties by index), at most ``limit`` of them."""
    wrong = np.flatnonzero(predictions.predicted != predictions.labels)  # ascending
    order = wrong[np.argsort(-predictions.confidence[wrong], kind="stable")]
    return order if limit is None else order[:limit]


def weights_bytes(
    model: nn.Module, architecture: str, *, settings: TrainSettings | None = None
) -> bytes:
    """Return the model's weights as a safetensors file (CPU tensors), its header holding the
    RECIPES ``architecture`` and config and, when given, the ``settings`` it was trained with:
    what ``train`` writes as a checkpoint and what every uploader reads without unpickling."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"architecture": architecture, "config": json.dumps(RECIPES[architecture]["config"])}
    if settings is not None:
        header["settings"] = json.dumps(dataclasses.asdict(settings))
    return save(state, metadata=header)


def train(
    architecture: str,
    *,
    dataset: str = "digits",
    epochs: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    out_dir: str | Path = CHECKPOINT_DIR,
    name: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``architecture`` ("lenet", "resnet", "vit") and write its checkpoint; return the metadata.

    Writes ``<out_dir>/<name>.safetensors`` (weights) and ``<out_dir>/<name>.json`` (metadata);
    ``name`` defaults to ``<architecture>_<dataset>``. Training time in the metadata is in seconds.
    The run is ``training_epochs`` with the recipe's settings (``TrainSettings.recipe``).
    """
    from tqdm import tqdm

    settings = TrainSettings.recipe(architecture, epochs=epochs, seed=seed)
    recipe = RECIPES[architecture]
    epochs = settings.epochs
    dev = resolve_device(device)
    x_train, y_train, class_names = load_dataset(dataset, "train", recipe["input_size"])
    x_test, y_test, _ = load_dataset(dataset, "test", recipe["input_size"])
    mean, std = dataset_normalization(dataset)
    batch_size = settings.batch_size

    seconds = 0.0
    bar = tqdm(total=epochs, desc=f"{architecture} on {dataset}", disable=not progress)
    # the last epoch's model is saved below
    for model, record in training_epochs(settings, dataset=dataset, device=dev):  # noqa: B007
        seconds += record.seconds
        bar.update(1)
        bar.set_postfix(loss=f"{record.train_loss:.3f}", test_acc=f"{record.test_accuracy:.4f}")
    bar.close()

    model.eval()
    name = name or f"{architecture}_{dataset}"
    meta: dict[str, Any] = {
        "name": name,
        "architecture": architecture,
        "family": "vit" if architecture == "vit" else "cnn",
        "config": recipe["config"],
        "dataset": dataset,
        "input_size": [x_train.shape[1], *recipe["input_size"]],
        "mean": mean,
        "std": std,
        "class_names": class_names,
        "test_accuracy": evaluate(model, x_test, y_test),
        "train_accuracy": evaluate(model, x_train, y_train),
        "test_samples": len(x_test),
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch_size,
        "optimizer": f"AdamW(lr={recipe['lr']}, weight_decay={recipe['weight_decay']}), "
        "warm-up + cosine",
        "label_smoothing": recipe["label_smoothing"],
        "augmentation": "random shifts up to 10% and rotations up to 12 degrees",
        "training_time_s": round(seconds, 1),
        "device": describe_device(dev),
        "torch_version": torch.__version__,
        "pretrained": True,
        "notice": None,
        "source": "checkpoint",
    }
    if architecture == "vit":
        meta.update(
            patch_size=model.patch_size,
            num_prefix_tokens=model.num_prefix_tokens,
            grid_size=list(model.grid_size),
            position_embedding_check=position_embedding_structure(
                model.pos_embed.detach().cpu(), model.grid_size, num_prefix_tokens=1
            ),
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.safetensors").write_bytes(weights_bytes(model, architecture))
    with open(out_dir / f"{name}.json", "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")
    return meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, choices=sorted(RECIPES))
    parser.add_argument("--dataset", default="digits", choices=["digits"])
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: best)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--out-dir", default=str(CHECKPOINT_DIR))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    meta = train(
        args.model,
        dataset=args.dataset,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        out_dir=args.out_dir,
    )
    summary = {k: meta[k] for k in ("name", "test_accuracy", "training_time_s", "device")}
    if "position_embedding_check" in meta:
        summary["position_embedding_check"] = meta["position_embedding_check"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
