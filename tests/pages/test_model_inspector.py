"""AppTest for the Model Inspector page."""

from __future__ import annotations

import io
import json
import os

import pytest
import torch
from safetensors.torch import save as save_safetensors
from streamlit.testing.v1 import AppTest

from tests.pages._shared import errors, link_warnings, opened_with, plotly_array

PAGE = "../../app_pages/model_inspector.py"


def _run() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = "lenet_digits"
    return at.run()


def _table(at: AppTest, column: str):
    """The first dataframe on the page that has ``column``."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_lenet_totals_table_and_transformer_counts():
    at = _run()
    assert not at.exception
    assert not at.error
    metrics = _metrics(at)
    assert metrics["Parameters"] == "105,506"
    assert metrics["Multiply-adds per sample"] == "1,333,200"
    assert metrics["Test accuracy (digits)"].endswith("%")
    layers = _table(at, "multiply-adds")
    assert layers.loc[layers["layer"] == "conv2", "multiply-adds"].item() == 819_200
    assert layers["parameters"].sum() == 105_506
    # a static table (st.table), whose cells wrap: in a dataframe the long block names pushed
    # the formula column behind a horizontal scroll at 1024 px
    assert not any("block" in df.value.columns for df in at.dataframe)
    (blocks,) = (t.value for t in at.table if "block" in t.value.columns)
    assert blocks["parameters"].tolist() == [168, 328, 668]
    assert blocks["formula"].str.len().min() > 0
    assert "Conv2d(1, 32, kernel_size=(5, 5)" in at.code[0].value
    assert "bundled" in _table(at, "status").set_index("dataset").loc["digits", "status"]


def test_lenet_receptive_fields_in_the_layer_table():
    at = _run()
    assert not at.exception and not at.error
    layers = _table(at, "receptive field (px)").set_index("layer")
    # headers in one style (lower case, as "output shape" and "parameters"); the first three
    # began with capitals
    assert [c for c in layers.columns if c != c.lower()] == []
    # by hand: conv 5; pool 3: 5 + 2 = 7, jump 3; conv 5: 7 + 4*3 = 19; pool 2: 22, jump 6
    fields = layers["receptive field (px)"]
    assert [fields[n] for n in ("conv1", "pool1", "conv2", "pool2")] == [
        "5 x 5",
        "7 x 7",
        "19 x 19",
        "22 x 22",
    ]
    assert layers.loc["pool2", "jump (px)"] == "6 x 6"
    assert layers.loc["conv1", "field start (px)"] == "0 x 0"
    assert layers.loc["flatten", "jump (px)"] == "—"  # flattened: no neighbours any more
    assert (fields[["fc1", "relu3", "fc2"]] == "whole image").all()
    assert any("each unit of this layer sees an R x R patch" in c.value for c in at.caption)
    assert not any("see more than" in i.value for i in at.info)  # 22 px < 28 px
    # costs, receptive fields, and the effective field of the default layer
    assert [c.key for c in at.get("plotly_chart")] == [
        "inspector.costs",
        "inspector.fields",
        "inspector.erf.map",
    ]


def test_residual_and_vit_fields_and_a_field_larger_than_the_input(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    at = _run()
    at.selectbox(key="inspector.model").select("resnet_digits").run()
    layers = _table(at, "receptive field (px)").set_index("layer")
    # block 0: two 3x3 convs after the 3x3 stem; the identity shortcut (3 x 3) merges as union
    assert layers.loc["layers.0.relu2", "receptive field (px)"] == "7 x 7"
    assert layers.loc["layers.2.relu2", "jump (px)"] == "4 x 4"
    assert layers.loc["pool", "receptive field (px)"] == "whole image"

    at.selectbox(key="inspector.model").select("vit_digits").run()
    layers = _table(at, "receptive field (px)").set_index("layer")
    assert layers.loc["patch_embed", "receptive field (px)"] == "4 x 4"
    assert layers.loc["patch_embed", "jump (px)"] == "4 x 4"
    assert layers.loc["blocks.0.attn", "receptive field (px)"] == "whole image"

    at.selectbox(key="inspector.model").select("resnet18").run()
    assert not at.exception and not at.error
    layers = _table(at, "receptive field (px)").set_index("layer")
    assert layers.loc["layer4.1.conv2", "receptive field (px)"] == "435 x 435"
    notes = [i.value for i in at.info if "see more than" in i.value]
    assert len(notes) == 1 and "224 x 224 input" in notes[0] and "padding" in notes[0]


def test_batching_demo_button():
    at = _run()
    at.number_input(key="inspector.n").set_value(100)
    at.button(key="inspector.time").click().run()
    assert not at.exception
    speedups = [label for label in _metrics(at) if label.startswith("Speed-up on cpu")]
    assert speedups == ["Speed-up on cpu (N = 100)"]
    assert "inspector.download_timings" in {d.key for d in at.get("download_button")}


def test_torchvision_without_weights_shows_the_notice(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    at = _run()
    at.selectbox(key="inspector.model").select("resnet18").run()
    assert not at.exception and not at.error
    assert any("not available offline" in w.value for w in at.warning)
    assert _metrics(at)["Parameters"] == "11,689,512"


def _pt_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_uploads_good_bad_and_malicious(tmp_path):
    from vizlib.models import LeNetLike

    at = _run()
    at.radio(key="inspector.source").set_value("Upload weights").run()
    assert not at.exception
    at.selectbox(key="inspector.upload_arch").select("lenet_digits").run()
    state = LeNetLike().state_dict()
    at.file_uploader(key="inspector.upload_weights").set_value(
        ("w.safetensors", save_safetensors(state), "application/octet-stream")
    ).run()
    assert not at.exception and not at.error
    assert _metrics(at)["Parameters"] == "105,506"
    layers = _table(at, "receptive field (px)").set_index("layer")
    assert layers.loc["conv2", "receptive field (px)"] == "19 x 19"

    del state["fc2.bias"]
    at.file_uploader(key="inspector.upload_weights").set_value(
        ("w.pt", _pt_bytes(state), "application/octet-stream")
    ).run()
    assert not at.exception
    assert "missing keys (1): fc2.bias" in at.error[0].value

    marker = tmp_path / "pwned"
    at.file_uploader(key="inspector.upload_weights").set_value(
        ("evil.pt", _pt_bytes({"x": _Evil(str(marker))}), "application/octet-stream")
    ).run()
    assert not at.exception
    assert "Refused" in at.error[0].value
    assert not marker.exists()
    # the rest of the page still works
    assert [c.value for c in at.subheader][-2:] == [
        "Transformer building blocks",
        "Why frameworks batch",
    ]


def test_upload_from_data_parallel_loads_with_one_notice():
    from vizlib.models import LeNetLike

    at = _run()
    at.radio(key="inspector.source").set_value("Upload weights").run()
    at.selectbox(key="inspector.upload_arch").select("lenet_digits").run()
    state = {"module." + k: v for k, v in LeNetLike().state_dict().items()}
    at.file_uploader(key="inspector.upload_weights").set_value(
        ("dp.pt", _pt_bytes(state), "application/octet-stream")
    ).run()
    assert not at.exception and not at.error
    notes = [i.value for i in at.info if "'module.'" in i.value]
    assert len(notes) == 1 and "removed" in notes[0]
    assert not [w.value for w in at.warning if "'module.'" in w.value]  # said once, not twice
    assert _metrics(at)["Parameters"] == "105,506"


def test_vit_checkpoint_shows_attention_rows_and_training_metadata():
    from vizlib import zoo
    from vizlib.summary import count_parameters

    at = _run()
    at.selectbox(key="inspector.model").select("vit_digits").run()
    assert not at.exception and not at.error
    model, meta = zoo.load_model("vit_digits", device="cpu")
    assert _metrics(at)["Parameters"] == f"{count_parameters(model):,}"
    layers = _table(at, "multiply-adds")
    assert (layers["type"] == "Attention").sum() == meta["config"]["depth"]
    props = _table(at, "property").set_index("property")["value"]
    assert props["patch size (pixels)"] == "4" and props["training time (s)"] == str(
        meta["training_time_s"]
    )
    assert at.query_params["model"] in ("vit_digits", ["vit_digits"])
    # the class token and position embeddings: rows of their own after the patch embedding,
    # with their own shapes (1, 1, D) and (1, T, D); once a last row "(model)" shaped (1, 10)
    d, tokens = meta["config"]["dim"], 1 + meta["grid_size"][0] * meta["grid_size"][1]
    assert "(model)" not in layers["layer"].tolist()
    assert layers.iloc[:3][["layer", "type", "output shape", "parameters"]].values.tolist() == [
        ["patch_embed", "Conv2d", f"1×{d}×8×8", layers["parameters"].iloc[0]],
        ["cls_token", "class token", f"1×1×{d}", d],
        ["pos_embed", "position embeddings", f"1×{tokens}×{d}", tokens * d],
    ]
    assert layers["parameters"].sum() == count_parameters(model)
    fields = layers.set_index("layer").loc[["cls_token", "pos_embed"]]
    assert (fields[["receptive field (px)", "jump (px)", "field start (px)"]] == "—").all().all()


def test_unknown_model_in_the_link_is_reported_not_fatal():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = "nonexistent"
    at.run()
    assert not at.exception and not at.error
    assert any("Ignored `model=nonexistent`" in w.value for w in at.warning)
    assert at.selectbox(key="inspector.model").value == "lenet_digits"


def test_a_trip_to_the_uploader_keeps_the_chosen_model():
    # The page writes ?model=upload while the uploader shows; back on the zoo that link is the
    # page's own, not a choice, and the model picked before comes back.
    at = _run()
    at.selectbox(key="inspector.model").select("resnet_digits").run()
    at.radio(key="inspector.source").set_value("Upload weights").run()
    assert at.query_params["model"] in ("upload", ["upload"])
    at.radio(key="inspector.source").set_value("Shipped or torchvision model").run()
    assert not at.exception and not errors(at) and not at.warning
    assert at.selectbox(key="inspector.model").value == "resnet_digits"
    assert at.query_params["model"] in ("resnet_digits", ["resnet_digits"])


def test_upload_link_opens_the_uploader_without_a_warning():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = "upload"
    at.run()
    assert not at.exception and not at.error
    assert at.radio(key="inspector.source").index == 1
    assert not any("Ignored" in w.value for w in at.warning)


def test_an_upload_is_run_through_once_not_on_every_rerun(monkeypatch):
    """Toggling the log axes reruns the page; the uploaded model's layer table is kept for the
    session instead of repeating the forward pass (seconds for a vgg16-sized upload)."""
    from vizlib import summary
    from vizlib.models import LeNetLike

    calls = []
    real = summary.layer_table
    monkeypatch.setattr(summary, "layer_table", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = _run()
    at.radio(key="inspector.source").set_value("Upload weights").run()
    at.selectbox(key="inspector.upload_arch").select("lenet_digits").run()
    state = save_safetensors(LeNetLike().state_dict())
    at.file_uploader(key="inspector.upload_weights").set_value(
        ("w.safetensors", state, "application/octet-stream")
    ).run()
    assert calls == [1]
    calls.clear()
    at.toggle(key="inspector.log").set_value(True).run()
    assert not at.exception and not at.error
    assert _metrics(at)["Multiply-adds per sample"] == "1,333,200"
    assert calls == []
    # the shared upload cache (ui.uploaded_model), not a copy of the model in this session
    assert "inspector.upload_cache" not in at.session_state


def test_upload_running_out_of_gpu_memory_is_a_message(monkeypatch):
    """An out-of-memory error while loading uploaded weights is reported beside the uploader,
    with the way out, instead of a traceback; the uploader states its size limit."""
    from vizlib import zoo
    from vizlib.models import LeNetLike

    def out_of_memory(*_args, **_kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(zoo, "load_uploaded", out_of_memory)
    at = _run()
    at.radio(key="inspector.source").set_value("Upload weights").run()
    at.selectbox(key="inspector.upload_arch").select("lenet_digits").run()
    torch.manual_seed(1234)  # weights of their own: not a file an earlier test cached
    state = save_safetensors(LeNetLike().state_dict())
    at.file_uploader(key="inspector.upload_weights").set_value(
        ("big.safetensors", state, "application/octet-stream")
    ).run()
    assert not at.exception
    assert "ran out of memory loading 'big.safetensors'" in at.error[0].value
    assert "At most 600 MB" in at.file_uploader(key="inspector.upload_weights").help


def _linked(query: dict) -> AppTest:
    return opened_with(PAGE, query)


def _settings(at: AppTest) -> dict:
    return {
        "log": at.toggle(key="inspector.log").value,
        "n": at.number_input(key="inspector.n").value,
    }


def _cost_axes(at: AppTest) -> set[str]:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return {spec["layout"][axis].get("type", "linear") for axis in ("xaxis", "xaxis2")}


def test_a_link_opens_the_page_on_its_settings_and_times_nothing(monkeypatch):
    """?model=&log=&n= reopen the model, the log axes and N; the timing waits for its button."""
    from vizlib import summary

    timed = []
    monkeypatch.setattr(summary, "batch_matmul_timing", lambda **kw: timed.append(kw))
    link = {"model": "resnet_digits", "log": "true", "n": "600"}
    at = _linked(link)
    assert not errors(at) and not link_warnings(at)
    assert at.selectbox(key="inspector.model").value == "resnet_digits"
    assert _settings(at) == {"log": True, "n": 600}
    assert _cost_axes(at) == {"log"}
    assert timed == [] and not [m for m in _metrics(at) if m.startswith("Speed-up")]
    assert dict(at.query_params) == link  # the link stays as it came


def test_an_upload_link_opens_the_uploader_on_its_architecture():
    link = {"model": "upload", "arch": "resnet_digits", "log": "true"}
    at = _linked(link)
    assert not errors(at) and not at.warning
    assert at.radio(key="inspector.source").value == "Upload weights"
    assert at.selectbox(key="inspector.upload_arch").value == "resnet_digits"
    assert dict(at.query_params) == link  # log waits in the link for the upload's charts


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("log", "yes", "expected true or false"),
        ("n", "5", "expected a whole number from 10 to 10000"),
        ("n", "many", "expected a whole number from 10 to 10000"),
    ],
)
def test_a_bad_link_value_gives_a_warning_and_the_default(key, raw, expected):
    at = _linked({"model": "resnet_digits", "n": "700", key: raw})
    assert not errors(at)
    (warning,) = link_warnings(at)
    assert warning.startswith(f"Ignored `{key}={raw}` from the link ({expected}")
    assert _settings(at) == {"log": False, "n": 700 if key != "n" else 2_500}
    assert key not in at.query_params and at.query_params["model"] == "resnet_digits"


def test_a_bad_architecture_in_an_upload_link_gives_a_warning_and_the_default():
    at = _linked({"model": "upload", "arch": "lenet"})
    assert not errors(at)
    (warning,) = link_warnings(at)
    assert warning.startswith(
        "Ignored `arch=lenet` from the link (expected lenet_digits, resnet_digits, vit_digits, "
    )
    assert at.selectbox(key="inspector.upload_arch").value == "lenet_digits"
    assert dict(at.query_params) == {"model": "upload"}


def test_changing_the_widgets_writes_the_link_and_the_link_reopens_them():
    at = _run()
    assert dict(at.query_params) == {"model": "lenet_digits"}  # defaults stay out of the link
    at.toggle(key="inspector.log").set_value(True)
    at.number_input(key="inspector.n").set_value(1_200).run()
    assert not at.exception and not errors(at)
    assert dict(at.query_params) == {"model": "lenet_digits", "log": "true", "n": "1200"}
    again = _linked(dict(at.query_params))
    assert not link_warnings(again) and _settings(again) == _settings(at)
    assert _cost_axes(again) == {"log"}
    # the uploader's architecture goes into the link with ?model=upload, and out without it
    at.radio(key="inspector.source").set_value("Upload weights").run()
    at.selectbox(key="inspector.upload_arch").select("vit_digits").run()
    assert dict(at.query_params) == {
        "model": "upload",
        "arch": "vit_digits",
        "log": "true",
        "n": "1200",
    }
    again = _linked(dict(at.query_params))
    assert not at.warning and again.selectbox(key="inspector.upload_arch").value == "vit_digits"
    at.radio(key="inspector.source").set_value("Shipped or torchvision model").run()
    assert dict(at.query_params) == {"model": "lenet_digits", "log": "true", "n": "1200"}


def test_the_totals_are_two_a_row_so_vgg16s_numbers_fit(tmp_path, monkeypatch):
    """Four metrics in one row cut vgg16's 15,470,264,320 multiply-adds to '15,47…' at 1024 px."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    at = _linked({"model": "vgg16"})
    assert not errors(at)
    assert _metrics(at)["Multiply-adds per sample"] == "15,470,264,320"
    totals = [col for col in at.columns if len(col.get("metric"))][:4]  # then the field's two
    assert [col.get("metric")[0].label for col in totals] == [
        "Parameters",
        "Multiply-adds per sample",
        "Test accuracy (imagenet)",
        "Input (C, H, W)",
    ]
    assert {col.weight for col in totals} == {0.5}


