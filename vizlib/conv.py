"""Convolution arithmetic: output sizes, parameter and multiply-add counts, coverage,
receptive fields, and convolution of real images and short 1-D sequences.

Sizes are in pixels (cells). Padding may be an int, a pair ``(pad_h, pad_w)``, or the strings
``"same"`` / ``"valid"`` with torch's meaning ("same" pads ``D(K-1)`` in total per axis, the
smaller half before, and only allows stride 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .device import resolve_device

__all__ = [
    "PADDING_MODES",
    "ConvSettings",
    "apply_kernel",
    "check_settings",
    "conv_macs",
    "conv_output_shape",
    "conv_params",
    "conv_transpose_macs",
    "conv_transpose_output_shape",
    "convolution_terms",
    "correlate1d",
    "correlation_terms",
    "coverage",
    "effective_extent",
    "footprint",
    "format_number",
    "full_convolve1d",
    "layer_code",
    "output_positions",
    "output_size",
    "padded_input",
    "padding_amounts",
    "parse_sequence",
    "receptive_field",
    "torch_layer",
    "torch_output_shape",
    "transpose_coverage",
    "transpose_footprint",
    "written_sums",
]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

IntPair = int | tuple[int, int] | Sequence[int]
Padding = int | tuple[int, int] | Sequence[int] | str


@dataclass(frozen=True)
class ConvSettings:
    """One Conv2d / ConvTranspose2d layer's settings, as torch names them (sizes in cells)."""

    in_channels: int = 1
    out_channels: int = 1
    kernel: IntPair = 3  # (K_h, K_w) or one int for both
    stride: IntPair = 1
    padding: Padding = 0  # int, (P_h, P_w), or "same" / "valid" (Conv2d only)
    dilation: IntPair = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str = "zeros"  # zeros, reflect, replicate, circular (Conv2d only)
    transposed: bool = False  # ConvTranspose2d instead of Conv2d
    output_padding: IntPair = 0  # ConvTranspose2d only: extra cells after the last row / column

    def problems(self, input_hw: IntPair) -> dict[str, str]:
        """Return ``check_settings`` for this layer on an ``input_hw`` input; empty when fine."""
        return check_settings(
            input_hw,
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            groups=self.groups,
            padding_mode=self.padding_mode,
            transposed=self.transposed,
            output_padding=self.output_padding,
        )


def _check_int(value: object, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return int(value)


def _pair(value: IntPair, name: str, *, minimum: int) -> tuple[int, int]:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = (value, value)
    if isinstance(value, str) or len(value) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}.")
    return (
        _check_int(value[0], f"{name} (height)", minimum=minimum),
        _check_int(value[1], f"{name} (width)", minimum=minimum),
    )


def effective_extent(kernel: int, dilation: int = 1) -> int:
    """Return the span in cells of a dilated kernel along one axis: ``1 + (K - 1) * D``."""
    kernel = _check_int(kernel, "Kernel size", minimum=1)
    dilation = _check_int(dilation, "Dilation", minimum=1)
    return 1 + (kernel - 1) * dilation


