"""GRPO as pure functions: group-relative advantages, the clipped loss, the update step.

Everything uses the grammar-masked policy: at each position the model's
logits are restricted to the tokens the grammar allows (the same masks the
sampler applied), tempered, and renormalised. The vocabulary is small, so the
KL to the reference policy is computed exactly over that distribution (the
k3 sampled-token estimator is an option).

    advantages = group_advantages(rewards, group_size)                 # [B]
    advantages = custom_advantages(fn, rewards, grpo_config)           # the grpo.advantage_fn hook
    chunks = split_by_length(batch, chunks=4, max_len=L)               # host: less padding
    update = make_update_step(model_config, grpo_config)              # jitted
    state, metrics = update(state, chunks, tables)
    update = make_update_step(model_config, grpo_config, packing=True)  # theories packed per row
    state, metrics = update(state, chunks, tables)                     # (pack_rows on the host)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from . import model as M
from . import replay as R
from .config import GRPOConfig, ReplayConfig
from .grammar import vocab as V
from .grammar.automaton import GrammarTables
from .policy import PolicySpec, grammar_masks, log_policy, packed_grammar_masks
from .train_state import TrainState


@struct.dataclass
class PolicyBatch:
    """What one update learns from: B theories (fresh rollouts, then replayed ones), T positions."""
    tokens: jax.Array          # [B, T] int32   BOS ... EOS, PAD after
    old_logprobs: jax.Array    # [B, T] float32 log-prob of each token under the sampling policy
    completion_mask: jax.Array  # [B, T] bool   tokens the policy chose (not prompt, not PAD)
    advantages: jax.Array      # [B] float32   group-relative advantage of each theory
    weights: jax.Array         # [B] float32   importance weight (1 for fresh rollouts; replay: IS weight)


def group_advantages(rewards: jax.Array, group_size: int, scale_by_std: bool = True,
                     eps: float = 1e-6) -> jax.Array:
    """A_i = (r_i - mean_group) / (std_group + eps) for rewards [B] laid out group by group.

    std is the sample standard deviation (ddof = 1), as torch.std in the seed.
    scale_by_std=False gives Dr. GRPO's unscaled advantages r_i - mean_group.
    """
    grouped = rewards.reshape(-1, group_size)
    centred = grouped - grouped.mean(axis=1, keepdims=True)
    if scale_by_std:
        centred = centred / (grouped.std(axis=1, ddof=1, keepdims=True) + eps)
    return centred.reshape(-1)


def custom_advantages(fn: Callable, rewards: jax.Array, config: GRPOConfig) -> jax.Array:
    """fn(rewards [B], group_size, scale_by_std, advantage_eps) as float32 advantages [B]: the
    `grpo.advantage_fn` hook (rewards laid out group by group, as for `group_advantages`;
    traced inside the jitted step). A result of another shape is a ValueError naming the hook."""
    out = jnp.asarray(fn(rewards, config.group_size, config.scale_by_std, config.advantage_eps))
    if out.shape != rewards.shape:
        name = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', fn)}"
        raise ValueError(f"grpo.advantage_fn {name} returned shape {out.shape} for rewards of "
                         f"shape {rewards.shape}: it must return one advantage per theory")
    return out.astype(jnp.float32)


def baseline_advantages(replayed_rewards: jax.Array, rewards: jax.Array, group_size: int,
                        scale_by_std: bool = True, eps: float = 1e-6) -> jax.Array:
    """Advantages [n] of replayed theories against this step's baseline: the fresh batch's mean
    reward, divided by its mean group std (sample std, as in `group_advantages`) + eps."""
    grouped = rewards.reshape(-1, group_size)
    scale = grouped.std(axis=1, ddof=1).mean() + eps if scale_by_std else 1.0
    return (replayed_rewards - grouped.mean()) / scale


def replayed_batch(buffer: R.ReplayBuffer, rng: jax.Array, config: ReplayConfig,
                   rewards: jax.Array, grpo_config: GRPOConfig) -> PolicyBatch:
    """config.replay_per_step theories drawn from the buffer, as rows that join this step's update:
    their stored tokens and sampling log-probs, their advantage against this step's fresh
    rewards [B] (`baseline_advantages`), their importance weights; rows drawn from an
    empty buffer have weight 0 and no completion tokens."""
    idx, weights, valid = R.sample(buffer, rng, config.replay_per_step, config)
    advantages = baseline_advantages(buffer.rewards[idx], rewards, grpo_config.group_size,
                                     grpo_config.scale_by_std, grpo_config.advantage_eps)
    return PolicyBatch(tokens=buffer.tokens[idx], old_logprobs=buffer.logprobs[idx],
                       completion_mask=buffer.completion_mask[idx] & valid[:, None],
                       advantages=jnp.where(valid, advantages, 0.0),
                       weights=jnp.where(valid, weights, 0.0))


def entropy_coefficient(config: GRPOConfig, step: jax.Array) -> jax.Array:
    """The entropy bonus coefficient at `step` under the configured schedule."""
    start, end = config.entropy_coef, config.entropy_coef_final
    progress = jnp.clip(step / config.entropy_decay_steps, 0.0, 1.0)
    if config.entropy_schedule == "constant":
        return jnp.asarray(start, jnp.float32)
    if config.entropy_schedule == "linear":
        return start + (end - start) * progress
    if config.entropy_schedule == "cosine":
        return end + (start - end) * 0.5 * (1.0 + jnp.cos(math.pi * progress))
    return start * (end / start) ** progress  # exponential


def adapt_kl_coef(kl_coef: jax.Array, kl: jax.Array, config: GRPOConfig) -> jax.Array:
    """Adaptive KL controller (Ziegler et al. 2019): move the coefficient toward target_kl."""
    if config.target_kl is None:
        return kl_coef
    error = jnp.clip(kl / config.target_kl - 1.0, -0.2, 0.2)
    return kl_coef * (1.0 + error / config.kl_horizon)


def _sums(per_token: jax.Array, mask: jax.Array, weights: jax.Array, mode: str) -> jax.Array:
    """Numerator of a masked mean of per_token [B, T]: over tokens, or of per-sequence means."""
    mask = mask.astype(jnp.float32)
    weighted = per_token * mask * weights[:, None]
    if mode == "token":
        return weighted.sum()
    return (weighted.sum(axis=1) / jnp.maximum(mask.sum(axis=1), 1.0)).sum()


def policy_terms(log_probs: jax.Array, ref_log_probs: jax.Array, targets: jax.Array,
                 old_logprobs: jax.Array, advantages: jax.Array,
                 config: GRPOConfig) -> dict[str, jax.Array]:
    """Per-token terms of the GRPO objective, each [B, T].

    log_probs, ref_log_probs [B, T, V]: current and reference masked policies;
    targets [B, T] the tokens taken; old_logprobs [B, T] their log-probs when
    sampled; advantages [B].
    """
    token_logp = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    ratio = jnp.exp(token_logp - old_logprobs)
    high = config.clip_range if config.clip_range_high is None else config.clip_range_high
    adv = advantages[:, None]
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - config.clip_range, 1.0 + high) * adv)
    probs = jnp.exp(log_probs)
    entropy = -jnp.sum(probs * log_probs, axis=-1)
    if config.kl_estimator == "exact":
        kl = jnp.sum(probs * (log_probs - ref_log_probs), axis=-1)
    else:  # k3: r - 1 - log r with r = pi_ref / pi at the sampled token
        ref_token = jnp.take_along_axis(ref_log_probs, targets[..., None], axis=-1)[..., 0]
        log_r = ref_token - token_logp
        kl = jnp.exp(log_r) - 1.0 - log_r
    clipped = jnp.where(adv >= 0, ratio > 1.0 + high, ratio < 1.0 - config.clip_range)
    return {"surrogate": surrogate, "kl": kl, "entropy": entropy, "ratio": ratio,
            "clipped": clipped.astype(jnp.float32)}


def grpo_loss(params: Any, chunks: tuple[PolicyBatch, ...], masks: tuple[jax.Array, ...],
              ref_log_probs: tuple[jax.Array, ...], kl_coef: jax.Array, entropy_coef: jax.Array, *,
              model_config: M.ModelConfig, config: GRPOConfig) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped policy-gradient loss + KL penalty - entropy bonus, and its parts.

    The batch comes as one or more chunks of rows, each cut to its own length
    (less padding): chunk c has tokens [B_c, T_c], grammar masks [B_c, T_c, V]
    and reference log-probs [B_c, T_c - 1, V]. Means are over the whole batch,
    so the loss does not depend on how the rows are chunked.
    """
    mode = config.loss_aggregation
    totals = {k: 0.0 for k in ("total_loss", "policy_loss", "kl", "entropy", "clip_fraction", "ratio_mean")}
    tokens_total, rows_total = 0.0, 0
    for batch, mask_c, ref in zip(chunks, masks, ref_log_probs):
        log_probs = log_policy(params, model_config, batch.tokens, mask_c,
                               PolicySpec.from_config(config))                 # [B, T-1, V]
        terms = policy_terms(log_probs, ref, batch.tokens[:, 1:], batch.old_logprobs[:, 1:],
                             batch.advantages, config)
        per_token = -terms["surrogate"] + kl_coef * terms["kl"] - entropy_coef * terms["entropy"]
        mask = batch.completion_mask[:, 1:]
        ones = jnp.ones_like(batch.weights)
        totals["total_loss"] += _sums(per_token, mask, batch.weights, mode)
        totals["policy_loss"] += _sums(-terms["surrogate"], mask, batch.weights, mode)
        for key, term in (("kl", "kl"), ("entropy", "entropy"), ("clip_fraction", "clipped"),
                          ("ratio_mean", "ratio")):
            totals[key] += _sums(terms[term], mask, ones, "token")
        tokens_total += mask.sum()
        rows_total += mask.shape[0]
    tokens_total = jnp.maximum(tokens_total, 1.0)
    loss_count = tokens_total if mode == "token" else rows_total
    metrics = {k: v / (loss_count if k in ("total_loss", "policy_loss") else tokens_total)
               for k, v in totals.items()}
    return metrics["total_loss"], metrics


