"""Benchmark of one full GRPO step (sample, reward, mu=1 update) with its breakdown.

Each phase is timed on its own after a warm-up (compiles excluded), with
`block_until_ready`, then the whole `train.train_step` is timed as the trainer
runs it (up to its outputs on the host). The machine's matmul FLOP/s is
measured in the same run so the update can be compared with the ceiling.
"""

from __future__ import annotations

import time

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


def bench_step(config: Config, repeats: int = 3) -> dict[str, float]:
    """Median seconds of sample / reward / update / whole step, plus context figures."""
    def fresh_state():  # placed on the devices as the trainer places it
        return T.place(config, T.init_state(config))[0]

    state, inputs, fns = T.place(config, T.init_state(config))
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
