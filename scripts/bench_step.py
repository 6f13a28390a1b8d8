#!/usr/bin/env python
"""Time one full GRPO step (sample, reward, mu=1 update) at the original TheoryGPT size.

    python scripts/bench_step.py [--group_size 64] [--config configs/X.yaml] [--json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group_size", type=int, default=64)
    parser.add_argument("--config", help="benchmark this config instead of the original size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from theorygrpo_jax.cli import print_result, user_errors

    with user_errors():
        from theorygrpo_jax import step_bench
        from theorygrpo_jax.config import load_config

        config = (load_config(args.config, {"grpo.group_size": args.group_size}) if args.config
                  else step_bench.original_config(args.group_size))
        result = step_bench.bench_step(config, args.repeats)
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
