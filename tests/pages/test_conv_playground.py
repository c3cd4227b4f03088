"""AppTest for the Convolution Playground: every control changes the output, bad settings show
a message at the control and never an exception, and the URL carries the settings."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.pages._shared import errors, link_warnings, plotly_array
from vizlib import conv

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "conv_playground.py")
APP = str(Path(__file__).resolve().parents[2] / "app.py")
OUTPUT_RE = re.compile(r"\*\*Output: (\d+) × (\d+) × (\d+)\*\*")


def _run(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = str(value)
    return at.run()


def _output(at: AppTest) -> tuple[int, int, int] | None:
    for md in at.markdown:
        found = OUTPUT_RE.search(md.value)
        if found:
            return tuple(int(n) for n in found.groups())
    return None


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    return "\n".join(parts + [c.value for c in at.code])


def _torch_shape(cin=1, cout=1, h=7, w=7, transposed=False, **kwargs) -> tuple[int, int, int]:
    layer_cls = torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d
    layer = layer_cls(cin, cout, device="meta", **kwargs)
    return tuple(layer(torch.empty(1, cin, h, w, device="meta")).shape[1:])


@pytest.fixture(scope="module")
def at() -> AppTest:
    return _run()


def test_defaults_show_sizes_params_and_every_section(at):
    assert not at.exception and not errors(at)
    assert _output(at) == (1, 5, 5)
    text = _texts(at)
    assert "really produces **(1, 1, 5, 5)**" in text
    assert "1 × 3 × 3 × 1 + 1 = **10**" in text  # parameters
    assert "1 × 5 × 5 × 1 × 3 × 3 = **225**" in text  # multiply-adds
    assert "nn.Conv2d(1, 1, kernel_size=3)" in text
    assert "The stack sees **7×7** pixels" in text
    assert "110,592" in text and "200,704" in text  # 27C² vs 49C² for C = 64
    assert "y[2] = a[0]·b[2] + a[1]·b[1] + a[2]·b[0] = 1·1 + 1·1 + 1·1 = 3" in text  # dice
    assert "y = (7, 12, 17)" in text
    assert "Every one of the 49 input cells is read" in [s.value for s in at.success][0]
    # animation, coverage, the stack's effective field and its profile, input/kernel/output
    assert [c.key for c in at.get("plotly_chart")][2:5] == [
        "conv.stack_erf",
        "conv.stack_profile",
        "conv.stack_depth",
    ]
    assert len(at.get("plotly_chart")) == 6


def test_worked_example_3x32x32(at):
    at.number_input(key="conv.h").set_value(32)
    at.number_input(key="conv.w").set_value(32)
    at.number_input(key="conv.kh").set_value(5)
    at.number_input(key="conv.kw").set_value(5)
    at.number_input(key="conv.ph").set_value(2)
    at.number_input(key="conv.pw").set_value(2)
    at.number_input(key="conv.cin").set_value(3)
    at.number_input(key="conv.cout").set_value(10).run()
    assert not at.exception and not errors(at)
    assert _output(at) == (10, 32, 32)
    text = _texts(at)
    assert "= **760**" in text and "= **768,000**" in text
    assert "nn.Conv2d(3, 10, kernel_size=5, padding=2)" in text
    assert at.query_params["h"] == "32" and at.query_params["cout"] == "10"


def test_each_geometry_control_changes_the_output():
    at = _run()
    kwargs: dict = {"kernel_size": [3, 3], "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1]}
    steps = [
        ("sh", 2, "stride", 0),
        ("sw", 3, "stride", 1),
        ("dh", 2, "dilation", 0),
        ("dw", 2, "dilation", 1),
        ("ph", 2, "padding", 0),
        ("pw", 1, "padding", 1),
        ("kh", 2, "kernel_size", 0),
        ("kw", 4, "kernel_size", 1),
        ("h", 12, "h", None),
        ("w", 9, "w", None),
    ]
    for key, value, arg, axis in steps:
        before = _output(at)
        widget = (
            at.slider(key=f"conv.{key}") if key[0] in "sd" else at.number_input(key=f"conv.{key}")
        )
        widget.set_value(value).run()
        if axis is None:
            kwargs[arg] = value
        else:
            kwargs[arg][axis] = value
        assert not at.exception and not errors(at), key
        assert _output(at) == _torch_shape(**kwargs), key
        assert _output(at) != before, key  # every control moves the output size
        assert at.query_params[key] == str(value)


def test_padding_kind_mode_channels_groups_bias():
    at = _run(h=32, w=32, kh=5, kw=5, cin=3, cout=10)
    at.radio(key="conv.pad").set_value("same").run()
    assert _output(at) == (10, 32, 32) and not at.exception
    at.selectbox(key="conv.pm").set_value("circular").run()
    assert "padding_mode='circular'" in _texts(at) and not errors(at)
    at.number_input(key="conv.cin").set_value(4)
    at.number_input(key="conv.cout").set_value(8)
    at.number_input(key="conv.g").set_value(4).run()
    assert not errors(at)
    assert "= **208**" in _texts(at)  # (4/4)·5·5·8 + 8
    at.checkbox(key="conv.bias").set_value(False).run()
    assert "= **200**" in _texts(at) and "bias=False" in _texts(at)
    at.button[0].click().run()  # Depthwise
    assert at.number_input(key="conv.g").value == 4 and not errors(at)
    at.radio(key="conv.pad").set_value("valid").run()
    assert _output(at) == (8, 28, 28)


def test_transposed_mode():
    at = _run(h=3, w=3, sh=2, sw=2, ph=1, pw=1)
    at.radio(key="conv.mode").set_value("Transposed convolution").run()
    assert not at.exception and not errors(at)
    assert _output(at) == _torch_shape(
        h=3, w=3, transposed=True, kernel_size=3, stride=2, padding=1
    )  # (3-1)·2 - 2 + 2 + 1 = 5
    at.number_input(key="conv.oph").set_value(1).run()
    assert _output(at) == (1, 6, 5)
    assert (
        "nn.ConvTranspose2d(1, 1, kernel_size=3, stride=2, padding=1, output_padding=(1, 0))"
        in _texts(at)
    )
    at.number_input(key="conv.opw").set_value(3).run()
    assert not at.exception
    assert any("Output padding (width) must be smaller" in e for e in errors(at))
    # its box is low on the left: the results column says what is wrong in words too
    assert "**output padding**: Output padding (width) must be smaller" in at.info[0].value


def test_output_padding_survives_a_round_trip_through_convolution_mode():
    """Convolution mode hides the output padding; the router parks it meanwhile."""
    at = AppTest.from_file(str(Path(PAGE).parents[1] / "app.py"), default_timeout=120).run()
    at.switch_page("app_pages/conv_playground.py").run()
    at.radio(key="conv.mode").set_value("Transposed convolution").run()
    at.number_input(key="conv.oph").set_value(1).run()
    at.radio(key="conv.mode").set_value("Convolution").run()
    at.radio(key="conv.mode").set_value("Transposed convolution").run()
    assert at.number_input(key="conv.oph").value == 1 and at.query_params["oph"] == "1"
    assert not at.exception


@pytest.mark.parametrize(
    ("kind", "shown"), [("same", "padding 'same',"), ("valid", "padding 'valid',")]
)
def test_the_real_data_caption_quotes_a_named_padding(kind, shown):
    at = _run(pad=kind)
    assert not at.exception
    assert any(
        c.value.startswith("Applies the convolution") and shown in c.value for c in at.caption
    )


def test_an_all_zero_kernel_is_not_called_an_edge_finder_and_an_overflow_is_refused():
    at = _run(**{"data.kernel": "custom", "data.custom": "0,0;0,0"})
    assert not at.exception and not errors(at)
    captions = [c.value for c in at.caption]
    assert "Custom kernel. All its weights are zero, so the output is 0 everywhere." in captions
    assert not any("finds edges" in c for c in captions)
    assert any("output range 0 to 0" in c for c in captions)
    # 1e38 x a typhoon's ~300 K is beyond float32: refused, not drawn as inf
    at = _run(**{"data.kernel": "custom", "data.custom": "1e38,1e38", "data.src": "field"})
    assert not at.exception
    assert any("The output overflows" in e for e in errors(at))
    assert not any("output range" in c.value for c in at.caption)


def test_transposed_mode_shows_the_padding_it_uses_and_keeps_the_users_choice():
    """In transposed mode the layer pads by numbers with zeros: the disabled boxes said 'same'
    and 'reflect' (the choices made for Conv2d) above a computation with P = 1 and zeros."""
    at = _run(pad="same", pm="reflect", ph=1, pw=1, mode="Transposed convolution")
    assert not at.exception and not errors(at)
    radio = at.radio(key="conv.pad_na")
    assert radio.value == "numbers" and radio.disabled and radio.options == ["per axis"]
    mode_box = at.selectbox(key="conv.pm_na")
    assert mode_box.value == "zeros" and mode_box.disabled
    assert not at.number_input(key="conv.ph").disabled
    assert _output(at) == _torch_shape(transposed=True, kernel_size=3, padding=1)  # 7 x 7
    assert "padding=1" in _texts(at) and "reflect" not in _texts(at)
    assert at.query_params["pad"] == "same" and at.query_params["pm"] == "reflect"
    at.radio(key="conv.mode").set_value("Convolution").run()  # back: the choices return
    assert at.radio(key="conv.pad").value == "same"
    assert at.selectbox(key="conv.pm").value == "reflect"
    assert _output(at) == (1, 7, 7) and "padding_mode='reflect'" in _texts(at)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"kh": 9}, "larger than the padded input"),
        ({"h": 0}, "Input size (height) must be at least 1"),
        ({"kw": 0}, "Kernel size (width) must be at least 1"),
        ({"cin": 3, "cout": 4, "g": 2}, "Groups (2) must divide"),
        ({"pad": "same", "sh": 2}, "'same' padding needs stride 1"),
        ({"pm": "reflect", "ph": 7}, "Reflect padding must be smaller than the input"),
        ({"dh": 4}, "extent 1 + (3-1)×4 = 9"),
    ],
)
def test_invalid_settings_show_a_message_not_an_exception(query, message):
    at = _run(**query)
    assert not at.exception
    assert any(message in e for e in errors(at)), errors(at)
    assert _output(at) is None
    assert "Fix the settings marked in red" in at.info[0].value
    assert message in at.info[0].value  # in view beside the results, not only under its box
    assert "y = (7, 12, 17)" in _texts(at)  # the rest of the page keeps working


def test_link_settings_are_loaded_and_bad_ones_ignored():
    at = _run(h=10, sw=3, bias="false", pm="nonsense", kh="x", dh=9)
    assert not at.exception
    assert _output(at) == _torch_shape(h=10, kernel_size=3, stride=(1, 3))
    warnings = " ".join(w.value for w in at.warning)
    # each ignored value says what the link should have held
    assert "`kh=x` from the link (expected a whole number from 0 to 31)" in warnings
    assert "`dh=9` from the link (expected a whole number from 1 to 6)" in warnings
    assert "`pm=nonsense` from the link (expected one of zeros, reflect, replicate, circular)" in (
        warnings
    )
    assert at.checkbox(key="conv.bias").value is False


def test_real_data_sources_and_kernels():
    at = _run()
    at.selectbox(key="conv.source").set_value("field").run()
    at.selectbox(key="conv.field").set_value("typhoon")
    at.slider(key="conv.noise").set_value(2.0).run()
    assert not at.exception and not errors(at)
    result = [c.value for c in at.caption if "128×128 → 124×124" in c.value]
    # a smoothed temperature field is positive: drawn in grey, so no red/blue legend
    assert result and result[0].endswith(" K.") and "red/blue" not in result[0]
    at.selectbox(key="conv.kernel").set_value("sobel_x").run()
    assert any("sum to zero" in c.value for c in at.caption)
    assert any("K (red/blue: positive/negative)" in c.value for c in at.caption)
    at.selectbox(key="conv.source").set_value("digit").run()
    at.number_input(key="conv.digit").set_value(7)
    at.selectbox(key="conv.kernel").set_value("laplacian").run()
    assert any("8×8 → 6×6" in c.value for c in at.caption) and not errors(at)
    at.selectbox(key="conv.kernel").set_value("gaussian").run()
    at.slider(key="conv.ksize").set_value(9).run()  # 9x9 kernel on 8x8 digit: no output
    assert any("do not fit this 8×8 input:" in e for e in errors(at)) and not at.exception
    at.selectbox(key="conv.source").set_value("sample").run()
    at.selectbox(key="conv.sample").set_value("astronaut")
    at.checkbox(key="conv.gray").set_value(False).run()
    assert not at.exception and not errors(at)
    assert len(at.get("download_button")) == 2


def test_one_d_examples_and_bad_sequence():
    at = _run()
    at.selectbox(key="conv.full.ex").set_value("(3, 1, 4, 1, 5, 9) * (7, 7, 5)").run()
    assert "a * b = (21, 28, 50, 40, 62, 103, 88, 45)" in _texts(at)
    at.selectbox(key="conv.valid.ex").set_value(
        "Step 0,0,0,0,1,2,3,4,4,4,4 with kernel (−1, 1)"
    ).run()
    assert "y = (0, 0, 0, 1, 1, 1, 1, 0, 0, 0)" in _texts(at)
    box = [t for t in at.text_input if t.key.startswith("conv.valid.b")][0]
    box.set_value("1, two").run()
    assert any("entry 2 ('two') is not a number" in e for e in errors(at))
    assert not at.exception


def test_one_d_sums_beyond_the_largest_float_are_refused_not_shown_as_inf():
    at = _run()
    box = next(t for t in at.text_input if t.key.startswith("conv.full.a"))
    box.set_value("1e200, 2").run()  # 1e200 · 1 is fine
    assert not errors(at) and "a * b = (1e+200, " in _texts(at)
    next(t for t in at.text_input if t.key.startswith("conv.full.b")).set_value("1e200").run()
    assert any("A sum overflows" in e for e in errors(at))  # 1e200 · 1e200 = 1e400
    assert "inf" not in _texts(at) and not at.exception
    next(t for t in at.text_input if t.key.startswith("conv.valid.a")).set_value("1e308, 1e308")
    next(t for t in at.text_input if t.key.startswith("conv.valid.b")).set_value("1, 1").run()
    assert sum("A sum overflows" in e for e in errors(at)) == 2  # 1e308 + 1e308
    assert not any(line.startswith("y = (") for line in _texts(at).splitlines())


def test_settings_survive_a_visit_to_another_page():
    first = _run()
    first.number_input(key="conv.h").set_value(12).run()
    assert _output(first) == (1, 10, 5)
    # Coming back from another page: Streamlit has dropped the widget state, but not the
    # page's own record of the last settings.
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["conv.loaded"] = True
    at.session_state["conv.saved"] = first.session_state["conv.saved"]
    at.run()
    assert not at.exception
    assert at.number_input(key="conv.h").value == 12 and _output(at) == (1, 10, 5)


def test_animation_numbers_use_the_padding_mode():
    import json

    at = _run(h=5, w=5, ph=1, pw=1, pm="reflect")
    assert not at.exception and not errors(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    text = spec["data"][0]["text"]  # (7, 7) padded grid of numbers
    assert text[0] == text[2] and [row[0] for row in text] == [row[2] for row in text]
    assert "reflect padding" in spec["layout"]["annotations"][0]["text"]
    windows = [int(text[r][c]) for r in range(3) for c in range(3)]
    assert spec["data"][1]["text"][0][0] == str(sum(windows))  # output (0, 0) = its window


def test_coverage_counts_reads_through_the_padding_mode():
    """Reflect padding copies input cells into the padding: the cells a stride-4 kernel reads
    there are read, as the animation's numbers show, not 'never read' (they were, with every
    padding mode); circular 'same' padding reads every cell K_h x K_w times."""
    import json

    def coverage(at):
        chart = next(c for c in at.get("plotly_chart") if "Coverage" in c.proto.spec)
        return plotly_array(json.loads(chart.proto.spec)["data"][0]["z"])

    at = _run(h=9, w=9, kh=2, kw=2, sh=4, sw=4, ph=1, pw=1, pm="reflect")
    assert not at.exception and not errors(at)
    counts = coverage(at)
    read = [0, 1, 3, 4, 7, 8]  # windows on input -1..0, 3..4, 7..8; cell -1 is a copy of 1
    assert counts[1, 1] == 1 and (counts > 0).sum() == len(read) ** 2
    assert "45 of 81 input cells are never read" in at.warning[0].value
    assert any("a read of the padding counts as a read of the cell" in c.value for c in at.caption)
    at = _run(h=8, w=8, kh=4, kw=4, pad="same", pm="circular")
    assert not at.exception and not errors(at)
    np.testing.assert_array_equal(coverage(at), np.full((8, 8), 16))
    assert "Every one of the 64 input cells is read" in at.success[0].value
    at = _run(h=9, w=9, kh=2, kw=2, sh=4, sw=4, ph=1, pw=1)  # zeros: the padding holds nothing
    assert (coverage(at) > 0).sum() == 25
    assert not any("a read of the padding" in c.value for c in at.caption)


def test_without_play_the_animation_text_does_not_offer_play():
    """Over MAX_ANIMATION_FRAMES positions there is no ▶ Play and no slider: the caption and the
    position inputs must not speak of them (the caption said 'Press ▶ Play ... drag the slider')."""
    import json

    at = _run(h=64, w=64)  # 62 x 62 = 3,844 output positions
    assert not at.exception and not errors(at)
    assert any("too many to animate" in i.value for i in at.info)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert not spec["layout"].get("sliders") and not spec["layout"].get("updatemenus")
    captions = [c.value for c in at.caption]
    assert not any("Press ▶ Play" in c for c in captions)
    assert any(c.startswith("Type the output position above") for c in captions)
    assert at.number_input(key="conv.pos_r").label == "Output position: row"
    at = _run()  # 5 x 5 positions: animated
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Press ▶ Play") for c in captions)
    assert at.number_input(key="conv.pos_r").label == "Start at output position: row"


def test_real_data_follows_the_transposed_layer_and_says_when_it_shrinks():
    at = _run()
    assert any("camera: 256×256 (shrunk from 512×512" in c.value for c in at.caption)
    at = _run(mode="Transposed convolution", sh=2, sw=2)
    at.selectbox(key="conv.source").set_value("field").run()
    assert not at.exception and not errors(at)
    assert any("Applies the transposed convolution" in c.value for c in at.caption)
    # (128 - 1)·2 + (5 - 1) + 1 = 259: the 5×5 Gaussian scattered at stride 2
    assert any("128×128 → 259×259" in c.value for c in at.caption)
    at.selectbox(key="conv.source").set_value("sample").run()
    at.slider(key="conv.sh").set_value(4).run()
    at.slider(key="conv.sw").set_value(4).run()
    # shrunk to 256 // 4 = 64 cells a side first, so the result stays drawable
    assert any(
        "64×64 (shrunk from 512×512 to at most 64 cells a side) → 257×257" in c.value
        for c in at.caption
    )
    assert not errors(at)


# --- The real-data section in the link -------------------------------------------------------

RANGE_RE = re.compile(
    r"^(.+?): (\d+)×(\d+)(?: \(shrunk[^)]*\))? → (\d+)×(\d+); output range (\S+) to (\S+) "
)


def _data_result(at: AppTest) -> tuple:
    """Return (label, input (H, W), output (H, W), output min, output max) from the caption."""
    for caption in at.caption:
        found = RANGE_RE.search(caption.value)
        if found:
            label, h, w, ho, wo, low, high = found.groups()
            return label, (int(h), int(w)), (int(ho), int(wo)), float(low), float(high)
    raise AssertionError("no real-data result caption")


def _correlate(image, kernel) -> np.ndarray:
    """torch's own 'valid' cross-correlation in float64, (H, W) * (K_h, K_w)."""
    x = torch.as_tensor(np.asarray(image, dtype=float))[None, None]
    k = torch.as_tensor(np.asarray(kernel, dtype=float))[None, None]
    return torch.nn.functional.conv2d(x, k)[0, 0].numpy()


