"""AppTest of the Position Embeddings page: a tiny ViT checkpoint, and torchvision's vit_b_16."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.pages._shared import errors, link_warnings, opened_with, plotly_array
from tests.pages.test_vit_attention import (  # noqa: F401
    SINGLE,
    TINY,
    _tiny_model,
    single_vit_zoo,
    tiny_vit_zoo,
)
from vizlib.posembed import patch_embedding_components, position_similarity

PAGE = "../../app_pages/position_embeddings.py"


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _z(trace: dict) -> np.ndarray:
    return plotly_array(trace["z"]).astype(float)


def test_position_page_on_tiny_vit(tiny_vit_zoo):  # noqa: F811
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = TINY
    _run(at)
    assert [h.value for h in at.header] == [
        "Position embedding similarity",
        "Patch-embedding filters",
        "Sinusoidal encoding vs learned embedding",
    ]
    # D = 32 filters of 1 x 4 x 4 = 16 values have 16 components: the slider stops there
    assert at.slider(key="position_embeddings.k").max == 16
    assert at.slider(key="position_embeddings.k").value == 16
    assert not at.info
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    mosaic = _z(charts[0]["data"][0]).astype(float)
    sim = position_similarity(_tiny_model().pos_embed, (8, 8)).numpy()
    # the mosaic's first tile is patch (0, 0) against all 8x8 patches
    assert mosaic.shape == (8 * 9 - 1, 8 * 9 - 1)
    np.testing.assert_allclose(mosaic[:8, :8], sim[0, 0], atol=1e-6)
    assert np.isnan(mosaic[8]).all()  # the gap row between tile rows
    # patches counted from 0 at the top left, as on the ViT Attention page
    assert charts[0]["layout"]["xaxis"]["ticktext"][0] == "0"
    assert any("counted from 0 at the top left" in c.value for c in at.caption)
    at.slider(key="position_embeddings.k").set_value(5)
    at.slider(key="position_embeddings.n_positions").set_value(40)
    at.slider(key="position_embeddings.dim").set_value(17)
    _run(at)
    assert not at.info
    assert any("PC 5" in str(c.proto) for c in at.get("plotly_chart"))
    # embeddings (NPY, CSV), similarities, components, PCA variance, sinusoidal
    assert len(at.get("download_button")) == 6


def test_position_page_on_a_one_patch_model(single_vit_zoo):  # noqa: F811
    """1 patch, 8 filters of 64 values: the position slider starts at its minimum of 2."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = SINGLE
    _run(at)
    assert at.slider(key="position_embeddings.n_positions").value == 2
    assert at.slider(key="position_embeddings.k").max == 8


@pytest.mark.slow
def test_position_page_on_torchvision_vit_b_16():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.query_params["model"] = "vit_b_16"
    _run(at)
    assert at.selectbox(key="position_embeddings.model").value == "vit_b_16"
    assert any("14×14" in c.value for c in at.caption)
    assert any("16×16 RGB" in c.value for c in at.caption)


def test_a_cnn_named_in_the_link_is_reported_and_a_vit_shown():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = "alexnet"
    _run(at)
    assert any("Ignored `model=alexnet`" in w.value for w in at.warning)
    assert at.selectbox(key="position_embeddings.model").value == "vit_digits"
    assert {d.key for d in at.get("download_button")} == {
        "position_embeddings.download_embeddings",
        "position_embeddings.download_embeddings_csv",
        "position_embeddings.download_similarity",
        "position_embeddings.download_components",
        "position_embeddings.download_pca",
        "position_embeddings.download_sinusoidal",
    }


