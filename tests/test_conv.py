"""vizlib.conv against torch's own layers, plus the worked examples of issue 2 by hand."""

from __future__ import annotations

import itertools
import random
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests._colours import DARK_PAGE, LIGHT_PAGE, contrast
from tests.test_device import MetaAsGPU, allow_meta, exact_float32
from vizlib import conv

torch.set_num_threads(1)


def _random_settings(rng: random.Random) -> dict:
    """Random 2-D conv settings that give a non-empty output."""
    while True:
        s = {
            "h": rng.randint(1, 12),
            "w": rng.randint(1, 12),
            "kh": rng.randint(1, 5),
            "kw": rng.randint(1, 5),
            "sh": rng.randint(1, 4),
            "sw": rng.randint(1, 4),
            "ph": rng.randint(0, 3),
            "pw": rng.randint(0, 3),
            "dh": rng.randint(1, 3),
            "dw": rng.randint(1, 3),
        }
        if (s["h"] + 2 * s["ph"] >= 1 + (s["kh"] - 1) * s["dh"]) and (
            s["w"] + 2 * s["pw"] >= 1 + (s["kw"] - 1) * s["dw"]
        ):
            return s


# --- worked examples from the issue -------------------------------------------------------


def test_worked_example_3x32x32_ten_5x5_filters():
    assert conv.conv_output_shape((32, 32), 5, stride=1, padding=2) == (32, 32)
    assert conv.conv_params(3, 10, 5) == 760
    assert conv.conv_macs(3, 10, 5, (32, 32)) == 768_000
    layer = torch.nn.Conv2d(3, 10, 5, padding=2)
    assert sum(p.numel() for p in layer.parameters()) == 760
    assert layer(torch.zeros(1, 3, 32, 32)).shape == (1, 10, 32, 32)


def test_worked_example_lenet_first_layer():
    assert conv.conv_output_shape(28, 5) == (24, 24)
    assert conv.conv_params(1, 32, 5) == 832
    assert conv.conv_macs(1, 32, 5, (24, 24)) == 460_800


