"""Benchmark vizlib's t-SNE against scikit-learn (and openTSNE when installed); prints one table.

Usage: ``python bench/tsne.py [--sizes 1797 5000] [--device cpu|cuda] [--dims 50] [--threads N]
[--repeats 3] [--vizlib-only]``. N = 1797 is the digits data set (64 raw dims); other sizes are a 10-cluster
Gaussian mixture in ``--dims`` dimensions. The implementations run in turn, ``--repeats`` rounds
(interleaved, so a load change on a shared machine hits them alike), and each one's median time
is reported; the load average before and after is printed with the table. Trustworthiness
(k = 10) is of the first run's map, computed on a 2,000-point subsample.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vizlib.device import describe_device, resolve_device  # noqa: E402
from vizlib.embedding import tsne  # noqa: E402


def data(n: int, dims: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """Return (features (n, D) float32, description)."""
    if n == 1797:
        from sklearn.datasets import load_digits

        return load_digits().data.astype(np.float32), "digits"
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, dims)) * 3.0
    labels = rng.integers(0, 10, n)
    X = centres[labels] + rng.normal(size=(n, dims))
    return X.astype(np.float32), f"{dims}-d Gaussian mixture"


def trust(X: np.ndarray, Y: np.ndarray, max_points: int = 2000) -> float:
    from sklearn.manifold import trustworthiness

    idx = np.random.default_rng(0).permutation(len(X))[:max_points]
    return float(trustworthiness(X[idx], Y[idx], n_neighbors=10))


def timed(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    Y = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, Y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1797, 5000])
    parser.add_argument("--dims", type=int, default=50)
    parser.add_argument("--device", default=None)
    parser.add_argument("--method", default="auto", choices=["auto", "exact", "fft"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--skip-sklearn-above", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per method")
    parser.add_argument("--vizlib-only", action="store_true", help="skip scikit-learn, openTSNE")
    parser.add_argument("--no-eager", action="store_true",
                        help="on a GPU, skip the run without CUDA graphs")  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # vizlib's t-SNE logs how many steps replayed as CUDA graphs (or why capture failed)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("vizlib.embedding").setLevel(logging.INFO)
    dev = resolve_device(args.device)

    try:
        import openTSNE
    except ImportError:
        openTSNE = None

    load_before = os.getloadavg()
    rows = []
    for n in args.sizes:
        X, what = data(n, args.dims)
        if dev.type == "cuda":  # warm up CUDA, cuFFT and the allocator outside the timing
            tsne(X[:2000], n_iter=30, device=dev, method=args.method)
        runs = {"vizlib": lambda X=X: tsne(X, device=dev, method=args.method)}
        if dev.type == "cuda" and not args.no_eager:  # the same steps, kernels launched one by one
            runs["vizlib eager"] = lambda X=X: tsne(
                X, device=dev, method=args.method, cuda_graphs=False
            )
        if n <= args.skip_sklearn_above and not args.vizlib_only:
            from sklearn.manifold import TSNE

            runs["sklearn"] = lambda X=X: TSNE(random_state=0).fit_transform(X)
        if openTSNE is not None and not args.vizlib_only:
            runs["openTSNE"] = lambda X=X: np.asarray(openTSNE.TSNE(random_state=0).fit(X))
        times: dict[str, list[float]] = {name: [] for name in runs}
        maps: dict[str, np.ndarray] = {}
        for _round in range(args.repeats):
            for name, fn in runs.items():
                seconds, Y = timed(fn)
                times[name].append(seconds)
                maps.setdefault(name, Y)
        row = {"N": n, "dims": X.shape[1], "data": what}
        for name in runs:
            row[f"{name} s"] = statistics.median(times[name])
            row[f"{name} trust"] = trust(X, maps[name])
            if name not in ("vizlib", "vizlib eager"):
                row[f"{name}/vizlib"] = row[f"{name} s"] / row["vizlib s"]
        rows.append(row)
        print(f"done N={n}: " + ", ".join(f"{k} {[round(t, 2) for t in v]}" for k, v in times.items()),
              file=sys.stderr, flush=True)  # fmt: skip

    cols = ["N", "dims", "data", "vizlib s", "vizlib eager s", "sklearn s", "openTSNE s", "sklearn/vizlib",
            "openTSNE/vizlib", "vizlib trust", "sklearn trust", "openTSNE trust"]  # fmt: skip
    cols = [c for c in cols if any(c in r for r in rows)]
    if any("vizlib eager s" in r for r in rows):
        cols.insert(cols.index("vizlib eager s") + 1, "eager/vizlib")
        for r in rows:
            r["eager/vizlib"] = r["vizlib eager s"] / r["vizlib s"]
    load = ", ".join(f"{a:.2f}" for a in load_before)
    load_after = ", ".join(f"{a:.2f}" for a in os.getloadavg())
    print(f"device: {describe_device(dev)}; torch threads {torch.get_num_threads()}; "
          f"vizlib method {args.method}; median of {args.repeats} interleaved runs; "
          f"load average (1, 5, 15 min) before {load}, after {load_after}")  # fmt: skip
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