def make_optimizer(config: GRPOConfig) -> optax.GradientTransformation:
    """AdamW behind a global gradient-norm clip."""
    adam = optax.adamw(config.learning_rate, b1=config.adam_b1, b2=config.adam_b2,
                       weight_decay=config.weight_decay)
    if config.max_grad_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), adam)
    return adam


def _on_several_devices(tree: Any) -> bool:
    """True when some array of `tree` is sharded over more than one device."""
    return any(len(getattr(getattr(x, "sharding", None), "device_set", ())) > 1
               for x in jax.tree.leaves(tree))


def split_by_length(batch: PolicyBatch, chunks: int, max_len: int) -> tuple[PolicyBatch, ...]:
    """Sort rows by length and cut `chunks` groups of rows to their own bucketed length.

    Host-side helper (reads the lengths): returns chunks of static shapes
    [~B / chunks, T_c] with T_c = `bucket_length` of the chunk's longest row.
    A batch on one device is read to the host once and cut there (NumPy chunks: no
    per-slice dispatch); one sharded over several devices is cut on them (it stays there).
    """
    if not _on_several_devices(batch):
        batch = jax.device_get(batch)
    lengths = np.asarray(np.sum(np.asarray(batch.tokens) != V.PAD, axis=1))
    order = np.array_split(np.argsort(lengths, kind="stable"), min(chunks, len(lengths)))
    out = []
    for rows in order:
        width = bucket_length(int(lengths[rows].max()), max_len)
        out.append(jax.tree.map(lambda a: a[rows][:, :width] if a.ndim == 2 else a[rows], batch))
    return tuple(out)


