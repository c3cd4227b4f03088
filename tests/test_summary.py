"""vizlib.summary: per-layer rows and totals by hand, against torch's FLOP counter, and hooks."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tests.test_device import MetaAsGPU, allow_meta
from vizlib import summary
from vizlib.models import LeNetLike, SmallResNet
from vizlib.summary import (
    batch_matmul_timing,
    count_parameters,
    layer_table,
    table_totals,
    transformer_block_counts,
)


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_lenet_rows_and_totals():
    rows = layer_table(LeNetLike().eval(), (1, 28, 28))
    by_name = {r["name"]: r for r in rows}
    # worked out by hand: conv1 32*(25+1) params, 32*24*24 outputs x 25 taps; conv2 64*(32*25+1),
    # 64*4*4 outputs x 800 taps; fc1 256*200+200, 200 x 256; fc2 200*10+10, 10 x 200
    assert (by_name["conv1"]["params"], by_name["conv1"]["macs"]) == (832, 460_800)
    assert (by_name["conv2"]["params"], by_name["conv2"]["macs"]) == (51_264, 819_200)
    assert (by_name["fc1"]["params"], by_name["fc1"]["macs"]) == (51_400, 51_200)
    assert (by_name["fc2"]["params"], by_name["fc2"]["macs"]) == (2_010, 2_000)
    assert by_name["conv1"]["output_shape"] == [1, 32, 24, 24]
    assert by_name["pool1"]["output_shape"] == [1, 32, 8, 8]
    assert by_name["flatten"]["output_shape"] == [1, 256]
    assert [r["name"] for r in rows][:3] == ["conv1", "pool1", "relu1"]
    assert table_totals(rows) == {"params": 105_506, "macs": 1_333_200}
    # the same pass records receptive fields (tests/test_receptive.py checks them in depth)
    assert (by_name["conv2"]["receptive_field"], by_name["conv2"]["jump"]) == ((19, 19), (3, 3))
    assert by_name["fc1"]["receptive_field"] == "whole image"


def _flop_counter_macs(model: nn.Module, shape: tuple[int, ...], **kwargs) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *shape), **kwargs)
    return counter.get_total_flops() // 2  # torch counts a multiply-add as 2 FLOPs


@pytest.mark.parametrize(
    ("model", "shape"),
    [(LeNetLike(), (1, 28, 28)), (SmallResNet(), (1, 28, 28))],
    ids=["lenet", "resnet"],
)
def test_cnn_macs_match_torch_flop_counter(model, shape):
    rows = layer_table(model.eval(), shape)
    assert table_totals(rows)["macs"] == _flop_counter_macs(model, shape)
    assert table_totals(rows)["params"] == count_parameters(model)


def test_vit_macs_and_params_match_independent_counts(tiny_vit):
    rows = layer_table(tiny_vit, (1, 16, 16))
    totals = table_totals(rows)
    assert totals["params"] == count_parameters(tiny_vit)
    # the explicit attention path, because torch's counter skips the fused CPU kernel
    assert totals["macs"] == _flop_counter_macs(tiny_vit, (1, 16, 16), return_attention=True)
    attn = {r["name"]: r for r in rows}["blocks.0.attn"]
    assert attn["macs"] == 2 * 17 * 17 * 32  # QK^T and AV: T x T x D each


def test_vit_class_token_and_position_embeddings_are_rows_of_their_own(tiny_vit):
    """The parameters the ViT holds outside its layers are rows named as in its state dict, of
    the type they are, with their own shapes, (1, 1, D) and (1, T, D), where the pass first
    reads them: after the patch embedding. They were a last row "(model)" with the logits'
    shape (1, 10)."""
    rows = layer_table(tiny_vit, (1, 16, 16))
    names = [r["name"] for r in rows]
    assert "(model)" not in names
    assert names[:3] == ["patch_embed", "cls_token", "pos_embed"]
    fields = {"receptive_field": None, "jump": None, "rf_start": None}  # not from the image
    assert rows[1:3] == [
        {"name": "cls_token", "type": "class token", "output_shape": None,
         "parameter_shape": [1, 1, 32], "params": 32, "macs": 0, **fields},
        {"name": "pos_embed", "type": "position embeddings", "output_shape": None,
         "parameter_shape": [1, 17, 32], "params": 17 * 32, "macs": 0, **fields},
    ]  # fmt: skip
    assert [summary.shape_text(r) for r in rows[:3]] == ["1×32×4×4", "1×1×32", "1×17×32"]
    assert all(r["parameter_shape"] is None for r in rows if r["name"] not in names[1:3])
    assert table_totals(rows)["params"] == sum(p.numel() for p in tiny_vit.parameters())


class _Gained(nn.Module):
    """A module with a child and parameters of its own: one it reads, one it never reads."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.gain = nn.Parameter(torch.ones(2))
        self.spare = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * self.gain  # (B, 2)


