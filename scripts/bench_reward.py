#!/usr/bin/env python
"""Reward throughput: theories scored per second, jitted vmapped JAX path vs the Python reference.

    python scripts/bench_reward.py [--batch 4096] [--max-len 256] [--ref-sample 1000] [--json]

See benchmarks/reward_bench.py for what is timed and how.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--ref-sample", type=int, default=1000, help="theories timed with the Python reference")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from benchmarks import reward_bench
    from theorygrpo_jax.cli import user_errors

    with user_errors():
        result = reward_bench.run_reward_benchmark(args.batch, args.max_len, args.ref_sample,
                                                   args.repeats, args.seed)
    print(json.dumps(result) if args.json else reward_bench.describe(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
