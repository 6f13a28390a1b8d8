"""The immutable training state: one pytree holding everything a run needs to continue.

Every update returns a new TrainState; checkpoints save it whole, so a
resumed run continues the same trajectory as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from .curriculum import CurriculumState
from .discovery import NoveltyTable
from .replay import ReplayBuffer


@struct.dataclass
class TrainState:
    """Parameters, optimiser, RNG, schedules, curriculum and replay buffer of a GRPO run."""
    params: Any               # policy parameters (pytree of arrays)
    ref_params: Any           # frozen reference policy for the KL penalty (pytree of arrays)
    opt_state: Any            # optax state of the policy optimiser
    step: jax.Array           # [] int32   GRPO steps done (= episodes; the entropy schedule's position)
    rng: jax.Array            # [2] uint32 root key; step s uses fold_in(rng, s)
    kl_coef: jax.Array        # [] float32 current KL coefficient (moves under the adaptive controller)
    best_reward: jax.Array    # [] float32 best mean reward of a step so far (-inf at start)
    curriculum: CurriculumState  # phase and success window
    replay: ReplayBuffer      # ring buffer of high-reward theories
    novelty: NoveltyTable     # successful finds per physics model (the novelty bonus's counts)


def init_train_state(params: Any, optimizer: optax.GradientTransformation, rng: jax.Array,
                     kl_coef: float, curriculum: CurriculumState, replay: ReplayBuffer,
                     novelty: NoveltyTable) -> TrainState:
    """A fresh state: the reference policy is a copy of the initial policy."""
    return TrainState(
        params=params,
        ref_params=jax.tree.map(jnp.copy, params),
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        rng=jnp.asarray(rng, jnp.uint32),
        kl_coef=jnp.asarray(kl_coef, jnp.float32),
        best_reward=jnp.asarray(-jnp.inf, jnp.float32),
        curriculum=curriculum,
        replay=replay,
        novelty=novelty,
    )
