"""The Recorder on fake steps (no model, no sampling): process-0 gating, the grouped
TensorBoard tags with reward std and zero-variance groups, text summaries, and W&B through a
fake wandb module (no network)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from theorygrpo_jax import metrics as MT
from theorygrpo_jax.cli import UserError
from theorygrpo_jax.config import load_config
from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.recorder import Recorder, TrainingDiverged, sample_rows
from theorygrpo_jax.train import StepOutputs

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"   # group_size 4, prompts_per_step 2: batch of 8

# Two groups of 4: the first all equal (no variance: no advantage), the second 0, 2, 0, 2.
# By hand: group stds (ddof 0) are 0 and sqrt(((0-1)^2 + (2-1)^2 + (0-1)^2 + (2-1)^2) / 4) = 1,
# so reward_std = (0 + 1) / 2 = 0.5 and zero_variance_groups = 1 / 2 = 0.5.
REWARDS = np.array([1, 1, 1, 1, 0, 2, 0, 2], np.float32)
GIBBERISH = [V.TOKENS.index(t) for t in ("BOS", "GAUGE", "U1", "END_GAUGE", "EOS")]


def config(**overrides):
    return load_config(SMOKE, {"train.num_episodes": 4, "train.log_interval": 2,
                               "train.save_interval": 2, **overrides})


class FakeCheckpointer:
    """Records the steps saved (what every process must do alike)."""

    def __init__(self, directory: Path):
        self.directory, self.saved = directory, []

    def save(self, step, state, metadata, best=False):
        self.saved.append((step, best))

    def latest_step(self):
        return self.saved[-1][0] if self.saved else None


def fake_state(step: int, best: float = -1.0, params_scale: float = 1.0):
    return types.SimpleNamespace(step=np.int32(step), best_reward=np.float32(best),
                                 params={"w": np.ones(3, np.float32) * params_scale})


def fake_outputs(loss: float = 0.5, rewards: np.ndarray = REWARDS) -> StepOutputs:
    b = len(rewards)
    tokens = np.zeros((b, 8), np.int32)
    tokens[:, :len(GIBBERISH)] = GIBBERISH
    tokens[:, len(GIBBERISH)] = np.arange(b) + 10    # rows told apart by one token
    metrics = {"mean_reward": np.float32(rewards.mean()), "success_rate": np.float32(0),
               "mean_length": np.float32(6), "max_length": np.float32(6),
               "curriculum_phase": np.float32(0), "total_reward": np.float32(rewards.mean()),
               "anomalies_reward": np.float32(-1), "novelty_reward": np.float32(0),
               "total_loss": np.float32(loss), "policy_loss": np.float32(0.1),
               "kl": np.float32(3.2e-5), "entropy": np.float32(1.2)}
    return StepOutputs(metrics=metrics, tokens=tokens,
                       scores={"success": np.zeros(b, bool), "total_reward": rewards})


def run_steps(recorder: Recorder, steps=range(1, 5), best=lambda s: float(s)):
    for s in steps:
        recorder.record(fake_state(s, best(s)), fake_outputs(), 0.25, last=s == 4)
    recorder.close()


def tb_events(run_dir: Path) -> list:
    from tensorboardX.proto import event_pb2 as pb
    events = []
    for path in sorted((run_dir / MT.TENSORBOARD_DIR).glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):   # TFRecord framing: u64 length, u32 crc, payload, u32 crc
            length = int.from_bytes(data[pos:pos + 8], "little")
            events.append(pb.Event.FromString(data[pos + 12:pos + 12 + length]))
            pos += 12 + length + 4
    return events


def tb_scalars(run_dir: Path) -> dict[tuple[int, str], float]:
    return {(e.step, v.tag): v.simple_value for e in tb_events(run_dir) for v in e.summary.value
            if v.HasField("simple_value")}


def tb_texts(run_dir: Path) -> dict[tuple[int, str], str]:
    out = {}
    for e in tb_events(run_dir):
        for v in e.summary.value:
            if v.metadata.plugin_data.plugin_name == "text":
                out[(e.step, v.tag.split("/")[0])] = v.tensor.string_val[0].decode()
    return out


def test_group_stats_by_hand():
    assert MT.group_stats(REWARDS, 4) == {"reward_std": 0.5, "zero_variance_groups": 0.5}
    # One group 0, 0, 0, 4: mean 1, std sqrt((1 + 1 + 1 + 9) / 4) = sqrt(3); not zero-variance.
    stats = MT.group_stats(np.array([0, 0, 0, 4.0]), 4)
    assert stats["reward_std"] == pytest.approx(np.sqrt(3)) and stats["zero_variance_groups"] == 0


def test_group_stats_matches_a_plain_python_reference():
    """Against loops over groups, on random batches with many tied groups."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        g, n = int(rng.integers(1, 6)), int(rng.integers(1, 5))
        rewards = rng.integers(0, 3, size=g * n).astype(np.float64)
        stds, zero = [], 0
        for i in range(n):
            group = list(rewards[i * g:(i + 1) * g])
            mean = sum(group) / g
            stds.append((sum((r - mean) ** 2 for r in group) / g) ** 0.5)
            zero += all(r == group[0] for r in group)
        got = MT.group_stats(rewards, g)
        assert got["reward_std"] == pytest.approx(sum(stds) / n, abs=1e-12)
        assert got["zero_variance_groups"] == zero / n


