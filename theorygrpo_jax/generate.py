"""Sample theories from a policy (random init or a checkpoint) and score them: `scripts/sample.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from . import model as M
from . import sampler as S
from . import tasks
from .checkpoint import load_params
from .config import Config, load_config
from .grammar import automaton
from .grammar import vocab as V
from .score import score_token_lists
from .train import run_dir_of


def config_for(checkpoint: str | None, config_path: str | None) -> Config:
    """The explicit --config, else the config a checkpoint's run saved, else configs/default.yaml."""
    if config_path:
        return load_config(config_path)
    if checkpoint:
        saved = run_dir_of(checkpoint) / "config.yaml"
        if saved.exists():
            return load_config(saved)
    return load_config(Path(__file__).resolve().parents[1] / "configs" / "default.yaml")


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
                       temperature=config.grpo.temperature if temperature is None else temperature,
                       top_k=config.grpo.top_k or None)
    theories = [[V.TOKENS[t] for t in row if t != V.PAD] for row in np.asarray(rollout.tokens)]
    scores = score_token_lists(theories, config.reward)
    return [{"tokens": tokens, **{k: v for k, v in s.items() if k not in ("fields", "terms", "gauge")}}
            for tokens, s in zip(theories, scores)]
