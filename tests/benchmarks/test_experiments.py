"""Helpers of the benchmark experiments."""

from benchmarks.experiments import steps_to_reach


def test_steps_to_reach_uses_trailing_means():
    records = [{"step": s, "x": v} for s, v in enumerate([0.0, 1.0, 0.0, 1.0, 1.0, 1.0], start=1)]
    assert steps_to_reach(records, "x", 1.0, window=1) == 2       # first single value of 1
    assert steps_to_reach(records, "x", 1.0, window=3) == 6       # (1 + 1 + 1) / 3 at step 6
    assert steps_to_reach(records, "x", 2 / 3, window=3) == 4     # (1 + 0 + 1) / 3 at step 4
    assert steps_to_reach(records, "x", 1.5, window=1) is None
