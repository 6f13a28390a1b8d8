"""The masked, tempered, top-k policy: the one distribution the sampler draws from and the
loss scores.

At every position the model's logits are restricted to the tokens the grammar
allows there (the rest set to NEG_INF, a large finite negative, so softmax and
entropy never see inf - inf), then divided by the temperature, then optionally
cut to the top k. The sampler records the log-probs of that distribution, and
the update recomputes them with `log_policy`: both go through `policy_logits`,
so they cannot drift apart.

    spec = PolicySpec(temperature=1.0, top_k=None)
    masks = grammar_masks(tables, tokens, max_len)                 # [B, T, V] bool
    masks = packed_grammar_masks(tables, tokens, positions, max_len)  # packed rows
    logp = log_policy(params, model_config, tokens, masks, spec)   # [B, T-1, V]
    token_logprobs(logp, tokens), entropy(logp)                     # [B, T-1] each

`temperature <= 0` means greedy sampling; its recorded log-probs are those of
the untempered (T = 1) masked policy, and `log_policy` uses the same rule.

The sampler draws from `drawable_logp`: the same distribution restricted to the
allowed tokens, or, where the logits are not finite (diverged parameters), the
uniform choice among the allowed tokens, so that it never emits a token the
grammar forbids.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from . import model as M
from .grammar import automaton

NEG_INF = -1e9  # logit of a token the grammar forbids (finite: no NaN in softmax/entropy)


@struct.dataclass
class PolicySpec:
    """How logits become the policy. A pytree: temperature is traced (no recompile per value),
    top_k is static."""
    temperature: jax.Array | float = 1.0                              # [] float32; <= 0: greedy
    top_k: int | None = struct.field(pytree_node=False, default=None)  # keep the k most likely; None: all

    @classmethod
    def from_config(cls, grpo_config: Any, temperature: float | None = None) -> "PolicySpec":
        """The training policy of a GRPOConfig (top_k 0 there means off)."""
        return cls(temperature=grpo_config.temperature if temperature is None else temperature,
                   top_k=grpo_config.top_k or None)


def apply_grammar(logits: jax.Array, allowed: jax.Array) -> jax.Array:
    """Logits [..., V] with the tokens the grammar forbids (allowed False) set to NEG_INF."""
    return jnp.where(allowed, logits, NEG_INF)


def policy_logits(masked_logits: jax.Array, spec: PolicySpec) -> jax.Array:
    """Masked logits -> logits of the sampling policy (temperature, then optional top-k)."""
    temperature = jnp.asarray(spec.temperature)
    t = jnp.where(temperature > 0, temperature, 1.0).astype(jnp.float32)
    scaled = masked_logits / t
    if spec.top_k is not None:
        kth = jax.lax.top_k(scaled, spec.top_k)[0][..., -1:]
        scaled = jnp.where(scaled >= kth, scaled, NEG_INF)
    return scaled


def drawable_logp(logp: jax.Array, allowed: jax.Array | None = None) -> jax.Array:
    """[b, V] the log-probs the sampler draws from: logp [b, V] of the policy with the tokens
    `allowed` [b, V] forbids at -inf (None: all allowed).

    A row whose allowed tokens carry no finite, positive probability mass (NaN or infinite
    logits from diverged parameters or an overflowing temperature, or every allowed token
    underflowing to probability 0) becomes the uniform choice among its allowed tokens
    (log-prob 0 each, unnormalised): the sampler then still emits only tokens the grammar
    allows. Other rows are logp itself at the allowed tokens, so their draws are unchanged
    (the forbidden tokens' probabilities, exp(NEG_INF - ...), were exactly 0 already).
    """
    if allowed is None:
        allowed = jnp.ones(logp.shape, bool)
    masked = jnp.where(allowed, logp, -jnp.inf)
    mass = jnp.sum(jnp.exp(masked), axis=-1, keepdims=True)                 # [b, 1]
    sane = jnp.isfinite(mass) & (mass > 0)
    return jnp.where(sane, masked, jnp.where(allowed, 0.0, -jnp.inf))


def grammar_masks(tables: automaton.GrammarTables, tokens: jax.Array, max_len: int) -> jax.Array:
    """[B, T, V] bool: the tokens the grammar allows at each position of token rows [B, T]
    (the sampler's masks, recomputed)."""
    return jax.vmap(automaton.sequence_masks, in_axes=(None, 0, None))(tables, tokens, max_len)


def packed_grammar_masks(tables: automaton.GrammarTables, tokens: jax.Array, positions: jax.Array,
                         max_len: int) -> jax.Array:
    """[B, T, V] bool: `grammar_masks` of packed rows, tokens [B, T] holding several sequences
    one after another, positions [B, T] each token's position in its own sequence (0 starts
    one: the automaton restarts there). Each sequence gets exactly its unpacked masks."""

    def row(tokens, positions):
        def read(state, pos_token):
            pos, token = pos_token
            state = jax.tree.map(lambda fresh, s: jnp.where(pos == 0, fresh, s),
                                 automaton.init_state(tables), state)
            mask = automaton.allowed_mask(tables, state, max_len - pos)
            return automaton.step(tables, state, token), mask

        return jax.lax.scan(read, automaton.init_state(tables), (positions, tokens))[1]

    return jax.vmap(row)(tokens, positions)


def log_policy(params: Any, model_config: M.ModelConfig, tokens: jax.Array,
               masks: jax.Array | None, spec: PolicySpec, positions: jax.Array | None = None,
               segments: jax.Array | None = None, *, grad_dtype: str = "float32") -> jax.Array:
    """[B, T-1, V] log-probs of the policy predicting tokens[:, 1:] from tokens [B, T].

    masks [B, T, V] from `grammar_masks` (None: no grammar, for measuring its cost).
    Packed rows: positions, segments [B, T] as in `model.forward` (a prediction across a
    segment boundary is meaningless, and the caller masks it out). grad_dtype: see `model.forward`.
    Differentiable; one parallel forward pass.
    """
    logits = M.forward(params, model_config, tokens, positions, segments,
                       grad_dtype=grad_dtype)[:, :-1]
    if masks is not None:
        logits = apply_grammar(logits, masks[:, 1:])
    return jax.nn.log_softmax(policy_logits(logits, spec), axis=-1)


def token_logprobs(log_probs: jax.Array, tokens: jax.Array) -> jax.Array:
    """[B, T-1]: the log-prob of each token tokens[:, 1:] under log_probs [B, T-1, V]."""
    return jnp.take_along_axis(log_probs, tokens[:, 1:, None], axis=-1)[..., 0]


def entropy(log_probs: jax.Array) -> jax.Array:
    """[...]: the entropy of each distribution in log_probs [..., V]."""
    return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)
