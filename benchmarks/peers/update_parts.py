"""Where this project's GRPO update spends its time: its pieces jitted and timed one by one
on the same chunks (JAX only; no torch).

    parts = update_parts(config, state, chunks, tables, repeats=3)

Pieces, each its own jitted function over all the chunks, timed as the median of `repeats`
calls after a compiling one:

- masks_s:         `policy.grammar_masks` of every chunk (the automaton scanned over the rows)
- reference_s:     the reference policy's log-probs (`policy.log_policy`, a forward pass)
- loss_s:          `grpo.grpo_loss` (the policy's forward pass and the loss terms)
- loss_and_grad_s: its value and gradient (forward + backward)
- optimizer_s:     the gradient-norm clip and AdamW on a gradient (optax)

and the chunk shapes, the tokens they hold (`padded_tokens`) against the rows' own tokens.
Compare their sum with the whole jitted update's time (`run.project_step`'s update_s): inside
one program XLA may fuse across the pieces, and the update computes no metrics twice.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import jax
import numpy as np
import optax

from theorygrpo_jax import grpo
from theorygrpo_jax.config import Config
from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.policy import PolicySpec, grammar_masks, log_policy


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of fn() (blocked on its outputs) over `repeats` calls after one."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def update_parts(config: Config, state: Any, chunks: tuple[grpo.PolicyBatch, ...], tables: Any,
                 repeats: int = 3) -> dict[str, Any]:
    """Seconds of each piece of the update of `state` (a TrainState, not donated) on `chunks`
    (see the module docstring)."""
    mc, gc = config.model, config.grpo
    spec = PolicySpec.from_config(gc)

    masks_fn = jax.jit(lambda tb, cs: tuple(grammar_masks(tb, c.tokens, mc.max_len) for c in cs))
    masks = jax.block_until_ready(masks_fn(tables, chunks))
    ref_fn = jax.jit(lambda p, cs, ms: tuple(log_policy(p, mc, c.tokens, m, spec)
                                             for c, m in zip(cs, ms)))
    ref = jax.block_until_ready(ref_fn(state.ref_params, chunks, masks))
    coefs = (state.kl_coef, grpo.entropy_coefficient(gc, state.step))

    def loss(p, cs, ms, rf, kl, ent):
        return grpo.grpo_loss(p, cs, ms, rf, kl, ent, model_config=mc, config=gc)[0]

    loss_fn = jax.jit(loss)
    grad_fn = jax.jit(jax.value_and_grad(loss))
    grads = jax.block_until_ready(grad_fn(state.params, chunks, masks, ref, *coefs)[1])
    optimizer = grpo.make_optimizer(gc)

    def optimize(g, o, p):
        updates, o = optimizer.update(g, o, p)
        return optax.apply_updates(p, updates), o

    opt_fn = jax.jit(optimize)
    out: dict[str, Any] = {
        "masks_s": _median_seconds(lambda: masks_fn(tables, chunks), repeats),
        "reference_s": _median_seconds(lambda: ref_fn(state.ref_params, chunks, masks), repeats),
        "loss_s": _median_seconds(lambda: loss_fn(state.params, chunks, masks, ref, *coefs),
                                  repeats),
        "loss_and_grad_s": _median_seconds(
            lambda: grad_fn(state.params, chunks, masks, ref, *coefs), repeats),
        "optimizer_s": _median_seconds(lambda: opt_fn(grads, state.opt_state, state.params),
                                       repeats),
    }
    out["chunk_shapes"] = [list(c.tokens.shape) for c in chunks]
    out["padded_tokens"] = int(sum(np.prod(c.tokens.shape) for c in chunks))
    out["tokens"] = int(sum(np.sum(np.asarray(c.tokens) != V.PAD) for c in chunks))
    return out
