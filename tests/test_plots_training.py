"""Figures of training runs: what each panel holds, gaps for a diverged run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vizlib.plots import (
    plot_confusion_matrix,
    plot_gradient_flow,
    plot_misclassified,
    plot_run_comparison,
    plot_training_run,
)
from vizlib.train import EpochRecord


def _record(epoch: int, loss: float, acc: float, steps: int = 4) -> EpochRecord:
    return EpochRecord(
        epoch=epoch, step_losses=[loss + 0.1 * k for k in range(steps)],
        grad_norms=[1.0 + k for k in range(steps)], lrs=[0.01] * steps, train_loss=loss,
        train_accuracy=acc + 0.05, test_loss=loss + 0.2, test_accuracy=acc, seconds=1.0,
        diverged=not math.isfinite(loss),
    )  # fmt: skip


def test_a_run_draws_steps_within_epochs_and_each_epochs_means():
    records = [_record(1, 2.0, 0.5), _record(2, 1.0, 0.8)]
    fig = plot_training_run(records, epochs=10)
    by = {(t.name, t.xaxis): t for t in fig.data}
    steps = by[("each step (train)", "x")]
    assert list(steps.x) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    assert list(steps.y) == pytest.approx([2.0, 2.1, 2.2, 2.3, 1.0, 1.1, 1.2, 1.3])
    assert list(by[("train", "x")].y) == [2.0, 1.0] and list(by[("test", "x")].y) == [2.2, 1.2]
    assert list(by[("test", "x2")].y) == pytest.approx([50.0, 80.0])  # accuracy in %
    assert list(by[("gradient norm", "x3")].y) == [1.0, 2.0, 3.0, 4.0] * 2
    assert fig.layout.xaxis.range == (0, 10)  # the whole run's frame, filled as it trains
    assert fig.layout.yaxis3.type == "log"


def test_a_diverged_epoch_is_a_gap_not_a_point():
    records = [_record(1, 2.0, 0.5), _record(2, float("nan"), float("nan"))]
    fig = plot_training_run(records)
    test_acc = next(t for t in fig.data if t.name == "test" and t.xaxis == "x2")
    assert list(test_acc.y) == [50.0, None]


def test_runs_compare_by_epoch_one_colour_each():
    runs = {
        "#1 sgd": [_record(1, 2.0, 0.3)],
        "#2 adam": [_record(1, 1.0, 0.6), _record(2, 0.5, 0.9)],
    }
    fig = plot_run_comparison(runs)
    assert [t.name for t in fig.data] == ["#1 sgd", "#1 sgd", "#2 adam", "#2 adam"]
    assert list(fig.data[2].y) == pytest.approx([60.0, 90.0]) and list(fig.data[3].y) == [1.0, 0.5]
    assert fig.data[0].line.color != fig.data[2].line.color
    assert [t.showlegend for t in fig.data] == [True, False, True, False]
    # whole epochs on the axes (a 2-epoch run was ticked at 0.5, 1, 1.5), every marker whole
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis2.dtick == 1
    assert all(t.cliponaxis is False for t in fig.data)
    many = plot_run_comparison({"#1": [_record(e, 1.0, 0.5) for e in range(1, 31)]})
    assert many.layout.xaxis.dtick == 3  # 30 epochs: ten ticks, not thirty


def test_the_commonest_mistakes_name_every_tied_cell():
    from vizlib.plots.training import commonest_mistakes

    names = ["cat", "dog", "fox"]
    one = np.array([[8, 3, 0], [1, 5, 0], [2, 0, 1]])
    assert commonest_mistakes(one, names) == "The commonest mistake: cat answered as dog (3 times)."
    tied = np.array([[8, 3, 0], [3, 5, 0], [0, 3, 1]])  # three cells of 3, row by row
    assert commonest_mistakes(tied, names, noun="confusion") == (
        "The commonest confusions, 3 times each: cat answered as dog; dog answered as cat; "
        "fox answered as dog."
    )
    assert commonest_mistakes(tied, names, most=2).endswith(
        "cat answered as dog; dog answered as cat; and 1 more."
    )
    ones = np.array([[5, 1], [0, 5]])
    assert commonest_mistakes(ones, ["a", "b"]) == "The commonest mistake: a answered as b (once)."
    assert commonest_mistakes(np.diag([4, 5, 6]), names) == ""  # every answer right
    # an 'another class' column names no class: its 9 answers are not a commonest confusion
    outside = np.array([[8, 1, 9], [2, 5, 0]])
    assert commonest_mistakes(outside, ["a", "b"]) == (
        "The commonest mistake: b answered as a (2 times)."
    )


def test_the_confusion_matrix_holds_the_counts_rights_and_wrongs_apart():
    counts = np.array([[8, 2, 0], [0, 5, 0], [1, 0, 1]])  # 0 is 80% right, 2 50%
    fig = plot_confusion_matrix(counts, class_names=["cat", "dog", "fox"])
    right, wrong = fig.data
    assert (right.name, wrong.name) == ("right", "wrong")
    # the diagonal in one trace, the mistakes in the other: together the counts, once each
    np.testing.assert_array_equal(np.isnan(right.z), ~np.eye(3, dtype=bool))
    np.testing.assert_array_equal(np.where(np.isnan(right.z), wrong.z, right.z), counts)
    assert list(right.y) == ["cat", "dog", "fox"] and fig.layout.yaxis.autorange == "reversed"
    assert (right.zmax, wrong.zmax) == (8, 2)  # each on its own scale: one mistake shows
    assert wrong.text[0][1] == "2" and wrong.text[0][2] == "" and right.text[1][0] == ""
    assert (
        right.hovertext[0][0]
        == "true cat, predicted cat: 8 image(s)<br>80.0% of the 10 images of cat"
    )
    assert (
        wrong.hovertext[2][0]
        == "true fox, predicted cat: 1 image(s)<br>50.0% of the 2 images of fox"
    )
    margin = [a.text for a in fig.layout.annotations if a.yref == "y"]
    assert margin == ["80%", "100%", "50%"]  # each true class's accuracy
    # a class never answered right: see-through with a 0 written in (the palest blue was the
    # brightest cell in the dark theme); a class without images: nothing written
    never = plot_confusion_matrix(np.array([[0, 3, 0], [0, 5, 0], [0, 0, 0]]))
    assert never.data[0].colorscale[0][1] == "rgba(0,0,0,0)"
    zeros = [(a.x, a.y) for a in never.layout.annotations if a.text == "<b>0</b>"]
    assert zeros == [("0", "0")]
    empty = plot_confusion_matrix(np.zeros((2, 2), int))
    assert [a.text for a in empty.layout.annotations if a.yref == "y"] == ["–", "–"]
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)))


def test_each_mistake_is_captioned_with_both_classes_and_the_answers_probability():
    tiles = np.random.default_rng(0).uniform(size=(2, 1, 8, 8))
    probabilities = np.array([[0.1, 0.71, 0.19], [0.5, 0.2, 0.3]])
    fig = plot_misclassified(tiles, np.array([2, 1]), probabilities, ids=[17, 4])
    notes = [a.text for a in fig.layout.annotations]
    assert notes == ["true 2,<br>predicted 1<br>(71.0%)", "true 1,<br>predicted 0<br>(50.0%)"]
    assert fig.data[0].hovertemplate.startswith(
        "test image 17<br>true 2, predicted 1 (71.0%)<br>probability of 2: 19.0%"
    )
    assert fig.layout.xaxis.domain[1] > 0.45  # two columns for two images, not six


def test_gradient_flow_is_a_log_heatmap_of_layer_by_epoch_with_zeros_and_nans_written():
    a, b = _record(1, 2.0, 0.5), _record(2, math.nan, 0.1)
    a.layer_grad_norms = {"conv1": 1e-6, "fc1": 0.0, "fc2": 10.0}
    b.layer_grad_norms = {"conv1": 1e-5, "fc1": math.nan, "fc2": math.inf}
    a.layer_update_ratios = {"conv1": 1e-3, "fc1": 1e-9, "fc2": 0.5}
    b.layer_update_ratios = {"conv1": 2e-3, "fc1": math.nan, "fc2": 1.0}
    fig = plot_gradient_flow([a, b], epochs=5)
    grad, ratio = fig.data
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tick0 == 0  # whole epochs
    assert list(grad.y) == ["conv1", "fc1", "fc2"] and list(grad.x) == [1, 2]
    z = np.array(grad.z, float)  # (layers, epochs) log10, gaps where there is no logarithm
    np.testing.assert_allclose(z[0], [-6, -5])
    assert np.isnan(z[1]).all() and z[2, 0] == pytest.approx(1) and np.isnan(z[2, 1])
    assert np.array(grad.text).tolist() == [["", ""], ["0", "NaN"], ["", "inf"]]
    np.testing.assert_allclose(np.array(grad.customdata, float)[0], [1e-6, 1e-5])  # the hover
    # the ratio: centred on 1e-3 (white), three decades either side
    assert ratio.zmid == pytest.approx(-3) and (ratio.zmin, ratio.zmax) == pytest.approx((-6, 0))
    np.testing.assert_allclose(np.array(ratio.z, float)[0], np.log10([1e-3, 2e-3]))
    assert list(ratio.colorbar.ticktext) == ["1e-6", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1",
                                             "1e0"]  # fmt: skip
    assert list(grad.colorbar.ticktext) == ["1e-6", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1",
                                            "1e0", "1e1"]  # fmt: skip
    assert fig.layout.xaxis.range == (0.5, 5.5)  # the run's frame, filled as it trains
    # fifteen decades (all-zero initial weights): a label every third, not fifteen crammed
    a.layer_grad_norms["conv1"] = 1e-15
    ticks = plot_gradient_flow([a, b]).data[0].colorbar.ticktext
    assert list(ticks) == ["1e-15", "1e-12", "1e-9", "1e-6", "1e-3", "1e0"]
    assert fig.layout.yaxis.autorange == "reversed"  # the input's end at the top


def test_log_axes_write_their_labels_in_full():
    """Plotly's 'D2' ticks wrote 0.05 and 5 alike as '5' on the gradient-norm panel."""
    import dataclasses

    record = dataclasses.replace(_record(1, 2.0, 0.5), grad_norms=[0.03, 0.3, 3.0, 0.1])
    axis = plot_training_run([record]).layout.yaxis3
    assert axis.type == "log"
    assert list(axis.ticktext) == ["0.05", "0.1", "0.2", "0.5", "1", "2"]
    assert list(axis.tickvals) == pytest.approx([0.05, 0.1, 0.2, 0.5, 1.0, 2.0])
    runs = {"a": [_record(1, 0.02, 0.5), _record(2, 2.0, 0.9)]}
    losses = plot_run_comparison(runs).layout.yaxis2
    assert "0.05" in losses.ticktext and "5" not in losses.ticktext


