"""vizlib.kernels: presets by hand, their explanations, the Gaussian, custom-kernel checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from vizlib import conv, kernels


def test_every_preset_has_an_explanation_and_builds():
    assert set(kernels.kernel_names()) >= {
        "mean", "gaussian", "sobel_x", "sobel_y", "prewitt_x", "prewitt_y",
        "laplacian", "sharpen", "emboss", "identity",
    }  # fmt: skip
    for name in kernels.kernel_names():
        k = kernels.get_kernel(name)
        assert k.ndim == 2 and np.isfinite(k).all(), name
        assert len(kernels.describe_kernel(name)) > 20
    assert "smooth" in kernels.describe_kernel("mean")
    assert "physically" in kernels.describe_kernel("gaussian")
    assert "zero-sum" in kernels.describe_kernel("sobel_x")


def test_known_kernels_by_hand():
    np.testing.assert_array_equal(
        kernels.get_kernel("sobel_x"), [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    )
    np.testing.assert_array_equal(
        kernels.get_kernel("laplacian"), [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    )
    np.testing.assert_allclose(kernels.get_kernel("mean", size=3), np.full((3, 3), 1 / 9))
    ident = kernels.get_kernel("identity", size=5)
    assert ident.sum() == 1 and ident[2, 2] == 1
    assert kernels.get_kernel("sharpen").sum() == 1


def test_zero_sum_kernels_find_edges():
    for name in ("sobel_x", "sobel_y", "prewitt_x", "prewitt_y", "laplacian"):
        assert kernels.is_zero_sum(kernels.get_kernel(name)), name
    for name in ("mean", "gaussian", "identity", "sharpen"):
        assert not kernels.is_zero_sum(kernels.get_kernel(name)), name
    flat = np.full((8, 8), 3.0)
    assert np.allclose(conv.apply_kernel(flat, kernels.get_kernel("sobel_x")).numpy(), 0)
    step = np.tile((np.arange(8) >= 4).astype(float), (8, 1))  # vertical edge between cols 3, 4
    response = conv.apply_kernel(step, kernels.get_kernel("sobel_x")).numpy()  # (6, 6)
    assert np.all(response[:, 2:4] == 4) and np.all(response[:, [0, 1, 4, 5]] == 0)


def test_gaussian_matches_scipy_and_sigma():
    k = kernels.gaussian_kernel(9, 1.5)
    assert k.sum() == pytest.approx(1.0)
    impulse = np.zeros((9, 9))
    impulse[4, 4] = 1
    expected = ndimage.gaussian_filter(impulse, 1.5, truncate=4 / 1.5, mode="constant")
    np.testing.assert_allclose(k, expected / expected.sum(), atol=1e-3)
    # the variance along one axis is sigma^2 (up to truncation)
    r = np.arange(9) - 4
    assert (k.sum(axis=0) * r**2).sum() == pytest.approx(1.5**2, rel=0.05)
    with pytest.raises(ValueError, match="Sigma"):
        kernels.gaussian_kernel(5, 0)
    with pytest.raises(ValueError, match="at most 15"):
        kernels.get_kernel("mean", size=16)
    with pytest.raises(ValueError, match="Unknown kernel"):
        kernels.get_kernel("blur")


def test_parse_custom_kernel_accepts_numbers_and_text():
    k = kernels.parse_custom_kernel([["1", " -2.5 "], [3, 4e-1]])
    np.testing.assert_array_equal(k, [[1, -2.5], [3, 0.4]])
    df = pd.DataFrame([["0", "1"], ["1", "0"]])
    np.testing.assert_array_equal(kernels.parse_custom_kernel(df), [[0, 1], [1, 0]])


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([["1", "a"], ["0", "0"]], "'a' at row 1, column 2, which is not a number"),
        ([["1", ""], ["0", "0"]], "empty cell at row 1, column 2"),
        ([["1", None], ["0", "0"]], "empty cell"),
        ([["nan", "1"]], "finite"),
        ([["inf"]], "finite"),
        ([[]], "non-empty"),
        ([1, 2, 3], "non-empty table"),
        ([["1"] * 16], "at most 15×15"),
    ],
)
def test_parse_custom_kernel_rejects_bad_cells(table, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        kernels.parse_custom_kernel(table)


def test_parse_custom_kernel_refuses_numbers_beyond_float32():
    # torch filters in float32: 1e39 became inf there and the filter failed with a message
    # about infinite values the user never typed
    assert kernels.parse_custom_kernel([["3e38", "-3e38"]]).tolist() == [[3e38, -3e38]]
    with pytest.raises(ValueError, match=r"'1e39' at row 1, column 2: beyond ±3.4e38"):
        kernels.parse_custom_kernel([["1", "1e39"]])