def test_output_size_by_hand():
    assert conv.output_size(7, 3) == 5
    assert conv.output_size(7, 3, stride=2, padding=1) == 4  # floor((7+2-2-1)/2)+1
    assert conv.output_size(7, 3, dilation=2) == 3  # extent 5
    assert conv.output_size(5, 4, stride=3) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((3, 5), "larger than the padded input"),
        ((7, 3, 1, 0, 4), "extent 1 + (3-1)×4 = 9"),
        ((0, 3), "Input size must be at least 1"),
        ((7, 0), "Kernel size must be at least 1"),
        ((7, 3, 0), "Stride must be at least 1"),
        ((7, 3, 1, -1), "Padding must be at least 0"),
        ((7.5, 3), "whole number"),
    ],
)
def test_output_size_errors_are_readable(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        conv.output_size(*args)


def test_receptive_field_of_three_3x3_layers_is_7():
    assert conv.receptive_field([(3, 1, 1)] * 3) == [3, 5, 7]
    assert 3 * conv.conv_params(64, 64, 3, bias=False) == 27 * 64**2
    assert conv.conv_params(64, 64, 7, bias=False) == 49 * 64**2
    # stride multiplies the jump, dilation the step: 3x3 s2 then 3x3 d2 -> 3 + 2*2*2 = 11
    assert conv.receptive_field([(3, 2, 1), (3, 1, 2)]) == [3, 11]
    assert conv.receptive_field([]) == []
    with pytest.raises(ValueError, match="Layer 2"):
        conv.receptive_field([(3, 1, 1), (3, 0, 1)])


def test_effective_extent():
    assert conv.effective_extent(3, 1) == 3
    assert conv.effective_extent(3, 2) == 5
    assert conv.effective_extent(5, 3) == 13


# --- against torch over many random settings ---------------------------------------------


def test_shapes_and_params_match_torch_over_random_settings():
    rng = random.Random(0)
    for _ in range(300):
        s = _random_settings(rng)
        g = rng.choice([1, 2, 4])
        cin, cout = g * rng.randint(1, 3), g * rng.randint(1, 3)
        bias = rng.random() < 0.5
        args = ((s["kh"], s["kw"]), (s["sh"], s["sw"]), (s["ph"], s["pw"]), (s["dh"], s["dw"]))
        layer = torch.nn.Conv2d(cin, cout, *args, groups=g, bias=bias, device="meta")
        out = layer(torch.empty(1, cin, s["h"], s["w"], device="meta"))
        shape = conv.conv_output_shape((s["h"], s["w"]), *args)
        assert out.shape == (1, cout, *shape), s
        assert conv.conv_params(cin, cout, args[0], bias=bias, groups=g) == sum(
            p.numel() for p in layer.parameters()
        )
        assert conv.conv_macs(cin, cout, args[0], shape, groups=g) == (
            layer.weight.numel() * shape[0] * shape[1]
        )
        layer_settings = conv.ConvSettings(cin, cout, *args, groups=g, bias=bias)
        ours = conv.torch_layer(layer_settings, device="meta")
        assert conv.torch_output_shape(ours, cin, (s["h"], s["w"])) == tuple(out.shape)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_same_and_valid_padding_match_torch():
    rng = random.Random(1)
    for _ in range(100):
        s = _random_settings(rng)
        k, d = (s["kh"], s["kw"]), (s["dh"], s["dw"])
        for pad in ("same", "valid"):
            if pad == "valid" and (
                s["h"] < 1 + (k[0] - 1) * d[0] or s["w"] < 1 + (k[1] - 1) * d[1]
            ):
                continue
            layer = torch.nn.Conv2d(1, 1, k, padding=pad, dilation=d, device="meta")
            out = layer(torch.empty(1, 1, s["h"], s["w"], device="meta"))
            assert conv.conv_output_shape((s["h"], s["w"]), k, 1, pad, d) == tuple(out.shape[2:])


def test_same_padding_with_stride_is_refused_like_torch():
    with pytest.raises(ValueError, match="'same' padding needs stride 1"):
        conv.conv_output_shape(7, 3, stride=2, padding="same")
    with pytest.raises(ValueError):
        torch.nn.Conv2d(1, 1, 3, stride=2, padding="same")


def test_transposed_shapes_match_torch():
    rng = random.Random(2)
    checked = 0
    while checked < 200:
        s = _random_settings(rng)
        op = (rng.randint(0, 2), rng.randint(0, 2))
        args = ((s["kh"], s["kw"]), (s["sh"], s["sw"]), (s["ph"], s["pw"]), (s["dh"], s["dw"]))
        try:
            shape = conv.conv_transpose_output_shape((s["h"], s["w"]), *args, op)
        except ValueError:
            with pytest.raises(RuntimeError):
                layer = torch.nn.ConvTranspose2d(
                    1, 2, *args[:3], output_padding=op, dilation=args[3]
                )
                layer(torch.zeros(1, 1, s["h"], s["w"]))
            continue
        g = rng.choice([1, 2])
        layer = torch.nn.ConvTranspose2d(
            2, 2 * g, *args[:3], output_padding=op, groups=g, dilation=args[3]
        )
        out = layer(torch.zeros(1, 2, s["h"], s["w"]))
        assert out.shape == (1, 2 * g, *shape), (s, op)
        assert conv.conv_params(2, 2 * g, args[0], groups=g) == sum(
            p.numel() for p in layer.parameters()
        )
        checked += 1


def _unfold_coverage(h, w, k, s, p, d) -> np.ndarray:
    """Independent count: unfold an image of cell ids (0 = padding) and count each id."""
    ids = torch.arange(1, h * w + 1, dtype=torch.float64).reshape(1, 1, h, w)
    cols = F.unfold(ids, k, dilation=d, padding=p, stride=s)  # (1, K_h*K_w, L)
    counts = torch.bincount(cols.flatten().long(), minlength=h * w + 1)[1:]
    return counts.reshape(h, w).numpy()


def test_coverage_matches_unfold_count():
    rng = random.Random(3)
    for _ in range(300):
        s = _random_settings(rng)
        args = ((s["kh"], s["kw"]), (s["sh"], s["sw"]), (s["ph"], s["pw"]), (s["dh"], s["dw"]))
        ours = conv.coverage((s["h"], s["w"]), *args)
        assert ours.shape == (s["h"], s["w"])
        np.testing.assert_array_equal(ours, _unfold_coverage(s["h"], s["w"], *args))
        ho, wo = conv.conv_output_shape((s["h"], s["w"]), *args)
        taps_inside = ours.sum()
        assert taps_inside <= ho * wo * s["kh"] * s["kw"]


def test_coverage_marks_cells_skipped_by_a_large_stride():
    counts = conv.coverage(7, 2, stride=3)  # windows at 0-1 and 3-4: rows/cols 2, 5, 6 unread
    assert counts.shape == (7, 7)
    unread_rows = [i for i in range(7) if counts[i].sum() == 0]
    assert unread_rows == [2, 5, 6]
    assert int((counts == 0).sum()) == 49 - 16


def _gradient_coverage(h, w, k, s, p, d, mode) -> np.ndarray:
    """Independent count: the gradient of the sum of a ones-kernel nn.Conv2d's output with
    respect to its input counts how often each input cell reaches the output, through the
    padding mode's copies too."""
    layer = torch.nn.Conv2d(1, 1, k, s, p, d, bias=False, padding_mode=mode).double()
    torch.nn.init.ones_(layer.weight)
    x = torch.ones(1, 1, h, w, dtype=torch.float64, requires_grad=True)
    layer(x).sum().backward()
    return x.grad[0, 0].round().long().numpy()


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_coverage_follows_the_padding_mode_like_torch(mode):
    rng = random.Random(7)
    checked = 0
    while checked < 150:
        s = _random_settings(rng)
        if mode == "reflect" and (s["ph"] >= s["h"] or s["pw"] >= s["w"]):
            continue  # torch refuses reflect padding as large as the input
        if mode == "circular" and (s["ph"] > s["h"] or s["pw"] > s["w"]):
            continue
        args = ((s["kh"], s["kw"]), (s["sh"], s["sw"]), (s["ph"], s["pw"]), (s["dh"], s["dw"]))
        ours = conv.coverage((s["h"], s["w"]), *args, padding_mode=mode)
        expected = _gradient_coverage(s["h"], s["w"], *args, mode)
        np.testing.assert_array_equal(ours, expected, err_msg=str(s))
        checked += 1


def test_circular_same_padding_reads_every_cell_equally():
    # worked by hand: wrapping round, every cell is under each of the 9 taps once
    counts = conv.coverage((5, 4), 3, padding="same", padding_mode="circular")
    np.testing.assert_array_equal(counts, np.full((5, 4), 9))
    # with zeros the corner is read by 4 positions only
    assert conv.coverage((5, 4), 3, padding="same")[0, 0] == 4


def test_reflect_padding_reads_the_cells_a_large_stride_skips():
    # 9 cells, kernel 2, stride 4, padding 1: windows on padded cells 0-1, 4-5, 8-9, i.e. input
    # -1..0, 3..4, 7..8; reflected, cell -1 is cell 1, which zero padding never reads
    assert conv.coverage(9, 2, stride=4, padding=1)[1].sum() == 0
    reflected = conv.coverage(9, 2, stride=4, padding=1, padding_mode="reflect")
    assert reflected[1, 1] == 1 and reflected[0, 0] == 1
    assert (reflected == 0).sum() == 81 - 36  # rows and columns 0, 1, 3, 4, 7, 8 are read
    with pytest.raises(ValueError, match="Padding mode"):
        conv.coverage(9, 2, padding_mode="mirror")


def test_coverage_same_padding_even_kernel_matches_torch_padding():
    # torch puts the extra cell of 'same' padding after: emulate with F.pad then unfold.
    h, w, k = 6, 5, (4, 2)
    ids = torch.arange(1, h * w + 1, dtype=torch.float64).reshape(1, 1, h, w)
    padded = F.pad(ids, (0, 1, 1, 2))  # (left, right, top, bottom)
    cols = F.unfold(padded, k)
    expected = torch.bincount(cols.flatten().long(), minlength=h * w + 1)[1:].reshape(h, w)
    np.testing.assert_array_equal(conv.coverage((h, w), k, padding="same"), expected.numpy())


@pytest.mark.parametrize("mode", conv.PADDING_MODES)
def test_apply_kernel_equals_conv2d_with_padding_modes(mode):
    rng = random.Random(4)
    gen = torch.Generator().manual_seed(0)
    tried = 0
    while tried < 40:
        s = _random_settings(rng)
        s["h"], s["w"] = s["h"] + 3, s["w"] + 3
        if mode == "reflect" and (s["ph"] >= s["h"] or s["pw"] >= s["w"]):
            continue
        args = ((s["sh"], s["sw"]), (s["ph"], s["pw"]), (s["dh"], s["dw"]))
        if conv.check_settings((s["h"], s["w"]), (s["kh"], s["kw"]), *args, padding_mode=mode):
            continue
        c = rng.choice([1, 3])
        image = torch.randn(c, s["h"], s["w"], generator=gen, dtype=torch.float64)
        kernel = torch.randn(s["kh"], s["kw"], generator=gen, dtype=torch.float64)
        layer = torch.nn.Conv2d(
            c, c, kernel.shape, *args, groups=c, bias=False, padding_mode=mode,
            dtype=torch.float64,
        )  # fmt: skip
        with torch.no_grad():
            layer.weight.copy_(kernel.expand(c, 1, *kernel.shape))
            expected = layer(image[None])[0].float()
        got = conv.apply_kernel(image if c > 1 else image[0], kernel, *args, mode, device="cpu")
        torch.testing.assert_close(got, expected if c > 1 else expected[0], atol=1e-4, rtol=1e-4)
        tried += 1


def test_apply_kernel_same_padding_matches_functional_conv2d():
    gen = torch.Generator().manual_seed(1)
    image = torch.randn(9, 8, generator=gen)
    for k in ((3, 3), (4, 2), (2, 5)):
        kernel = torch.randn(*k, generator=gen)
        expected = F.conv2d(image[None, None], kernel[None, None], padding="same", dilation=2)
        got = conv.apply_kernel(image.numpy(), kernel.numpy(), padding="same", dilation=2)
        assert got.shape == (9, 8)
        torch.testing.assert_close(got, expected[0, 0], atol=1e-5, rtol=1e-5)


def test_apply_kernel_known_answer_and_errors():
    image = np.arange(16, dtype=float).reshape(4, 4)
    out = conv.apply_kernel(image, np.ones((2, 2)), stride=2)
    torch.testing.assert_close(out, torch.tensor([[10.0, 18.0], [42.0, 50.0]]))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv.apply_kernel(image, np.ones((5, 5)))
    with pytest.raises(ValueError, match="Reflect padding"):
        conv.apply_kernel(image, np.ones((3, 3)), padding=4, padding_mode="reflect")
    with pytest.raises(ValueError, match="NaN"):
        conv.apply_kernel(np.full((4, 4), np.nan), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(C, H, W\)"):
        conv.apply_kernel(np.zeros(4), np.ones((2, 2)))
    with pytest.raises(ValueError, match="Padding mode"):
        conv.apply_kernel(image, np.ones((2, 2)), padding_mode="mirror")


@pytest.mark.parametrize(("mode", "np_mode"), [("zeros", "constant"), ("reflect", "reflect"),
                                              ("replicate", "edge"), ("circular", "wrap")])  # fmt: skip
def test_padded_input_is_what_the_convolution_reads(mode, np_mode):
    values = np.arange(20.0).reshape(4, 5)
    padded = conv.padded_input(values, (3, 4), padding="same", padding_mode=mode)
    # 'same' with a 3x4 kernel: 1 above / 1 below, 1 left / 2 right
    np.testing.assert_array_equal(padded, np.pad(values, ((1, 1), (1, 2)), mode=np_mode))
    # every output of a kernel of ones is the sum of its window of the padded grid
    sums = conv.apply_kernel(values, np.ones((3, 4)), padding="same", padding_mode=mode)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 4)).sum(axis=(2, 3))
    np.testing.assert_allclose(sums.numpy(), windows)
    with pytest.raises(ValueError, match="Reflect padding"):
        conv.padded_input(values, 3, padding=4, padding_mode="reflect")


