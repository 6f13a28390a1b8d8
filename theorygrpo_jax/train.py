"""The GRPO training loop: sample -> reward -> advantages -> update, and its host bookkeeping.

The step is two pure, jitted functions over the TrainState, built once per
config by `step_functions`:

    state, batch, metrics, rollout, scores = fns.rollout(state, tables, prompt_tokens, prompt_len)
    state, metrics = fns.update(state, grpo.split_by_length(batch, chunks, max_len), tables)

`rollout_step` samples a group per prompt, scores every theory (vmapped
reward), computes group-relative advantages, advances the curriculum and
feeds / samples the replay buffer. Between the two, the host sorts the rows
by length and cuts `grpo.update_chunks` groups of rows to their own length
(`grpo.split_by_length`), so the update does not pay for padding.
`train_step` is that whole step, `(state, inputs, fns) -> (state, outputs)`.
Logging, the catalogue of discoveries, statistics and checkpoints live on the
host, outside the step, in one `Recorder`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from tqdm import tqdm

from . import curriculum as C
from . import discovery as D
from . import grpo
from . import model as M
from . import replay as R
from . import sampler as S
from . import tasks
from .checkpoint import Checkpointer, load_checkpoint, load_params
from .config import Config, save_config
from .discoveries import DiscoveryCatalogue, model_id
from .grammar import automaton
from .grammar import vocab as V
from .metrics import MetricsWriter, format_stats_block
from .policy import PolicySpec
from .reward import component_names, score_batch
from .train_state import TrainState, init_train_state

# --------------------------------------------------------------------------- the step


def rollout_step(state: TrainState, tables: automaton.GrammarTables, prompt_tokens: jax.Array,
                 prompt_len: jax.Array, *, config: Config, mesh: jax.sharding.Mesh | None = None):
    """The rollout half of a GRPO step (see the module docstring). With a mesh, each device
    samples its slice of the batch on its own (`sampler.sample_tokens_sharded`).

    Returns (state, batch: grpo.PolicyBatch, metrics, rollout, scores).
    """
    gc, tc = config.grpo, config.train
    key = jax.random.fold_in(state.rng, state.step)
    sample_key, replay_key = jax.random.split(key)
    policy = PolicySpec.from_config(gc)
    if mesh is None:
        rollout = S.sample_tokens(state.params, tables, prompt_tokens, prompt_len, sample_key,
                                  policy, config=config.model)
    else:
        rollout = S.sample_tokens_sharded(state.params, tables, prompt_tokens, prompt_len,
                                          sample_key, policy, mesh=mesh, config=config.model)
    scores = score_batch(rollout.tokens, config.reward)
    if tc.use_curriculum:
        rewards, phase_success = C.phase_reward(scores, config.curriculum, state.curriculum.phase,
                                                config.reward)
        curriculum = C.advance(state.curriculum, config.curriculum,
                               phase_success.astype(jnp.float32).mean())
    else:
        rewards, curriculum = scores["total_reward"], state.curriculum
    bonus, novelty = D.discovery_rewards(rollout.tokens, prompt_tokens, scores["success"],
                                         state.novelty, config.discovery)
    rewards = rewards + D.total_bonus(bonus)
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
            replayed = grpo.replayed_batch(replay, replay_key, rc, rewards, gc)
            batch = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), batch, replayed)
    mean_reward = rewards.mean()
    metrics = {"mean_reward": mean_reward,
               "success_rate": scores["success"].astype(jnp.float32).mean(),
               "mean_length": rollout.lengths.astype(jnp.float32).mean(),
               "max_length": rollout.lengths.max().astype(jnp.float32),
               "curriculum_phase": curriculum.phase.astype(jnp.float32)}
    metrics.update({name: scores[name].mean() for name in component_names(config.reward)})
    metrics.update({name: value.mean() for name, value in bonus.items()})
    if tc.use_priority_buffer:
        metrics.update({f"buffer_{k}": v for k, v in R.stats(replay).items()})
    # The best model is judged on the task's own reward: not the curriculum's phase reward,
    # nor the discovery bonuses, which fall as the run finds more.
    state = state.replace(curriculum=curriculum, replay=replay, novelty=novelty,
                          best_reward=jnp.maximum(state.best_reward,
                                                  scores["total_reward"].mean()))
    return state, batch, metrics, rollout, scores


@dataclasses.dataclass(frozen=True)
class StepFunctions:
    """The two jitted halves of a step (each donates the state it is given)."""
    rollout: Callable   # (state, tables, prompt_tokens, prompt_len) -> (state, batch, metrics, rollout, scores)
    update: Callable    # (state, chunks, tables) -> (state, metrics)


@functools.lru_cache(maxsize=8)
def step_functions(config: Config, mesh: jax.sharding.Mesh | None = None) -> StepFunctions:
    """The jitted step of a config, built once (equal configs share their compiled programs)."""
    return StepFunctions(
        rollout=jax.jit(functools.partial(rollout_step, config=config, mesh=mesh),
                        donate_argnums=(0,)),
        update=grpo.make_update_step(config.model, config.grpo))


@dataclasses.dataclass(frozen=True)
class StepInputs:
    """What every step reads besides the state: the grammar and the task's prompts."""
    tables: automaton.GrammarTables
    prompt_tokens: np.ndarray     # [n_prompts, W] int32
    prompt_len: np.ndarray        # [n_prompts] int32
    batch_sharding: Any = None    # NamedSharding of the batch axis over all devices (None: one device)