def test_the_timing_chart_has_a_linear_axis_from_zero_per_device():
    """Bars on a log axis misled: 0.14 s against 0.40 s drew the batched bar as a sliver."""
    from vizlib.plots.models import plot_batch_timing

    at = _run()
    at.number_input(key="inspector.n").set_value(100)
    at.button(key="inspector.time").click().run()
    assert not at.exception and not errors(at)
    (result,) = at.session_state["inspector.timings"]
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)  # the timings, last on the page
    assert spec["layout"]["yaxis"]["type"] == "linear"
    assert spec["layout"]["yaxis"]["rangemode"] == "tozero"
    assert spec["data"][0]["y"] == [result["loop_s"], result["batched_s"]]
    # a GPU's milliseconds get an axis of their own beside the CPU's tenths of a second
    fake = [
        {"device": "cpu", "loop_s": 0.4, "batched_s": 0.1, "speedup": 4.0},
        {"device": "cuda", "loop_s": 0.02, "batched_s": 0.0001, "speedup": 200.0},
    ]
    fig = plot_batch_timing(fake)
    assert [list(trace.y) for trace in fig.data] == [[0.4, 0.1], [0.02, 0.0001]]
    assert {fig.data[0].yaxis, fig.data[1].yaxis} == {"y", "y2"}
    assert fig.layout.yaxis2.type == "linear" and fig.layout.yaxis2.rangemode == "tozero"
    assert [a.text for a in fig.layout.annotations] == [
        "cpu: 4.0x faster batched",
        "cuda: 200.0x faster batched",
    ]


