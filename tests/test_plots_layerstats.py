"""Figures of vizlib.layerstats: what each panel and histogram line holds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vizlib.plots import plot_activation_histograms, plot_layer_statistics


def _row(layer: str, std: float, zeros: float, grad: float, dead: int = 0) -> dict:
    return {
        "layer": layer, "type": "ReLU", "output_shape": (8, 4, 4), "mean": 0.0, "std": std,
        "min": 0.0, "max": 1.0, "zero_fraction": zeros, "channels": 8, "dead_channels": dead,
        "nonfinite": 0, "grad_rms": grad,
    }  # fmt: skip


def test_depth_panels_hold_the_rows_values_per_series():
    trained = [_row("a", 1.0, 0.25, 0.1), _row("b", 0.0, 0.5, 0.01, dead=3)]
    untrained = [_row("a", 0.5, 0.1, math.nan), _row("b", 0.2, 0.2, 0.02)]
    fig = plot_layer_statistics({"trained": trained, "at initialisation": untrained})
    assert len(fig.data) == 6  # 3 panels x 2 series
    std, zeros, grad = fig.data[:3]  # the trained series, panel by panel
    assert list(std.x) == [1, 2]
    assert std.y[0] == 1.0 and math.isnan(std.y[1])  # 0 has no place on the log axis
    assert list(zeros.y) == [25.0, 50.0]
    assert "3 of 8 channels 0 for every image" in zeros.customdata[1]
    assert list(grad.y) == [0.1, 0.01]
    assert "b (ReLU, 8×4×4)" in std.text[1] and "trained" in std.text[1]
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis3.type == "log"
    assert fig.layout.yaxis2.type == "linear"
    assert [t.showlegend for t in fig.data] == [True, False, False] * 2
    no_grads = plot_layer_statistics({"trained": trained}, gradients=False)
    assert len(no_grads.data) == 2 and "yaxis3" not in no_grads.layout


def test_histograms_are_shares_of_the_nonzero_values_on_one_range():
    rng = np.random.default_rng(0)
    relu = np.maximum(rng.normal(size=10_000), 0)  # about half exact zeros
    wide = rng.normal(scale=3.0, size=5_000)
    fig = plot_activation_histograms({"relu": relu, "wide": wide}, bins=40)
    a, b = fig.data
    np.testing.assert_allclose(a.x, b.x)  # one x range for every line
    assert sum(a.y) == pytest.approx(100) and sum(b.y) == pytest.approx(100)
    zeros = (relu == 0).mean()
    assert a.name == f"relu ({zeros:.0%} zeros left out)" and b.name == "wide"
    low, high = np.percentile(np.concatenate([relu[relu != 0], wide]), [0.5, 99.5])
    assert a.x[0] == pytest.approx(low + (high - low) / 80)  # the first bin's centre
    counts, _ = np.histogram(np.clip(wide, low, high), bins=np.linspace(low, high, 41))
    np.testing.assert_allclose(b.y, 100 * counts / wide.size)
    exact = plot_activation_histograms({"relu": relu, "wide": wide}, zero_shares={"relu": 0.324})
    assert exact.data[0].name == "relu (32% zeros left out)"  # over all values, not the sample
    with_zeros = plot_activation_histograms({"relu": relu}, drop_zeros=False, log_y=True)
    assert with_zeros.data[0].name == "relu" and with_zeros.layout.yaxis.type == "log"
    # each tick label is its value ("0.5", not plotly's "5" below 1), over the shares drawn
    y = with_zeros.layout.yaxis
    assert list(y.ticktext) == [f"{t:.3g}" for t in y.tickvals] and len(y.tickvals) >= 3
    shown = np.asarray(with_zeros.data[0].y, dtype=float)
    shown = shown[np.isfinite(shown)]
    assert min(y.tickvals) <= shown.max() and max(y.tickvals) >= shown.min()
    assert "outside the range" in b.hovertemplate


def test_log_axes_write_each_label_in_full():
    """Plotly's 'D2' ticks labelled 0.5 and 5 both '5' (a std from 0.07 to 6.7 read '5, 2, 1, 5,
    2, 0.1'); now each label is its value, and a range of many decades gets powers of ten."""
    rows = [_row(str(i), std, 0.0, grad) for i, (std, grad) in enumerate(
        [(6.7, 1e-30), (1.0, 1e-12), (0.07, 1.0)]
    )]  # fmt: skip
    layout = plot_layer_statistics({"trained": rows}).layout
    assert list(layout.yaxis.ticktext) == ["0.1", "0.2", "0.5", "1", "2", "5"]
    assert list(layout.yaxis.tickvals) == [0.1, 0.2, 0.5, 1.0, 2.0, 5.0]
    grads = list(layout.yaxis3.tickvals)
    assert 3 <= len(grads) <= 9 and all(math.log10(t).is_integer() for t in grads)
    assert len(set(layout.yaxis3.ticktext)) == len(grads)
    # a short range (or one point, as vit_b_16's one gradient) is widened to 3 labels, which
    # plotly's own ticks wrote '2, 0.1, 5, 2, 0.01, 5' again
    narrow = plot_layer_statistics({"trained": [_row("a", 0.97, 0.0, 0.03)]}).layout
    assert list(narrow.yaxis.ticktext) == ["0.5", "1", "2"]
    assert narrow.yaxis.range[0] < math.log10(0.5) and narrow.yaxis.range[1] > math.log10(2)
    assert list(narrow.yaxis3.ticktext) == ["0.01", "0.02", "0.05", "0.1"]


def test_the_histogram_axis_title_fits_half_a_1024_pixel_page():
    """At 1024 px with the untrained comparison each histogram is 274 px wide: its x title was
    cut at 'output value (80 bins of 0.13, zeros left o'. The bin width is in the hover now."""
    values = np.random.default_rng(1).normal(size=1_000)
    fig = plot_activation_histograms({"a": values}, bins=50)
    assert fig.layout.xaxis.title.text == "output value (zeros left out)"
    width = fig.data[0].x[1] - fig.data[0].x[0]
    assert f"(a bin {width:.3g} wide)" in fig.data[0].hovertemplate