def test_a_link_opens_the_real_data_section_on_its_field_and_kernel():
    from vizlib.data import samples

    at = _run(
        **{
            "h": 10,
            "data.src": "field",
            "data.field": "front",
            "data.noise": "2.5",
            "data.seed": 7,
            "data.kernel": "gaussian",
            "data.ksize": 7,
            "data.sigma": "2.3",
        }
    )
    assert not at.exception and not errors(at) and not link_warnings(at)
    assert at.selectbox(key="conv.source").value == "field"
    assert at.selectbox(key="conv.field").value == "front"
    assert at.slider(key="conv.noise").value == 2.5
    assert at.number_input(key="conv.seed").value == 7
    assert at.selectbox(key="conv.kernel").value == "gaussian"
    assert at.slider(key="conv.ksize").value == 7
    assert at.slider(key="conv.sigma").value == pytest.approx(2.3)
    assert at.number_input(key="conv.h").value == 10
    # the filtered field is the one the link names: a 7×7 Gaussian (sigma 2.3) worked out here
    r = np.arange(7) - 3.0
    g = np.exp(-(r**2) / (2 * 2.3**2))
    expected = _correlate(
        samples.synthetic_field("front", size=128, noise=2.5, seed=7), np.outer(g, g) / g.sum() ** 2
    )
    label, in_hw, out_hw, low, high = _data_result(at)
    assert (label, in_hw, out_hw) == ("front", (128, 128), (122, 122))
    assert low == pytest.approx(expected.min(), rel=1e-3)
    assert high == pytest.approx(expected.max(), rel=1e-3)


