"""Replay buffer of high-reward theories: a fixed-shape ring buffer living in the TrainState.

    buf = init_buffer(cfg.capacity, max_len)
    buf = insert(buf, tokens, logprobs, completion_mask, rewards, success, eligible)
    idx, w, ok = sample(buf, rng, cfg.replay_per_step, cfg)   # gather buf.tokens[idx], ...

`insert` adds the eligible rows (the caller decides: successes, or
reward >= min_reward) that are neither in the buffer already (same row hash)
nor repeated earlier in the batch, in batch order, overwriting the oldest
entries once full -- as inserting them one by one would, except that a row is
checked against the buffer as it was before the call.

`sample` draws with replacement, uniformly over the valid entries or, when
`config.prioritized`, with P(i) ∝ (reward_i − min valid reward + 1e-6)^alpha.
Importance weights are the standard PER ones, w_i = (N_valid · P(i))^(−beta),
divided by the largest weight among the drawn entries (so w <= 1). An empty
buffer gives valid = False and weight 0 for every draw.

Row keys are a 32-bit hash of the whole token row (prompt, completion, PAD),
so two distinct rows are taken for equal with probability ~2^-32 per pair.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .config import ReplayConfig

PRIORITY_EPS = 1e-6  # added to reward − min reward, so the lowest-reward entry keeps a (tiny) chance


@struct.dataclass
class ReplayBuffer:
    """N = capacity entries of L = max_len tokens."""
    tokens: jax.Array           # [N, L] int32   BOS ... EOS then PAD
    logprobs: jax.Array         # [N, L] float32 sampling log-probs recorded at insertion
    completion_mask: jax.Array  # [N, L] bool    tokens the policy chose
    rewards: jax.Array          # [N]    float32 reward at insertion
    success: jax.Array          # [N]    bool    reward's success at insertion
    keys: jax.Array             # [N]    uint32  row_hash(tokens)
    valid: jax.Array            # [N]    bool    entry holds a theory
    next: jax.Array             # []     int32   slot the next insertion writes
    size: jax.Array             # []     int32   valid entries (<= N)


def init_buffer(capacity: int, max_len: int) -> ReplayBuffer:
    n, l = capacity, max_len
    return ReplayBuffer(tokens=jnp.zeros((n, l), jnp.int32), logprobs=jnp.zeros((n, l), jnp.float32),
                        completion_mask=jnp.zeros((n, l), bool), rewards=jnp.zeros((n,), jnp.float32),
                        success=jnp.zeros((n,), bool), keys=jnp.zeros((n,), jnp.uint32),
                        valid=jnp.zeros((n,), bool), next=jnp.zeros((), jnp.int32),
                        size=jnp.zeros((), jnp.int32))


def init_replay(config: ReplayConfig, enabled: bool, max_len: int) -> ReplayBuffer:
    """The TrainState's buffer: config.capacity entries, or one when replay is off (nothing is
    allocated for a feature that is off; the TrainState keeps its structure)."""
    return init_buffer(config.capacity if enabled else 1, max_len)


def _fmix32(h: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser (a bijection of uint32)."""
    h = h ^ (h >> 16)
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def row_hash(tokens: jax.Array) -> jax.Array:
    """[..., L] int -> [...] uint32: a sum of per-(position, token) mixes, mixed again.

    Rows that differ in a single position never collide.
    """
    t = tokens.astype(jnp.uint32)
    pos = jnp.arange(t.shape[-1], dtype=jnp.uint32)
    per_token = _fmix32((t * np.uint32(0x9E3779B1)) ^ (pos * np.uint32(0x85EBCA77) + np.uint32(0x165667B1)))
    return _fmix32(jnp.sum(per_token, axis=-1, dtype=jnp.uint32) ^ np.uint32(t.shape[-1]))


