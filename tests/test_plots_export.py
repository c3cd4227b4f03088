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
