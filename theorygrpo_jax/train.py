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
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from . import curriculum as C
from . import discovery as D
from . import distributed
from . import grpo
from . import model as M
from . import programs
from . import replay as R
from . import rundir
from . import sampler as S
from . import tasks
from .checkpoint import (CHECKPOINTS_DIR, CheckpointError, Checkpointer, checkpoint_steps,
                         load_latest, load_params, load_params_latest, read_metadata,
                         resolve_checkpoint, run_dir_of, saved_shape)
from .cli import UserError, fail  # noqa: F401 - UserError re-exported
from .config import Config, save_config
from .discoveries import model_id
from .grammar import automaton
from .metrics import require_sinks
from .physics.record import parse_record
from .policy import PolicySpec
from .recorder import Recorder, TrainingDiverged, token_strings  # noqa: F401 - re-exported
from .reward import component_names, score_batch, score_batch_sharded
from .train_state import TrainState, init_train_state

# --------------------------------------------------------------------------- the step


def rollout_step(state: TrainState, tables: automaton.GrammarTables, prompt_tokens: jax.Array,
                 prompt_len: jax.Array, *, config: Config, mesh: jax.sharding.Mesh | None = None,
                 advantage_fn: Callable | None = None):
    """The rollout half of a GRPO step (see the module docstring). With a mesh, each device
    samples its slice of the batch on its own (`sampler.sample_tokens_sharded`). Advantages come
    from `advantage_fn`, else the config's grpo.advantage_fn hook, else grpo.group_advantages.

    Metrics: the policy's reward (`mean_reward`: the curriculum phase's reward and the discovery
    bonuses included), and the mean of every reward term as scored for the task (each built-in
    `*_reward`, each reward.extra term under its name, `total_reward`).

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
    records = None   # parsed once for the reward and the bonuses (on one device)
    if mesh is None:
        records = jax.vmap(parse_record, in_axes=0)(rollout.tokens)
        scores = score_batch(rollout.tokens, config.reward, records)
    else:
        scores = score_batch_sharded(rollout.tokens, config.reward, mesh=mesh)
    if tc.use_curriculum:
        rewards, phase_success = C.phase_reward(scores, config.curriculum, state.curriculum.phase,
                                                config.reward)
        curriculum = C.advance(state.curriculum, config.curriculum,
                               phase_success.astype(jnp.float32).mean())
    else:
        rewards, curriculum = scores["total_reward"], state.curriculum
    bonus, novelty = D.discovery_rewards(rollout.tokens, prompt_tokens, scores["success"],
                                         state.novelty, config.discovery, records)
    rewards = rewards + D.total_bonus(bonus)
    advantage_fn = advantage_fn or gc.advantage_fn
    if advantage_fn is None:
        advantages = grpo.group_advantages(rewards, gc.group_size, gc.scale_by_std, gc.advantage_eps)
    else:
        advantages = grpo.custom_advantages(advantage_fn, rewards, gc)
    batch = grpo.PolicyBatch(tokens=rollout.tokens, old_logprobs=rollout.logprobs,
                             completion_mask=rollout.completion_mask, advantages=advantages,
                             weights=jnp.ones_like(rewards))
    replay = state.replay
    if tc.use_priority_buffer:
        # The buffer keeps the reward the policy learns from (the phase's reward under the
        # curriculum, plus discovery bonuses): a replayed theory's advantage is its stored reward
        # against this step's fresh rewards, and both must be on one scale. The task's own
        # reward is logged as total_reward (and chooses the best model, below).
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
    if mesh is not None and tc.param_sharding == "fsdp":
        state = _in_fsdp_layout(state, mesh)
    return state, batch, metrics, rollout, scores


def _in_fsdp_layout(state: TrainState, mesh: jax.sharding.Mesh) -> TrainState:
    """Inside a jitted step: the state constrained to the fsdp shardings it came in with, so
    that it leaves the step split as it was (and its donated buffers are reused)."""
    return jax.lax.with_sharding_constraint(state,
                                            distributed.state_shardings(state, mesh, fsdp=True))


@dataclasses.dataclass(frozen=True)
class StepFunctions:
    """The two jitted halves of a step (each donates the state it is given)."""
    rollout: Callable   # (state, tables, prompt_tokens, prompt_len) -> (state, batch, metrics, rollout, scores)
    update: Callable    # (state, chunks, tables) -> (state, metrics)


def step_functions(config: Config, mesh: jax.sharding.Mesh | None = None) -> StepFunctions:
    """The jitted step of a config, built once per (config, the functions it calls): equal
    configs share their compiled programs, and a config whose hooks (reward.extra,
    grpo.advantage_fn) are other function objects -- or grpo.group_advantages replaced -- is
    compiled again rather than running the old function."""
    advantage_fn = config.grpo.advantage_fn or grpo.group_advantages
    return _step_functions(config, mesh, config.hooks(), advantage_fn)


@functools.lru_cache(maxsize=8)
def _step_functions(config: Config, mesh: jax.sharding.Mesh | None, hooks: tuple,
                    advantage_fn: Callable) -> StepFunctions:
    key = _program_key(config, mesh, hooks, advantage_fn)
    del hooks, advantage_fn   # the cache key only: rollout_step looks both up as it is traced
    fsdp = mesh is not None and config.train.param_sharding == "fsdp"
    update = grpo.make_update_step(
        config.model, config.grpo,
        gather_params=jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()) if fsdp else None,
        state_layout=functools.partial(_in_fsdp_layout, mesh=mesh) if fsdp else None)
    rollout = jax.jit(functools.partial(rollout_step, config=config, mesh=mesh),
                      donate_argnums=(0,))
    # The rollout's Python trace is most of a warm start: keep it exported (programs.py).
    return StepFunctions(rollout=programs.maybe_kept(rollout, "rollout", key, donate_argnums=(0,)),
                         update=update)


def _program_key(config: Config, mesh: jax.sharding.Mesh | None, hooks: tuple,
                 advantage_fn: Callable) -> str | None:
    """The config as plain data, the static part of a kept program's key (`programs`); None
    where the program is not decided by it: a mesh, a user hook, or an advantage function
    other than this package's (a notebook may patch grpo.group_advantages)."""
    if mesh is not None or hooks or advantage_fn is not grpo.group_advantages:
        return None
    return json.dumps(dataclasses.asdict(config), sort_keys=True, default=repr)


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
    """One GRPO step: the step's prompts, the rollout, the length split, the update. From step
    train.update_steps on, a harvest step: the rollout alone (the policy is not updated; the
    step count still advances, so each step samples with its own key)."""
    gc = config.grpo
    step = int(state.step)
    prompt_tokens, prompt_len = tasks.step_prompts(inputs.prompt_tokens, inputs.prompt_len,
                                                   step, gc.prompts_per_step, gc.group_size)
    if inputs.batch_sharding is not None:   # every process builds the same prompts
        prompt_tokens, prompt_len = distributed.put((prompt_tokens, prompt_len),
                                                    inputs.batch_sharding)
    state, batch, metrics, rollout, scores = fns.rollout(state, inputs.tables, prompt_tokens,
                                                         prompt_len)
    update_steps = config.train.update_steps
    if update_steps is None or step < update_steps:
        # split_by_length reads the rows' lengths on the host, which with several processes
        # needs every row here; its chunks then go back onto the batch's devices, so the update
        # stays data-parallel (rows cut out of a sharded batch come back replicated: every
        # device would compute the whole update).
        chunks = grpo.split_by_length(distributed.gather(batch), gc.update_chunks,
                                      config.model.max_len)
        chunks = tuple(_shard_rows(c, inputs.batch_sharding) for c in chunks)
        state, update_metrics = fns.update(state, chunks, inputs.tables)
        metrics = {**metrics, **update_metrics}
    else:   # a harvest step: the update would also have advanced the step count
        state = state.replace(step=state.step + 1)
    # The host's records read every row: with several processes each needs a full copy.
    tokens, scores = distributed.gather((rollout.tokens, scores))
    return state, StepOutputs(metrics=metrics, tokens=tokens, scores=scores)


