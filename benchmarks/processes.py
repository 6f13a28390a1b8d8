"""Sampler benchmark with one process per core (`scripts/bench.py --processes N`).

Host devices in one process (`sampler_bench.run_benchmark(devices=2)`) share XLA:CPU's
intra-op thread pool: each device's loop hands its small ops between the pool's
threads. Here each of N worker processes is pinned to one core before JAX
starts (so XLA sees one core and one device), samples its rows of the batch
(rows k*B/N .. (k+1)*B/N - 1, with their global RNG streams: the theories of one
device sampling the whole batch), and times the same calls as
`run_benchmark`; the workers start together on a signal from this process.
This is the layout of a multi-process run (one process per host or per core,
`jax.distributed`); the trainer itself does not use it on one CPU yet.

Reported, besides the machine's ceilings and the roofline (`roofline.roofline_time`):
- tokens_per_s: per batch (RNG key) the slowest worker's best of `tries`
  calls is the batch's time (the rule of `run_benchmark`);
- sustained_tokens_per_s: every token of every call over the wall time from
  the first call's start to the last call's end in any worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .machine import host_cpu, usable_cores

# The checkout holding this package: the workers import the very code the parent runs.
ROOT = Path(__file__).resolve().parents[1]
_FORCED_DEVICES = "--xla_force_host_platform_device_count"


def _worker(index: int, processes: int, preset: str, batch: int, repeats: int, tries: int,
            seed: int) -> None:
    """One worker: sample rows index*b .. (index+1)*b - 1 and print the timings as JSON."""
    import jax
    import jax.numpy as jnp

    from theorygrpo_jax import cli
    from theorygrpo_jax import model as M
    from theorygrpo_jax import sampler as S
    from theorygrpo_jax import tasks
    from theorygrpo_jax.grammar import automaton

    from .sampler_bench import UNTEMPERED
    from .timing import time_batches

    cli.use_compilation_cache()
    rows = batch // processes
    config = getattr(M.ModelConfig, preset)()
    params = M.init_params(config, jax.random.PRNGKey(seed))
    tables = automaton.load_tables()
    tokens, prompt_len = (jnp.asarray(a) for a in tasks.pack_prompts(None, config.max_len, rows))
    sample = jax.jit(lambda key: S.sample_tokens(
        params, tables, tokens, prompt_len, key, UNTEMPERED, config=config,
        row_offset=index * rows))
    start = time.perf_counter()
    jax.block_until_ready(sample(jax.random.PRNGKey(seed)))
    compile_s = time.perf_counter() - start
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # the go signal: every worker has compiled

    keys = [jax.random.PRNGKey(seed + 1 + i) for i in range(repeats)]
    times, rollouts, first_start, last_end = time_batches(sample, keys, tries)
    masks = [np.asarray(r.completion_mask, np.int8).tolist() for r in rollouts]
    print(json.dumps(dict(times=times, masks=masks, first_start=first_start, last_end=last_end,
                          compile_s=compile_s)), flush=True)


def run_processes(preset: str = "cpu_default", batch: int = 64, processes: int = 0,
                  repeats: int = 3, tries: int = 5, seed: int = 0) -> dict[str, Any]:
    """Time the sampler with `processes` pinned worker processes (0: one per core)."""
    import jax

    from theorygrpo_jax import model as M

    from .ceilings import measure_ceilings
    from .roofline import model_costs, roofline_time
    from .sampler_bench import PYTORCH_ORIGINAL_TOKENS_PER_S
    from .timing import check_counts

    cores = usable_cores()
    processes = processes or len(cores)
    if processes > len(cores) or batch % processes:
        raise ValueError(f"--processes {processes} must split a batch of {batch} rows evenly "
                         f"and be at most the {len(cores)} cores this process may use")
    check_counts(repeats, tries)
    config = getattr(M.ModelConfig, preset)()
    costs = model_costs(config, M.init_params(config, jax.random.PRNGKey(seed)))
    ceilings = measure_ceilings()

    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if not f.startswith(_FORCED_DEVICES))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    workers = [subprocess.Popen(
        [sys.executable, "-m", "benchmarks.processes",
         *map(str, (k, processes, preset, batch, repeats, tries, seed, cores[k]))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for k in range(processes)]
    try:
        for w in workers:
            if not w.stdout.readline().strip():
                raise RuntimeError(f"a benchmark worker stopped before sampling:\n"
                                   f"{w.communicate()[1][-2000:]}")
        for w in workers:  # start together
            w.stdin.write("go\n")
            w.stdin.flush()
        results = []
        for w in workers:
            out, err = w.communicate()
            if w.returncode:
                raise RuntimeError(f"a benchmark worker failed:\n{err[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()

    flops_per_s, bytes_per_s = measure_ceilings(ceilings)
    masks = [np.concatenate([np.asarray(r["masks"][i], bool) for r in results])
             for i in range(repeats)]                                   # per batch: [B, L]
    generated = [int(m.sum()) for m in masks]
    batch_s = [max(min(r["times"][i]) for r in results) for i in range(repeats)]
    wall = max(r["last_end"] for r in results) - min(r["first_start"] for r in results)
    roofline = sum(generated) / sum(roofline_time(costs, m, flops_per_s, bytes_per_s)
                                    for m in masks)
    tokens_per_s = sum(generated) / sum(batch_s)
    return dict(
        preset=preset, batch=batch, processes=processes, max_len=config.max_len,
        params=costs["params"], tokens_per_s=tokens_per_s,
        theories_per_s=batch * repeats / sum(batch_s),
        sustained_tokens_per_s=tries * sum(generated) / wall,
        timing=f"best of {tries} per batch, slowest process",
        seconds_per_batch=sum(batch_s) / repeats, generated_tokens_per_batch=sum(generated) / repeats,
        compile_s=max(r["compile_s"] for r in results),
        roofline_tokens_per_s=roofline, roofline_fraction=tokens_per_s / roofline,
        matmul_flops_per_s=flops_per_s, mem_bandwidth_bytes_per_s=bytes_per_s,
        speedup_vs_pytorch_original=(tokens_per_s / PYTORCH_ORIGINAL_TOKENS_PER_S
                                     if preset == "original" and batch == 64 else None),
        device="cpu", cpu=host_cpu())


if __name__ == "__main__":
    index, processes, preset, batch, repeats, tries, seed, core = sys.argv[1:9]
    if hasattr(os, "sched_setaffinity"):  # before JAX starts: XLA sizes its threads by it
        os.sched_setaffinity(0, {int(core)})
    _worker(int(index), int(processes), preset, int(batch), int(repeats), int(tries), int(seed))
