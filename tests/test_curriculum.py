"""Curriculum phases: weights, phase rewards and successes, and transitions, all checked by hand."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theorygrpo_jax.config import CurriculumConfig
from theorygrpo_jax.curriculum import (COMPONENTS, advance, init_curriculum, phase_reward, phase_weights,
                                       window_mean)
from theorygrpo_jax.reward import RewardConfig


def _bonus(record):                      # an extra reward term (never called here: scores are given)
    return jnp.zeros(())


PHASES = (("length", "invalid_terms"),
          ("length", "invalid_terms", "light_exotics"),
          ("length", "invalid_terms", "light_exotics", "anomalies", "heavy_exotics"))
REWARD = RewardConfig(anomalies_weight=2.0, light_exotics_weight=3.0, invalid_terms_weight=0.5,
                      length_weight=1.0, heavy_exotics_weight=0.25, extra=(("bonus", 10.0, _bonus),))

# Three theories, every field as reward.score_batch returns it (only the ones the curriculum reads).
SCORES = {
    "anomalies_reward":     np.array([0.0, -6.0, -1.5], np.float32),
    "anomaly_l1":           np.array([0, 3, 1], np.int32),
    "light_exotics_reward": np.array([0.0, -0.2, 0.0], np.float32),
    "light_exotics":        np.array([0, 2, 0], np.int32),
    "invalid_terms_reward": np.array([0.0, 0.0, -2.0], np.float32),
    "invalid_terms":        np.array([0, 0, 2], np.int32),
    "length_reward":        np.array([-0.5, 0.0, 0.0], np.float32),
    "heavy_exotics_reward": np.array([2.0, 1.0, 0.0], np.float32),
    "bonus":                np.array([1.0, 0.0, 0.5], np.float32),
    # total = 2 anom + 3 light + 0.5 invalid + length + 0.25 heavy + 10 bonus
    "total_reward":         np.array([10.0, -12.35, 1.0], np.float32),
    "success":              np.array([True, False, False]),
}


def test_phase_weights_default_config():
    cfg = CurriculumConfig()
    assert COMPONENTS == ("anomalies", "light_exotics", "invalid_terms", "length", "heavy_exotics")
    expected = [[0, 0, 1, 1, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1]]   # the bonus joins in the last phase
    for phase, row in enumerate(expected):
        np.testing.assert_array_equal(phase_weights(cfg, phase), np.array(row, np.float32))
    traced = jax.jit(phase_weights, static_argnums=0)(cfg, jnp.int32(1))     # phase may be traced
    np.testing.assert_array_equal(traced, np.array(expected[1], np.float32))


@pytest.mark.parametrize("phase, total, success", [
    # phase 0: 0.5 invalid + length + 10 bonus; success: invalid == 0 and length_reward == 0
    (0, [-0.5 + 10.0, 0.0, -1.0 + 5.0], [False, True, False]),
    # phase 1: + 3 light; success also needs light_exotics == 0
    (1, [-0.5 + 10.0, -0.6, -1.0 + 5.0], [False, False, False]),
    # phase 2 (last, everything on): the full total; success drops the length condition -> full success
    (2, [10.0, -12.35, 1.0], [True, False, False]),
])
def test_phase_reward_by_hand(phase, total, success):
    cfg = CurriculumConfig(phases=PHASES)
    got_total, got_success = jax.jit(phase_reward, static_argnums=(1, 3))(SCORES, cfg, jnp.int32(phase), REWARD)
    np.testing.assert_allclose(got_total, np.array(total, np.float32), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got_success, np.array(success))


def test_last_phase_success_is_full_success():
    """Default phases, random diagnostics: last-phase success == the reward's success rule."""
    cfg = CurriculumConfig()
    rng = np.random.default_rng(0)
    b = 512
    scores = {f"{c}_reward": rng.normal(size=b).astype(np.float32) for c in COMPONENTS}
    scores["total_reward"] = np.zeros(b, np.float32)
    for key in ("anomaly_l1", "light_exotics", "invalid_terms"):
        scores[key] = (rng.random(b) < 0.3) * rng.integers(1, 4, b)
    scores["length_reward"] = np.where(rng.random(b) < 0.5, 0.0, -0.25).astype(np.float32)
    full = (scores["anomaly_l1"] == 0) & (scores["invalid_terms"] == 0) & (scores["light_exotics"] == 0)
    assert 0 < full.sum() < b and np.any(full & (scores["length_reward"] != 0))
    _, success = phase_reward(scores, cfg, len(cfg.phases) - 1, RewardConfig())
    np.testing.assert_array_equal(success, full)


