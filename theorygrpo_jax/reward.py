"""The GRPO reward of TheoryLang theories (spec §4), jittable and vmappable.

    from theorygrpo_jax.reward import RewardConfig, score_batch
    out = score_batch(tokens, RewardConfig())        # tokens [B, L] int32 -> dict of [B] arrays
    out["total_reward"], out["success"], out["anomaly_l1"], ...

`all_rewards(record, config)` scores ONE `TheoryRecord` (vmap it with
``in_axes=(0, None)`` -- `config` is a static, hashable Python object);
`score_batch` is the jitted vmap of `parse_record` + `all_rewards`, compiled
once per (config, token shape).

Components (per theory, before weights):

- ``anomalies_reward``: mean over the valid anomaly conditions c of
  −log(1+|A_c|) − 5·[A_c ≠ 0]; 0 exactly when anomaly free.
- ``light_exotics_reward``: 0.1 × Σ over (component, generation) of exotic
  fields that are charged and lighter than the threshold (coloured or
  uncoloured) of −|log10(max(m, 1e-10)) − log10(threshold)|.
- ``invalid_terms_reward``: −(non-invariant terms + EM/colour-breaking VEVs).
- ``length_reward``: −α·(len − soft_len)/(max_len − soft_len) past soft_len.
- ``heavy_exotics_reward``: the number of distinct heavy charged exotic
  fields (see `physics.spectrum` / `heavy_exotic_fields`); weight 0 by
  default, a task preset turns it on so that "add nothing" is not optimal.
- extras: ``RewardConfig.extra`` is a tuple of (name, weight, fn) where fn is
  a jittable function TheoryRecord -> float scalar (per example, no batch
  axis). Each adds ``<name>`` to the output and weight × value to the total.
  Example: reward theories that have a SCALAR with VEV beside the Higgs ::

      import jax.numpy as jnp
      def n_vev_scalars(rec):                      # rec: one TheoryRecord
          return jnp.sum(rec.has_vev).astype(jnp.float32)
      cfg = RewardConfig(extra=(("vev_scalars", 0.1, n_vev_scalars),))

  (use module-level functions, not lambdas, so that equal configs hash equal
  and `score_batch` does not recompile.) In YAML (and `--set`) an extra is
  ``{name: vev_scalars, weight: 0.1, fn: "my_module:n_vev_scalars"}`` in the
  list ``reward.extra`` (theorygrpo_jax.hooks resolves the name; a run's
  config.yaml writes it back). Training logs each extra under its name
  (metrics.jsonl, TensorBoard, plots).

``total_reward`` = Σ weight × component. ``success`` = anomaly free, no
invalid term and no light charged exotic. A row the grammar rejects (`grammatical`) is
never a success and totals `ungrammatical_total`, below any grammatical row's total.
Integer diagnostics: ``anomaly_l1``
(Σ|A_c|), ``invalid_terms``, ``light_exotics``, ``heavy_exotic_fields``,
``length``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from theorygrpo_jax.config import BUILTIN_KEYS, RewardConfig  # noqa: F401 (re-exported)
from theorygrpo_jax.grammar import automaton
from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.physics import anomalies as anom
from theorygrpo_jax.physics import spectrum as spec
from theorygrpo_jax.physics.record import TheoryRecord, parse_record


def component_names(config: RewardConfig) -> tuple[str, ...]:
    """The reward's terms as they are logged: the built-in components, then the extras, then
    total_reward."""
    builtin = tuple(k for k in BUILTIN_KEYS if k.endswith("_reward") and k != "total_reward")
    return builtin + tuple(name for name, _, _ in config.extra) + ("total_reward",)

def _penalty_tables(config: RewardConfig) -> tuple[np.ndarray, np.ndarray]:
    """Light-code limits and penalties, computed in float64 on the host.

    Returns (limit [2], pen [2, NUM_CODES]) for rows 0 = uncoloured, 1 = coloured: a mass code
    is light iff code < limit (codes are ordered like masses), and pen[row, code] =
    −|log10(max(m, 1e-10)) − log10(threshold)| rounded once to float32.
    """
    thr = np.array([config.mass_threshold, config.coloured_mass_threshold], np.float64)
    m = spec.CODE_GEV[None, :]
    limit = np.sum(m < thr[:, None], axis=1).astype(np.int32)
    assert all(np.all((m[0] < t) == (np.arange(spec.NUM_CODES) < n)) for t, n in zip(thr, limit))
    pen = -np.abs(np.log10(np.maximum(m, 1e-10)) - np.log10(thr[:, None]))
    return limit, pen.astype(np.float32)


@jax.named_scope("heavy_exotic_fields")
def heavy_exotic_fields(record: TheoryRecord, sp: spec.Spectrum, light: jax.Array) -> jax.Array:
    """Distinct heavy charged exotic fields (int32 scalar).

    A field qualifies when it is exotic, has a charged component, and none of
    its charged (component, generation) pairs is light. Fields count once per
    class of quantum numbers: kind (fermion / scalar) and slots, with R
    fermions written as left-handed conjugates and a class closed under
    conjugation -- so a vector-like pair ψ_L, ψ_R (or two L fields X and X̄)
    is ONE heavy exotic; generations and CPLX/REAL do not matter.
    """
    qualifies = sp.exotic & jnp.any(sp.charged, axis=1) & ~jnp.any(light, axis=(1, 2))
    s, sbar = spec.normalised_slots(record)
    same = (jnp.all(s[:, None, :] == s[None, :, :], axis=2) | jnp.all(s[:, None, :] == sbar[None, :, :], axis=2))
    same = same & (record.is_fermion[:, None] == record.is_fermion[None, :])
    earlier = jnp.arange(s.shape[0])[None, :] < jnp.arange(s.shape[0])[:, None]      # [i, j]: j < i
    dup = jnp.any(same & earlier & qualifies[None, :], axis=1)
    return jnp.sum((qualifies & ~dup).astype(jnp.int32))


@jax.named_scope("all_rewards")
def all_rewards(record: TheoryRecord, config: RewardConfig) -> dict[str, jax.Array]:
    """Every reward component, the total, success and diagnostics of ONE record."""
    coeffs, valid = anom.anomaly_coefficients(record)
    per_cond = -jnp.log1p(jnp.abs(coeffs).astype(jnp.float32)) - 5.0 * (coeffs != 0)
    n_cond = jnp.maximum(jnp.sum(valid.astype(jnp.int32)), 1)
    anomalies_reward = jnp.sum(jnp.where(valid, per_cond, 0.0)) / n_cond
    l1 = anom.anomaly_l1(coeffs)

    sp = spec.spectrum(record)
    limit, pen_tab = _penalty_tables(config)
    col = sp.coloured[:, None, None]                                      # [16, 1, 1]
    code = sp.mass_code                                                   # [16, 3, 4]
    flat = col.astype(jnp.int32) * spec.NUM_CODES + code
    mask = (sp.exotic[:, None, None] & sp.charged[:, :, None] & sp.gen_valid[:, None, :])
    light = mask & (code < jnp.where(col, int(limit[1]), int(limit[0])))
    light_exotics = jnp.sum(light.astype(jnp.int32))
    light_reward = 0.1 * jnp.sum(jnp.where(light, jnp.asarray(pen_tab.reshape(-1))[flat], 0.0))

    invalid = jnp.sum(sp.invalid_term.astype(jnp.int32)) + jnp.sum(sp.breaking_vev.astype(jnp.int32))
    invalid_reward = (-invalid).astype(jnp.float32)

    excess = jnp.maximum(record.length - config.soft_len, 0).astype(jnp.float32)
    length_reward = 0.0 - config.length_alpha * excess / float(config.max_len - config.soft_len)

    heavy = heavy_exotic_fields(record, sp, light)
    heavy_reward = heavy.astype(jnp.float32)

    total = (config.anomalies_weight * anomalies_reward + config.light_exotics_weight * light_reward
             + config.invalid_terms_weight * invalid_reward + config.length_weight * length_reward
             + config.heavy_exotics_weight * heavy_reward)
    out: dict[str, jax.Array] = {}
    for name, weight, fn in config.extra:
        value = jnp.asarray(fn(record), jnp.float32).reshape(())
        out[name] = value
        total = total + weight * value
    out.update(
        anomalies_reward=anomalies_reward.astype(jnp.float32),
        light_exotics_reward=light_reward.astype(jnp.float32),
        invalid_terms_reward=invalid_reward,
        length_reward=jnp.asarray(length_reward, jnp.float32),
        heavy_exotics_reward=heavy_reward,
        total_reward=jnp.asarray(total, jnp.float32),
        success=(l1 == 0) & (invalid == 0) & (light_exotics == 0),
        anomaly_l1=l1,
        invalid_terms=invalid.astype(jnp.int32),
        light_exotics=light_exotics,
        heavy_exotic_fields=heavy,
        length=record.length,
    )
    return out


# |anomalies_reward| <= 5 + log(1 + |A|) with |A| <= 2^31 - 1 (anomaly_coefficients saturates)
ANOMALIES_BOUND = 5.0 + math.log1p(2.0 ** 31)
LIGHT_SLOTS = 16 * 3 * 4        # (field, component, generation) pairs a light exotic can fill
INVALID_BOUND = 16 + 16         # invalid terms (<= 16) + symmetry-breaking VEVs (<= 16 fields)
HEAVY_BOUND = 16                # distinct heavy exotic fields (<= 16 fields)


def ungrammatical_total(config: RewardConfig, width: int) -> float:
    """total_reward of a row the grammar rejects: below every grammatical row's total.

    Each built-in component of a grammatical theory of at most `width` tokens is
    bounded (ANOMALIES_BOUND, LIGHT_SLOTS x the largest light-mass penalty,
    INVALID_BOUND, the length penalty at `width`, HEAVY_BOUND); the floor is one
    (plus 1%) below minus the weighted sum of those bounds. `extra` components
    have no bound: `score_batch` then also stays below the batch's lowest
    grammatical total.
    """
    _, pen = _penalty_tables(config)
    length = config.length_alpha * max(width - config.soft_len, 0) / (config.max_len - config.soft_len)
    bound = (abs(config.anomalies_weight) * ANOMALIES_BOUND
             + abs(config.light_exotics_weight) * 0.1 * LIGHT_SLOTS * float(np.max(np.abs(pen)))
             + abs(config.invalid_terms_weight) * INVALID_BOUND
             + abs(config.length_weight) * length
             + abs(config.heavy_exotics_weight) * HEAVY_BOUND)
    return -(1.0 + 1.01 * bound)


def grammatical(tokens: jax.Array) -> jax.Array:
    """[B] bool: row b of tokens [B, L] holds a whole theory the grammar accepts, read as
    `parse_record` reads it (BOS optional; what follows EOS ignored): the automaton, run over
    the row until EOS, ends in its accept node (a token it forbids sends it to the dead node
    for good, a row without EOS never gets there). The loop stops once every row is finished
    or dead, so it costs the longest theory's length, not L."""
    with jax.ensure_compile_time_eval():   # concrete tables (load_tables caches them), not tracers
        tables = automaton.load_tables()
    step = jax.vmap(automaton.step, in_axes=(None, 0, 0))
    rows = tokens.shape[0]
    start = jax.vmap(lambda _: automaton.init_state(tables))(tokens[:, 0])
    after_bos = step(tables, start, jnp.full((rows,), V.BOS, jnp.int32))
    start = jax.tree.map(lambda a, b: jnp.where(tokens[:, 0] == V.BOS, a, b), start, after_bos)

    def reading(carry):
        pos, g = carry
        return (pos < tokens.shape[1]) & jnp.any(~automaton.is_finished(tables, g)
                                                 & ~automaton.is_dead(g))

    def read(carry):
        pos, g = carry
        done = automaton.is_finished(tables, g)
        nxt = step(tables, g, tokens[:, pos])
        return pos + 1, jax.tree.map(lambda a, b: jnp.where(done, a, b), g, nxt)

    _, final = jax.lax.while_loop(reading, read, (jnp.int32(0), start))
    return automaton.is_finished(tables, final)


