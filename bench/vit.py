"""Benchmark: mean attention distance of all 12 x 12 heads of torchvision's vit_b_16.

Prints one table with the device: a plain forward pass (fused attention, no weights), a forward
pass whose attention modules compute the weights anyway (``need_weights=True``), our capture
(hooks on ``ln_1`` + exact recomputation, weights discarded), and the whole mean attention
distance including the forward pass and the copy of the images to the device.

Usage: ``python bench/vit.py [--images N] [--batch-size B] [--device cuda|cpu] [--repeats R]``.
Targets on one GPU: distance over 128 images <= 1 s; capture overhead <= 30%.
Random weights (``weights=None``): speed does not depend on them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vizlib.attention import _forward_with_attention, mean_attention_distance_over  # noqa: E402
from vizlib.device import describe_device, resolve_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _forward_need_weights(model, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
    """torchvision's ViT forward, but each attention returns its per-head weights (discarded,
    or appended to ``keep``)."""
    tokens = model._process_input(x)
    tokens = torch.cat([model.class_token.expand(x.shape[0], -1, -1), tokens], dim=1)
    tokens = tokens + model.encoder.pos_embedding
    for block in model.encoder.layers:
        h = block.ln_1(tokens)
        y, weights = block.self_attention(
            h, h, h, need_weights=True, average_attn_weights=False
        )  # weights (B, heads, T, T)
        if keep is not None:
            keep.append(weights)
        tokens = tokens + y
        tokens = tokens + block.mlp(block.ln_2(tokens))
    return model.heads(model.encoder.ln(tokens)[:, 0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: best)")
    parser.add_argument("--images", type=int, default=None, help="128 on a GPU, 16 on the CPU")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=None, help="5 on a GPU, 1 on the CPU")
    args = parser.parse_args()

    from torchvision.models import vit_b_16

    device = resolve_device(args.device)
    on_gpu = device.type == "cuda"
    n = args.images or (128 if on_gpu else 16)
    repeats = args.repeats or (5 if on_gpu else 1)
    bs = args.batch_size
    torch.manual_seed(0)
    model = vit_b_16(weights=None).eval().to(device)
    images = torch.randn(n, 3, 224, 224)  # on the CPU, as the app's images are
    on_device = images.to(device)

    def batches():
        for start in range(0, n, bs):
            yield on_device[start : start + bs]

    @torch.inference_mode()
    def plain():
        for x in batches():
            model(x)

    @torch.inference_mode()
    def need_weights():
        for x in batches():
            _forward_need_weights(model, x)

    @torch.inference_mode()
    def capture():
        for x in batches():
            _forward_with_attention(model, x, lambda i, a: None)

    def distance():
        mean_attention_distance_over(model, images, batch_size=bs, device=device)

    steps = [
        ("plain forward (fused attention, no weights)", plain),
        ("forward computing the weights (need_weights=True)", need_weights),
        ("forward + our capture (ln_1 hooks, exact recompute)", capture),
        ("mean attention distance, 12x12 heads (end to end)", distance),
    ]
    # warm-up at the timed sizes: kernel choice, cuBLAS workspaces and the caching allocator's
    # pools for batch `bs` (and the last, smaller batch) are set up here, not in the first timing
    for _, fn in steps:
        fn()
    _sync(device)
    distance_check = mean_attention_distance_over(model, images[:2], device=device)
    assert distance_check.shape == (12, 12) and torch.isfinite(distance_check).all()
    # the capture beside torch's own per-head weights, on this device
    ours: list[torch.Tensor] = []
    theirs: list[torch.Tensor] = []
    with torch.inference_mode():
        _forward_with_attention(model, on_device[:2], lambda i, a: ours.append(a))
        _forward_need_weights(model, on_device[:2], theirs)
    weight_error = max(float((a - b).abs().max()) for a, b in zip(ours, theirs, strict=True))
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    # round-robin repeats, so a busy (shared) machine slows every step alike
    times: dict[str, list[float]] = {name: [] for name, _ in steps}
    for _ in range(repeats):
        for name, fn in steps:
            times[name].append(_timed(fn, device, 1))
    rows = [(name, statistics.median(times[name])) for name, _ in steps]
    base_weights = rows[1][1]
    base_plain = rows[0][1]
    print(f"vit_b_16, {n} images of 224x224, batch {bs}, median of {repeats} run(s)")
    print(f"device: {describe_device(device)} [{device}]  torch {torch.__version__}")
    if on_gpu:
        # float32 throughout; TF32 (tensor cores) only where torch allows it by default
        print(
            f"float32 matmul TF32: {torch.backends.cuda.matmul.allow_tf32}, cuDNN conv TF32: "
            f"{torch.backends.cudnn.allow_tf32}; peak GPU memory "
            f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
        )
    print(f"captured weights vs torch's need_weights=True: max |difference| {weight_error:.1e}")
    print(f"{'step':<55} {'seconds':>9} {'vs need_weights':>16} {'vs plain':>9}")
    for name, secs in rows:
        print(
            f"{name:<55} {secs:>9.3f} {100 * (secs / base_weights - 1):>+15.1f}% "
            f"{100 * (secs / base_plain - 1):>+8.1f}%"
        )
    capture_overhead = rows[2][1] / base_weights - 1
    print(
        f"capture overhead over a forward that computes the weights anyway: "
        f"{100 * capture_overhead:+.1f}% (target <= 30% on a GPU)"
    )
    print(
        f"mean attention distance over {n} images: {rows[3][1]:.3f} s "
        f"(target <= 1 s for 128 images on a GPU)"
    )


if __name__ == "__main__":
    main()