def bucket_length(longest: int, max_len: int) -> int:
    """The update's sequence length for rows up to `longest` tokens: 32, 64, 96, 128, then
    powers of two (few distinct shapes, so few compiles), never above max_len."""
    width = -(-longest // 32) * 32
    if width > 128:
        width = 1 << (width - 1).bit_length()
    return min(max_len, width)


@struct.dataclass
class PackedBatch:
    """A batch's theories packed several to a row (`pack_rows`): R rows of W slots, each theory
    whole in one row, PAD in the slots left over. The update's forward runs on it with a
    block-causal mask and per-theory positions, so every token's log-prob is its unpacked one."""
    tokens: jax.Array           # [R, W] int32   theories one after another, PAD in unused slots
    positions: jax.Array        # [R, W] int32   each token's position in its own theory; 0 unused
    segments: jax.Array         # [R, W] int32   1 + the theory's row (the chunks' rows in order); 0 unused
    old_logprobs: jax.Array     # [R, W] float32 log-prob of each token under the sampling policy
    completion_mask: jax.Array  # [R, W] bool    tokens the policy chose (never a theory's first)
    advantages: jax.Array       # [R, W] float32 the theory's advantage, at each of its slots
    weights: jax.Array          # [R, W] float32 the theory's importance weight, at each of its slots
    theories: int = struct.field(pytree_node=False, default=0)  # B: rows of the unpacked batch


def packed_rows_bucket(rows: int) -> int:
    """The packed batch's row count for `rows` filled rows: 1 to 8 as they are, then four sizes
    an octave (10, 12, 14, 16, 20, 24, 28, 32, 40, ...): at most 1/8 of an octave's top in
    padding rows (the update's time grows with its rows), yet few distinct shapes, so few
    compiles."""
    if rows <= 8:
        return max(rows, 1)
    step = 1 << ((rows - 1).bit_length() - 3)
    return -(-rows // step) * step


def pack_rows(chunks: tuple[PolicyBatch, ...], max_len: int, min_width: int = 128) -> PackedBatch:
    """Host-side: the theories of `chunks` (`split_by_length`'s, or one whole batch) packed into
    rows of W = `bucket_length`(max(longest, min_width)) slots by first-fit decreasing, the
    row count rounded up by `packed_rows_bucket`. Theories with no completion token (replayed
    rows drawn from an empty buffer) contribute nothing to the loss and are left out."""
    host = [jax.device_get(c) for c in chunks]
    width_all = max(1, *(int(np.asarray(c.tokens).shape[1]) for c in host))

    def cat(name):  # the chunks' field `name`, rows one after another, [B, width_all] or [B]
        parts = []
        for c in host:
            a = np.asarray(getattr(c, name))
            if a.ndim == 2:
                a = np.pad(a, ((0, 0), (0, width_all - a.shape[1])))
            parts.append(a)
        return np.concatenate(parts)

    tokens, old, completion = cat("tokens"), cat("old_logprobs"), cat("completion_mask")
    advantages, weights = cat("advantages"), cat("weights")
    theories = tokens.shape[0]
    nonpad = tokens != V.PAD
    lengths = np.where(nonpad.any(axis=1), width_all - np.argmax(nonpad[:, ::-1], axis=1), 0)
    keep = np.nonzero(completion[:, 1:].any(axis=1) & (lengths > 1))[0]
    width = bucket_length(max(int(lengths[keep].max(initial=1)), min_width), max_len)
    order = keep[np.argsort(-lengths[keep], kind="stable")]
    free: list[int] = []                 # free slots of each packed row
    row_of, offset_of = np.zeros(theories, np.int64), np.zeros(theories, np.int64)
    for b in order:
        length = int(lengths[b])
        r = next((i for i, f in enumerate(free) if f >= length), len(free))
        if r == len(free):
            free.append(width)
        row_of[b], offset_of[b] = r, width - free[r]
        free[r] -= length
    rows = packed_rows_bucket(max(len(free), 1))
    n = lengths[order]
    src = np.repeat(order, n)                                   # the theory of each placed token
    pos = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)   # its position in the theory
    r, c = row_of[src], offset_of[src] + pos

    def place(values, fill, dtype):
        out = np.full((rows, width), fill, dtype)
        out[r, c] = values
        return out

    return PackedBatch(
        tokens=place(tokens[src, pos], V.PAD, np.int32), positions=place(pos, 0, np.int32),
        segments=place(src + 1, 0, np.int32), old_logprobs=place(old[src, pos], 0.0, np.float32),
        completion_mask=place(completion[src, pos] & (pos > 0), False, bool),
        advantages=place(advantages[src], 0.0, np.float32),
        weights=place(weights[src], 0.0, np.float32), theories=theories)


def packed_grpo_loss(params: Any, packed: PackedBatch, masks: jax.Array, ref_log_probs: jax.Array,
                     kl_coef: jax.Array, entropy_coef: jax.Array, *, model_config: M.ModelConfig,
                     config: GRPOConfig, grad_dtype: str = "float32"
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`grpo_loss` of the theories in a `PackedBatch` (the same value and gradient, to float
    rounding): masks [R, W, V] from `packed_grammar_masks`, ref_log_probs [R, W-1, V].
    grad_dtype: the backward's weight-matmul operands (`model.forward`)."""
    log_probs = log_policy(params, model_config, packed.tokens, masks,
                           PolicySpec.from_config(config), packed.positions, packed.segments,
                           grad_dtype=grad_dtype)
    rows, width = packed.tokens.shape
    n = rows * (width - 1)
    # one "sequence" of length 1 per slot: policy_terms then reads a per-slot advantage
    terms = policy_terms(log_probs.reshape(n, 1, -1), ref_log_probs.reshape(n, 1, -1),
                         packed.tokens[:, 1:].reshape(n, 1), packed.old_logprobs[:, 1:].reshape(n, 1),
                         packed.advantages[:, 1:].reshape(n), config)
    terms = {k: v.reshape(n) for k, v in terms.items()}
    per_token = -terms["surrogate"] + kl_coef * terms["kl"] - entropy_coef * terms["entropy"]
    mask = packed.completion_mask[:, 1:].reshape(n).astype(jnp.float32)
    weights = packed.weights[:, 1:].reshape(n)
    segments = packed.segments[:, 1:].reshape(n)
    tokens_total = jnp.maximum(mask.sum(), 1.0)

    def weighted_sum(values):   # over tokens, or of per-theory means (loss_aggregation)
        weighted = values * mask * weights
        if config.loss_aggregation == "token":
            return weighted.sum()
        num = jax.ops.segment_sum(weighted, segments, packed.theories + 1)
        count = jax.ops.segment_sum(mask, segments, packed.theories + 1)
        return (num / jnp.maximum(count, 1.0)).sum()

    loss_count = tokens_total if config.loss_aggregation == "token" else packed.theories
    metrics = {"total_loss": weighted_sum(per_token) / loss_count,
               "policy_loss": weighted_sum(-terms["surrogate"]) / loss_count}
    for key, term in (("kl", "kl"), ("entropy", "entropy"), ("clip_fraction", "clipped"),
                      ("ratio_mean", "ratio")):
        metrics[key] = (terms[term] * mask).sum() / tokens_total
    return metrics["total_loss"], metrics


def make_update_step(model_config: M.ModelConfig, config: GRPOConfig, *,
                     packing: bool | None = None, matmul_dtype: str | None = None,
                     grad_matmul_dtype: str | None = None,
                     gather_params: Any = None,
                     state_layout: Callable[[TrainState], TrainState] | None = None) -> Callable[
        [TrainState, tuple[PolicyBatch, ...], GrammarTables], tuple[TrainState, dict[str, jax.Array]]]:
    """The jitted GRPO update: `update(state, chunks, tables) -> (state, metrics)`.

    `chunks` is a tuple of PolicyBatch (see `split_by_length`; a single full
    batch is fine). mu = config.inner_iterations optimiser steps on the same
    rollouts; the grammar masks and reference log-probs are computed once. The
    state is donated. One compile per tuple of chunk shapes.

    packing (None: the config's `update_packing`, off when it has none): the host packs the
    chunks' theories several to a row (`pack_rows`) and the update runs on that
    (`packed_grpo_loss`): the same loss and gradient to float rounding, on less padding; one
    compile per packed shape. `update` then also takes a PackedBatch in place of the chunks.
    Chunks sharded over several devices keep the unpacked update (it stays data-parallel).

    matmul_dtype (None: the config's `update_matmul_dtype`, else the model's own): the weight
    matmuls' operand dtype in the update's forward passes (`ModelConfig.matmul_dtype`: sums,
    parameters, gradients and the backward's matmuls stay float32).
    grad_matmul_dtype (None: the config's `update_grad_matmul_dtype`, else float32), packed
    update only, with matmul_dtype "bfloat16": the backward's weight matmuls' operands too.
    gather_params (a replicated sharding; train.param_sharding "fsdp"): the split parameters
    (policy and reference) are all-gathered whole before the forward passes, and the
    gradients reduce-scattered back onto their split (ZeRO-3). Left to itself XLA splits the
    matmuls along the parameters' split axis instead, moving activations between devices.
    state_layout (train: the fsdp shardings): applied to the updated state inside the jitted
    update, so that it leaves the update laid out as it came in.
    """
    optimizer = make_optimizer(config)

    def whole(params: Any) -> Any:
        return params if gather_params is None else jax.lax.with_sharding_constraint(
            params, jax.tree.map(lambda _: gather_params, params))
    matmul_dtype = matmul_dtype or getattr(config, "update_matmul_dtype", None)
    if matmul_dtype:
        model_config = dataclasses.replace(model_config, matmul_dtype=matmul_dtype)
    grad_dtype = grad_matmul_dtype or getattr(config, "update_grad_matmul_dtype", None) or "float32"
    spec = PolicySpec.from_config(config)
    packing = bool(getattr(config, "update_packing", False)) if packing is None else packing

    def optimise(state: TrainState, loss_fn: Callable, data: Any, masks: Any,
                 ref: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        loss_and_grad = jax.value_and_grad(loss_fn, has_aux=True)
        entropy_coef = entropy_coefficient(config, state.step)

        def inner_iteration(carry, _):
            params, opt_state = carry
            (_, metrics), grads = loss_and_grad(whole(params), data, masks, ref, state.kl_coef,
                                                entropy_coef, model_config=model_config,
                                                config=config)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            metrics["grad_norm"] = optax.tree.norm(grads)
            return (optax.apply_updates(params, updates), opt_state), metrics

        (params, opt_state), history = jax.lax.scan(
            inner_iteration, (state.params, state.opt_state), None, length=config.inner_iterations)
        metrics = jax.tree.map(lambda h: h[-1], history)
        metrics["kl_coef"] = state.kl_coef
        metrics["entropy_coef"] = entropy_coef
        new_state = state.replace(params=params, opt_state=opt_state, step=state.step + 1,
                                  kl_coef=adapt_kl_coef(state.kl_coef, metrics["kl"], config))
        return (state_layout or (lambda s: s))(new_state), metrics

    def update(state: TrainState, chunks: tuple[PolicyBatch, ...],
               tables: GrammarTables) -> tuple[TrainState, dict[str, jax.Array]]:
        masks = tuple(grammar_masks(tables, c.tokens, model_config.max_len) for c in chunks)
        ref = tuple(jax.lax.stop_gradient(log_policy(whole(state.ref_params), model_config,
                                                     c.tokens, m, spec))
                    for c, m in zip(chunks, masks))
        return optimise(state, grpo_loss, chunks, masks, ref)

    def packed_update(state: TrainState, packed: PackedBatch,
                      tables: GrammarTables) -> tuple[TrainState, dict[str, jax.Array]]:
        masks = packed_grammar_masks(tables, packed.tokens, packed.positions, model_config.max_len)
        ref = jax.lax.stop_gradient(log_policy(whole(state.ref_params), model_config, packed.tokens,
                                               masks, spec, packed.positions, packed.segments))
        return optimise(state, functools.partial(packed_grpo_loss, grad_dtype=grad_dtype),
                        packed, masks, ref)

    unpacked_step = jax.jit(update, donate_argnums=(0,))
    if not packing:
        return unpacked_step
    packed_step = jax.jit(packed_update, donate_argnums=(0,))

    def dispatch(state, chunks, tables):
        if isinstance(chunks, PackedBatch):
            return packed_step(state, chunks, tables)
        if _on_several_devices(chunks):
            return unpacked_step(state, chunks, tables)
        return packed_step(state, pack_rows(chunks, model_config.max_len), tables)

    return dispatch