def test_a_loop_that_wins_is_called_slower_batched_not_0_4x_faster():
    """With a few samples on a busy CPU the loop can beat the batched product (N = 10 measured
    5.3 ms against 12.5 ms in the browser): the panel said 'cpu: 0.4x faster batched'."""
    from vizlib.plots.models import plot_batch_timing

    fake = [{"device": "cpu", "loop_s": 0.005, "batched_s": 0.0125, "speedup": 0.4}]
    (title,) = [a.text for a in plot_batch_timing(fake).layout.annotations]
    assert title == "cpu: 2.5x slower batched"


def test_downloads_do_not_rerun_the_page():
    at = _run()
    at.button(key="inspector.time").click().run()
    at.button(key="inspector.erf.all").click().run()
    buttons = at.get("download_button")
    assert len(buttons) == 4 and all(b.proto.ignore_rerun for b in buttons)


def test_the_layer_table_fits_a_projector_in_two_tabs(downloads):
    """Eight columns side by side scrolled sideways at 1024 px: one table in two tabs, shapes
    and costs, receptive fields, each with short labels and the detail (units too) in the
    column's help; the CSV keeps all eight columns under their full names."""
    at = _run()
    assert [t.label for t in at.tabs] == ["Shapes and costs", "Receptive fields"]
    shown = {t.label: [list(df.proto.column_order) for df in t.dataframe] for t in at.tabs}
    assert shown == {
        "Shapes and costs": [["layer", "type", "output shape", "parameters", "multiply-adds"]],
        "Receptive fields": [
            ["layer", "type", "receptive field (px)", "jump (px)", "field start (px)"]
        ],
    }
    config = json.loads(at.tabs[0].dataframe[0].proto.columns)
    config.pop("_index")  # hide_index
    labels = {name: c.get("label", name) for name, c in config.items()}
    assert labels == {
        "layer": "layer",
        "type": "type",
        "output shape": "shape",
        "parameters": "params",
        "multiply-adds": "MACs",
        "receptive field (px)": "field (px)",
        "jump (px)": "jump (px)",
        "field start (px)": "start (px)",
    }
    assert all(c["help"] for c in config.values())
    assert (
        "(count)" in config["parameters"]["help"] and "(count)" in config["multiply-adds"]["help"]
    )
    assert "input pixels" in config["receptive field (px)"]["help"]
    assert "batch of 1" in config["output shape"]["help"]
    csv = downloads["lenet_digits_layers.csv"].decode().splitlines()
    assert csv[0] == (
        "layer,type,output shape,parameters,multiply-adds,receptive field (px),jump (px),"
        "field start (px)"
    )
    assert csv[1] == "conv1,Conv2d,1×32×24×24,832,460800,5 x 5,1 x 1,0 x 0"