def _diverging(steps: list[float]) -> list[EpochRecord]:
    """One epoch whose step losses are ``steps`` (the loss panel's own trace)."""
    n = len(steps)
    return [EpochRecord(epoch=1, step_losses=steps, grad_norms=[1.0] * n, lrs=[10.0] * n,
                        train_loss=float(np.mean(steps)), train_accuracy=0.1, test_loss=2.3,
                        test_accuracy=0.1, seconds=1.0,
                        diverged=not all(map(math.isfinite, steps)))]  # fmt: skip


def test_a_loss_that_blows_up_goes_on_a_log_axis_that_keeps_the_first_steps_apart():
    """SGD at lr 10 (lenet): 2.3, 74, 2.5e8, 1.1e21 ... then NaN. On the linear axis from 0
    the first steps were a flat line at 0 under 1.1e21."""
    steps = [2.32, 2.1, 74.4, 2.5e8, 1.1e21, 1.4e17, math.nan, math.nan]
    fig = plot_training_run(_diverging(steps))
    loss_axis = fig.layout.yaxis
    assert loss_axis.type == "log"
    # plotly frames every positive loss: no range that would cut the first steps off
    assert loss_axis.range is None and max(loss_axis.tickvals) >= 1e18  # labels to the top
    # where the losses stop being numbers is marked (the 7th of 8 steps: epoch 0.875)
    notes = [a.text for a in fig.layout.annotations if "not a number" in a.text]
    assert notes == ["loss not a number<br>from epoch 0.88"]
    assert any(s.type == "line" and s.x0 == pytest.approx(0.875) for s in fig.layout.shapes)


