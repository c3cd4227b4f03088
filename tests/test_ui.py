"""The page helpers in ``ui`` that hold no widget."""

from __future__ import annotations

import ui


def test_pace_is_due_at_once_then_once_the_interval_has_passed():
    now = [100.0]
    pace = ui.Pace(1.0, clock=lambda: now[0])
    seen = []
    for t in (100.0, 100.3, 100.99, 101.0, 101.5, 101.9, 102.5, 104.0):
        now[0] = t
        seen.append(pace.due())
    # drawn at 100, then 101 (1 s later), then 102.5 (the first call 1 s after 101), then 104
    assert seen == [True, False, False, True, False, False, True, True]


def test_pace_of_zero_is_always_due():
    pace = ui.Pace(0.0, clock=lambda: 5.0)
    assert [pace.due() for _ in range(3)] == [True, True, True]