def test_a_link_opens_a_digit_with_a_custom_kernel_and_a_colour_photo():
    from sklearn.datasets import load_digits

    at = _run(
        **{
            "data.src": "digit",
            "data.digit": 42,
            "data.kernel": "custom",
            "data.custom": "1, 2;3,-4",
        }
    )
    assert not at.exception and not errors(at) and not link_warnings(at)
    assert at.number_input(key="conv.digit").value == 42
    assert at.selectbox(key="conv.kernel").value == "custom"
    expected = _correlate(load_digits().images[42] / 16, [[1, 2], [3, -4]])
    label, in_hw, out_hw, low, high = _data_result(at)
    assert (label, in_hw, out_hw) == ("42", (8, 8), (7, 7))
    assert (low, high) == (
        pytest.approx(expected.min(), rel=1e-3),
        pytest.approx(expected.max(), rel=1e-3),
    )
    assert at.query_params["data.custom"] == "1,2;3,-4"  # tidied, same kernel

    at = _run(**{"data.img": "chelsea", "data.gray": "false", "data.kernel": "sobel_x"})
    assert not at.exception and not errors(at) and not link_warnings(at)
    assert at.selectbox(key="conv.sample").value == "chelsea"
    assert at.checkbox(key="conv.gray").value is False
    assert at.selectbox(key="conv.kernel").value == "sobel_x"
    assert _data_result(at)[:3] == ("chelsea", (170, 256), (168, 254))  # 300×451 shrunk to 256


