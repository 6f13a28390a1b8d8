#!/usr/bin/env python
"""Supervised pretraining on the textbook + synthetic corpus:

    python scripts/pretrain.py --config configs/pretrain.yaml [--output_dir DIR]

Then train from it:  python scripts/train.py --config configs/default.yaml --checkpoint DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/pretrain.yaml", help="YAML config (default: %(default)s)")
    parser.add_argument("--output_dir", help="run directory (default: runs/<config>-<timestamp>)")
    parser.add_argument("--steps", type=int, help="sets pretrain.steps")
    from theorygrpo_jax.cli import add_set_flag, set_overrides, use_compilation_cache, user_errors

    add_set_flag(parser)
    args = parser.parse_args(argv)
    use_compilation_cache()

    with user_errors():
        from theorygrpo_jax.config import load_config
        from theorygrpo_jax.pretrain import pretrain
        from theorygrpo_jax.train import default_output_dir

        overrides = {"pretrain.steps": args.steps} if args.steps else {}
        overrides.update(set_overrides(args.set))
        config = load_config(args.config, overrides)
        pretrain(config, args.output_dir or default_output_dir(args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