def _score(tokens: jax.Array, config: RewardConfig, axis: str | None = None,
           records: TheoryRecord | None = None) -> dict[str, jax.Array]:
    """The reward of every row; a row the grammar rejects (a sampler fault, hand-made tokens)
    is never a success and totals `ungrammatical_total`. Inside a shard_map over the batch,
    `axis` names its axis (the floor below is taken over the whole batch). `records`: the
    rows already parsed (`parse_record`, vmapped), so that a caller that also reads them
    (the rollout's discovery bonuses) parses each theory once."""
    if records is None:
        records = jax.vmap(parse_record, in_axes=0)(tokens)
    out = dict(jax.vmap(all_rewards, in_axes=(0, None))(records, config))
    ok = grammatical(tokens)
    floor = jnp.float32(ungrammatical_total(config, tokens.shape[1]))
    if config.extra:
        lowest = jnp.min(jnp.where(ok, out["total_reward"], jnp.inf))
        if axis is not None:
            lowest = jax.lax.pmin(lowest, axis)
        floor = jnp.minimum(floor, lowest - jnp.maximum(1.0, 1e-3 * jnp.abs(lowest)))
    out["total_reward"] = jnp.where(ok, out["total_reward"], floor)
    out["success"] = ok & out["success"]
    return out


_score_jit = jax.jit(_score, static_argnames=("config",))


