"""Replay buffer: insertion order, eviction, dedup, priorities, importance weights, orbax round trip."""

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from theorygrpo_jax.config import ReplayConfig
from theorygrpo_jax.replay import init_buffer, insert, priorities, row_hash, sample, stats

L = 4
insert_jit = jax.jit(insert)
sample_jit = jax.jit(sample, static_argnums=(2, 3))


def row(i):
    return [1, 10 + i, 2, 0]


def batch(ids, rewards, eligible=None, success=None):
    """A batch of rows `ids` with logprobs -ids/10 and a completion mask on positions 1..2."""
    b = len(ids)
    tokens = np.array([row(i) for i in ids], np.int32)
    logprobs = np.repeat(-np.array(ids, np.float32)[:, None] / 10, L, axis=1)
    mask = np.tile(np.array([False, True, True, False]), (b, 1))
    success = np.zeros(b, bool) if success is None else np.array(success)
    eligible = np.ones(b, bool) if eligible is None else np.array(eligible)
    return tokens, logprobs, mask, np.array(rewards, np.float32), success, eligible


def filled(rewards, capacity=None):
    buf = init_buffer(capacity or len(rewards), L)
    return insert_jit(buf, *batch(list(range(len(rewards))), rewards))


def test_insert_and_evict_by_hand():
    buf = init_buffer(3, L)
    buf = insert_jit(buf, *batch([0, 1], [0.5, 1.5], success=[True, False]))
    np.testing.assert_array_equal(buf.tokens, [row(0), row(1), [0, 0, 0, 0]])
    np.testing.assert_array_equal(buf.valid, [True, True, False])
    assert (int(buf.next), int(buf.size)) == (2, 2)
    # 9 is not eligible; 2 fills the last slot, then 3 and 4 evict 0 and 1 (the oldest)
    buf = insert_jit(buf, *batch([2, 9, 3, 4], [2.5, 9.0, 3.5, 4.5], eligible=[True, False, True, True],
                                 success=[False, True, True, True]))
    np.testing.assert_array_equal(buf.tokens, [row(3), row(4), row(2)])
    np.testing.assert_array_equal(buf.rewards, np.array([3.5, 4.5, 2.5], np.float32))
    np.testing.assert_array_equal(buf.success, [True, True, False])
    np.testing.assert_array_equal(buf.logprobs, np.repeat(np.array([[-0.3], [-0.4], [-0.2]], np.float32), L, 1))
    np.testing.assert_array_equal(buf.completion_mask, np.tile([False, True, True, False], (3, 1)))
    np.testing.assert_array_equal(buf.keys, row_hash(jnp.array([row(3), row(4), row(2)])))
    np.testing.assert_array_equal(buf.valid, [True, True, True])
    assert (int(buf.next), int(buf.size)) == (2, 3)
    s = stats(buf)
    assert int(s["size"]) == 3 and int(s["capacity"]) == 3
    np.testing.assert_allclose(s["mean_reward"], (3.5 + 4.5 + 2.5) / 3, rtol=1e-6)
    np.testing.assert_allclose(s["success_rate"], 2 / 3, rtol=1e-6)


def test_batch_larger_than_capacity_keeps_the_last_rows():
    buf = insert_jit(init_buffer(2, L), *batch([0, 1, 2, 3, 4], [0, 1, 2, 3, 4]))
    # one by one: slots 0 1 0 1 0 -> [4, 3], next = 5 % 2
    np.testing.assert_array_equal(buf.tokens, [row(4), row(3)])
    np.testing.assert_array_equal(buf.rewards, [4.0, 3.0])
    assert (int(buf.next), int(buf.size)) == (1, 2)


def test_dedup_within_a_batch_and_across_calls():
    buf = init_buffer(3, L)
    # row 0 twice in one batch: the first (reward 1) is kept
    buf = insert_jit(buf, *batch([0, 0, 1], [1.0, 7.0, 2.0]))
    np.testing.assert_array_equal(buf.tokens[:2], [row(0), row(1)])
    np.testing.assert_array_equal(buf.rewards, [1.0, 2.0, 0.0])
    assert (int(buf.next), int(buf.size)) == (2, 2)
    # row 1 is already stored; row 2 is new; its ineligible twin before it does not count
    buf = insert_jit(buf, *batch([1, 2, 2], [8.0, 5.0, 3.0], eligible=[True, False, True]))
    np.testing.assert_array_equal(buf.tokens, [row(0), row(1), row(2)])
    np.testing.assert_array_equal(buf.rewards, [1.0, 2.0, 3.0])
    assert (int(buf.next), int(buf.size)) == (0, 3)
    # nothing new: unchanged
    same = insert_jit(buf, *batch([2, 0], [0.0, 0.0]))
    jax.tree.map(np.testing.assert_array_equal, same, buf)