def test_apply_kernel_transposed_scatters_the_kernel_like_convtranspose2d():
    gen = torch.Generator().manual_seed(2)
    image = torch.randn(2, 4, 5, generator=gen, dtype=torch.float64)
    kernel = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    args = {"stride": (2, 3), "padding": (1, 0), "dilation": (2, 1), "output_padding": (1, 2)}
    got = conv.apply_kernel(image, kernel, args["stride"], args["padding"], args["dilation"],
                            transposed=True, output_padding=args["output_padding"])  # fmt: skip
    # by hand: every input cell adds value × kernel at (i·S - P + a·D, j·S - P + b·D)
    ho, wo = conv.conv_transpose_output_shape((4, 5), (3, 2), **args)
    expected = np.zeros((2, ho, wo))
    for c, i, j, a, b in np.ndindex(2, 4, 5, 3, 2):
        r, q = i * 2 - 1 + a * 2, j * 3 + b
        if 0 <= r < ho and 0 <= q < wo:
            expected[c, r, q] += image[c, i, j].item() * kernel[a, b].item()
    assert got.shape == (2, ho, wo) == (2, 10, 16)  # (4-1)·2 - 2 + 2·2 + 1 + 1, (5-1)·3 + 1 + 2 + 1
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    layer = torch.nn.ConvTranspose2d(2, 2, (3, 2), groups=2, bias=False, dtype=torch.float64,
                                     **args)  # fmt: skip
    with torch.no_grad():
        layer.weight.copy_(kernel.expand(2, 1, 3, 2))
        torch.testing.assert_close(got, layer(image[None])[0].float(), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="Output padding"):
        conv.apply_kernel(image, kernel, 2, transposed=True, output_padding=2)
    with pytest.raises(ValueError, match="zero padding"):
        conv.apply_kernel(image, kernel, transposed=True, padding_mode="reflect")