@struct.dataclass
class StepOutputs:
    """What a step hands to the host."""
    metrics: dict[str, jax.Array]   # scalars of the rollout and the update
    tokens: jax.Array               # [B, L] int32 the sampled theories
    scores: dict[str, jax.Array]    # each [B]: the reward's breakdown per theory


def train_step(state: TrainState, inputs: StepInputs, fns: StepFunctions,
               config: Config) -> tuple[TrainState, StepOutputs]:
    """One GRPO step: the step's prompts, the rollout, the length split, the update."""
    gc = config.grpo
    prompt_tokens, prompt_len = tasks.step_prompts(inputs.prompt_tokens, inputs.prompt_len,
                                                   int(state.step), gc.prompts_per_step,
                                                   gc.group_size)
    if inputs.batch_sharding is not None:
        prompt_tokens, prompt_len = jax.device_put((prompt_tokens, prompt_len),
                                                   inputs.batch_sharding)
    state, batch, metrics, rollout, scores = fns.rollout(state, inputs.tables, prompt_tokens,
                                                         prompt_len)
    chunks = grpo.split_by_length(batch, gc.update_chunks, config.model.max_len)
    state, update_metrics = fns.update(state, chunks, inputs.tables)
    return state, StepOutputs(metrics={**metrics, **update_metrics}, tokens=rollout.tokens,
                              scores=scores)


# --------------------------------------------------------------------------- setup

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
                            R.init_buffer(config.replay.capacity, config.model.max_len),
                            D.init_novelty(config.discovery))


def initial_state(config: Config, checkpoint: str | None = None,
                  resume: str | None = None) -> TrainState:
    """A fresh state, one starting from a pretrained policy (`checkpoint`: its parameters become
    the policy and the reference), or a resumed run's whole state."""
    state = init_state(config)
    if resume:
        return load_checkpoint(resume, state)[0]
    if checkpoint:
        params = load_params(checkpoint, state.params)
        return init_train_state(params, grpo.make_optimizer(config.grpo), state.rng,
                                config.grpo.kl_coef, state.curriculum, state.replay, state.novelty)
    return state


