"""Where vizlib's t-SNE spends its time: affinities, PCA start, one gradient step; prints one table.

Usage: ``python bench/tsne_stages.py [--sizes 10000 70000] [--device cpu|cuda] [--dims 50]
[--steps 100]``. Data as in ``bench/tsne.py`` (a 10-cluster Gaussian mixture). For each size:
seconds for the sparse affinities P (kNN + perplexity calibration + symmetrisation), for the PCA
start, and the median milliseconds of one optimiser step (gradient + update, synchronised) with
the exact and the FFT repulsion, over ``--steps`` steps on a map of the spread t-SNE reaches
(the FFT grid's size follows the map's span); on a GPU also of the optimiser's own steps, which
replay as CUDA graphs ("graphed step"). "1,000 steps" extrapolates P + PCA + 1,000 steps (of the
graphed kind on a GPU),
the end-to-end time of a default run without its callbacks. Read it beside ``bench/tsne.py``: if
a step costs far more than its arithmetic, the step is bound by kernel launches and host syncs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tsne import data  # noqa: E402
from vizlib import embedding as E  # noqa: E402
from vizlib.device import describe_device, resolve_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(fn, device: torch.device) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


def step_ms(Y: torch.Tensor, P, method: str, steps: int) -> float:
    """Median milliseconds of one gradient + momentum/gains update of map ``Y`` (N, 2)."""
    update, gains = torch.zeros_like(Y), torch.ones_like(Y)
    times = []
    for _ in range(steps + 3):  # 3 warm-up steps: allocator, cuFFT plans, kernel spectra
        seconds, (grad, _Z, _edges) = _seconds(lambda: E._gradient(Y, P, 1.0, method), Y.device)
        start = time.perf_counter()
        inc = (update * grad) < 0
        gains = torch.where(inc, gains + 0.2, gains * 0.8).clamp_(min=E.MIN_GAIN)
        update = 0.8 * update - 1.0 * (grad * gains)
        _sync(Y.device)
        times.append(seconds + time.perf_counter() - start)
    return 1000 * statistics.median(times[3:])


def optimiser_step_ms(Y: torch.Tensor, P, method: str, steps: int, graphs: bool) -> float:
    """Median milliseconds of one step of vizlib's optimiser (``E._Optimiser``), synchronised.

    With ``graphs`` on a GPU each step is a CUDA graph replay after its shape's first step; the
    first 5 steps (captures) are left out of the median.
    """
    n = Y.shape[0]
    opt = E._Optimiser(Y.clone(), P, method, max(n / 48.0, 50.0), cuda_graphs=graphs)
    times = []
    for _ in range(steps + 5):
        seconds, _out = _seconds(lambda: opt.step(1.0, 0.8), Y.device)
        times.append(seconds)
    if opt.graph_error:
        print(f"N={n} {method}: CUDA graph capture failed: {opt.graph_error}", file=sys.stderr)
    return 1000 * statistics.median(times[5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 70000])
    parser.add_argument("--dims", type=int, default=50)
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--exact-max", type=int, default=None,
                        help="largest N timed with the exact repulsion (default 100,000 on a "
                        "GPU, 10,000 on the CPU, where one exact step at 10,000 takes ~1.5 s)")  # fmt: skip
    args = parser.parse_args()
    dev = resolve_device(args.device)
    exact_max = args.exact_max or (100_000 if dev.type == "cuda" else 10_000)
    rows = []
    for n in args.sizes:
        X, _what = data(n, args.dims)
        with torch.no_grad(), E._torch_threads(1 if dev.type == "cpu" else None):
            if dev.type == "cuda":  # CUDA context, cuBLAS and cuFFT outside the timings
                E._joint_p(torch.from_numpy(X[:1000]).to(dev), 30.0)
            p_s, P = _seconds(lambda X=X: E._joint_p(torch.from_numpy(X).to(dev), 30.0), dev)
            pca_s, (Y0, _ratio) = _seconds(lambda X=X: E.pca(X, 2, device=dev), dev)
            # A spread like a finished map's: unit-variance start scaled to ~sqrt(N) / 2 wide.
            Y = torch.from_numpy(Y0 / Y0.std(axis=0) * np.sqrt(n) / 8).float().to(dev)
            row = {"N": n, "P s": p_s, "PCA s": pca_s}
            for method in ("exact", "fft"):
                if method == "exact" and n > exact_max:
                    row["exact step ms"] = row["exact 1,000 steps s"] = "skipped"
                    if dev.type == "cuda":
                        row["exact graphed step ms"] = "skipped"
                    continue
                ms = step_ms(Y, P, method, args.steps)
                row[f"{method} step ms"] = ms
                if dev.type == "cuda":  # the optimiser as tsne runs it: steps as CUDA graphs
                    ms = optimiser_step_ms(Y, P, method, args.steps, graphs=True)
                    row[f"{method} graphed step ms"] = ms
                row[f"{method} 1,000 steps s"] = p_s + pca_s + ms  # 1,000 x ms / 1,000
        rows.append(row)
        print(f"done N={n}", file=sys.stderr, flush=True)
    cols = list(rows[0])
    threads = "t-SNE on 1 torch thread" if dev.type == "cpu" else "synchronised per step"
    print(f"device: {describe_device(dev)}; {threads}; dims {args.dims}; "
          f"median of {args.steps} steps")  # fmt: skip
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c])
                                for c in cols) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
