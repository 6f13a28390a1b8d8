"""Benchmark of one full GRPO step (sample, reward, mu=1 update) with its breakdown.

Each phase is timed on its own after a warm-up (compiles excluded), with
`block_until_ready`, then the whole `train.train_step` is timed as the trainer
runs it (up to its outputs on the host). The machine's matmul FLOP/s is
measured in the same run so the update can be compared with the ceiling.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from theorygrpo_jax import grpo
from theorygrpo_jax import model as M
from theorygrpo_jax import sampler as S
from theorygrpo_jax import tasks
from theorygrpo_jax import train as T
from theorygrpo_jax.config import Config, config_from_dict
from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.policy import PolicySpec
from theorygrpo_jax.reward import score_batch

from .ceilings import measure_matmul_flops
from .machine import host_cpu


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def original_config(group_size: int = 64, task: str = "from_scratch") -> Config:
    """The original TheoryGPT size with the seed's GRPO defaults."""
    return config_from_dict({
        "model": {"d_model": 512, "n_heads": 8, "n_layers": 4, "d_ff": 1024, "max_len": 512},
        "reward": {"soft_len": 256, "max_len": 512},
        "grpo": {"group_size": group_size, "learning_rate": 1e-4, "kl_coef": 0.05},
        "train": {"task": task},
    }, "<original>")


def bench_step(config: Config, repeats: int = 3,
               update_options: dict[str, Any] | None = None) -> dict[str, float]:
    """Median seconds of sample / reward / update / whole step, plus context figures.
    update_options: keyword arguments of `grpo.make_update_step` (e.g. {"packing": True}) for
    the update the step runs instead of the config's own."""
    def fresh_state():  # placed on the devices as the trainer places it
        return T.place(config, T.init_state(config))[0]

    state, inputs, fns = T.place(config, T.init_state(config))
    if update_options:
        fns = dataclasses.replace(fns, update=grpo.make_update_step(config.model, config.grpo,
                                                                     **update_options))
    gc = config.grpo
    prompts, lens = tasks.step_prompts(inputs.prompt_tokens, inputs.prompt_len, 0,
                                       gc.prompts_per_step, gc.group_size)
    prompts, lens = jnp.asarray(prompts), jnp.asarray(lens)
    key = jax.random.PRNGKey(0)
    policy = PolicySpec.from_config(gc, temperature=np.float32(gc.temperature))

    def sample():
        return S.sample_tokens(state.params, inputs.tables, prompts, lens, key, policy,
                               config=config.model)

    def step():  # the trainer's step, up to what its host bookkeeping reads
        nonlocal state
        state, outputs = T.train_step(state, inputs, fns, config)
        jax.device_get(outputs)

    rollout = jax.block_until_ready(sample())
    jax.block_until_ready(score_batch(rollout.tokens, config.reward))
    step()  # compiles rollout and update for this step's bucket
    times: dict[str, list[float]] = {"sample_s": [], "reward_s": [], "update_s": [], "step_s": []}
    for _ in range(repeats):
        times["sample_s"].append(_timed(lambda: jax.block_until_ready(sample())))
        times["reward_s"].append(_timed(lambda: jax.block_until_ready(
            score_batch(rollout.tokens, config.reward))))
        state, batch, *_ = fns.rollout(state, inputs.tables, prompts, lens)
        cut = grpo.split_by_length(batch, gc.update_chunks, config.model.max_len)
        t = _timed(lambda: jax.block_until_ready(fns.update(state, cut, inputs.tables)))
        # The update donated `state`; the step runs on a fresh one (at step 0: the prompts,
        # hence the compiled bucket, of the warm-up step).
        state = fresh_state()
        times["update_s"].append(t)
        times["step_s"].append(_timed(step))
    result = {k: float(np.median(v)) for k, v in times.items()}
    params = M.num_params(state.params)
    tokens = int(np.sum(np.asarray(rollout.tokens) != V.PAD))
    # the forward GEMMs' ceiling; with bfloat16 matmuls the backward's run in float32, so
    # the fraction is then against a stricter bar than the update's own
    flops = measure_matmul_flops(dtype=config.model.matmul_dtype)
    # forward+backward of the policy (6 N per token) + reference forward (2 N per token)
    update_flops = 8 * params * tokens
    result.update({
        "params": params, "group_size": gc.group_size, "batch": gc.batch_size,
        "mean_length": tokens / gc.batch_size, "matmul_flops_per_s": flops,
        "update_flop_fraction": update_flops / result["update_s"] / flops,
        "platform": jax.devices()[0].platform, "device": str(jax.devices()[0].device_kind),
        "cpu": host_cpu(),
    })
    return result


