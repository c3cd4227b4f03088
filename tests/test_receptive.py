"""vizlib.receptive: fields worked out by hand, published values, and an independent oracle.

The oracle is gradient support: on a float64 copy with every conv and linear weight positive,
biases 0, max pools swapped for average pools of the same geometry and BatchNorm as identity,
every activation is positive, so no ReLU blocks a gradient and no sum cancels; the input pixels
with a nonzero gradient of one output unit are then exactly the pixels that unit depends on.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vizlib import zoo
from vizlib.models import LeNetLike, SmallResNet
from vizlib.plots.models import plot_receptive_fields
from vizlib.receptive import ReceptiveFieldTracer, field_text, larger_than_input
from vizlib.summary import layer_table

# ---- the oracle -----------------------------------------------------------------------------


def _positive_copy(model: nn.Module) -> nn.Module:
    """A float64 deep copy whose every unit is a positive sum of its inputs (the cached model
    is never touched). Weights are 1 / fan-in rather than 1 so that deep nets do not overflow;
    any positive value gives the same support."""
    clone = copy.deepcopy(model).double().eval()
    for parent in list(clone.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                assert child.dilation in (1, (1, 1)), "no average pool with a dilation"
                avg = nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode)
                setattr(parent, child_name, avg)
            elif isinstance(child, nn.BatchNorm2d):
                setattr(parent, child_name, nn.Identity())
    with torch.no_grad():
        for module in clone.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
    return clone


def _supports(
    model: nn.Module,
    shape: tuple[int, ...],
    names: list[str],
    *,
    positive: bool = True,
    token: int | None = None,
) -> dict[str, tuple[tuple[int, int], ...]]:
    """Return, per module name, the input rows and columns (first, last) with a nonzero gradient
    of the centre unit of that module's output (its last call), as ((top, bottom), (left, right)).

    4-D outputs (B, C, h, w): the unit at (h // 2, w // 2), all channels; 3-D token outputs
    (B, T, D) with ``token`` given: feature 0 of that token (one feature: the sum over features
    of a LayerNorm output is constant); other outputs: the middle element. ``positive=False``
    keeps the model's own weights, in float64, on a random input.
    """
    clone = _positive_copy(model) if positive else copy.deepcopy(model).double().eval()
    modules = dict(clone.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        modules[n].register_forward_hook(
            lambda m, i, o, n=n: outputs.__setitem__(n, o if torch.is_tensor(o) else o[0])
        )
        for n in names
    ]
    gen = torch.Generator().manual_seed(0)
    x = (
        torch.ones(1, *shape, dtype=torch.float64)
        if positive
        else torch.randn(1, *shape, generator=gen, dtype=torch.float64)
    )
    x.requires_grad_(True)
    try:
        clone(x)
    finally:
        for h in handles:
            h.remove()
    result = {}
    for name in names:
        out = outputs[name]
        if out.ndim == 4:
            unit = out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum()
        elif out.ndim == 3 and token is not None:
            unit = out[0, token, 0]
        else:
            unit = out.flatten()[out.numel() // 2]
        (grad,) = torch.autograd.grad(unit, x, retain_graph=True)
        mask = grad[0].abs().sum(0) > 0  # (H, W)
        rows = mask.any(1).nonzero().flatten()
        cols = mask.any(0).nonzero().flatten()
        result[name] = ((int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1])))
    return result


def _expected_support(row: dict, out_hw: tuple[int, int], image_hw: tuple[int, int]):
    """The analytic field of the centre unit, clipped to the image: ((top, bottom), (left, right))."""
    spans = []
    for size, jump, start, n_out, n_in in zip(
        row["receptive_field"], row["jump"], row["rf_start"], out_hw, image_hw, strict=True
    ):
        first = start + (n_out // 2) * jump
        spans.append((max(first, 0), min(first + size - 1, n_in - 1)))
    return tuple(spans)


def _check_against_oracle(
    model: nn.Module,
    shape: tuple[int, int, int],
    *,
    positive: bool = True,
    tokens: tuple[tuple[int, int], int] | None = None,
) -> dict[str, dict]:
    """Compare every row of ``layer_table`` with the gradient support; return the rows by name.

    ``tokens`` = ((gh, gw), prefix) for a transformer: 3-D outputs (B, T, D) hold ``prefix``
    tokens, then a gh x gw grid row-major; the token at the grid's centre is checked.
    ``positive`` as in ``_supports``.
    """
    rows = {r["name"]: r for r in layer_table(model.eval(), shape)}
    checked = [
        n
        for n, r in rows.items()
        if r["output_shape"] is not None
        and (r["receptive_field"] == "whole image" or r["jump"] is not None)
    ]
    assert checked, "nothing to compare"
    token = None
    if tokens is not None:
        (gh, gw), prefix = tokens
        token = prefix + gh // 2 * gw + gw // 2
    supports = _supports(model, shape, checked, positive=positive, token=token)
    image = shape[1:]
    fitted = 0
    for name in checked:
        row = rows[name]
        if row["receptive_field"] == "whole image":
            assert supports[name] == ((0, image[0] - 1), (0, image[1] - 1)), name
            continue
        if len(row["output_shape"]) == 3:
            assert tokens is not None, name
            out_hw = tokens[0]
        else:
            out_hw = tuple(row["output_shape"][2:])
        expected = _expected_support(row, out_hw, image)
        assert supports[name] == expected, (name, row)
        first = [row["rf_start"][a] + out_hw[a] // 2 * row["jump"][a] for a in (0, 1)]
        if all(
            f >= 0 and f + s <= n
            for f, s, n in zip(first, row["receptive_field"], image, strict=True)
        ):
            fitted += 1  # this field lies inside the image: its size was measured unclipped
    assert fitted >= 2, "too few fields fit inside the image for the test to mean much"
    return rows


# ---- hand-worked cases --------------------------------------------------------------------


def _hand_chain() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),  # 3, jump 1
        nn.ReLU(),
        nn.Conv2d(2, 2, 3, padding=1),  # 3 + 2*1 = 5
        nn.MaxPool2d(2),  # 5 + 1*1 = 6, jump 2
        nn.Conv2d(2, 2, 3),  # 6 + 2*2 = 10, jump 2
    )


def test_hand_worked_chain():
    rows = layer_table(_hand_chain(), (1, 20, 20))
    fields = [(r["receptive_field"], r["jump"], r["rf_start"]) for r in rows]
    assert fields == [
        ((3, 3), (1, 1), (-1, -1)),  # padding 1 moves the field, its size stays 3
        ((3, 3), (1, 1), (-1, -1)),
        ((5, 5), (1, 1), (-2, -2)),
        ((6, 6), (2, 2), (-2, -2)),  # a 2x2 pool adds (2 - 1) x jump 1, then doubles the jump
        ((10, 10), (2, 2), (-2, -2)),
    ]
    _check_against_oracle(_hand_chain(), (1, 20, 20))


class _Dilated(nn.Module):
    """Functional ops, dilation, stride, uneven kernels, padding and a crop."""

    def __init__(self, pool=F.max_pool2d) -> None:
        super().__init__()
        self.pool = pool  # the oracle needs an average pool: a max passes one gradient only
        self.a = nn.Conv2d(1, 2, 3, dilation=2, padding=2)  # 1 + 2*2 = 5
        self.b = nn.Conv2d(2, 2, (3, 1), stride=(2, 1))  # height 5 + 2 = 7, jump (2, 1)
        self.c = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b(self.a(x))
        y = self.pool(F.pad(y, (1, 1, 0, 0)), kernel_size=(1, 3), stride=1)  # width 5 + 2
        return self.c(y[:, :, 1:, ::2])  # crop one row, every other column: jump (2, 2)


def test_dilation_stride_padding_and_crop_by_hand_and_oracle():
    rows = {r["name"]: r for r in layer_table(_Dilated(), (1, 24, 24))}
    assert rows == {r["name"]: r for r in layer_table(_Dilated(F.avg_pool2d), (1, 24, 24))}
    assert rows["a"]["receptive_field"] == (5, 5) and rows["a"]["rf_start"] == (-2, -2)
    assert rows["b"]["receptive_field"] == (7, 5) and rows["b"]["jump"] == (2, 1)
    assert rows["c"]["receptive_field"] == (7, 7) and rows["c"]["jump"] == (2, 2)
    # the crop starts one row (2 px) down; pad 1 left then a 3-wide window: start -2 - 1
    assert rows["c"]["rf_start"] == (0, -3)
    _check_against_oracle(_Dilated(F.avg_pool2d), (1, 24, 24))


class _Branches(nn.Module):
    """Inception-like: 1x1 and 5x5 branches concatenated along channels, then a residual add
    of a 3x3 path; torch.cat and + merge branches: the field is their union."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.small = nn.Conv2d(2, 2, 1)
        self.large = nn.Conv2d(2, 2, 5, padding=2)
        self.mix = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(2, 4, 1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # 3
        y = torch.cat([self.small(x), self.large(x)], dim=1)  # union of 3 and 7: 7
        return self.mix(y) + self.skip(x)  # 7 + 2 = 9 with jump 2; the skip sees 3


def test_branches_merge_as_the_union():
    rows = {r["name"]: r for r in layer_table(_Branches(), (1, 21, 21))}
    assert rows["mix"]["receptive_field"] == (9, 9) and rows["mix"]["jump"] == (2, 2)
    assert rows["skip"]["receptive_field"] == (3, 3) and rows["skip"]["jump"] == (2, 2)
    x = torch.zeros(1, 1, 21, 21)
    model = _Branches().eval()
    with ReceptiveFieldTracer(x) as tracer:
        out = model(x)
    field = tracer.field(out)
    assert (field.size, field.jump, field.start) == ((9, 9), (2, 2), (-4, -4))
    support = _supports(_WithOutput(model), (1, 21, 21), ["out"])["out"]
    centre = -4 + (11 // 2) * 2  # the output is 11 x 11
    assert support == ((centre, centre + 8), (centre, centre + 8))


class _WithOutput(nn.Module):
    """Wraps a model so that its output has a module name for the oracle."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.model(x))


# ---- shipped and torchvision networks -----------------------------------------------------


def test_lenet_matches_hand_and_oracle():
    rows = _check_against_oracle(LeNetLike(), (1, 28, 28))
    # 5; pool 3: 5 + 2 = 7, jump 3; conv 5: 7 + 4*3 = 19; pool 2: 19 + 3 = 22, jump 6
    assert [rows[n]["receptive_field"] for n in ("conv1", "pool1", "conv2", "pool2")] == [
        (5, 5),
        (7, 7),
        (19, 19),
        (22, 22),
    ]
    assert rows["pool2"]["jump"] == (6, 6)
    assert rows["flatten"]["receptive_field"] == (22, 22) and rows["flatten"]["jump"] is None
    assert rows["fc1"]["receptive_field"] == rows["fc2"]["receptive_field"] == "whole image"


def test_residual_net_matches_hand_and_oracle():
    rows = _check_against_oracle(SmallResNet(), (1, 28, 28))
    # stem 3; block 0: 5, 7 (identity shortcut 3: union 7); block 1 (stride 2): 9, 13 with
    # the 1x1 stride-2 shortcut seeing 7; block 2: 17, 25
    assert rows["layers.0.relu2"]["receptive_field"] == (7, 7)
    assert rows["layers.1.shortcut.0"]["receptive_field"] == (7, 7)
    assert rows["layers.1.relu2"]["receptive_field"] == (13, 13)
    assert rows["layers.2.relu2"]["receptive_field"] == (25, 25)
    assert rows["layers.2.relu2"]["jump"] == (4, 4)
    assert rows["pool"]["receptive_field"] == "whole image"


def test_torchvision_resnet18_matches_the_oracle_and_the_published_435():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    rows = _check_against_oracle(model, (3, 64, 64))  # the net takes any size; 64 is quick
    assert rows["layer4.1.conv2"]["receptive_field"] == (435, 435)
    assert rows["layer4.1.conv2"]["jump"] == (32, 32)
    assert rows["layer2.0.downsample.0"]["receptive_field"] == (43, 43)  # the shortcut branch
    assert rows["layer2.0.relu"]["receptive_field"] == (67, 67)  # its last call: after the add


def test_torchvision_published_fields_alexnet_and_vgg16():
    """Araujo et al., Distill 2019: AlexNet 195 px at its last pool, VGG-16 212 px at pool5,
    both with jump 32 (their table)."""
    torchvision = pytest.importorskip("torchvision")
    for builder, last_pool in (
        (torchvision.models.alexnet, "features.12"),
        (torchvision.models.vgg16, "features.30"),
    ):
        rows = {r["name"]: r for r in layer_table(builder(weights=None).eval(), (3, 224, 224))}
        expected = 195 if last_pool == "features.12" else 212
        assert rows[last_pool]["receptive_field"] == (expected, expected)
        assert rows[last_pool]["jump"] == (32, 32)
        assert rows["classifier.6"]["receptive_field"] == "whole image"


def test_vit_patch_field_then_whole_image(tiny_vit):
    rows = {r["name"]: r for r in layer_table(tiny_vit, (1, 16, 16))}
    patch = rows["patch_embed"]
    assert (patch["receptive_field"], patch["jump"], patch["rf_start"]) == ((4, 4), (4, 4), (0, 0))
    # before the first attention a token still sees only its patch
    assert rows["blocks.0.norm1"]["receptive_field"] == (4, 4)
    assert rows["blocks.0.attn.qkv"]["receptive_field"] == (4, 4)
    called = [n for n, r in rows.items() if r["output_shape"] is not None]  # not the fused
    after = [n for n in called if n.startswith("blocks.0.attn") and n != "blocks.0.attn.qkv"]
    after += [n for n in called if n.startswith(("blocks.1", "norm", "head"))]
    assert after and all(rows[n]["receptive_field"] == "whole image" for n in after)
    # oracle with the model's own random weights, in float64: no cancellations in general
    names = ["patch_embed", "blocks.0.attn.proj", "head"]
    supports = _supports(tiny_vit, (1, 16, 16), names, positive=False)
    assert supports["patch_embed"] == ((8, 11), (8, 11))  # the centre unit of the 4 x 4 grid
    assert supports["blocks.0.attn.proj"] == supports["head"] == ((0, 15), (0, 15))


def test_vit_token_before_attention_sees_its_patch(tiny_vit):
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    model = copy.deepcopy(tiny_vit).double()
    norm1 = model.blocks[0].norm1
    captured = {}
    handle = norm1.register_forward_hook(lambda m, i, o: captured.setdefault("y", o))
    try:
        model(x)
    finally:
        handle.remove()
    token = 1 + 2 * 4 + 3  # class token, then row 2, column 3 of the 4 x 4 grid
    # one feature: the sum over features of a LayerNorm output is constant
    (grad,) = torch.autograd.grad(captured["y"][0, token, 0], x)
    mask = grad[0, 0] != 0
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    assert (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])) == (8, 11, 12, 15)


# ---- attention written out op by op --------------------------------------------------------


class _ChannelProduct(nn.Module):
    """A Linear along channels written as a product with a weight: ``@`` or einsum."""

    def __init__(self, dim: int, *, einsum: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim, dim) / dim**0.5)
        self.einsum = einsum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.einsum:
            return torch.einsum("btd,de->bte", x, self.weight)  # (B, T, D)
        return x @ self.weight  # (B, T, D)


class _HandAttention(nn.Module):
    """Multi-head attention as timm and vit-pytorch write it: scores, softmax, values."""

    def __init__(self, dim: int, heads: int, *, einsum: bool) -> None:
        super().__init__()
        self.heads, self.einsum = heads, einsum
        self.qkv = nn.Linear(dim, 3 * dim)
        self.scores = nn.Identity()  # names the scores q k^T for the layer table
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # each (B, T, D)
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in (q, k, v))  # (B, h, T, d)
        if self.einsum:
            scores = torch.einsum("bhid,bhjd->bhij", q, k)  # (B, h, T, T)
        else:
            scores = q @ k.transpose(-2, -1)  # (B, h, T, T)
        attn = self.scores(scores * q.shape[-1] ** -0.5).softmax(dim=-1)
        if self.einsum:
            out = torch.einsum("bhij,bhjd->bhid", attn, v)  # (B, h, T, d)
        else:
            out = attn @ v  # (B, h, T, d)
        return self.proj(out.transpose(1, 2).reshape(B, T, D))


class _HandBlock(nn.Module):
    def __init__(self, dim: int, heads: int, *, einsum: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _HandAttention(dim, heads, einsum=einsum)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _HandViT(nn.Module):
    """A hand-written ViT: conv patches, optional class token, position embedding, a product
    with a weight along channels, blocks with explicit attention, a head on the class token
    (or the mean token)."""

    def __init__(
        self, *, kernel=4, stride=4, grid=4, cls=True, einsum=False, dim=16, depth=2
    ) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patch_embed = nn.Conv2d(1, dim, kernel, stride)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim)) if cls else None
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid + cls, dim) * 0.1)
        self.mix = _ChannelProduct(dim, einsum=einsum)
        self.blocks = nn.Sequential(*(_HandBlock(dim, 2, einsum=einsum) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, T, D)
        x = self.norm(self.blocks(self.mix(x + self.pos_embed)))
        return self.head(x[:, 0] if self.cls_token is not None else x.mean(1))  # (B, 10)


@pytest.mark.parametrize(
    ("einsum", "cls"),
    [(False, True), (True, True), (False, False)],
    ids=["matmul", "einsum", "mean"],
)
def test_hand_written_vit_explicit_attention_matches_the_oracle(einsum, cls):
    model = _HandViT(einsum=einsum, cls=cls).eval()
    rows = _check_against_oracle(model, (1, 16, 16), positive=False, tokens=((4, 4), int(cls)))
    # before the first attention a token sees its 4 x 4 patch, through the product with the
    # weight along channels too; the scores q k^T pair two tokens: no single field
    for name in ("mix", "blocks.0.norm1", "blocks.0.attn.qkv"):
        assert (rows[name]["receptive_field"], rows[name]["jump"]) == ((4, 4), (4, 4)), name
    assert rows["blocks.0.attn.scores"]["receptive_field"] == "unknown"
    after = [n for n in rows if n.startswith(("blocks.0.attn.proj", "blocks.1", "norm", "head"))]
    assert len(after) > 8
    assert all(rows[n]["receptive_field"] == "whole image" for n in after)  # blocks.1's scores too
    # the class token and position embeddings are parameters, not computed from the image: no
    # field (the model's row once carried the logits' "whole image")
    for name in ("cls_token", "pos_embed") if cls else ("pos_embed",):
        fields = ("output_shape", "receptive_field", "jump", "rf_start")
        assert all(rows[name][k] is None for k in fields), name


def test_attention_over_tokens_that_miss_pixels_is_never_the_whole_image():
    """3 x 3 patches every 4 pixels never see row or column 15: after attention each token sees
    pixels 0..14 only, so "whole image" would be wrong; the tracer says unknown."""
    model = _HandViT(kernel=3, depth=1).eval()
    rows = {r["name"]: r for r in layer_table(model, (1, 16, 16))}
    assert rows["blocks.0.norm1"]["receptive_field"] == (3, 3)
    assert rows["blocks.0.norm1"]["jump"] == (4, 4)
    after = [n for n in rows if n.startswith(("blocks.0.attn.proj", "blocks.0.mlp", "head"))]
    assert after and all(rows[n]["receptive_field"] == "unknown" for n in after)
    supports = _supports(model, (1, 16, 16), ["head"], positive=False)
    assert supports["head"] == ((0, 14), (0, 14))


def _bmm_softmax_over_queries(q, k, v):
    B, T, D = q.shape  # one head, batched as (B * heads, T, d) the way bmm code does it
    scores = torch.bmm(q, k.transpose(1, 2)).view(B, 1, T, T)  # (B, 1, T, T)
    mask = torch.zeros(T, T, dtype=torch.bool)
    attn = scores.masked_fill(mask, float("-inf")).softmax(dim=-2).view(B, T, T)
    return torch.bmm(attn, v)  # (B, T, D)


def _einsum_ellipsis(q, k, v):
    attn = torch.einsum("...id,...jd->...ij", q, k).softmax(-1)  # (B, T, T)
    return torch.einsum("...ij,...jd->...id", attn, v)  # (B, T, D)


def _linear_attention(q, k, v):
    context = k.softmax(dim=1).transpose(1, 2) @ v  # (B, D, D): sums over every token
    return q @ context  # (B, T, D)


class _TokenMixer(nn.Module):
    """Conv patches as tokens (B, 16, 8), then one attention style; output (B, T, D)."""

    def __init__(self, attend) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.attend = attend
        self.patches = nn.Conv2d(1, 8, 4, 4)
        self.qkv = nn.Linear(8, 24)
        self.out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)  # (B, 16, 8)
        return self.out(self.attend(*self.qkv(tokens).chunk(3, dim=-1)))


@pytest.mark.parametrize(
    "attend",
    [_bmm_softmax_over_queries, _einsum_ellipsis, _linear_attention],
    ids=["bmm-softmax-over-queries", "einsum-ellipsis", "linear-attention"],
)
def test_other_attention_styles_see_the_whole_image(attend):
    rows = _check_against_oracle(
        _TokenMixer(attend), (1, 16, 16), positive=False, tokens=((4, 4), 0)
    )
    assert rows["qkv"]["receptive_field"] == (4, 4)
    assert rows["out"]["receptive_field"] == "whole image"


def test_einsum_it_does_not_follow_is_unknown():
    x = torch.randn(1, 1, 8, 8)
    with ReceptiveFieldTracer(x) as tracer:
        tokens = F.conv2d(x, torch.ones(3, 1, 2, 2), stride=2).flatten(2)  # (1, 3, 16)
        square = tokens.transpose(1, 2) @ tokens  # (1, 16, 16): scores, a pair of fields
        diagonal = torch.einsum("bii->bi", square)  # token i with itself
        implicit = torch.einsum("bct,cd", tokens, torch.ones(3, 3))  # no "->"
    assert not tracer.field(square).known
    assert not tracer.field(diagonal).known
    assert not tracer.field(implicit).known


class _ExplicitViT(nn.Module):
    """Runs our ViT on its explicit attention path (``return_attention=True``)."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x, return_attention=True)[0]


def test_shipped_vit_explicit_attention_matches_fused_and_the_oracle():
    model, meta = zoo.load_model("vit_digits", device="cpu")
    shape = tuple(meta["input_size"])
    fused = {r["name"]: r for r in layer_table(model, shape)}
    explicit = _check_against_oracle(
        _ExplicitViT(model), shape, positive=False, tokens=(tuple(meta["grid_size"]), 1)
    )
    assert "unknown" not in [r["receptive_field"] for r in explicit.values()]
    for name, row in fused.items():  # the same field on both paths
        if row["output_shape"] is not None:
            assert explicit[f"vit.{name}"]["receptive_field"] == row["receptive_field"], name
    patch = meta["patch_size"]
    assert explicit["vit.blocks.0.attn.qkv"]["receptive_field"] == (patch, patch)
    assert fused["blocks.0.attn.attend"]["output_shape"] is None  # fused: softmax not called
    attend = [n for n in explicit if n.endswith("attn.attend")]
    assert len(attend) == meta["config"]["depth"]
    assert all(explicit[n]["receptive_field"] == "whole image" for n in attend)


# ---- what it refuses to guess -------------------------------------------------------------


class _Shrink(nn.Module):
    """A custom layer that changes the spatial size in a way the tracer does not follow."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=0.5, mode="bilinear")


def test_unknown_layer_gives_unknown_for_it_and_after_never_a_number():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.ReLU(),
        _Shrink(),
        nn.Conv2d(2, 2, 3),
        nn.Flatten(),
        nn.Linear(2 * 5 * 5, 3),
    )
    rows = layer_table(model, (1, 16, 16))
    assert [r["receptive_field"] for r in rows] == [
        (3, 3),
        (3, 3),
        "unknown",
        "unknown",
        "unknown",
        "unknown",
    ]
    assert all(r["jump"] is None for r in rows[2:])


def test_explicit_attention_scores_are_unknown_then_the_softmax_sees_the_whole_image(tiny_vit):
    x = torch.zeros(1, 1, 16, 16)
    with ReceptiveFieldTracer(x) as tracer:
        logits, attentions = tiny_vit(x, return_attention=True)
    # softmax(q k^T) over the keys: entry (i, j) depends on query i and on every key
    assert tracer.field(attentions[0]).whole_image
    assert tracer.field(logits).whole_image


def test_global_pool_over_part_of_the_image_is_a_number_not_whole():
    # 3x3 stride 4 on 16 px: units at 0, 4, 8, 12 see pixels 0..14; pixel 15 is never seen
    model = _WithOutput(nn.Sequential(nn.Conv2d(1, 1, 3, stride=4), nn.AdaptiveAvgPool2d(1)))
    rows = {r["name"]: r for r in layer_table(model, (1, 16, 16))}
    assert rows["model.1"]["receptive_field"] == (15, 15)
    assert _supports(model, (1, 16, 16), ["out"])["out"] == ((0, 14), (0, 14))
    # 5x5 stride 4 padding 1: units at -1, 3, 7, 11 see pixels -1..15, the whole image
    covering = nn.Sequential(nn.Conv2d(1, 1, 5, stride=4, padding=1), nn.AdaptiveAvgPool2d(1))
    assert layer_table(covering, (1, 16, 16))[-1]["receptive_field"] == "whole image"


class _ChannelsLast(nn.Module):
    """ConvNeXt-style: a Linear over channels at every position keeps the field."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.norm = nn.LayerNorm(4)
        self.mlp = nn.Linear(4, 4)
        self.out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.conv(x).permute(0, 2, 3, 1)))  # (B, H, W, C)
        return self.out(y.permute(0, 3, 1, 2))


def test_pointwise_linear_on_channels_last_keeps_the_field():
    rows = {r["name"]: r for r in layer_table(_ChannelsLast(), (1, 10, 10))}
    assert rows["mlp"]["receptive_field"] == (3, 3) and rows["mlp"]["jump"] == (1, 1)
    assert rows["out"]["receptive_field"] == (3, 3)


def test_token_inputs_have_no_field_and_the_mode_is_always_removed():
    rows = layer_table(nn.TransformerEncoderLayer(6, 2, 10, batch_first=True).eval(), (5, 6))
    assert all(r["receptive_field"] is None and r["jump"] is None for r in rows)

    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        layer_table(nn.Sequential(nn.Conv2d(1, 1, 3), Boom()), (1, 8, 8))
    assert torch._C._len_torch_function_stack() == 0


def test_tracing_leaves_outputs_unchanged():
    torch.manual_seed(0)
    model = SmallResNet().eval()
    x = torch.randn(2, 1, 28, 28)
    expected = model(x)
    with ReceptiveFieldTracer(x):
        traced = model(x)
    torch.testing.assert_close(traced, expected, rtol=0, atol=0)


def test_text_and_larger_than_input():
    assert field_text((5, 7)) == "5 x 7"
    assert field_text("whole image") == "whole image" and field_text(None) == "—"
    rows = [
        {"name": "a", "receptive_field": (27, 27)},
        {"name": "b", "receptive_field": (29, 27)},
        {"name": "c", "receptive_field": "whole image"},
        {"name": "d", "receptive_field": None},
    ]
    assert larger_than_input(rows, (28, 28)) == ["b"]


def test_plot_receptive_fields_draws_the_table_numbers():
    rows = layer_table(LeNetLike().eval(), (1, 28, 28))
    fig = plot_receptive_fields(rows, (28, 28))
    (trace,) = fig.data  # square fields: one line
    assert list(trace.y) == [5, 7, 7, 19, 22, 22, 22]  # conv1 ... flatten; fc layers: whole
    assert fig.layout.shapes[0].y0 == 28  # the input height
    assert fig.layout.title.subtitle.text == "every unit sees the whole image from fc1 on"
    wide = [{**r, "receptive_field": (r["receptive_field"][0], 1)} for r in rows[:2]]
    assert [t.name for t in plot_receptive_fields(wide, (28, 28)).data] == [
        "field height",
        "field width",
    ]


def test_plot_receptive_fields_puts_shortcut_layers_off_the_line():
    """In call order a residual block's shortcut comes after its convolutions with the smaller
    field of the block's input: a marker of its own, so the main line never drops."""
    rows = layer_table(SmallResNet().eval(), (1, 28, 28))
    fig = plot_receptive_fields(rows, (28, 28))
    main, branch = fig.data
    assert list(main.y) == sorted(main.y)  # the main path only grows
    assert branch.mode == "markers" and "shortcut" in branch.name
    assert branch.x and all("shortcut" in x for x in branch.x)
    fields = {f"{r['name']} ({r['type']})": r["receptive_field"][0] for r in rows
              if isinstance(r.get("receptive_field"), tuple)}  # fmt: skip
    assert dict(zip(branch.x, branch.y, strict=True)) == {x: fields[x] for x in branch.x}
    assert list(fig.layout.xaxis.categoryarray) == list(fields)  # still in call order
    # the legend lies flat above the plot: beside it, it took half a column at 1024 px, and
    # the plot's x labels overlapped in what was left
    assert fig.layout.showlegend
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.yanchor == "bottom"
    assert fig.layout.legend.y >= 1


def test_plot_receptive_fields_shows_height_and_width_of_asymmetric_fields():
    """A (3, 1) kernel with stride (2, 1) and a (1, 3) pool, on a 24 x 20 input: the height and
    width lines carry the table's numbers (modules a, b, c), the hover the whole field and jump, in pixels."""
    rows = layer_table(_Dilated(F.avg_pool2d), (1, 24, 20))
    fig = plot_receptive_fields(rows, (24, 20))
    height, width = fig.data
    assert (height.name, width.name) == ("field height", "field width")
    fields = [r["receptive_field"] for r in rows]
    assert list(height.y) == [f[0] for f in fields] == [5, 7, 7]
    assert list(width.y) == [f[1] for f in fields] == [5, 5, 7]
    assert [c[0] for c in width.customdata] == ["5 x 5 px", "7 x 5 px", "7 x 7 px"]
    assert [c[1] for c in height.customdata] == ["1 x 1 px", "2 x 1 px", "2 x 2 px"]
    assert "height %{y} px" in height.hovertemplate and "width %{y} px" in width.hovertemplate
    assert fig.layout.yaxis.title.text == "receptive field (input pixels)"
    lines = {s.y0: s.line.dash for s in fig.layout.shapes}
    assert lines == {24: "dash", 20: "dot"}  # input height and width
    texts = [a.text for a in fig.layout.annotations]
    assert "input height 24 px" in texts and "input width 20 px" in texts