def score_batch(tokens, config: RewardConfig | None = None,
                records: TheoryRecord | None = None) -> dict[str, jax.Array]:
    """Jitted vmap of parse_record + all_rewards: tokens [B, L] int32 -> dict of [B] arrays
    (`records`: the rows already parsed, see `_score`)."""
    return _score_jit(jnp.asarray(tokens, jnp.int32),
                      config if config is not None else RewardConfig(), records=records)


@functools.partial(jax.jit, static_argnames=("config", "mesh", "axis"))
def score_batch_sharded(tokens: jax.Array, config: RewardConfig, *, mesh: jax.sharding.Mesh,
                        axis: str = "data") -> dict[str, jax.Array]:
    """`score_batch` with the batch split over the `axis` devices of `mesh`: each device scores
    its own rows (shard_map), as each samples its own. Scored as one global batch, the grammar
    check's loop (it runs until every row is read) would all-reduce its condition across the
    devices at every iteration, and XLA:CPU may run a collective nested in a loop at the same
    time as another collective of the program: two processes then pair different collectives
    over gloo and abort ("Received data size doesn't match expected size")."""
    P = jax.sharding.PartitionSpec
    return jax.shard_map(functools.partial(_score, config=config, axis=axis), mesh=mesh,
                         in_specs=P(axis), out_specs=P(axis), check_vma=False)(tokens)


def analyse_batch(tokens, config: RewardConfig | None = None) -> dict[str, Any]:
    """Everything, jitted: score_batch's dict plus ``anomaly_coeffs`` [B, 22] int32,
    ``anomaly_valid`` [B, 22] bool (slots of `physics.anomalies`), ``spectrum`` (a batched
    `physics.spectrum.Spectrum`) and ``record`` (the batched `TheoryRecord`). For reports
    and tests; the trainer wants `score_batch`."""
    return _analyse_jit(jnp.asarray(tokens, jnp.int32), config if config is not None else RewardConfig())


@functools.partial(jax.jit, static_argnames=("config",))
def _analyse_jit(tokens, config):
    records = jax.vmap(parse_record, in_axes=0)(tokens)
    out = _score(tokens, config)
    out["anomaly_coeffs"], out["anomaly_valid"] = jax.vmap(anom.anomaly_coefficients)(records)
    out["spectrum"] = jax.vmap(spec.spectrum)(records)
    out["record"] = records
    return out


__all__ = ["RewardConfig", "all_rewards", "score_batch", "score_batch_sharded", "analyse_batch",
           "heavy_exotic_fields", "BUILTIN_KEYS", "grammatical", "ungrammatical_total"]