def test_changing_the_real_data_widgets_rewrites_the_link():
    at = _run(h=10)
    assert dict(at.query_params) == {"h": "10"}  # defaults stay out of the link
    at.selectbox(key="conv.source").set_value("field").run()
    at.selectbox(key="conv.field").set_value("front")
    at.slider(key="conv.noise").set_value(0.0)
    at.number_input(key="conv.seed").set_value(3).run()
    at.selectbox(key="conv.kernel").set_value("sobel_y").run()
    assert not at.exception and not errors(at)
    assert dict(at.query_params) == {
        "h": "10",
        "data.src": "field",
        "data.field": "front",
        "data.noise": "0",
        "data.seed": "3",
        "data.kernel": "sobel_y",
    }
    at.selectbox(key="conv.kernel").set_value("mean").run()
    at.slider(key="conv.ksize").set_value(3).run()
    assert at.query_params["data.kernel"] == "mean" and at.query_params["data.ksize"] == "3"
    at.slider(key="conv.sh").set_value(2).run()  # a layer setting keeps the data settings
    assert at.query_params["sh"] == "2" and at.query_params["data.ksize"] == "3"
    at.selectbox(key="conv.source").set_value("digit").run()
    at.number_input(key="conv.digit").set_value(5).run()
    link = dict(at.query_params)
    assert link == {
        "h": "10",
        "sh": "2",
        "data.src": "digit",
        "data.digit": "5",
        "data.kernel": "mean",
        "data.ksize": "3",
    }
    # the link reopens the same result in a new session
    again = _run(**link)
    assert not again.exception and not link_warnings(again)
    assert _data_result(again) == _data_result(at)
    assert _output(again) == _output(at)
    assert _data_result(at)[:3] == ("5", (8, 8), (3, 6))  # mean 3×3 at stride 2×1