def _shard_rows(chunk: grpo.PolicyBatch, sharding: Any) -> grpo.PolicyBatch:
    """A chunk of rows on the batch's devices when its rows split evenly over them (else it
    stays replicated: each device then computes the whole chunk)."""
    rows = chunk.tokens.shape[0]
    if sharding is None or rows % sharding.mesh.size:
        return chunk
    return distributed.put(chunk, sharding)


# --------------------------------------------------------------------------- setup

def data_parallel_shardings(batch_size: int, group_size: int | None = None
                            ) -> tuple[Any, Any] | None:
    """(batch sharding, replicated sharding) over a 1-D "data" mesh of all devices (of every
    process); None on one device.

    The step functions keep the batch axis leading and every per-example
    computation vmapped, so jit partitions sampling, scoring and the loss
    along the batch and reduces the gradients across devices. The batch is
    group-major (a prompt's group_size rows are adjacent) and device d takes
    rows d*B/n .. (d+1)*B/n - 1, so no group straddles two devices when
    prompts_per_step is a multiple of the device count; otherwise a group's
    advantages are reduced across the devices that hold it (correct, and a
    little communication).
    """
    devices = jax.devices()
    if len(devices) == 1:
        return None
    if batch_size % len(devices):
        group = (f" ({batch_size // group_size} prompts x group_size {group_size})"
                 if group_size else " (prompts_per_step x group_size)")
        fail(f"grpo: the batch of {batch_size} theories{group} does not split over the "
             f"{len(devices)} devices of this run ({jax.process_count()} process(es)): make "
             f"grpo.prompts_per_step x grpo.group_size a multiple of {len(devices)} "
             f"(prompts_per_step a multiple of {len(devices)} keeps every group on one device)")
    mesh = distributed.global_mesh()
    return (jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")),
            jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def init_state(config: Config, seed: int | None = None) -> TrainState:
    """A fresh TrainState from random parameters (a one-entry replay buffer when replay is off)."""
    return _init_state(config, config.train.seed if seed is None else seed)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _init_state(config: Config, seed: int) -> TrainState:
    # one compiled program (kept in the compilation cache) instead of some forty small
    # operations compiled one by one at every start
    root = jax.random.PRNGKey(seed)
    params = M.init_params(config.model, jax.random.fold_in(root, 0))
    return init_train_state(params, grpo.make_optimizer(config.grpo), jax.random.fold_in(root, 1),
                            config.grpo.kl_coef, C.init_curriculum(config.curriculum),
                            R.init_replay(config.replay, config.train.use_priority_buffer,
                                          config.model.max_len),
                            D.init_novelty(config.discovery))


def initial_state(config: Config, checkpoint: str | None = None,
                  resume: str | None = None) -> TrainState:
    """A fresh state, one starting from a pretrained policy (`checkpoint`: its parameters become
    the policy and the reference), or a resumed run's whole state (its newest intact checkpoint)."""
    state = init_state(config)
    if resume:   # with several processes orbax restores into the global mesh's arrays
        return load_latest(resume, _restore_target(config, state))[0]
    if checkpoint:   # fsdp: each device reads its part (a checkpoint of either layout)
        params = load_params(checkpoint, _restore_target(config, state).params)
        return init_train_state(params, grpo.make_optimizer(config.grpo), state.rng,
                                config.grpo.kl_coef, state.curriculum, state.replay, state.novelty)
    return state


def _fsdp_mesh(config: Config) -> jax.sharding.Mesh | None:
    """The mesh the state is split over (train.param_sharding "fsdp" on several devices), else
    None (one device: the option does nothing)."""
    if config.train.param_sharding != "fsdp" or jax.device_count() == 1:
        return None
    return distributed.global_mesh()


def _place_state(state: TrainState, shardings: Any) -> TrainState:
    """`state` with each leaf in its own sharding (`distributed.put` leaf by leaf)."""
    return jax.tree.map(lambda x, s: distributed.put(x, s), state, shardings)


def _restore_target(config: Config, state: TrainState) -> TrainState:
    """The form a checkpoint is restored into: `state` split as `place` splits it (fsdp; orbax
    then reads each device's part of a checkpoint saved in either layout), else replicated."""
    mesh = _fsdp_mesh(config)
    if mesh is None:
        return distributed.replicate(state)
    return _place_state(state, distributed.state_shardings(state, mesh, fsdp=True))


def task_prompts(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """The task's prompts, checked against the grammar and packed ([n, W], [n])."""
    return tasks.pack_prompts(tasks.task_prompts(config.train.task, config.train.prompt_files),
                              config.model.max_len)


def place(config: Config, state: TrainState) -> tuple[TrainState, StepInputs, StepFunctions]:
    """The state and step inputs on the devices, and the step's compiled functions."""
    prompt_tokens, prompt_len = task_prompts(config)
    tables = automaton.load_tables()
    shardings = data_parallel_shardings(config.grpo.batch_size, config.grpo.group_size)
    if shardings:   # every process holds the same state and tables: each places its part
        mesh = _fsdp_mesh(config)
        if mesh is None:
            state, tables = distributed.put((state, tables), shardings[1])
        else:   # the state split over the devices (ZeRO-3), the tables replicated
            state = _place_state(state, distributed.state_shardings(state, mesh, fsdp=True))
            tables = distributed.put(tables, shardings[1])
    else:   # committed, as the step's outputs are: else step 2 compiles the rollout again
        state, tables = jax.device_put((state, tables), jax.devices()[0])
    inputs = StepInputs(tables=tables, prompt_tokens=prompt_tokens, prompt_len=prompt_len,
                        batch_sharding=shardings[0] if shardings else None)
    return state, inputs, step_functions(config, shardings[0].mesh if shardings else None)


def estimate_memory(config: Config) -> dict[str, int]:
    """Bytes a training step needs, estimated by part (and "total"): the state (exact, from its
    shapes), gradients and optimiser temporaries, sampling (KV cache, logits) and the update
    (policy and reference log-probs and the logits' gradient [B, L, V], grammar masks, and the
    activations the backward pass keeps: per layer and position ~6 d_model + 2 d_ff values
    and a row of attention weights per head). XLA's temporaries are not counted.

    With train.param_sharding "fsdp" on n devices the state's parameters, reference and
    optimiser state, and the gradients, are divided by n (each device holds 1/n of them; the
    replay buffer and novelty table stay whole; the parameters a forward pass all-gathers
    are XLA temporaries, not counted)."""
    mc, gc = config.model, config.grpo
    state = jax.eval_shape(lambda: init_state(config))
    nbytes = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))  # noqa: E731
    n = jax.device_count() if config.train.param_sharding == "fsdp" else 1
    split = nbytes((state.params, state.ref_params, state.opt_state))   # what fsdp divides by n
    rows = gc.batch_size + (config.replay.replay_per_step if config.train.use_priority_buffer else 0)
    L, V, D, F, H = mc.max_len, mc.vocab_size, mc.d_model, mc.d_ff, mc.n_heads
    act = 2 if mc.dtype == "bfloat16" else 4
    cache = 2 if mc.cache_dtype == "bfloat16" else 4
    parts = {
        "state": nbytes(state) - split + split // n,
        "gradients": 2 * nbytes(state.params) // n,
        "sampling": mc.n_layers * 2 * gc.batch_size * L * D * cache + gc.batch_size * L * (V + 12) * 4,
        "update": rows * L * V * (3 * 4 + 1) + mc.n_layers * rows * L * (6 * D + 2 * F + H * L) * act,
    }
    return {**parts, "total": sum(parts.values())}


