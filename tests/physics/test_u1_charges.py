"""Anomaly-free chiral U(1)' charge sets: predicates, canonical form, exhaustive enumeration."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from theorygrpo_jax.physics import u1_charges as U


# --- independent plain-Python reference ----------------------------------------------------


def brute_force(n: int, zmax: int) -> set[tuple[int, ...]]:
    """Every multiset of n charges in ±[1, zmax], checked directly; the class representative is the
    larger of sorted(z) and sorted(-z) (the documented rule), written out here independently."""
    charges = [z for z in range(-zmax, zmax + 1) if z != 0]
    out = set()
    for combo in itertools.combinations_with_replacement(charges, n):
        if sum(combo) != 0 or sum(z * z * z for z in combo) != 0:
            continue
        if any(combo[i] == -combo[j] for i in range(n) for j in range(i + 1, n)):
            continue
        if math.gcd(*combo) != 1:
            continue
        out.add(max(tuple(sorted(combo)), tuple(sorted(-z for z in combo))))
    return out


# --- predicates, hand-derived --------------------------------------------------------------


def test_cdf_five_charge_example():
    # 1 + 5 - 7 - 8 + 9 = 0;  1 + 125 - 343 - 512 + 729 = 855 - 855 = 0; no zero, no opposite pair
    z = (1, 5, -7, -8, 9)
    assert U.is_anomaly_free(z) and U.is_chiral(z)
    # the charge of largest magnitude (9) is positive, so sorted(z) is the representative
    assert U.canonical_charge_set(z) == (-8, -7, 1, 5, 9)
    assert U.canonical_charge_set((-9, 8, 7, -5, -1)) == (-8, -7, 1, 5, 9)
    assert U.canonical_charge_set((3, 15, -21, -24, 27)) == (-8, -7, 1, 5, 9)


def test_other_hand_checked_solutions():
    # (2, 4, -7, -9, 10): 16 - 16 = 0;  8 + 64 - 343 - 729 + 1000 = 1072 - 1072 = 0
    # (-4, -4, 1, 1, 1, 5): -8 + 8 = 0;  -64 - 64 + 1 + 1 + 1 + 125 = 0   (a repeated charge)
    # (-5, -5, -1, 2, 3, 6): -11 + 11 = 0;  -125 - 125 - 1 + 8 + 27 + 216 = -251 + 251 = 0
    # (-3, -3, -3, 1, 2, 2, 4): -9 + 9 = 0;  -81 + 1 + 8 + 8 + 64 = 0
    for z in [(2, 4, -7, -9, 10), (-4, -4, 1, 1, 1, 5), (-5, -5, -1, 2, 3, 6), (-3, -3, -3, 1, 2, 2, 4)]:
        assert U.is_anomaly_free(z) and U.is_chiral(z), z
        assert U.canonical_charge_set(z) in U.enumerate_chiral_sets(len(z), max(map(abs, z)))
    assert not U.is_anomaly_free((1, 5, -7, -8, 10))                 # Σz = 1
    assert not U.is_anomaly_free((1, 1, -2))                          # Σz³ = 1 + 1 - 8 = -6


def test_vector_like_and_zero_excluded():
    # anomaly free, but every charge sits in an opposite pair, or one charge is zero
    for z in [(1, -1), (1, -1, 2, -2), (1, -1, 2, -2, 3, -3), (3, -3, 3, -3)]:
        assert U.is_anomaly_free(z) and not U.is_chiral(z)
    assert not U.is_chiral((0, 1, 5, -7, -8, 9))                     # a zero charge
    assert U.is_anomaly_free((0, 1, 5, -7, -8, 9))
    assert not U.is_chiral((1, 5, -7, -8, 9, 4, -4))                 # chiral 5-set plus a pair
    assert U.is_anomaly_free((1, 5, -7, -8, 9, 4, -4))
    assert U.is_chiral((2, 2, -1, -1, -1, -1))                       # repeats are not pairs
    assert U.canonical_charge_set((4, -4, 1, -1)) == (-4, -1, 1, 4)   # self-conjugate: sign moot
    assert U.canonical_charge_set(()) == () and U.canonical_charge_set((0, 0)) == (0, 0)


def test_no_chiral_solutions_for_three_or_four():
    # n = 3: c = -(a + b) gives a³ + b³ + c³ = a³ + b³ - (a + b)³ = -3ab(a + b) = 3abc, which is
    # nonzero for nonzero charges, so no anomaly-free set of 3 nonzero charges exists at all.
    # n = 4: d = -(a + b + c) gives a³ + b³ + c³ + d³ = -3(a + b)(b + c)(c + a), zero only when two
    # charges are opposite (a = -b, say), and then c = -d too: every solution is vector-like.
    for zmax in (1, 5, 18, 32):
        assert U.enumerate_chiral_sets(3, zmax) == set()
        assert U.enumerate_chiral_sets(4, zmax) == set()
    # n = 1: z = 0 only; n = 2: z2 = -z1, a vector-like pair
    assert U.enumerate_chiral_sets(1, 18) == set() and U.enumerate_chiral_sets(2, 18) == set()
    # the algebra above, on random integers
    rng = random.Random(3)
    for _ in range(2000):
        a, b, c = (rng.randint(-50, 50) for _ in range(3))
        assert a ** 3 + b ** 3 + (-a - b) ** 3 == 3 * a * b * (-a - b)
        assert a ** 3 + b ** 3 + c ** 3 + (-a - b - c) ** 3 == -3 * (a + b) * (b + c) * (c + a)


# --- canonical form: property tests --------------------------------------------------------


def test_canonical_form_invariance():
    rng = random.Random(0)
    for _ in range(5000):
        n = rng.randint(1, 9)
        z = [rng.randint(-18, 18) for _ in range(n)]
        canon = U.canonical_charge_set(z)
        perm = rng.sample(z, n)
        k = rng.randint(1, 7)
        assert U.canonical_charge_set(perm) == canon
        assert U.canonical_charge_set([-x for x in z]) == canon
        assert U.canonical_charge_set([k * x for x in perm]) == canon
        assert U.canonical_charge_set([-k * x for x in z]) == canon
        assert U.canonical_charge_set(canon) == canon                 # idempotent
        assert list(canon) == sorted(canon)
        g = math.gcd(*z)
        assert math.gcd(*canon) == (1 if g else 0)
        # the representative is one of the class's two sorted scalings: z/g or -z/g
        scaled = sorted(x // g for x in z) if g else sorted(z)
        assert list(canon) in (scaled, sorted(-x for x in scaled))
        # predicates do not depend on the representative
        assert U.is_anomaly_free(canon) == U.is_anomaly_free(z)
        assert U.is_chiral(canon) == U.is_chiral(z)


def test_vectorised_canonical_rows_match_python():
    rng = np.random.default_rng(1)
    for n in (2, 3, 5, 7):
        z = np.sort(rng.integers(-6, 7, size=(3000, n)), axis=1)
        z = z[np.gcd.reduce(np.abs(z), axis=1) == 1]                  # the rows it is given
        got = U._canonical_rows(z).tolist()
        assert [tuple(r) for r in got] == [U.canonical_charge_set(r) for r in z.tolist()]


def test_sorted_multisets_helper():
    for m, k in [(1, 1), (4, 1), (4, 3), (6, 4), (5, 0)]:
        got = [tuple(r) for r in U._sorted_multisets(m, k).tolist()]
        assert got == list(itertools.combinations_with_replacement(range(m), k))


# --- enumeration against brute force -------------------------------------------------------


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_enumeration_matches_brute_force(n):
    for zmax in range(1, 9):
        assert U.enumerate_chiral_sets(n, zmax) == brute_force(n, zmax), (n, zmax)


@pytest.mark.parametrize("n,zmax", [(5, 10), (7, 6), (8, 6)])
def test_enumeration_matches_brute_force_larger(n, zmax):
    got = U.enumerate_chiral_sets(n, zmax)
    assert got and got == brute_force(n, zmax)


def test_smallest_sets():
    # five charges need |z| up to 9 (CDF's (1, 5, -7, -8, 9)); by |z| ≤ 10 a second one appears
    assert U.enumerate_chiral_sets(5, 9) == {(-8, -7, 1, 5, 9)}
    assert U.enumerate_chiral_sets(5, 10) == {(-8, -7, 1, 5, 9), (-9, -7, 2, 4, 10)}
    assert U.enumerate_chiral_sets(6, 5) == {(-4, -4, 1, 1, 1, 5)}
    assert U.enumerate_chiral_sets(7, 4) == {(-3, -3, -3, 1, 2, 2, 4)}


def test_enumeration_is_monotone_and_consistent():
    for n in (5, 6, 7):
        small, big = U.enumerate_chiral_sets(n, 12), U.enumerate_chiral_sets(n, 18)
        assert small <= big
        assert small == {s for s in big if max(map(abs, s)) <= 12}
        for s in big:
            assert len(s) == n and U.is_anomaly_free(s) and U.is_chiral(s)
            assert U.canonical_charge_set(s) == s and max(map(abs, s)) <= 18


def test_costa_dobrescu_fox_counts():
    # public scan of the Costa–Dobrescu–Fox parametrisation, |z| ≤ 32: 12, 142, 761 primitive
    # chiral sets for n = 5, 6, 7 (counts quoted from the issue, not produced by this code)
    assert len(U.enumerate_chiral_sets(5, 32)) == 12
    assert len(U.enumerate_chiral_sets(6, 32)) == 142
    assert len(U.enumerate_chiral_sets(7, 32)) == 761


def test_returned_set_is_a_copy():
    s = U.enumerate_chiral_sets(5, 10)
    s.clear()
    assert len(U.enumerate_chiral_sets(5, 10)) == 2


@pytest.mark.parametrize("n,zmax", [(0, 5), (-1, 5), (5, 0), (2.5, 5), (5, "8"), (12, 10 ** 5)])
def test_bad_arguments(n, zmax):
    with pytest.raises(ValueError):
        U.enumerate_chiral_sets(n, zmax)


# --- coverage ------------------------------------------------------------------------------


def test_coverage():
    found = [
        (9, -8, 5, -7, 1),                 # valid n=5, non-canonical order
        (-2, -10, 14, 16, -18),            # 2·(1, 5, -7, -8, 9) negated: the same class again
        (2, 4, -7, -9, 10),                # valid n=5
        (1, 1, -2, 3, -3),                 # not anomaly free
        (1, -1, 2, -2, 5, -5),             # vector-like n=6
        [-4, -4, 1, 1, 1, 5],              # valid n=6, a list
        (-27, -25, 7, 13, 32),             # valid n=5 but |z| = 32 > zmax
    ]
    cov = U.coverage(found, [5, 6, 7], zmax=18)
    universe5 = U.enumerate_chiral_sets(5, 18)
    assert cov[5]["total"] == len(universe5) and cov[5]["found"] == 2
    assert cov[5]["sets"] == [(-9, -7, 2, 4, 10), (-8, -7, 1, 5, 9)]
    assert cov[5]["fraction"] == 2 / len(universe5)
    assert cov[5]["invalid"] == 1 and cov[5]["outside"] == 1
    assert cov[6]["found"] == 1 and cov[6]["invalid"] == 1 and cov[6]["outside"] == 0
    assert cov[7]["found"] == 0 and cov[7]["fraction"] == 0.0
    assert U.coverage([], 4, 18) == {4: {"total": 0, "found": 0, "fraction": 0.0, "sets": [],
                                         "invalid": 0, "outside": 0}}
