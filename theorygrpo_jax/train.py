"""The GRPO training loop: sample -> reward -> advantages -> update, plus host-side bookkeeping.

The step is two pure, jitted functions over the TrainState:

    state, batch, metrics, rollout, scores = rollout_step(state, tables, prompt_tokens, prompt_len)
    state, metrics = update_step(state, split_by_length(batch, chunks, max_len), tables)

`rollout_step` samples a group per prompt, scores every theory (vmapped
reward), computes group-relative advantages, advances the curriculum and
feeds / samples the replay buffer. Between the two, the host sorts the rows
by length and cuts `grpo.update_chunks` groups of rows to their own length
(`grpo.split_by_length`), so the update does not pay for padding. Logging,
discoveries and checkpoints stay on the host, outside the step.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from . import curriculum as C
from . import grpo
from . import model as M
from . import replay as R
from . import sampler as S
from . import tasks
from .checkpoint import Checkpointer, load_checkpoint, load_params
from .config import Config, save_config
from .discoveries import DiscoveryCatalogue, canonical_theory
from .grammar import automaton
from .grammar import vocab as V
from .metrics import MetricsWriter, format_stats_block
from .reward import score_batch
from .train_state import TrainState, init_train_state

# --------------------------------------------------------------------------- the step

@functools.lru_cache(maxsize=8)
def make_rollout_step(config: Config, mesh: jax.sharding.Mesh | None = None) -> Callable:
    """The jitted rollout half of a GRPO step (see module docstring). With a mesh, each device
    samples its slice of the batch on its own (`sampler.sample_tokens_sharded`)."""
    mc, gc, tc = config.model, config.grpo, config.train
    sample_tokens = (S.sample_tokens if mesh is None
                     else functools.partial(S.sample_tokens_sharded, mesh=mesh))

    def rollout_step(state: TrainState, tables: automaton.GrammarTables, prompt_tokens: jax.Array,
                     prompt_len: jax.Array):
        key = jax.random.fold_in(state.rng, state.step)
        sample_key, replay_key = jax.random.split(key)
        rollout = sample_tokens(state.params, tables, prompt_tokens, prompt_len, sample_key,
                                gc.temperature, config=mc, top_k=gc.top_k or None)
        scores = score_batch(rollout.tokens, config.reward)
        if tc.use_curriculum:
            rewards, phase_success = C.phase_reward(scores, config.curriculum,
                                                    state.curriculum.phase, config.reward)
            curriculum = C.advance(state.curriculum, config.curriculum,
                                   phase_success.astype(jnp.float32).mean())
        else:
            rewards, curriculum = scores["total_reward"], state.curriculum
        advantages = grpo.group_advantages(rewards, gc.group_size, gc.scale_by_std, gc.advantage_eps)
        batch = grpo.PolicyBatch(tokens=rollout.tokens, old_logprobs=rollout.logprobs,
                                 completion_mask=rollout.completion_mask, advantages=advantages,
                                 weights=jnp.ones_like(rewards))
        replay = state.replay
        if tc.use_priority_buffer:
            rc = config.replay
            eligible = (scores["success"] if rc.min_reward is None else rewards >= rc.min_reward)
            replay = R.insert(replay, rollout.tokens, rollout.logprobs, rollout.completion_mask,
                              rewards, scores["success"], eligible)
            if rc.replay_per_step:
                idx, weights, valid = R.sample(replay, replay_key, rc.replay_per_step, rc)
                # replayed theories join with their advantage against this step's baseline
                # (the fresh batch's mean reward and mean group std) and their stored log-probs
                grouped = rewards.reshape(-1, gc.group_size)
                scale = grouped.std(axis=1, ddof=1).mean() + gc.advantage_eps if gc.scale_by_std else 1.0
                replay_adv = (replay.rewards[idx] - grouped.mean()) / scale
                batch = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), batch, grpo.PolicyBatch(
                    tokens=replay.tokens[idx], old_logprobs=replay.logprobs[idx],
                    completion_mask=replay.completion_mask[idx] & valid[:, None],
                    advantages=jnp.where(valid, replay_adv, 0.0),
                    weights=jnp.where(valid, weights, 0.0)))
        mean_reward = rewards.mean()
        metrics = {"mean_reward": mean_reward,
                   "success_rate": scores["success"].astype(jnp.float32).mean(),
                   "mean_length": rollout.lengths.astype(jnp.float32).mean(),
                   "max_length": rollout.lengths.max().astype(jnp.float32),
                   "curriculum_phase": curriculum.phase.astype(jnp.float32)}
        for name in ("anomalies_reward", "light_exotics_reward", "invalid_terms_reward",
                     "length_reward", "heavy_exotics_reward", "total_reward"):
            metrics[name] = scores[name].mean()
        if tc.use_priority_buffer:
            metrics.update({f"buffer_{k}": v for k, v in R.stats(replay).items()})
        state = state.replace(curriculum=curriculum, replay=replay,
                              best_reward=jnp.maximum(state.best_reward, mean_reward))
        return state, batch, metrics, rollout, scores

    return jax.jit(rollout_step, donate_argnums=(0,))


@functools.lru_cache(maxsize=8)
def make_update_step(config: Config) -> Callable:
    """The jitted update half: grammar masks for the batch, then mu optimiser steps."""
    return grpo.make_update_step(config.model, config.grpo)


# --------------------------------------------------------------------------- setup

@dataclasses.dataclass
class Run:
    """What a training run holds on the host around the pure state."""
    config: Config
    state: TrainState
    tables: automaton.GrammarTables
    prompt_tokens: np.ndarray     # [n_prompts, W] int32
    prompt_len: np.ndarray        # [n_prompts] int32
    rollout_step: Callable
    update_step: Callable
    batch_sharding: Any = None    # NamedSharding of the batch axis over all devices (None: one device)


def data_parallel_shardings(batch_size: int) -> tuple[Any, Any] | None:
    """(batch sharding, replicated sharding) over a 1-D "data" mesh of all devices; None on one.

    The step functions keep the batch axis leading and every per-example
    computation vmapped, so jit partitions sampling, scoring and the loss
    along the batch and reduces the gradients across devices.
    """
    devices = jax.devices()
    if len(devices) == 1:
        return None
    if batch_size % len(devices):
        raise ValueError(f"the batch of {batch_size} theories (prompts_per_step x group_size) does not "
                         f"split over {len(devices)} devices")
    mesh = jax.sharding.Mesh(np.array(devices), ("data",))
    return (jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")),
            jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def init_state(config: Config, seed: int | None = None) -> TrainState:
    """A fresh TrainState from random parameters."""
    seed = config.train.seed if seed is None else seed
    root = jax.random.PRNGKey(seed)
    params = M.init_params(config.model, jax.random.fold_in(root, 0))
    return init_train_state(params, grpo.make_optimizer(config.grpo), jax.random.fold_in(root, 1),
                            config.grpo.kl_coef, C.init_curriculum(config.curriculum),
                            R.init_buffer(config.replay.capacity, config.model.max_len))


def setup_run(config: Config, checkpoint: str | None = None, resume: str | None = None) -> Run:
    """State (fresh, from a pretrained policy, or resumed), prompts and compiled step functions."""
    state = init_state(config)
    if resume:
        state, _ = load_checkpoint(resume, state)
    elif checkpoint:
        params = load_params(checkpoint, state.params)
        state = init_train_state(params, grpo.make_optimizer(config.grpo), state.rng,
                                 config.grpo.kl_coef, state.curriculum, state.replay)
    prompts = tasks.task_prompts(config.train.task, config.train.prompt_files)
    for i, prompt in enumerate(prompts):
        S.check_prompt(prompt, config.model.max_len, i)
    prompt_tokens, prompt_len = tasks.pack_prompts(prompts)
    tables = automaton.load_tables()
    shardings = data_parallel_shardings(config.grpo.batch_size)
    if shardings:
        state, tables = jax.device_put((state, tables), shardings[1])
    return Run(config=config, state=state, tables=tables,
               prompt_tokens=prompt_tokens, prompt_len=prompt_len,
               rollout_step=make_rollout_step(config, shardings[0].mesh if shardings else None),
               update_step=make_update_step(config),
               batch_sharding=shardings[0] if shardings else None)


def train_step(run: Run) -> tuple[dict[str, float], np.ndarray, dict[str, np.ndarray]]:
    """One GRPO step on `run.state`; returns host metrics, the sampled tokens and their scores."""
    gc = run.config.grpo
    step = int(run.state.step)
    prompt_tokens, prompt_len = tasks.step_prompts(run.prompt_tokens, run.prompt_len, step,
                                                   gc.prompts_per_step, gc.group_size)
    if run.batch_sharding is not None:
        prompt_tokens, prompt_len = jax.device_put((prompt_tokens, prompt_len), run.batch_sharding)
    state, batch, metrics, rollout, scores = run.rollout_step(run.state, run.tables, prompt_tokens,
                                                              prompt_len)
    chunks = grpo.split_by_length(batch, run.config.grpo.update_chunks, run.config.model.max_len)
    state, update_metrics = run.update_step(state, chunks, run.tables)
    run.state = state
    host = jax.device_get({**metrics, **update_metrics})
    return ({k: float(v) for k, v in host.items()}, np.asarray(rollout.tokens),
            jax.device_get(scores))


# --------------------------------------------------------------------------- evaluation

def evaluate(run: Run, episodes: int, seed: int = 12345) -> dict[str, float]:
    """Mean reward, success rate and unique successes of `episodes` fresh samples."""
    cfg = run.config
    idx = np.arange(episodes) % len(run.prompt_tokens)
    key = jax.random.PRNGKey(seed)
    totals, successes, unique = [], [], set()
    batch = cfg.grpo.batch_size
    for start in range(0, episodes, batch):
        rows = idx[start:start + batch]
        n = len(rows)
        rows = np.pad(rows, (0, batch - n), mode="edge")   # one compiled shape
        rollout = S.sample_tokens(run.state.params, run.tables, jnp.asarray(run.prompt_tokens[rows]),
                                  jnp.asarray(run.prompt_len[rows]), jax.random.fold_in(key, start),
                                  cfg.grpo.temperature, config=cfg.model, top_k=cfg.grpo.top_k or None)
        scores = jax.device_get(score_batch(rollout.tokens, cfg.reward))
        tokens = np.asarray(rollout.tokens)[:n]
        totals.extend(scores["total_reward"][:n].tolist())
        successes.extend(scores["success"][:n].tolist())
        for row, ok in zip(tokens, scores["success"][:n]):
            if ok:
                unique.add(tuple(canonical_theory(_strings(row))))
    return {"mean_reward": float(np.mean(totals)), "success_rate": float(np.mean(successes)),
            "unique_successes": len(unique), "episodes": episodes}


def _strings(row: np.ndarray) -> list[str]:
    return [V.TOKENS[t] for t in row if t != V.PAD]


# --------------------------------------------------------------------------- the loop

def run_dir_of(checkpoint_path: str | Path) -> Path:
    """The run directory that holds a checkpoint path (run dir, checkpoints/, or a step dir)."""
    path = Path(checkpoint_path)
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / "checkpoints").is_dir():
            return candidate
    return path


def default_output_dir(config_path: str | None) -> Path:
    name = Path(config_path).stem if config_path else "run"
    return Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def train(config: Config, output_dir: str | Path, checkpoint: str | None = None,
          resume: str | None = None, log: Callable[[str], None] = print) -> tuple[Run, dict]:
    """Run GRPO for config.train.num_episodes steps, writing everything into output_dir."""
    from .plotting import plot_metrics

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    run = setup_run(config, checkpoint, resume)
    tc = config.train
    checkpointer = Checkpointer(out, keep=tc.keep_checkpoints)
    writer = MetricsWriter(out, tensorboard=tc.tensorboard)
    catalogue = DiscoveryCatalogue(out)
    stats_path = out / "training_stats.json"
    history: dict[str, list[float]] = {}
    start = int(run.state.step)
    if resume and stats_path.exists():   # the history up to the checkpoint's step
        history = {k: v[:start] for k, v in json.loads(stats_path.read_text()).get("history", {}).items()}
    saved_best = float(run.state.best_reward)
    log(f"theorygrpo_jax: {M.num_params(run.state.params):,} parameters, {config.grpo.batch_size} "
        f"theories per step, steps {start}..{tc.num_episodes}, output in {out}")
    bar = tqdm(range(start, tc.num_episodes), initial=start, total=tc.num_episodes,
               desc="Training", disable=not tc.progress_bar, dynamic_ncols=True)
    step_metrics: dict[str, float] = {}
    for step in bar:
        t0 = time.perf_counter()
        step_metrics, tokens, scores = train_step(run)
        step_metrics["step_seconds"] = time.perf_counter() - t0
        for i in np.flatnonzero(scores["success"]):
            catalogue.add(_strings(tokens[i]), step + 1, _row_scores(scores, i))
        step_metrics["unique_successes"] = float(len(catalogue))
        writer.write(step + 1, step_metrics)
        for k, v in step_metrics.items():
            history.setdefault(k, []).append(v)
        bar.set_postfix(reward=f"{step_metrics['mean_reward']:.3f}",
                        success=f"{step_metrics['success_rate']:.1%}",
                        loss=f"{step_metrics['total_loss']:.4f}",
                        entropy=f"{step_metrics['entropy']:.3f}", kl=f"{step_metrics['kl']:.4f}")
        done = step + 1
        last = done == tc.num_episodes
        improved = False
        if done % tc.log_interval == 0 or last:
            buffer = ({"size": step_metrics["buffer_size"], "capacity": config.replay.capacity,
                       "mean_reward": step_metrics["buffer_mean_reward"],
                       "success_rate": step_metrics["buffer_success_rate"]}
                      if tc.use_priority_buffer else None)
            shown = {k: step_metrics[k] for k in ("mean_reward", "success_rate", "total_loss",
                                                  "policy_loss", "kl", "entropy", "unique_successes")}
            bar.write(format_stats_block(done, shown, buffer,
                                         int(step_metrics["curriculum_phase"]) if tc.use_curriculum else None))
            improved = float(run.state.best_reward) > saved_best
        saving = done % tc.save_interval == 0 or last or improved
        if saving:
            checkpointer.save(done, run.state, _metadata(config, history, catalogue), best=improved)
            if improved:
                saved_best = float(run.state.best_reward)
        if saving or done % tc.log_interval == 0:   # the whole history: not rewritten every step
            _write_stats(stats_path, config, history, run, catalogue)
        if done % tc.save_interval == 0 or last:
            plot_metrics(out / "metrics.jsonl", out / "plots")
    writer.close()
    return run, step_metrics


def _row_scores(scores: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    """One theory's scores as plain JSON values."""
    return {k: v[i].item() for k, v in scores.items()}


def _metadata(config: Config, history: dict, catalogue: DiscoveryCatalogue) -> dict:
    return {"config": config.to_dict(), "unique_successes": len(catalogue),
            "last": {k: v[-1] for k, v in history.items() if v}}


def _write_stats(path: Path, config: Config, history: dict, run: Run,
                 catalogue: DiscoveryCatalogue) -> None:
    data = {"step": int(run.state.step), "best_reward": float(run.state.best_reward),
            "unique_successes": len(catalogue), "config": config.to_dict(), "history": history}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)
