"""Theoretical receptive fields: which input pixels each layer output unit can depend on.

A unit's *receptive field* is the bounding box, in input pixels, of the pixels that can change
its value; its *jump* is the distance in input pixels between neighbouring units of the same
feature map (the product of the strides so far); its *start* is the first input pixel (row,
column) covered by the field of unit (0, 0), negative where the field reaches into padding.
Unit ``i`` along an axis covers pixels ``start + i * jump`` to ``start + i * jump + size - 1``.

The recurrences (Araujo, Norris and Sim, "Computing receptive fields of convolutional neural
networks", Distill 2019), for a kernel ``k``, stride ``s``, padding ``p`` and dilation ``d``::

    size  <- size + (k - 1) * d * jump        jump <- jump * s        start <- start - p * jump

Padding moves the field, it never changes its size, so fields near the border and fields larger
than the image are both normal. Where branches merge (residual additions, concatenation along
channels) the field is the union of the branches' fields: the smallest box holding both.

How: ``ReceptiveFieldTracer`` is a ``TorchFunctionMode`` that watches one real forward pass and
tags every tensor computed from the input with its field, op by op (convolutions, pooling,
elementwise ops, reshapes, permutes, concatenation, linear layers, attention, normalisation). A
traced graph (``torch.fx``) would need a model free of data-dependent Python (vizlib's ViT checks
its input size, torchvision's models assert shapes); watching the real pass works for any model
that runs, and it sees residual additions that no module hook can. An op the tracer does not
know taints its outputs as unknown, and everything computed from them: never a wrong number.

Ops that mix every position (a Linear on flattened maps, global pooling, attention, statistics
over the map) give a field spanning all units; when that covers the whole input it is reported
as the whole image. Attention is understood fused (``scaled_dot_product_attention``,
``nn.MultiheadAttention``) and written out as separate ops (``softmax(q @ k^T) @ v`` with
``matmul``, ``bmm`` or ``einsum``): a product that sums over the positions of an operand mixes
them all; one that keeps the positions of both operands (the scores ``q @ k^T``, entry (i, j)
pairing query token i with key token j) is followed as a pair of fields, reported unknown (no
single box per unit) until a softmax over the keys or the product with the values mixes every
key. A product with a weight (a Linear along channels) keeps the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

__all__ = [
    "ReceptiveField",
    "ReceptiveFieldTracer",
    "field_columns",
    "field_text",
    "larger_than_input",
]

WHOLE_IMAGE = "whole image"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class ReceptiveField:
    """The field of one tensor's units, per spatial axis of the input (height, width).

    ``size``, ``jump`` and ``start`` in input pixels (see the module docstring); ``jump`` is None
    once the maps were flattened (neighbouring values are no longer neighbouring positions).
    ``whole_image``: every unit sees the whole input; ``known`` False: the tracer met an op it
    cannot analyse on the way, or each unit pairs two fields (attention scores before the
    softmax: query token i with key token j). In both cases ``size``, ``jump`` and ``start``
    are None.
    """

    size: tuple[int, ...] | None = None
    jump: tuple[int, ...] | None = None
    start: tuple[int, ...] | None = None
    whole_image: bool = False
    known: bool = True


def field_columns(field: ReceptiveField | None) -> dict[str, Any]:
    """Return the layer-table columns of a field.

    ``receptive_field``: (H, W) in input pixels, ``"whole image"``, ``"unknown"``, or None where
    it does not apply (the output does not depend on an image input); ``jump`` and ``rf_start``:
    (H, W) in input pixels or None.
    """
    if field is None:
        return {"receptive_field": None, "jump": None, "rf_start": None}
    if not field.known:
        return {"receptive_field": UNKNOWN, "jump": None, "rf_start": None}
    if field.whole_image:
        return {"receptive_field": WHOLE_IMAGE, "jump": None, "rf_start": None}
    return {"receptive_field": field.size, "jump": field.jump, "rf_start": field.start}


def field_text(value: tuple[int, ...] | str | None) -> str:
    """Return a layer-table value as text: (5, 5) -> "5 x 5"; "whole image", "unknown" as they
    are; None -> "—" (does not apply)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return " x ".join(str(v) for v in value)


def larger_than_input(rows: list[dict[str, Any]], image_size: tuple[int, ...]) -> list[str]:
    """Return the names of layer-table rows whose field is larger than the input along some axis.

    ``rows`` from ``vizlib.summary.layer_table``; ``image_size`` (H, W) in pixels. Such fields
    are correct: they include the zero padding around the image that border units see.
    """
    return [
        r["name"]
        for r in rows
        if isinstance(r.get("receptive_field"), tuple)
        and any(f > n for f, n in zip(r["receptive_field"], image_size, strict=True))
    ]


# ---- tags ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Axis:
    size: int
    jump: int
    start: int


@dataclass(frozen=True)
class _Local:
    """Field of a tensor whose units see a bounded patch.

    ``layout``: "grid" (``dims[i]`` indexes positions along input axis i), "tokens" (the single
    dim ``dims[0]`` holds the positions row-major, after ``prefix`` tokens that see no pixels) or
    "mixed" (positions merged with other values in ``dims[0]``, or gone when ``dims`` is empty).
    ``grid``: number of positions along each axis.
    """

    axes: tuple[_Axis, ...]
    dims: tuple[int, ...]
    layout: str
    grid: tuple[int, ...]
    prefix: int = 0