def test_a_hidden_setting_is_kept_while_another_kernel_is_shown():
    at = _run(**{"data.sigma": "2.3"})
    at.selectbox(key="conv.kernel").set_value("laplacian").run()
    assert "data.sigma" not in at.query_params  # not shown, so not in the link
    at.selectbox(key="conv.kernel").set_value("gaussian").run()
    assert at.slider(key="conv.sigma").value == pytest.approx(2.3)
    assert at.query_params["data.sigma"] == "2.3"


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("data.src", "upload", "expected one of sample, digit, field"),
        ("data.img", "lena", "expected one of camera, astronaut"),
        ("data.gray", "maybe", "expected true or false"),
        ("data.digit", "5000", "expected a whole number from 0 to 1796"),
        ("data.field", "hurricane", "expected one of typhoon, front"),
        ("data.noise", "abc", "expected a number from 0 to 10 in steps of 0.5"),
        ("data.noise", "0.3", "expected a number from 0 to 10 in steps of 0.5"),
        ("data.seed", "-1", "expected a whole number from 0 to 10000"),
        ("data.kernel", "blur", "expected one of identity, mean, gaussian"),
        ("data.ksize", "99", "expected a whole number from 1 to 15"),
        ("data.sigma", "nan", "expected a number from 0.2 to 5 in steps of 0.1"),
        ("data.sigma", "9", "expected a number from 0.2 to 5 in steps of 0.1"),
        ("data.custom", "1,x;2,3", "'x' at row 1, column 2, which is not a number"),
        ("data.custom", "1,2;3", "expected rows of equally many numbers"),
        ("data.custom", ";".join(["1"] * 16), "at most 15×15"),
    ],
)
def test_a_bad_real_data_link_value_falls_back_with_a_warning(key, raw, expected):
    at = _run(**{key: raw, "data.kernel": "custom"} if key == "data.custom" else {key: raw})
    assert not at.exception and not errors(at)
    warnings = link_warnings(at)
    assert len(warnings) == 1 and f"Ignored `{key}={raw}` from the link" in warnings[0]
    assert expected in warnings[0], warnings[0]
    wkey, default = {
        "data.src": ("conv.source", "sample"),
        "data.img": ("conv.sample", "camera"),
        "data.gray": ("conv.gray", True),
        "data.digit": ("conv.digit", 0),
        "data.field": ("conv.field", "typhoon"),
        "data.noise": ("conv.noise", 1.0),
        "data.seed": ("conv.seed", 0),
        "data.kernel": ("conv.kernel", "gaussian"),
        "data.ksize": ("conv.ksize", 5),
        "data.sigma": ("conv.sigma", 1.0),
        "data.custom": ("conv.custom_text", "0,-1,0;-1,4,-1;0,-1,0"),
    }[key]
    # a setting whose widget the run did not draw waits in the page's record (links.parking)
    parked = at.session_state["conv.saved"]
    assert (at.session_state[wkey] if wkey in at.session_state else parked[wkey]) == default
    assert at.query_params.get(key) != raw  # the bad value has left the link
    if key == "data.custom":  # the default 3×3 custom kernel is applied instead
        assert _data_result(at)[1:3] == ((256, 256), (254, 254))


def test_an_upload_stays_out_of_the_link(tmp_path):
    at = _run(**{"data.src": "field", "data.kernel": "laplacian"})
    at.selectbox(key="conv.source").set_value("upload").run()
    assert dict(at.query_params) == {"data.kernel": "laplacian"}
    assert any("uploaded file is not part of the page's link" in c.value for c in at.caption)
    buffer = io.BytesIO()
    grid = np.arange(30.0).reshape(5, 6) ** 2
    np.save(buffer, grid)
    at.file_uploader(key="conv.upload").set_value(
        ("grid.npy", buffer.getvalue(), "application/octet-stream")
    ).run()
    assert not at.exception and not errors(at)
    expected = _correlate(grid, [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    label, in_hw, out_hw, low, high = _data_result(at)
    assert label.startswith("grid.npy") and (in_hw, out_hw) == ((5, 6), (3, 4))
    assert (low, high) == (pytest.approx(expected.min()), pytest.approx(expected.max()))
    assert dict(at.query_params) == {"data.kernel": "laplacian"}
    # whoever opens that link gets the default photo with the same kernel
    again = _run(**dict(at.query_params))
    assert again.selectbox(key="conv.source").value == "sample"
    assert _data_result(again)[0] == "camera"
    assert again.selectbox(key="conv.kernel").value == "laplacian"


def _netcdf_bytes(tmp_path, fmt: str) -> bytes:
    import netCDF4

    path = tmp_path / f"sst_{fmt}.nc"
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("lat", 30)
        ds.createDimension("lon", 40)
        sst = ds.createVariable("sst", "f4", ("lat", "lon"))
        sst.units = "K"
        sst[:] = 280 + np.arange(1200, dtype=np.float32).reshape(30, 40) / 100
    return path.read_bytes()


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        (
            "NETCDF3_CLASSIC",
            "The NetCDF file looks damaged or truncated: variable 'sst' could not be read",
        ),
        ("NETCDF4", "starts like a NetCDF file but looks damaged or truncated"),
    ],
)
def test_a_truncated_netcdf_upload_says_it_is_damaged(tmp_path, fmt, message):
    data = _netcdf_bytes(tmp_path, fmt)
    at = _run(**{"data.src": "field"})
    at.selectbox(key="conv.source").set_value("upload").run()
    uploader = at.file_uploader(key="conv.upload")
    assert uploader.proto.max_upload_size_mb == 50  # the readers' limit, as its help says
    uploader.set_value(("sst.nc", data[: len(data) - 100], "application/x-netcdf")).run()
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and message in shown[0], shown
    assert _output(at) == (1, 5, 5)  # the rest of the page keeps working
    at.file_uploader(key="conv.upload").set_value(("sst.nc", data, "application/x-netcdf")).run()
    assert not at.exception and not errors(at)
    label, in_hw, out_hw, _, _ = _data_result(at)
    assert label.startswith("sst.nc") and (in_hw, out_hw) == ((30, 40), (26, 36))