def test_parameters_outside_the_layers_are_listed_where_read():
    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = _Gained()
            self.bias = nn.Parameter(torch.zeros(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) + self.bias  # (B, 2)

    rows = layer_table(Outer(), (3,))
    # read after fc, then the outer bias; the spare parameter, never read, goes last
    assert [(r["name"], r["type"], summary.shape_text(r), r["params"]) for r in rows] == [
        ("inner.fc", "Linear", "1×2", 8),
        ("inner.gain", "Parameter", "2", 2),
        ("bias", "Parameter", "2", 2),
        ("inner.spare", "Parameter", "scalar", 1),
    ]
    assert table_totals(rows)["params"] == 8 + 2 + 2 + 1
    assert summary.shape_text({"output_shape": None, "parameter_shape": None}) == "not called"


@pytest.mark.slow
def test_torchvision_vit_b_16_token_and_position_rows_and_total():
    """torchvision keeps the class token on the model and the position embeddings on its
    encoder: two rows, read in that order after the patch convolution; every parameter of the
    random-init vit_b_16 counted once."""
    from torchvision.models import vit_b_16

    model = vit_b_16(weights=None).eval()
    rows = layer_table(model, (3, 224, 224))
    assert table_totals(rows)["params"] == sum(p.numel() for p in model.parameters())
    assert [(r["name"], r["type"], r["parameter_shape"], r["params"]) for r in rows[:3]] == [
        ("conv_proj", "Conv2d", None, 768 * 3 * 16 * 16 + 768),
        ("class_token", "class token", [1, 1, 768], 768),
        ("encoder.pos_embedding", "position embeddings", [1, 197, 768], 197 * 768),
    ]
    names = [r["name"] for r in rows]
    assert "(model)" not in names and "encoder" not in names  # no row for the whole encoder
    assert _hook_count(model) == 0
    # the Model Inspector's 22 characters: 46 ("encoder.layers.encoder_layer_10.self_attention")
    # scrolled its table sideways at 1024 px
    shown, prefix = summary.shorten_layer_names(names, max_chars=22)
    assert prefix == "encoder.layers.encoder_layer_"
    assert max(map(len, names)) == 46 and max(map(len, shown)) == 21  # encoder.pos_embedding
    assert shown[names.index("encoder.layers.encoder_layer_10.self_attention")] == (
        "…10.self_attention"
    )
    assert [full for full, short in zip(names, shown, strict=True) if short == full] == [
        "conv_proj",
        "class_token",
        "encoder.pos_embedding",
        "encoder.dropout",
        "encoder.ln",
        "heads.head",
    ]


_VIT_NAMES = [
    "conv_proj",
    "encoder.pos_embedding",
    "encoder.layers.encoder_layer_1.mlp.0",
    "encoder.layers.encoder_layer_10.self_attention",
    "encoder.layers.encoder_layer_11.ln_1",
    "heads.head",
]


@pytest.mark.parametrize(
    ("max_chars", "prefix", "block_10"),
    [
        (46, "", "encoder.layers.encoder_layer_10.self_attention"),  # all fit: unchanged
        (32, "encoder.layers.", "…encoder_layer_10.self_attention"),  # 1 + 31 characters
        (24, "encoder.layers.encoder_", "…layer_10.self_attention"),
        (22, "encoder.layers.encoder_layer_", "…10.self_attention"),
        # "encoder.pos_embedding" is long too, and nothing brings 46 within 10: the longest
        # start all long names share is left out
        (10, "encoder.", "…layers.encoder_layer_10.self_attention"),
    ],
)
def test_shorten_layer_names_leaves_out_the_least_shared_start(max_chars, prefix, block_10):
    """By hand: the long names share "encoder.layers.encoder_layer_1"; the starts ending at a
    separator are "encoder.", "encoder.layers.", "encoder.layers.encoder_" and
    "encoder.layers.encoder_layer_", and the shortest that brings the 46 characters of block
    10's self_attention within ``max_chars`` is left out. At 10 even "encoder.pos_embedding"
    is long, and the long names share only "encoder."."""
    shown, left_out = summary.shorten_layer_names(_VIT_NAMES, max_chars=max_chars)
    assert left_out == prefix
    assert shown[3] == block_10
    # every name that begins with the prefix loses it, the others stay whole, order kept
    for full, short in zip(_VIT_NAMES, shown, strict=True):
        assert short == (f"…{full[len(prefix) :]}" if prefix and full.startswith(prefix) else full)


def test_shorten_layer_names_keeps_names_it_cannot_shorten():
    # long names that share no start ending at "." or "_"
    names = ["stem.conv_with_a_long_name", "head.linear_with_a_long_name", "fc"]
    assert summary.shorten_layer_names(names, max_chars=10) == (names, "")
    # a name equal to the prefix keeps it: "…" alone would name nothing
    names = ["blocks.", "blocks.0.attention_block", "blocks.1.attention_block"]
    assert summary.shorten_layer_names(names, max_chars=20) == (
        ["blocks.", "…0.attention_block", "…1.attention_block"],
        "blocks.",
    )
    assert summary.shorten_layer_names([], max_chars=5) == ([], "")


def test_transformer_block_counts():
    counts = [c["params"] for c in transformer_block_counts()]
    assert counts == [168, 328, 668]


def test_transformer_block_formulas_add_up_and_survive_markdown():
    """Each formula's arithmetic gives the count torch's module has; no Markdown emphasis
    characters (st.table renders cells as Markdown: "3*6*6 + 3*6" was shown as "36 + 36" in
    italics)."""
    for block in transformer_block_counts():
        formula = block["formula"]
        assert not re.search(r"[*_`]", formula), formula
        # the labels ("in-proj", "linear1", "LayerNorm") go, a comma separates two terms
        arithmetic = re.sub(r"[A-Za-z][A-Za-z0-9-]*", "", formula).replace(",", "+")
        assert eval(arithmetic.replace("×", "*"), {"__builtins__": {}}) == block["params"]


def test_transformer_layer_rows_sum_and_attention_macs():
    layer = nn.TransformerEncoderLayer(6, 2, dim_feedforward=10, batch_first=True).eval()
    layer.requires_grad_(False)  # like the app's cached models: must not take the fused fast path
    rows = layer_table(layer, (5, 6))
    by_name = {r["name"]: r for r in rows}
    assert table_totals(rows)["params"] == 328
    # q, k, v, out projections 4 * 5*6*6 + QK^T and AV 2 * 5*5*6
    assert by_name["self_attn"]["macs"] == 4 * 180 + 2 * 150
    assert by_name["linear1"]["macs"] == 5 * 6 * 10
    assert by_name["self_attn"]["output_shape"] == [1, 5, 6]
    mha_rows = layer_table(nn.MultiheadAttention(6, 2), (5, 6))
    assert [(r["params"], r["macs"]) for r in mha_rows] == [(168, 1020)]
    encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(6), enable_nested_tensor=False)
    assert table_totals(layer_table(encoder.eval(), (5, 6)))["params"] == 668