def test_row_hash_distinguishes_single_changes():
    base = np.array(row(0) * 8, np.int32)
    variants = [base] + [np.where(np.arange(base.size) == p, base + 1, base) for p in range(base.size)]
    variants.append(np.roll(base, 1))
    keys = np.asarray(row_hash(jnp.array(np.stack(variants))))
    assert len(set(keys.tolist())) == len(variants)


def test_priorities_by_hand():
    buf = filled([1.0, 2.0, 4.0], capacity=4)          # slot 3 is empty
    p = priorities(buf, ReplayConfig(capacity=4, alpha=1.0, replay_per_step=2))
    raw = np.array([1e-6, 1 + 1e-6, 3 + 1e-6, 0.0])      # reward - min + 1e-6
    np.testing.assert_allclose(p, raw / raw.sum(), rtol=1e-5)
    p = priorities(buf, ReplayConfig(capacity=4, alpha=0.5, replay_per_step=2))
    raw = np.array([1e-3, 1.0000005, 1.7320511, 0.0])   # their square roots
    np.testing.assert_allclose(p, raw / raw.sum(), rtol=1e-5)
    p = priorities(buf, ReplayConfig(capacity=4, prioritized=False, replay_per_step=2))
    np.testing.assert_allclose(p, [1 / 3, 1 / 3, 1 / 3, 0.0], rtol=1e-6)


def test_sampling_frequencies():
    buf = filled([1.0, 2.0, 4.0], capacity=4)
    n = 20000
    for cfg, expected in [(ReplayConfig(capacity=4, alpha=1.0, replay_per_step=2), [0.0, 0.25, 0.75, 0.0]),
                          (ReplayConfig(capacity=4, prioritized=False, replay_per_step=2), [1 / 3] * 3 + [0.0])]:
        idx, _, valid = sample_jit(buf, jax.random.PRNGKey(0), n, cfg)
        assert bool(np.all(valid))
        freq = np.bincount(np.asarray(idx), minlength=4) / n
        np.testing.assert_allclose(freq, expected, atol=0.015)   # ~5 standard deviations


def test_importance_weights_by_hand():
    buf = filled([1.0, 2.0, 4.0])
    cfg = ReplayConfig(capacity=3, alpha=1.0, beta=0.5, replay_per_step=2)
    idx, w, valid = sample_jit(buf, jax.random.PRNGKey(1), 64, cfg)
    idx, w = np.asarray(idx), np.asarray(w)
    # P = [~2.5e-7, 1/4, 3/4]; w = (3 P)^-0.5 = [., 1.1547, 0.6667]; / max drawn (1.1547) -> [., 1, sqrt(1/3)]
    assert set(idx.tolist()) == {1, 2}
    np.testing.assert_allclose(w[idx == 1], 1.0, rtol=1e-5)
    np.testing.assert_allclose(w[idx == 2], np.sqrt(1 / 3), rtol=1e-5)
    assert bool(np.all(valid))
    _, w, _ = sample_jit(buf, jax.random.PRNGKey(1), 64, ReplayConfig(capacity=3, prioritized=False, replay_per_step=2))
    np.testing.assert_allclose(w, 1.0, rtol=1e-6)


def test_empty_buffer():
    buf = init_buffer(3, L)
    idx, w, valid = sample_jit(buf, jax.random.PRNGKey(0), 5, ReplayConfig(capacity=3, replay_per_step=2))
    assert idx.shape == (5,) and bool(np.all((np.asarray(idx) >= 0) & (np.asarray(idx) < 3)))
    np.testing.assert_array_equal(valid, np.zeros(5, bool))
    np.testing.assert_array_equal(w, np.zeros(5, np.float32))
    s = stats(buf)
    assert int(s["size"]) == 0 and float(s["mean_reward"]) == 0.0 and float(s["success_rate"]) == 0.0


def test_orbax_round_trip(tmp_path):
    buf = insert_jit(init_buffer(3, L), *batch([0, 1], [0.5, 1.5], success=[True, False]))
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(tmp_path / "replay", buf)
    ckptr.wait_until_finished()
    restored = ckptr.restore(tmp_path / "replay", init_buffer(3, L))
    assert type(restored) is type(buf)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(buf)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
