"""Scaling of the training step over devices and processes (`scripts/bench_scaling.py`).

Each layout runs in its own processes (XLA reads the forced device count at start):
one process with 1, 2, 4 forced host devices, and 2 processes of one device each
joined by jax.distributed (loopback coordinator, gloo). Every layout trains the same
config (configs/smoke.yaml with a batch of prompts x group that splits over 4 devices)
for `warmup` untimed steps (compilation) and then `steps` timed ones, with the parameters
replicated on every device or (`--param_sharding fsdp`) split over them.

Reported per layout:
- step_s: the median wall time of a whole step (`train.train_step` to a finished state);
- allreduce_s: the median time of one all-reduce of a gradient-sized tree over the
  layout's devices (a shard_map psum of the parameters, the collective each step's
  gradient needs), and comm_share = allreduce_s / step_s, the step's share spent
  communicating (a lower bound: the 2-process step also gathers the batch's rows);
- cores: the machine's usable cores. Forced host devices share those cores, so on a
  machine with fewer cores than devices more devices cannot make a step faster: the
  numbers show the overhead of the data-parallel program, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = (("1 device", 1, 1), ("2 devices", 1, 2), ("4 devices", 1, 4), ("2 processes", 2, 1))


def worker(prompts: int, group: int, warmup: int, steps: int,
           param_sharding: str = "replicated") -> dict[str, Any] | None:
    """Time the step in this process (already joined to its run); the numbers on process 0."""
    import jax
    import numpy as np
    from jax.sharding import PartitionSpec as P

    from theorygrpo_jax import distributed
    from theorygrpo_jax import train as T
    from theorygrpo_jax.config import load_config
    from theorygrpo_jax.resources import packaged_config

    config = load_config(packaged_config("smoke"),
                         {"grpo.prompts_per_step": prompts, "grpo.group_size": group,
                          "train.param_sharding": param_sharding})
    state, inputs, fns = T.place(config, T.init_state(config))
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        state, outputs = T.train_step(state, inputs, fns, config)
        jax.block_until_ready((state, outputs))
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    n = jax.device_count()
    allreduce = [0.0]
    if n > 1:
        mesh = distributed.global_mesh()
        params = distributed.local(state.params) if distributed.multi_process() else state.params
        stacked = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *x.shape)).copy(),
                               params)
        grads = distributed.put(stacked, jax.sharding.NamedSharding(mesh, P("data")))
        reduce = jax.jit(jax.shard_map(lambda g: jax.tree.map(lambda x: jax.lax.psum(x, "data"), g),
                                       mesh=mesh, in_specs=P("data"), out_specs=P("data")))
        jax.block_until_ready(reduce(grads))
        allreduce = []
        for _ in range(max(steps, 5)):
            t0 = time.perf_counter()
            jax.block_until_ready(reduce(grads))
            allreduce.append(time.perf_counter() - t0)
    if not distributed.is_primary():
        return None
    step_s, reduce_s = statistics.median(times), statistics.median(allreduce)
    return {"devices": n, "processes": jax.process_count(), "batch": prompts * group,
            "step_s": step_s, "allreduce_s": reduce_s, "comm_share": reduce_s / step_s,
            "params": sum(x.size for x in jax.tree.leaves(state.params))}


def run_layout(processes: int, devices: int, prompts: int, group: int, warmup: int,
               steps: int, param_sharding: str = "replicated") -> dict[str, Any]:
    """One layout in fresh processes; its worker's numbers."""
    args = ["--prompts", str(prompts), "--group", str(group), "--warmup", str(warmup),
            "--steps", str(steps), "--param_sharding", param_sharding]
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    me = str(Path(__file__).resolve())
    if processes == 1:
        command = [sys.executable, me, "--worker", *args]
    else:
        command = [sys.executable, str(ROOT / "scripts" / "launch_local.py"), "--num_processes",
                   str(processes), "--devices_per_process", str(devices), "--program", me, "--",
                   "--worker", *args]
        env.pop("XLA_FLAGS")
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"layout {processes}x{devices} failed: {proc.stderr[-2000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def run_benchmark(prompts: int = 4, group: int = 4, warmup: int = 2, steps: int = 5,
                  layouts=LAYOUTS, param_sharding: str = "replicated") -> list[dict[str, Any]]:
    from .machine import usable_cores

    rows = []
    for name, processes, devices in layouts:
        row = {"layout": name, **run_layout(processes, devices, prompts, group, warmup, steps,
                                            param_sharding),
               "cores": usable_cores(), "param_sharding": param_sharding}
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| layout | devices | processes | batch | step (s) | all-reduce (ms) | comm share |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['layout']} | {r['devices']} | {r['processes']} | {r['batch']} | "
                     f"{r['step_s']:.3f} | {1e3 * r['allreduce_s']:.2f} | "
                     f"{100 * r['comm_share']:.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Step time against devices and processes.")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--param_sharding", choices=("replicated", "fsdp"), default="replicated",
                        help="train.param_sharding of every layout")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    from theorygrpo_jax import distributed
    distributed.add_flags(parser)
    args = parser.parse_args(argv)
    if args.worker:
        distributed.initialize_from_args(args)
        result = worker(args.prompts, args.group, args.warmup, args.steps, args.param_sharding)
        if result is not None:
            print(json.dumps(result), flush=True)
        return 0
    rows = run_benchmark(args.prompts, args.group, args.warmup, args.steps,
                         param_sharding=args.param_sharding)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
