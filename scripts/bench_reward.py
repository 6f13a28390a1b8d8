#!/usr/bin/env python
"""Reward throughput: theories scored per second, jitted vmapped JAX path vs the Python reference.

    python scripts/bench_reward.py [--batch 4096] [--max-len 256] [--ref-sample 1000] [--json]

Theories are uniform random grammar walks (`grammar.walks.random_walks`), PAD-padded
to max_len. The JAX figure is the median wall time of repeated `reward.score_batch`
calls on one [batch, max_len] array (compiled once, warm, `block_until_ready`); the
reference figure is `physics.reference` (parse + analyse + rewards) on a smaller sample.
Wall-clock figures on a shared machine depend on its load (reported): the best of the
repeats estimates the uncontended rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from theorygrpo_jax.grammar import walks  # noqa: E402
from theorygrpo_jax.physics import reference as ref  # noqa: E402
from theorygrpo_jax.physics.record import tokens_to_ids  # noqa: E402
from theorygrpo_jax.reward import RewardConfig, score_batch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--ref-sample", type=int, default=1000, help="theories timed with the Python reference")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    theories = walks.random_walks(np.random.default_rng(args.seed), args.batch, args.max_len)
    ids = jax.device_put(tokens_to_ids(theories, args.max_len))
    config = RewardConfig(max_len=args.max_len, soft_len=min(128, args.max_len - 1))

    t0 = time.perf_counter()
    jax.block_until_ready(score_batch(ids, config))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(score_batch(ids, config))
        times.append(time.perf_counter() - t0)
    jax_s = float(np.median(times))
    best_s = float(np.min(times))

    sample = theories[: args.ref_sample]
    t0 = time.perf_counter()
    for th in sample:
        ref.rewards(ref.analyse(ref.parse_tokens(th), config), config)
    ref_s = time.perf_counter() - t0

    result = {
        "batch": args.batch, "max_len": args.max_len,
        "mean_tokens": float(np.mean([len(t) for t in theories])),
        "jax_compile_s": round(compile_s, 3),
        "jax_batch_ms": round(jax_s * 1e3, 3),
        "jax_theories_per_s": round(args.batch / jax_s),
        "jax_best_ms": round(best_s * 1e3, 3),
        "jax_best_theories_per_s": round(args.batch / best_s),
        "python_sample": len(sample),
        "python_theories_per_s": round(len(sample) / ref_s),
        "speedup": round((args.batch / jax_s) / (len(sample) / ref_s), 1),
        "device": str(jax.devices()[0]), "cpus": os.cpu_count(), "machine": platform.machine(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"JAX  (jit+vmap, batch {args.batch}, L={args.max_len}): {result['jax_theories_per_s']:,} theories/s "
              f"median ({result['jax_batch_ms']} ms/batch), best {result['jax_best_theories_per_s']:,}/s "
              f"({result['jax_best_ms']} ms); compile {result['jax_compile_s']} s")
        print(f"Python reference ({len(sample)} theories): {result['python_theories_per_s']:,} theories/s")
        print(f"speedup x{result['speedup']}  [{result['device']}, {result['cpus']} CPUs, "
              f"load {result['load_average_1min']}, mean {result['mean_tokens']:.1f} tokens/theory]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
