"""Figures of training runs: what each panel holds, gaps for a diverged run."""

from __future__ import annotations

import math

import pytest

from vizlib.plots import plot_run_comparison, plot_training_run
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
