"""Reward curriculum: phases that switch reward components on progressively.

    state = init_curriculum(cfg)                                   # in the TrainState
    total, ok = phase_reward(scores, cfg, state.phase, reward_cfg) # scores: reward.score_batch output
    state = advance(state, cfg, jnp.mean(ok))                      # once per step

A phase is a set of the components in `COMPONENTS`. In phase p the reward is
Σ over active components of RewardConfig weight × component, plus the
`RewardConfig.extra` terms (always on). The phase's success is every active
condition met:

    anomalies     -> anomaly_l1 == 0
    light_exotics -> light_exotics == 0
    invalid_terms -> invalid_terms == 0
    length        -> length_reward == 0   (not in the last phase, see below)
    heavy_exotics -> (a bonus: no condition)

The last phase measures the task itself: its length condition is dropped, so
when it has anomalies, light_exotics and invalid_terms on (the default) its
success is exactly the reward's `success`.

`advance` pushes the step's phase-success rate into a `window`-long history;
when the history is full and its mean reaches `mastery_threshold`, the next
phase starts with an empty history. The last phase is never left. `config`
is static everywhere (a hashable frozen dataclass); `phase` may be traced.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .config import CurriculumConfig, RewardConfig

COMPONENTS = ("anomalies", "light_exotics", "invalid_terms", "length", "heavy_exotics")
# The success condition of each component: (score key, the value it must equal); None: no condition.
_CONDITIONS = {"anomalies": "anomaly_l1", "light_exotics": "light_exotics",
               "invalid_terms": "invalid_terms", "length": "length_reward", "heavy_exotics": None}
_TOLERANCE = 1e-6  # mean-vs-threshold slack, so that e.g. rates of exactly 0.7 master a 0.7 threshold


@struct.dataclass
class CurriculumState:
    """Where the curriculum is (W = config.window)."""
    phase: jax.Array            # []  int32   current phase, 0 .. num_phases - 1
    recent_success: jax.Array   # [W] float32 phase-success rates of the last steps, oldest first
    #                                         (the newest is at the end; unfilled entries are 0)
    count: jax.Array            # []  int32   entries of recent_success filled since the phase began (<= W)


def init_curriculum(config: CurriculumConfig) -> CurriculumState:
    return CurriculumState(phase=jnp.zeros((), jnp.int32),
                           recent_success=jnp.zeros((config.window,), jnp.float32),
                           count=jnp.zeros((), jnp.int32))


def weight_table(config: CurriculumConfig) -> np.ndarray:
    """[num_phases, C] float32: 1 where the component is active in the phase."""
    return np.array([[float(c in phase) for c in COMPONENTS] for phase in config.phases], np.float32)


def condition_table(config: CurriculumConfig) -> np.ndarray:
    """[num_phases, C] bool: the success conditions checked in each phase."""
    table = weight_table(config) > 0
    table[:, COMPONENTS.index("heavy_exotics")] = False
    table[-1, COMPONENTS.index("length")] = False     # the last phase's success is the task's success
    return table


def phase_weights(config: CurriculumConfig, phase: jax.Array) -> jax.Array:
    """[C] float32 multipliers (1 active, 0 inactive) of COMPONENTS in `phase` (may be traced)."""
    return jnp.asarray(weight_table(config))[phase]


def phase_reward(scores: dict[str, jax.Array], config: CurriculumConfig, phase: jax.Array,
                 reward_config: RewardConfig) -> tuple[jax.Array, jax.Array]:
    """(total [B] float32, phase_success [B] bool) of the scored batch in `phase`.

    `scores` is what `reward.score_batch` returns (dict of [B] arrays).
    """
    active = phase_weights(config, phase)
    checked = jnp.asarray(condition_table(config))[phase]
    total = jnp.zeros_like(scores["total_reward"], jnp.float32)
    ok = jnp.ones(scores["total_reward"].shape, bool)
    for i, name in enumerate(COMPONENTS):          # same order as reward.all_rewards
        weight = getattr(reward_config, f"{name}_weight")
        total = total + active[i] * weight * scores[f"{name}_reward"]
        if _CONDITIONS[name] is not None:
            ok = ok & (~checked[i] | (scores[_CONDITIONS[name]] == 0))
    for name, weight, _ in reward_config.extra:
        total = total + weight * scores[name]
    return total.astype(jnp.float32), ok


def window_mean(state: CurriculumState) -> jax.Array:
    """[] float32 mean of the filled part of the window (0 when empty)."""
    return jnp.sum(state.recent_success) / jnp.maximum(state.count, 1).astype(jnp.float32)


def advance(state: CurriculumState, config: CurriculumConfig, success_rate: jax.Array) -> CurriculumState:
    """Record this step's phase-success rate; move to the next phase on mastery."""
    recent = jnp.concatenate([state.recent_success[1:],
                              jnp.asarray(success_rate, jnp.float32).reshape(1)])
    count = jnp.minimum(state.count + 1, config.window)
    mastered = ((count == config.window)
                & (jnp.mean(recent) >= config.mastery_threshold - _TOLERANCE)
                & (state.phase < len(config.phases) - 1))
    return CurriculumState(phase=state.phase + mastered.astype(jnp.int32),
                           recent_success=jnp.where(mastered, 0.0, recent),
                           count=jnp.where(mastered, 0, count))


__all__ = ["COMPONENTS", "CurriculumState", "init_curriculum", "phase_weights", "phase_reward",
           "advance", "window_mean", "weight_table", "condition_table"]
