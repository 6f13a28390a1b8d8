"""Uniformly random grammar walks: random valid theories for tests and benchmarks.

Each step picks uniformly among the tokens the jitted mask allows, so every
walk is a complete theory ending in EOS within max_len, padded with PAD.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import automaton
from . import vocab as V


@functools.partial(jax.jit, static_argnames=("num", "max_len"))
def random_walk_tokens(tables: automaton.GrammarTables, key: jax.Array, num: int,
                       max_len: int) -> jax.Array:
    """[num, max_len] int32 token ids of `num` uniform random walks (PAD after EOS)."""

    def walk(row_key):
        def choose(state, pos):
            mask = automaton.allowed_mask(tables, state, max_len - pos)
            logits = jnp.where(mask, 0.0, -jnp.inf)
            token = jax.random.categorical(jax.random.fold_in(row_key, pos), logits)
            return automaton.step(tables, state, token), token

        _, tokens = jax.lax.scan(choose, automaton.init_state(tables), jnp.arange(max_len))
        return tokens

    return jax.vmap(walk)(jax.random.split(key, num))


def random_walks(rng: np.random.Generator | int, n: int, max_len: int) -> list[list[str]]:
    """`n` random valid theories as token-string lists BOS..EOS."""
    seed = rng if isinstance(rng, int) else int(rng.integers(2**31))
    ids = np.asarray(random_walk_tokens(automaton.load_tables(), jax.random.PRNGKey(seed), n, max_len))
    return [V.token_strs(row[: int(np.argmax(row == V.EOS)) + 1]) for row in ids]