def test_a_normal_runs_loss_axis_stays_linear_from_zero():
    fig = plot_training_run([_record(1, 2.0, 0.5), _record(2, 0.02, 0.9)])  # 100x down: fine
    assert fig.layout.yaxis.type is None and fig.layout.yaxis.rangemode == "tozero"
    assert not any("not a number" in a.text for a in fig.layout.annotations)
    assert not fig.layout.shapes
    # a loss that rises a little (a bump at a high rate) is no blow-up either
    assert plot_training_run(_diverging([2.3, 5.0, 40.0, 1.0])).layout.yaxis.type is None


def test_a_run_that_blew_up_leaves_the_comparison_framed_to_the_others():
    """A run whose first epoch averaged 5.3e19 (SGD, lr 10) beside one going 1.5 -> 0.5: its
    blow-up is a triangle on the top edge, and the frame spans the others' losses."""
    healthy = [_record(1, 1.5, 0.6), _record(2, 0.8, 0.8), _record(3, 0.5, 0.9)]
    blown = [_record(1, 5.3e19, 0.1), _record(2, 2.47, 0.1), _record(3, 2.46, 0.1)]
    fig = plot_run_comparison({"#1 adam": healthy, "#2 sgd": blown})
    low, high = fig.layout.yaxis2.range  # log10 of the loss
    assert 10**low < 0.5 and 2.47 < 10**high < 10  # every in-frame loss shows, and only those
    off = [t for t in fig.data if t.mode == "markers"]
    assert len(off) == 1 and off[0].name == "#2 sgd" and list(off[0].x) == [1]
    assert list(off[0].y) == pytest.approx([10**high]) and off[0].customdata[0] == 5.3e19
    line = next(
        t for t in fig.data if t.name == "#2 sgd" and t.xaxis == "x2" and t.mode != "markers"
    )
    assert list(line.y) == [None, 2.47, 2.46]  # the blown-up epoch is the triangle, not a point
    assert "off the scale, up to #2 5.3e+19" in fig.layout.annotations[1].text
    # runs without a blow-up: no triangles, the range left to plotly and log_ticks
    calm = plot_run_comparison({"#1 adam": healthy, "#2 sgd": blown[1:]})
    assert calm.layout.yaxis2.range is None and all(t.mode != "markers" for t in calm.data)
    assert calm.layout.annotations[1].text == "training loss (log axis)"