def test_downloads_hold_what_the_page_shows(tiny_vit_zoo, downloads):  # noqa: F811
    """The learned (T, D) embeddings as NPY and CSV, the similarity grid, and the principal
    components with their explained variance, each against the model's own tensors."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = TINY
    _run(at)
    at.slider(key="position_embeddings.k").set_value(5)
    _run(at)
    model = _tiny_model()
    pos = model.pos_embed.detach().reshape(-1, 32).numpy()  # (1 + 8*8, 32): class token first

    def npy(name: str) -> np.ndarray:
        return np.load(io.BytesIO(downloads[name]), allow_pickle=False)

    np.testing.assert_allclose(npy(f"position_embeddings_{TINY}.npy"), pos, rtol=1e-6)
    table = pd.read_csv(io.BytesIO(downloads[f"position_embeddings_{TINY}.csv"]))
    assert table.shape == (65, 3 + 32)
    assert table["token"][0] == "class token" and pd.isna(table["patch_row"][0])
    # token 1 + 8*2 + 3 is patch (row 2, column 3), counted from 0 at the top left
    assert table.loc[20, ["token", "patch_row", "patch_column"]].tolist() == ["patch 19", 2, 3]
    np.testing.assert_allclose(table.iloc[:, 3:].to_numpy(), pos, rtol=1e-5, atol=1e-7)

    sim = position_similarity(model.pos_embed, (8, 8)).numpy()
    np.testing.assert_allclose(npy(f"position_similarity_{TINY}.npy"), sim, atol=1e-6)

    comps, ratios = patch_embedding_components(model.patch_embed.weight.detach(), k=5)
    np.testing.assert_allclose(
        npy(f"patch_embedding_components_{TINY}.npy"), comps.numpy(), atol=1e-5
    )
    assert npy(f"patch_embedding_components_{TINY}.npy").shape == (5, 1, 4, 4)
    variance = pd.read_csv(io.BytesIO(downloads[f"patch_embedding_pca_{TINY}.csv"]))
    assert variance["component"].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(variance["explained_variance_ratio"], ratios.numpy(), rtol=1e-6)


def test_uploaded_weights_name_their_downloads_like_the_cnn_pages(tiny_vit_zoo, downloads):  # noqa: F811
    """An upload's downloads are named upload_<architecture> (as on the CNN pages), not
    'upload_(vit_tiny_test)' with parentheses from the model's display name; the files hold the
    uploaded model's embeddings."""
    import torch

    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["model"] = "upload"
    _run(at)
    buf = io.BytesIO()
    torch.save(_tiny_model().state_dict(), buf)
    at.file_uploader(key="position_embeddings.upload_weights").upload("mine.pt", buf.getvalue())
    _run(at)
    stem = f"upload_{TINY}"
    assert f"position_embeddings_{stem}.npy" in downloads, sorted(downloads)
    assert not [name for name in downloads if "(" in name or " " in name], sorted(downloads)
    pos = np.load(io.BytesIO(downloads[f"position_embeddings_{stem}.npy"]), allow_pickle=False)
    np.testing.assert_allclose(pos, _tiny_model().pos_embed.detach()[0].numpy(), rtol=1e-6)


def _linked(query: dict) -> AppTest:
    return opened_with(PAGE, query)


def _settings(at: AppTest) -> dict:
    return {
        "k": at.slider(key="position_embeddings.k").value,
        "pos": at.slider(key="position_embeddings.n_positions").value,
        "dim": at.slider(key="position_embeddings.dim").value,
    }


def _titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


# the tiny ViT: 8x8 patches, 32 dimensions, 32 filters of 1x4x4 (16 components)
TINY_DEFAULTS = {"k": 16, "pos": 64, "dim": 32}


def test_a_link_opens_the_page_on_its_settings(tiny_vit_zoo):  # noqa: F811
    link = {"model": TINY, "k": "5", "pos": "40", "dim": "17"}
    at = _linked(link)
    assert not errors(at) and not link_warnings(at)
    assert _settings(at) == {"k": 5, "pos": 40, "dim": 17}
    assert any("PC 5" in str(c.proto) for c in at.get("plotly_chart"))
    enc = json.loads(at.get("plotly_chart")[2].proto.spec)["data"][0]
    assert _z(enc).shape == (40, 17)  # the sinusoidal encoding drawn at the link's size
    assert dict(at.query_params) == link  # the link stays as it came


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("k", "17", "expected a whole number from 1 to 16"),  # 16 components in this model
        ("k", "0", "expected a whole number from 1 to 16"),
        ("pos", "1", "expected a whole number from 2 to 512"),
        ("dim", "wide", "expected a whole number from 2 to 1024"),
    ],
)
def test_a_bad_link_value_gives_a_warning_and_the_default(tiny_vit_zoo, key, raw, expected):  # noqa: F811
    at = _linked({"model": TINY, "dim": "20", key: raw})
    assert not errors(at)
    assert link_warnings(at) == [f"Ignored `{key}={raw}` from the link ({expected})."]
    assert _settings(at) == {**TINY_DEFAULTS, "dim": 20 if key != "dim" else 32}
    assert key not in at.query_params and at.query_params["model"] == TINY


def test_a_bad_architecture_in_an_upload_link_gives_a_warning_and_the_default(tiny_vit_zoo):  # noqa: F811
    at = _linked({"model": "upload", "arch": "alexnet"})
    assert not errors(at)
    assert link_warnings(at) == [
        "Ignored `arch=alexnet` from the link (expected vit_tiny_test, vit_b_16)."
    ]
    assert at.selectbox(key="position_embeddings.upload_arch").value == TINY
    assert dict(at.query_params) == {"model": "upload"}