def device_memory() -> tuple[int | None, str]:
    """(bytes, what) of memory the first device may use: an accelerator's own, else the host's
    (the cgroup limit when lower); None when unknown."""
    device = jax.local_devices()[0]   # this process's (another host's cannot be asked)
    stats = getattr(device, "memory_stats", lambda: None)()
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), f"{device.platform} device memory"
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None, "memory"
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total, "host memory"


def check_memory(config: Config) -> None:
    """UserError with the estimate when a config cannot fit in the device's memory."""
    available, what = device_memory()
    need = estimate_memory(config)
    if available is None or need["total"] <= available:
        return
    gb = lambda n: f"{n / 1e9:.1f} GB"  # noqa: E731
    parts = ", ".join(f"{k} {gb(v)}" for k, v in need.items() if k != "total")
    fail(f"this config needs at least {gb(need['total'])} ({parts}; a batch of "
         f"{config.grpo.batch_size} theories of {config.model.max_len} tokens) but the "
         f"{what} is {gb(available)}: lower grpo.group_size or grpo.prompts_per_step, "
         f"replay.capacity or the model")


# --------------------------------------------------------------------------- evaluation

def evaluate(params: Any, config: Config, episodes: int, seed: int = 12345) -> dict[str, float]:
    """Mean reward, success rate and unique successes (distinct physics models) of `episodes`
    fresh samples of the task, sampled and scored a batch at a time (memory constant in
    `episodes`)."""
    prompt_tokens, prompt_len = task_prompts(config)
    tables = automaton.load_tables()
    key = jax.random.PRNGKey(seed)
    policy = PolicySpec.from_config(config.grpo)
    total, successes, unique = 0.0, 0, set()
    batch = config.grpo.batch_size
    for start in range(0, episodes, batch):
        n = min(batch, episodes - start)
        rows = np.arange(start, start + batch) % len(prompt_tokens)   # one compiled shape
        rollout = S.sample_tokens(params, tables, jnp.asarray(prompt_tokens[rows]),
                                  jnp.asarray(prompt_len[rows]), jax.random.fold_in(key, start),
                                  policy, config=config.model)
        scores = jax.device_get(score_batch(rollout.tokens, config.reward))
        tokens = np.asarray(rollout.tokens)[:n]
        total += float(np.sum(scores["total_reward"][:n], dtype=np.float64))
        successes += int(np.sum(scores["success"][:n]))
        for row, ok in zip(tokens, scores["success"][:n]):
            if ok:
                unique.add(model_id(token_strings(row)))
    return {"mean_reward": total / episodes, "success_rate": successes / episodes,
            "unique_successes": len(unique), "episodes": episodes}


