"""Several processes as one run (theorygrpo_jax.distributed, scripts/launch_local.py).

Two processes on this machine (loopback coordinator, CPU collectives over gloo, one CPU
device each: a global mesh of 2) train configs/smoke.yaml: both end with the same state,
the run directory holds one set of records and one checkpoint per saved step, a resume of
the 2-process run continues exactly (the state and metrics of an uninterrupted 2-process
run), and a SIGTERM seen by process 1 alone stops both at the same step boundary with a
checkpoint, from which a resume again continues exactly. Plus the flags' one-line errors,
SLURM detection and the launcher's signal forwarding and exit status, without JAX.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from theorygrpo_jax import distributed
from theorygrpo_jax.cli import UserError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import launch_local  # noqa: E402

# One process of a run: train() on configs/smoke.yaml (2 prompts x group 4, a checkpoint every
# 2 steps, every step logged), then this process's whole final state into DUMP/state_<i>.npz.
# --term_at S: process --term_process alone SIGTERMs itself while recording step S.
DRIVER = """
import argparse, os, sys
import numpy as np
from theorygrpo_jax import distributed
p = argparse.ArgumentParser()
distributed.add_flags(p)
for flag in ("--out", "--dump"):
    p.add_argument(flag)
p.add_argument("--steps", type=int)
p.add_argument("--resume", action="store_true")
p.add_argument("--term_at", type=int)
p.add_argument("--term_process", type=int, default=1)
a = p.parse_args()
distributed.initialize_from_args(a)
import jax
from theorygrpo_jax.cli import use_compilation_cache
use_compilation_cache()
from theorygrpo_jax import train as T
from theorygrpo_jax.config import load_config
if a.term_at is not None and jax.process_index() == a.term_process:
    os.environ["THEORYGRPO_FAULT"] = f"record_start:{a.term_at}:term"
cfg = load_config(sys.argv[0].rsplit("/", 1)[0] + "/smoke.yaml",
                  {"train.num_episodes": a.steps, "train.save_interval": 2,
                   "train.log_interval": 1})
stop = T.StopRequests()
state, _ = T.train(cfg, a.out, resume=a.out if a.resume else None, stop=stop,
                   log=lambda m: print(m, file=sys.stderr))
leaves = jax.tree.leaves(state)
np.savez(os.path.join(a.dump, f"state_{jax.process_index()}.npz"),
         **{str(i): np.asarray(x) for i, x in enumerate(leaves)})