def test_changing_the_widgets_writes_the_link_and_the_link_reopens_them(tiny_vit_zoo):  # noqa: F811
    at = _linked({"model": TINY})
    assert dict(at.query_params) == {"model": TINY}  # defaults stay out of the link
    assert _settings(at) == TINY_DEFAULTS
    at.slider(key="position_embeddings.k").set_value(3)
    at.slider(key="position_embeddings.n_positions").set_value(100).run()
    assert not at.exception and not errors(at)
    assert dict(at.query_params) == {"model": TINY, "k": "3", "pos": "100"}
    at.slider(key="position_embeddings.dim").set_value(48).run()  # the fragment's rerun
    assert dict(at.query_params) == {"model": TINY, "k": "3", "pos": "100", "dim": "48"}
    again = _linked(dict(at.query_params))
    assert not link_warnings(again) and _settings(again) == _settings(at)
    # the uploader's architecture travels with ?model=upload, never the file
    at.selectbox(key="position_embeddings.model").set_value("Upload weights…").run()
    at.selectbox(key="position_embeddings.upload_arch").set_value("vit_b_16").run()
    link = dict(at.query_params)
    assert link == {"model": "upload", "arch": "vit_b_16", "k": "3", "pos": "100", "dim": "48"}
    again = _linked(link)
    assert not again.warning
    assert again.selectbox(key="position_embeddings.upload_arch").value == "vit_b_16"


def test_a_link_waits_for_the_uploaded_model(tiny_vit_zoo):  # noqa: F811
    """?model=upload opens the picker on the link's architecture; k and the sinusoidal size stay
    in the link until the uploaded model is there to check them against."""
    import torch

    link = {"model": "upload", "arch": "vit_b_16", "k": "4", "pos": "9", "dim": "2000"}
    at = _linked(link)
    assert not at.warning and not errors(at)
    assert at.selectbox(key="position_embeddings.upload_arch").value == "vit_b_16"
    assert dict(at.query_params) == link
    at.selectbox(key="position_embeddings.upload_arch").set_value(TINY).run()
    buf = io.BytesIO()
    torch.save(_tiny_model().state_dict(), buf)
    at.file_uploader(key="position_embeddings.upload_weights").upload("mine.pt", buf.getvalue())
    at.run()
    assert not at.exception and not errors(at)
    assert link_warnings(at) == [
        "Ignored `dim=2000` from the link (expected a whole number from 2 to 1024)."
    ]
    assert _settings(at) == {"k": 4, "pos": 9, "dim": 32}
    assert dict(at.query_params) == {"model": "upload", "k": "4", "pos": "9"}  # TINY: default


@pytest.fixture
def two_vit_zoo(tmp_path, monkeypatch):
    """The tiny ViT (8x8 patches, 32 dimensions) and the one-patch ViT (8 dimensions)."""
    from tests.pages.test_vit_attention import SINGLE_CONFIG, TINY_CONFIG, write_checkpoint
    from vizlib import zoo

    write_checkpoint(tmp_path, TINY, TINY_CONFIG)
    write_checkpoint(tmp_path, SINGLE, SINGLE_CONFIG)
    monkeypatch.setattr(zoo, "CHECKPOINT_DIR", tmp_path)


def test_settings_left_at_their_default_follow_a_new_model(two_vit_zoo):
    """The sinusoidal encoding starts at the learned embedding's size: picking another model
    moves the positions, dimensions and components the user left alone to its own, and keeps
    the ones the user moved (they used to stay at the first model's 64 x 32)."""
    at = _linked({"model": TINY})
    assert _settings(at) == TINY_DEFAULTS
    at.slider(key="position_embeddings.dim").set_value(20).run()
    at.selectbox(key="position_embeddings.model").set_value(SINGLE).run()
    assert not at.exception and not errors(at)
    # one patch (2 positions at least), 8 filters of 64 values: 8 components
    assert _settings(at) == {"k": 8, "pos": 2, "dim": 20}
    assert dict(at.query_params) == {"model": SINGLE, "dim": "20"}
    at.selectbox(key="position_embeddings.model").set_value(TINY).run()
    assert _settings(at) == {**TINY_DEFAULTS, "dim": 20}


def test_chart_titles_name_the_model_and_fit(tiny_vit_zoo):  # noqa: F811
    """The similarity chart repeated its section's header word for word; the learned dot
    products' title ('... (row-major patches)') was cut at 1024 px."""
    at = _linked({"model": TINY})
    titles = _titles(at)
    assert titles[0] == f"{TINY}: cosine similarity, patch to patch"
    assert titles[0] not in [h.value for h in at.header]
    assert titles[-1] == "Learned: dot products"
    assert any("row-major" in c.value for c in at.caption)  # said in the caption instead


def test_downloads_do_not_rerun_the_page(tiny_vit_zoo):  # noqa: F811
    at = _linked({"model": TINY})
    buttons = at.get("download_button")
    assert len(buttons) == 6 and all(b.proto.ignore_rerun for b in buttons)
