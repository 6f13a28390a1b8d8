#!/usr/bin/env python
"""Time one full GRPO step (sample, reward, mu=1 update) at the original TheoryGPT size.

    python scripts/bench_step.py [--group_size 64] [--config configs/X.yaml] [--json]

See benchmarks/step_bench.py.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group_size", type=int, default=64)
    parser.add_argument("--config", help="benchmark this config (a YAML file, or a packaged "
                                         "config's name) instead of the original size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from theorygrpo_jax.cli import print_result, user_errors

    with user_errors():
        from benchmarks import step_bench
        from theorygrpo_jax.config import load_config
        from theorygrpo_jax.resources import config_path

        config = (load_config(config_path(args.config), {"grpo.group_size": args.group_size})
                  if args.config else step_bench.original_config(args.group_size))
        result = step_bench.bench_step(config, args.repeats)
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