def test_tags_are_grouped():
    expected = {"mean_reward": "reward/mean", "reward_std": "reward/std",
                "total_reward": "reward/total", "anomalies_reward": "reward/anomalies",
                "novelty_reward": "discovery/novelty_bonus", "chiral_reward": "discovery/chiral_bonus",
                "unique_successes": "discovery/unique_models",
                "models_chiral": "discovery/models_chiral", "dark_sets_5": "discovery/dark_sets_5",
                "total_loss": "loss/total", "policy_loss": "loss/policy", "kl": "policy/kl",
                "entropy": "policy/entropy", "mean_length": "rollout/completion_length_mean",
                "max_length": "rollout/completion_length_max",
                "zero_variance_groups": "rollout/zero_variance_groups",
                "buffer_mean_reward": "buffer/mean_reward", "step_seconds": "time/step_seconds",
                "something_new": "other/something_new"}
    assert {k: MT.tag_of(k) for k in expected} == expected


def test_discovery_bonus_names_match_the_discovery_module():
    import jax
    import jax.numpy as jnp

    from theorygrpo_jax import discovery as D
    from theorygrpo_jax.config import DiscoveryConfig
    cfg = DiscoveryConfig()
    bonus, _ = jax.eval_shape(lambda: D.discovery_rewards(
        jnp.zeros((2, 8), jnp.int32), jnp.zeros((2, 4), jnp.int32), jnp.zeros(2, bool),
        D.init_novelty(cfg), cfg))
    assert set(bonus) == set(MT.DISCOVERY_BONUSES)


def test_tensorboard_grouped_scalars_and_text(tmp_path):
    cfg = config(**{"train.tensorboard": True})
    recorder = Recorder(tmp_path, cfg, FakeCheckpointer(tmp_path), write=lambda _: None, step=0)
    run_steps(recorder)
    scalars = tb_scalars(tmp_path)
    assert scalars[(2, "reward/std")] == 0.5 and scalars[(2, "rollout/zero_variance_groups")] == 0.5
    assert scalars[(1, "reward/mean")] == 1.0                     # mean of REWARDS: 8 / 8
    assert scalars[(3, "policy/kl")] == pytest.approx(3.2e-5)
    for tag in ("policy/entropy", "loss/total", "rollout/completion_length_mean",
                "rollout/completion_length_max", "time/step_seconds", "reward/anomalies",
                "discovery/unique_models", "discovery/novelty_bonus"):
        assert (4, tag) in scalars, tag
    assert not [t for _, t in scalars if "/" not in t]               # no flat tags left
    # metrics.jsonl keeps flat keys, the new ones included
    records = MT.read_metrics(tmp_path)
    assert records[0]["reward_std"] == 0.5 and records[0]["zero_variance_groups"] == 0.5
    # text: the config once at the start step, sample theories at each logged step (2 and 4)
    texts = tb_texts(tmp_path)
    assert sorted(texts) == [(0, "config"), (2, "samples"), (4, "samples")]
    assert "```yaml" in texts[(0, "config")] and "group_size: 4" in texts[(0, "config")]
    samples = texts[(2, "samples")]
    assert samples.splitlines()[0] == "| total reward | theory |"
    assert "| 2 | `BOS GAUGE U1 END_GAUGE EOS" in samples and "| 0 | `" in samples


def test_tensorboard_needs_both_the_switch_and_report_to(tmp_path):
    for name, overrides in (("off", {"train.tensorboard": False}),
                            ("not_reported", {"train.tensorboard": True, "train.report_to": []})):
        out = tmp_path / name
        out.mkdir()
        run_steps(Recorder(out, config(**overrides), FakeCheckpointer(out), write=lambda _: None))
        assert not (out / MT.TENSORBOARD_DIR).exists()
        assert len(MT.read_metrics(out)) == 4


def test_sample_rows_best_and_worst():
    tokens = np.array([[1, 2], [1, 3], [1, 4], [1, 5], [1, 6]], np.int32)
    rewards = np.array([0.5, 3.0, -2.0, 1.0, -1.0], np.float32)
    rows = sample_rows(tokens, rewards, k=4)
    assert [r for r, _ in rows] == [3.0, 1.0, -1.0, -2.0]
    assert rows[0][1] == f"BOS {V.TOKENS[3]}"
    assert [r for r, _ in sample_rows(tokens[:1], rewards[:1], k=4)] == [0.5]   # each row once