def test_a_confusion_matrix_can_end_in_a_column_for_the_other_classes():
    """A 1000-class model on a folder of two of its classes: rows the two, columns the two and
    'another class'; the accuracy stays the diagonal over each row's images."""
    counts = np.array([[3, 1, 2], [0, 4, 0]])
    fig = plot_confusion_matrix(counts, class_names=["tench", "goldfish"], extra_columns=["other"])
    right, wrong = fig.data
    assert list(right.x) == ["tench", "goldfish", "other"] and list(right.y) == [
        "tench",
        "goldfish",
    ]
    np.testing.assert_array_equal(np.isnan(right.z), ~np.eye(2, 3, dtype=bool))
    np.testing.assert_array_equal(np.where(np.isnan(right.z), wrong.z, right.z), counts)
    assert "true tench, predicted other: 2 image(s)" in wrong.hovertext[0][2]
    margin = [a.text for a in fig.layout.annotations if a.yref == "y"]
    assert margin == ["50%", "100%"]
    with pytest.raises(ValueError, match=r"\(K, K \+ 1\)"):
        plot_confusion_matrix(np.zeros((2, 2), int), extra_columns=["other"])


def test_long_class_names_wrap_under_a_mistake_instead_of_being_cut():
    names = ["great white shark", "Greater Swiss Mountain dog", "cat"]
    probabilities = np.array([[0.05, 0.9, 0.05]])
    fig = plot_misclassified(np.zeros((1, 3, 8, 8)), np.array([0]), probabilities, ids=[4],
                             class_names=names, id_prefix="image")  # fmt: skip
    caption = fig.layout.annotations[0].text.split("<br>")
    assert caption == ["true great white", "shark,", "predicted", "Greater Swiss", "Mountain dog",
                       "(90.0%)"]  # fmt: skip
    assert "…" not in fig.layout.annotations[0].text
    assert fig.data[0].hovertemplate.startswith("image 4<br>")


def test_a_small_confusion_matrix_gets_a_small_figure():
    assert plot_confusion_matrix(np.eye(3, dtype=int)).layout.height < 300
    assert plot_confusion_matrix(np.eye(10, dtype=int)).layout.height == 460


def test_a_confident_mistake_is_never_written_as_certain():
    from vizlib.plots import confidence_percent, plot_misclassified

    # whole percent wrote 0.996 as "100%"; one decimal writes 0.99996 as "100.0%"
    assert [confidence_percent(p) for p in (0.99996, 1.0, 0.9995, 0.9994, 0.713, 0.0004)] == [
        ">99.9%",
        ">99.9%",
        ">99.9%",
        "99.9%",
        "71.3%",
        "<0.1%",
    ]
    probabilities = np.array([[0.00004, 0.99996, 0.0], [0.2, 0.1, 0.7]])
    fig = plot_misclassified(
        np.zeros((2, 1, 8, 8)), np.array([0, 1]), probabilities, ids=[17, 4], id_prefix="image"
    )
    notes = [a.text for a in fig.layout.annotations]
    assert notes == ["true 0,<br>predicted 1<br>(>99.9%)", "true 1,<br>predicted 2<br>(70.0%)"]
    assert fig.data[0].hovertemplate.startswith(
        "image 17<br>true 0, predicted 1 (>99.9%)<br>probability of 0: <0.1%"
    )
    with pytest.raises(ValueError, match="2 tiles"):
        plot_misclassified(np.zeros((2, 1, 8, 8)), np.array([0]), probabilities, ids=[1, 2])