def _animation_spec(at: AppTest) -> dict:
    import json

    return json.loads(at.get("plotly_chart")[0].proto.spec)


def _numbers_boxes(at: AppTest) -> list:
    return [c for c in at.checkbox if c.label == "Show numbers"]


def test_a_link_opens_the_animation_at_its_position_without_numbers():
    at = _run(**{"anim.row": 2, "anim.col": 3, "anim.numbers": "false"})
    assert not at.exception and not errors(at) and not link_warnings(at)
    assert at.number_input(key="conv.pos_r").value == 2
    assert at.number_input(key="conv.pos_c").value == 3
    assert at.checkbox(key="conv.numbers").value is False
    spec = _animation_spec(at)
    assert spec["layout"]["sliders"][0]["active"] == 2 * 5 + 3  # row-major over the 5×5 output
    assert "text" not in spec["data"][0] or not spec["data"][0]["text"]  # numbers off
    assert dict(at.query_params) == {"anim.row": "2", "anim.col": "3", "anim.numbers": "false"}
    with_numbers = _run(**{"anim.row": 2, "anim.col": 3})
    assert _animation_spec(with_numbers)["data"][0]["text"]  # the default shows them


def test_changing_the_animation_rewrites_the_link_and_a_layer_setting_keeps_it():
    at = _run()
    at.number_input(key="conv.pos_r").set_value(4)
    at.checkbox(key="conv.numbers").uncheck().run()
    assert not at.exception
    assert dict(at.query_params) == {"anim.row": "4", "anim.numbers": "false"}
    at.slider(key="conv.dh").set_value(2).run()  # 3×3 output now: row 4 no longer exists
    assert not at.exception and not errors(at)
    assert at.query_params["dh"] == "2" and at.query_params["anim.numbers"] == "false"
    again = _run(**dict(at.query_params))
    assert not again.exception and not link_warnings(again)
    assert _animation_spec(again) == _animation_spec(at)


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("anim.row", "5", "expected a whole number from 0 to 4"),  # 5×5 output: rows 0–4
        ("anim.col", "x", "expected a whole number from 0 to 4"),
        ("anim.numbers", "maybe", "expected true or false"),
    ],
)
def test_a_bad_animation_link_value_falls_back_with_a_warning(key, raw, expected):
    at = _run(**{key: raw})
    assert not at.exception
    assert link_warnings(at) == [f"Ignored `{key}={raw}` from the link ({expected})."]
    assert at.number_input(key="conv.pos_r").value == 0
    assert at.number_input(key="conv.pos_c").value == 0
    assert at.checkbox(key="conv.numbers").value is True
    assert key not in at.query_params


def test_show_numbers_is_unticked_and_disabled_where_no_numbers_can_be_shown():
    at = _run()
    (box,) = _numbers_boxes(at)
    assert box.value is True and not box.disabled
    at.radio(key="conv.mode").set_value("Transposed convolution").run()
    assert not at.exception and not errors(at)
    (box,) = _numbers_boxes(at)
    assert box.value is False and box.disabled  # it stayed ticked before
    at.radio(key="conv.mode").set_value("Convolution").run()
    (box,) = _numbers_boxes(at)
    assert box.value is True and not box.disabled
    box.uncheck().run()
    at.number_input(key="conv.h").set_value(20).run()  # too large for numbers
    (box,) = _numbers_boxes(at)
    assert box.value is False and box.disabled
    at.number_input(key="conv.h").set_value(7).run()
    (box,) = _numbers_boxes(at)
    assert box.value is False and not box.disabled  # the choice made is kept
    assert at.query_params["anim.numbers"] == "false"


def test_downloads_do_not_rerun_the_page(at):
    buttons = at.get("download_button")
    assert len(buttons) == 2
    # on_click="ignore": the browser downloads without a rerun that would cancel a second click
    assert all(b.proto.ignore_rerun for b in buttons)


def test_an_npy_beyond_float32_is_refused_at_upload_in_words():
    """1e300 in a float64 .npy became inf in torch's float32 and the filter failed 'on cpu'
    over NaN or infinite values the file never held; the reader now says what is wrong."""
    at = _run(**{"data.src": "field", "data.kernel": "laplacian"})
    at.selectbox(key="conv.source").set_value("upload").run()
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1e300, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, -1e39]]))
    at.file_uploader(key="conv.upload").set_value(
        ("huge.npy", buffer.getvalue(), "application/octet-stream")
    ).run()
    assert not at.exception
    assert errors(at) == [
        "The .npy array holds 2 value(s) beyond ±3.4e38 (its values run from -1e+39 to 1e+300): "
        "they do not fit the float32 numbers torch filters with. Rescale it first."
    ]
    assert not any(RANGE_RE.search(c.value) for c in at.caption)  # nothing filtered or drawn
    assert _output(at) == (1, 5, 5)  # the rest of the page keeps working
    buffer = io.BytesIO()
    grid = np.arange(9.0).reshape(3, 3) ** 2 * 1e36  # up to 6.4e37: fits float32
    np.save(buffer, grid)
    at.file_uploader(key="conv.upload").set_value(
        ("big.npy", buffer.getvalue(), "application/octet-stream")
    ).run()
    assert not at.exception and not errors(at)
    label, in_hw, out_hw, low, high = _data_result(at)
    assert label.startswith("big.npy") and (in_hw, out_hw) == ((3, 3), (1, 1))
    expected = _correlate(grid, [[0, 1, 0], [1, -4, 1], [0, 1, 0]])[0, 0]  # 2e37
    assert low == high == pytest.approx(expected, rel=1e-3)  # the caption's 4 digits


