"""Rewards that pay for discovery: a count-based novelty bonus on the physics model, and
bonuses for adding Standard-Model-charged or chiral matter to the prompt.

Without them the optimum of every task is "add nothing": the bare prompt is anomaly free and
has no exotic to make heavy, so a policy learns to write it with ever new Yukawa mass tokens.
Here a successful theory (anomaly free, every term invariant, every charged exotic heavy)
earns, on top of its reward:

    novelty_reward    = novelty_weight / sqrt(1 + n)   n: successful theories of the same model
                                                      found earlier in this run; by default only
                                                      for models adding SM-charged or chiral
                                                      matter (novelty_scope), scaled by
                                                      scalar_only_factor when it adds no fermion
    sm_charged_reward = sm_charged_weight  if its added fields carry hypercharge, SU(2) or colour
    chiral_reward     = chiral_weight      if its added fermions are chiral

"Model" is `physics.identity`'s physics identity (gauge group and field content; terms, masses
and field order ignored), or with `novelty_key: fermions` its fermion content alone (a policy
paid per model otherwise dresses one set of fermions in ever new scalars). The counts live in the TrainState as a fixed-size table indexed by
the model key's hash (`NoveltyTable`), so the bonus stays jitted and vmapped, is checkpointed
with the state and resumes exactly. Two models whose hashes share a bucket share a count; with
the default 2^16 buckets and a few thousand models found, that is rare and only lowers a bonus.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

from .config import DiscoveryConfig
from .physics import identity
from .physics.record import TheoryRecord, parse_record


@struct.dataclass
class NoveltyTable:
    """Successful theories found so far, per bucket of the model key's hash."""
    counts: jax.Array   # [S] int32


def init_novelty(config: DiscoveryConfig) -> NoveltyTable:
    """An empty table; one bucket when the novelty bonus is off (nothing allocated for it)."""
    size = config.table_size if config.novelty_weight > 0 else 1
    return NoveltyTable(counts=jnp.zeros((size,), jnp.int32))


def model_features(record: TheoryRecord, prompt: jax.Array,
                   fermions_only: bool = False) -> tuple[jax.Array, ...]:
    """One theory (its `parse_record`) against its prompt's tokens [W] (PAD after it): (hash
    [] uint32 of its model key, or of its fermion content alone when `fermions_only`; adds
    SM-charged matter [] bool, chiral [] bool, adds fermions [] bool)."""
    key = identity.model_key(record)
    cls = identity.model_class(key, identity.model_key_of_tokens(prompt), True)
    novelty_key = identity.fermion_key(key) if fermions_only else key
    return identity.key_hash(novelty_key), cls.adds_sm_charged, cls.chiral, cls.added_fermions > 0


def discovery_rewards(tokens: jax.Array, prompts: jax.Array, success: jax.Array,
                      table: NoveltyTable, config: DiscoveryConfig,
                      records: TheoryRecord | None = None
                      ) -> tuple[dict[str, jax.Array], NoveltyTable]:
    """The discovery bonuses of a batch, and the table with its successes counted.

    tokens [B, L] sampled theories, prompts [B, W] their prompts, success [B] bool; records:
    the theories already parsed (`parse_record`, vmapped; the rollout's reward parsed them),
    else parsed here. Returns ({"novelty_reward", "sm_charged_reward", "chiral_reward"}: each
    [B] float32, zero for unsuccessful rows; new table). Rows of one model in the same batch
    all see the count from before the batch.
    """
    if records is None:
        records = jax.vmap(parse_record, in_axes=0)(tokens)
    features = functools.partial(model_features, fermions_only=config.novelty_key == "fermions")
    hashes, charged, chiral, fermions = jax.vmap(features, in_axes=(0, 0))(records, prompts)
    size = table.counts.shape[0]
    bucket = (hashes % jnp.uint32(size)).astype(jnp.int32)
    seen = table.counts[bucket].astype(jnp.float32)
    ok = success.astype(jnp.float32)
    # A first run paid novelty for any model and learnt to add n copies of a singlet scalar:
    # n "new" models a physicist would not count. By default only real extensions count.
    novel = {"charged_or_chiral": success & (charged | chiral), "chiral": success & chiral,
             "any": success}[config.novelty_scope]
    # A second run then farmed heavy scalars of every quantum number (8 500 models, 13 with
    # fermions): scalar-only models earn a fraction of the novelty.
    weight = config.novelty_weight * jnp.where(fermions, 1.0, config.scalar_only_factor)
    bonus = {"novelty_reward": novel * weight / jnp.sqrt(1.0 + seen),
             "sm_charged_reward": ok * charged * config.sm_charged_weight,
             "chiral_reward": ok * chiral * config.chiral_weight}
    counts = table.counts
    if config.novelty_weight > 0:
        counts = counts.at[bucket].add(novel.astype(jnp.int32))
    return ({k: v.astype(jnp.float32) for k, v in bonus.items()},
            NoveltyTable(counts=counts))


def total_bonus(bonus: dict[str, jax.Array]) -> jax.Array:
    """[B] the sum of the discovery bonuses."""
    return bonus["novelty_reward"] + bonus["sm_charged_reward"] + bonus["chiral_reward"]