def task_prompts(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """The task's prompts, checked against the grammar and packed ([n, W], [n])."""
    prompts = tasks.task_prompts(config.train.task, config.train.prompt_files)
    return tasks.pack_prompts(prompts, config.model.max_len)


def place(config: Config, state: TrainState) -> tuple[TrainState, StepInputs, StepFunctions]:
    """The state and step inputs on the devices, and the step's compiled functions."""
    prompt_tokens, prompt_len = task_prompts(config)
    tables = automaton.load_tables()
    shardings = data_parallel_shardings(config.grpo.batch_size)
    if shardings:
        state, tables = jax.device_put((state, tables), shardings[1])
    inputs = StepInputs(tables=tables, prompt_tokens=prompt_tokens, prompt_len=prompt_len,
                        batch_sharding=shardings[0] if shardings else None)
    return state, inputs, step_functions(config, shardings[0].mesh if shardings else None)


# --------------------------------------------------------------------------- evaluation

def evaluate(params: Any, config: Config, episodes: int, seed: int = 12345) -> dict[str, float]:
    """Mean reward, success rate and unique successes (distinct physics models) of `episodes`
    fresh samples of the task."""
    prompt_tokens, prompt_len = task_prompts(config)
    tables = automaton.load_tables()
    idx = np.arange(episodes) % len(prompt_tokens)
    key = jax.random.PRNGKey(seed)
    policy = PolicySpec.from_config(config.grpo)
    totals, successes, unique = [], [], set()
    batch = config.grpo.batch_size
    for start in range(0, episodes, batch):
        rows = idx[start:start + batch]
        n = len(rows)
        rows = np.pad(rows, (0, batch - n), mode="edge")   # one compiled shape
        rollout = S.sample_tokens(params, tables, jnp.asarray(prompt_tokens[rows]),
                                  jnp.asarray(prompt_len[rows]), jax.random.fold_in(key, start),
                                  policy, config=config.model)
        scores = jax.device_get(score_batch(rollout.tokens, config.reward))
        tokens = np.asarray(rollout.tokens)[:n]
        totals.extend(scores["total_reward"][:n].tolist())
        successes.extend(scores["success"][:n].tolist())
        for row, ok in zip(tokens, scores["success"][:n]):
            if ok:
                unique.add(model_id(token_strings(row)))
    return {"mean_reward": float(np.mean(totals)), "success_rate": float(np.mean(successes)),
            "unique_successes": len(unique), "episodes": episodes}


def token_strings(row: np.ndarray) -> list[str]:
    """One sampled row as token strings, without padding."""
    return [V.TOKENS[t] for t in row if t != V.PAD]


# --------------------------------------------------------------------------- the host's records

class Recorder:
    """Host bookkeeping of a run directory: metrics (jsonl, TensorBoard), the history and
    training_stats.json, the catalogue of discoveries, statistics blocks, checkpoints (every
    save_interval steps, the last step, and best_model when the mean reward improved) and plots.
    """

    def __init__(self, out: Path, config: Config, start: int, resumed: bool,
                 write: Callable[[str], None]):
        tc = config.train
        self.out, self.config, self.write_line = out, config, write
        self.checkpointer = Checkpointer(out, keep=tc.keep_checkpoints)
        self.writer = MetricsWriter(out, tensorboard=tc.tensorboard)
        prompts = tasks.task_prompts(config.train.task, config.train.prompt_files)
        self.catalogue = DiscoveryCatalogue(out, prompt=prompts[0])
        self.stats_path = out / "training_stats.json"
        self.history: dict[str, list[float]] = {}
        if resumed and self.stats_path.exists():   # the history up to the checkpoint's step
            saved = json.loads(self.stats_path.read_text()).get("history", {})
            self.history = {k: v[:start] for k, v in saved.items()}
        self.saved_best = -np.inf
        self.last_metrics: dict[str, float] = {}

    def record(self, state: TrainState, outputs: StepOutputs, seconds: float,
               last: bool) -> dict[str, float]:
        """Everything the host keeps of the step that produced `state` (`last`: the run's final
        step, which is always logged, saved and plotted); returns its metrics."""
        tc = self.config.train
        done = int(state.step)
        host = jax.device_get(outputs)
        metrics = {k: float(v) for k, v in host.metrics.items()}
        metrics["step_seconds"] = seconds
        tokens, scores = np.asarray(host.tokens), host.scores
        self.catalogue.add_batch([(token_strings(tokens[i]), {k: v[i].item() for k, v in scores.items()})
                                  for i in np.flatnonzero(scores["success"])], done)
        found = self.catalogue.summary()
        metrics["unique_successes"] = float(len(self.catalogue))   # distinct physics models
        metrics.update({f"models_{k}": float(found[k]) for k in ("sm_charged", "chiral", "vector_like")})
        if self.config.train.task == "dark_u1":   # coverage of the enumerated chiral charge sets
            metrics.update({f"dark_sets_{n}": float(found["dark_sets"].get(n, 0)) for n in (5, 6, 7)})
        self.writer.write(done, metrics)
        for k, v in metrics.items():
            self.history.setdefault(k, []).append(v)
        logged = done % tc.log_interval == 0 or last
        improved = logged and float(state.best_reward) > self.saved_best
        if logged:
            self.write_line(self._stats_block(done, metrics))
        saving = done % tc.save_interval == 0 or last or improved
        if saving:
            self.checkpointer.save(done, state, self._metadata(), best=improved)
            if improved:
                self.saved_best = float(state.best_reward)
        if saving or logged:   # the whole history: not rewritten every step
            self._write_stats(state)
        if done % tc.save_interval == 0 or last:
            from .plotting import plot_metrics
            plot_metrics(self.out / "metrics.jsonl", self.out / "plots")
        self.last_metrics = metrics
        return metrics

    def close(self) -> None:
        self.writer.close()

    def _stats_block(self, done: int, metrics: dict[str, float]) -> str:
        tc = self.config.train
        buffer = ({"size": metrics["buffer_size"], "capacity": self.config.replay.capacity,
                   "mean_reward": metrics["buffer_mean_reward"],
                   "success_rate": metrics["buffer_success_rate"]}
                  if tc.use_priority_buffer else None)
        shown = {k: metrics[k] for k in ("mean_reward", "success_rate", "total_loss",
                                         "policy_loss", "kl", "entropy", "unique_successes",
                                         "models_sm_charged", "models_chiral")}
        return format_stats_block(done, shown, buffer,
                                  int(metrics["curriculum_phase"]) if tc.use_curriculum else None)

    def _metadata(self) -> dict:
        return {"config": self.config.to_dict(), "unique_successes": len(self.catalogue),
                "last": {k: v[-1] for k, v in self.history.items() if v}}

    def _write_stats(self, state: TrainState) -> None:
        data = {"step": int(state.step), "best_reward": float(state.best_reward),
                "unique_successes": len(self.catalogue), "config": self.config.to_dict(),
                "history": self.history}
        tmp = self.stats_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.stats_path)


