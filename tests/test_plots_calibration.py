"""The calibration figures draw the numbers they are given."""

from __future__ import annotations

import numpy as np
import pytest

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
