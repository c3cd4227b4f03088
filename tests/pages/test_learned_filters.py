"""AppTest for the Filters & Feature Maps page."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.pages._shared import errors, link_warnings, opened_with, plotly_array

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "learned_filters.py")


@pytest.fixture
def at():
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "lenet_digits"
    return app.run()


def test_default_view_shows_first_layer_filters(at):
    assert not at.exception and not errors(at)
    assert at.selectbox(key="filters.model").value == "lenet_digits"
    assert "32 filters of 1×5×5" in at.markdown[0].value
    # grid, histogram x2, before/after x2, feature maps, top-activating images
    assert len(at.get("plotly_chart")) >= 7
    assert any("Relative change" in m.label for m in at.metric)
    downloads = {d.key for d in at.get("download_button")}
    assert downloads == {
        "filters.download_weights",
        "filters.download_maps",
        "filters.download_top",
    }


def test_controls_rerun_withouterrors(at):
    at.toggle(key="filters.shared").set_value(True).run()
    at.selectbox(key="filters.layer").set_value("conv2").run()
    assert not at.exception and not errors(at)
    assert "64 filters of 32×5×5" in at.markdown[0].value
    at.radio(key="filters.slice_mode").set_value("Mean over input channels").run()
    at.number_input(key="filters.filter_index").set_value(63).run()
    at.radio(key="filters.source").set_value("Sample image").run()
    at.selectbox(key="filters.sample").set_value("coins").run()
    at.number_input(key="filters.channel").set_value(10).run()
    at.radio(key="filters.reduce").set_value("max").run()
    assert not at.exception and not errors(at)


@pytest.mark.slow
def test_torchvision_alexnet_first_layer_is_rgb():
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "alexnet"
    at = app.run()
    assert not at.exception and not errors(at)
    assert "64 filters of 3×11×11 (RGB below)" in at.markdown[0].value
    assert any("Top-activating images need" in i.value for i in at.info)


def test_unknown_model_in_the_link_is_reported_not_fatal():
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "nonexistent"
    app.run()
    assert not app.exception and not errors(app)
    assert any("Ignored `model=nonexistent`" in w.value for w in app.warning)
    assert app.selectbox(key="filters.model").value == "lenet_digits"


ONE_CHANNEL = "resnet_one_channel"


def one_channel_zoo(monkeypatch) -> None:
    """Add to the zoo a SmallResNet whose stem conv has ONE output channel (widths 1, 2)."""
    from vizlib import zoo

    real_list, real_load = zoo.list_models, zoo.load_model
    sidecar = json.loads((zoo.CHECKPOINT_DIR / "resnet_digits.json").read_text())
    meta = {
        **sidecar,
        "name": ONE_CHANNEL,
        "config": {**sidecar["config"], "widths": [1, 2]},
        "test_accuracy": None,
    }

    def load_model(name, device=None):
        if name != ONE_CHANNEL:
            return real_load(name, device)
        torch.manual_seed(0)
        return zoo.build_model("resnet", meta["config"]).to(device or "cpu").eval(), dict(meta)

    monkeypatch.setattr(zoo, "list_models", lambda family=None: [ONE_CHANNEL, *real_list(family)])
    monkeypatch.setattr(zoo, "load_model", load_model)


def test_a_one_channel_layer_and_a_one_image_set_need_no_slider(monkeypatch):
    """st.slider refuses min == max: one feature map, or a one-image dataset, must not raise."""
    import streamlit as st

    import ui.inside_cnns

    st.cache_data.clear()  # channel scores cached by another test came from the full test set
    one_channel_zoo(monkeypatch)
    real_dataset = ui.inside_cnns.dataset_for

    def one_image(dataset, size, split="test"):
        images, labels, classes = real_dataset(dataset, size, split)
        return images[:1], labels[:1], classes

    monkeypatch.setattr(ui.inside_cnns, "dataset_for", one_image)
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = ONE_CHANNEL
    at = app.run()
    assert not at.exception and not errors(at)
    assert at.selectbox(key="filters.layer").value == "stem.0"
    assert "1 filters of 1×3×3" in at.markdown[0].value
    captions = " | ".join(c.value for c in at.caption)
    assert "Maps shown: 1 (the only possible value)" in captions
    assert "Images: 1 (the only possible value)" in captions
    assert not [s for s in at.slider if s.key in ("filters.n_maps", "filters.top_k")]
    downloads = {d.key for d in at.get("download_button")}
    assert {"filters.download_maps", "filters.download_top"} <= downloads
    # a two-channel layer gets its slider back
    at.selectbox(key="filters.layer").set_value("layers.1.conv1").run()
    assert not at.exception and not errors(at)
    assert at.slider(key="filters.n_maps").max == 2


def test_count_slider_clamps_and_skips_a_single_option():
    def page():
        import streamlit as st

        from ui import count_slider

        st.session_state["values"] = [
            count_slider("Window", 1, 1, 4, key="t.one", unit=" px"),
            count_slider("Maps", 1, 8, 64, key="t.clamped"),
            count_slider("Images", 4, 36, 16, key="t.plain"),
        ]

    at = AppTest.from_function(page).run()
    assert not at.exception
    assert at.session_state["values"] == [1, 8, 16]
    assert [s.key for s in at.slider] == ["t.clamped", "t.plain"]
    assert at.caption[0].value == "Window: 1 px (the only possible value)"


def lenet_upload(edit) -> bytes:
    """The shipped lenet_digits weights, changed by ``edit(state)``, as .safetensors bytes."""
    from safetensors.torch import load_file, save

    from vizlib import zoo

    state = load_file(str(zoo.CHECKPOINT_DIR / "lenet_digits.safetensors"))
    edit(state)
    return save(state)


def test_uploaded_weights_show_their_own_filters_and_bad_files_are_refused(tmp_path):
    def double_filter_0(state):
        state["conv1.weight"][0] *= 2

    data = lenet_upload(double_filter_0)
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "upload"
    at = app.run()
    assert not at.exception and not errors(at)
    assert at.selectbox(key="filters.model").value == "Upload weights…"
    assert any("Upload a state_dict" in i.value for i in at.info)
    at.selectbox(key="filters.upload_arch").set_value("lenet_digits")
    at.get("file_uploader")[0].upload("mine.safetensors", data, "application/octet-stream").run()
    assert not at.exception and not errors(at)
    assert "32 filters of 1×5×5" in at.markdown[0].value
    from safetensors.torch import load

    norm = float(load(data)["conv1.weight"][0].norm())
    grid = next(c for c in at.get("plotly_chart") if "conv1: 32 filters" in str(c.proto))
    hover = json.loads(grid.proto.spec)["data"][0]["hovertext"]
    assert hover[0][0] == f"filter 0<br>L2 norm {norm:.4g}"  # the uploaded weights, not ours
    assert at.query_params["model"] == "upload"

    evil = tmp_path / "evil.pt"
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"conv1.weight": Evil()}, evil)
    at.get("file_uploader")[0].upload("evil.pt", evil.read_bytes(), "application/octet-stream")
    at.run()
    assert not at.exception and not marker.exists()
    assert any("Could not use 'evil.pt': Refused" in e for e in errors(at))
    at.selectbox(key="filters.upload_arch").set_value("resnet_digits")
    at.get("file_uploader")[0].upload("mine.safetensors", data, "application/octet-stream").run()
    assert not at.exception
    assert any("do not fit the resnet_digits architecture" in e for e in errors(at))


def test_the_filter_grid_says_what_black_and_white_are(at):
    from vizlib import zoo
    from vizlib.filters import conv_filters

    model, _ = zoo.load_model("lenet_digits")
    weights = conv_filters(model, "conv1")
    captions = " | ".join(c.value for c in at.caption)
    assert "Black at the lowest weight and white at the highest (each filter stretched" in captions
    at.toggle(key="filters.shared").set_value(True).run()
    captions = " | ".join(c.value for c in at.caption)
    low, high = float(weights.min()), float(weights.max())
    assert f"one scale for the layer, {low:.3g} to {high:.3g}" in captions


def test_the_weight_histograms_before_and_after_training_share_bins_and_axes(at):
    """The trained and the initial weights are binned on one span (the two had their own bins,
    -0.32..0.35 against -0.2..0.2 for lenet conv1, so their spreads and counts did not compare)."""

    import numpy as np

    from vizlib import filters, zoo

    model, meta = zoo.load_model("lenet_digits", device="cpu")
    trained = model.conv1.weight.detach().flatten()
    initial = filters.untrained_model(meta).conv1.weight.detach().flatten()
    both = torch.cat([trained, initial])
    low, high = float(both.min()), float(both.max())
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key}
    shown = [charts["filters.hist"], charts["filters.hist_before"]]
    for spec, values in zip(shown, (trained, initial), strict=True):
        expected, edges = np.histogram(values.numpy(), bins=60, range=(low, high))
        bar = spec["data"][0]
        assert plotly_array(bar["y"]).tolist() == expected.tolist()
        assert spec["layout"]["xaxis"]["range"] == pytest.approx([low, high])
        top = max(
            np.histogram(v.numpy(), bins=60, range=(low, high))[0].max() for v in (trained, initial)
        )
        assert spec["layout"]["yaxis"]["range"] == pytest.approx([0, 1.05 * top])
    assert any(f"same 60 bins, {low:.3g} to {high:.3g}" in c.value for c in at.caption)
    titles = [spec["layout"]["title"]["text"] for spec in shown]  # each says how many weights
    n = f"{trained.numel():,}"
    assert titles == [f"conv1: trained weights ({n})", f"conv1: at initialisation ({n})"]


def test_before_and_after_grids_fit_half_a_1024_pixel_page(at):
    """Each grid is half the page wide (about 270 px at 1024 px): 300 px high at most, where at
    420 the images shrank to the width and left a band of white above them."""
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key}
    for key in ("filters.before", "filters.after"):
        assert charts[key]["layout"]["height"] - 70 <= 300  # the grid's pixels, title apart


def test_feature_map_title_says_which_maps_are_shown(at):
    at.selectbox(key="filters.layer").set_value("conv2").run()
    at.slider(key="filters.n_maps").set_value(10).run()
    maps = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("filters.maps"))
    title = json.loads(maps.proto.spec)["layout"]["title"]["text"]
    assert title == "conv2: channels 0–9 of 64 maps of 4×4"


def test_the_slice_grid_says_which_scale_its_slices_share(at):
    """On the shared scale the slices of one filter share that filter's range, not the layer's
    of the caption above; without it each slice has its own."""
    from vizlib import zoo
    from vizlib.filters import conv_filters

    at.selectbox(key="filters.layer").set_value("conv2").run()
    at.number_input(key="filters.filter_index").set_value(3).run()
    assert any("Each slice is stretched to its own range" in c.value for c in at.caption)
    at.toggle(key="filters.shared").set_value(True).run()
    weights = conv_filters(zoo.load_model("lenet_digits")[0], "conv2")[3]  # (32, 5, 5)
    expected = (
        f"One scale for this filter's 32 slices, black at {float(weights.min()):.3g} and white "
        f"at {float(weights.max()):.3g}."
    )
    assert expected in [c.value for c in at.caption]
    assert not at.exception and not errors(at)


def test_maps_shown_left_at_every_map_follows_the_layer_a_chosen_count_stays(at):
    """lenet_digits: conv1 has 32 maps, conv2 64. Left alone, the slider shows every map of
    each layer; a count the user chose stays when the layer changes."""
    assert at.slider(key="filters.n_maps").value == 32
    at.selectbox(key="filters.layer").set_value("conv2").run()
    assert at.slider(key="filters.n_maps").value == 64
    at.slider(key="filters.n_maps").set_value(10).run()
    at.selectbox(key="filters.layer").set_value("conv1").run()
    assert at.slider(key="filters.n_maps").value == 10
    assert not at.exception and not errors(at)


def test_an_image_folder_feeds_the_feature_maps_and_the_top_activating_images(
    tmp_path, monkeypatch
):
    """Folder photos reach lenet_digits as grey; the ranking over the folder is the one torch's
    own conv1 gives on the files read by hand, named by folder index and sub-folder."""
    import re

    import streamlit as st

    from tests.test_data_datasets import FRUIT, pixels_by_hand, write_image_folder
    from vizlib import zoo

    st.cache_data.clear()
    files = write_image_folder(tmp_path / "fruit")
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "lenet_digits"
    at = app.run()
    assert "Image folder" in at.radio(key="filters.source").options
    at.radio(key="filters.source").set_value("Image folder").run()
    at.number_input(key="filters.folder_index").set_value(4).run()
    assert not at.exception and not errors(at)
    captions = " | ".join(c.value for c in at.caption)
    assert "converted to grey (ITU-R 601 luma)" in captions
    shown = [img.caption for im in at.get("image") for img in im.proto.imgs]
    assert shown == ["fruit image 4 of 9 (class bananas)"]

    name = f"imagefolder:{tmp_path / 'fruit'}"
    at.selectbox(key="filters.top.images").set_value(name).run()
    assert not at.exception and not errors(at)
    assert any("Reading all of its 9 images" in c.value for c in at.caption)
    chart = next(c for c in at.get("plotly_chart") if c.key == "filters.top")
    spec = chart.proto.spec.replace("\\u003c", "<").replace("\\u003e", ">")  # JSON escapes
    hover = re.findall(r"image (\d+)<br>class (\w+)<br>score ([-\d.e+]+)", spec)
    ranked = list(dict.fromkeys(hover))  # each tile repeats its text for every pixel
    assert len(ranked) == 9  # all of them: the Images control tops out at the set's size

    model, meta = zoo.load_model("lenet_digits")
    paths = [p for c in FRUIT for p in files[c]]  # torchvision's order = folder index
    x = torch.stack([pixels_by_hand(p, (28, 28), grey=True) for p in paths])  # (9, 1, 28, 28)
    x = (x - meta["mean"][0]) / meta["std"][0]
    with torch.no_grad():
        score = model.conv1(x).mean(dim=(2, 3))[:, 0]  # channel 0, mean over positions
    order = torch.argsort(-score, stable=True).tolist()
    assert [int(i) for i, _, _ in ranked] == order
    assert [c for _, c, _ in ranked] == [FRUIT[i // 3] for i in order]
    torch.testing.assert_close(
        torch.tensor([float(s) for _, _, s in ranked]), score[order], rtol=1e-3, atol=1e-6
    )
    # under each image, without hovering: its class, then its score named by its reduction
    notes = [a["text"].split("<br>") for a in json.loads(chart.proto.spec)["layout"]["annotations"]]
    assert [cls for cls, _ in notes] == [f"class {FRUIT[i // 3]}" for i in order]
    assert all(line.startswith("mean ") for _, line in notes)
    written = [line.split()[1] for _, line in notes]
    torch.testing.assert_close(  # 4 digits for the largest, as many decimals for the rest
        torch.tensor([float(v) for v in written]),
        score[order],
        rtol=0,
        atol=float(score.abs().max()) * 1e-3,
    )
    assert len({len(v.split(".")[-1]) for v in written}) == 1  # they line up in a column
    assert any("Under each image: its true class, then its score" in c.value for c in at.caption)


def test_a_bad_image_folder_path_on_the_filters_page_is_explained(tmp_path):
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "lenet_digits"
    at = app.run()
    at.selectbox(key="filters.top.images").set_value("Other image folder…").run()
    (tmp_path / "notes.txt").write_text("x")
    at.text_input(key="filters.top.folder_path").set_value(str(tmp_path / "notes.txt")).run()
    assert not at.exception
    assert errors(at) == [
        f"{tmp_path / 'notes.txt'} is a file. Give the folder that holds one sub-folder per class."
    ]
    at.radio(key="filters.source").set_value("Image folder").run()  # the input picker's own
    at.selectbox(key="filters.folder").set_value("Other image folder…").run()
    at.text_input(key="filters.folder_path").set_value(str(tmp_path)).run()
    assert not at.exception
    assert any(f"{tmp_path} has no sub-folders" in e for e in errors(at))


def test_typed_folder_paths_can_be_switched_off_for_a_shared_server(tmp_path, monkeypatch):
    """VIZLIB_TYPED_FOLDERS=0: no path box anywhere, only the folders under VIZLIB_DATA; with
    none there, the folder picker says so instead of failing."""
    monkeypatch.setenv("VIZLIB_TYPED_FOLDERS", "0")
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))  # an empty data folder
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "lenet_digits"
    at = app.run()
    assert not at.exception
    assert "Other image folder…" not in at.selectbox(key="filters.top.images").options
    at.radio(key="filters.source").set_value("Image folder").run()
    assert not at.exception
    assert at.selectbox(key="filters.folder").options == []
    assert any("No image folder was found under VIZLIB_DATA" in i.value for i in at.info)


# lenet_digits: conv1 (32 filters of 1×5×5), conv2 (64 of 32×5×5); digits test split on disk
FILTERS_LINK = {
    "layer": "conv2",
    "shared": "true",
    "slices": "Mean over input channels",
    "bins": "20",
    "reduce": "max",
    "filter": "63",
    "maps": "8",
    "channel": "10",
    "input": "Sample image",
    "sample": "coins",
    "k": "4",
}


def _linked(query: dict) -> AppTest:
    return opened_with(PAGE, {"model": "lenet_digits", **query})


def _settings(at: AppTest) -> dict:
    return {
        "layer": at.selectbox(key="filters.layer").value,
        "shared": at.toggle(key="filters.shared").value,
        "bins": at.slider(key="filters.bins").value,
        "reduce": at.radio(key="filters.reduce").value,
        "maps": at.slider(key="filters.n_maps").value,
        "channel": at.number_input(key="filters.channel").value,
        "input": at.radio(key="filters.source").value,
        "k": at.slider(key="filters.top_k").value,
    }


def test_a_link_opens_the_page_on_its_settings():
    at = _linked(FILTERS_LINK)
    assert not errors(at) and not link_warnings(at)
    assert _settings(at) == {
        "layer": "conv2",
        "shared": True,
        "bins": 20,
        "reduce": "max",
        "maps": 8,
        "channel": 10,
        "input": "Sample image",
        "k": 4,
    }
    assert at.radio(key="filters.slice_mode").value == "Mean over input channels"
    assert at.number_input(key="filters.filter_index").value == 63
    assert at.selectbox(key="filters.sample").value == "coins"
    assert "64 filters of 32×5×5" in at.markdown[0].value
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "Filter 63 of conv2: 1 slice(s) of 5×5" in titles
    assert any(t.startswith("conv2: channels 0–7 of 64 maps") for t in titles)
    assert any(t.startswith("Test images that drive channel 10 of conv2") for t in titles)
    assert dict(at.query_params) == {"model": "lenet_digits", **FILTERS_LINK}


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("layer", "conv9", "expected conv1, conv2"),
        ("channel", "32", "expected a whole number from 0 to 31"),  # conv1 has 32 filters
        ("bins", "5", "expected a whole number from 10 to 200"),
        ("input", "Webcam", "expected Dataset sample, Image folder, Sample image, Upload an image"),
        ("k", "x", "expected a whole number from 4 to 36"),
        ("shared", "2", "expected true or false"),
    ],
)
def test_a_bad_link_value_gives_a_warning_and_the_default(key, raw, expected):
    at = _linked({"bins": "30", key: raw})
    assert not errors(at)
    assert link_warnings(at) == [f"Ignored `{key}={raw}` from the link ({expected})."]
    assert _settings(at) == {
        "layer": "conv1",
        "shared": False,
        "bins": 30 if key != "bins" else 60,
        "reduce": "mean",
        "maps": 32,
        "channel": 0,
        "input": "Dataset sample",
        "k": 16,
    }
    assert key not in at.query_params and at.query_params["model"] == "lenet_digits"


def test_changing_the_widgets_writes_the_link_and_a_new_layer_keeps_channels_in_range(at):
    assert dict(at.query_params) == {"model": "lenet_digits"}  # defaults stay out of the link
    at.number_input(key="filters.channel").set_value(31)
    at.radio(key="filters.reduce").set_value("max")
    at.slider(key="filters.top_k").set_value(9)
    at.number_input(key="filters.index").set_value(7).run()
    assert not at.exception and not errors(at)
    assert dict(at.query_params) == {
        "model": "lenet_digits",
        "channel": "31",
        "reduce": "max",
        "k": "9",
        "index": "7",
    }
    again = _linked({k: v for k, v in at.query_params.items() if k != "model"})
    assert not link_warnings(again) and _settings(again) == _settings(at)
    assert again.number_input(key="filters.index").value == 7
    at.selectbox(key="filters.layer").set_value("conv2").run()
    at.number_input(key="filters.channel").set_value(63).run()
    assert at.query_params["channel"] == "63" and at.query_params["layer"] == "conv2"
    at.selectbox(key="filters.layer").set_value("conv1").run()  # 32 filters: 63 is gone
    assert not at.exception and not errors(at)
    assert at.number_input(key="filters.channel").value == 0 and "channel" not in at.query_params


def test_downloads_do_not_rerun_the_page(at):
    buttons = at.get("download_button")
    assert len(buttons) == 3 and all(b.proto.ignore_rerun for b in buttons)


def _fruit_folders(tmp_path, monkeypatch) -> tuple[list[str], dict[str, list]]:
    """Two image folders under VIZLIB_DATA ("fruit", "more"); return their names (the first is
    the default, which a link leaves out) and the files of "more" by class."""
    import ui
    from tests.test_data_datasets import write_image_folder

    write_image_folder(tmp_path / "fruit")
    files = write_image_folder(tmp_path / "more")
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    folders = ui.image_folders()
    assert sorted(folders) == [f"imagefolder:{tmp_path / n}" for n in ("fruit", "more")]
    return folders, files


def test_an_image_folder_and_its_image_in_the_link_feed_the_feature_maps(
    tmp_path, monkeypatch, downloads
):
    """The link's folder (one found under VIZLIB_DATA) and image index reach the feature maps:
    they are torch's own conv1 on that file read by hand. A bad index or a folder that is not
    there warns and falls back."""
    import io

    import numpy as np

    from tests.test_data_datasets import pixels_by_hand
    from vizlib import zoo

    folders, files = _fruit_folders(tmp_path, monkeypatch)
    folder = folders[1]
    link = {"input": "Image folder", "folder": folder, "folder_index": "3", "maps": "8"}
    at = _linked(link)
    assert not errors(at) and not link_warnings(at)
    assert at.radio(key="filters.source").value == "Image folder"
    assert at.selectbox(key="filters.folder").value == folder
    assert at.number_input(key="filters.folder_index").value == 3
    shown = [img.caption for im in at.get("image") for img in im.proto.imgs]
    assert shown == [f"{Path(folder).name} image 3 of 9 (class bananas)"]
    assert dict(at.query_params) == {"model": "lenet_digits", **link}

    model, meta = zoo.load_model("lenet_digits")
    x = pixels_by_hand(files["bananas"][0], (28, 28), grey=True)[None]  # folder image 3
    x = (x - meta["mean"][0]) / meta["std"][0]  # (1, 1, 28, 28)
    with torch.no_grad():
        expected = model.conv1(x)[0]  # (32, 24, 24)
    maps = np.load(io.BytesIO(downloads["lenet_digits_conv1_feature_maps.npy"]))
    torch.testing.assert_close(torch.from_numpy(maps), expected, rtol=1e-4, atol=1e-5)

    bad = _linked({**link, "folder_index": "9"})
    assert link_warnings(bad) == [
        "Ignored `folder_index=9` from the link (expected a whole number from 0 to 8)."
    ]
    assert bad.number_input(key="filters.folder_index").value == 0
    assert "folder_index" not in bad.query_params and bad.query_params["folder"] == folder
    stale = _linked({**link, "folder": "imagefolder:/nowhere"})
    assert link_warnings(stale) == [
        f"Ignored `folder=imagefolder:/nowhere` from the link (expected {', '.join(folders)}, "
        "Other image folder…)."
    ]
    assert stale.selectbox(key="filters.folder").value == folders[0]
    # the index is ranged by the folder the page fell back to (also 9 images): it stays
    assert stale.number_input(key="filters.folder_index").value == 3
    assert dict(stale.query_params) == {
        "model": "lenet_digits",
        "input": "Image folder",
        "folder_index": "3",
        "maps": "8",
    }


def test_the_folder_widgets_write_the_link_but_never_a_typed_path_or_an_upload(
    tmp_path, monkeypatch
):
    """Picking a folder and an image writes them into the link, and a fresh session opened on
    it shows the same image. A typed path and an uploaded file stay out: a link naming
    "Other image folder…" or "Upload an image" opens that box, empty."""
    folders, _ = _fruit_folders(tmp_path, monkeypatch)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = "lenet_digits"
    at.run()
    at.radio(key="filters.source").set_value("Image folder").run()
    assert dict(at.query_params) == {"model": "lenet_digits", "input": "Image folder"}
    at.selectbox(key="filters.folder").set_value(folders[1]).run()
    at.number_input(key="filters.folder_index").set_value(7).run()
    assert not at.exception and not errors(at)
    assert dict(at.query_params) == {
        "model": "lenet_digits",
        "input": "Image folder",
        "folder": folders[1],
        "folder_index": "7",
    }
    again = _linked({k: v for k, v in at.query_params.items() if k != "model"})
    assert not errors(again) and not link_warnings(again)
    shown = [img.caption for im in again.get("image") for img in im.proto.imgs]
    assert shown == [f"{Path(folders[1]).name} image 7 of 9 (class cherries)"]

    at.selectbox(key="filters.folder").set_value("Other image folder…").run()
    at.text_input(key="filters.folder_path").set_value(str(tmp_path / "more")).run()
    assert not at.exception and not errors(at)
    shown = [img.caption for im in at.get("image") for img in im.proto.imgs]
    assert shown == ["more image 0 of 9 (class apples)"]  # the typed folder is used here...
    assert str(tmp_path) not in str(dict(at.query_params))  # ...and stays out of the link
    assert dict(at.query_params) == {
        "model": "lenet_digits",
        "input": "Image folder",
        "folder": "Other image folder…",
    }
    typed = _linked({"input": "Image folder", "folder": "Other image folder…"})
    assert not errors(typed) and not link_warnings(typed)
    assert typed.text_input(key="filters.folder_path").value == ""
    assert any("Type the path of an image folder" in i.value for i in typed.info)
    assert not typed.get("image")

    at.radio(key="filters.source").set_value("Sample image").run()  # the folder leaves the link
    assert dict(at.query_params) == {"model": "lenet_digits", "input": "Sample image"}
    upload = _linked({"input": "Upload an image", "bins": "20"})
    assert not errors(upload) and not link_warnings(upload)
    assert upload.file_uploader(key="filters.upload").value is None
    assert [i.value for i in upload.info if i.value.startswith("Upload an image")] == [
        "Upload an image to see its feature maps."
    ]  # not Attributions' "to explain it"
    assert not upload.get("image") and upload.slider(key="filters.bins").value == 20
    assert dict(upload.query_params) == {
        "model": "lenet_digits",
        "input": "Upload an image",
        "bins": "20",
    }


def test_large_feature_maps_are_drawn_at_the_figures_resolution_unless_asked():
    """resnet18's conv1 (64 maps of 112x112, more cells than the figure's 640 px): block means
    of 2x2, said in the title and a caption; 'Full resolution' draws every activation."""
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["model"] = "resnet18"
    at = app.run()
    assert not at.exception and not errors(at)

    def maps_spec() -> dict:
        chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("filters.maps"))
        return json.loads(chart.proto.spec)

    spec = maps_spec()
    assert spec["layout"]["title"]["text"].endswith("64 maps of 112×112 (1/2 resolution)")
    assert "mean of 2×2 activations" in spec["data"][0]["hovertemplate"]
    assert spec["data"][0]["z"]["shape"] in ("56, 56", [56, 56])
    assert any("Drawn at 1/2 resolution, 56×56 a map" in c.value for c in at.caption)
    at.toggle(key="filters.full_maps").set_value(True).run()
    spec = maps_spec()
    assert spec["layout"]["title"]["text"].endswith("64 maps of 112×112")
    assert spec["data"][0]["z"]["shape"] in ("112, 112", [112, 112])
    # few maps fit unpooled: no toggle, nothing said
    at.slider(key="filters.n_maps").set_value(4).run()
    assert not at.exception and not errors(at)
    assert not [t for t in at.toggle if t.key == "filters.full_maps"]
    assert maps_spec()["layout"]["title"]["text"].endswith("maps of 112×112")


def test_the_top_activating_image_set_travels_in_the_link(tmp_path, monkeypatch):
    import streamlit as st

    from tests.test_data_datasets import write_image_folder

    st.cache_data.clear()
    write_image_folder(tmp_path / "fruit", n_per_class=2)
    monkeypatch.setenv("VIZLIB_DATA", str(tmp_path))
    folder = f"imagefolder:{tmp_path / 'fruit'}"
    at = opened_with(PAGE, {"model": "lenet_digits", "top_images": folder})
    assert not errors(at) and not link_warnings(at)
    assert at.selectbox(key="filters.top.images").value == folder
    assert at.query_params["top_images"] == folder
    bad = opened_with(PAGE, {"model": "lenet_digits", "top_images": "/etc"})
    assert any("Ignored `top_images=/etc`" in w for w in link_warnings(bad))
