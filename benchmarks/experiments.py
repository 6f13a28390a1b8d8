"""Benchmark experiments: does GRPO learn, and does pretraining help?

`learn_check` trains the default task from random initialisation and
compares the policy with the random policy on fresh evaluation samples.
`pretrain_comparison` runs GRPO from a pretrained checkpoint and from random
initialisation with the same config and seed, and counts the steps each
needs to reach the random-init run's final success rate and final mean
reward (trailing 5-step means), and a ladder of success-rate thresholds;
`pretrain_check` pretrains first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from theorygrpo_jax import train as T
from theorygrpo_jax.config import Config
from theorygrpo_jax.metrics import read_metrics
from theorygrpo_jax.plotting import plot_curves


def learn_check(config: Config, out_dir: str | Path, eval_episodes: int = 512,
                log: Callable[[str], None] = print) -> dict:
    """Random policy vs trained policy on fresh samples; curves plotted to out_dir/learn_check.png."""
    out = Path(out_dir)
    t0 = time.perf_counter()
    before = T.evaluate(T.init_state(config).params, config, eval_episodes, seed=777)
    log(f"random policy: mean reward {before['mean_reward']:.3f}, success {before['success_rate']:.1%}")
    state, _ = T.train(config, out / "run", log=log)
    after = T.evaluate(state.params, config, eval_episodes, seed=777)
    minutes = (time.perf_counter() - t0) / 60
    log(f"trained policy: mean reward {after['mean_reward']:.3f}, success {after['success_rate']:.1%} "
        f"({minutes:.1f} min in all)")
    plot_learn_check(read_metrics(out / "run" / "metrics.jsonl"), before, after, out)
    result = {"random": before, "trained": after, "steps": config.train.num_episodes,
              "minutes": minutes, "out_dir": str(out)}
    (out / "learn_check.json").write_text(json.dumps(result, indent=2))
    return result


def learn_check_curves(records: list[dict], before: dict, after: dict) -> dict[str, dict]:
    """The learn-check figures by file name, as plot_curves' arguments: the training batch's
    curve, and the two evaluations on fresh samples as markers where they were taken: the
    random policy at step 0 (before training), the trained policy at the last step."""
    steps = [r["step"] for r in records]
    # evaluate's mean_reward is the task's reward: compare it with the batch's total_reward
    # (the logged mean_reward adds the discovery bonuses when they are on).
    batch_reward = "total_reward" if all("total_reward" in r for r in records) else "mean_reward"
    figures = {}
    for key, batch_key, name, file in (
            ("mean_reward", batch_reward, "mean reward", "learn_check_reward.png"),
            ("success_rate", "success_rate", "success rate", "learn_check_success.png")):
        figures[file] = dict(
            curves={f"{name} (training batch, {batch_key})": (steps, [r[batch_key] for r in records])},
            title="GRPO on the default task", ylabel=name,
            points={f"random policy (eval, {before['episodes']} fresh theories)": (0, before[key]),
                    f"trained policy (eval, {after['episodes']} fresh theories)":
                        (steps[-1], after[key])})
    return figures


def plot_learn_check(records: list[dict], before: dict, after: dict, out: Path) -> list[Path]:
    """learn_check_reward.png and learn_check_success.png in `out` (see learn_check_curves)."""
    return [plot_curves(path=Path(out) / file, **spec)
            for file, spec in learn_check_curves(records, before, after).items()]


def steps_to_reach(records: list[dict], key: str, target: float, window: int = 5) -> int | None:
    """First step whose trailing `window`-step mean of `key` reaches `target` (None: never)."""
    values = np.array([r[key] for r in records])
    for i in range(len(values)):
        if values[max(0, i - window + 1): i + 1].mean() >= target:
            return int(records[i]["step"])
    return None


def pretrain_comparison(config: Config, checkpoint: str | Path, out_dir: str | Path,
                        log: Callable[[str], None] = print) -> dict:
    """GRPO from `checkpoint` vs from random init: steps to the random-init final success rate."""
    out = Path(out_dir)
    T.train(config, out / "random_init", log=log)
    T.train(config, out / "pretrained", checkpoint=str(checkpoint), log=log)
    random_records = read_metrics(out / "random_init" / "metrics.jsonl")
    pre_records = read_metrics(out / "pretrained" / "metrics.jsonl")
    window = 5
    final = lambda recs, key: float(np.mean([r[key] for r in recs[-window:]]))  # noqa: E731
    target = final(random_records, "success_rate")
    reward_target = final(random_records, "mean_reward")
    result = {
        "target_success_rate": target,
        "random_init_steps": steps_to_reach(random_records, "success_rate", target, window),
        "pretrained_steps": steps_to_reach(pre_records, "success_rate", target, window),
        "target_reward": reward_target,
        "random_init_steps_to_reward": steps_to_reach(random_records, "mean_reward", reward_target, window),
        "pretrained_steps_to_reward": steps_to_reach(pre_records, "mean_reward", reward_target, window),
        "success_thresholds": {f"{t:.2f}": [steps_to_reach(random_records, "success_rate", t, window),
                                            steps_to_reach(pre_records, "success_rate", t, window)]
                               for t in (0.5, 0.7, 0.8, 0.9, 0.95)},
        "random_init_final_success": target,
        "pretrained_final_success": final(pre_records, "success_rate"),
        "random_init_final_reward": reward_target,
        "pretrained_final_reward": final(pre_records, "mean_reward"),
        "random_init_first_success": random_records[0]["success_rate"],
        "pretrained_first_success": pre_records[0]["success_rate"],
    }
    for key, label in (("success_rate", "success rate"), ("mean_reward", "mean reward")):
        plot_curves({name: ([r["step"] for r in recs], [r[key] for r in recs])
                     for name, recs in (("random init", random_records), ("pretrained", pre_records))},
                    out / f"pretrain_vs_random_{key}.png", "GRPO from pretrained vs random init", label)
    (out / "pretrain_comparison.json").write_text(json.dumps(result, indent=2))
    return result


def pretrain_check(config: Config, out_dir: str | Path, pretrain_config: Config | None = None,
                   checkpoint: str | Path | None = None,
                   log: Callable[[str], None] = print) -> dict:
    """Pretrain with `pretrain_config` into out_dir/pretrain (unless a `checkpoint` is given),
    then `pretrain_comparison` from it."""
    out = Path(out_dir)
    if checkpoint is None:
        if pretrain_config is None:
            raise ValueError("give a pretraining config or a pretrained checkpoint")
        from theorygrpo_jax.pretrain import pretrain

        pretrain(pretrain_config, out / "pretrain", log=log, progress=False)
        checkpoint = out / "pretrain"
    return pretrain_comparison(config, checkpoint, out, log=log)
