"""The training loop end to end on the smoke config: outputs, resume equivalence, CLI errors,
divergence, memory and the ownership of a run directory."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
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


def test_steps_past_update_steps_sample_without_updating(tmp_path):
    overrides = {"train.save_interval": 2, "train.use_curriculum": True,
                 "train.use_priority_buffer": True}
    learnt, _ = T.train(load_config(SMOKE, {**overrides, "train.num_episodes": 2}),
                        tmp_path / "two", log=lambda _: None)
    harvest = load_config(SMOKE, {**overrides, "train.num_episodes": 4, "train.update_steps": 2})
    out = tmp_path / "harvest"
    state, _ = T.train(harvest, out, log=lambda _: None)
    assert int(state.step) == 4
    # steps 3 and 4 left the policy and its optimiser as step 2 left them
    for a, b in zip(jax.tree.leaves((learnt.params, learnt.opt_state)),
                    jax.tree.leaves((state.params, state.opt_state))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert ["total_loss" in r for r in records] == [True, True, False, False]
    assert all("mean_reward" in r for r in records)


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


# ---------------------------------------------------------------------------
# Reliability (issue 14): divergence, memory, ownership of the run directory


def _outputs(config, loss):
    """A step's outputs as the host sees them, with the given loss and no success."""
    b, L = config.grpo.batch_size, config.model.max_len
    names = ["mean_reward", "success_rate", "total_loss", "policy_loss", "kl", "entropy",
             "curriculum_phase", "buffer_size", "buffer_mean_reward", "buffer_success_rate"]
    return T.StepOutputs(metrics={k: np.float32(loss if k == "total_loss" else 0.0) for k in names},
                         tokens=np.zeros((b, L), np.int32),
                         scores={"success": np.zeros(b, bool), "total_reward": np.zeros(b, np.float32)})


@pytest.mark.parametrize("what", ["loss", "parameters"])
def test_divergence_stops_naming_the_step_and_writes_nothing(config, tmp_path, what):
    from theorygrpo_jax.checkpoint import Checkpointer
    state = T.init_state(config)
    checkpointer = Checkpointer(tmp_path, keep=2)
    checkpointer.save(2, state, {"step": 2})
    recorder = T.Recorder(tmp_path, config, checkpointer, write=lambda _: None)
    if what == "parameters":
        state = state.replace(params=jax.tree.map(lambda p: p * np.nan, state.params))
    state = state.replace(step=jnp.asarray(3, jnp.int32))
    with pytest.raises(T.TrainingDiverged) as err:
        recorder.record(state, _outputs(config, np.nan if what == "loss" else 0.5), 0.1, last=True)
    recorder.close()
    message = str(err.value)
    assert message.startswith(f"training diverged at step 3: non-finite {what}")
    assert f"{tmp_path / 'checkpoints' / '2'} (step 2)" in message and "\n" not in message
    assert checkpointer.all_steps() == [2] and not (tmp_path / "checkpoints" / "best_model").exists()
    assert (tmp_path / "metrics.jsonl").read_text() == ""


def test_replay_buffer_is_one_entry_when_replay_is_off(config):
    shapes = jax.eval_shape(lambda: T.init_state(config))
    assert shapes.replay.tokens.shape == (config.replay.capacity, config.model.max_len)
    off = load_config(SMOKE, {"replay.capacity": 100_000_000})
    assert jax.eval_shape(lambda: T.init_state(off)).replay.tokens.shape == (1, off.model.max_len)


def test_a_config_beyond_the_machines_memory_stops_with_the_estimate(config):
    T.check_memory(config)                                    # the smoke config fits
    huge = load_config(SMOKE, {"grpo.group_size": 1_000_000})
    need = T.estimate_memory(huge)
    # the update alone holds [B, L, V] float32 log-probs: 2e6 x 64 x 130 x 4 bytes = 66.6 GB
    assert need["update"] > 2_000_000 * 64 * 130 * 4
    with pytest.raises(T.UserError, match=r"^this config needs at least \d+\.\d GB .* but the "):
        T.check_memory(huge)


def test_a_new_run_into_a_used_directory_stops_and_overwrite_replaces_it(config, straight_run,
                                                                          tmp_path):
    out, _ = straight_run
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    with pytest.raises(T.UserError, match="holds a run already .* --overwrite"):
        T.train(config, out, log=lambda _: None)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before
    # an overwritten run starts afresh (only the new run's files remain)
    run = tmp_path / "run"
    shutil.copytree(out, run)
    (run / "notes.txt").write_text("kept")
    one = dataclasses.replace(config, train=dataclasses.replace(config.train, num_episodes=1))
    T.train(one, run, log=lambda _: None, overwrite=True)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["1", "best_model"]
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    assert (run / "notes.txt").read_text() == "kept"


def test_stop_requests_turn_signals_into_a_request_then_an_interrupt():
    import os
    import signal
    before = signal.getsignal(signal.SIGINT)
    with T.StopRequests() as requests:
        os.kill(os.getpid(), signal.SIGTERM)
        assert requests.signal == signal.SIGTERM and requests.name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):     # a second request stops at once
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
