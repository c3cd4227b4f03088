"""AppTest for the Convolution Playground: every control changes the output, bad settings show
a message at the control and never an exception, and the URL carries the settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "conv_playground.py")
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


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _torch_shape(cin=1, cout=1, h=7, w=7, transposed=False, **kwargs) -> tuple[int, int, int]:
    layer_cls = torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d
    layer = layer_cls(cin, cout, device="meta", **kwargs)
    return tuple(layer(torch.empty(1, cin, h, w, device="meta")).shape[1:])


@pytest.fixture(scope="module")
def at() -> AppTest:
    return _run()


def test_defaults_show_sizes_params_and_every_section(at):
    assert not at.exception and not _errors(at)
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
    assert len(at.get("plotly_chart")) == 3  # animation, coverage, input/kernel/output


def test_worked_example_3x32x32(at):
    at.number_input(key="conv.h").set_value(32)
    at.number_input(key="conv.w").set_value(32)
    at.number_input(key="conv.kh").set_value(5)
    at.number_input(key="conv.kw").set_value(5)
    at.number_input(key="conv.ph").set_value(2)
    at.number_input(key="conv.pw").set_value(2)
    at.number_input(key="conv.cin").set_value(3)
    at.number_input(key="conv.cout").set_value(10).run()
    assert not at.exception and not _errors(at)
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
        assert not at.exception and not _errors(at), key
        assert _output(at) == _torch_shape(**kwargs), key
        assert _output(at) != before, key  # every control moves the output size
        assert at.query_params[key] == str(value)


def test_padding_kind_mode_channels_groups_bias():
    at = _run(h=32, w=32, kh=5, kw=5, cin=3, cout=10)
    at.radio(key="conv.pad").set_value("same").run()
    assert _output(at) == (10, 32, 32) and not at.exception
    at.selectbox(key="conv.pm").set_value("circular").run()
    assert "padding_mode='circular'" in _texts(at) and not _errors(at)
    at.number_input(key="conv.cin").set_value(4)
    at.number_input(key="conv.cout").set_value(8)
    at.number_input(key="conv.g").set_value(4).run()
    assert not _errors(at)
    assert "= **208**" in _texts(at)  # (4/4)·5·5·8 + 8
    at.checkbox(key="conv.bias").set_value(False).run()
    assert "= **200**" in _texts(at) and "bias=False" in _texts(at)
    at.button[0].click().run()  # Depthwise
    assert at.number_input(key="conv.g").value == 4 and not _errors(at)
    at.radio(key="conv.pad").set_value("valid").run()
    assert _output(at) == (8, 28, 28)


def test_transposed_mode():
    at = _run(h=3, w=3, sh=2, sw=2, ph=1, pw=1)
    at.radio(key="conv.mode").set_value("Transposed convolution").run()
    assert not at.exception and not _errors(at)
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
    assert any("Output padding (width) must be smaller" in e for e in _errors(at))


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
    assert any(message in e for e in _errors(at)), _errors(at)
    assert _output(at) is None
    assert "Fix the settings marked in red" in at.info[0].value
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
    assert not at.exception and not _errors(at)
    result = [c.value for c in at.caption if "128×128 → 124×124" in c.value]
    # a smoothed temperature field is positive: drawn in grey, so no red/blue legend
    assert result and result[0].endswith(" K.") and "red/blue" not in result[0]
    at.selectbox(key="conv.kernel").set_value("sobel_x").run()
    assert any("sum to zero" in c.value for c in at.caption)
    assert any("K (red/blue: positive/negative)" in c.value for c in at.caption)
    at.selectbox(key="conv.source").set_value("digit").run()
    at.number_input(key="conv.digit").set_value(7)
    at.selectbox(key="conv.kernel").set_value("laplacian").run()
    assert any("8×8 → 6×6" in c.value for c in at.caption) and not _errors(at)
    at.selectbox(key="conv.kernel").set_value("gaussian").run()
    at.slider(key="conv.ksize").set_value(9).run()  # 9x9 kernel on 8x8 digit: no output
    assert any("do not fit this input" in e for e in _errors(at)) and not at.exception
    at.selectbox(key="conv.source").set_value("sample").run()
    at.selectbox(key="conv.sample").set_value("astronaut")
    at.checkbox(key="conv.gray").set_value(False).run()
    assert not at.exception and not _errors(at)
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
    assert any("entry 2 ('two') is not a number" in e for e in _errors(at))
    assert not at.exception


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
    assert not at.exception and not _errors(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    text = spec["data"][0]["text"]  # (7, 7) padded grid of numbers
    assert text[0] == text[2] and [row[0] for row in text] == [row[2] for row in text]
    assert "reflect padding" in spec["layout"]["annotations"][0]["text"]
    windows = [int(text[r][c]) for r in range(3) for c in range(3)]
    assert spec["data"][1]["text"][0][0] == str(sum(windows))  # output (0, 0) = its window


def test_real_data_follows_the_transposed_layer_and_says_when_it_shrinks():
    at = _run()
    assert any("camera: 256×256 (shrunk from 512×512" in c.value for c in at.caption)
    at = _run(mode="Transposed convolution", sh=2, sw=2)
    at.selectbox(key="conv.source").set_value("field").run()
    assert not at.exception and not _errors(at)
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
    assert not _errors(at)