def test_conv_settings_problems_are_check_settings():
    layer = conv.ConvSettings(3, 6, 9, 2, "same", groups=2)
    assert layer.problems(7) == conv.check_settings(7, 9, 2, "same", in_channels=3,
                                                    out_channels=6, groups=2)  # fmt: skip
    assert set(layer.problems(7)) == {"groups", "padding"}
    assert conv.ConvSettings(transposed=True, output_padding=1, stride=2).problems(4) == {}


def test_transpose_coverage_equals_convtranspose_of_ones():
    rng = random.Random(5)
    done = 0
    while done < 100:
        s = _random_settings(rng)
        args = ((s["kh"], s["kw"]), (s["sh"], s["sw"]), (s["ph"], s["pw"]), (s["dh"], s["dw"]))
        try:
            counts = conv.transpose_coverage((s["h"], s["w"]), *args)
        except ValueError:
            continue
        layer = torch.nn.ConvTranspose2d(1, 1, *args[:3], dilation=args[3], bias=False)
        with torch.no_grad():
            layer.weight.fill_(1.0)
            expected = layer(torch.ones(1, 1, s["h"], s["w"]))[0, 0]
        np.testing.assert_array_equal(counts, expected.round().long().numpy())
        done += 1


def test_footprints():
    cells = conv.footprint((1, 2), (2, 3), stride=(2, 1), dilation=(1, 2))
    assert cells.tolist() == [[2, 2], [2, 4], [2, 6], [3, 2], [3, 4], [3, 6]]
    lands = conv.transpose_footprint((1, 0), 2, stride=3, padding=1)
    assert lands.tolist() == [[2, -1], [2, 0], [3, -1], [3, 0]]
    assert conv.output_positions(5, 3, 2) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_check_settings_names_the_control():
    assert conv.check_settings(7, 3) == {}
    assert "kernel" in conv.check_settings(7, 9)
    assert "input" in conv.check_settings((0, 7), 3)
    assert "kernel" in conv.check_settings(7, (3, 0))
    assert "padding" in conv.check_settings(7, 3, 2, "same")
    assert "groups" in conv.check_settings(7, 3, in_channels=3, out_channels=6, groups=2)
    assert "padding_mode" in conv.check_settings(4, 3, 1, 4, padding_mode="reflect")
    assert "output_padding" in conv.check_settings(4, 3, 2, 0, transposed=True, output_padding=2)
    assert "padding" in conv.check_settings(2, 1, 1, 3, transposed=True)
    assert "padding_mode" in conv.check_settings(4, 3, transposed=True, padding_mode="reflect")
    # independent problems are all reported, each at its own control
    both = conv.check_settings(7, 9, 2, "same", in_channels=3, groups=2)
    assert set(both) == {"groups", "padding"}
    both = conv.check_settings(7, 9, in_channels=3, groups=2, padding_mode="circular")
    assert set(both) == {"groups", "kernel"}


