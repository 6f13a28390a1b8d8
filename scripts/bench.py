#!/usr/bin/env python
"""Benchmark the grammar-constrained sampler; see benchmarks/sampler_bench.py.

    python scripts/bench.py --json --preset original --batch 64
    python scripts/bench.py --json --preset original --ablation
    python scripts/bench.py --json --parts         # the grammar and the draw, per step
    python scripts/bench.py --json --devices 1     # one device (XLA's own threads) instead of
                                                   # one device per core
    python scripts/bench.py --json --processes 0   # one pinned process per core
    python scripts/bench.py --json --preset original --matmul-dtype bfloat16
                                                   # weight matmuls on bfloat16 operands
    python scripts/bench.py --json --preset original --devices 1 --repeats 6 --tries 3 \
        --options '{"tail_slots": 16}' '{}'        # SamplerOptions compared, interleaved
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from benchmarks.machine import usable_cores  # no JAX: the host devices are set below
from theorygrpo_jax.cli import print_result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--preset", choices=("cpu_default", "original"), default="cpu_default")
    ap.add_argument("--repeats", type=int, default=3, help="batches (RNG keys) timed")
    ap.add_argument("--tries", type=int, default=5,
                    help="calls per batch, interleaved; each batch's best counts")
    ap.add_argument("--block-size", type=int, default=None, help="cache-window block (positions)")
    ap.add_argument("--min-slots", type=int, default=None,
                    help="compact unfinished rows down to this many slots (default: the sampler's)")
    ap.add_argument("--no-masks-compare", action="store_true",
                    help="skip the run without grammar masks (no mask_overhead)")
    ap.add_argument("--memory-batches", default="64,1024",
                    help="batches for XLA's memory analysis ('' to skip)")
    ap.add_argument("--devices", type=int, default=0,
                    help="split the batch over this many devices (on a CPU: host devices, one per "
                         "core); 0 (default): every device, i.e. one per core on a CPU")
    ap.add_argument("--matmul-dtype", choices=("float32", "bfloat16"), default=None,
                    help="operands of the weight matmuls (model matmul_dtype; sums stay float32); "
                         "the matmul ceiling is measured with it. Default: the preset's (float32)")
    ap.add_argument("--ceiling", action="store_true",
                    help="also report the no-waste ceiling (tokens/s if every loop step cost one "
                         "decode step of the rows still generating) and where the time goes by "
                         "slot size (phases_by_slots)")
    ap.add_argument("--parts", action="store_true",
                    help="instead: microseconds per call of the grammar mask, the automaton step "
                         "and the token draw at batches 4, 32, 64")
    ap.add_argument("--ablation", action="store_true",
                    help="instead: seconds per batch with cache windows / compaction switched off")
    ap.add_argument("--options", nargs="+", metavar="JSON", default=None,
                    help="instead: tokens/s under each SamplerOptions (a JSON object of its "
                         "fields, e.g. '{\"tail_slots\": 16}' '{}'), interleaved in one "
                         "process on --batch rows, --repeats batches, --tries rounds")
    ap.add_argument("--processes", type=int, default=None,
                    help="instead: one pinned worker process per core (or this many), each "
                         "sampling its rows of the batch on one device; 0: one per core")
    args = ap.parse_args(argv)
    if args.processes is not None and args.processes < 0:
        ap.error(f"--processes must be 0 (one per core) or a positive count, got {args.processes}")
    if args.matmul_dtype is not None and (args.processes is not None or args.parts
                                          or args.ablation or args.options is not None):
        ap.error("--matmul-dtype applies to the main benchmark, not to --processes, --parts, "
                 "--ablation or --options")
    if args.devices < 0:
        ap.error(f"--devices must be 0 (every device) or a positive count, got {args.devices}")
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        # Must be set before jax starts; it only shapes the CPU platform (one device per core).
        host_devices = args.devices or len(usable_cores())
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={host_devices}"
    from benchmarks import sampler_bench as bench
    from theorygrpo_jax.cli import user_errors

    with user_errors():
        if args.processes is not None:
            from benchmarks.processes import run_processes
            result = run_processes(args.preset, args.batch, args.processes,
                                   repeats=args.repeats, tries=args.tries)
        elif args.parts:
            result = bench.run_parts()
        elif args.options is not None:
            variants = []
            for text in args.options:
                try:
                    variants.append(json.loads(text))
                except json.JSONDecodeError as e:
                    raise ValueError(f"--options {text!r}: not JSON ({e.msg})") from None
                if not isinstance(variants[-1], dict):
                    raise ValueError(f"--options {text!r}: expected a JSON object")
            result = bench.run_options(variants, args.preset, args.batch, keys=args.repeats,
                                       rounds=args.tries)
        elif args.ablation:
            result = bench.run_ablation(args.preset, args.batch, repeats=args.repeats)
        else:
            result = bench.run_benchmark(
                args.preset, args.batch, repeats=args.repeats, tries=args.tries,
                masks_compare=not args.no_masks_compare,
                memory_batches=tuple(int(b) for b in args.memory_batches.split(",") if b),
                block_size=args.block_size, devices=args.devices or bench.default_devices(args.batch),
                ceiling=args.ceiling, matmul_dtype=args.matmul_dtype,
                **({} if args.min_slots is None else {"min_slots": args.min_slots}))
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
