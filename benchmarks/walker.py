"""The random walker baseline: continue each row's prompt with tokens drawn uniformly among the
ones the grammar allows there.

    tokens = walk_tokens(tables, prompt_tokens, prompt_len, key, max_len=L)   # [B, L] int32

`grammar.walks` starts every walk at BOS; the discovery check needs walks that continue the
task's prompt, as the policy does. Rows read their prompt tokens (forced), then each free
position draws uniformly among `automaton.allowed_mask` (the budget rule included, so every
row is a complete theory ending in EOS within max_len, PAD after it). One jitted program:
the positions every prompt covers are only read (as the sampler's prefill), then a
`lax.while_loop` over positions, the grammar vmapped over rows, stopping once every row has
read EOS. No Python per token, so the walker's samples per second are not held back by the
host and the comparison with the jitted sampler is fair.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from theorygrpo_jax.grammar import automaton
from theorygrpo_jax.grammar import vocab as V


def uniform_allowed(u: jax.Array, allowed: jax.Array) -> jax.Array:
    """[B] int32: one token per row, uniform among the True columns of allowed [B, V], given
    the row's uniform draw u [B] in [0, 1).

    The k-th allowed token with k = floor(u x count): one uniform per row (a Gumbel-max draw
    needs V of them and V logs). A row with no allowed token
    gives PAD (id 0); within max_len that never happens (after EOS, PAD is allowed).
    """
    count = jnp.sum(allowed, axis=-1, dtype=jnp.int32)
    k = jnp.minimum((u * count).astype(jnp.int32), count - 1)
    rank = jnp.cumsum(allowed, axis=-1, dtype=jnp.int32)       # allowed tokens up to each column
    hit = allowed & (rank == (k + 1)[:, None])
    return jnp.argmax(hit, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("max_len",))
def walk_tokens(tables: automaton.GrammarTables, prompt_tokens: jax.Array,
                prompt_len: jax.Array, key: jax.Array, *, max_len: int) -> jax.Array:
    """[B, max_len] int32: each row's prompt, then a uniform grammar walk to EOS, then PAD.

    prompt_tokens [B, W] int32 (right-padded, W <= max_len), prompt_len [B] int32 in 1..W;
    the prompts must be valid prefixes (`tasks.pack_prompts` checks them). The rows' draws at
    position p are uniform(fold_in(key, p), (B,)).
    """
    b, width = prompt_tokens.shape
    in_prompt = jnp.arange(width)[None, :] < prompt_len[:, None]
    tokens = jnp.full((b, max_len), V.PAD, jnp.int32).at[:, :width].set(
        jnp.where(in_prompt, prompt_tokens.astype(jnp.int32), V.PAD))
    prompt_len = prompt_len.astype(jnp.int32)
    allowed_of = jax.vmap(automaton.allowed_mask, in_axes=(None, 0, None))
    read = jax.vmap(automaton.step, in_axes=(None, 0, 0))

    # The part every row's prompt covers is only read (no masks, no draws), as the
    # sampler's prefill does.
    start = jnp.min(prompt_len)
    grammar = jax.vmap(lambda _: automaton.init_state(tables))(prompt_len)
    grammar = jax.lax.fori_loop(0, start, lambda p, g: read(tables, g, tokens[:, p]), grammar)

    def unfinished(carry):
        pos, grammar, _ = carry
        return (pos < max_len) & ~jnp.all(automaton.is_finished(tables, grammar))

    def advance(carry):
        pos, grammar, tokens = carry
        u = jax.random.uniform(jax.random.fold_in(key, pos), (b,))
        drawn = uniform_allowed(u, allowed_of(tables, grammar, max_len - pos))
        forced = jax.lax.dynamic_index_in_dim(tokens, pos, axis=1, keepdims=False)
        token = jnp.where(pos < prompt_len, forced, drawn)
        tokens = jax.lax.dynamic_update_index_in_dim(tokens, token, pos, axis=1)
        return pos + 1, read(tables, grammar, token), tokens

    _, _, tokens = jax.lax.while_loop(unfinished, advance, (start, grammar, tokens))
    return tokens


__all__ = ["uniform_allowed", "walk_tokens"]