@dataclass(frozen=True)
class _Pairs:
    """Field of a tensor that pairs two sets of positions, e.g. attention scores ``q @ k^T``.

    Unit (..., i, ..., j, ...) sees the field of position i of ``first`` together with that of
    position j of ``second``; each side is a ``_Local`` whose ``dims`` index this tensor, the two
    sides' dims disjoint.
    """

    first: _Local
    second: _Local

    @property
    def sides(self) -> tuple[_Local, _Local]:
        return (self.first, self.second)


_Tag = _Local | _Pairs | str  # or WHOLE_IMAGE / UNKNOWN


def _pair(a: _Local, b: _Local) -> _Pairs:
    """The pairing of two fields, sides in the order of their dims (scores and their transpose
    merge side by side)."""
    return _Pairs(*sorted((a, b), key=lambda side: side.dims))


def _sides(tag: _Local | _Pairs) -> tuple[_Local, ...]:
    return tag.sides if isinstance(tag, _Pairs) else (tag,)


def _remap(tag: _Tag, new_dim: Any) -> _Tag:
    """The same field with every position dim d moved to ``new_dim(d)``."""
    if isinstance(tag, _Pairs):
        return _pair(*(_remap(side, new_dim) for side in tag.sides))
    if isinstance(tag, _Local):
        return replace(tag, dims=tuple(new_dim(d) for d in tag.dims))
    return tag


def _union(tags: list[_Tag]) -> _Tag:
    """Field where branches merge: the bounding box of both, per unit."""
    if UNKNOWN in tags:
        return UNKNOWN
    if WHOLE_IMAGE in tags:
        return WHOLE_IMAGE
    pairs = [t for t in tags if isinstance(t, _Pairs)]
    if pairs:  # each side with the same side of the others, at the same dims
        if len(pairs) != len(tags):
            return UNKNOWN
        merged = [_union([p.sides[i] for p in pairs]) for i in (0, 1)]
        return UNKNOWN if UNKNOWN in merged else _pair(*merged)
    first = tags[0]
    for other in tags[1:]:
        same_layout = (other.dims, other.layout, other.grid, other.prefix, len(other.axes)) == (
            first.dims,
            first.layout,
            first.grid,
            first.prefix,
            len(first.axes),
        )
        if not same_layout or any(
            a.jump != b.jump for a, b in zip(first.axes, other.axes, strict=True)
        ):
            return UNKNOWN  # unit i of one branch is not at unit i of the other
        axes = []
        for a, b in zip(first.axes, other.axes, strict=True):
            start = min(a.start, b.start)
            end = max(a.start + a.size, b.start + b.size)
            axes.append(_Axis(end - start, a.jump, start))
        first = replace(first, axes=tuple(axes))
    return first


# ---- argument helpers ---------------------------------------------------------------------


def _bind(args: tuple, kwargs: dict, names: tuple[str, ...]) -> dict[str, Any]:
    bound = dict(zip(names, args, strict=False))  # extra args unused
    bound.update(kwargs)
    return bound