def test_layer_code_builds_the_same_layer():
    rng = random.Random(6)
    for _ in range(30):
        s = _random_settings(rng)
        transposed = rng.random() < 0.5
        mode = "zeros" if transposed else rng.choice(conv.PADDING_MODES)
        args = ((s["kh"], s["kw"]), (s["sh"], s["sw"]), (s["ph"], s["pw"]), (s["dh"], s["dw"]))
        layer = conv.ConvSettings(
            4, 6, *args, groups=2, bias=False, padding_mode=mode, transposed=transposed,
            output_padding=(rng.randint(0, s["sh"] - 1), rng.randint(0, s["sw"] - 1)),
        )  # fmt: skip
        code = conv.layer_code(layer)
        built = eval(code, {"nn": torch.nn})  # noqa: S307 - our own generated code
        ref = conv.torch_layer(layer, device="cpu")
        assert type(built) is type(ref)
        attrs = ("kernel_size", "stride", "padding", "dilation", "groups", "padding_mode")
        for attr in (*attrs, "output_padding") if transposed else attrs:
            assert getattr(built, attr) == getattr(ref, attr), (code, attr)
        assert built.bias is None
    assert (
        conv.layer_code(conv.ConvSettings(3, 10, 5, 1, 2))
        == "nn.Conv2d(3, 10, kernel_size=5, padding=2)"
    )


