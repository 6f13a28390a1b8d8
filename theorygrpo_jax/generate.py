"""Sample theories from a policy (random init or a checkpoint) and score them.

    theorygrpo-sample [--checkpoint DIR] [--config CONFIG] [--n 16] [--prompt FILE]
                      [--seed S] [--temperature T] [--json]

(also ``python -m theorygrpo_jax.generate`` and ``python scripts/sample.py``). Random-init
parameters when no checkpoint is given. With --json, one JSON object per theory per
line: "tokens" (BOS..EOS) plus the score fields of the spec's section 5.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import jax
import numpy as np

from . import model as M
from . import sampler as S
from . import tasks
from .checkpoint import load_params, run_dir_of
from .cli import fail, use_compilation_cache, user_errors
from .config import Config, load_config
from .grammar import automaton
from .grammar import vocab as V
from .grammar.text import render_theory
from .policy import PolicySpec
from .resources import config_path as resolve_config
from .resources import packaged_config
from .score import score_token_lists


def config_for(checkpoint: str | None, config_path: str | None) -> Config:
    """The explicit --config (a file, or a packaged config's name such as "smoke"), else the
    config a checkpoint's run saved, else the packaged default config."""
    if config_path:
        return load_config(resolve_config(config_path))
    if checkpoint:
        saved = run_dir_of(checkpoint) / "config.yaml"
        if saved.exists():
            return load_config(saved)
    return load_config(packaged_config("default"))


def sample_and_score(config: Config, n: int, checkpoint: str | None = None, prompt_file: str | None = None,
                     seed: int = 0, temperature: float | None = None) -> list[dict[str, Any]]:
    """`n` theories from the policy, each {"tokens": [...BOS..EOS], **spec section 5 scores}."""
    params = M.init_params(config.model, jax.random.PRNGKey(seed))
    if checkpoint:
        params = load_params(checkpoint, params)
    if prompt_file:
        prompts = tasks.task_prompts(config.train.task, (prompt_file,))
    else:   # the task's prompts (the SM for sm_extension, BOS for from_scratch), cycled
        prompts = tasks.task_prompts(config.train.task, config.train.prompt_files)
    prompts = [prompts[i % len(prompts)] for i in range(n)]
    rollout = S.sample(params, config.model, automaton.load_tables(), jax.random.PRNGKey(seed + 1),
                       prompts,
                       policy=PolicySpec.from_config(config.grpo, temperature))
    theories = [[V.TOKENS[t] for t in row if t != V.PAD] for row in np.asarray(rollout.tokens)]
    scores = score_token_lists(theories, config.reward)
    return [{"tokens": tokens, **{k: v for k, v in s.items() if k not in ("fields", "terms", "gauge")}}
            for tokens, s in zip(theories, scores)]


def main(argv: list[str] | None = None) -> int:
    """`theorygrpo-sample`: print sampled theories with their scores (or JSON lines)."""
    parser = argparse.ArgumentParser(prog="theorygrpo-sample", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="run dir or checkpoint dir (default: random init)")
    parser.add_argument("--config", help="a YAML file, or the name of a packaged config (default, smoke, ...); "
                                         "default: the checkpoint's run config, else the packaged default")
    parser.add_argument("--n", type=int, default=16, help="theories to sample (default: %(default)s)")
    parser.add_argument("--prompt", help="a .theory prefix every theory continues")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, help="default: the config's grpo.temperature")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    use_compilation_cache()
    with user_errors():
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
