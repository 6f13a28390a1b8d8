"""Anomaly coefficients: textbook cases derived BY HAND (arithmetic in the comments).

Conventions (spec §3): R fields count as left-handed conjugates (sign s = −1,
charges negated, reps conjugated); mult(X) = gen × dims of the other
non-abelian factors; d = gen × all non-abelian dims; charges are the integer
tokens n (units of 1/6). Every case is checked on the JAX path (one batched
compile) and on the plain-Python reference.
"""

from __future__ import annotations

import pytest

from theorygrpo_jax.grammar import text
from theorygrpo_jax.physics import anomalies as anom
from theorygrpo_jax.physics import reference as ref

from .helpers import EXAMPLES, SM_FIELDS, analyse, sm, theory

INT32_MAX = 2**31 - 1

# SM + ν_R with gauged B−L as a second U(1): slots (Y, B−L, SU2, SU3); B−L = 1/3 -> q_2, −1 -> q_-6.
SM_BL_FIELDS = """
  FERMION L gen_3 q_1  q_2  F F END   # Q_L
  FERMION R gen_3 q_4  q_2  1 F END   # u_R
  FERMION R gen_3 q_-2 q_2  1 F END   # d_R
  FERMION L gen_3 q_-3 q_-6 F 1 END   # L_L
  FERMION R gen_3 q_-6 q_-6 1 1 END   # e_R
  SCALAR CPLX VEV q_3 q_0 F 1 END     # H
"""
NU_R_BL = "FERMION R gen_3 q_0 q_-6 1 1 END   # nu_R\n"
BIG = "FERMION L gen_4 q_18 Adj Adj Adj END\n"
BIG_R = "FERMION R gen_4 q_18 Adj Adj Adj END\n"

CASES = {
    "sm": text.load_theory(f"{EXAMPLES}/sm.theory"),
    "su5": text.load_theory(f"{EXAMPLES}/su5_gut.theory"),
    "sm_no_eR": sm(fields=SM_FIELDS.replace("FERMION R gen_3 q_-6 1 1 END", ""), terms=""),
    "sm_nuR_BL": theory("U1 U1 SU2 SU3", SM_BL_FIELDS + NU_R_BL),
    "sm_BL_no_nuR": theory("U1 U1 SU2 SU3", SM_BL_FIELDS),
    "vectorlike": theory("U1 SU2 SU3", "FERMION L gen_2 q_7 F F END\nFERMION R gen_2 q_7 F F END"),
    "one_doublet": theory("SU2", "FERMION L gen_1 F END"),
    "two_doublets": theory("SU2", "FERMION L gen_1 F END\nFERMION R gen_1 F END"),
    "triplet": theory("SU2", "FERMION L gen_1 Adj END"),
    "coloured_doublet": theory("U1 SU2 SU3", "FERMION L gen_1 q_1 F F END"),
    "chiral_u1_a": theory("U1", "FERMION L gen_1 q_1 END\nFERMION L gen_1 q_2 END\nFERMION R gen_1 q_3 END"),
    "chiral_u1_b": theory("U1", "FERMION L gen_2 q_6 END\nFERMION R gen_3 q_-1 END"),
    "sextet_free": theory("SU3", "FERMION L gen_1 S2 END\nFERMION L gen_4 Fb END\nFERMION L gen_3 Fb END"),
    "sextet_u1": theory("U1 SU3", "FERMION L gen_1 q_1 S2 END\nFERMION R gen_1 q_2 S2b END"),
    "su4": theory("SU4", "FERMION L gen_3 A2 END\nFERMION L gen_1 F END"),
    "su5_su5": theory("SU5 SU5", "FERMION L gen_1 F Fb END"),
    "su2_su2": theory("SU2 SU2", "FERMION L gen_1 F F END\nFERMION L gen_1 F 1 END"),
    "scalars_only": theory("U1 SU2", "SCALAR CPLX VEV q_5 F END"),
    "saturate": theory("U1 SU5 SU5 SU5", BIG * 16),
    "cancel_big": theory("U1 SU5 SU5 SU5", BIG * 8 + BIG_R * 8),
}


@pytest.fixture(scope="module")
def jax_out():
    return analyse(CASES)


def check(jax_out, name, expected):
    """JAX and reference both give exactly `expected` (every condition, nothing else)."""
    assert jax_out[name]["anomalies"] == expected, name
    assert ref.anomalies(ref.parse_tokens(CASES[name])) == expected, name
    l1 = min(sum(abs(v) for v in expected.values()), INT32_MAX)
    assert jax_out[name]["anomaly_l1"] == l1


def test_standard_model_is_anomaly_free(jax_out):
    check(jax_out, "sm", {"SU3^3": 0, "SU2^2 U1": 0, "SU3^2 U1": 0, "U1^3": 0, "grav U1": 0,
                          "Witten SU2": 0})