# --- 1-D -----------------------------------------------------------------------------------


def test_full_convolution_examples_exactly():
    np.testing.assert_array_equal(
        conv.full_convolve1d([1] * 6, [1] * 6), [1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1]
    )
    np.testing.assert_array_equal(conv.full_convolve1d([1, 2, 3], [4, 5, 6]), [4, 13, 28, 27, 18])
    np.testing.assert_array_equal(
        conv.full_convolve1d([3, 1, 4, 1, 5, 9], [7, 7, 5]), [21, 28, 50, 40, 62, 103, 88, 45]
    )
    dice = conv.full_convolve1d(np.full(6, 1 / 6), np.full(6, 1 / 6))
    assert dice.sum() == pytest.approx(1.0)
    assert dice[5] == pytest.approx(6 / 36)  # P(total = 7)


def test_valid_correlation_examples_exactly():
    np.testing.assert_array_equal(conv.correlate1d([1, 2, 3, 4], [3, 2]), [7, 12, 17])
    step = [0, 0, 0, 0, 1, 2, 3, 4, 4, 4, 4]
    np.testing.assert_array_equal(conv.correlate1d(step, [-1, 1]), [0, 0, 0, 1, 1, 1, 1, 0, 0, 0])
    with pytest.raises(ValueError, match="longer than the signal"):
        conv.correlate1d([1, 2], [1, 2, 3])


def test_1d_against_numpy_and_conv1d():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.normal(size=rng.integers(1, 9)), rng.normal(size=rng.integers(1, 9))
        np.testing.assert_allclose(conv.full_convolve1d(a, b), np.convolve(a, b))
        x, u = (a, b) if len(a) >= len(b) else (b, a)
        expected = F.conv1d(torch.tensor(x)[None, None], torch.tensor(u)[None, None])[0, 0]
        np.testing.assert_allclose(conv.correlate1d(x, u), expected.numpy())


def test_written_sums_term_by_term():
    lines = conv.written_sums(conv.convolution_terms([1, 2, 3], [4, 5, 6]))
    assert lines[2] == "y[2] = a[0]·b[2] + a[1]·b[1] + a[2]·b[0] = 1·6 + 2·5 + 3·4 = 28"
    assert len(lines) == 5
    lines = conv.written_sums(conv.correlation_terms([1, 2, 3, 4], [3, 2]), names=("x", "u"))
    assert lines == [
        "y[0] = x[0]·u[0] + x[1]·u[1] = 1·3 + 2·2 = 7",
        "y[1] = x[1]·u[0] + x[2]·u[1] = 2·3 + 3·2 = 12",
        "y[2] = x[2]·u[0] + x[3]·u[1] = 3·3 + 4·2 = 17",
    ]


