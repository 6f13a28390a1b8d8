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
  and `score_batch` does not recompile.)

``total_reward`` = Σ weight × component. ``success`` = anomaly free, no
invalid term and no light charged exotic. Integer diagnostics: ``anomaly_l1``
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


def _score(tokens: jax.Array, config: RewardConfig) -> dict[str, jax.Array]:
    records = jax.vmap(parse_record, in_axes=0)(tokens)
    return jax.vmap(all_rewards, in_axes=(0, None))(records, config)


_score_jit = jax.jit(_score, static_argnames=("config",))


def score_batch(tokens, config: RewardConfig | None = None) -> dict[str, jax.Array]:
    """Jitted vmap of parse_record + all_rewards: tokens [B, L] int32 -> dict of [B] arrays."""
    return _score_jit(jnp.asarray(tokens, jnp.int32), config if config is not None else RewardConfig())


def analyse_batch(tokens, config: RewardConfig | None = None) -> dict[str, Any]:
    """Everything, jitted: score_batch's dict plus ``anomaly_coeffs`` [B, 22] int32,
    ``anomaly_valid`` [B, 22] bool (slots of `physics.anomalies`), ``spectrum`` (a batched
    `physics.spectrum.Spectrum`) and ``record`` (the batched `TheoryRecord`). For reports
    and tests; the trainer wants `score_batch`."""
    return _analyse_jit(jnp.asarray(tokens, jnp.int32), config if config is not None else RewardConfig())


@functools.partial(jax.jit, static_argnames=("config",))
def _analyse_jit(tokens, config):
    records = jax.vmap(parse_record, in_axes=0)(tokens)
    out = dict(jax.vmap(all_rewards, in_axes=(0, None))(records, config))
    out["anomaly_coeffs"], out["anomaly_valid"] = jax.vmap(anom.anomaly_coefficients)(records)
    out["spectrum"] = jax.vmap(spec.spectrum)(records)
    out["record"] = records
    return out


__all__ = ["RewardConfig", "all_rewards", "score_batch", "analyse_batch", "heavy_exotic_fields",
           "BUILTIN_KEYS"]