def test_su5_gut_is_anomaly_free(jax_out):
    # 3 × (5b: A = −1) + 3 × (10 = A2: A = N − 4 = 1) = −3 + 3 = 0
    check(jax_out, "su5", {"SU5^3": 0})


def test_sm_without_right_handed_electron(jax_out):
    # e_R (R, n = −6, singlet, 3 generations) contributes to U1^3: s·d·n³ = (−1)·3·(−216) = +648,
    # and to grav: s·d·n = (−1)·3·(−6) = +18. The SM sums to 0, so without e_R:
    #   U1^3 = −648, grav U1 = −18; e_R is an SU2 and SU3 singlet, so every other condition stays 0.
    # (Check of the SM U1^3: Q 3·6·1 = 18, u −3·3·64 = −576, d −3·3·(−8) = 72,
    #  L 3·2·(−27) = −162, e 648: 18 − 576 + 72 − 162 + 648 = 0.)
    check(jax_out, "sm_no_eR", {"SU3^3": 0, "SU2^2 U1": 0, "SU3^2 U1": 0, "U1^3": -648,
                                "grav U1": -18, "Witten SU2": 0})


def test_sm_with_nu_r_and_gauged_b_minus_l(jax_out):
    # Per generation (×3 changes nothing), Y = n, X = B−L (units of 1/6), d = dims, s = ±1:
    #   field  s  d   Y   X
    #   Q_L   +1  6   1   2
    #   u_R   −1  3   4   2
    #   d_R   −1  3  −2   2
    #   L_L   +1  2  −3  −6
    #   e_R   −1  1  −6  −6
    #   ν_R   −1  1   0  −6
    # X^3:   6·8 − 3·8 − 3·8 + 2·(−216) − (−216) − (−216) = 48 − 24 − 24 − 432 + 216 + 216 = 0
    # grav X: 6·2 − 3·2 − 3·2 + 2·(−6) + 6 + 6 = 12 − 6 − 6 − 12 + 6 + 6 = 0
    # Y^2 X: 6·1·2 − 3·16·2 − 3·4·2 + 2·9·(−6) − 36·(−6) − 0 = 12 − 96 − 24 − 108 + 216 = 0
    # Y X^2: 6·1·4 − 3·4·4 − 3·(−2)·4 + 2·(−3)·36 − (−6)·36 − 0 = 24 − 48 + 24 − 216 + 216 = 0
    # SU2^2 X: 2T·mult·X: Q 1·3·2 = 6, L 1·1·(−6) = −6 -> 0
    # SU3^2 X: Q 1·2·2 = 4, u −1·1·2 = −2, d −2 -> 0
    # The Y-only conditions are the SM's (ν_R has Y = 0 and no SU(N) charge): 0.
    names = ["SU3^3", "SU2^2 U1", "SU2^2 U1_2", "SU3^2 U1", "SU3^2 U1_2", "U1^3", "U1^2 U1_2",
             "U1 U1_2^2", "U1_2^3", "grav U1", "grav U1_2", "Witten SU2"]
    check(jax_out, "sm_nuR_BL", {n: 0 for n in names})
    # Without ν_R: remove its X^3 = (−1)·(−216)·3 gens = +648 and grav X = (−1)·(−6)·3 = +18;
    # it has Y = 0, so Y^2 X and Y X^2 do not change.
    expected = {n: 0 for n in names}
    expected.update({"U1_2^3": -648, "grav U1_2": -18})
    check(jax_out, "sm_BL_no_nuR", expected)
    assert list(jax_out["sm_nuR_BL"]["anomalies"]) == anom.condition_names(["U1", "U1", "SU2", "SU3"])


def test_vector_like_pair_is_anomaly_free(jax_out):
    # ψ_L and ψ_R with the same quantum numbers: the R field counts as the conjugate with s = −1,
    # so every sum is X − X = 0. Witten: 2T·mult = 1·(3 colours·2 gens) = 6 per field, 12 mod 2 = 0.
    check(jax_out, "vectorlike", {"SU3^3": 0, "SU2^2 U1": 0, "SU3^2 U1": 0, "U1^3": 0, "grav U1": 0,
                                  "Witten SU2": 0})


def test_witten_anomaly(jax_out):
    check(jax_out, "one_doublet", {"Witten SU2": 1})          # one doublet: 1 mod 2
    check(jax_out, "two_doublets", {"Witten SU2": 0})         # 1 + 1 = 2 mod 2 (R counts the same)
    check(jax_out, "triplet", {"Witten SU2": 0})              # 2T(Adj) = 4, even
    # a colour-triplet doublet with n = 1: Witten 1·3 = 3 -> 1; SU3^3: A(F)·2 = 2;
    # SU2^2 U1: 1·3·1 = 3; SU3^2 U1: 1·2·1 = 2; U1^3: 6·1 = 6; grav: 6·1 = 6
    check(jax_out, "coloured_doublet", {"SU3^3": 2, "SU2^2 U1": 3, "SU3^2 U1": 2, "U1^3": 6,
                                        "grav U1": 6, "Witten SU2": 1})


