"""Fault injection at named points of a run, for the crash-consistency tests (tests/faults/,
scripts/fault_check.py).

    THEORYGRPO_FAULT=<point>:<step>[:term][,<point>:<step>[:term] ...]

When the recording of step <step> reaches <point>, the process kills itself with SIGKILL
(as `kill -9` or the OOM killer would), or with `:term` sends itself SIGTERM (as a job
scheduler would) and carries on. Unset, `fault_point` is one environment lookup and
nothing else: the points change no behaviour. The rest of the module is the check that uses
them: `run_training` (one process, with or without a fault), `schedule` (when a run reaches
each point), `snapshot` / `differences` (a run directory against an uninterrupted run's),
`random_chain` and `main` (scripts/fault_check.py).

The points are `POINTS`, in the order a step reaches them (recorder.Recorder, then
checkpoint.Checkpointer).
"""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import subprocess

    import numpy as np

ENV = "THEORYGRPO_FAULT"

POINTS = (
    "record_start",         # the step is computed; nothing of it is written yet
    "after_catalogue",      # the catalogue holds the step's discoveries
    "after_metrics",        # metrics.jsonl holds the step's record
    "after_stats",          # training_stats.json is written (steps that log or save)
    "in_checkpoint_write",  # orbax wrote the state into its tmp dir, not yet committed
    "after_checkpoint",     # checkpoints/<step> is committed; best_model not yet replaced
    "in_best_copy",         # best_model's replacement copied into its tmp dir, not renamed
    "best_staged",          # best_model.next is complete; the swap has not begun
    "mid_swap",             # between the two renames of a swap (<name>.old and <name>.next)
    "after_swap",           # swapped in; <name>.old not yet removed
    "after_evict",          # older step checkpoints evicted
    "record_end",           # everything of the step is written (plots included)
)


def fault_point(name: str, step: int) -> None:
    """Kill (or SIGTERM) this process when THEORYGRPO_FAULT names this point at this step."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    assert name in POINTS, name
    for item in spec.split(","):
        point, _, rest = item.strip().partition(":")
        at, _, action = rest.partition(":")
        if point == name and at == str(int(step)):
            os.kill(os.getpid(), signal.SIGTERM if action == "term" else signal.SIGKILL)


# --------------------------------------------------------------------------- the check

# When each point is reached: every step, steps that save a checkpoint, steps that save a
# best model (the first save of best_model swaps nothing in, but still passes the points).
EVERY_STEP = ("record_start", "after_catalogue", "after_metrics", "after_stats", "record_end")
SAVING = ("in_checkpoint_write", "after_checkpoint", "after_evict")
BEST = ("in_best_copy", "best_staged", "mid_swap", "after_swap")
TIMING_KEYS = ("step_seconds",)   # the only values two runs of one config may differ in


def train_command(run_dir: str | Path, args: list[str], resume: bool = False) -> list[str]:
    """`python -m theorygrpo_jax.train ARGS --output_dir RUN` and `--resume RUN`, or without
    `resume` `--overwrite` (a run killed before its first checkpoint starts again)."""
    import sys

    command = [sys.executable, "-m", "theorygrpo_jax.train", *args, "--output_dir", str(run_dir)]
    return command + (["--resume", str(run_dir)] if resume else ["--overwrite"])


def run_training(run_dir: str | Path, args: list[str], fault: str | None = None,
                 resume: bool = False, timeout: float = 600) -> "subprocess.CompletedProcess":
    """One training process (THEORYGRPO_FAULT=fault when given); its exit status is -9 when the
    fault killed it."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != ENV}
    if fault:
        env[ENV] = fault
    return subprocess.run(train_command(run_dir, args, resume), capture_output=True, text=True,
                          env=env, timeout=timeout)


