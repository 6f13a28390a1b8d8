#!/usr/bin/env python
"""Train TheoryGPT with GRPO:  python scripts/train.py --config configs/default.yaml [overrides]

The seed's flags override the config file; `--set section.key=value` sets any other key.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from theorygrpo_jax.cli import (add_override_flags, fail, overrides_from_args,  # noqa: E402
                                use_compilation_cache, user_errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/default.yaml", help="YAML config (default: %(default)s)")
    parser.add_argument("--output_dir", help="run directory (default: runs/<config>-<timestamp>)")
    parser.add_argument("--checkpoint", help="start from this pretrained policy (params only)")
    parser.add_argument("--resume", help="continue this run exactly (run dir or checkpoint dir)")
    parser.add_argument("--eval_only", action="store_true", help="evaluate and exit, no training")
    parser.add_argument("--json", action="store_true", help="with --eval_only: print one JSON object")
    add_override_flags(parser)
    args = parser.parse_args(argv)
    use_compilation_cache()

    with user_errors():
        from theorygrpo_jax import train as T
        from theorygrpo_jax.config import load_config

        config = load_config(args.config, overrides_from_args(args))
        if args.checkpoint and args.resume:
            fail("give either --checkpoint (a pretrained policy) or --resume (a run to continue), not both")
        if args.eval_only:
            run = T.setup_run(config, checkpoint=args.checkpoint or args.resume)
            result = T.evaluate(run, config.train.eval_episodes)
            if args.json:
                print(json.dumps(result))
            else:
                print(f"mean reward   : {result['mean_reward']:.4f}\n"
                      f"success rate  : {result['success_rate']:.2%}\n"
                      f"unique successes: {result['unique_successes']} of {result['episodes']} theories")
            return 0
        output = args.output_dir
        if output is None and args.resume:
            output = T.run_dir_of(args.resume)
        output = output or T.default_output_dir(args.config)
        run, _ = T.train(config, output, checkpoint=args.checkpoint, resume=args.resume)
        result = T.evaluate(run, config.train.eval_episodes)
        print(f"final evaluation on {result['episodes']} fresh theories: mean reward "
              f"{result['mean_reward']:.4f}, success rate {result['success_rate']:.2%}, "
              f"{result['unique_successes']} unique successes; run saved in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