def test_a_colour_output_3_pixels_wide_downloads_as_that_rgb_image(downloads):
    """A colour photo 5 pixels wide filtered by a 3x3 kernel is (3, H, 3): its PNG came out
    H pixels wide and 3 high, the colours read from the wrong axis."""
    from PIL import Image

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (9, 5, 3), dtype=np.uint8)  # 9 high, 5 wide
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    at = _run(**{"data.kernel": "laplacian"})
    at.selectbox(key="conv.source").set_value("upload").run()
    at.file_uploader(key="conv.upload").set_value(
        ("thin.png", buffer.getvalue(), "image/png")
    ).run()
    at.checkbox(key="conv.gray_upload").uncheck().run()
    assert not at.exception and not errors(at)
    assert _data_result(at)[1:3] == ((9, 5), (7, 3))
    png = Image.open(io.BytesIO(downloads[next(n for n in downloads if n.startswith("thin"))]))
    assert png.mode == "RGB" and png.size == (3, 7)  # 3 wide, 7 high
    laplacian = [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    out = np.stack([_correlate(pixels[..., c] / 255, laplacian) for c in range(3)], axis=-1)
    expected = np.round(255 * (out - out.min()) / (out.max() - out.min()))  # (7, 3, 3)
    np.testing.assert_allclose(np.asarray(png), expected, atol=1)


def test_the_stacks_effective_field_by_weights():
    import json

    at = _run()
    metrics = {m.label: m for m in at.metric}
    # three uniform 3-tap layers: the profile is 1 2 3 2 1 convolved with 1 1 1, /27, of
    # variance 3 * (9 - 1) / 12 = 2
    assert metrics["Spread of the profile (σ)"].value == f"{np.sqrt(2):.2f} px"
    spec = json.loads(
        next(c for c in at.get("plotly_chart") if c.key == "conv.stack_profile").proto.spec
    )
    bars = plotly_array(spec["data"][0]["y"])
    np.testing.assert_allclose(bars[1:8], np.array([1, 3, 6, 7, 6, 3, 1]) / 27, rtol=1e-6)
    assert bars[0] == 0 and bars[8] == 0  # the margin outside the 7-pixel field
    # 1, 2, 3 uniform 3-tap layers: R = 3, 5, 7 and 4 sigma = 4 sqrt(n * 8 / 12)
    depth = json.loads(
        next(c for c in at.get("plotly_chart") if c.key == "conv.stack_depth").proto.spec
    )["data"]
    assert plotly_array(depth[0]["y"]).tolist() == [3, 5, 7]
    np.testing.assert_allclose(
        plotly_array(depth[1]["y"]), 4 * np.sqrt(np.arange(1, 4) * 8 / 12), rtol=1e-5
    )
    uniform = metrics["Pixels holding 90% of the gradient"].value
    at.radio(key="conv.stack_weights").set_value("random_relu").run()
    assert not at.exception and not errors(at)
    relu = {m.label: m.value for m in at.metric}
    assert relu["Pixels holding 90% of the gradient"] != uniform
    title = json.loads(
        next(c for c in at.get("plotly_chart") if c.key == "conv.stack_erf").proto.spec
    )
    assert title["layout"]["title"]["text"] == "random + ReLU weights, 3 layers"


def _stack_shown(at: AppTest) -> dict:
    """What the stack section shows: the editor's layers, the receptive field after each layer
    (table), the field R by depth (figure) and the effective field's title and side."""
    import json

    editor = at.data_editor(key="conv.stack").value
    table = next(d.value for d in at.dataframe if "receptive field (pixels)" in d.value.columns)
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    erf = charts["conv.stack_erf"]
    return {
        "editor": [tuple(row) for row in editor[["kernel", "stride", "dilation"]].to_numpy()],
        "table": [tuple(row) for row in table[["kernel", "stride", "dilation"]].to_numpy()],
        "fields": table["receptive field (pixels)"].tolist(),
        "depth": plotly_array(charts["conv.stack_depth"]["data"][0]["y"]).tolist(),
        "title": erf["layout"]["title"]["text"],
        "side": plotly_array(erf["data"][0]["z"]).shape[0],
    }


def test_a_link_opens_the_stack_with_its_channels_and_weights():
    layers = [(3, 1, 1), (3, 2, 1), (5, 1, 2), (3, 1, 4)]
    fields = conv.receptive_field(layers)
    assert fields == [3, 5, 21, 37]  # by hand: 3, 5, then jump 2: 5 + 2*4*2, 21 + 4*2*2
    at = _run(stack="k3_K3S2_k5s1d2_k3d4", stack_c=8, stack_w="random_relu")
    assert not at.exception and not errors(at) and not link_warnings(at)
    shown = _stack_shown(at)
    assert shown["editor"] == layers and shown["table"] == layers
    assert shown["fields"] == fields and shown["depth"] == fields
    assert shown["title"] == "random + ReLU weights, 4 layers"
    assert shown["side"] == 37 + 2 * 2  # the field with a margin of one jump (2) each side
    assert at.radio(key="conv.stack_weights").value == "random_relu"
    assert at.number_input(key="conv.stack_c").value == 8
    # 9 + 9 + 25 + 9 = 52 C² against 37² C² for C = 8
    assert f"= **{52 * 64:,}** against one 37×37 layer" in _texts(at)
    # the link stays, tidied (upper case read, stride and dilation 1 left out)
    assert dict(at.query_params) == {
        "stack": "k3_k3s2_k5d2_k3d4",
        "stack_c": "8",
        "stack_w": "random_relu",
    }


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("stack", "k3_k40", "layer 2's kernel is 40; it must be 1 to 31"),
        ("stack", "k3s9", "layer 1's stride is 9; it must be 1 to 8"),
        ("stack", "k3_k3d0", "layer 2's dilation is 0; it must be 1 to 8"),
        ("stack", "3.1.1,3.2.1", "'3.1.1,3.2.1' is not a layer"),
        ("stack", "k3__k3", "'' is not a layer"),
        ("stack", "k3d2s2", "'k3d2s2' is not a layer"),  # stride before dilation
        ("stack", "_".join(["k3"] * 33), "at most 32 layers; the stack has 33"),
        ("stack_c", "0", "expected a whole number from 1 to 2048"),
        ("stack_w", "random + ReLU", "expected one of uniform, random, random_relu"),
    ],
)
def test_a_bad_stack_link_value_falls_back_with_a_warning(key, raw, expected):
    at = _run(**{key: raw})
    assert not at.exception and not errors(at)
    warnings = link_warnings(at)
    assert len(warnings) == 1 and f"Ignored `{key}={raw}` from the link" in warnings[0]
    assert expected in warnings[0], warnings[0]
    shown = _stack_shown(at)  # the default stack, C and weights
    assert shown["editor"] == [(3, 1, 1)] * 3 and shown["fields"] == [3, 5, 7]
    assert shown["title"] == "uniform weights, 3 layers"
    assert at.number_input(key="conv.stack_c").value == 64
    assert dict(at.query_params) == {}  # the bad value has left the link


