"""The calibration figures draw the numbers they are given."""

from __future__ import annotations

import numpy as np
import pytest

from tests._colours import DARK_PAGE, LIGHT_PAGE, contrast
from vizlib.calibration import coverage_curve, reliability
from vizlib.plots import plot_reliability, plot_selective_accuracy


def _curves():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, 400)
    right = rng.uniform(size=400) < conf - 0.1
    scaled = np.clip(conf - 0.1, 0, 1)
    return (
        conf,
        right,
        {
            "as the model answers": reliability(conf, right, n_bins=10),
            "temperature-scaled": reliability(scaled, right, n_bins=10),
        },
    )


def test_the_reliability_diagram_draws_each_non_empty_bin_and_the_histogram_the_shares():
    conf, right, curves = _curves()
    fig = plot_reliability(curves, accuracy=float(right.mean()))
    for label, r in curves.items():
        points = next(t for t in fig.data if t.name == label and t.type == "scatter")
        full = r.counts > 0
        np.testing.assert_allclose(points.x, r.confidence[full])
        np.testing.assert_allclose(points.y, r.accuracy[full])
        bars = next(t for t in fig.data if t.legendgroup == label and t.type == "bar")
        np.testing.assert_allclose(bars.y, r.counts / r.counts.sum())
        assert bars.xaxis == "x2" and points.xaxis in (None, "x")
    names = [t.name for t in fig.data]
    assert f"accuracy {right.mean():.1%}" in names
    assert f"mean confidence {conf.mean():.1%}" in names
    assert "perfect calibration" in names
    with pytest.raises(ValueError, match="one or two"):
        plot_reliability({}, accuracy=0.5)


def test_the_selective_accuracy_line_is_the_coverage_curve():
    conf, right, _ = _curves()
    cover, acc, thr = coverage_curve(conf, right)
    fig = plot_selective_accuracy(cover, acc, thr, overall=float(right.mean()))
    np.testing.assert_allclose(fig.data[0].x, cover)
    np.testing.assert_allclose(fig.data[0].y, acc)
    assert f"confidence ≥ {thr[9]:.2%}" in fig.data[0].hovertext[9]
    assert fig.layout.yaxis.range[1] == pytest.approx(1.01)


def test_the_accuracy_line_reads_on_the_light_and_the_dark_theme_and_spares_the_tick_labels():
    conf, right, curves = _curves()
    fig = plot_reliability(curves, accuracy=float(right.mean()))
    line = next(t for t in fig.data if t.name.startswith("accuracy"))
    # Streamlit's light background, and its dark one (black on it was invisible)
    for background in (LIGHT_PAGE, DARK_PAGE):
        assert contrast(line.line.color, background) >= 3, background
    diagonal = next(t for t in fig.data if t.name == "perfect calibration")
    assert line.line.dash != diagonal.line.dash  # two grey keys in the legend, told apart
    # the shares' ticks on the far side: a dot at 100% (drawn past its axes) covered them
    assert fig.layout.yaxis2.side == "right"


def test_the_label_of_every_images_accuracy_sits_where_the_curve_does_not_cross_it():
    # the surest answers right, then the curve coming down late to the overall 25%: it ends on
    # the line from above, and crossed the label on top of it at the right
    correct = np.r_[np.ones(20, bool), np.zeros(60, bool), np.ones(5, bool), np.zeros(15, bool)]
    confidence = np.linspace(0.99, 0.3, 100)
    cover, acc, thr = coverage_curve(confidence, correct)
    overall = float(correct.mean())
    fig = plot_selective_accuracy(cover, acc, thr, overall=overall)
    label = fig.layout.annotations[0]
    assert label.text == f"every image: {overall:.1%}"
    assert label.yanchor == "top" and label.y == overall  # under the line
    bottom, top = fig.layout.yaxis.range
    height = 0.08 * (top - bottom)  # the label's, in accuracy
    assert bottom <= overall - 1.5 * height + 1e-9  # room for it above the x axis
    below = (acc < overall - 1e-9) & (acc >= overall - height)
    assert not below.any()  # no point of the curve passes through it
    # a line near 0%: no room under it, the label above, at the end the curve keeps off
    rare = np.r_[np.ones(3, bool), np.zeros(97, bool)]
    cover, acc, thr = coverage_curve(confidence, rare)
    label = plot_selective_accuracy(cover, acc, thr, overall=0.03).layout.annotations[0]
    assert label.yanchor == "bottom" and label.xanchor == "left"