def test_vit_b_16_layer_names_lose_their_shared_start_and_the_csv_keeps_it(
    tmp_path, monkeypatch, downloads
):
    """torchvision's vit_b_16 names run to 46 characters and its layer table scrolled sideways
    at 1024 px: both tabs show "…10.self_attention", a caption above them and the column's help
    say what "…" stands for, the CSV keeps the full names. lenet_digits' names stay whole."""
    at = _run()
    assert not any("stands for" in c.value for c in at.caption)
    assert "stands for" not in json.loads(at.tabs[0].dataframe[0].proto.columns)["layer"]["help"]

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    at.selectbox(key="inspector.model").select("vit_b_16").run()
    assert not errors(at)
    for tab in at.tabs:
        (grid,) = tab.dataframe
        names = grid.value["layer"].tolist()
        assert len(names) == 114 and max(map(len, names)) <= 22
        assert names[:5] == [
            "conv_proj",
            "class_token",
            "encoder.pos_embedding",
            "encoder.dropout",
            "…0.ln_1",
        ]
        assert "…10.self_attention" in names and names[-2:] == ["encoder.ln", "heads.head"]
        help_text = json.loads(grid.proto.columns)["layer"]["help"]
        assert "“…” stands for `encoder.layers.encoder_layer_`" in help_text
    (legend,) = (c.value for c in at.caption if "stands for" in c.value)
    # underscores escaped, so that Markdown shows them rather than emphasis
    assert legend == (
        r"In the layer names, … stands for encoder.layers.encoder\_layer\_ (…0.ln\_1 is "
        r"encoder.layers.encoder\_layer\_0.ln\_1); the CSV has the names in full."
    )
    csv = downloads["vit_b_16_layers.csv"].decode().splitlines()
    assert len(csv) == 115 and not any("…" in line for line in csv)
    assert any(
        line.startswith("encoder.layers.encoder_layer_10.self_attention,MultiheadAttention,")
        for line in csv
    )
    # the cost bars too: the full names took half the page and the panels' titles overlapped;
    # the hover keeps them
    bars = next(
        json.loads(c.proto.spec)["data"][0]
        for c in at.get("plotly_chart")
        if c.key == "inspector.costs"
    )
    assert "…10.self_attention" in bars["y"]
    assert (
        "encoder.layers.encoder_layer_10.self_attention (MultiheadAttention)" in bars["customdata"]
    )