def output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Return the output length of a convolution along one axis.

    ``floor((n + 2P - D(K-1) - 1) / S) + 1``. Raises ``ValueError`` with a readable message
    when an argument is out of range or the output would be empty (kernel extent larger than
    the padded input).
    """
    n = _check_int(n, "Input size", minimum=1)
    kernel = _check_int(kernel, "Kernel size", minimum=1)
    stride = _check_int(stride, "Stride", minimum=1)
    padding = _check_int(padding, "Padding", minimum=0)
    dilation = _check_int(dilation, "Dilation", minimum=1)
    return _output_len(n, kernel, stride, padding, padding, dilation)


def _output_len(n: int, kernel: int, stride: int, before: int, after: int, dilation: int) -> int:
    extent = 1 + (kernel - 1) * dilation
    padded = n + before + after
    if extent > padded:
        raise ValueError(
            f"The kernel's extent 1 + ({kernel}-1)×{dilation} = {extent} is larger than the "
            f"padded input {n} + {before + after} = {padded}: the output would be empty. "
            "Use a smaller kernel or dilation, or more padding."
        )
    return (padded - extent) // stride + 1


def padding_amounts(
    padding: Padding, kernel: IntPair, stride: IntPair = 1, dilation: IntPair = 1
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Return ``((top, bottom), (left, right))`` padding in cells, resolving "same"/"valid".

    "same" follows torch: total ``D(K-1)`` per axis, ``total // 2`` before and the rest after;
    it raises ``ValueError`` for a stride above 1, as ``torch.nn.Conv2d`` does.
    """
    kh, kw = _pair(kernel, "Kernel size", minimum=1)
    sh, sw = _pair(stride, "Stride", minimum=1)
    dh, dw = _pair(dilation, "Dilation", minimum=1)
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            if sh != 1 or sw != 1:
                raise ValueError(
                    f"'same' padding needs stride 1 (got stride {sh}×{sw}): with a larger stride "
                    "no padding can keep the output the size of the input. "
                    "torch.nn.Conv2d refuses it too; use a number for the padding."
                )
            th, tw = dh * (kh - 1), dw * (kw - 1)
            return (th // 2, th - th // 2), (tw // 2, tw - tw // 2)
        raise ValueError(f"Padding must be a number, a pair, 'same' or 'valid', got {padding!r}.")
    ph, pw = _pair(padding, "Padding", minimum=0)
    return (ph, ph), (pw, pw)


def conv_output_shape(
    input_hw: IntPair,
    kernel: IntPair,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
) -> tuple[int, int]:
    """Return ``(H_out, W_out)`` of a 2-D convolution; each argument an int or a pair.

    Padding may also be "same" or "valid". Raises ``ValueError`` for an empty output,
    zero sizes or "same" with stride above 1.
    """
    h, w = _pair(input_hw, "Input size", minimum=1)
    kh, kw = _pair(kernel, "Kernel size", minimum=1)
    sh, sw = _pair(stride, "Stride", minimum=1)
    dh, dw = _pair(dilation, "Dilation", minimum=1)
    (pt, pb), (pl, pr) = padding_amounts(padding, (kh, kw), (sh, sw), (dh, dw))
    return _output_len(h, kh, sh, pt, pb, dh), _output_len(w, kw, sw, pl, pr, dw)


def conv_transpose_output_shape(
    input_hw: IntPair,
    kernel: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    output_padding: IntPair = 0,
) -> tuple[int, int]:
    """Return ``(H_out, W_out)`` of a transposed convolution.

    ``(H - 1)S - 2P + D(K - 1) + output_padding + 1`` per axis. Raises ``ValueError`` when the
    output would be empty or ``output_padding`` is not smaller than the stride or the dilation
    (torch's rule).
    """
    hw = _pair(input_hw, "Input size", minimum=1)
    ks = _pair(kernel, "Kernel size", minimum=1)
    ss = _pair(stride, "Stride", minimum=1)
    ps = _pair(padding, "Padding", minimum=0)
    ds = _pair(dilation, "Dilation", minimum=1)
    ops = _pair(output_padding, "Output padding", minimum=0)
    out = []
    for axis, n, k, s, p, d, op in zip(("height", "width"), hw, ks, ss, ps, ds, ops, strict=True):
        if op >= max(s, d):
            raise ValueError(
                f"Output padding ({axis}) must be smaller than the stride or the dilation "
                f"(got {op} with stride {s} and dilation {d})."
            )
        size = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        if size < 1:
            raise ValueError(
                f"The transposed convolution's output {axis} would be {size}: "
                f"({n}-1)×{s} - 2×{p} + {d}×({k}-1) + {op} + 1. Use less padding."
            )
        out.append(size)
    return out[0], out[1]


def _check_groups(in_channels: int, out_channels: int, groups: int) -> tuple[int, int, int]:
    in_channels = _check_int(in_channels, "Input channels", minimum=1)
    out_channels = _check_int(out_channels, "Output channels", minimum=1)
    groups = _check_int(groups, "Groups", minimum=1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"Groups ({groups}) must divide both the input channels ({in_channels}) and the "
            f"output channels ({out_channels})."
        )
    return in_channels, out_channels, groups


def conv_params(
    in_channels: int, out_channels: int, kernel: IntPair, bias: bool = True, groups: int = 1
) -> int:
    """Return the learnable parameters of a Conv2d (also a ConvTranspose2d):
    ``(C_in / groups) × K_h × K_w × C_out`` weights plus ``C_out`` biases."""
    c_in, c_out, g = _check_groups(in_channels, out_channels, groups)
    kh, kw = _pair(kernel, "Kernel size", minimum=1)
    return (c_in // g) * kh * kw * c_out + (c_out if bias else 0)


def conv_macs(
    in_channels: int, out_channels: int, kernel: IntPair, output_hw: IntPair, groups: int = 1
) -> int:
    """Return the multiply-adds of one Conv2d forward pass on one image:
    ``C_out × H_out × W_out × (C_in / groups) × K_h × K_w`` (bias additions not counted)."""
    c_in, c_out, g = _check_groups(in_channels, out_channels, groups)
    kh, kw = _pair(kernel, "Kernel size", minimum=1)
    ho, wo = _pair(output_hw, "Output size", minimum=1)
    return c_out * ho * wo * (c_in // g) * kh * kw


def conv_transpose_macs(
    in_channels: int, out_channels: int, kernel: IntPair, input_hw: IntPair, groups: int = 1
) -> int:
    """Return the multiply-adds of one ConvTranspose2d pass on one image: every input cell is
    scattered through the kernel, ``C_in × H_in × W_in × (C_out / groups) × K_h × K_w``."""
    c_in, c_out, g = _check_groups(in_channels, out_channels, groups)
    kh, kw = _pair(kernel, "Kernel size", minimum=1)
    h, w = _pair(input_hw, "Input size", minimum=1)
    return c_in * h * w * (c_out // g) * kh * kw


def _axis_taps(
    n: int, kernel: int, stride: int, before: int, after: int, dilation: int
) -> np.ndarray:
    """Return the input index each tap reads along one axis, (n_out, kernel); padding is <0 or >=n."""
    n_out = _output_len(n, kernel, stride, before, after, dilation)
    starts = np.arange(n_out) * stride - before  # (n_out,) unpadded coordinate of the first tap
    return starts[:, None] + np.arange(kernel)[None, :] * dilation  # (n_out, kernel)


def coverage(
    input_hw: IntPair,
    kernel: IntPair,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    *,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """Return how many times the kernel's taps read each input cell over all output positions:
    int64 array of shape ``input_hw``.

    Zero marks cells that no output position reads (stride larger than the kernel extent).
    With ``padding_mode`` zeros the padding holds zeros and reads of it count for no cell; with
    reflect, replicate or circular a padding cell is a copy of an input cell, and reading it
    counts as reading that cell (it reaches the output just the same).
    """
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"Padding mode must be one of {', '.join(PADDING_MODES)}; got {padding_mode!r}."
        )
    h, w = _pair(input_hw, "Input size", minimum=1)
    kh, kw = _pair(kernel, "Kernel size", minimum=1)
    sh, sw = _pair(stride, "Stride", minimum=1)
    dh, dw = _pair(dilation, "Dilation", minimum=1)
    (pt, pb), (pl, pr) = padding_amounts(padding, (kh, kw), (sh, sw), (dh, dw))
    counts = []
    for n, taps in ((h, _axis_taps(h, kh, sh, pt, pb, dh)), (w, _axis_taps(w, kw, sw, pl, pr, dw))):
        taps = _source_cells(taps.ravel(), n, padding_mode)
        counts.append(np.bincount(taps, minlength=n))  # (n,) reads per row / column
    # The padding modes work axis by axis, so the 2-D count of (position, tap) reads factorises.
    return np.outer(counts[0], counts[1]).astype(np.int64)  # (H, W)


def _source_cells(taps: np.ndarray, n: int, padding_mode: str) -> np.ndarray:
    """Return the input cells (0..n-1) that taps read along one axis of n cells: padding taps
    (<0 or >=n) map to the cell the padding mode copies there, or are dropped for zeros."""
    if padding_mode == "zeros":
        return taps[(taps >= 0) & (taps < n)]
    if padding_mode == "replicate":
        return np.clip(taps, 0, n - 1)
    if padding_mode == "circular":
        return np.mod(taps, n)
    # reflect (the edge itself not repeated); the padding is smaller than n, so one fold will do
    taps = np.where(taps < 0, -taps, taps)
    return np.where(taps > n - 1, 2 * (n - 1) - taps, taps)


def output_positions(
    input_hw: IntPair,
    kernel: IntPair,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
) -> list[tuple[int, int]]:
    """Return every output position ``(row, col)`` in row-major order (the animation's frames)."""
    ho, wo = conv_output_shape(input_hw, kernel, stride, padding, dilation)
    return [(r, c) for r in range(ho) for c in range(wo)]


def footprint(
    position: tuple[int, int],
    kernel: IntPair,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
) -> np.ndarray:
    """Return the cells read for one output position, in PADDED-input coordinates.

    Shape ``(K_h * K_w, 2)`` of ``(row, col)``; subtract the top/left padding to get input
    coordinates (negative or too large ones are padding cells).
    """
    kh, kw = _pair(kernel, "Kernel size", minimum=1)
    sh, sw = _pair(stride, "Stride", minimum=1)
    dh, dw = _pair(dilation, "Dilation", minimum=1)
    padding_amounts(padding, (kh, kw), (sh, sw), (dh, dw))  # validates "same" with stride
    r, c = position
    rows = r * sh + np.arange(kh) * dh  # (K_h,)
    cols = c * sw + np.arange(kw) * dw  # (K_w,)
    grid_r, grid_c = np.meshgrid(rows, cols, indexing="ij")  # (K_h, K_w) each
    return np.stack([grid_r.ravel(), grid_c.ravel()], axis=1)  # (K_h*K_w, 2)


def transpose_footprint(
    cell: tuple[int, int],
    kernel: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> np.ndarray:
    """Return the output cells one input cell of a transposed convolution writes to.

    Shape ``(K_h * K_w, 2)`` of ``(row, col)`` in output coordinates; entries outside
    ``[0, H_out)`` fall in the cropped border (the transposed conv's padding).
    """
    kh, kw = _pair(kernel, "Kernel size", minimum=1)
    sh, sw = _pair(stride, "Stride", minimum=1)
    ph, pw = _pair(padding, "Padding", minimum=0)
    dh, dw = _pair(dilation, "Dilation", minimum=1)
    i, j = cell
    rows = i * sh - ph + np.arange(kh) * dh  # (K_h,)
    cols = j * sw - pw + np.arange(kw) * dw  # (K_w,)
    grid_r, grid_c = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([grid_r.ravel(), grid_c.ravel()], axis=1)  # (K_h*K_w, 2)


def transpose_coverage(
    input_hw: IntPair,
    kernel: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    output_padding: IntPair = 0,
) -> np.ndarray:
    """Return how many input cells land on each output cell of a transposed convolution.

    int64 array of the shape ``conv_transpose_output_shape`` gives; zeros are output cells
    that only receive the bias (stride larger than the kernel extent).
    """
    ho, wo = conv_transpose_output_shape(
        input_hw, kernel, stride, padding, dilation, output_padding
    )
    h, w = _pair(input_hw, "Input size", minimum=1)
    kh, kw = _pair(kernel, "Kernel size", minimum=1)
    sh, sw = _pair(stride, "Stride", minimum=1)
    ph, pw = _pair(padding, "Padding", minimum=0)
    dh, dw = _pair(dilation, "Dilation", minimum=1)
    counts = []
    for n, k, s, p, d, size in ((h, kh, sh, ph, dh, ho), (w, kw, sw, pw, dw, wo)):
        lands = np.arange(n)[:, None] * s - p + np.arange(k)[None, :] * d  # (n, k)
        lands = lands[(lands >= 0) & (lands < size)]
        counts.append(np.bincount(lands, minlength=size))
    return np.outer(counts[0], counts[1]).astype(np.int64)  # (H_out, W_out)


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> list[int]:
    """Return the receptive field (input pixels along one axis) after each layer of a stack.

    ``layers`` are ``(kernel, stride, dilation)`` tuples, first layer first.
    ``RF_l = RF_{l-1} + D_l (K_l - 1) J_{l-1}`` with jump ``J_l = J_{l-1} S_l``, ``RF_0 = J_0 = 1``.
    """
    rf, jump, out = 1, 1, []
    for i, layer in enumerate(layers, start=1):
        if len(layer) != 3:
            raise ValueError(f"Layer {i} must be (kernel, stride, dilation), got {layer!r}.")
        k = _check_int(layer[0], f"Layer {i} kernel", minimum=1)
        s = _check_int(layer[1], f"Layer {i} stride", minimum=1)
        d = _check_int(layer[2], f"Layer {i} dilation", minimum=1)
        rf += d * (k - 1) * jump
        jump *= s
        out.append(rf)
    return out


def _pad_checked(
    x: torch.Tensor,
    kernel_hw: tuple[int, int],
    stride: IntPair,
    padding: Padding,
    dilation: IntPair,
    padding_mode: str,
) -> torch.Tensor:
    """Return (N, C, H, W) ``x`` padded as ``torch.nn.Conv2d`` pads it, after the readable checks."""
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"Padding mode must be one of {', '.join(PADDING_MODES)}; got {padding_mode!r}."
        )
    h, w = x.shape[-2:]
    kh, kw = kernel_hw
    sh, sw = _pair(stride, "Stride", minimum=1)
    dh, dw = _pair(dilation, "Dilation", minimum=1)
    (pt, pb), (pl, pr) = padding_amounts(padding, (kh, kw), (sh, sw), (dh, dw))
    _output_len(h, kh, sh, pt, pb, dh)  # readable error before torch's
    _output_len(w, kw, sw, pl, pr, dw)
    if padding_mode == "reflect" and (max(pt, pb) >= h or max(pl, pr) >= w):
        raise ValueError(
            f"Reflect padding must be smaller than the input ({h}×{w}); got {max(pt, pb)}×{max(pl, pr)}."
        )
    if padding_mode == "circular" and (max(pt, pb) > h or max(pl, pr) > w):
        raise ValueError(
            f"Circular padding cannot exceed the input size ({h}×{w}); got {max(pt, pb)}×{max(pl, pr)}."
        )
    mode = "constant" if padding_mode == "zeros" else padding_mode
    return F.pad(x, (pl, pr, pt, pb), mode=mode)  # (N, C, H+pt+pb, W+pl+pr)


def padded_input(
    values: np.ndarray,
    kernel: IntPair,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """Return the (H, W) grid as the convolution reads it, padding included: float64
    (H + P_top + P_bottom, W + P_left + P_right), the cells filled by ``padding_mode``."""
    x = torch.as_tensor(np.asarray(values, dtype=np.float64))
    if x.ndim != 2:
        raise ValueError(f"The grid must be (H, W); got shape {tuple(x.shape)}.")
    kh, kw = _pair(kernel, "Kernel size", minimum=1)
    return _pad_checked(x[None, None], (kh, kw), stride, padding, dilation, padding_mode)[
        0, 0
    ].numpy()


def apply_kernel(
    image: np.ndarray | torch.Tensor,
    kernel: np.ndarray | torch.Tensor,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    padding_mode: str = "zeros",
    *,
    transposed: bool = False,
    output_padding: IntPair = 0,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Return the cross-correlation of an image with one 2-D kernel, as ``torch.nn.Conv2d`` computes it
    (``transposed=True``: as ``torch.nn.ConvTranspose2d`` does, zero padding only).

    image (H, W) or (C, H, W), any real dtype; kernel (K_h, K_w). Each channel is filtered by
    the same kernel (depthwise). Returns float32 (H_out, W_out) or (C, H_out, W_out) on the CPU;
    the work runs on ``device``. ``padding_mode`` is one of zeros, reflect, replicate, circular.
    """
    dev = resolve_device(device)
    x = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image)
    k = torch.as_tensor(np.asarray(kernel) if not torch.is_tensor(kernel) else kernel)
    if x.ndim not in (2, 3):
        raise ValueError(f"The image must be (H, W) or (C, H, W); got shape {tuple(x.shape)}.")
    if k.ndim != 2 or k.numel() == 0:
        raise ValueError(f"The kernel must be a non-empty 2-D matrix; got shape {tuple(k.shape)}.")
    if transposed and padding_mode != "zeros":
        raise ValueError("A transposed convolution only supports zero padding.")
    x = x.to(dtype=torch.float32)
    k = k.to(dtype=torch.float32)
    # checked where the data is (the CPU for the app's images), before it goes to the device
    if not torch.isfinite(x).all() or not torch.isfinite(k).all():
        raise ValueError("The image and the kernel must not contain NaN or infinite values.")
    x, k = x.to(dev), k.to(dev)
    squeeze = x.ndim == 2
    x = x[None] if squeeze else x  # (C, H, W)
    c, h, w = x.shape
    kh, kw = k.shape
    weight = k.expand(c, 1, kh, kw)  # (C, 1, K_h, K_w) one copy per channel
    sh, sw = _pair(stride, "Stride", minimum=1)
    dh, dw = _pair(dilation, "Dilation", minimum=1)
    if transposed:
        if isinstance(padding, str):
            raise ValueError("A transposed convolution takes a number for the padding.")
        ph, pw = _pair(padding, "Padding", minimum=0)
        oph, opw = _pair(output_padding, "Output padding", minimum=0)
        conv_transpose_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oph, opw))
        y = F.conv_transpose2d(
            x[None], weight, stride=(sh, sw), padding=(ph, pw), output_padding=(oph, opw),
            groups=c, dilation=(dh, dw),
        )[0]  # fmt: skip  # (C, H_out, W_out)
    else:
        xp = _pad_checked(x[None], (kh, kw), (sh, sw), padding, (dh, dw), padding_mode)
        y = F.conv2d(xp, weight, stride=(sh, sw), dilation=(dh, dw), groups=c)[
            0
        ]  # (C, H_out, W_out)
    y = y.cpu()
    return y[0] if squeeze else y


def _as_1d(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must not contain NaN or infinite values.")
    return arr


def full_convolve1d(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> np.ndarray:
    """Return the full convolution ``(a * b)[n] = sum_i a[i] b[n - i]``, length ``len(a) + len(b) - 1``."""
    a, b = _as_1d(a, "The first sequence"), _as_1d(b, "The second sequence")
    return np.array([sum(x * y for _, _, x, y in terms) for terms in _conv_terms(a, b)])


def _conv_terms(a: np.ndarray, b: np.ndarray) -> list[list[tuple[int, int, float, float]]]:
    out = []
    for n in range(len(a) + len(b) - 1):
        lo, hi = max(0, n - len(b) + 1), min(n, len(a) - 1)
        out.append([(i, n - i, float(a[i]), float(b[n - i])) for i in range(lo, hi + 1)])
    return out


def convolution_terms(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> list[list[tuple[int, int, float, float]]]:
    """Return, for each output index n of the full convolution, its terms ``(i, n-i, a[i], b[n-i])``."""
    return _conv_terms(_as_1d(a, "The first sequence"), _as_1d(b, "The second sequence"))


def correlation_terms(
    x: Sequence[float] | np.ndarray, u: Sequence[float] | np.ndarray
) -> list[list[tuple[int, int, float, float]]]:
    """Return, for each output index n of the valid cross-correlation, its terms
    ``(n + j, j, x[n + j], u[j])``; ``len(x) - len(u) + 1`` outputs."""
    x, u = _as_1d(x, "The signal"), _as_1d(u, "The kernel")
    if len(u) > len(x):
        raise ValueError(
            f"The kernel (length {len(u)}) is longer than the signal (length {len(x)}): "
            "a 'valid' cross-correlation has no output."
        )
    return [
        [(n + j, j, float(x[n + j]), float(u[j])) for j in range(len(u))]
        for n in range(len(x) - len(u) + 1)
    ]


def correlate1d(x: Sequence[float] | np.ndarray, u: Sequence[float] | np.ndarray) -> np.ndarray:
    """Return the "valid" cross-correlation ``y[n] = sum_j x[n + j] u[j]`` (what Conv1d computes),
    length ``len(x) - len(u) + 1``."""
    return np.array([sum(a * b for _, _, a, b in terms) for terms in correlation_terms(x, u)])


def check_settings(
    input_hw: IntPair,
    kernel: IntPair,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    *,
    in_channels: int = 1,
    out_channels: int = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    transposed: bool = False,
    output_padding: IntPair = 0,
) -> dict[str, str]:
    """Return what is wrong with a layer's settings, as {control: readable message}; empty when fine.

    Controls: "input", "kernel", "stride", "padding", "dilation", "padding_mode", "channels",
    "groups", "output_padding". The same rules torch applies, with messages a student can act on.
    """
    problems: dict[str, str] = {}
    checks = (
        ("input", input_hw, "Input size", 1),
        ("kernel", kernel, "Kernel size", 1),
        ("stride", stride, "Stride", 1),
        ("dilation", dilation, "Dilation", 1),
    )
    pairs = {}
    for key, value, name, minimum in checks:
        try:
            pairs[key] = _pair(value, name, minimum=minimum)
        except ValueError as err:
            problems[key] = str(err)
    for key, value in (("channels", in_channels), ("channels", out_channels)):
        try:
            _check_int(value, "Channels", minimum=1)
        except ValueError as err:
            problems[key] = str(err)
    if "channels" not in problems:
        try:
            _check_groups(in_channels, out_channels, groups)
        except ValueError as err:
            problems["groups"] = str(err)
    if padding_mode not in PADDING_MODES:
        problems["padding_mode"] = f"Padding mode must be one of {', '.join(PADDING_MODES)}."
    if transposed and isinstance(padding, str):
        problems["padding"] = (
            "A transposed convolution takes a number for the padding, not 'same'/'valid'."
        )
    if transposed and padding_mode != "zeros":
        problems["padding_mode"] = (
            "torch.nn.ConvTranspose2d only supports zero padding; choose 'zeros'."
        )
    if len(pairs) < 4 or "padding" in problems:  # geometry cannot be checked further
        return problems
    kh, kw = pairs["kernel"]
    try:
        pads = padding_amounts(padding, (kh, kw), pairs["stride"], pairs["dilation"])
    except ValueError as err:
        problems["padding"] = str(err)
        return problems
    (pt, pb), (pl, pr) = pads
    h, w = pairs["input"]
    if transposed:
        try:
            _pair(output_padding, "Output padding", minimum=0)
            conv_transpose_output_shape(
                (h, w), (kh, kw), pairs["stride"], padding, pairs["dilation"], output_padding
            )
        except ValueError as err:
            key = "output_padding" if "Output padding" in str(err) else "padding"
            problems[key] = str(err)
        return problems
    for n, k, s, before, after, d in ((h, kh, pairs["stride"][0], pt, pb, pairs["dilation"][0]),
                                      (w, kw, pairs["stride"][1], pl, pr, pairs["dilation"][1])):  # fmt: skip
        try:
            _output_len(n, k, s, before, after, d)
        except ValueError as err:
            problems["kernel"] = str(err)
            return problems
    if padding_mode == "reflect" and (max(pt, pb) >= h or max(pl, pr) >= w):
        problems["padding_mode"] = (
            f"Reflect padding must be smaller than the input: padding {max(pt, pb)}×{max(pl, pr)} "
            f"on a {h}×{w} input. Use less padding or another mode."
        )
    if padding_mode == "circular" and (max(pt, pb) > h or max(pl, pr) > w):
        problems["padding_mode"] = (
            f"Circular padding cannot wrap more than the whole input: padding "
            f"{max(pt, pb)}×{max(pl, pr)} on a {h}×{w} input."
        )
    return problems


def torch_layer(
    layer: ConvSettings, *, device: str | torch.device | None = None
) -> torch.nn.Module:
    """Return the ``torch.nn.Conv2d`` (or ``ConvTranspose2d``) with these settings on ``device``.

    Pass ``device="meta"`` to get shapes and parameter counts without allocating weights.
    """
    dev = torch.device("meta") if str(device) == "meta" else resolve_device(device)
    common = {
        "stride": _pair(layer.stride, "Stride", minimum=1),
        "dilation": _pair(layer.dilation, "Dilation", minimum=1),
        "groups": layer.groups,
        "bias": layer.bias,
        "device": dev,
    }
    kernel = _pair(layer.kernel, "Kernel size", minimum=1)
    channels = (layer.in_channels, layer.out_channels, kernel)
    if layer.transposed:
        return torch.nn.ConvTranspose2d(
            *channels,
            padding=_pair(layer.padding, "Padding", minimum=0),
            output_padding=_pair(layer.output_padding, "Output padding", minimum=0),
            **common,
        )
    padding = layer.padding
    pad = padding if isinstance(padding, str) else _pair(padding, "Padding", minimum=0)
    return torch.nn.Conv2d(*channels, padding=pad, padding_mode=layer.padding_mode, **common)


def torch_output_shape(
    layer: torch.nn.Module, in_channels: int, input_hw: IntPair
) -> tuple[int, ...]:
    """Return the shape ``layer`` really produces for one (1, C_in, H, W) input, run on the
    layer's own device (on "meta" only the shapes are computed)."""
    h, w = _pair(input_hw, "Input size", minimum=1)
    dev = next(layer.parameters()).device
    with torch.no_grad():
        x = torch.zeros(1, in_channels, h, w, device=dev)  # (1, C_in, H, W)
        return tuple(layer(x).shape)  # (1, C_out, H_out, W_out)


def layer_code(layer: ConvSettings) -> str:
    """Return the PyTorch line that builds this layer, e.g. ``nn.Conv2d(3, 10, kernel_size=5, padding=2)``;
    arguments at their defaults are left out."""

    def fmt(value: IntPair | str) -> str:
        if isinstance(value, str):
            return repr(value)
        a, b = (value, value) if isinstance(value, int) else tuple(value)
        return str(a) if a == b else f"({a}, {b})"

    args = [str(layer.in_channels), str(layer.out_channels), f"kernel_size={fmt(layer.kernel)}"]
    for name, value, default in (
        ("stride", layer.stride, "1"),
        ("padding", layer.padding, "0"),
        ("output_padding", layer.output_padding if layer.transposed else 0, "0"),
        ("dilation", layer.dilation, "1"),
    ):
        text = fmt(value)
        if text != default:
            args.append(f"{name}={text}")
    if layer.groups != 1:
        args.append(f"groups={layer.groups}")
    if not layer.bias:
        args.append("bias=False")
    if layer.padding_mode != "zeros" and not layer.transposed:
        args.append(f"padding_mode={layer.padding_mode!r}")
    return f"nn.{'ConvTranspose2d' if layer.transposed else 'Conv2d'}({', '.join(args)})"


def parse_sequence(text: str, *, name: str = "The sequence", max_length: int = 32) -> list[float]:
    """Return the numbers in a comma- or space-separated string, e.g. "1, 2, 3" -> [1.0, 2.0, 3.0].

    Raises ``ValueError`` naming the first entry that is not a finite number, or when the
    sequence is empty or longer than ``max_length``.
    """
    parts = [p for p in text.replace(",", " ").replace(";", " ").split() if p]
    if not parts:
        raise ValueError(f"{name} is empty: type numbers separated by commas, e.g. 1, 2, 3.")
    if len(parts) > max_length:
        raise ValueError(f"{name} has {len(parts)} entries; at most {max_length} are allowed.")
    out = []
    for i, part in enumerate(parts, start=1):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{name}: entry {i} ({part!r}) is not a number.") from None
        if not np.isfinite(value):
            raise ValueError(f"{name}: entry {i} ({part!r}) must be a finite number.")
        out.append(value)
    return out


def format_number(value: float) -> str:
    """Return a number as text: whole numbers up to 10^15 without ".0", others (and larger
    ones, which ``int`` would write out in up to 309 digits) in %g form."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"


def written_sums(
    terms: list[list[tuple[int, int, float, float]]],
    *,
    names: tuple[str, str] = ("a", "b"),
    output: str = "y",
) -> list[str]:
    """Return each output written out term by term, e.g.
    ``y[1] = a[0]·b[1] + a[1]·b[0] = 1·5 + 2·4 = 13`` (from ``convolution_terms`` /
    ``correlation_terms``)."""
    a, b = names
    lines = []
    for n, row in enumerate(terms):
        symbols = " + ".join(f"{a}[{i}]·{b}[{j}]" for i, j, _, _ in row)
        numbers = " + ".join(f"{format_number(x)}·{format_number(y)}" for _, _, x, y in row)
        total = sum(x * y for _, _, x, y in row)
        lines.append(f"{output}[{n}] = {symbols} = {numbers} = {format_number(round(total, 10))}")
    return lines