print("devices", jax.device_count(), "processes", jax.process_count(), flush=True)
distributed.finish()   # as train.main does: leave the run together
sys.exit(128 + stop.signal if stop.signal else 0)
"""

TIMING = ("seconds", "time")   # keys of metrics.jsonl that two equal runs may differ in


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("driver")
    (where / "smoke.yaml").write_text((ROOT / "configs" / "smoke.yaml").read_text())
    path = where / "driver.py"
    path.write_text(DRIVER)
    return path


def _launch(driver: Path, out: Path, dump: Path, steps: int, resume: bool = False,
            term_at: int | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    dump.mkdir(parents=True, exist_ok=True)
    args = ["--out", str(out), "--dump", str(dump), "--steps", str(steps)]
    args += ["--resume"] if resume else []
    args += ["--term_at", str(term_at)] if term_at is not None else []
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    env.pop("THEORYGRPO_FAULT", None)
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "launch_local.py"),
                           "--num_processes", "2", "--program", str(driver), "--", *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def _states(dump: Path) -> list[dict[str, np.ndarray]]:
    return [dict(np.load(dump / f"state_{i}.npz")) for i in range(2)]


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if not any(t in k for t in TIMING)}
            for line in lines if line.strip()]


@pytest.fixture(scope="module")
def reference(driver, tmp_path_factory) -> tuple[Path, Path]:
    """An uninterrupted 2-process run of 4 steps: (run dir, dump dir)."""
    base = tmp_path_factory.mktemp("reference")
    proc = _launch(driver, base / "run", base / "dump", 4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base / "run", base / "dump"


def test_two_processes_train_as_one_run_and_resume_exactly(driver, reference, tmp_path):
    run, dump = tmp_path / "run", tmp_path / "dump"
    proc = _launch(driver, run, dump, 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "devices 2 processes 2" in proc.stdout
    first, second = _states(dump)
    assert _same(first, second)   # replicated: both processes hold the same state
    # one set of records (written by process 0 alone), one checkpoint for step 2
    assert [r["step"] for r in _records(run)] == [1, 2]
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "2" in names and set(names) <= {"1", "2", "best_model"}, names   # no tmp, .next, .old
    assert not list(run.glob("*.tmp")) and (run / "config.yaml").is_file()
    # its 2 steps are the reference's first 2
    assert _records(run) == _records(reference[0])[:2]

    proc = _launch(driver, run, dump, 4, resume=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed, uninterrupted = _states(dump), _states(reference[1])
    assert _same(resumed[0], resumed[1])
    assert _same(resumed[0], uninterrupted[0])   # bit for bit: the run continued exactly
    assert _records(run) == _records(reference[0])


def test_sigterm_on_one_process_stops_both_with_a_checkpoint(driver, reference, tmp_path):
    run, dump = tmp_path / "run", tmp_path / "dump"
    # process 1 alone is signalled while it records step 1; the stop is agreed at the next
    # step boundary, so both save step 2 and exit with 128 + SIGTERM
    proc = _launch(driver, run, dump, 4, term_at=1)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    assert [r["step"] for r in _records(run)] == [1, 2]
    assert "2" in [p.name for p in (run / "checkpoints").iterdir()]
    first, second = _states(dump)
    assert _same(first, second)

    proc = _launch(driver, run, dump, 4, resume=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _same(_states(dump)[0], _states(reference[1])[0])
    assert _records(run) == _records(reference[0])


# --------------------------------------------------------------------------- no JAX runtime


@pytest.mark.parametrize("kwargs, message", [
    ({"num_processes": 0}, "--num_processes must be at least 1"),
    ({"num_processes": 2}, "--coordinator_address, --process_id missing"),
    ({"coordinator_address": "localhost", "num_processes": 2, "process_id": 0},
     "must be HOST:PORT"),
    ({"coordinator_address": "localhost:1234", "num_processes": 2, "process_id": 2},
     "--process_id must be in 0..1"),
])
def test_bad_flags_are_one_line_errors(kwargs, message):
    with pytest.raises(UserError) as e:
        distributed.initialize(**kwargs, environ={})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_one_process_starts_no_runtime():
    assert distributed.initialize(environ={}) is False
    assert distributed.initialize(num_processes=1, environ={}) is False
    assert distributed.initialize(environ={"SLURM_NTASKS": "1"}) is False


def test_cluster_processes_read_from_the_environment():
    assert distributed.slurm_tasks({}) == 1
    assert distributed.slurm_tasks({"SLURM_NTASKS": "8"}) == 8
    # a job step's own task count wins over the job's
    assert distributed.slurm_tasks({"SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "4"}) == 4
    assert distributed.slurm_tasks({"SLURM_NTASKS": "x"}) == 1
    assert distributed.cluster_processes({}) == 1
    assert distributed.cluster_processes({"OMPI_COMM_WORLD_SIZE": "4"}) == 4
    assert distributed.cluster_processes({"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}) == 4
    assert distributed.cluster_processes({"TPU_WORKER_HOSTNAMES": "localhost"}) == 1


def test_flags_parse():
    parser = argparse.ArgumentParser()
    distributed.add_flags(parser)
    args = parser.parse_args(["--coordinator_address", "h:1", "--num_processes", "2",
                              "--process_id", "1"])
    assert (args.coordinator_address, args.num_processes, args.process_id) == ("h:1", 2, 1)


def test_worst_exit_status():
    assert launch_local.worst([0, 0]) == 0
    assert launch_local.worst([0, 1]) == 1
    assert launch_local.worst([143, 0]) == 143
    assert launch_local.worst([1, -9]) == 137   # killed by SIGKILL reads as 128 + 9


WAITER = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
print("ready", flush=True)
time.sleep(60)
sys.exit(0)
"""


def test_launcher_forwards_sigterm_to_every_process(tmp_path):
    program = tmp_path / "waiter.py"
    program.write_text(WAITER)
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "launch_local.py"),
                             "--num_processes", "2", "--program", str(program), "--"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"            # process 0
    assert proc.stderr.readline().strip() == "[1] ready"        # process 1
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert time.monotonic() - start < 30   # both ended on the signal, not after their sleep