def _chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def test_the_effective_field_matches_vizlib_and_measures_layer_by_layer():
    import numpy as np

    from vizlib import effective_field, zoo
    from vizlib.data.datasets import load_dataset

    at = _run()
    assert not at.exception and not errors(at)
    # the default: lenet's deepest layer growing the field inside the 28 px image on a map with
    # a centre (conv2: 19 x 19 on 4 x 4; pool2 and relu2 have 2 x 2 maps)
    assert at.selectbox(key="inspector.erf.layer").value == "conv2"
    assert at.selectbox(key="inspector.erf.images").value == "digits"
    model, meta = zoo.load_model("lenet_digits")
    images = load_dataset("digits", "test", meta["input_size"][1:])[0][:64]
    expected = effective_field.effective_receptive_field(model, "conv2", images)
    heat = _chart(at, "inspector.erf.map")["data"][0]
    np.testing.assert_allclose(
        plotly_array(heat["customdata"]), expected.gradient / expected.gradient.max(), rtol=1e-6
    )
    metrics = _metrics(at)
    assert metrics["Theoretical field"] == "19×19 px"
    needed = effective_field.gradient_share(expected.gradient, 0.9)
    assert metrics["Pixels holding 90% of the gradient"] == f"{needed:,} px"
    # unit (1, 1) of conv2's 4 x 4 map: rows and columns 3 to 21 of the input
    box = _chart(at, "inspector.erf.map")["data"][-1]
    assert box["x"] == [2.5, 21.5, 21.5, 2.5, 2.5]
    assert "inspector.erf.growth" not in [c.key for c in at.get("plotly_chart")]

    at.button(key="inspector.erf.all").click().run()
    assert not at.exception and not errors(at)
    growth = _chart(at, "inspector.erf.growth")["data"]
    assert growth[0]["x"] == [
        "conv1 (Conv2d)",
        "pool1 (MaxPool2d)",
        "conv2 (Conv2d)",
        "pool2 (MaxPool2d)",
    ]
    # theoretical fields inside the image: 5, 7, 19 and 22 px a side
    assert growth[0]["y"] == [5.0, 7.0, 19.0, 22.0]
    pool1 = effective_field.effective_receptive_field(model, "pool1", images)
    assert growth[1]["customdata"][1][0] == effective_field.gradient_share(pool1.gradient, 0.9)
    # measured once: the next run draws the chart without the button
    at.toggle(key="inspector.erf.log").set_value(True).run()
    assert "inspector.erf.growth" in [c.key for c in at.get("plotly_chart")]
    assert _chart(at, "inspector.erf.map")["data"][0]["zmin"] == -4


