"""The training loop end to end on the smoke config: outputs, resume equivalence, CLI errors."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from theorygrpo_jax import train as T
from theorygrpo_jax.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"


@pytest.fixture(scope="module")
def config():
    # curriculum and replay on, so that their state is part of what resume must restore
    return load_config(SMOKE, {"train.num_episodes": 4, "train.save_interval": 2,
                               "train.use_curriculum": True, "train.use_priority_buffer": True})


@pytest.fixture(scope="module")
def straight_run(config, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    state, _ = T.train(config, out, log=lambda _: None)
    return out, state


def test_run_directory_layout(straight_run):
    out, state = straight_run
    assert int(state.step) == 4
    for name in ("config.yaml", "training_stats.json", "metrics.jsonl", "discoveries.jsonl"):
        assert (out / name).exists(), name
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.isdigit()) == ["2", "4"]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    stats = json.loads((out / "training_stats.json").read_text())
    assert len(stats["history"]["mean_reward"]) == 4 and stats["step"] == 4
    assert any((out / "plots").glob("*.png"))


def test_resume_continues_the_same_trajectory(config, straight_run, tmp_path):
    _, straight = straight_run
    half = load_config(SMOKE, {"train.num_episodes": 2, "train.save_interval": 2,
                               "train.use_curriculum": True, "train.use_priority_buffer": True})
    T.train(half, tmp_path, log=lambda _: None)
    resumed, _ = T.train(config, tmp_path, resume=str(tmp_path), log=lambda _: None)
    assert int(resumed.step) == 4
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    stats = json.loads((tmp_path / "training_stats.json").read_text())
    assert len(stats["history"]["mean_reward"]) == 4 and stats["step"] == 4


def test_eval_only_json_from_checkpoint(straight_run):
    out, _ = straight_run
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--config", str(SMOKE),
                           "--checkpoint", str(out), "--eval_only", "--eval_episodes", "8", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) >= {"mean_reward", "success_rate", "unique_successes"}


@pytest.mark.parametrize("args,message", [
    (["--config", "nope.yaml"], "error: nope.yaml: no such config file"),
    (["--config", str(SMOKE), "--set", "grpo.colour=1"], "unknown key 'grpo.colour'"),
    (["--config", str(SMOKE), "--group_size", "1"], "group_size must be >= 2"),
    (["--config", str(SMOKE), "--resume", "/nonexistent/run"], "error: "),
])
def test_cli_errors_are_one_line(args, message):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
