"""vizlib.plots.embedding: the linked scatter's data and its thumbnail sprite sheet."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from vizlib.plots import plot_embeddings, scatter_payload, subsample_for_drawing, thumbnail_sprite


def _sheet(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_sprite_places_each_thumbnail_at_its_slot():
    rng = np.random.default_rng(0)
    grey = rng.random((5, 8, 8)).astype(np.float32)
    data, mime, side, cols = thumbnail_sprite(grey, side=32)
    assert (mime, side, cols) == ("image/png", 8, 3)  # small images are never enlarged
    sheet = _sheet(data)
    assert sheet.shape == (16, 24)  # 2 rows x 3 columns of 8 px
    for k in range(5):
        r, c = divmod(k, cols)
        tile = sheet[r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8]
        np.testing.assert_allclose(tile / 255.0, grey[k], atol=0.5 / 255 + 1e-6)


def test_big_colour_images_shrink_to_the_side_keeping_their_aspect():
    img = np.zeros((2, 64, 32, 3), np.float32)
    img[:, :, :, 0] = 1.0  # red
    data, mime, side, cols = thumbnail_sprite(img, side=16)
    assert (mime, side, cols) == ("image/jpeg", 16, 2)
    sheet = _sheet(data).astype(int)
    tile = sheet[:16, :16]
    assert tile[:, 4:12, 0].mean() > 200 and tile[:, 4:12, 1:].mean() < 40  # red, 8 px wide
    assert tile[:, :3].mean() < 30 and tile[:, 13:].mean() < 30  # centred, black bars beside
    with pytest.raises(ValueError, match="images must be"):
        thumbnail_sprite(np.zeros((2, 8, 8, 2)))


def test_uint8_images_make_the_sprite_that_their_pixels_in_0_1_make():
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)  # MNIST as the page keeps it
    data, mime, side, cols = thumbnail_sprite(grey, side=32)
    assert (mime, side, cols) == ("image/png", 28, 3)
    assert data == thumbnail_sprite(grey / 255.0, side=32)[0]  # the same PNG, byte for byte
    sheet = _sheet(data)
    np.testing.assert_array_equal(sheet[28:56, 28:56], grey[4])  # the bytes themselves
    # shrunk: resampled from the same values in [0, 1] as the float images
    colour = rng.integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    small = _sheet(thumbnail_sprite(colour, side=16)[0])
    np.testing.assert_array_equal(small, _sheet(thumbnail_sprite(colour / 255.0, side=16)[0]))
    # a view with strides (the page's colour images are (N, C, h, w) seen as (N, h, w, C))
    chw = np.ascontiguousarray(colour.transpose(0, 3, 1, 2))
    view = chw.transpose(0, 2, 3, 1)
    assert thumbnail_sprite(view, side=16)[0] == thumbnail_sprite(colour, side=16)[0]


def test_payload_subsamples_labels_layers_and_thumbnails_consistently():
    rng = np.random.default_rng(1)
    n = 300
    maps = {"a": rng.normal(size=(n, 2)), "b": rng.normal(size=(n, 2)) * 100}
    labels = rng.integers(0, 3, n)
    images = rng.random((n, 6, 6)).astype(np.float32)
    p = scatter_payload(
        maps, labels, class_names=["zero", "one", "two"], images=images, max_points=200,
        max_thumbnails=50,
    )  # fmt: skip
    json.dumps(p)  # what the component receives
    keep = subsample_for_drawing(n, 200)
    assert p["index"] == keep.tolist() and p["label"] == labels[keep].tolist()
    assert [c["name"] for c in p["classes"]] == ["zero", "one", "two"]
    for layer, (name, coords) in zip(p["layers"], maps.items(), strict=True):
        assert layer["name"] == name
        np.testing.assert_allclose(layer["x"], coords[keep, 0], rtol=1e-4)
        np.testing.assert_allclose(layer["y"], coords[keep, 1], rtol=1e-4)
    slots = np.array(p["thumb_slot"])
    assert (slots >= 0).sum() == 50 and sorted(slots[slots >= 0].tolist()) == list(range(50))
    header, b64 = p["sprite"].split(",", 1)
    assert header == "data:image/png;base64"
    sheet = _sheet(base64.b64decode(b64))
    for i in np.flatnonzero(slots >= 0)[:10]:  # each slot holds its own point's image
        r, c = divmod(int(slots[i]), p["columns"])
        tile = sheet[r * 6 : (r + 1) * 6, c * 6 : (c + 1) * 6] / 255.0
        np.testing.assert_allclose(tile, images[p["index"][i]], atol=0.5 / 255 + 1e-6)


def test_payload_without_labels_or_images_and_bad_shapes():
    p = scatter_payload({"only": np.zeros((4, 2))})
    assert p["classes"] == [{"id": 0, "name": "all points", "colour": p["classes"][0]["colour"]}]
    assert "sprite" not in p and p["has_labels"] is False
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        scatter_payload({"a": np.zeros((4, 2)), "b": np.zeros((5, 2))})
    with pytest.raises(ValueError, match="labels"):
        scatter_payload({"a": np.zeros((4, 2))}, np.zeros(3))
    with pytest.raises(ValueError, match="images"):
        scatter_payload({"a": np.zeros((4, 2))}, images=np.zeros((3, 2, 2)))


def test_plotly_figure_keeps_indices_for_clicks():
    maps = {"a": np.arange(10.0).reshape(5, 2)}
    fig = plot_embeddings(maps, np.array([0, 1, 0, 1, 1]))
    got = sorted(int(i) for trace in fig.data for i in trace.customdata)
    assert got == [0, 1, 2, 3, 4]


def test_plotly_maps_keep_equal_scales_in_every_panel():
    """A map's x and y are the same unit: each panel's y axis is anchored to its own x axis at
    ratio 1, shrinking the plotting area (not widening the ranges). Without it a map 14 wide
    and 11 high filled a 610 x 200 px box, its clusters squashed."""
    rng = np.random.default_rng(0)
    maps = {name: rng.normal(size=(20, 2)) * [7, 1] for name in ("a", "b", "c")}
    layout = plot_embeddings(maps).layout
    for c, x in ((1, "x"), (2, "x2"), (3, "x3")):
        yaxis = layout["yaxis" if c == 1 else f"yaxis{c}"]
        assert (yaxis.scaleanchor, yaxis.scaleratio, yaxis.constrain) == (x, 1, "domain")
        assert layout["xaxis" if c == 1 else f"xaxis{c}"].constrain == "domain"


def test_axis_titles_name_the_axes_and_the_hover():
    maps = {"a": np.arange(10.0).reshape(5, 2), "b": np.ones((5, 2))}
    fig = plot_embeddings(maps, axis_label="PC")
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("PC 1", "PC 2")
    fig = plot_embeddings(maps, axis_titles=("x", "y"))  # uploaded coordinates: the CSV's columns
    assert [fig.layout[a].title.text for a in ("xaxis", "xaxis2", "yaxis")] == ["x", "x", "y"]
    assert fig.layout.yaxis2.title.text is None  # one y title for the row
    assert all("(x, y) = (" in trace.hovertemplate for trace in fig.data)