# --------------------------------------------------------------------------- the loop

def train(config: Config, output_dir: str | Path, checkpoint: str | None = None,
          resume: str | None = None,
          log: Callable[[str], None] = print) -> tuple[TrainState, dict[str, float]]:
    """Run GRPO up to config.train.num_episodes steps (or train.max_minutes of wall time),
    writing everything into output_dir.

    Returns the final state and the last step's metrics.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    state, inputs, fns = place(config, initial_state(config, checkpoint, resume))
    start, tc = int(state.step), config.train
    log(f"theorygrpo_jax: {M.num_params(state.params):,} parameters, {config.grpo.batch_size} "
        f"theories per step, steps {start}..{tc.num_episodes}, output in {out}")
    bar = tqdm(range(start, tc.num_episodes), initial=start, total=tc.num_episodes,
               desc="Training", disable=not tc.progress_bar, dynamic_ncols=True)
    recorder = Recorder(out, config, start, resumed=bool(resume), write=bar.write)
    recorder.saved_best = float(state.best_reward)
    deadline = time.monotonic() + 60 * tc.max_minutes if tc.max_minutes else None
    for step in bar:
        t0 = time.perf_counter()
        state, outputs = train_step(state, inputs, fns, config)
        out_of_time = deadline is not None and time.monotonic() >= deadline
        m = recorder.record(state, outputs, time.perf_counter() - t0,
                            last=step + 1 == tc.num_episodes or out_of_time)
        bar.set_postfix(reward=f"{m['mean_reward']:.3f}", success=f"{m['success_rate']:.1%}",
                        loss=f"{m['total_loss']:.4f}", entropy=f"{m['entropy']:.3f}",
                        kl=f"{m['kl']:.4f}")
        if out_of_time:
            bar.write(f"stopping after step {step + 1}: train.max_minutes = {tc.max_minutes} "
                      f"reached")
            break
    bar.close()
    recorder.close()
    return state, recorder.last_metrics


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    """`theorygrpo-train` / `python -m theorygrpo_jax.train` / `scripts/train.py`."""
    import argparse
    from datetime import datetime

    from .checkpoint import run_dir_of
    from .cli import (add_override_flags, fail, overrides_from_args, use_compilation_cache,
                      user_errors)
    from .config import load_config
    from .resources import config_path

    parser = argparse.ArgumentParser(
        prog="theorygrpo-train",
        description="Train TheoryGPT with GRPO. The seed's flags override the config file; "
                    "`--set section.key=value` sets any other key.")
    parser.add_argument("--config", default="default",
                        help="YAML config file, or the name of a packaged config (default, smoke, "
                             "from_scratch, original, gpu, ...; default: %(default)s)")
    parser.add_argument("--output_dir", help="run directory (default: runs/<config>-<timestamp>)")
    parser.add_argument("--checkpoint", help="start from this pretrained policy (params only)")
    parser.add_argument("--resume", help="continue this run exactly (run dir or checkpoint dir)")
    parser.add_argument("--eval_only", action="store_true", help="evaluate and exit, no training")
    parser.add_argument("--json", action="store_true", help="with --eval_only: print one JSON object")
    add_override_flags(parser)
    args = parser.parse_args(argv)
    use_compilation_cache()

    with user_errors():
        config = load_config(config_path(args.config), overrides_from_args(args))
        if args.checkpoint and args.resume:
            fail("give either --checkpoint (a pretrained policy) or --resume (a run to continue), "
                 "not both")
        if args.eval_only:
            state = initial_state(config, checkpoint=args.checkpoint or args.resume)
            result = evaluate(state.params, config, config.train.eval_episodes)
            if args.json:
                print(json.dumps(result))
            else:
                print(f"mean reward   : {result['mean_reward']:.4f}\n"
                      f"success rate  : {result['success_rate']:.2%}\n"
                      f"unique successes: {result['unique_successes']} of {result['episodes']} theories")
            return 0
        output = args.output_dir
        if output is None and args.resume:
            output = run_dir_of(args.resume)
        if output is None:
            output = Path("runs") / f"{Path(args.config).stem}-{datetime.now():%Y%m%d-%H%M%S}"
        state, _ = train(config, output, checkpoint=args.checkpoint, resume=args.resume)
        result = evaluate(state.params, config, config.train.eval_episodes)
        print(f"final evaluation on {result['episodes']} fresh theories: mean reward "
              f"{result['mean_reward']:.4f}, success rate {result['success_rate']:.2%}, "
              f"{result['unique_successes']} unique successes; run saved in {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
