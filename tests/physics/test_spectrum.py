"""Term invariance, EM/colour-breaking VEVs, masses, exotics: hand-derived cases.

Components are T3 states of the first SU2 (highest first), 6Q = 3·(2T3) + n_Y.
Every case runs through the JAX path (one batched compile per config) and is
also checked against the plain-Python reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from theorygrpo_jax.grammar import text
from theorygrpo_jax.physics import reference as ref
from theorygrpo_jax.physics import spectrum as spec
from theorygrpo_jax.reward import RewardConfig

from .helpers import EXAMPLES, SM_FIELDS, analyse, sm, theory

# √(4π)·246/√2 = 3.54491·246/1.41421 = 616.63 GeV: the perturbative cap of a Yukawa through the Higgs
CAP = math.sqrt(4 * math.pi) * 246 / math.sqrt(2)

CASES = {
    "sm": text.load_theory(f"{EXAMPLES}/sm.theory"),
    # exotic doublet (Y = 1/2: 6Q = 6, 0) + singlet (6Q = 6), Yukawa 5 TeV through the SM Higgs:
    # φ: 3 − 3 + 6 = 6 ≠ 0; φ*: −3 − 3 + 6 = 0 and 2 ⊗ 2 ∋ 1 -> invariant via H̃, mass capped.
    "cap": sm("FERMION L gen_1 q_3 F 1 END\nFERMION R gen_1 q_6 1 1 END",
              "YUKAWA m_6 m_7 m_8 M5e3 END"),
    # a singlet VEV scalar (exotic) gives a vector-like lepton 5 TeV: no cap. φ: 0 − 12 + 12 = 0.
    "nocap": sm("SCALAR CPLX VEV q_0 1 1 END\nFERMION L gen_1 q_12 1 1 END\nFERMION R gen_1 q_12 1 1 END",
                "YUKAWA m_7 m_8 m_9 M5e3 END"),
    # vector-like quark doublet (6Q = 3 + 7 = 10, −3 + 7 = 4), bare Dirac mass 2 TeV
    "dirac": sm("FERMION L gen_1 q_7 F F END\nFERMION R gen_1 q_7 F F END", "DIRAC m_7 m_8 M2e3 END"),
    # generation by generation: L has 3, R has 2 -> L's third generation gets nothing
    "dirac_gens": theory("U1", "FERMION L gen_3 q_6 END\nFERMION R gen_2 q_6 END",
                         "DIRAC m_1 m_2 M1e3 M2e3 M5e3 END"),
    "dirac_bad": theory("U1", "FERMION L gen_1 q_6 END\nFERMION R gen_1 q_5 END", "DIRAC m_1 m_2 M1e3 END"),
    # wino (real triplet, Y = 0): allowed; doublet with Y = 0 (pseudo-real): not; charged singlet: not
    # (q_12: doubly charged, exotic -- L q_6 would be the conjugate of e_R, SM-like)
    "majorana": sm("FERMION L gen_1 q_0 Adj 1 END\nFERMION L gen_1 q_0 F 1 END\nFERMION L gen_1 q_12 1 1 END",
                   "MAJORANA m_7 M2e2 END\nMAJORANA m_8 M2e2 END\nMAJORANA m_9 M2e2 END"),
    # (2, 2) of SU2 × SU2 is real (two pseudo-real factors): Majorana allowed
    "bidoublet": theory("SU2 SU2", "FERMION L gen_1 F F END", "MAJORANA m_1 M1e3 END"),
    "em_breaking": sm("SCALAR CPLX VEV q_6 1 1 END"),                 # 6Q = 6 only: breaks EM
    "colour_breaking": sm("SCALAR CPLX VEV q_-2 1 F END"),           # colour triplet VEV
    # triplets: q_6 (6Q = 12, 6, 0) fine; q_12 (18, 12, 6) breaks EM; REAL q_0 (6, 0, −6) fine
    "triplet_vevs": sm("SCALAR CPLX VEV q_6 Adj 1 END\nSCALAR CPLX VEV q_12 Adj 1 END\n"
                       "SCALAR REAL VEV q_0 Adj 1 END"),
    # L_L ⊗ u_R through H: φ: 3 + 3 + 4 = 10, φ*: −3 + 3 + 4 = 4, and 1 ⊗ 1 ⊗ 3 ∌ 1
    "bad_yukawa": sm(extra_terms="YUKAWA m_6 m_4 m_2 M1e2 END"),
    # U1 works with φ (1 − 0 − 1 = 0) but SU3 only with φ* (3 ⊗ 1 ⊗ 3 ∌ 1, 3b ⊗ 1 ⊗ 3 ∋ 1): not invariant
    "mixed_choice": theory("U1 SU3", "SCALAR CPLX NOVEV q_1 F END\nFERMION L gen_1 q_0 1 END\n"
                           "FERMION R gen_1 q_-1 F END", "YUKAWA m_1 m_2 m_3 M1e2 END"),
    "novev_higgs": sm(fields=SM_FIELDS.replace("SCALAR CPLX VEV", "SCALAR CPLX NOVEV")),
    "scalar_smass": sm("SCALAR CPLX NOVEV q_6 1 1 END", "SMASS m_7 M5e1 END"),
    "scalar_nosmass": sm("SCALAR CPLX NOVEV q_6 1 1 END"),
    "vev_triplet_smass": sm("SCALAR REAL VEV q_0 Adj 1 END", "SMASS m_7 M1e1 END"),
    # an invariant Yukawa through an EM-breaking VEV (q_12 triplet: 6Q = 18, 12, 6) gives no mass,
    # although ψ_L (q_0 Adj: 6, 0, −6) and ψ_R (q_-12 Adj: −6, −12, −18) share 6Q = −6
    "breaking_yukawa": sm("SCALAR CPLX VEV q_12 Adj 1 END\nFERMION L gen_1 q_0 Adj 1 END\n"
                          "FERMION R gen_1 q_-12 Adj 1 END", "YUKAWA m_7 m_8 m_9 M1e3 END"),
    # SM-like by conjugate, extra U1 ignored: ū_R as L (q_-4, 1, 3b); H* (q_-3, 2, 1);
    # exotic: Q_L with 3b colour, and any REAL scalar
    "conjugates": theory("U1 U1 SU2 SU3", "FERMION L gen_1 q_-4 q_5 1 Fb END\nSCALAR CPLX NOVEV q_-3 q_0 F 1 END\n"
                         "FERMION L gen_1 q_1 q_0 F Fb END\nSCALAR REAL NOVEV q_0 q_0 1 1 END"),
    # distinct heavy exotics: one quark-doublet class (a pair, a second pair, the conjugate pair)
    # and the wino; the light charged scalar does not count.
    "heavy": sm("FERMION L gen_1 q_7 F F END\nFERMION R gen_1 q_7 F F END\n"
                "FERMION L gen_2 q_7 F F END\nFERMION R gen_2 q_7 F F END\n"
                "FERMION L gen_1 q_-7 F Fb END\nFERMION R gen_1 q_-7 F Fb END\n"
                "FERMION L gen_1 q_0 Adj 1 END\nSCALAR CPLX NOVEV q_6 1 1 END",
                "DIRAC m_7 m_8 M2e3 END\nDIRAC m_9 m_10 M2e3 M2e3 END\nDIRAC m_11 m_12 M2e3 END\n"
                "MAJORANA m_13 M1e3 END\nSMASS m_14 M5e1 END"),
}


@pytest.fixture(scope="module")
def out():
    return analyse(CASES)


@pytest.fixture(scope="module")
def out_lhc():
    return analyse(CASES, RewardConfig.lhc())


def ref_masses(name):
    th = ref.parse_tokens(CASES[name])
    return ref.component_masses(th)


def test_reference_agrees_on_every_case(out):
    for name, toks in CASES.items():
        th = ref.parse_tokens(toks)
        r = ref.rewards(ref.analyse(th))
        for k in ("invalid_terms", "light_exotics", "heavy_exotic_fields", "success", "anomaly_l1"):
            assert out[name][k] == r[k], (name, k)
        for f, comps in enumerate(ref.component_masses(th)):
            for c, gens in enumerate(comps):
                np.testing.assert_allclose(out[name]["mass"][f, c, :len(gens)], gens, rtol=1e-12)


def test_cap_value():
    assert abs(CAP - 616.63) < 0.01
    assert spec.HIGGS_CAP_GEV == pytest.approx(CAP, rel=1e-15)


def test_standard_model_spectrum(out):
    r = out["sm"]
    assert r["success"] and r["invalid_terms"] == 0 and r["light_exotics"] == 0
    assert r["sm_like"][:6].all() and not r["exotic"].any()
    m = r["mass"]
    # Q_L: component 0 = u_L (6Q = 3 + 1 = 4), component 1 = d_L (6Q = −3 + 1 = −2)
    assert r["q6"][0, :2].tolist() == [4, -2]
    np.testing.assert_allclose(m[0, 0, :3], [2e-3, 1.0, 200.0])   # up-type via H̃ (φ*)
    np.testing.assert_allclose(m[0, 1, :3], [5e-3, 0.1, 5.0])     # down-type via H
    np.testing.assert_allclose(m[1, 0, :3], [2e-3, 1.0, 200.0])   # u_R
    np.testing.assert_allclose(m[2, 0, :3], [5e-3, 0.1, 5.0])     # d_R
    np.testing.assert_allclose(m[3, 0, :3], [0, 0, 0])            # ν_L: 6Q = 0, no partner
    np.testing.assert_allclose(m[3, 1, :3], [5e-4, 0.1, 2.0])     # e_L
    np.testing.assert_allclose(m[4, 0, :3], [5e-4, 0.1, 2.0])     # e_R
    np.testing.assert_allclose(m[5, :2, 0], [100.0, 100.0])       # Higgs: its SMASS
    assert m[0, 0, 3] == 0 and m[0, 2].sum() == 0                 # no 4th generation / 3rd component


def test_phi_versus_phi_star():
    # the up-type Yukawa Q̄_L u_R needs the conjugate Higgs: with φ, U1 gives 3 − 1 + 4 = 6 ≠ 0;
    # with φ*, −3 − 1 + 4 = 0 (and 2b ⊗ 2b, 3b ⊗ 3 contain singlets)
    th = ref.parse_tokens(CASES["sm"])
    H, Q, u = th.fields[5], th.fields[0], th.fields[1]
    assert not ref._product_invariant(th, [(H, False), (Q, True), (u, False)])
    assert ref._product_invariant(th, [(H, True), (Q, True), (u, False)])


def test_invariance_and_invalid_terms(out):
    assert out["sm"]["term_invariant"][:5].all()
    assert out["bad_yukawa"]["invalid_terms"] == 1
    assert out["bad_yukawa"]["term_invariant"][:6].tolist() == [True] * 5 + [False]
    assert out["mixed_choice"]["invalid_terms"] == 1        # one choice for all factors at once
    assert out["dirac_bad"]["invalid_terms"] == 1
    assert out["majorana"]["term_invariant"][5:8].tolist() == [True, False, False]
    assert out["majorana"]["invalid_terms"] == 2
    assert out["bidoublet"]["invalid_terms"] == 0


def test_higgs_cap(out, out_lhc):
    m = out["cap"]["mass"]
    # doublet component 0 (6Q = 6) pairs with the singlet (6Q = 6): min(5000, 616.63)
    assert m[6, 0, 0] == pytest.approx(CAP) and m[7, 0, 0] == pytest.approx(CAP)
    assert m[6, 1, 0] == 0                                   # neutral component: no partner
    assert out["cap"]["exotic"][6:8].all()
    assert out["cap"]["light_exotics"] == 0                  # 616.6 ≥ 100
    # LHC preset: 616.6 < 800 for the two charged (component, generation) pairs:
    # 2 × 0.1 × −|log10(616.63) − log10(800)| = 0.2 × −(2.90309 − 2.79004) = −0.022610
    assert out_lhc["cap"]["light_exotics"] == 2
    expected = 2 * 0.1 * -abs(math.log10(CAP) - math.log10(800))
    assert abs(expected + 0.022610) < 1e-5
    assert out_lhc["cap"]["light_exotics_reward"] == pytest.approx(expected, rel=1e-6)
    # through an exotic (singlet) VEV there is no cap
    assert out["nocap"]["mass"][7, 0, 0] == 5000 and out["nocap"]["mass"][8, 0, 0] == 5000


def test_dirac_masses(out, out_lhc):
    r = out["dirac"]
    assert r["q6"][6, :2].tolist() == [10, 4] and r["coloured"][6]
    np.testing.assert_allclose(r["mass"][6, :2, 0], [2000, 2000])
    np.testing.assert_allclose(r["mass"][7, :2, 0], [2000, 2000])
    assert r["light_exotics"] == 0 and out_lhc["dirac"]["light_exotics"] == 0   # 2000 ≥ 1400 coloured
    assert r["heavy_exotic_fields"] == 1                    # ψ_L and ψ_R: one class
    g = out["dirac_gens"]["mass"]
    np.testing.assert_allclose(g[0, 0, :3], [1000, 2000, 0])
    np.testing.assert_allclose(g[1, 0, :2], [1000, 2000])
    assert out["dirac_gens"]["light_exotics"] == 1          # L's 3rd generation, massless
    assert out["dirac_bad"]["mass"][:2].sum() == 0 and out["dirac_bad"]["light_exotics"] == 2


def test_majorana_masses(out):
    r = out["majorana"]
    assert r["q6"][6].tolist() == [6, 0, -6]
    np.testing.assert_allclose(r["mass"][6, :, 0], [200, 200, 200])
    assert r["mass"][7].sum() == 0 and r["mass"][8].sum() == 0
    # doublet (6Q = 3, −3) two light components + the doubly charged singlet one
    assert r["light_exotics"] == 3
    np.testing.assert_allclose(out["bidoublet"]["mass"][0, :2, 0], [1000, 1000])


def test_em_and_colour_breaking_vevs(out):
    assert out["em_breaking"]["breaking_vev"][6] and out["em_breaking"]["invalid_terms"] == 1
    assert out["colour_breaking"]["breaking_vev"][6] and out["colour_breaking"]["invalid_terms"] == 1
    assert out["triplet_vevs"]["breaking_vev"][6:9].tolist() == [False, True, False]
    assert out["triplet_vevs"]["invalid_terms"] == 1
    assert not out["sm"]["breaking_vev"].any()
    assert not out["em_breaking"]["success"]
    # no mass through a breaking VEV
    assert out["breaking_yukawa"]["mass"][7:9].sum() == 0
    assert out["breaking_yukawa"]["term_invariant"][5]


def test_yukawa_needs_vev(out):
    assert out["novev_higgs"]["mass"][:5].sum() == 0
    assert out["novev_higgs"]["success"]        # massless SM fields are not exotics


def test_exotic_scalar_masses(out):
    # NOVEV charged singlet with SMASS 50 GeV: −0.1·|log10(50) − log10(100)| = −0.1·0.30103
    r = out["scalar_smass"]
    assert r["light_exotics"] == 1
    assert r["light_exotics_reward"] == pytest.approx(-0.1 * (2 - math.log10(50)), rel=1e-6)
    assert r["light_exotics_reward"] == pytest.approx(-0.030103, rel=1e-4)
    # no SMASS: mass 0 -> −0.1·|−10 − 2| = −1.2
    assert out["scalar_nosmass"]["light_exotics_reward"] == pytest.approx(-1.2, rel=1e-6)
    # VEV exotic (real triplet) takes its SMASS too: 2 charged components at 10 GeV:
    # 2 × −0.1·|1 − 2| = −0.2; the neutral component does not count
    r = out["vev_triplet_smass"]
    assert r["light_exotics"] == 2 and r["light_exotics_reward"] == pytest.approx(-0.2, rel=1e-6)
    np.testing.assert_allclose(r["mass"][6, :, 0], [10, 10, 10])


def test_heavy_exotic_fields(out, out_lhc):
    r = out["heavy"]
    assert r["light_exotics"] == 1            # the 50 GeV scalar
    assert r["heavy_exotic_fields"] == 2      # quark-doublet class + wino
    # LHC: the wino at 1 TeV is now light (< 800? no: 1000 ≥ 800) -> still 2; scalar light
    assert out_lhc["heavy"]["heavy_exotic_fields"] == 2
    assert out["sm"]["heavy_exotic_fields"] == 0


def test_sm_like_classification(out):
    assert out["conjugates"]["sm_like"][:4].tolist() == [True, True, False, False]
    assert out["conjugates"]["exotic"][:4].tolist() == [False, False, True, True]
    assert out["bidoublet"]["exotic"][0]       # no U1 × SU2 × SU3: everything is exotic


def test_reference_group_theory_agrees_with_groups_tables():
    # the reference recomputes singlets from its own SU(N) weights; the JAX path uses
    # physics.groups' tables: every allowed 2- and 3-fold product must agree
    from itertools import product

    from theorygrpo_jax.grammar import vocab as V
    from theorygrpo_jax.physics import groups

    for g, name in enumerate(V.GROUPS[1:], start=1):
        reps = V.ALLOWED_REPS[name]
        idx = [V.REPS.index(r) for r in reps]
        for (a, ia), (b, ib) in product(zip(reps, idx), repeat=2):
            assert (ref.singlets(name, (a, b)) > 0) == groups.SINGLET2[g, ia, ib], (name, a, b)
            for c, ic in zip(reps, idx):
                assert (ref.singlets(name, (a, b, c)) > 0) == groups.SINGLET3[g, ia, ib, ic], (name, a, b, c)
        for r, i in zip(reps, idx):
            assert ref.dim(name, r) == groups.DIM[g, i] and ref.two_t(name, r) == groups.TWO_T[g, i]
            assert V.REPS.index(ref.conj_rep(name, r)) == groups.CONJ[g, i]
            if name != "SU2":
                assert ref.cubic(name, r) == groups.CUBIC_A[g, i]
