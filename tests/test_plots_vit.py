"""vizlib.plots.vit: the mean-attention-distance figure."""

from __future__ import annotations

import numpy as np

from vizlib.plots import plot_attention_distance


def test_distance_plot_has_one_dot_per_head_and_the_baseline_beside_the_plot():
    d = np.arange(24, dtype=float).reshape(4, 6)  # (layers, heads) in pixels
    fig = plot_attention_distance(d, baseline=116.49)
    (dots,) = fig.data
    assert len(dots.y) == 24 and sorted(dots.y) == sorted(d.flatten())
    assert sorted(set(np.round(dots.x).astype(int))) == [1, 2, 3, 4]  # layers, 1-based
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 116.49 and line.line.dash == "dash"
    (label,) = fig.layout.annotations
    # beside the plot area, not on the late layers' dots that approach the line
    assert label.xref == "paper" and label.x >= 1.0 and label.xanchor == "left"
    assert "116.5 px" in label.text
    assert plot_attention_distance(d).layout.annotations == ()
