"""Train a small model on the bundled digits and write ``checkpoints/<name>.safetensors`` + ``.json``.

    python -m vizlib.train --model lenet|resnet|vit --dataset digits [--epochs N --seed S]

AdamW with a warm-up then cosine learning-rate schedule, random shifts and small rotations as
augmentation, fixed seed, the GPU when present. The JSON sidecar holds everything needed to rebuild
the model without unpickling: architecture, config, dataset, input size, normalisation, class names,
test accuracy, epochs, seed, training time and device.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data.datasets import dataset_normalization, load_dataset
from .device import describe_device, resolve_device
from .zoo import CHECKPOINT_DIR, build_model

__all__ = ["RECIPES", "augment", "evaluate", "position_embedding_structure", "train"]

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
    """
    from safetensors.torch import save_file
    from tqdm import tqdm

    if architecture not in RECIPES:
        raise ValueError(f"Unknown model {architecture!r}; choose from {', '.join(RECIPES)}.")
    recipe = RECIPES[architecture]
    epochs = recipe["epochs"] if epochs is None else int(epochs)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    x_train, y_train, class_names = load_dataset(dataset, "train", recipe["input_size"])
    x_test, y_test, _ = load_dataset(dataset, "test", recipe["input_size"])
    mean, std = dataset_normalization(dataset)
    background = -mean[0] / std[0]  # normalised value of a black pixel

    model = build_model(architecture, recipe["config"]).to(dev)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "pos_embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or "pos_embed" in n]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": recipe["weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=recipe["lr"],
    )
    batch_size = recipe["batch_size"]
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    total = epochs * steps_per_epoch
    warmup = max(1, min(total // 10, 5 * steps_per_epoch))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))
        ),
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe["label_smoothing"])

    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=f"{architecture} on {dataset}", disable=not progress)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        running = torch.zeros((), dtype=torch.float64, device=dev)  # summed on the device: no
        for i in range(0, len(order), batch_size):  # read back (a GPU sync) per step
            idx = order[i : i + batch_size]
            x = augment(x_train[idx], background=background, generator=generator).to(dev)
            loss = loss_fn(model(x), y_train[idx].to(dev))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            running += loss.detach() * len(idx)
        postfix = {"loss": f"{float(running) / len(x_train):.3f}"}
        if (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            postfix["test_acc"] = f"{evaluate(model, x_test, y_test):.4f}"
        bar.set_postfix(postfix)
    seconds = time.perf_counter() - start

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
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(
        state,
        str(out_dir / f"{name}.safetensors"),
        metadata={"architecture": architecture, "config": json.dumps(recipe["config"])},
    )
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
