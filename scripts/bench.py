#!/usr/bin/env python
"""Benchmark the grammar-constrained sampler; see theorygrpo_jax/bench.py.

    python scripts/bench.py --json --preset original --batch 64
    python scripts/bench.py --json --preset original --ablation
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from theorygrpo_jax import bench  # noqa: E402
from theorygrpo_jax.cli import print_result  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--preset", choices=bench.PRESETS, default="cpu_default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--block-size", type=int, default=None, help="cache-window block (positions)")
    ap.add_argument("--no-masks-compare", action="store_true",
                    help="skip the run without grammar masks (no mask_overhead)")
    ap.add_argument("--memory-batches", default="64,1024",
                    help="batches for XLA's memory analysis ('' to skip)")
    ap.add_argument("--ablation", action="store_true",
                    help="instead: seconds per batch with cache windows / compaction switched off")
    args = ap.parse_args(argv)
    if args.ablation:
        result = bench.run_ablation(args.preset, args.batch, repeats=args.repeats)
    else:
        result = bench.run_benchmark(
            args.preset, args.batch, repeats=args.repeats, masks_compare=not args.no_masks_compare,
            memory_batches=tuple(int(b) for b in args.memory_batches.split(",") if b),
            block_size=args.block_size)
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
