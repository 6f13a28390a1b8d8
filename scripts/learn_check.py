#!/usr/bin/env python
"""Does GRPO learn? Train the default task from random init on the CPU (well within 15 minutes)
and compare mean reward and success rate with the random policy on fresh samples.

    python scripts/learn_check.py [--config configs/default.yaml] [--num_episodes 300] [--out DIR]

See benchmarks/experiments.py (learn_check).
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default",
                        help="a YAML file, or a packaged config's name (default: %(default)s)")
    parser.add_argument("--num_episodes", type=int, default=300)
    parser.add_argument("--eval_episodes", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/learn_check")
    args = parser.parse_args(argv)
    from theorygrpo_jax.cli import use_compilation_cache, user_errors

    use_compilation_cache()

    with user_errors():
        from benchmarks.experiments import learn_check
        from theorygrpo_jax.config import load_config
        from theorygrpo_jax.resources import config_path

        config = load_config(config_path(args.config),
                             {"train.num_episodes": args.num_episodes, "train.seed": args.seed,
                              "train.progress_bar": False, "train.log_interval": 50,
                              "train.save_interval": 100})
        result = learn_check(config, args.out, args.eval_episodes, log=lambda m: print(m, flush=True))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