def _ntuple(value: Any, n: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return (int(value[0]),) * n
        if len(value) != n:
            raise ValueError(f"expected {n} values, got {value}")
        return tuple(int(v) for v in value)
    return (int(value),) * n


def _norm_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


def _tensors(obj: Any) -> list[torch.Tensor]:
    return [t for t in tree_leaves(obj) if isinstance(t, torch.Tensor)]


_POINTWISE = frozenset(
    """abs absolute neg negative pos positive add sub subtract rsub radd mul multiply rmul div
    divide true_divide rtruediv rdiv floor_divide remainder fmod pow rpow float_power exp exp2
    expm1 log log2 log10 log1p sqrt rsqrt square reciprocal sign sgn sin cos tan tanh sigmoid erf
    erfc relu relu6 leaky_relu elu selu celu gelu silu mish hardswish hardsigmoid hardtanh
    hardshrink softshrink tanhshrink softsign softplus logsigmoid threshold prelu rrelu clamp clip
    clamp_min clamp_max maximum minimum fmax fmin where masked_fill lerp addcmul addcdiv dropout
    dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout contiguous clone detach to
    type type_as float double half bfloat16 requires_grad cpu cuda nan_to_num floor ceil round
    trunc frac eq ne lt le gt ge logical_not logical_and logical_or isnan isfinite
    local_response_norm""".split()
)
_RESHAPES = frozenset(
    "flatten unflatten view reshape view_as reshape_as squeeze unsqueeze ravel".split()
)
_UNTAGGED = frozenset(
    """zeros_like ones_like empty_like full_like rand_like randn_like new_zeros new_ones
    new_empty new_full new_tensor""".split()
)
_POOL = re.compile(r"(max|avg|lp)_pool([123])d(_with_indices)?")
_ADAPTIVE = re.compile(r"adaptive_(max|avg)_pool([123])d(_with_indices)?")
_CONV = re.compile(r"conv([123])d")
_REDUCE = frozenset("mean sum amax amin max min std var prod logsumexp nansum nanmean".split())
_SHAPE_FROM_SECOND = frozenset("type_as expand_as view_as reshape_as to".split())
_ATTENTION = frozenset(
    "scaled_dot_product_attention multi_head_attention_forward native_multi_head_attention".split()
)


def _op_name(func: Any) -> str:
    name = getattr(func, "__name__", "")
    if name == "__get__":  # a tensor property such as .T or .data
        return "property:" + getattr(getattr(func, "__self__", None), "__name__", "")
    return name.strip("_")


# ---- the tracer ---------------------------------------------------------------------------


class ReceptiveFieldTracer(TorchFunctionMode):
    """Tag every tensor computed from ``image`` with its receptive field during a forward pass.

    ``image``: (..., H, W) for ``spatial_dims=2`` (the trailing dims are the spatial axes). Use as
    a context manager around the forward pass, then ask ``field(tensor)`` for any tensor computed
    inside it (a module's output, read from a forward hook). The pass itself is unchanged.
    Torch function modes are per thread: another thread's pass is not traced.

    >>> with ReceptiveFieldTracer(x) as tracer:  # doctest: +SKIP
    ...     y = model(x)
    >>> tracer.field(y)  # doctest: +SKIP
    """

    def __init__(self, image: torch.Tensor, *, spatial_dims: int = 2) -> None:
        super().__init__()
        if image.ndim < spatial_dims:
            raise ValueError(f"image has {image.ndim} dims, fewer than {spatial_dims} spatial")
        self._tags: dict[int, tuple[torch.Tensor, _Tag]] = {}
        self.image_size = tuple(int(s) for s in image.shape[image.ndim - spatial_dims :])
        axes = tuple(_Axis(1, 1, 0) for _ in self.image_size)
        dims = tuple(range(image.ndim - spatial_dims, image.ndim))
        self._set(image, _Local(axes, dims, "grid", self.image_size))

    # -- public --
    def field(self, tensor: Any) -> ReceptiveField | None:
        """Return the field of ``tensor``'s units, or None if it was not computed from the image."""
        tag = self._get(tensor) if isinstance(tensor, torch.Tensor) else None
        if tag is None:
            return None
        if tag == UNKNOWN or isinstance(tag, _Pairs):  # a pair of fields: no single box
            return ReceptiveField(known=False)
        if tag == WHOLE_IMAGE:
            return ReceptiveField(whole_image=True)
        return ReceptiveField(
            size=tuple(a.size for a in tag.axes),
            jump=None if tag.layout == "mixed" else tuple(a.jump for a in tag.axes),
            start=tuple(a.start for a in tag.axes),
        )

    # -- bookkeeping --
    def _get(self, t: torch.Tensor) -> _Tag | None:
        entry = self._tags.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else None

    def _set(self, t: torch.Tensor, tag: _Tag | None) -> None:
        if tag is None:
            self._tags.pop(id(t), None)
        else:
            self._tags[id(t)] = (t, tag)  # the reference keeps the id from being reused

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = _tensors((args, kwargs))
        tagged = [(t, self._get(t)) for t in inputs]
        tagged = [(t, tag) for t, tag in tagged if tag is not None]
        if not tagged:
            return out
        name = _op_name(func)
        if name in _SHAPE_FROM_SECOND:  # the second tensor gives a shape or dtype, no values
            tagged = [(t, tag) for t, tag in tagged if t is args[0]]
            if not tagged:
                return out
        outputs = _tensors(out)
        try:
            tags = self._rule(name, args, kwargs, out, tagged)
        except Exception:  # noqa: BLE001 - a rule that cannot follow an op fails closed, as unknown
            tags = None
        if tags is None or len(tags) != len(outputs):  # an op this tracer does not know
            tag = WHOLE_IMAGE if all(t == WHOLE_IMAGE for _, t in tagged) else UNKNOWN
            tags = [tag] * len(outputs)
        for t, tag in zip(outputs, tags, strict=True):
            self._set(t, tag)
        if name == "setitem" and isinstance(args[0], torch.Tensor):
            self._set(args[0], UNKNOWN)  # partly overwritten: its units' fields now differ
        return out

    # -- rules: each returns one tag per tensor output, or None for "unknown op" --
    def _rule(
        self, name: str, args: tuple, kwargs: dict, out: Any, tagged: list
    ) -> list[_Tag | None] | None:
        outputs = _tensors(out)
        if not outputs:
            return []
        if name in _UNTAGGED:
            return [None] * len(outputs)
        if all(tag == WHOLE_IMAGE for _, tag in tagged):
            return [WHOLE_IMAGE] * len(outputs)  # anything computed from whole-image units
        if any(tag == UNKNOWN for _, tag in tagged):
            return [UNKNOWN] * len(outputs)
        single = outputs[0]
        if any(isinstance(tag, _Pairs) for _, tag in tagged):
            return self._pairs_rule(name, args, kwargs, tagged, outputs)
        if name in _POINTWISE or name == "property:data":
            return [self._pointwise(tagged, single)] * len(outputs)
        if name == "batch_norm":
            p = _bind(args, kwargs, ("input", "mean", "var", "weight", "bias", "training"))
            if p.get("training"):  # batch statistics: every position
                return [self._mix_keep(tagged, single)]
            return [self._pointwise(tagged, single)]
        if name in ("layer_norm", "group_norm", "instance_norm", "softmax", "log_softmax"):
            return [self._normalise(name, args, kwargs, tagged, single)]
        if m := _CONV.fullmatch(name):
            return [self._conv(int(m[1]), args, kwargs, single)]
        if m := _POOL.fullmatch(name):
            return [self._pool(m[1], int(m[2]), args, kwargs, single)] * len(outputs)
        if m := _ADAPTIVE.fullmatch(name):
            return [self._adaptive(int(m[2]), args[0], single)] * len(outputs)
        if name == "linear":
            return [self._linear(args, kwargs, single)]
        if name in ("matmul", "mm", "bmm", "rmatmul", "einsum"):
            return [self._product(name, args, single)]
        if name in _ATTENTION:
            return self._attention(name, args, kwargs, outputs)
        if name in _RESHAPES:
            return [self._reshape(args[0], single)]
        if name in ("permute", "transpose", "swapaxes", "swapdims"):
            return [self._permute(name, args, kwargs, single)]
        if name in ("expand", "expand_as", "broadcast_to"):
            return [self._pointwise(tagged, single)]
        if name in ("cat", "concat", "concatenate", "stack"):
            return [self._cat(name, args, kwargs, single)]
        if name in ("unbind", "chunk", "split", "tensor_split", "split_with_sizes"):
            return self._split(name, args, kwargs, outputs)
        if name == "getitem":
            return [self._getitem(args[0], args[1], single)]
        if name == "pad":
            return [self._pad(args, kwargs, single)]
        if name in _REDUCE:
            return self._reduce(name, args, kwargs, tagged, outputs)
        return None

    def _pairs_rule(
        self, name: str, args: tuple, kwargs: dict, tagged: list, outputs: list
    ) -> list[_Tag] | None:
        """Ops on paired fields (attention scores): only those that keep or end the pairing."""
        single = outputs[0]
        if name in _POINTWISE or name == "property:data":
            return [self._pointwise(tagged, single)] * len(outputs)
        if name in ("softmax", "log_softmax"):
            x = args[0] if args else kwargs["input"]
            dim = _norm_dim(int(_bind(args, kwargs, ("input", "dim"))["dim"]), x.ndim)
            tag = self._tag_of(x)
            if not isinstance(tag, _Pairs):
                return None  # the pairs came in through another argument: not followed
            touched = [side for side in tag.sides if dim in side.dims]
            if not touched:
                return [self._pointwise(tagged, single)]
            if touched[0].dims != (dim,):
                return [UNKNOWN]  # along one axis of a grid only
            # each unit now depends on every position of that side (every key)
            return [WHOLE_IMAGE if self._covers(self._hull(touched[0])) else UNKNOWN]
        if name in ("permute", "transpose", "swapaxes", "swapdims"):
            return [self._permute(name, args, kwargs, single)]
        if name in ("matmul", "mm", "bmm", "rmatmul", "einsum"):
            return [self._product(name, args, single)]
        if name in _RESHAPES:
            x = args[0]
            groups = _regroup(tuple(x.shape), tuple(single.shape))
            if groups is None or len(tagged) != 1:
                return None
            moved = {g[0][0]: g[1][0] for g in groups if len(g[0]) == len(g[1]) == 1}
            dims = [d for side in _sides(tagged[0][1]) for d in side.dims]
            if any(d not in moved for d in dims):
                return None  # a position dim merged or split: not followed
            return [_remap(tagged[0][1], moved.__getitem__)]
        return None

    def _tag_of(self, t: Any) -> _Tag | None:
        return self._get(t) if isinstance(t, torch.Tensor) else None

    def _pointwise(self, tagged: list, out: torch.Tensor) -> _Tag:
        """Elementwise ops with broadcasting: the union of the operands' fields."""
        aligned = []
        for t, tag in tagged:
            if isinstance(tag, str):
                aligned.append(tag)
                continue
            shift = out.ndim - t.ndim
            dims = [d for side in _sides(tag) for d in side.dims]
            if shift < 0 or any(t.shape[d] != out.shape[d + shift] for d in dims):
                return UNKNOWN  # a map broadcast over positions: fields differ per unit
            aligned.append(_remap(tag, lambda d, shift=shift: d + shift))
        return _union(aligned)

    def _covers(self, axes: tuple[_Axis, ...]) -> bool:
        return all(
            a.start <= 0 and a.start + a.size >= n
            for a, n in zip(axes, self.image_size, strict=True)
        )

    def _hull(self, tag: _Local) -> tuple[_Axis, ...]:
        """Bounding box of every unit's field (all positions mixed), per axis."""
        return tuple(
            _Axis(a.size + (g - 1) * a.jump, a.jump * g, a.start)
            for a, g in zip(tag.axes, tag.grid, strict=True)
        )

    def _collapse(self, tag: _Local, dims: tuple[int, ...], layout: str) -> _Tag:
        """All positions mixed into each output value, positions gone."""
        axes = self._hull(tag)
        if self._covers(axes):
            return WHOLE_IMAGE
        return _Local(axes, dims, layout, (1,) * len(axes))

    def _mix_keep(self, tagged: list, out: torch.Tensor) -> _Tag:
        """Every unit depends on every position but the positions stay: whole image or unknown."""
        for _, tag in tagged:
            if isinstance(tag, _Local) and not self._covers(self._hull(tag)):
                return UNKNOWN
        return WHOLE_IMAGE

    def _normalise(self, name: str, args: tuple, kwargs: dict, tagged: list, out) -> _Tag:
        x = args[0] if args else kwargs["input"]
        tag = self._tag_of(x)
        if not isinstance(tag, _Local):
            return self._pointwise(tagged, out)
        if name == "layer_norm":
            shape = _bind(args, kwargs, ("input", "normalized_shape"))["normalized_shape"]
            n = len(shape) if isinstance(shape, (list, tuple, torch.Size)) else 1
            mixed = set(range(x.ndim - n, x.ndim))
        elif name == "group_norm":
            mixed = set(range(1, x.ndim))
        elif name == "instance_norm":
            names = ("input", "running_mean", "running_var", "weight", "bias", "use_input_stats")
            if not _bind(args, kwargs, names).get("use_input_stats", True):
                return self._pointwise(tagged, out)  # running statistics: per position
            mixed = set(range(2, x.ndim))
        else:  # softmax over one dim
            p = _bind(args, kwargs, ("input", "dim"))
            mixed = {_norm_dim(int(p["dim"]), x.ndim)}
        touched = mixed & set(tag.dims)
        if not touched:
            return self._pointwise(tagged, out)
        if touched != set(tag.dims):
            return UNKNOWN  # mixes along one axis only
        return self._mix_keep(tagged, out)

    def _conv(self, n: int, args: tuple, kwargs: dict, out: torch.Tensor) -> _Tag:
        p = _bind(args, kwargs, ("input", "weight", "bias", "stride", "padding", "dilation"))
        x, weight = p["input"], p["weight"]
        tag = self._tag_of(x)
        if tag is None:
            return UNKNOWN  # the image is the weight: not a receptive field
        if not self._is_trailing_grid(tag, x, n) or self._tag_of(weight) is not None:
            return UNKNOWN
        kernel = tuple(int(k) for k in weight.shape[2:])
        stride = _ntuple(p.get("stride", 1), n)
        dilation = _ntuple(p.get("dilation", 1), n)
        padding = p.get("padding", 0)
        if padding == "valid":
            padding = (0,) * n
        elif padding == "same":  # torch puts the odd pixel of total padding on the right
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))
        padding = _ntuple(padding, n)
        return self._window(tag, out, n, kernel, stride, padding, dilation)

    def _is_trailing_grid(self, tag: _Local, x: torch.Tensor, n: int) -> bool:
        return (
            isinstance(tag, _Local)
            and tag.layout == "grid"
            and len(tag.axes) == n
            and tag.dims == tuple(range(x.ndim - n, x.ndim))
        )

    def _window(self, tag, out, n, kernel, stride, padding, dilation) -> _Tag:
        axes = tuple(
            _Axis(a.size + (k - 1) * d * a.jump, a.jump * s, a.start - p * a.jump)
            for a, k, s, p, d in zip(tag.axes, kernel, stride, padding, dilation, strict=True)
        )
        dims = tuple(range(out.ndim - n, out.ndim))
        return _Local(axes, dims, "grid", tuple(int(out.shape[d]) for d in dims))

    def _pool(self, kind: str, n: int, args: tuple, kwargs: dict, out: torch.Tensor) -> _Tag:
        if kind == "lp":
            p = _bind(args, kwargs, ("input", "norm_type", "kernel_size", "stride"))
            p.setdefault("padding", 0)
        elif kind == "max":
            names = ("input", "kernel_size", "stride", "padding", "dilation")
            p = _bind(args, kwargs, names)
        else:
            p = _bind(args, kwargs, ("input", "kernel_size", "stride", "padding"))
        x = p["input"]
        tag = self._tag_of(x)
        if not self._is_trailing_grid(tag, x, n):
            return UNKNOWN
        kernel = _ntuple(p["kernel_size"], n)
        stride = p.get("stride")
        stride = kernel if stride is None or stride == () or stride == [] else _ntuple(stride, n)
        padding = _ntuple(p.get("padding", 0), n)
        dilation = _ntuple(p.get("dilation", 1), n)
        return self._window(tag, out, n, kernel, stride, padding, dilation)

    def _adaptive(self, n: int, x: torch.Tensor, out: torch.Tensor) -> _Tag:
        tag = self._tag_of(x)
        if not self._is_trailing_grid(tag, x, n):
            return UNKNOWN
        sizes_in = x.shape[x.ndim - n :]
        sizes_out = out.shape[out.ndim - n :]
        if any(i % o for i, o in zip(sizes_in, sizes_out, strict=True)):
            return UNKNOWN  # uneven windows: the field differs from unit to unit
        kernel = tuple(i // o for i, o in zip(sizes_in, sizes_out, strict=True))
        result = self._window(tag, out, n, kernel, kernel, (0,) * n, (1,) * n)
        if all(o == 1 for o in sizes_out) and self._covers(result.axes):
            return WHOLE_IMAGE  # global pooling
        return result

    def _linear(self, args: tuple, kwargs: dict, out: torch.Tensor) -> _Tag:
        p = _bind(args, kwargs, ("input", "weight", "bias"))
        x = p["input"]
        tag = self._tag_of(x)
        if tag is None or self._tag_of(p["weight"]) is not None:
            return UNKNOWN
        last = x.ndim - 1
        if last not in tag.dims:
            return tag  # a Linear over channels, at every position: fields unchanged
        if tag.layout == "grid" and len(tag.dims) > 1:
            return UNKNOWN  # mixes one spatial axis only
        return self._collapse(tag, (out.ndim - 1,), "mixed")

    def _product(self, name: str, args: tuple, out: torch.Tensor) -> _Tag:
        """matmul, mm, bmm, einsum: which dims of each operand reach which dims of ``out``."""
        if name == "einsum":
            operands = _einsum_dims(args, out.ndim)
        else:
            a, b = (args[1], args[0]) if name == "rmatmul" else (args[0], args[1])
            operands = _matmul_dims(a, b, out.ndim)
        if operands is None:
            return UNKNOWN
        tagged = [(t, self._tag_of(t)) for t, _ in operands]
        if name != "einsum" and sum(tag is not None for _, tag in tagged) == 1:
            if not any(isinstance(tag, _Pairs) for _, tag in tagged):
                return self._matmul(a, b, out)  # with a weight: may keep a number
        return self._contract(operands, out)

    def _contract(self, operands: list[tuple[Any, list[int | None]]], out: torch.Tensor) -> _Tag:
        """A sum of products: operand dim d goes to ``out`` dim ``dims[d]``, or is summed (None).

        Every output unit multiplies units of every operand. An operand whose positions are
        summed gives each output unit all of its positions (whole image when they cover it);
        positions kept by two operands at different dims pair them (attention scores).
        """
        kept: list[_Local] = []
        mixed: list[_Local] = []
        for t, dims in operands:
            tag = self._tag_of(t)
            if tag is None:
                continue
            if isinstance(tag, str):
                return tag  # WHOLE_IMAGE (UNKNOWN never reaches a rule): in every output unit
            for side in _sides(tag):
                to = [dims[d] for d in side.dims]
                if to and all(o is None for o in to):
                    mixed.append(side)
                elif any(o is None for o in to):
                    return UNKNOWN  # summed along one axis of a grid only
                elif any(t.shape[d] != out.shape[o] for d, o in zip(side.dims, to, strict=True)):
                    return UNKNOWN  # one position broadcast along an output dim
                else:
                    kept.append(replace(side, dims=tuple(to)))
        if any(self._covers(self._hull(side)) for side in mixed):
            return WHOLE_IMAGE
        if mixed:
            return UNKNOWN  # part of the image, paired with other fields: not followed
        groups: list[list[_Local]] = []
        for side in kept:  # positions at the same dims meet unit by unit: their union
            same = [g for g in groups if g[0].dims == side.dims]
            if same:
                same[0].append(side)
            elif any(set(g[0].dims) & set(side.dims) for g in groups):
                return UNKNOWN
            else:
                groups.append([side])
        merged = [_union(g) for g in groups]
        if UNKNOWN in merged or not 1 <= len(merged) <= 2:
            return UNKNOWN
        return merged[0] if len(merged) == 1 else _pair(*merged)

    def _matmul(self, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> _Tag:
        """One operand from the image, the other a weight."""
        tag_a, tag_b = self._tag_of(a), self._tag_of(b)
        if tag_a is not None:
            if a.ndim - 1 in tag_a.dims:
                return self._linear((a, b), {}, out)
            return replace(tag_a, dims=tuple(out.ndim - (a.ndim - d) for d in tag_a.dims))
        if b.ndim - 2 in tag_b.dims:
            if tag_b.layout == "grid":
                return UNKNOWN
            return self._collapse(tag_b, (out.ndim - 2,), "mixed")
        return replace(tag_b, dims=tuple(out.ndim - (b.ndim - d) for d in tag_b.dims))

    def _attention(self, name: str, args: tuple, kwargs: dict, outputs: list) -> list[_Tag | None]:
        p = _bind(args, kwargs, ("query", "key", "value"))
        key = p["key"]
        q, k, v = (self._tag_of(p[n]) for n in ("query", "key", "value"))
        if k is None and v is None:
            return [q] + [UNKNOWN] * (len(outputs) - 1)  # each query attends to fixed keys
        # the sequence dim of the keys: (L, N, E) for torch's functional MHA, (..., L, E) else
        seq = 0 if name == "multi_head_attention_forward" else key.ndim - 2
        if any(isinstance(t, _Local) and seq not in t.dims for t in (k, v)):
            return [UNKNOWN] * len(outputs)  # attention across something other than positions
        mixed = [(None, t) for t in (q, k, v) if t is not None]
        return [self._mix_keep(mixed, outputs[0])] * len(outputs)

    def _reshape(self, x: torch.Tensor, out: torch.Tensor) -> _Tag:
        """Reshapes, flatten, squeeze, unsqueeze: follow the positions through regrouped dims."""
        tag = self._tag_of(x)
        in_shape, out_shape = tuple(x.shape), tuple(out.shape)
        if in_shape == out_shape:
            return tag
        groups = _regroup(in_shape, out_shape)
        if groups is None:
            return UNKNOWN
        big = [d for d in tag.dims if in_shape[d] != 1]
        if not big:  # one position only: it survives any reshape
            return replace(tag, dims=(), layout="mixed")
        if len(big) != len(tag.dims):
            return UNKNOWN
        group_of = {d: g for g in groups for d in g[0]}
        found = {id(group_of[d]) for d in big}
        if tag.layout == "grid" and all(
            group_of[d][0] == [d] and len(group_of[d][1]) == 1 for d in big
        ):
            dims = tuple(group_of[d][1][0] for d in big)
            return replace(tag, dims=dims)
        if len(found) != 1:
            return UNKNOWN  # the positions split over several dims in some other way
        in_dims, out_dims = group_of[big[0]]
        if len(out_dims) == 1:
            if in_dims == big and tag.layout == "grid":
                return replace(tag, dims=(out_dims[0],), layout="tokens", prefix=0)
            if in_dims == big:  # tokens or mixed dim, only renumbered
                return replace(tag, dims=(out_dims[0],))
            return replace(tag, dims=(out_dims[0],), layout="mixed", prefix=0)
        if (
            tag.layout == "tokens"
            and tag.prefix == 0
            and in_dims == big
            and tuple(out_shape[d] for d in out_dims) == tag.grid
        ):
            return replace(tag, dims=tuple(out_dims), layout="grid")  # tokens back to a grid
        return UNKNOWN

    def _permute(self, name: str, args: tuple, kwargs: dict, out: torch.Tensor) -> _Tag:
        x = args[0]
        tag = self._tag_of(x)
        if name == "permute":
            perm = kwargs.get("dims", args[1:])
            if len(perm) == 1 and isinstance(perm[0], (list, tuple, torch.Size)):
                perm = perm[0]
            perm = [_norm_dim(int(d), x.ndim) for d in perm]
        else:
            p = _bind(args, kwargs, ("input", "dim0", "dim1"))
            d0, d1 = _norm_dim(int(p["dim0"]), x.ndim), _norm_dim(int(p["dim1"]), x.ndim)
            perm = list(range(x.ndim))
            perm[d0], perm[d1] = d1, d0
        return _remap(tag, perm.index)

    def _cat(self, name: str, args: tuple, kwargs: dict, out: torch.Tensor) -> _Tag:
        p = _bind(args, kwargs, ("tensors", "dim"))
        parts = list(p["tensors"])
        dim = _norm_dim(int(p.get("dim", 0)), out.ndim)
        tags = [self._tag_of(t) for t in parts]
        local = [t for t in tags if t is not None]
        if any(isinstance(t, str) for t in local):
            return _union(local)
        if name == "stack":
            return _union([replace(t, dims=tuple(d + (d >= dim) for d in t.dims)) for t in local])
        if any(dim in t.dims for t in local):
            # only: tokens that see no pixels (a class token) put before the patch tokens
            if len(local) != 1 or local[0].layout != "tokens" or tags[-1] is None:
                return UNKNOWN
            extra = sum(int(t.shape[dim]) for t in parts[:-1])
            return replace(local[0], prefix=local[0].prefix + extra)
        return _union(local)  # along channels: the union of the branches

    def _split(self, name: str, args: tuple, kwargs: dict, outputs: list) -> list[_Tag]:
        x = args[0]
        tag = self._tag_of(x)
        if name == "unbind":
            dim = _norm_dim(int(_bind(args, kwargs, ("input", "dim")).get("dim", 0)), x.ndim)
            if dim in tag.dims:
                return [UNKNOWN] * len(outputs)
            dims = tuple(d - (d > dim) for d in tag.dims)
            return [replace(tag, dims=dims)] * len(outputs)
        for o in outputs:
            if o.ndim != x.ndim or any(o.shape[d] != x.shape[d] for d in tag.dims):
                return [UNKNOWN] * len(outputs)  # split along the positions
        return [tag] * len(outputs)

    def _getitem(self, x: torch.Tensor, index: Any, out: torch.Tensor) -> _Tag:
        tag = self._tag_of(x)
        items = list(index) if isinstance(index, tuple) else [index]
        if any(not (i is None or i is Ellipsis or isinstance(i, (int, slice))) for i in items):
            return UNKNOWN  # advanced indexing
        if Ellipsis in items:
            at = items.index(Ellipsis)
            used = sum(1 for i in items if i is not None and i is not Ellipsis)
            items[at : at + 1] = [slice(None)] * (x.ndim - used)
        items += [slice(None)] * (x.ndim - sum(1 for i in items if i is not None))
        mapping: dict[int, int] = {}
        axes, grid, prefix = list(tag.axes), list(tag.grid), tag.prefix
        in_dim = out_dim = 0
        for item in items:
            if item is None:
                out_dim += 1
                continue
            size = int(x.shape[in_dim])
            if in_dim in tag.dims:
                if isinstance(item, int):
                    if tag.layout == "tokens" and _norm_dim(item, size) < tag.prefix:
                        return None  # a class token before any attention: sees no pixel
                    return UNKNOWN
                start, stop, step = item.indices(size)
                if tag.layout == "grid" and step > 0:  # a crop, maybe strided
                    i = tag.dims.index(in_dim)
                    a = axes[i]
                    axes[i] = _Axis(a.size, a.jump * step, a.start + start * a.jump)
                    grid[i] = len(range(start, stop, step))
                elif (start, stop, step) == (tag.prefix, size, 1) and tag.layout == "tokens":
                    prefix = 0  # the patch tokens only, without the class token
                elif (start, stop, step) != (0, size, 1):
                    return UNKNOWN
            if isinstance(item, slice):
                mapping[in_dim] = out_dim
                out_dim += 1
            in_dim += 1
        dims = tuple(mapping[d] for d in tag.dims)
        return replace(tag, axes=tuple(axes), dims=dims, grid=tuple(grid), prefix=prefix)

    def _pad(self, args: tuple, kwargs: dict, out: torch.Tensor) -> _Tag:
        p = _bind(args, kwargs, ("input", "pad"))
        x, pad = p["input"], list(p["pad"])
        tag = self._tag_of(x)
        axes = list(tag.axes)
        for i in range(len(pad) // 2):
            dim = x.ndim - 1 - i
            if dim in tag.dims:
                if tag.layout != "grid":
                    return UNKNOWN
                axis = tag.dims.index(dim)
                a = axes[axis]
                axes[axis] = _Axis(a.size, a.jump, a.start - int(pad[2 * i]) * a.jump)
        grid = tuple(int(out.shape[d]) for d in tag.dims) if tag.layout == "grid" else tag.grid
        return replace(tag, axes=tuple(axes), grid=grid)

    def _reduce(self, name, args, kwargs, tagged, outputs) -> list[_Tag]:
        x = args[0]
        tag = self._tag_of(x)
        p = _bind(args, kwargs, ("input", "dim", "keepdim"))
        if isinstance(p.get("dim"), torch.Tensor):  # max(a, b), min(a, b): elementwise
            return [self._pointwise(tagged, outputs[0])] * len(outputs)
        dim = p.get("dim")
        if name in ("std", "var") and isinstance(dim, bool):
            dim = None  # std(input, unbiased)
        dims = (
            set(range(x.ndim))
            if dim is None or dim == []
            else {
                _norm_dim(int(d), x.ndim)
                for d in (dim if isinstance(dim, (list, tuple)) else [dim])
            }
        )
        keep = bool(p.get("keepdim", False))
        touched = dims & set(tag.dims)
        if not touched:
            remap = tuple(d if keep else d - sum(r < d for r in dims) for d in tag.dims)
            return [replace(tag, dims=remap)] * len(outputs)
        if touched != set(tag.dims):
            return [UNKNOWN] * len(outputs)
        if keep and tag.layout == "grid":
            return [self._collapse(tag, tag.dims, "grid")] * len(outputs)
        return [self._collapse(tag, (), "mixed")] * len(outputs)


def _matmul_dims(
    a: torch.Tensor, b: torch.Tensor, out_ndim: int
) -> list[tuple[torch.Tensor, list[int | None]]] | None:
    """``a @ b`` as ``_contract`` operands: (..., n, k) @ (..., k, m) -> (..., n, m)."""
    if a.ndim < 2 or b.ndim < 2:
        return None  # a vector operand: not followed
    batch = out_ndim - 2
    dims_a = [batch - (a.ndim - 2) + i for i in range(a.ndim - 2)] + [out_ndim - 2, None]
    dims_b = [batch - (b.ndim - 2) + i for i in range(b.ndim - 2)] + [None, out_ndim - 1]
    return [(a, dims_a), (b, dims_b)]


def _einsum_dims(args: tuple, out_ndim: int) -> list[tuple[Any, list[int | None]]] | None:
    """``torch.einsum(equation, *operands)`` as ``_contract`` operands; None where the
    equation is not followed (no explicit output, a letter repeated within one operand)."""
    equation, operands = args[0], list(args[1:])
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    if not isinstance(equation, str) or equation.count("->") != 1:
        return None
    lhs, rhs = equation.replace(" ", "").split("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        return None
    ellipsis = out_ndim - len(rhs.replace("...", ""))  # dims the output's "..." stands for

    def labels(term: str, ndim: int) -> list[Any] | None:
        if term.count("...") > 1:
            return None
        head, _, tail = term.partition("...")
        n = ndim - len(head) - len(tail) if "..." in term else 0
        if n < 0 or n > ellipsis:
            return None
        return [*head, *(("...", ellipsis - n + i) for i in range(n)), *tail]  # right-aligned

    out_labels = labels(rhs, out_ndim)
    if out_labels is None or len(set(out_labels)) != len(out_labels):
        return None
    where = {label: i for i, label in enumerate(out_labels)}
    result = []
    for term, t in zip(terms, operands, strict=True):
        if not isinstance(t, torch.Tensor):
            return None
        lab = labels(term, t.ndim)
        if lab is None or len(lab) != t.ndim or len(set(lab)) != len(lab):
            return None  # a diagonal (a letter twice in one operand): not followed
        result.append((t, [where.get(label) for label in lab]))
    return result


def _regroup(a: tuple[int, ...], b: tuple[int, ...]) -> list[tuple[list[int], list[int]]] | None:
    """Pair runs of dims of shape ``a`` with runs of ``b`` of equal size (dims of size 1 left out).

    Returns [(dims of a, dims of b)] in order, or None when ``b`` is not a regrouping of ``a``.
    """
    ia = [i for i, s in enumerate(a) if s != 1]
    ib = [i for i, s in enumerate(b) if s != 1]
    if math.prod(a) != math.prod(b) or 0 in a:
        return None
    groups = []
    i = j = 0
    while i < len(ia) and j < len(ib):
        ga, gb = [ia[i]], [ib[j]]
        pa, pb = a[ia[i]], b[ib[j]]
        i, j = i + 1, j + 1
        while pa != pb:
            if pa < pb:
                if i == len(ia):
                    return None
                ga.append(ia[i])
                pa *= a[ia[i]]
                i += 1
            else:
                if j == len(ib):
                    return None
                gb.append(ib[j])
                pb *= b[ib[j]]
                j += 1
        groups.append((ga, gb))
    return groups if i == len(ia) and j == len(ib) else None
