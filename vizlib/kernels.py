"""Classic image-processing kernels by name, each with a one-line explanation, plus checks
for a user-typed kernel.

Kernels are float64 numpy arrays (K_h, K_w), used as cross-correlation weights (the way
``torch.nn.Conv2d`` applies them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "KERNEL_DESCRIPTIONS",
    "MAX_KERNEL_SIZE",
    "describe_kernel",
    "gaussian_kernel",
    "get_kernel",
    "is_zero_sum",
    "kernel_names",
    "mean_kernel",
    "parse_custom_kernel",
]

MAX_KERNEL_SIZE = 15
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # about 3.4e38

KERNEL_DESCRIPTIONS: dict[str, str] = {
    "identity": "Identity: copies the input unchanged (a single 1 in the centre); a sanity check.",
    "mean": "Mean (box blur): every output is the plain average of its neighbourhood, so it smooths "
    "noise but also blurs edges and leaves a blocky look.",
    "gaussian": "Gaussian: a weighted average that falls off smoothly with distance (width sigma, "
    "in pixels), the physically meaningful smoother: diffusion for a time ∝ sigma² gives exactly this.",
    "sobel_x": "Sobel x: zero-sum; smooths vertically and differentiates horizontally, so it "
    "lights up vertical edges (left–right changes) and fronts.",
    "sobel_y": "Sobel y: zero-sum; smooths horizontally and differentiates vertically, so it "
    "lights up horizontal edges (top–bottom changes) and fronts.",
    "prewitt_x": "Prewitt x: zero-sum like Sobel x but with equal weights; finds vertical edges.",
    "prewitt_y": "Prewitt y: zero-sum like Sobel y but with equal weights; finds horizontal edges.",
    "laplacian": "Laplacian: zero-sum second derivative; responds to edges and spots in every "
    "direction and is zero on flat areas and constant gradients.",
    "sharpen": "Sharpen: identity plus a Laplacian (sums to 1), so flat areas are kept and edges "
    "are exaggerated.",
    "emboss": "Emboss: a diagonal derivative plus 1, so edges look raised or sunken under light "
    "from the top left.",
}


def kernel_names() -> list[str]:
    """Return the preset names accepted by ``get_kernel``."""
    return list(KERNEL_DESCRIPTIONS)


def describe_kernel(name: str) -> str:
    """Return the one-line explanation of what a preset kernel does."""
    if name not in KERNEL_DESCRIPTIONS:
        raise ValueError(
            f"Unknown kernel {name!r}; choose one of {', '.join(KERNEL_DESCRIPTIONS)}."
        )
    return KERNEL_DESCRIPTIONS[name]


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"Kernel size must be a positive whole number, got {size!r}.")
    if size > MAX_KERNEL_SIZE:
        raise ValueError(f"Kernel size must be at most {MAX_KERNEL_SIZE}, got {size}.")
    return int(size)


def mean_kernel(size: int = 3) -> np.ndarray:
    """Return the (size, size) box kernel, every weight ``1 / size²``."""
    size = _check_size(size)
    return np.full((size, size), 1.0 / size**2)


def gaussian_kernel(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    """Return a (size, size) Gaussian kernel with standard deviation ``sigma`` pixels, summing to 1."""
    size = _check_size(size)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"Sigma must be a positive number of pixels, got {sigma!r}.")
    r = np.arange(size) - (size - 1) / 2  # (size,) offsets from the centre, pixels
    g = np.exp(-(r**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


_FIXED = {
    "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "prewitt_x": [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
    "prewitt_y": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
}


def get_kernel(name: str, *, size: int = 3, sigma: float = 1.0) -> np.ndarray:
    """Return the preset kernel ``name`` as float64 (K, K).

    ``size`` applies to identity, mean and gaussian (odd sizes keep the centre on a pixel);
    ``sigma`` (pixels) to gaussian only. The derivative kernels are 3x3.
    """
    if name == "identity":
        size = _check_size(size)
        k = np.zeros((size, size))
        k[size // 2, size // 2] = 1.0
        return k
    if name == "mean":
        return mean_kernel(size)
    if name == "gaussian":
        return gaussian_kernel(size, sigma)
    if name in _FIXED:
        return np.array(_FIXED[name], dtype=float)
    raise ValueError(f"Unknown kernel {name!r}; choose one of {', '.join(KERNEL_DESCRIPTIONS)}.")


def is_zero_sum(kernel: np.ndarray, *, atol: float = 1e-9) -> bool:
    """Return True when the weights sum to zero (the kernel ignores flat areas: an edge/front finder)."""
    return bool(abs(float(np.sum(kernel))) <= atol)


def parse_custom_kernel(table: Sequence[Sequence[object]] | np.ndarray) -> np.ndarray:
    """Return a user-typed kernel as float64 (K_h, K_w) after checking it.

    Accepts a nested list, a numpy array or a pandas DataFrame of numbers or numeric strings.
    Raises ``ValueError`` naming the first bad cell for empty cells, text, NaN or infinity or a
    number beyond float32's range, and for a kernel that is not 2-D or is larger than ``MAX_KERNEL_SIZE``.
    """
    rows = np.asarray(getattr(table, "values", table), dtype=object)
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] == 0:
        raise ValueError("The custom kernel must be a non-empty table (rows × columns) of numbers.")
    if max(rows.shape) > MAX_KERNEL_SIZE:
        raise ValueError(
            f"The custom kernel is {rows.shape[0]}×{rows.shape[1]}; at most "
            f"{MAX_KERNEL_SIZE}×{MAX_KERNEL_SIZE} is allowed."
        )
    out = np.empty(rows.shape, dtype=float)
    for (r, c), cell in np.ndenumerate(rows):
        where = f"row {r + 1}, column {c + 1}"
        if cell is None or (isinstance(cell, str) and not cell.strip()):
            raise ValueError(f"The custom kernel has an empty cell at {where}: type a number.")
        try:
            value = float(cell.strip() if isinstance(cell, str) else cell)
        except (TypeError, ValueError):
            raise ValueError(
                f"The custom kernel has {cell!r} at {where}, which is not a number."
            ) from None
        if not np.isfinite(value):
            raise ValueError(f"The custom kernel has {cell!r} at {where}: use a finite number.")
        if abs(value) > _FLOAT32_MAX:
            raise ValueError(
                f"The custom kernel has {cell!r} at {where}: beyond ±3.4e38, the range of the "
                "float32 numbers torch filters with."
            )
        out[r, c] = value
    return out