def schedule(metrics: list[dict], save_interval: int, log_interval: int,
             num_episodes: int) -> dict[str, list[int]]:
    """For each point, the steps at which a run reaches it (from an uninterrupted run's
    metrics): every step; checkpoint steps (save_interval, the last step, a best model); best
    model steps (a logged step whose best mean reward rose above the saved best's)."""
    steps = [r["step"] for r in metrics]
    best, saved, improved = -math.inf, -math.inf, []
    for r in metrics:
        best = max(best, r["total_reward"])
        if (r["step"] % log_interval == 0 or r["step"] == num_episodes) and best > saved:
            saved = best
            improved.append(r["step"])
    saving = sorted(set(s for s in steps if s % save_interval == 0 or s == num_episodes)
                    | set(improved))
    return {**{p: steps for p in EVERY_STEP}, **{p: saving for p in SAVING},
            **{p: improved for p in BEST}}


def checkpoint_steps_of(run_dir: str | Path) -> list[int]:
    """The committed step checkpoints of a run directory, ascending."""
    from .checkpoint import CHECKPOINTS_DIR, checkpoint_steps

    return checkpoint_steps(Path(run_dir) / CHECKPOINTS_DIR)


def newest_step(run_dir: str | Path) -> int:
    """The newest committed step checkpoint of a run directory (0: none)."""
    steps = checkpoint_steps_of(run_dir)
    return steps[-1] if steps else 0


def corrupt_newest(run_dir: str | Path) -> Path:
    """Truncate the data files of the newest step checkpoint (as a full disk or a torn copy
    would); returns that checkpoint."""
    path = Path(run_dir) / "checkpoints" / str(newest_step(run_dir))
    for data in sorted((path / "state" / "d").iterdir()):
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    return path


