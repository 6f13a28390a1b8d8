"""Reward: config validation, formulas, extras, and the JAX path == Python reference property test."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest

from theorygrpo_jax.grammar import recognizer, walks
from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.physics import anomalies as anom
from theorygrpo_jax.physics import reference as ref
from theorygrpo_jax.physics import spectrum as spec
from theorygrpo_jax.physics.record import tokens_to_ids
from theorygrpo_jax.reward import (BUILTIN_KEYS, RewardConfig, analyse_batch, grammatical,
                                   score_batch, ungrammatical_total)

from .physics.helpers import SM_FIELDS, analyse, sm
from .physics.theory_gen import random_theories

N_GENERATED = 6000     # biased generator (invariant terms, SM-like fields, edges)
N_WALKS = 4096         # uniform grammar walks
MAX_LEN = 256


# ---------------------------------------------------------------------------
# Config


def test_config_defaults_and_presets():
    c = RewardConfig()
    assert (c.mass_threshold, c.coloured_mass_threshold) == (100.0, 100.0)
    assert c.heavy_exotics_weight == 0.0 and c.extra == ()
    lhc = RewardConfig.lhc()
    assert (lhc.mass_threshold, lhc.coloured_mass_threshold) == (800.0, 1400.0)
    assert RewardConfig.lhc(heavy_exotics_weight=0.5).heavy_exotics_weight == 0.5
    assert RewardConfig.preset("lhc") == lhc and RewardConfig.preset("default") == c
    assert hash(RewardConfig()) == hash(RewardConfig())     # static jit argument
    with pytest.raises(ValueError, match="unknown reward preset"):
        RewardConfig.preset("tevatron")


@pytest.mark.parametrize("kwargs, match", [
    (dict(mass_threshold=0.0), "mass_threshold"),
    (dict(coloured_mass_threshold=-5), "coloured_mass_threshold"),
    (dict(mass_threshold=float("inf")), "mass_threshold"),
    (dict(anomalies_weight=float("nan")), "anomalies_weight"),
    (dict(length_weight="1"), "length_weight"),
    (dict(length_alpha=-1.0), "length_alpha"),
    (dict(soft_len=256, max_len=256), "soft_len < max_len"),
    (dict(max_len=0), "max_len"),
    (dict(soft_len=1.5), "soft_len"),
    (dict(extra=[("x", 1.0, len)]), "tuple"),
    (dict(extra=(("x", 1.0),)), r"\(name, weight, fn\)"),
    (dict(extra=(("x", 1.0, 3),)), "callable"),
    (dict(extra=(("total_reward", 1.0, len),)), "clashes"),
    (dict(extra=(("x", 1.0, len), ("x", 2.0, len))), "clashes"),
    (dict(extra=(("x", float("inf"), len),)), "weight"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RewardConfig(**kwargs)


# ---------------------------------------------------------------------------
# Formulas on hand cases


def n_vev_scalars(rec):
    """An extra reward component: number of scalars with a VEV."""
    return jnp.sum(rec.has_vev).astype(jnp.float32)


CUSTOM = RewardConfig(anomalies_weight=2.0, light_exotics_weight=3.0, invalid_terms_weight=0.5,
                      length_weight=1.5, heavy_exotics_weight=0.25, length_alpha=2.0, soft_len=50,
                      max_len=100, extra=(("vev_scalars", 0.125, n_vev_scalars),))

CASES = {
    "sm": sm(),
    "sm_no_eR": sm(fields=SM_FIELDS.replace("FERMION R gen_3 q_-6 1 1 END", ""), terms=""),
    # anomalous, an invalid term, a light exotic scalar and a heavy vector-like quark
    "messy": sm("FERMION L gen_1 q_7 F F END\nSCALAR CPLX NOVEV q_6 1 1 END\nFERMION R gen_1 q_3 1 1 END",
                "DIRAC m_7 m_9 M1e3 END\nDIRAC m_7 m_9 M2e3 END\nSMASS m_8 M2e1 END"),
}


@pytest.fixture(scope="module")
def hand():
    return analyse(CASES), analyse(CASES, CUSTOM)


def test_anomalies_reward_formula(hand):
    out, _ = hand
    assert out["sm"]["anomalies_reward"] == 0.0 and out["sm"]["success"]
    # SM without e_R: conditions (SU3^3, SU2^2 U1, SU3^2 U1, U1^3, grav U1, Witten) = (0, 0, 0, −648, −18, 0)
    expected = (-math.log(1 + 648) - 5 - math.log(1 + 18) - 5) / 6
    assert out["sm_no_eR"]["anomalies_reward"] == pytest.approx(expected, rel=1e-6)
    assert out["sm_no_eR"]["anomaly_l1"] == 648 + 18
    assert not out["sm_no_eR"]["success"]


def test_total_is_the_weighted_sum(hand):
    out, custom = hand
    for name in CASES:
        r = custom[name]
        # SM: 85 tokens > soft_len 50: −α·(85 − 50)/(100 − 50) = −2·35/50 = −1.4
        length = ref.parse_tokens(CASES[name]).length
        assert r["length"] == length
        assert r["length_reward"] == pytest.approx(-2.0 * max(length - 50, 0) / 50, rel=1e-6)
        n_vev = sum(1 for f in ref.parse_tokens(CASES[name]).fields if f.vev)
        assert r["vev_scalars"] == n_vev
        total = (2.0 * r["anomalies_reward"] + 3.0 * r["light_exotics_reward"] + 0.5 * r["invalid_terms_reward"]
                 + 1.5 * r["length_reward"] + 0.25 * r["heavy_exotics_reward"] + 0.125 * n_vev)
        assert r["total_reward"] == pytest.approx(total, rel=1e-6, abs=1e-6)
        # the components themselves do not depend on weights
        for k in ("anomalies_reward", "light_exotics_reward", "invalid_terms_reward", "heavy_exotics_reward"):
            assert r[k] == pytest.approx(out[name][k], rel=1e-6), (name, k)
    assert custom["sm"]["length_reward"] == pytest.approx(-1.4, rel=1e-6)
    assert out["sm"]["length_reward"] == 0.0              # default soft_len 128 > 85


def test_messy_theory(hand):
    out, _ = hand
    r = out["messy"]
    # DIRAC m_7 (q_7, 2, 3) with m_9 (q_3, 1, 1): not invariant, twice; m_8 charged scalar at 20 GeV;
    # m_7, m_9 massless: m_7 has 2 charged components (coloured), m_9 one (6Q = 3)
    assert r["invalid_terms"] == 2 and r["invalid_terms_reward"] == -2.0
    assert r["light_exotics"] == 1 + 2 + 1
    expected = 0.1 * (-abs(math.log10(20) - 2) - 3 * abs(-10 - 2))
    assert r["light_exotics_reward"] == pytest.approx(expected, rel=1e-6)
    assert not r["success"]


def test_score_batch_keys_and_shapes():
    ids = tokens_to_ids([CASES["sm"]] * 3, 128)
    out = score_batch(ids)
    assert set(out) == set(BUILTIN_KEYS)
    assert all(v.shape == (3,) for v in out.values())
    assert out["success"].dtype == bool and out["anomaly_l1"].dtype == np.int32


def test_parse_ignores_what_follows_eos_and_bos_is_optional():
    toks = CASES["messy"]                                            # 120 tokens
    ids = tokens_to_ids([toks, toks[1:], toks], 128)                 # same shape as above: no recompile
    ids[2, len(toks):] = np.arange(128 - len(toks)) % 150 + 3     # junk after EOS
    out = {k: np.asarray(v) for k, v in score_batch(ids).items()}
    for k, v in out.items():
        assert v[0] == v[1] == v[2], k
    assert out["length"][0] == len(toks)


# ---------------------------------------------------------------------------
# Property test: JAX == reference on > 10 000 random valid theories, ONE compile


@pytest.fixture(scope="module")
def random_batch():
    rng = np.random.default_rng(20240601)
    theories = random_theories(rng, N_GENERATED, MAX_LEN)
    theories += walks.random_walks(rng, N_WALKS, MAX_LEN)
    return theories


def test_random_theories_are_grammar_valid(random_batch):
    bad = [t for t in random_batch[:N_GENERATED] if not recognizer.recognise(t, MAX_LEN).accepted]
    assert not bad, recognizer.recognise(bad[0], MAX_LEN).error


def test_jax_equals_reference_on_random_theories(random_batch):
    config = RewardConfig.lhc(heavy_exotics_weight=0.5, soft_len=40, max_len=MAX_LEN)
    theories = random_batch
    assert len(theories) >= 10_000
    out = analyse_batch(tokens_to_ids(theories, MAX_LEN), config)
    host = {k: np.asarray(v) for k, v in out.items() if k not in ("spectrum", "record")}
    mass_code = np.asarray(out["spectrum"].mass_code)

    refs, ref_anoms, ref_masses = [], [], []
    for t in theories:
        th = ref.parse_tokens(t)
        an = ref.analyse(th, config)
        refs.append(ref.rewards(an, config))
        ref_anoms.append(an.anomalies)
        ref_masses.append(an.masses)

    for k in BUILTIN_KEYS:
        r = np.array([x[k] for x in refs])
        j = host[k]
        if j.dtype.kind == "f":
            np.testing.assert_allclose(j, r, rtol=1e-6, atol=1e-6, err_msg=k)
        else:
            np.testing.assert_array_equal(j, r, err_msg=k)

    gev = spec.CODE_GEV[mass_code]
    for b, t in enumerate(theories):
        gauge = t[t.index("GAUGE") + 1: t.index("END_GAUGE")]
        names = anom.condition_names(gauge)
        coeffs = host["anomaly_coeffs"][b][host["anomaly_valid"][b]]
        assert dict(zip(names, coeffs.tolist())) == ref_anoms[b], b
        for f, comps in enumerate(ref_masses[b]):
            for c, gens in enumerate(comps):
                assert gev[b, f, c, :len(gens)].tolist() == gens, (b, f, c)
            assert not gev[b, f, len(comps):].any()

    # the sample exercises every branch
    succ = host["success"]
    assert 0 < succ.sum() < len(succ)
    for k in ("light_exotics", "invalid_terms", "heavy_exotic_fields", "anomaly_l1"):
        assert (host[k] > 0).mean() > 0.05, k
    assert (host["length_reward"] < 0).any()


def test_config_is_static_and_replace_recompiles_only_on_change():
    a = RewardConfig()
    b = dataclasses.replace(a)
    assert a == b and hash(a) == hash(b)


# ---------------------------------------------------------------------------
# Ungrammatical rows: never a success, always below every grammatical row


def _reference_grammatical(row: np.ndarray) -> bool:
    """Plain Python: the row read as parse_record reads it (BOS optional, cut after the first
    EOS) is a theory the reference recogniser accepts."""
    toks = [V.TOKENS[int(t)] for t in row]
    toks = toks if toks[0] == "BOS" else ["BOS"] + toks
    return "EOS" in toks and recognizer.recognise(toks[:toks.index("EOS") + 1]).accepted


def _mutated(rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
    """Rows of valid theories, about half of them damaged the ways a faulty sampler or a
    hand-made batch would: a token replaced, EOS dropped, a PAD or two tokens swapped inside,
    BOS dropped or junk after EOS (the last two still grammatical as parse_record reads them)."""
    out = ids.copy()
    for row in out:
        end = int(np.flatnonzero(row == V.EOS)[0])
        kind = rng.integers(7)
        i, j = rng.integers(1, end, size=2)
        if kind == 0:
            row[i] = rng.integers(V.VOCAB_SIZE)
        elif kind == 1:
            row[end] = V.PAD
        elif kind == 2:
            row[i] = V.PAD
        elif kind == 3:
            row[i], row[j] = row[j], row[i]
        elif kind == 4:
            row[:-1] = row[1:].copy()
            row[-1] = V.PAD
        elif kind == 5:
            row[end + 1:] = rng.integers(V.VOCAB_SIZE, size=len(row) - end - 1)
    return out


def test_ungrammatical_rows_score_below_every_grammatical_row(random_batch):
    # Same shape and config as the property test above: no second compile.
    config = RewardConfig.lhc(heavy_exotics_weight=0.5, soft_len=40, max_len=MAX_LEN)
    ids = _mutated(np.random.default_rng(14), tokens_to_ids(random_batch, MAX_LEN))
    out = {k: np.asarray(v) for k, v in analyse_batch(ids, config).items()
           if k not in ("spectrum", "record")}
    expected = np.array([_reference_grammatical(row) for row in ids])
    assert 0.3 < expected.mean() < 0.8
    np.testing.assert_array_equal(np.asarray(grammatical(jnp.asarray(ids))), expected)
    assert not out["success"][~expected].any()
    assert out["total_reward"][~expected].max() < out["total_reward"][expected].min()
    assert (out["total_reward"][~expected] == np.float32(ungrammatical_total(config, MAX_LEN))).all()


def test_ungrammatical_total_is_below_each_components_bound():
    # Default config: weights 1, heavy exotics 0, thresholds 100 GeV, alpha 1, max_len 128,
    # soft_len 96. Bounds on a grammatical theory of 128 tokens:
    #   anomalies  5 + log(1 + 2^31)                       (coefficients saturate at 2^31 - 1)
    #   light      0.1 x 192 slots x |log10(1e-10) - 2| = 0.1 x 192 x 12   (a massless exotic)
    #   invalid    16 terms + 16 VEVs = 32
    #   length     1 x (128 - 96) / (128 - 96) = 1
    bound = (5 + math.log1p(2.0**31)) + 0.1 * 192 * 12 + 32 + 1
    assert ungrammatical_total(RewardConfig(), 128) == pytest.approx(-(1 + 1.01 * bound))
