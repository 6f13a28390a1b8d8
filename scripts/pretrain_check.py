#!/usr/bin/env python
"""Does pretraining help? Pretrain (or take --checkpoint), then run GRPO from it and from random
init with the same config; report the steps each needs to reach the random-init run's final
success rate, and plot both curves.

    python scripts/pretrain_check.py [--config configs/default.yaml] [--pretrain_config configs/pretrain.yaml]
                                     [--checkpoint DIR] [--num_episodes 150] [--out DIR] [--set KEY=VALUE]

See benchmarks/experiments.py (pretrain_check, pretrain_comparison).
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default",
                        help="a YAML file, or a packaged config's name (default: %(default)s)")
    parser.add_argument("--pretrain_config", default="pretrain",
                        help="the same, for pretraining (default: %(default)s)")
    parser.add_argument("--checkpoint", help="an existing pretraining run (skips pretraining)")
    parser.add_argument("--num_episodes", type=int, default=150)
    parser.add_argument("--out", default="runs/pretrain_check")
    from theorygrpo_jax.cli import add_set_flag, set_overrides, use_compilation_cache, user_errors

    add_set_flag(parser)
    args = parser.parse_args(argv)
    use_compilation_cache()

    with user_errors():
        from benchmarks.experiments import pretrain_check
        from theorygrpo_jax.config import load_config
        from theorygrpo_jax.resources import config_path

        overrides = {"train.num_episodes": args.num_episodes, "train.progress_bar": False,
                     "train.log_interval": 50}
        overrides.update(set_overrides(args.set))
        config = load_config(config_path(args.config), overrides)
        pretrain_config = (None if args.checkpoint
                           else load_config(config_path(args.pretrain_config)))
        result = pretrain_check(config, args.out, pretrain_config, args.checkpoint,
                                log=lambda m: print(m, flush=True))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
