"""Crash consistency of a run directory: real training processes killed with SIGKILL at named
points (THEORYGRPO_FAULT, see theorygrpo_jax.faults), a corrupted newest checkpoint and a
SIGTERM, each followed by a resume, end with exactly the state, statistics history, metrics,
catalogue and best model of an uninterrupted run. Plus the ownership of a run directory: a
second run on it, a new run into a used one, failed resumes.

The processes share one uninterrupted reference run and XLA's compilation cache
(tests/conftest.py); scripts/fault_check.py is the longer, randomised version.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from theorygrpo_jax import faults, rundir
from theorygrpo_jax.config import load_config
from theorygrpo_jax.metrics import read_metrics

STEPS, SAVE, LOG = 12, 6, 1
# A tiny run that saves often: every step logged (so a best model whenever the mean reward
# rises), a checkpoint every 6 steps, 2 kept; curriculum and replay on, so that their state
# is part of what must resume exactly.
ARGS = ["--config", "smoke", "--num_episodes", str(STEPS), "--save_interval", str(SAVE),
        "--log_interval", str(LOG), "--eval_episodes", "4", "--use_curriculum",
        "--use_priority_buffer", "--set", "train.keep_checkpoints=2"]
# In chain order: each kill comes at the first step after the newest checkpoint at which a run
# reaches the point (faults.schedule); the best-model points first, while the mean reward
# still rises. The last two are spares, used only if a point above had no such step left.
KILLS = ["after_checkpoint", "in_best_copy", "mid_swap", "best_staged", "after_swap",
         "record_start", "after_catalogue", "after_metrics", "after_stats",
         "in_checkpoint_write", "after_evict", "record_end"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("reference") / "run"
    proc = faults.run_training(run, ARGS)
    assert proc.returncode == 0, proc.stderr
    return run


def _next_step(steps: list[int], after: int) -> int | None:
    return next((s for s in steps if s > after), None)


def _corrupt_then_terminate(run: Path) -> None:
    """Corrupt the newest checkpoint; the resume must fall back to the one before it, saying so
    in one line, and set the corrupt one aside. A SIGTERM while it records the step after
    that one then saves a checkpoint at the next step boundary and exits cleanly."""
    corrupt = faults.corrupt_newest(run)
    fallback = faults.checkpoint_steps_of(run)[-2]
    proc = faults.run_training(run, ARGS, fault=f"record_start:{fallback + 1}:term", resume=True)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    # (a second warning line may say that best_model, newer than the fallback, is put back)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert warnings[0].startswith(f"warning: {corrupt}/state")
    assert f"falling back to step {fallback}" in warnings[0]
    assert (corrupt.parent / f"{corrupt.name}.corrupt").is_dir()
    assert "Traceback" not in proc.stderr
    # the signal came while step fallback + 1 was recorded: the next boundary saved
    assert faults.newest_step(run) == min(fallback + 2, STEPS)


def test_killed_and_resumed_run_equals_an_uninterrupted_one(reference, tmp_path):
    when = faults.schedule(read_metrics(reference), SAVE, LOG, STEPS)
    run = tmp_path / "run"
    killed: list[str] = []
    for point in KILLS:
        if len(killed) == 10:
            break
        step = _next_step(when[point], faults.newest_step(run) if killed else 0)
        if step is None:
            continue
        proc = faults.run_training(run, ARGS, fault=f"{point}:{step}", resume=bool(killed))
        assert proc.returncode == -signal.SIGKILL, (point, step, proc.stderr[-2000:])
        killed.append(f"{point}:{step}")
        if len(killed) == 4:
            _corrupt_then_terminate(run)
    assert len(killed) == 10, killed
    proc = faults.run_training(run, ARGS, resume=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected, got = faults.snapshot(reference), faults.snapshot(run)
    assert faults.differences(expected, got) == [], killed
    assert got["metrics_records"] == STEPS        # one record per step: nothing left over


def _train(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "theorygrpo_jax.train", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def _listing(path: Path) -> dict[str, bytes | None]:
    """Every file under `path` with its content (None for a directory)."""
    return {str(p.relative_to(path)): None if p.is_dir() else p.read_bytes()
            for p in sorted(path.rglob("*"))}


def test_a_second_run_on_a_held_directory_stops_naming_the_holder(reference):
    with rundir.RunLock(reference):   # this process holds the run, as a training would
        proc = _train(*ARGS, "--output_dir", str(reference), "--resume", str(reference))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "in use by another run" in proc.stderr and f"pid {os.getpid()} on host" in proc.stderr


def test_a_new_run_into_a_used_directory_stops_and_changes_nothing(reference):
    before = _listing(reference)
    proc = _train(*ARGS, "--output_dir", str(reference))
    assert proc.returncode == 2, proc.stderr
    assert "holds a run already" in proc.stderr and "--overwrite" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert _listing(reference) == before


def test_failed_resumes_change_nothing(reference, tmp_path):
    before = _listing(reference)
    # another model: the checkpoint does not fit (and no config.yaml was written before)
    proc = _train(*ARGS, "--resume", str(reference), "--set", "model.d_model=64",
                  "--set", "model.n_heads=2")
    assert proc.returncode == 2 and "shape" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert _listing(reference) == before
    # a resume of nothing creates nothing; a resume of a file is one line
    from theorygrpo_jax import train as T
    from theorygrpo_jax.checkpoint import CheckpointError
    config = load_config(reference / "config.yaml")
    with pytest.raises(CheckpointError, match="no such file or directory"):
        T.train(config, tmp_path / "nope", resume=str(tmp_path / "nope"), log=lambda _: None)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="not a directory") as err:
        T.train(config, tmp_path / "file", resume=str(tmp_path / "file"), log=lambda _: None)
    assert "\n" not in str(err.value) and (tmp_path / "file").read_text() == "x"