def bench_update_variants(config: Config, variants: dict[str, dict[str, Any]], repeats: int = 5,
                          rollouts: int = 2) -> dict[str, Any]:
    """Paired A/B of update variants on the same rollouts: each round runs every variant once,
    in turn, on the same batch (so drift in the machine's speed hits them alike).

    variants: name -> keyword arguments of `grpo.make_update_step` (e.g. {"packing": True}).
    Each variant is timed as the trainer runs it: the host's split of the batch
    (`split_by_length`) and the jitted update (packing included), to the new state ready.
    Returns per variant the min / median / max seconds of host prep, update and both, the
    padded slots the update ran on, and the loss and metrics of the first rollout (for
    checking that the variants agree).
    """
    state, inputs, fns = T.place(config, T.init_state(config))
    gc, mc = config.grpo, config.model
    batches = []
    for _ in range(rollouts):
        state, batch, *_ = fns.rollout(state, inputs.tables, *map(jnp.asarray, tasks.step_prompts(
            inputs.prompt_tokens, inputs.prompt_len, int(state.step), gc.prompts_per_step,
            gc.group_size)))
        state = state.replace(step=state.step + 1)
        batches.append(jax.block_until_ready(batch))
    updates = {name: grpo.make_update_step(mc, gc, **kw) for name, kw in variants.items()}
    copy = lambda tree: jax.tree.map(jnp.copy, tree)  # noqa: E731  (the update donates its state)
    out: dict[str, Any] = {"tokens": [int(np.sum(np.asarray(b.completion_mask))) for b in batches],
                           "nonpad": [int(np.sum(np.asarray(b.tokens) != V.PAD)) for b in batches]}
    times = {name: {"prep_s": [], "update_s": [], "total_s": []} for name in variants}
    for name, update in updates.items():   # compile every shape the rounds will see
        for b in batches:
            _, metrics = update(copy(state), grpo.split_by_length(b, gc.update_chunks, mc.max_len),
                                inputs.tables)
            out.setdefault(name, {}).setdefault("metrics", []).append(
                {k: float(v) for k, v in jax.device_get(metrics).items()})
        chunks = grpo.split_by_length(batches[0], gc.update_chunks, mc.max_len)
        out[name]["slots"] = (int(np.asarray(grpo.pack_rows(chunks, mc.max_len).tokens).size)
                              if variants[name].get("packing") else
                              int(sum(np.asarray(c.tokens).size for c in chunks)))
    for _ in range(repeats):
        for b in batches:
            for name, update in updates.items():
                fresh = jax.block_until_ready(copy(state))
                t0 = time.perf_counter()
                chunks = grpo.split_by_length(b, gc.update_chunks, mc.max_len)
                t1 = time.perf_counter()
                jax.block_until_ready(update(fresh, chunks, inputs.tables))
                t2 = time.perf_counter()
                for key, value in (("prep_s", t1 - t0), ("update_s", t2 - t1), ("total_s", t2 - t0)):
                    times[name][key].append(value)
    for name, figures in times.items():
        for key, values in figures.items():
            out[name][key] = [float(np.min(values)), float(np.median(values)), float(np.max(values))]
    return out


def bench_update_parts(config: Config, packed: grpo.PackedBatch, repeats: int = 5) -> dict[str, float]:
    """Best-of seconds of the packed update's parts at one packed shape: the grammar masks
    (`packed_grammar_masks`), the policy's forward, the policy's and the reference's forwards
    as two calls and as one call vmapped over the stacked parameters, and the loss's
    forward + backward. Which candidates could pay (issue 17: masks from the sampler, one
    forward for both parameter sets)."""
    from theorygrpo_jax.grammar import automaton
    from theorygrpo_jax.policy import log_policy, packed_grammar_masks
    from theorygrpo_jax.train import init_state

    from .timing import best_time

    mc, gc = config.model, config.grpo
    state = init_state(config)
    tables = automaton.load_tables()
    spec = PolicySpec.from_config(gc)
    packed = jax.device_put(packed)
    masks_fn = jax.jit(lambda t, p: packed_grammar_masks(tables, t, p, mc.max_len))
    masks = masks_fn(packed.tokens, packed.positions)

    def fwd(params):
        return log_policy(params, mc, packed.tokens, masks, spec, packed.positions, packed.segments)

    two = jax.jit(lambda p, r: (fwd(p), fwd(r)))
    stacked = jax.jit(lambda pr: jax.vmap(fwd)(pr))
    pair = jax.tree.map(lambda a, b: jnp.stack([a, b]), state.params, state.ref_params)
    ref = fwd(state.ref_params)
    grad = jax.jit(jax.value_and_grad(lambda p: grpo.packed_grpo_loss(
        p, packed, masks, ref, 0.05, 0.01, model_config=mc, config=gc)[0]))
    return {"masks_s": best_time(masks_fn, packed.tokens, packed.positions, repeats=repeats),
            "forward_s": best_time(jax.jit(fwd), state.params, repeats=repeats),
            "two_forwards_s": best_time(two, state.params, state.ref_params, repeats=repeats),
            "stacked_forward_s": best_time(stacked, pair, repeats=repeats),
            "loss_fwd_bwd_s": best_time(grad, state.params, repeats=repeats),
            "slots": int(packed.tokens.size)}


def bench_step_variants(config: Config, variants: dict[str, dict[str, Any]],
                        repeats: int = 3) -> dict[str, Any]:
    """Paired A/B of whole trainer steps (`train.train_step`: sample, reward, split, update, the
    outputs on the host) whose updates differ: variants name -> keyword arguments of
    `grpo.make_update_step`. Every round runs each variant once, in turn, from a copy of the
    same state (so all sample the same theories). Returns per variant min / median / max
    seconds and the first step's metrics."""
    state, inputs, fns = T.place(config, T.init_state(config))
    runs = {name: dataclasses.replace(fns, update=grpo.make_update_step(config.model, config.grpo,
                                                                        **kw))
            for name, kw in variants.items()}
    copy = lambda tree: jax.tree.map(jnp.copy, tree)  # noqa: E731  (the step donates its state)
    out: dict[str, Any] = {}
    for name, run in runs.items():   # compiles (the rollout once, each update's shapes)
        _, outputs = T.train_step(copy(state), inputs, run, config)
        out[name] = {"metrics": {k: float(v) for k, v in jax.device_get(outputs.metrics).items()}}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            fresh = jax.block_until_ready(copy(state))
            times[name].append(_timed(lambda: jax.device_get(
                T.train_step(fresh, inputs, run, config)[1])))
    for name, values in times.items():
        out[name]["step_s"] = [float(np.min(values)), float(np.median(values)), float(np.max(values))]
    return out