# --------------------------------------------------------------------------- the loop

class StopRequests:
    """SIGINT (Ctrl-C) and SIGTERM as requests to stop at the next step boundary: the loop then
    saves a checkpoint and returns (`signal` names the request; None: none). A second request
    stops at once (KeyboardInterrupt). Handlers are installed only from the main thread,
    between `__enter__` and `__exit__`."""

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._request)
        return self

    def _request(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""

    def agree(self, out_of_time: bool = False) -> tuple[bool, bool]:
        """(out_of_time, stop) as all processes of the run decide them together: a request (or
        a deadline) seen by any process stops every one at this step boundary, or the others
        would wait in the checkpoint's collective save for ever. A process that saw no request
        takes the one agreed on as its own (`signal`). With one process: its own view."""
        signum, late = distributed.agree_max(self.signal or 0, int(out_of_time))
        if signum and self.signal is None:
            self.signal = signum
        return bool(late), bool(signum)


def _resume_target(config: Config, resume: str) -> TrainState:
    """The state a resume restores into. With replay off, a checkpoint written before the buffer
    shrank to one entry when off holds a capacity-sized one: keep its size."""
    target = _restore_target(config, init_state(config))
    if config.train.use_priority_buffer:
        return target
    try:
        capacity = read_metadata(resume)["config"]["replay"]["capacity"]
    except (CheckpointError, KeyError, TypeError):
        return target
    if isinstance(capacity, int) and capacity > 1 and saved_shape(resume, ("replay", "tokens")) == (
            capacity, config.model.max_len):
        target = target.replace(replay=distributed.replicate(
            R.init_buffer(capacity, config.model.max_len)))
    return target


def _resume_into(out: Path, config: Config, resume: str, log: Callable[[str], None]
                 ) -> tuple[TrainState, dict, Checkpointer, dict[str, list[float]]]:
    """The state of run directory `out` resumed from `resume` (its newest intact checkpoint, or
    the one named), with the run directory cut back to that checkpoint's step (see rundir)."""
    checkpointer = Checkpointer(out, keep=config.train.keep_checkpoints)   # finishes a cut swap
    state, metadata, source, skipped = load_latest(resume, _resume_target(config, resume),
                                                   warn=log)
    step = int(state.step)
    changed = [c for c in rundir.changed_settings(metadata.get("config", {}), config.to_dict())]
    if changed:
        log(f"resuming {source} (step {step}) with changed settings: {'; '.join(changed)}")
    gone = checkpointer.discard_after(step, skipped)
    if gone:
        log(f"resuming from step {step}: set aside the later checkpoints "
            f"{', '.join(p.name for p in gone)}")
    checkpointer.repair_best(metadata.get("best_step"), warn=log)
    if not distributed.is_primary():   # process 0 cuts the run's files back; the others keep
        distributed.barrier("resume:cut")   # no history (they write no records)
        return state, metadata, checkpointer, {}
    records = rundir.cut_metrics(out, step)
    stats_path = out / rundir.STATS_FILE
    stats = None
    if not records and stats_path.is_file():
        try:
            stats = json.loads(stats_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stats = None
    rundir.cut_catalogue(out, step)
    distributed.barrier("resume:cut")
    return state, metadata, checkpointer, rundir.history_from(records, step, stats)


def train(config: Config, output_dir: str | Path, checkpoint: str | None = None,
          resume: str | None = None, log: Callable[[str], None] = print,
          overwrite: bool = False,
          stop: StopRequests | None = None) -> tuple[TrainState, dict[str, float]]:
    """Run GRPO up to config.train.num_episodes steps (or train.max_minutes of wall time, or a
    SIGINT/SIGTERM: see StopRequests), writing everything into output_dir.

    The run holds output_dir's lock throughout (rundir.RunLock). A new run (no `resume`) into
    a directory that holds a run's files stops, unless `overwrite` (they are removed first).
    `resume` (a run directory or one of its checkpoints) continues that run exactly; a resume
    that fails changes nothing, and a `resume` outside output_dir starts a new run from that
    checkpoint's state. A run that fails before its first step leaves no run files behind.
    Returns the final state and the last step's metrics.
    """
    out = Path(output_dir)
    primary = distributed.is_primary()   # several processes: only process 0 writes run files
    if not primary:
        log = _silent
    if resume:
        resolve_checkpoint(resume)             # a missing resume creates nothing
    rundir.check_output_dir(out)
    task_prompts(config)                       # bad prompt files: before anything is written
    check_memory(config)
    require_sinks(config.train.report_to)      # a missing wandb package: before anything too
    same_run = bool(resume) and out.exists() and out.resolve() == run_dir_of(resume).resolve()
    created = not out.exists()
    distributed.barrier("train:checked")   # every process has looked before process 0 writes
    lock = rundir.RunLock(out)             # unacquired (releasing it does nothing) but on 0
    failure: BaseException | None = None
    if primary:
        try:
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                fail(f"{out}: cannot create the run directory: {e.strerror}")
            lock.acquire()
        except Exception as e:   # noqa: BLE001 - re-raised below, after telling the others
            failure = e
    if distributed.agree(failure is not None)[0]:
        if failure is not None:
            raise failure
        fail(f"{out}: process 0 could not start the run there (its error says why)")
    try:
        with stop if stop is not None else StopRequests() as requests:
            state, metrics = _run(config, out, lock, created, same_run, checkpoint, resume,
                                  overwrite, log, requests)
            return distributed.local(state), metrics   # several processes: this host's copy
    finally:
        lock.release()


def _silent(message: str) -> None:
    """The log of processes other than 0 (process 0 says everything once)."""


def _run(config: Config, out: Path, lock: rundir.RunLock, created: bool, same_run: bool,
         checkpoint: str | None, resume: str | None, overwrite: bool,
         log: Callable[[str], None], requests: StopRequests) -> tuple[TrainState, dict[str, float]]:
    """`train` once `out` is locked: the run's start (undone if it fails, or if a stop request
    comes before the first step), then the loop."""
    metadata: dict = {}
    history: dict[str, list[float]] = {}
    ours = False   # the run files in `out` are this new run's (to remove if it fails to start)
    primary = distributed.is_primary()
    try:
        if same_run:
            state, metadata, checkpointer, history = _resume_into(out, config, resume, log)
        else:
            used = rundir.run_files(out)
            distributed.barrier("run:looked")   # before process 0 removes anything
            if used and not overwrite:
                if checkpoint_steps(out / CHECKPOINTS_DIR):
                    fail(f"{out}: holds a run already ({', '.join(used)}): continue it with "
                         f"--resume {out}, or pass --overwrite to replace it")
                fail(f"{out}: holds the files of a run that ended before its first checkpoint "
                     f"({', '.join(used)}): pass --overwrite to start again there")
            state = initial_state(config, checkpoint, resume)
            if used and primary:
                log(f"--overwrite: removing the previous run's {', '.join(used)} from {out}")
                rundir.clear_run(out)
            ours = True
        state, inputs, fns = place(config, state)
        if not same_run:
            checkpointer = Checkpointer(out, keep=config.train.keep_checkpoints)
        if primary:
            save_config(config, out / rundir.CONFIG_FILE)
        if requests.agree()[1]:
            raise KeyboardInterrupt   # stopped before the first step: as if never started
    except BaseException:
        if primary:
            if ours:   # a new run that never started: no run files left behind
                rundir.clear_run(out)
            lock.release(undo=True)
            if created:
                shutil.rmtree(out, ignore_errors=True)
        raise
    from .progress import RUN_LOG, Progress, RunLog

    start, tc = int(state.step), config.train
    primary = jax.process_index() == 0   # only process 0 shows and writes the run's records
    # Every line shown from here on also goes to RUN_DIR/run.log (a resume appends).
    progress = Progress(start, tc.num_episodes, tc.log_interval,
                        RunLog(out / RUN_LOG if primary else None), log=log,
                        show=tc.progress_bar, backend=jax.default_backend(), primary=primary)
    progress.notice(f"theorygrpo_jax: {M.num_params(state.params):,} parameters, "
                    f"{config.grpo.batch_size} theories per step, steps {start}..{tc.num_episodes}, "
                    f"output in {out}")
    recorder = None
    try:
        recorder = Recorder(out, config, checkpointer, write=progress.write, history=history,
                            saved_best=metadata.get("saved_best", float(state.best_reward))
                            if same_run else float(state.best_reward),
                            best_step=metadata.get("best_step"), primary=primary, step=start)
        if same_run:
            recorder.write_stats(state)   # as of the resumed step
        deadline = time.monotonic() + 60 * tc.max_minutes if tc.max_minutes else None
        for step in range(start, tc.num_episodes):
            if step == start:
                progress.compiling()
            t0 = time.perf_counter()
            state, outputs = train_step(state, inputs, fns, config)
            seconds = time.perf_counter() - t0
            out_of_time, stopping = requests.agree(   # all processes stop together
                deadline is not None and time.monotonic() >= deadline)
            last = step + 1 == tc.num_episodes or out_of_time
            m = recorder.record(state, outputs, seconds, last=last, checkpoint=stopping)
            progress.step_done(step + 1, m, seconds, last=last or stopping)
            if stopping:
                progress.write(f"stopping after step {step + 1} ({requests.name}): checkpoint "
                               f"saved; continue with --resume {out}")
                break
            if out_of_time:
                progress.write(f"stopping after step {step + 1}: train.max_minutes = "
                               f"{tc.max_minutes} reached")
                break
    finally:
        progress.close()
        if recorder is not None:
            recorder.close()
        progress.run_log.close()
    return state, recorder.last_metrics


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    """`theorygrpo-train`: `_main`, then (several processes) all leave the run together."""
    code = _main(argv)
    distributed.finish()
    return code


def _main(argv: list[str] | None = None) -> int:
    """`theorygrpo-train` / `python -m theorygrpo_jax.train` / `scripts/train.py`.

    Without --config, `--resume RUN` and `--eval_only --checkpoint RUN` (or `--eval_only
    --resume RUN`) read RUN/config.yaml; flags and --set override it. num_episodes is the
    total number of steps, so `--resume RUN --num_episodes N` trains up to step N."""
    import argparse
    import sys
    from datetime import datetime

    from .cli import add_override_flags, overrides_from_args, use_compilation_cache, user_errors
    from .config import load_config
    from .resources import config_path

    parser = argparse.ArgumentParser(
        prog="theorygrpo-train",
        description="Train TheoryGPT with GRPO. The seed's flags override the config file; "
                    "`--set section.key=value` sets any other key.")
    parser.add_argument("--config",
                        help="YAML config file, or the name of a packaged config (default, smoke, "
                             "from_scratch, original, gpu, ...); default: the run's own "
                             "config.yaml with --resume RUN or --eval_only --checkpoint RUN, "
                             "else default")
    parser.add_argument("--output_dir", help="run directory (default: runs/<config>-<timestamp>)")
    parser.add_argument("--checkpoint", help="start from this pretrained policy (params only)")
    parser.add_argument("--resume", help="continue this run exactly (run dir or checkpoint dir)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in --output_dir (default: stop)")
    parser.add_argument("--eval_only", action="store_true", help="evaluate and exit, no training")
    parser.add_argument("--json", action="store_true", help="with --eval_only: print one JSON object")
    add_override_flags(parser)
    distributed.add_flags(parser)
    args = parser.parse_args(argv)
    use_compilation_cache()

    def warn(message: str) -> None:
        print(message, file=sys.stderr)

    def resumed_step(resume: str) -> int | None:
        """The step of the checkpoint `resume` names (None when unreadable: the resume says why)."""
        path = resolve_checkpoint(resume)
        if path.name.isdigit():
            return int(path.name)
        try:
            step = read_metadata(path).get("step")
        except CheckpointError:
            return None
        return step if isinstance(step, int) else None

    with user_errors():
        distributed.initialize_from_args(args)   # before any JAX computation
        if args.checkpoint and args.resume:
            fail("give either --checkpoint (a pretrained policy) or --resume (a run to continue), "
                 "not both")
        config_file = config_path(args.config or "default")
        # A run directory stands alone: resuming or evaluating it reads its own config.yaml.
        source = args.resume or (args.checkpoint if args.eval_only else None)
        if args.config is None and source:
            resolve_checkpoint(source)
            saved = run_dir_of(source) / rundir.CONFIG_FILE
            config_file = saved if saved.is_file() else config_file
        config = load_config(config_file, overrides_from_args(args))
        finished = False
        if args.resume and not args.eval_only:
            step = resumed_step(args.resume)
            total = config.train.num_episodes
            if step is not None and total < step:
                fail(f"num_episodes is the total number of steps; the run is at step {step}: "
                     f"pass --num_episodes > {step}")
            # == step: nothing to train, but the resume's own checks (the run's lock, the
            # checkpoint against the config) still run in train() before that is said
            finished = step is not None and total == step
        if args.eval_only:
            check_memory(config)
            params = init_state(config).params
            params = load_params_latest(args.checkpoint or args.resume, params, warn) if (
                args.checkpoint or args.resume) else params
            result = evaluate(params, config, config.train.eval_episodes)
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
            name = Path(args.config or "default").stem
            output = Path("runs") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
        stop = StopRequests()
        state, _ = train(config, output, checkpoint=args.checkpoint, resume=args.resume,
                         log=warn, overwrite=args.overwrite, stop=stop)
        if stop.signal is not None:
            warn(f"stopped after step {int(state.step)} ({stop.name}); the run is saved in "
                 f"{output}: continue it with --resume {output}")
            return 128 + stop.signal
        if finished:
            warn(f"nothing to do: {args.resume} is at step {step} = num_episodes (the total "
                 f"number of steps); pass --num_episodes > {step} to train further")
            return 0
        if not distributed.is_primary():   # one final evaluation, printed once
            return 0
        result = evaluate(state.params, config, config.train.eval_episodes)
        print(f"final evaluation on {result['episodes']} fresh theories: mean reward "
              f"{result['mean_reward']:.4f}, success rate {result['success_rate']:.2%}, "
              f"{result['unique_successes']} unique successes; run saved in {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
