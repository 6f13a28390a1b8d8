"""GRPO pieces against hand-computed arrays."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theorygrpo_jax import grpo, policy
from theorygrpo_jax.config import GRPOConfig
from theorygrpo_jax.policy import PolicySpec


def test_group_advantages_by_hand():
    rewards = jnp.array([1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 10.0])
    # group 1: mean 2.5, sample std sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3) = sqrt(5/3)
    std = math.sqrt(5 / 3)
    want = np.array([-1.5, -0.5, 0.5, 1.5, 0, 0, 0, 0]) / np.array([std + 1e-6] * 4 + [1e-6] * 4)
    want[4:] = 0.0   # a group of equal rewards carries no signal
    np.testing.assert_allclose(grpo.group_advantages(rewards, 4), want, rtol=1e-6)
    # Dr. GRPO: centred only
    np.testing.assert_array_equal(grpo.group_advantages(rewards, 4, scale_by_std=False),
                                  np.array([-1.5, -0.5, 0.5, 1.5, 0, 0, 0, 0], np.float32))


def _terms(adv, estimator="exact", **cfg):
    # one token, vocabulary of two: new policy (0.8, 0.2), reference (0.5, 0.5), token 0 taken,
    # old log-prob log 0.5, so the ratio is 0.8 / 0.5 = 1.6
    log_probs = jnp.log(jnp.array([[[0.8, 0.2]]]))
    ref = jnp.log(jnp.array([[[0.5, 0.5]]]))
    config = GRPOConfig(kl_estimator=estimator, **cfg)
    return grpo.policy_terms(log_probs, ref, jnp.array([[0]]), jnp.log(jnp.array([[0.5]])),
                             jnp.array([adv]), config)


def test_clipped_surrogate_by_hand():
    t = _terms(1.0)
    np.testing.assert_allclose(t["ratio"], [[1.6]], rtol=1e-6)
    np.testing.assert_allclose(t["surrogate"], [[1.2]], rtol=1e-6)   # min(1.6, clip 1.2) * 1
    assert t["clipped"][0, 0] == 1.0
    t = _terms(-1.0)
    np.testing.assert_allclose(t["surrogate"], [[-1.6]], rtol=1e-6)  # min(-1.6, -1.2)
    assert t["clipped"][0, 0] == 0.0
    t = _terms(1.0, clip_range_high=0.28)                             # clip-higher
    np.testing.assert_allclose(t["surrogate"], [[1.28]], rtol=1e-6)


def test_kl_and_entropy_by_hand():
    t = _terms(1.0)
    kl = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)      # 0.192745
    entropy = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))            # 0.500402
    np.testing.assert_allclose(t["kl"], [[kl]], rtol=1e-6)
    np.testing.assert_allclose(t["entropy"], [[entropy]], rtol=1e-6)
    t = _terms(1.0, estimator="k3")
    log_r = math.log(0.5 / 0.8)
    np.testing.assert_allclose(t["kl"], [[math.exp(log_r) - 1 - log_r]], rtol=1e-6)  # 0.095004


def test_masked_tokens_do_not_leak():
    # a forbidden token (log-prob -1e9 after masking) contributes nothing, and no NaN appears
    log_probs = jax.nn.log_softmax(jnp.array([[[0.0, 0.0, -1e9]]]))
    t = grpo.policy_terms(log_probs, log_probs, jnp.array([[1]]), jnp.log(jnp.array([[0.5]])),
                          jnp.array([1.0]), GRPOConfig())
    np.testing.assert_allclose(t["entropy"], [[math.log(2)]], rtol=1e-6)
    np.testing.assert_allclose(t["kl"], [[0.0]], atol=1e-7)


def test_aggregation_token_vs_sequence():
    per_token = jnp.array([[1.0, 2.0, 7.0], [3.0, 9.0, 9.0]])
    mask = jnp.array([[True, True, False], [True, False, False]])
    ones = jnp.ones(2)
    # token mode sums the masked tokens (the loss divides by the batch's 3 tokens: mean 2)
    assert float(grpo._sums(per_token, mask, ones, "token")) == pytest.approx(6.0)
    # sequence mode sums per-sequence means 1.5 and 3 (the loss divides by 2 rows: 2.25)
    assert float(grpo._sums(per_token, mask, ones, "sequence")) == pytest.approx(4.5)
    w = jnp.array([1.0, 0.0])   # a zero importance weight removes a row's contribution
    assert float(grpo._sums(per_token, mask, w, "token")) == pytest.approx(3.0)


@pytest.mark.parametrize("schedule,step,want", [
    ("constant", 500, 0.01),
    ("linear", 500, 0.0055),        # halfway from 0.01 to 0.001
    ("linear", 2000, 0.001),
    ("cosine", 250, 0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi / 4))),
    ("exponential", 500, 0.01 * (0.1 ** 0.5)),
])
def test_entropy_schedules(schedule, step, want):
    config = GRPOConfig(entropy_coef=0.01, entropy_coef_final=0.001, entropy_schedule=schedule,
                        entropy_decay_steps=1000)
    assert float(grpo.entropy_coefficient(config, jnp.asarray(step))) == pytest.approx(want, rel=1e-5)


def test_adaptive_kl_controller():
    config = GRPOConfig(target_kl=0.01, kl_horizon=10)
    # KL twice the target: error clipped to +0.2, coefficient grows by 0.2 / horizon
    assert float(grpo.adapt_kl_coef(jnp.asarray(0.1), jnp.asarray(0.02), config)) == pytest.approx(0.102)
    # KL at 95% of target: error -0.05
    assert float(grpo.adapt_kl_coef(jnp.asarray(0.1), jnp.asarray(0.0095), config)) == pytest.approx(0.1 * (1 - 0.005))
    assert float(grpo.adapt_kl_coef(jnp.asarray(0.1), jnp.asarray(0.5), GRPOConfig())) == pytest.approx(0.1)


# --------------------------------------------------------------------------- with a tiny model

from theorygrpo_jax.grammar import automaton, walks  # noqa: E402
from theorygrpo_jax.train import init_state  # noqa: E402
from theorygrpo_jax.config import config_from_dict  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    config = config_from_dict({"model": {"d_model": 32, "n_heads": 2, "n_layers": 1, "d_ff": 64,
                                         "max_len": 48},
                               "grpo": {"group_size": 4, "learning_rate": 1e-2}})
    tables = automaton.load_tables()
    tokens = walks.random_walk_tokens(tables, jax.random.PRNGKey(3), 8, 48)
    masks = policy.grammar_masks(tables, tokens, 48)
    state = init_state(config)
    logp = jnp.take_along_axis(policy.log_policy(state.params, config.model, tokens, masks, PolicySpec()),
                               tokens[:, 1:, None], axis=-1)[..., 0]
    old = jnp.concatenate([jnp.zeros((8, 1)), logp], axis=1)
    batch = grpo.PolicyBatch(tokens=tokens, old_logprobs=old, completion_mask=tokens != V_PAD,
                             advantages=jnp.array([1.0, -1.0] * 4), weights=jnp.ones(8))
    return config, tables, state, batch


V_PAD = 0


def test_loss_does_not_depend_on_chunking(tiny):
    config, tables, state, batch = tiny
    for mode in ("token", "sequence"):
        cfg = GRPOConfig(loss_aggregation=mode)

        def loss(chunks):
            masks = tuple(policy.grammar_masks(tables, c.tokens, 48) for c in chunks)
            ref = tuple(policy.log_policy(state.ref_params, config.model, c.tokens, m, PolicySpec())
                        for c, m in zip(chunks, masks))
            return grpo.grpo_loss(state.params, chunks, masks, ref, 0.1, 0.01,
                                  model_config=config.model, config=cfg)[1]

        whole = loss((batch,))
        split = loss(grpo.split_by_length(batch, 3, 48))
        for key in whole:
            np.testing.assert_allclose(split[key], whole[key], rtol=1e-5, atol=1e-7, err_msg=key)
        assert float(whole["kl"]) == pytest.approx(0.0, abs=1e-6)      # policy == reference at start
        assert float(whole["ratio_mean"]) == pytest.approx(1.0, abs=1e-6)


def test_bucket_lengths():
    assert [grpo.bucket_length(n, 512) for n in (14, 32, 33, 100, 129, 200, 300, 512)] == \
        [32, 32, 64, 128, 256, 256, 512, 512]
    assert grpo.bucket_length(100, 64) == 64


def test_update_moves_probability_toward_positive_advantages(tiny):
    config, tables, state, batch = tiny
    update = grpo.make_update_step(config.model, config.grpo)

    def seq_logp(params):
        masks = policy.grammar_masks(tables, batch.tokens, 48)
        lp = jnp.take_along_axis(policy.log_policy(params, config.model, batch.tokens, masks, PolicySpec()),
                                 batch.tokens[:, 1:, None], axis=-1)[..., 0]
        return (lp * batch.completion_mask[:, 1:]).sum(1)

    before = seq_logp(state.params)
    fresh = init_state(config)
    new_state, metrics = update(fresh, grpo.split_by_length(batch, 2, 48), tables)
    after = seq_logp(new_state.params)
    assert int(new_state.step) == 1
    change = np.asarray(after - before)
    assert change[0::2].mean() > 0 > change[1::2].mean()   # advantages +1, -1 alternate
    for a, b in zip(jax.tree.leaves(new_state.ref_params), jax.tree.leaves(state.ref_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))    # the reference stays frozen