def test_advance_by_hand():
    cfg = CurriculumConfig(window=3, mastery_threshold=0.5)       # default: 3 phases
    step = jax.jit(advance, static_argnums=1)
    rates = [0.9, 0.9, 0.0,     # window [.9 .9 0] mean .6 >= .5 -> phase 1, window cleared
             0.2, 0.4, 0.6,     # [.2 .4 .6] mean .4 < .5: stay
             0.8,               # [.4 .6 .8] mean .6 -> phase 2 (last)
             1.0, 1.0, 1.0, 1.0]  # mastered, but the last phase is never left
    expected_phase = [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    expected_count = [1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 3]
    state = init_curriculum(cfg)
    for i, rate in enumerate(rates):
        state = step(state, cfg, jnp.float32(rate))
        assert (int(state.phase), int(state.count)) == (expected_phase[i], expected_count[i]), i
        if i == 5:
            np.testing.assert_allclose(state.recent_success, [0.2, 0.4, 0.6], rtol=1e-6)
            np.testing.assert_allclose(window_mean(state), 0.4, rtol=1e-6)
        if i == 6:
            np.testing.assert_array_equal(state.recent_success, np.zeros(3, np.float32))


def test_advance_at_exact_threshold():
    cfg = CurriculumConfig(window=3, mastery_threshold=0.7)
    step = jax.jit(advance, static_argnums=1)
    state = init_curriculum(cfg)
    for _ in range(3):
        state = step(state, cfg, jnp.float32(0.7))
    assert int(state.phase) == 1 and int(state.count) == 0
    for rate in (0.7, 0.7, 0.69):
        state = step(state, cfg, jnp.float32(rate))
    assert int(state.phase) == 1 and int(state.count) == 3


# ---------------------------------------------------------------------------
# The best model under the curriculum (issue 15): judged on the task's total reward


@pytest.fixture(scope="module")
def curriculum_run(tmp_path_factory):
    from theorygrpo_jax import train as T
    from theorygrpo_jax.config import load_config
    from theorygrpo_jax.resources import packaged_config
    config = load_config(packaged_config("smoke"), {"train.use_curriculum": True,
                                                    "train.log_interval": 1,
                                                    "train.num_episodes": 3})
    out = tmp_path_factory.mktemp("curriculum")
    state, _ = T.train(config, out, log=lambda _: None)
    return config, out, state


def test_the_rollout_keeps_the_best_total_reward_not_the_phase_reward(curriculum_run):
    from theorygrpo_jax import train as T
    config, _, _ = curriculum_run
    state, inputs, fns = T.place(config, T.init_state(config))
    state = state.replace(best_reward=jnp.float32(-1e9))
    prompts, lengths = inputs.prompt_tokens[[0] * 8], inputs.prompt_len[[0] * 8]
    state, _, metrics, _, scores = fns.rollout(state, inputs.tables, prompts, lengths)
    total = float(np.mean(np.asarray(scores["total_reward"], np.float64)))
    assert int(state.curriculum.phase) == 0
    # phase 0 pays for length and invalid terms only: the phase reward is not the total here
    assert float(metrics["mean_reward"]) != pytest.approx(total)
    assert float(state.best_reward) == pytest.approx(total, rel=1e-6)
    assert float(metrics["total_reward"]) == pytest.approx(total, rel=1e-6)


def test_best_model_under_curriculum_is_chosen_on_total_reward(curriculum_run):
    from theorygrpo_jax.checkpoint import read_metadata
    _, out, state = curriculum_run
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    totals = [r["total_reward"] for r in records]
    assert any(r["mean_reward"] != pytest.approx(r["total_reward"]) for r in records)
    # every step is logged (log_interval 1): best_model is the first step of the highest total
    best_step = records[totals.index(max(totals))]["step"]
    assert read_metadata(out / "checkpoints" / "best_model")["step"] == best_step
    assert float(state.best_reward) == pytest.approx(max(totals), rel=1e-6)
    stats = json.loads((out / "training_stats.json").read_text())
    assert stats["best_reward"] == pytest.approx(max(totals), rel=1e-6)
