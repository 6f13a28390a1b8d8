"""Reward throughput: theories scored per second, the jitted vmapped JAX path vs the Python
reference (`scripts/bench_reward.py`).

Theories are uniform random grammar walks (`grammar.walks.random_walks`), PAD-padded
to max_len. The JAX figure is the median wall time of repeated `reward.score_batch`
calls on one [batch, max_len] array (compiled once, warm, `block_until_ready`); the
reference figure is `physics.reference` (parse + analyse + rewards) on a smaller sample.
Wall-clock figures on a shared machine depend on its load (reported): the best of the
repeats estimates the uncontended rate.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import jax
import numpy as np

from theorygrpo_jax.grammar import walks
from theorygrpo_jax.physics import reference as ref
from theorygrpo_jax.physics.record import tokens_to_ids
from theorygrpo_jax.reward import RewardConfig, score_batch


def run_reward_benchmark(batch: int = 4096, max_len: int = 256, ref_sample: int = 1000,
                         repeats: int = 20, seed: int = 0) -> dict[str, Any]:
    """Theories per second of `reward.score_batch` and of the Python reference; a JSON-able dict."""
    if batch < 1 or repeats < 1 or ref_sample < 1:
        raise ValueError(f"--batch, --repeats and --ref-sample must be at least 1, got {batch}, "
                         f"{repeats} and {ref_sample}")
    if max_len < 2:
        raise ValueError(f"--max-len must be at least 2 (BOS, EOS), got {max_len}")
    theories = walks.random_walks(np.random.default_rng(seed), batch, max_len)
    ids = jax.device_put(tokens_to_ids(theories, max_len))
    config = RewardConfig(max_len=max_len, soft_len=min(128, max_len - 1))

    t0 = time.perf_counter()
    jax.block_until_ready(score_batch(ids, config))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(score_batch(ids, config))
        times.append(time.perf_counter() - t0)
    jax_s = float(np.median(times))
    best_s = float(np.min(times))

    sample = theories[:ref_sample]
    t0 = time.perf_counter()
    for th in sample:
        ref.rewards(ref.analyse(ref.parse_tokens(th), config), config)
    ref_s = time.perf_counter() - t0

    return {
        "batch": batch, "max_len": max_len,
        "mean_tokens": float(np.mean([len(t) for t in theories])),
        "jax_compile_s": round(compile_s, 3),
        "jax_batch_ms": round(jax_s * 1e3, 3),
        "jax_theories_per_s": round(batch / jax_s),
        "jax_best_ms": round(best_s * 1e3, 3),
        "jax_best_theories_per_s": round(batch / best_s),
        "python_sample": len(sample),
        "python_theories_per_s": round(len(sample) / ref_s),
        "speedup": round((batch / jax_s) / (len(sample) / ref_s), 1),
        "device": str(jax.devices()[0]), "cpus": os.cpu_count(), "machine": platform.machine(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def describe(result: dict[str, Any]) -> str:
    """The result of `run_reward_benchmark` as three lines of text."""
    r = result
    return (f"JAX  (jit+vmap, batch {r['batch']}, L={r['max_len']}): "
            f"{r['jax_theories_per_s']:,} theories/s median ({r['jax_batch_ms']} ms/batch), "
            f"best {r['jax_best_theories_per_s']:,}/s ({r['jax_best_ms']} ms); "
            f"compile {r['jax_compile_s']} s\n"
            f"Python reference ({r['python_sample']} theories): "
            f"{r['python_theories_per_s']:,} theories/s\n"
            f"speedup x{r['speedup']}  [{r['device']}, {r['cpus']} CPUs, "
            f"load {r['load_average_1min']}, mean {r['mean_tokens']:.1f} tokens/theory]")
