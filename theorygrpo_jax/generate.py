"""Sample theories from a policy (random init or a checkpoint) and score them.

    theorygrpo-sample [--checkpoint DIR] [--config CONFIG] [--n 16] [--prompt FILE]
                      [--seed S] [--temperature T] [--json]

(also ``python -m theorygrpo_jax.generate`` and ``python scripts/sample.py``). Random-init
parameters when no checkpoint is given. With --json, one JSON object per theory per
line: "tokens" (BOS..EOS) plus the score fields of the spec's section 5. Theories are
sampled, scored and printed SAMPLE_BATCH at a time, so memory does not grow with --n.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from . import model as M
from . import sampler as S
from . import tasks
from .checkpoint import load_params_latest, resolve_checkpoint, run_dir_of
from .cli import fail, use_compilation_cache, user_errors
from .config import MAX_SEED, MIN_TEMPERATURE, Config, load_config
from .grammar import automaton
from .grammar import vocab as V
from .grammar.text import load_prompt, render_theory
from .policy import PolicySpec
from .resources import config_path as resolve_config
from .resources import packaged_config
from .score import score_token_lists


def config_for(checkpoint: str | None, config_path: str | None) -> Config:
    """The explicit --config (a file, a packaged config's name such as "smoke", or a run
    directory: its config.yaml), else the config a checkpoint's run saved (a run directory
    stands alone: its reward hooks included), else the packaged default config."""
    if config_path:
        if Path(config_path).is_dir() and (Path(config_path) / "config.yaml").is_file():
            return load_config(Path(config_path) / "config.yaml")
        return load_config(resolve_config(config_path))
    if checkpoint:
        resolve_checkpoint(checkpoint)   # a missing checkpoint: its one-line error, first
        saved = run_dir_of(checkpoint) / "config.yaml"
        if saved.exists():
            return load_config(saved)
    return load_config(packaged_config("default"))


SAMPLE_BATCH = 256   # theories sampled and scored at a time: memory does not grow with --n


def iter_sample_and_score(config: Config, n: int, checkpoint: str | None = None,
                          prompt_file: str | None = None, seed: int = 0,
                          temperature: float | None = None,
                          batch_size: int = SAMPLE_BATCH) -> Iterator[dict[str, Any]]:
    """`n` theories from the policy, each {"tokens": [...BOS..EOS], **spec section 5 scores},
    sampled and scored `batch_size` at a time. Theory i is the same whatever the batch size
    (each row has its own RNG stream, named by its index)."""
    if temperature is not None and not (temperature == 0 or MIN_TEMPERATURE <= temperature < math.inf):
        raise ValueError(f"--temperature must be 0 (greedy) or a finite number >= "
                         f"{MIN_TEMPERATURE}, got {temperature}")
    params = M.init_params(config.model, jax.random.PRNGKey(seed))
    if checkpoint:
        params = load_params_latest(checkpoint, params, warn=lambda m: print(m, file=sys.stderr))
    if prompt_file:
        prompts = [load_prompt(prompt_file)]
    else:   # the task's prompts (the SM for sm_extension, BOS for from_scratch), cycled
        prompts = tasks.task_prompts(config.train.task, config.train.prompt_files)
    tokens, lengths = tasks.pack_prompts(prompts, config.model.max_len)
    policy = PolicySpec.from_config(config.grpo, temperature)
    policy = policy.replace(temperature=jnp.asarray(policy.temperature, jnp.float32))
    tables, rng = automaton.load_tables(), jax.random.PRNGKey(seed + 1)
    batch = min(n, batch_size)
    for start in range(0, n, batch):
        rows = np.arange(start, start + batch) % len(prompts)    # one compiled shape
        rollout = S.sample_tokens(params, tables, jnp.asarray(tokens[rows]),
                                  jnp.asarray(lengths[rows]), rng, policy, config=config.model,
                                  row_offset=start)
        theories = [[V.TOKENS[t] for t in row if t != V.PAD]
                    for row in np.asarray(rollout.tokens)[:min(batch, n - start)]]
        for toks, score in zip(theories, score_token_lists(theories, config.reward)):
            yield {"tokens": toks, **{k: v for k, v in score.items()
                                      if k not in ("fields", "terms", "gauge")}}


def sample_and_score(config: Config, n: int, checkpoint: str | None = None, prompt_file: str | None = None,
                     seed: int = 0, temperature: float | None = None) -> list[dict[str, Any]]:
    """`n` theories from the policy, each {"tokens": [...BOS..EOS], **spec section 5 scores}."""
    return list(iter_sample_and_score(config, n, checkpoint, prompt_file, seed, temperature))


def main(argv: list[str] | None = None) -> int:
    """`theorygrpo-sample`: print sampled theories with their scores (or JSON lines)."""
    parser = argparse.ArgumentParser(prog="theorygrpo-sample", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="run dir or checkpoint dir (default: random init)")
    parser.add_argument("--config", help="a YAML file, the name of a packaged config (default, smoke, ...) "
                                         "or a run directory; default: the checkpoint's run config.yaml, "
                                         "else the packaged default")
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
        if not 0 <= args.seed <= MAX_SEED:
            fail(f"--seed must be in 0..{MAX_SEED}, got {args.seed}")
        config = config_for(args.checkpoint, args.config)
        results = iter_sample_and_score(config, args.n, args.checkpoint, args.prompt, args.seed,
                                        args.temperature)
        for i, res in enumerate(results):   # printed as they come: memory constant in --n
            if args.json:
                print(json.dumps(res), flush=True)
                continue
            r = res["rewards"]
            print(f"# theory {i + 1}: {'SUCCESS' if res['success'] else 'fail'}  "
                  f"total_reward={r['total_reward']:.3f}  anomaly_l1={res['anomaly_l1']}  "
                  f"invalid_terms={res['invalid_terms']}  light_exotics={res['light_exotics']}  "
                  f"length={res['length']}")
            print(render_theory(res["tokens"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