def test_the_corner_unit_and_the_layer_travel_in_the_link():
    at = _linked({"model": "lenet_digits", "erf_layer": "conv1", "erf_unit": "top-left corner"})
    assert not errors(at) and not link_warnings(at)
    assert at.selectbox(key="inspector.erf.layer").value == "conv1"
    assert "unit (0, 0)" in _chart(at, "inspector.erf.map")["layout"]["title"]["text"]
    assert _metrics(at)["Theoretical field"] == "5×5 px"
    at.selectbox(key="inspector.erf.layer").set_value("pool1").run()
    assert at.query_params["erf_layer"] in ("pool1", ["pool1"])
    bad = _linked({"model": "lenet_digits", "erf_layer": "fc1"})  # not a feature map
    assert any("erf_layer=fc1" in w for w in link_warnings(bad))
    assert bad.selectbox(key="inspector.erf.layer").value == "conv2"


def test_a_vits_blocks_have_token_fields_over_the_whole_image():
    import numpy as np

    from vizlib import effective_field, zoo
    from vizlib.data.datasets import load_dataset

    at = _linked({"model": "vit_digits", "erf_unit": "class token"})
    assert not errors(at) and not link_warnings(at)
    assert at.selectbox(key="inspector.erf.layer").value == "blocks.0"
    assert at.radio(key="inspector.erf.unit").options == [
        "centre",
        "top-left corner",
        "class token",
    ]
    assert _metrics(at)["Theoretical field"] == "whole image"
    assert at.toggle(key="inspector.erf.log").value  # a ViT's faint spread needs it
    model, meta = zoo.load_model("vit_digits")
    images = load_dataset("digits", "test", meta["input_size"][1:])[0][:64]
    expected = effective_field.effective_receptive_field(model, "blocks.0", images, unit=0)
    heat = _chart(at, "inspector.erf.map")
    assert "the class token" in heat["layout"]["title"]["text"]
    np.testing.assert_allclose(
        plotly_array(heat["data"][0]["customdata"]),
        expected.gradient / expected.gradient.max(),
        rtol=1e-5,
    )
    assert [t["type"] for t in heat["data"]] == ["heatmap", "scatter"]  # no speckled outline
    at.button(key="inspector.erf.all").click().run()
    growth = _chart(at, "inspector.erf.growth")["data"]
    assert growth[0]["x"] == [f"blocks.{i} (block {i})" for i in range(4)]
    assert growth[0]["y"] == [32.0] * 4  # the whole 32 x 32 image
    # the patch embedding has no class token: a message, not an error
    at.selectbox(key="inspector.erf.layer").set_value("patch_embed").run()
    assert not errors(at)
    assert any("before the class token joins" in i.value for i in at.info)
    at.radio(key="inspector.erf.unit").set_value("centre").run()
    assert _metrics(at)["Theoretical field"] == "4×4 px"  # one patch


