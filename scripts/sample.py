#!/usr/bin/env python
"""Sample theories from the policy and print them with their scores.

    python scripts/sample.py [--checkpoint DIR] [--config configs/X.yaml] [--n 16] [--prompt FILE]
                             [--seed S] [--temperature T] [--json]

Random-init parameters when no checkpoint is given. With --json, one JSON object per theory
per line: "tokens" (BOS..EOS) plus the score fields of the spec's section 5.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="run dir or checkpoint dir (default: random init)")
    parser.add_argument("--config", help="config (default: the checkpoint's run config, else configs/default.yaml)")
    parser.add_argument("--n", type=int, default=16, help="theories to sample (default: %(default)s)")
    parser.add_argument("--prompt", help="a .theory prefix every theory continues")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, help="default: the config's grpo.temperature")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from theorygrpo_jax.cli import fail, use_compilation_cache, user_errors

    use_compilation_cache()

    with user_errors():
        from theorygrpo_jax.generate import config_for, sample_and_score
        from theorygrpo_jax.grammar.text import render_theory

        if args.n < 1:
            fail(f"--n must be >= 1, got {args.n}")
        config = config_for(args.checkpoint, args.config)
        results = sample_and_score(config, args.n, args.checkpoint, args.prompt, args.seed, args.temperature)
    for i, res in enumerate(results):
        if args.json:
            print(json.dumps(res))
            continue
        r = res["rewards"]
        print(f"# theory {i + 1}: {'SUCCESS' if res['success'] else 'fail'}  total_reward={r['total_reward']:.3f}"
              f"  anomaly_l1={res['anomaly_l1']}  invalid_terms={res['invalid_terms']}"
              f"  light_exotics={res['light_exotics']}  length={res['length']}")
        print(render_theory(res["tokens"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