def test_chiral_u1_sets(jax_out):
    # L q_1, L q_2, R q_3: U1^3 = 1 + 8 − 27 = −18; grav = 1 + 2 − 3 = 0
    check(jax_out, "chiral_u1_a", {"U1^3": -18, "grav U1": 0})
    # L q_6 ×2 gens, R q_-1 ×3 gens: U1^3 = 2·216 − 3·(−1) = 435; grav = 2·6 − 3·(−1) = 15
    check(jax_out, "chiral_u1_b", {"U1^3": 435, "grav U1": 15})


def test_su3_sextets(jax_out):
    # A(6) = 7, A(3b) = −1: 7 − 4 − 3 = 0
    check(jax_out, "sextet_free", {"SU3^3": 0})
    # L (q_1, 6) and R (q_2, 6b); the R field is the left-handed (q_-2, 6) (s = −1 on A(6b) = −7):
    #   SU3^3   = 7 + (−1)(−7)        = 14
    #   SU3^2 U1 = 5·1 + (−1)·5·2     = −5      (2T(6) = 2T(6b) = 5)
    #   U1^3    = 6·1 + (−1)·6·8      = −42
    #   grav    = 6·1 + (−1)·6·2      = −6
    check(jax_out, "sextet_u1", {"SU3^3": 14, "SU3^2 U1": -5, "U1^3": -42, "grav U1": -6})


def test_su4_su5_and_repeated_factors(jax_out):
    # SU4: A(6) = N − 4 = 0 (real rep), A(4) = 1 -> 3·0 + 1 = 1
    check(jax_out, "su4", {"SU4^3": 1})
    # (5, 5b) of SU5 × SU5: first factor A(5)·5 = 5, second A(5b)·5 = −5
    check(jax_out, "su5_su5", {"SU5^3": 5, "SU5_2^3": -5})
    # SU2 × SU2: (2,2) has Witten 1·2 = 2 -> 0 for each factor; (2,1) adds 1 to the first only
    check(jax_out, "su2_su2", {"Witten SU2": 1, "Witten SU2_2": 0})
    # scalars never contribute
    check(jax_out, "scalars_only", {"SU2^2 U1": 0, "U1^3": 0, "grav U1": 0, "Witten SU2": 0})


def test_int32_saturation_and_exact_cancellation(jax_out):
    # 16 × L (q_18, 24, 24, 24) × 4 gens: d = 4·24³ = 55 296 per field
    #   U1^3 = 16·55 296·18³ = 16·55 296·5 832 = 5 159 780 352 > 2^31 − 1 -> saturates
    #   grav = 16·55 296·18 = 15 925 248 (exact)
    #   SU5^2 U1 = 16 · 2T(24)=10 · mult = 4·24·24 = 2 304 · 18 = 6 635 520 per SU5 factor
    #   SU5^3 = 0 (A(Adj) = 0)
    expected = {"SU5^3": 0, "SU5_2^3": 0, "SU5_3^3": 0, "SU5^2 U1": 6635520, "SU5_2^2 U1": 6635520,
                "SU5_3^2 U1": 6635520, "U1^3": INT32_MAX, "grav U1": 15925248}
    check(jax_out, "saturate", expected)
    assert jax_out["saturate"]["anomaly_l1"] == INT32_MAX
    # 8 L + 8 R copies: partial sums pass 2^31 but the total is exactly 0
    check(jax_out, "cancel_big", {k: 0 for k in expected})


def test_condition_names_layout():
    assert anom.NUM_CONDITIONS == 22
    assert anom.condition_names(["U1", "SU2", "SU3"]) == [
        "SU3^3", "SU2^2 U1", "SU3^2 U1", "U1^3", "grav U1", "Witten SU2"]
    assert anom.condition_names(["U1", "U1"]) == ["U1^3", "U1^2 U1_2", "U1 U1_2^2", "U1_2^3",
                                                  "grav U1", "grav U1_2"]
    assert anom.condition_names(["SU2", "SU2", "SU3", "SU3"]) == [
        "SU3^3", "SU3_2^3", "Witten SU2", "Witten SU2_2"]
    assert anom.condition_names(["U1", "SU4"]) == ["SU4^3", "SU4^2 U1", "U1^3", "grav U1"]
    assert len(anom.all_condition_names(["SU5"])) == anom.NUM_CONDITIONS