class _Boom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.fc(x)
        raise RuntimeError("boom")


def test_hooks_removed_and_model_untouched_even_on_error():
    model = _Boom()
    with pytest.raises(RuntimeError, match="boom"):
        layer_table(model, (4,))
    assert _hook_count(model) == 0
    assert model.training  # mode restored

    resnet = SmallResNet().train()
    before = {k: v.clone() for k, v in resnet.state_dict().items()}
    layer_table(resnet, (1, 28, 28))
    assert _hook_count(resnet) == 0 and resnet.training
    for key, value in resnet.state_dict().items():
        torch.testing.assert_close(value, before[key])  # BatchNorm statistics not updated


def test_layer_table_rejects_bad_shapes():
    with pytest.raises(ValueError):
        layer_table(LeNetLike(), (0, 28, 28))


def test_batch_matmul_timing_small():
    result = batch_matmul_timing(n_samples=50, n_in=40, n_out=30, repeats=1, device="cpu")
    assert result["max_abs_diff"] < 1e-4  # both paths compute the same product
    assert result["loop_s"] > 0 and result["batched_s"] > 0
    assert result["speedup"] == pytest.approx(result["loop_s"] / result["batched_s"])
    with pytest.raises(ValueError):
        batch_matmul_timing(n_samples=0)


@pytest.mark.gpu
def test_batch_matmul_timing_gpu():
    result = batch_matmul_timing(n_samples=100, device="cuda")
    assert result["device"].startswith("cuda") and result["max_abs_diff"] < 1e-2


def _resnet() -> nn.Module:
    torch.manual_seed(0)
    return SmallResNet().eval()


def test_layer_table_runs_on_the_models_device(monkeypatch):
    """The meta device as a GPU: the input is made on the model's device, no operation mixes
    devices, nothing is read back on the host; shapes, counts and fields need no data."""
    allow_meta(monkeypatch, summary)
    model = _resnet().to("meta")
    with MetaAsGPU() as mode:
        rows = layer_table(model, (1, 28, 28), device="meta")
    assert rows == layer_table(_resnet(), (1, 28, 28))
    assert "conv2d" in mode.device_ops and mode.host_reads == 0


@pytest.mark.gpu
def test_layer_table_of_a_gpu_model_matches_the_cpu():
    gpu = _resnet().to("cuda")  # parameters on "cuda:0"; device="cuda" names the same GPU
    expected = layer_table(_resnet(), (1, 28, 28))
    assert layer_table(gpu, (1, 28, 28), device="cuda") == expected
    assert layer_table(gpu, (1, 28, 28)) == expected
    with pytest.raises(ValueError, match="not on the requested cpu"):
        layer_table(gpu, (1, 28, 28), device="cpu")