def test_parse_sequence():
    assert conv.parse_sequence("1, 2,3  4") == [1.0, 2.0, 3.0, 4.0]
    assert conv.parse_sequence("-1; 0.5") == [-1.0, 0.5]
    with pytest.raises(ValueError, match="entry 2 \\('x'\\) is not a number"):
        conv.parse_sequence("1, x")
    with pytest.raises(ValueError, match="empty"):
        conv.parse_sequence(" , ")
    with pytest.raises(ValueError, match="finite"):
        conv.parse_sequence("1, nan")


@pytest.mark.gpu
def test_apply_kernel_on_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(2)
    image, kernel = torch.randn(3, 40, 30, generator=gen), torch.randn(5, 3, generator=gen)
    with exact_float32():  # one channel goes to cuDNN, which would round to TF32
        for channels, mode in itertools.product((image, image[0]), conv.PADDING_MODES):
            cpu = conv.apply_kernel(channels, kernel, 2, (2, 1), (1, 2), mode, device="cpu")
            gpu = conv.apply_kernel(channels, kernel, 2, (2, 1), (1, 2), mode, device="cuda")
            assert gpu.device.type == "cpu"  # results come back to the CPU for plotting
            torch.testing.assert_close(gpu, cpu, atol=1e-5, rtol=1e-5)
        options = {"transposed": True, "output_padding": 1}
        cpu = conv.apply_kernel(image, kernel, 2, 1, 1, device="cpu", **options)
        gpu = conv.apply_kernel(image, kernel, 2, 1, 1, device="cuda", **options)
        torch.testing.assert_close(gpu, cpu, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("transposed", [False, True])
def test_apply_kernel_runs_on_the_device(transposed, monkeypatch):
    """The meta device as a GPU: image and kernel cross once, are checked before they do (no
    read back from the device), and the result comes back to the CPU with torch's shape."""
    allow_meta(monkeypatch, conv)
    image = np.random.default_rng(0).random((3, 20, 15))
    args = (np.ones((4, 3)), 2, 1, 2)
    with MetaAsGPU() as mode:
        out = conv.apply_kernel(image, *args, transposed=transposed, device="meta")
    assert out.device.type == "cpu" and out.dtype == torch.float32
    assert out.shape == conv.apply_kernel(image, *args, transposed=transposed).shape
    assert ("conv_transpose2d" if transposed else "conv2d") in mode.device_ops
    assert mode.host_reads == 0


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without a GPU"
)
def test_apply_kernel_on_absent_gpu_says_so():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        conv.apply_kernel(np.ones((4, 4)), np.ones((2, 2)), device="cuda")


# --- figures (vizlib.plots.conv) -------------------------------------------------------------


def test_animation_has_one_frame_per_output_position():
    from vizlib.plots import conv as conv_plots

    fig = conv_plots.plot_conv_animation((7, 7), (3, 3), (2, 2), 1, (1, 1), position=(1, 2))
    assert len(fig.frames) == 16  # 4 x 4 outputs
    assert [f.name for f in fig.frames][:3] == ["(0, 0)", "(0, 1)", "(0, 2)"]
    assert fig.layout.sliders[0].active == 6  # (1, 2) in row-major order
    # no "active" highlight on Play: a dark theme drew it light on light, unreadable
    assert fig.layout.updatemenus[0].showactive is False
    # the footprint of the first frame: 9 closed squares, top-left at padded (0, 0)
    taps = fig.frames[0].data[0]
    assert list(taps.x).count(None) == 9
    assert min(v for v in taps.x if v is not None) == -0.5
    # the highlighted output cell of frame (3, 3)
    cell = fig.frames[15].data[2]
    assert (min(v for v in cell.x if v is not None), min(v for v in cell.y if v is not None)) == (
        2.5,
        2.5,
    )
    static = conv_plots.plot_conv_animation((40, 40), (3, 3), animate=False, position=(5, 5))
    assert len(static.frames) == 0
    with pytest.raises(ValueError, match="too many to animate"):
        conv_plots.plot_conv_animation((40, 40), (3, 3))


