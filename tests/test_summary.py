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
    root = {r["name"]: r for r in rows}["(model)"]
    assert root["params"] == 32 + 17 * 32  # class token and position embedding


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
