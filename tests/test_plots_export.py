"""Downloads: arrays come back from the .npy bytes exactly, and nothing is ever pickled."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from vizlib.plots.export import to_npy_bytes, to_png_bytes


def test_npy_round_trip_keeps_values_and_dtype():
    for values in (np.arange(12, dtype=np.float64).reshape(3, 4), np.eye(3, dtype=np.float32)):
        loaded = np.load(io.BytesIO(to_npy_bytes(values)), allow_pickle=False)
        assert loaded.dtype == values.dtype
        np.testing.assert_array_equal(loaded, values)


def test_npy_converts_tensors_and_dtype_on_request():
    loaded = np.load(io.BytesIO(to_npy_bytes(torch.ones(2, 2), dtype=np.float16)))
    assert loaded.dtype == np.float16 and loaded.sum() == 4


def test_npy_refuses_objects():
    with pytest.raises(ValueError, match="pickle"):
        to_npy_bytes(np.array([{"a": 1}], dtype=object))


def test_png_scales_to_full_grey_range():
    png = Image.open(io.BytesIO(to_png_bytes(np.array([[0.0, 0.5], [1.0, 2.0]]))))
    assert png.mode == "L" and png.size == (2, 2)
    assert np.asarray(png).tolist() == [[0, 64], [128, 255]]


def _rgb_pixels(height: int, width: int) -> np.ndarray:
    """Return distinct 8-bit RGB pixels (height, width, 3) holding both 0 and 255, so min-max
    scaling leaves them as they are."""
    pixels = (np.arange(height * width * 3).reshape(height, width, 3) * 37) % 256
    pixels.flat[0], pixels.flat[1] = 0, 255
    return pixels.astype(np.uint8)


def _channels_first(pixels: np.ndarray) -> np.ndarray:
    """Return (H, W, C) pixels as (C, H, W), element by element."""
    height, width, channels = pixels.shape
    out = np.empty((channels, height, width))
    for c in range(channels):
        for y in range(height):
            for x in range(width):
                out[c, y, x] = pixels[y, x, c]
    return out


@pytest.mark.parametrize("height, width", [(5, 3), (3, 5), (3, 3), (3, 1), (1, 3), (7, 4)])
def test_png_of_a_colour_image_in_either_layout(height, width):
    """An output 3 pixels wide, (3, H, 3), is RGB like any other: it stayed (C, H, W) and
    came out H pixels wide and 3 high, its colours read from the wrong axis."""
    pixels = _rgb_pixels(height, width)
    for values, channels_last in [(_channels_first(pixels), False), (pixels, True)]:
        png = Image.open(io.BytesIO(to_png_bytes(values, channels_last=channels_last)))
        assert png.mode == "RGB" and png.size == (width, height)
        np.testing.assert_array_equal(np.asarray(png), pixels)


def test_png_of_a_filtered_colour_image_3_pixels_wide():
    """The Playground's case: a colour photo 5 wide, filtered by a 3x3 kernel, is (3, H, 3)."""
    from vizlib import conv

    image = np.random.default_rng(1).random((3, 10, 5))
    out = conv.apply_kernel(image, np.ones((3, 3)) / 9).numpy()
    assert out.shape == (3, 8, 3)
    png = np.asarray(Image.open(io.BytesIO(to_png_bytes(out))))
    assert png.shape == (8, 3, 3)
    lo, hi = out.min(), out.max()
    for c, y, x in np.ndindex(*out.shape):
        assert png[y, x, c] == round(255 * (out[c, y, x] - lo) / (hi - lo))


@pytest.mark.parametrize(
    "values, channels_last, message",
    [
        (np.zeros((5, 4, 3)), False, "has 5"),  # (H, W, 3) passed as (C, H, W)
        (np.zeros((3, 4, 5)), True, "has 5"),  # (C, H, W) passed as (H, W, C)
        (np.zeros((2, 4, 4)), False, r"1 \(grey\) or 3 \(RGB\) channels"),
        (np.zeros((4,)), False, "shape"),
        (np.zeros((0, 4)), False, "at least one pixel"),
    ],
)
def test_png_refuses_what_it_cannot_draw(values, channels_last, message):
    with pytest.raises(ValueError, match=message):
        to_png_bytes(values, channels_last=channels_last)


def test_png_of_one_channel_is_grey_in_either_layout():
    grey = np.array([[0.0, 0.5], [1.0, 2.0]])
    for values, channels_last in [(grey[None], False), (grey[..., None], True)]:
        png = Image.open(io.BytesIO(to_png_bytes(values, channels_last=channels_last)))
        assert png.mode == "L" and np.asarray(png).tolist() == [[0, 64], [128, 255]]