def insert(buffer: ReplayBuffer, tokens: jax.Array, logprobs: jax.Array, completion_mask: jax.Array,
           rewards: jax.Array, success: jax.Array, eligible: jax.Array) -> ReplayBuffer:
    """Add the eligible, new rows of a batch ([B, L] / [B] arrays) in order; evict the oldest."""
    n = buffer.rewards.shape[0]
    b = tokens.shape[0]
    keys = row_hash(tokens)                                                        # [B]
    in_buffer = jnp.any(buffer.valid[None, :] & (keys[:, None] == buffer.keys[None, :]), axis=1)
    earlier = jnp.arange(b)[None, :] < jnp.arange(b)[:, None]                     # [b, b']: b' < b
    seen_in_batch = jnp.any(earlier & eligible[None, :] & (keys[:, None] == keys[None, :]), axis=1)
    new = eligible & ~in_buffer & ~seen_in_batch
    rank = jnp.cumsum(new.astype(jnp.int32)) - 1                                  # order among new rows
    n_new = jnp.sum(new.astype(jnp.int32))
    keep = new & (rank >= n_new - n)         # more new rows than slots: the last n win, as one by one
    slot = jnp.where(keep, (buffer.next + rank) % n, n)                           # n: dropped
    put = lambda dst, src: dst.at[slot].set(src.astype(dst.dtype), mode="drop")
    return ReplayBuffer(tokens=put(buffer.tokens, tokens), logprobs=put(buffer.logprobs, logprobs),
                        completion_mask=put(buffer.completion_mask, completion_mask),
                        rewards=put(buffer.rewards, rewards), success=put(buffer.success, success),
                        keys=put(buffer.keys, keys), valid=put(buffer.valid, jnp.ones((b,), bool)),
                        next=(buffer.next + n_new) % n, size=jnp.minimum(buffer.size + n_new, n))


def priorities(buffer: ReplayBuffer, config: ReplayConfig) -> jax.Array:
    """[N] float32 sampling probabilities (0 on invalid entries; all 0 when the buffer is empty)."""
    if config.prioritized:
        low = jnp.min(jnp.where(buffer.valid, buffer.rewards, jnp.inf))
        raw = (jnp.where(buffer.valid, buffer.rewards - low, 0.0) + PRIORITY_EPS) ** config.alpha
    else:
        raw = jnp.ones_like(buffer.rewards)
    raw = jnp.where(buffer.valid, raw, 0.0)
    return raw / jnp.maximum(jnp.sum(raw), 1e-30)


def sample(buffer: ReplayBuffer, rng: jax.Array, n: int,
           config: ReplayConfig) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(indices [n] int32, importance_weights [n] float32, valid [n] bool), drawn with replacement."""
    probs = priorities(buffer, config)
    nonempty = buffer.size > 0
    logits = jnp.log(jnp.where(nonempty, probs, 1.0))     # empty: any index, flagged invalid below
    indices = jax.random.categorical(rng, logits, shape=(n,)).astype(jnp.int32)
    p = jnp.maximum(probs[indices], 1e-30)
    w = (buffer.size.astype(jnp.float32) * p) ** (-config.beta)
    w = jnp.where(nonempty, w / jnp.max(w), 0.0)
    return indices, w.astype(jnp.float32), jnp.broadcast_to(nonempty, (n,))


def stats(buffer: ReplayBuffer) -> dict[str, jax.Array]:
    """Scalars for the "Replay Buffer" log block (means over valid entries; 0 when empty)."""
    count = jnp.maximum(buffer.size, 1).astype(jnp.float32)
    return {"size": buffer.size,
            "capacity": jnp.asarray(buffer.rewards.shape[0], jnp.int32),
            "mean_reward": jnp.sum(jnp.where(buffer.valid, buffer.rewards, 0.0)) / count,
            "success_rate": jnp.sum((buffer.valid & buffer.success).astype(jnp.float32)) / count}


__all__ = ["ReplayBuffer", "init_buffer", "init_replay", "insert", "sample", "priorities", "stats",
           "row_hash",
           "PRIORITY_EPS"]