def test_non_primary_writes_nothing_but_saves_at_the_same_steps(tmp_path):
    cfg = config(**{"train.tensorboard": True})
    primary_dir, other_dir = tmp_path / "p0", tmp_path / "p1"
    primary_dir.mkdir()
    other_dir.mkdir()
    lines = {"p0": [], "p1": []}
    saves = {}
    for name, out, primary in (("p0", primary_dir, True), ("p1", other_dir, False)):
        checkpointer = FakeCheckpointer(out)
        recorder = Recorder(out, cfg, checkpointer, write=lines[name].append, primary=primary)
        recorder.write_stats(fake_state(0))
        # best improves at logged steps 2 and 4: best_model saves there too
        run_steps(recorder, best=lambda s: float(s))
        saves[name] = checkpointer.saved
    assert saves["p1"] == saves["p0"] == [(2, True), (4, True)]
    assert list(other_dir.iterdir()) == []                        # no file of any kind
    assert lines["p1"] == [] and len(lines["p0"]) == 2             # stats blocks at 2 and 4
    assert (primary_dir / "metrics.jsonl").is_file() and (primary_dir / "plots").is_dir()


def test_non_primary_still_stops_on_a_non_finite_step(tmp_path):
    recorder = Recorder(tmp_path, config(), FakeCheckpointer(tmp_path), write=lambda _: None,
                        primary=False)
    with pytest.raises(TrainingDiverged, match="training diverged at step 1: non-finite loss"):
        recorder.record(fake_state(1), fake_outputs(loss=float("nan")), 0.1, last=False)
    with pytest.raises(TrainingDiverged, match="non-finite parameters"):
        recorder.record(fake_state(1, params_scale=np.inf), fake_outputs(), 0.1, last=False)
    assert list(tmp_path.iterdir()) == []


class FakeWandb(types.ModuleType):
    """The part of the wandb API the recorder uses, recording every call."""

    def __init__(self):
        super().__init__("wandb")
        self.inits, self.logged, self.finished = [], [], 0
        fake = self

        class Run:
            def log(self, data, step=None):
                fake.logged.append((step, data))

            def finish(self):
                fake.finished += 1

        class Html:
            def __init__(self, html):
                self.html = html

        self.Run, self.Html = Run, Html

    def init(self, **kwargs):
        self.inits.append(kwargs)
        return self.Run()


def test_wandb_gets_the_grouped_keys_and_text(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = config(**{"train.report_to": ["wandb"], "train.wandb_project": "proj"})
    MT.require_sinks(cfg.train.report_to)                          # installed: no error
    run_steps(Recorder(tmp_path, cfg, FakeCheckpointer(tmp_path), write=lambda _: None))
    (init,) = fake.inits
    run_id = (tmp_path / MT.WANDB_ID_FILE).read_text().strip()
    assert init["project"] == "proj" and init["id"] == run_id and init["resume"] == "allow"
    assert init["config"]["grpo"]["group_size"] == 4 and init["dir"] == str(tmp_path)
    scalars = {step: data for step, data in fake.logged if "reward/mean" in data}
    assert sorted(scalars) == [1, 2, 3, 4]
    assert scalars[2]["reward/std"] == 0.5 and scalars[2]["rollout/zero_variance_groups"] == 0.5
    assert {"policy/kl", "policy/entropy", "loss/total", "time/step_seconds"} <= set(scalars[2])
    texts = [(step, key) for step, data in fake.logged for key, v in data.items()
             if isinstance(v, fake.Html)]
    assert texts == [(0, "config"), (2, "samples"), (4, "samples")]
    assert fake.finished == 1
    assert not (tmp_path / MT.TENSORBOARD_DIR).exists()           # not in report_to
    # a resumed run continues the same W&B run
    run_steps(Recorder(tmp_path, cfg, FakeCheckpointer(tmp_path), write=lambda _: None, step=4),
              steps=[])
    assert fake.inits[1]["id"] == run_id


def test_wandb_missing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)                # import wandb -> ImportError
    message = ("report_to includes wandb but the wandb package is not installed: "
               "pip install wandb")
    with pytest.raises(UserError) as err:
        MT.require_sinks(("tensorboard", "wandb"))
    assert str(err.value) == message
    MT.require_sinks(("tensorboard",))                             # wandb not asked for: fine
    cfg = config(**{"train.report_to": ["wandb"]})
    with pytest.raises(UserError, match="^report_to includes wandb but"):
        Recorder(tmp_path, cfg, FakeCheckpointer(tmp_path), write=lambda _: None)