def snapshot(run_dir: str | Path) -> dict[str, Any]:
    """What must be equal between a run and an uninterrupted run of the same config: the final
    checkpoint's state and the best model's (leaves as numpy), the best model's step,
    training_stats.json, the metrics (last record per step), the catalogue file and the
    `.theory` files; timings left out."""
    import jax
    import numpy as np

    from .checkpoint import load_checkpoint, read_metadata
    from .config import load_config
    from .metrics import read_metrics
    from .train import init_state

    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    target = init_state(config)
    leaves = lambda p: [np.asarray(x) for x in jax.tree.leaves(load_checkpoint(p, target)[0])]  # noqa: E731
    stats = json.loads((run_dir / "training_stats.json").read_text())
    for key in TIMING_KEYS:
        stats["history"].pop(key, None)
    last = {r["step"]: {k: v for k, v in r.items() if k not in TIMING_KEYS}
            for r in read_metrics(run_dir)}
    theories = run_dir / "discoveries"
    return {
        "state": leaves(run_dir / "checkpoints" / str(newest_step(run_dir))),
        "best": leaves(run_dir / "checkpoints" / "best_model"),
        "best_step": read_metadata(run_dir / "checkpoints" / "best_model").get("step"),
        "stats": stats,
        "metrics": [last[s] for s in sorted(last)],
        "metrics_records": len(read_metrics(run_dir)),
        "catalogue": (run_dir / "discoveries.jsonl").read_text(),
        "theories": {p.name: p.read_text() for p in sorted(theories.glob("*.theory"))}
        if theories.is_dir() else {},
    }


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The parts in which two snapshots differ (empty: equal)."""
    import numpy as np

    out = []
    for key in a:
        x, y = a[key], b.get(key)
        if key in ("state", "best"):
            same = len(x) == len(y) and all(
                u.shape == v.shape and u.dtype == v.dtype and np.array_equal(u, v, equal_nan=True)
                for u, v in zip(x, y))
        else:
            same = json.dumps(x, sort_keys=True) == json.dumps(y, sort_keys=True)
        if not same:
            out.append(key)
    return out


# --------------------------------------------------------------------------- randomised

def check_args(steps: int) -> list[str]:
    """The training flags of the check: a smoke-sized run that saves often (every step logged,
    so a best model whenever the mean reward rises; a checkpoint every 2 steps, 2 kept),
    curriculum and replay on."""
    return ["--config", "smoke", "--num_episodes", str(steps), "--save_interval", "2",
            "--log_interval", "1", "--eval_episodes", "4", "--use_curriculum",
            "--use_priority_buffer", "--set", "train.keep_checkpoints=2"]


def random_chain(run_dir: Path, args: list[str], when: dict[str, list[int]],
                 rng: "np.random.Generator", max_faults: int = 12,
                 log: Callable[[str], None] = print) -> list[str]:
    """Fault a run again and again until it completes: each time a SIGKILL at a random point and
    later step, a SIGTERM, a SIGKILL after a random wall time, or a corrupted newest checkpoint;
    then resume. Returns what was done."""
    import subprocess
    import time

    done: list[str] = []
    resumed = False
    while True:
        after = newest_step(run_dir) if resumed else 0
        kind = rng.choice(["point", "point", "point", "term", "wall", "corrupt"])
        if len(done) >= max_faults:
            kind = "finish"
        if kind == "corrupt":
            steps = checkpoint_steps_of(run_dir)
            if len(steps) >= 2:
                done.append(f"corrupt {corrupt_newest(run_dir).name}")
                log(done[-1])
            continue
        if kind == "wall":
            proc = subprocess.Popen(train_command(run_dir, args, resumed),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env={k: v for k, v in os.environ.items() if k != ENV})
            delay = float(rng.uniform(3.0, 20.0))
            time.sleep(delay)
            proc.kill()
            rc = proc.wait()
            done.append(f"kill after {delay:.1f}s (exit {rc})")
            log(done[-1])
            resumed = resumed or newest_step(run_dir) > 0
            if rc == 0:
                return done
            continue
        fault = None
        if kind in ("point", "term"):
            point = str(rng.choice(POINTS if kind == "point" else ["record_start"]))
            later = [s for s in when[point] if s > after]
            if not later:
                kind = "finish"
            else:
                fault = f"{point}:{int(rng.choice(later))}" + (":term" if kind == "term" else "")
        proc = run_training(run_dir, args, fault=fault, resume=resumed)
        done.append(f"{fault or 'run to the end'} (exit {proc.returncode})")
        log(done[-1])
        if proc.returncode not in (0, -signal.SIGKILL, 128 + signal.SIGTERM):
            raise RuntimeError(f"{run_dir}: unexpected exit {proc.returncode}: "
                               f"{proc.stderr[-2000:]}")
        resumed = resumed or newest_step(run_dir) > 0
        if proc.returncode == 0:
            return done


def main(argv: list[str] | None = None) -> int:
    """`scripts/fault_check.py`: the randomised crash-consistency check."""
    import argparse
    import tempfile

    import numpy as np

    from .metrics import read_metrics

    parser = argparse.ArgumentParser(
        prog="fault_check",
        description="Train a tiny run, fault it at random (SIGKILL at named points or after a "
                    "random wall time, SIGTERM, a corrupted newest checkpoint), resume, and "
                    "check that it ends equal to an uninterrupted run; repeat.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=12, help="training steps of each run")
    parser.add_argument("--faults", type=int, default=12, help="faults per round (at most)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where the runs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="fault_check-"))
    rng = np.random.default_rng(args.seed)
    flags = check_args(args.steps)
    reference = work / "reference"
    if not (reference / "training_stats.json").is_file():
        proc = run_training(reference, flags)
        if proc.returncode:
            print(proc.stderr[-2000:])
            return 1
    when = schedule(read_metrics(reference), 2, 1, args.steps)
    expected = snapshot(reference)
    failures = 0
    for r in range(args.rounds):
        run = work / f"round{r}"
        print(f"round {r}: {run}")
        done = random_chain(run, flags, when, rng, args.faults, log=lambda m: print(f"  {m}"))
        diff = differences(expected, snapshot(run))
        failures += bool(diff)
        print(f"  {len(done)} faults: " + ("equal to the uninterrupted run" if not diff
                                            else f"DIFFERS in {', '.join(diff)}"))
    print(f"{args.rounds - failures} of {args.rounds} rounds equal; runs in {work}")
    return 1 if failures else 0
