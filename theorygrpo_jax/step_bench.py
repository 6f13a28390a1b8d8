"""Benchmark of one full GRPO step (sample, reward, mu=1 update) with its breakdown.

Each phase is timed on its own after a warm-up (compiles excluded), with
`block_until_ready`, then the whole `train_step` is timed as the trainer runs
it. The machine's float32 matmul FLOP/s is measured in the same run so the
update can be compared with the ceiling.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from . import grpo
from .bench import host_cpu, measure_matmul_flops
from . import model as M
from . import sampler as S
from . import tasks
from . import train as T
from .config import Config, config_from_dict
from .grammar import vocab as V
from .reward import score_batch


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
    run = T.setup_run(config)
    gc = config.grpo
    prompts, lens = tasks.step_prompts(run.prompt_tokens, run.prompt_len, 0, gc.prompts_per_step,
                                       gc.group_size)
    prompts, lens = jnp.asarray(prompts), jnp.asarray(lens)
    key = jax.random.PRNGKey(0)

    def sample():
        return S.sample_tokens(run.state.params, run.tables, prompts, lens, key, gc.temperature,
                               config=config.model, top_k=gc.top_k or None)

    rollout = jax.block_until_ready(sample())
    jax.block_until_ready(score_batch(rollout.tokens, config.reward))
    T.train_step(run)  # compiles rollout and update for this step's bucket
    times: dict[str, list[float]] = {"sample_s": [], "reward_s": [], "update_s": [], "step_s": []}
    for _ in range(repeats):
        times["sample_s"].append(_timed(lambda: jax.block_until_ready(sample())))
        times["reward_s"].append(_timed(lambda: jax.block_until_ready(
            score_batch(rollout.tokens, config.reward))))
        state, batch, *_ = run.rollout_step(run.state, run.tables, prompts, lens)
        run.state = state
        cut = grpo.split_by_length(batch, config.grpo.update_chunks, config.model.max_len)
        update = run.update_step
        t = _timed(lambda: jax.block_until_ready(update(run.state, cut, run.tables)))
        # the update donated run.state; run it again on a fresh state for the next round
        run.state = T.setup_run(config).state
        times["update_s"].append(t)
        times["step_s"].append(_timed(lambda: T.train_step(run)))
    result = {k: float(np.median(v)) for k, v in times.items()}
    params = M.num_params(run.state.params)
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