def test_a_cnn_link_naming_the_class_token_gets_a_warning():
    at = _linked({"model": "lenet_digits", "erf_unit": "class token"})
    assert any("erf_unit=class token" in w for w in link_warnings(at))
    assert at.radio(key="inspector.erf.unit").value == "centre"


def test_the_effective_fields_image_set_travels_in_the_link():
    at = opened_with(PAGE, {"model": "lenet_digits", "erf_images": "samples"})
    assert not errors(at) and not link_warnings(at)
    assert at.selectbox(key="inspector.erf.images").value == "samples"
    assert at.query_params["erf_images"] == "samples"
    at.selectbox(key="inspector.erf.images").set_value("digits").run()
    assert "erf_images" not in at.query_params  # the default stays out of the link
    bad = opened_with(PAGE, {"model": "lenet_digits", "erf_images": "/etc"})
    assert any("Ignored `erf_images=/etc`" in w for w in link_warnings(bad))


def test_the_effective_fields_image_set_comes_back_after_another_page():
    from tests.pages.test_navigation import _app_on, _visit_home_and_return

    page = "app_pages/model_inspector.py"
    at = _app_on(page)
    at.selectbox(key="inspector.erf.images").set_value("samples").run()
    assert not at.exception and at.query_params["erf_images"] == "samples"
    _visit_home_and_return(at, page)
    assert at.selectbox(key="inspector.erf.images").value == "samples"
    assert at.query_params["erf_images"] == "samples"


def test_the_images_averaged_travel_in_the_link():
    """A shared link averaged 64 images where the sender had chosen 61: another map, other
    numbers. The count is in the link; out of range it is named and the default stays."""
    from vizlib import effective_field, zoo
    from vizlib.data.datasets import load_dataset

    at = opened_with(PAGE, {"model": "lenet_digits"})
    at.slider(key="inspector.erf.n").set_value(61).run()
    assert at.query_params["erf_n"] in ("61", ["61"])
    again = opened_with(PAGE, {"model": "lenet_digits", "erf_n": "61"})
    assert not errors(again) and not link_warnings(again)
    assert again.slider(key="inspector.erf.n").value == 61
    model, meta = zoo.load_model("lenet_digits")
    images = load_dataset("digits", "test", meta["input_size"][1:])[0][:61]
    expected = effective_field.effective_receptive_field(model, "conv2", images)
    needed = effective_field.gradient_share(expected.gradient, 0.9)
    assert _metrics(again)["Pixels holding 90% of the gradient"] == f"{needed:,} px"
    bad = opened_with(PAGE, {"model": "lenet_digits", "erf_n": "5000"})
    assert any("erf_n=5000" in w for w in link_warnings(bad))
    assert bad.slider(key="inspector.erf.n").value == 64