def test_animation_numbers_show_what_the_padding_mode_puts_in_the_padding():
    from vizlib.plots import conv as conv_plots

    values = np.arange(25.0).reshape(5, 5)
    fig = conv_plots.plot_conv_animation(
        (5, 5), (3, 3), 1, 1, 1, padding_mode="reflect", input_values=values
    )
    text = np.asarray(fig.data[0].text)  # (7, 7) the padded grid
    assert text[0].tolist() == ["6", "5", "6", "7", "8", "9", "8"]  # row 1 mirrored above
    assert text[:, 0].tolist() == ["6", "1", "6", "11", "16", "21", "16"]
    assert "reflect padding" in fig.layout.annotations[0].text
    plain = conv_plots.plot_conv_animation((5, 5), (3, 3), input_values=values)
    assert plain.layout.annotations[0].text == "Input 5×5 (no padding)"


def test_convolution_figures_read_on_a_dark_page_as_on_a_light_one():
    """The grids' gaps are the page's own colour (a white plot area was a white box on the dark
    theme), and the outlines shown in the legend stand out from a dark page and a white one
    (navy and dark green were lost on the dark theme): a contrast ratio of 3 at least."""
    from vizlib.plots import conv as conv_plots

    figures = [
        conv_plots.plot_conv_animation((7, 7), (3, 3), (2, 2), 1, (1, 1)),
        conv_plots.plot_transpose_conv((3, 3), (3, 3), (2, 2), (1, 1)),
        conv_plots.plot_coverage(conv.coverage(7, 2, 3)),
    ]
    for fig in figures:
        assert fig.layout.plot_bgcolor.replace(" ", "") == "rgba(0,0,0,0)"
    for fig in figures[:2]:
        for trace in fig.data[2:]:  # the outlines drawn over the grids (after the heatmaps)
            for page in (DARK_PAGE, LIGHT_PAGE):
                assert contrast(trace.line.color, page) >= 3, (trace.name, trace.line.color, page)


def test_coverage_and_transpose_figures_count_cells():
    from vizlib.plots import conv as conv_plots

    fig = conv_plots.plot_coverage(conv.coverage(7, 2, 3))
    assert "33 never read" in fig.layout.title.text
    assert len(fig.data[1].x) == 33
    fig = conv_plots.plot_transpose_conv((3, 3), (3, 3), (2, 2), (1, 1))
    assert len(fig.frames) == 9
    np.testing.assert_array_equal(
        fig.data[1].z, conv.transpose_coverage((3, 3), 3, 2, 1)
    )  # (5, 5) counts


def test_image_figure_and_downloads_round_trip():
    import io

    from PIL import Image

    from vizlib.plots import conv as conv_plots
    from vizlib.plots import export

    image = np.random.default_rng(0).random((3, 20, 16))
    out = conv.apply_kernel(image, np.ones((3, 3)) / 9).numpy()
    fig = conv_plots.plot_conv_images(image, np.ones((3, 3)) / 9, out)
    assert [a.text for a in fig.layout.annotations] == [
        "Input 20×16",
        "Kernel 3×3 (sum 1)",
        "Output 18×14",
    ]
    png = Image.open(io.BytesIO(export.to_png_bytes(out)))
    assert png.size == (14, 18) and png.mode == "RGB"
    # Fixed margins: with plotly's auto-expansion the colour bars under the images restarted the
    # layout several times, each redrawing two 256x256 heatmaps (about 5 s of browser CPU).
    grey = conv_plots.plot_conv_images(image[0], np.ones((3, 3)) / 9, out[0])
    margin = grey.layout.margin
    assert margin.autoexpand is False
    bars = [t.colorbar for t in grey.data if t.type == "heatmap" and t.showscale is not False]
    assert len(bars) == 2  # under the input and the output
    plot_height = grey.layout.height - margin.t - margin.b
    for bar in bars:  # the bar and its title (about 30 px) fit in the bottom margin
        assert -bar.y * plot_height + bar.thickness + 30 <= margin.b
    loaded = np.load(io.BytesIO(export.to_npy_bytes(out, dtype=np.float32)), allow_pickle=False)
    np.testing.assert_allclose(loaded, out, rtol=1e-6)


def test_format_number_writes_whole_numbers_plainly_and_huge_ones_short():
    assert conv.format_number(13.0) == "13" and conv.format_number(-2.0) == "-2"
    assert conv.format_number(0.5) == "0.5" and conv.format_number(3e-09) == "3e-09"
    assert conv.format_number(123456789012345.0) == "123456789012345"
    # 1e200 is a whole float too: written out it was 201 digits
    assert conv.format_number(1e200) == "1e+200" and conv.format_number(-1e16) == "-1e+16"