def _edit_stack(at: AppTest, edits: dict) -> AppTest:
    """Apply ``edits`` (edited_rows, added_rows, deleted_rows) to the stack editor's table, as
    the browser sends them, and rerun."""
    at.session_state["conv.stack"] = {
        "edited_rows": {},
        "added_rows": [],
        "deleted_rows": [],
    } | edits
    return at.run()


def test_editing_the_stack_writes_the_link_and_the_link_reopens_it():
    at = _run()
    assert dict(at.query_params) == {}  # the default stack, C and weights stay out of the link
    # the second layer dilated, the first deleted, a 7×7 stride-2 layer added
    _edit_stack(
        at,
        {
            "edited_rows": {1: {"dilation": 2}},
            "added_rows": [{"kernel": 7, "stride": 2, "dilation": 1}],
            "deleted_rows": [0],
        },
    )
    assert not at.exception and not errors(at)
    layers = [(3, 1, 2), (3, 1, 1), (7, 2, 1)]
    assert _stack_shown(at)["fields"] == conv.receptive_field(layers) == [5, 7, 13]
    assert dict(at.query_params) == {"stack": "k3d2_k3_k7s2"}
    at.number_input(key="conv.stack_c").set_value(16).run()
    at.radio(key="conv.stack_weights").set_value("random").run()
    link = dict(at.query_params)
    assert link == {"stack": "k3d2_k3_k7s2", "stack_c": "16", "stack_w": "random"}
    # a rerun from another widget keeps the edits, in the table and the link
    at.slider(key="conv.sh").set_value(2).run()
    assert _stack_shown(at)["table"] == layers
    assert dict(at.query_params) == link | {"sh": "2"}
    # the link opens the same stack in a new session
    again = _run(**link)
    assert not again.exception and not link_warnings(again)
    assert _stack_shown(again) == _stack_shown(at) | {"editor": layers}


def test_an_unfinished_stack_keeps_the_last_valid_one_in_the_link():
    at = _edit_stack(_run(), {"edited_rows": {2: {"kernel": 5}}})
    assert at.query_params["stack"] == "k3_k3_k5"
    _edit_stack(at, {"edited_rows": {2: {"kernel": 5}}, "added_rows": [{"kernel": 3}]})
    assert errors(at) == ["Fill in every cell of the stack (kernel, stride, dilation)."]
    assert dict(at.query_params) == {"stack": "k3_k3_k5"}
    _edit_stack(at, {"deleted_rows": [0, 1, 2]})
    assert errors(at) == ["Add at least one layer to the stack."]
    assert dict(at.query_params) == {"stack": "k3_k3_k5"}
    # back to three 3×3 layers: the default, so the link is clean again
    _edit_stack(at, {})
    assert not errors(at) and dict(at.query_params) == {}


def test_the_stack_comes_back_after_another_page():
    """Streamlit drops the editor's state (its edits) while another page is shown; the page
    reopens on the last stack, weights and C, through the app's router as in the browser."""
    page = "app_pages/conv_playground.py"
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page(page).run()
    _edit_stack(
        at,
        {
            "edited_rows": {0: {"stride": 2}},
            "added_rows": [{"kernel": 5, "stride": 1, "dilation": 3}],
        },
    )
    at.radio(key="conv.stack_weights").set_value("random").run()
    link = dict(at.query_params)
    assert link == {"stack": "k3s2_k3_k3_k5d3", "stack_w": "random"}
    shown = _stack_shown(at)
    at.switch_page("app_pages/home.py").run()
    assert "conv.stack" not in at.session_state  # the edits are gone with the editor
    at.query_params.clear()  # as the browser does on the way
    at.switch_page(page).run()
    assert not at.exception and not errors(at) and not link_warnings(at)
    assert _stack_shown(at) == shown | {"editor": [(3, 2, 1), (3, 1, 1), (3, 1, 1), (5, 1, 3)]}
    assert dict(at.query_params) == link
    # and the fresh editor takes edits again
    _edit_stack(at, {"deleted_rows": [3]})
    assert at.query_params["stack"] == "k3s2_k3_k3"


def test_a_shrunk_upload_that_no_longer_fits_says_it_was_shrunk():
    """A 3000×20 grid is shrunk to 256×2 cells: the error spoke of a "padded input 2" that the
    user never gave. It names the shrink."""
    at = _run(**{"data.kernel": "laplacian"})
    at.selectbox(key="conv.source").set_value("upload").run()
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).normal(size=(20, 3000)))
    at.file_uploader(key="conv.upload").set_value(
        ("wide.npy", buffer.getvalue(), "application/octet-stream")
    ).run()
    assert not at.exception
    shown = [e for e in errors(at) if "do not fit" in e]
    assert shown and "(shrunk from 20×3000 to at most" in shown[0]
