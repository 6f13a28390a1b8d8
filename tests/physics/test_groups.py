"""Tests of theorygrpo_jax.physics.groups: spec tables, hand-derived singlets,
structural properties, and an independent numerical cross-check with explicit
generator matrices."""

from __future__ import annotations

from itertools import combinations_with_replacement, permutations, product

import numpy as np
import pytest

from theorygrpo_jax.grammar.vocab import ALLOWED_REPS, GROUP_N, GROUPS, REAL_REPS, REPS
from theorygrpo_jax.physics import groups as G

RI = {r: i for i, r in enumerate(REPS)}
GI = {g: i for i, g in enumerate(GROUPS)}
SUN = ["SU2", "SU3", "SU4", "SU5"]

# Names physicists use -> spec rep names.
NAMED = {
    "SU2": {"1": "1", "2": "F", "3": "Adj"},
    "SU3": {"1": "1", "3": "F", "3b": "Fb", "8": "Adj", "6": "S2", "6b": "S2b"},
    "SU4": {"1": "1", "4": "F", "4b": "Fb", "15": "Adj", "6": "A2"},
    "SU5": {"1": "1", "5": "F", "5b": "Fb", "24": "Adj", "10": "A2", "10b": "A2b"},
}


def _n_ality(N: int, rep: str) -> int:
    """Number of boxes mod N, read off any weight: W[0] = N·v_0 − k."""
    return (-G.rep_weights(N, rep)[0][0]) % N


# --------------------------------------------------------------------------
# Spec tables


# From the spec §1 (dims) and §3 (2T, A).
SPEC_DIM = {
    "SU2": {"1": 1, "F": 2, "Adj": 3},
    "SU3": {"1": 1, "F": 3, "Fb": 3, "Adj": 8, "S2": 6, "S2b": 6},
    "SU4": {"1": 1, "F": 4, "Fb": 4, "Adj": 15, "A2": 6},
    "SU5": {"1": 1, "F": 5, "Fb": 5, "Adj": 24, "A2": 10, "A2b": 10},
}
SPEC_2T_A = {
    "SU2": {"F": (1, None), "Adj": (4, None)},
    "SU3": {"F": (1, 1), "Fb": (1, -1), "Adj": (6, 0), "S2": (5, 7), "S2b": (5, -7)},
    "SU4": {"F": (1, 1), "Fb": (1, -1), "Adj": (8, 0), "A2": (2, 0)},
    "SU5": {"F": (1, 1), "Fb": (1, -1), "Adj": (10, 0), "A2": (3, 1), "A2b": (3, -1)},
}


def test_shapes_and_dtypes():
    for name in ["DIM", "TWO_T", "CUBIC_A", "CONJ"]:
        a = getattr(G, name)
        assert a.shape == (5, 8) and a.dtype == np.int32, name
    for name in ["IS_REAL", "ALLOWED"]:
        a = getattr(G, name)
        assert a.shape == (5, 8) and a.dtype == np.bool_, name
    assert G.T3X2.shape == (8, 3) and G.T3X2.dtype == np.int32
    assert G.T3_COUNT.shape == (8,) and G.T3_COUNT.dtype == np.int32
    assert G.SINGLET2.shape == (5, 8, 8) and G.SINGLET2.dtype == np.bool_
    assert G.SINGLET3.shape == (5, 8, 8, 8) and G.SINGLET3.dtype == np.bool_
    assert G.SINGLET4.shape == (5, 8, 8, 8, 8) and G.SINGLET4.dtype == np.bool_
    assert not G.SINGLET3.flags.writeable


def test_dims_and_allowed_match_spec():
    assert (G.DIM[0] == 1).all() and not G.ALLOWED[0].any()
    for g in SUN:
        for r in REPS:
            exp = SPEC_DIM[g].get(r, 0)
            assert G.DIM[GI[g], RI[r]] == exp, (g, r)
            assert G.ALLOWED[GI[g], RI[r]] == (r in ALLOWED_REPS[g]), (g, r)
            if r in ALLOWED_REPS[g]:
                assert len(G.rep_weights(GROUP_N[g], r)) == exp


def test_dynkin_index_and_cubic_anomaly_match_spec():
    for g in SUN:
        for r in REPS:
            two_t, a = SPEC_2T_A[g].get(r, (0, 0))
            if r == "1":
                two_t, a = 0, 0
            assert G.TWO_T[GI[g], RI[r]] == two_t, (g, r)
            assert G.CUBIC_A[GI[g], RI[r]] == (a or 0), (g, r)
    assert (G.CUBIC_A[GI["SU2"]] == 0).all()


def test_dynkin_index_casimir_relation():
    """T(R)·(N²−1) = dim(R)·C2(R), T(F) = 1/2, C2(F) = (N²−1)/(2N), with the
    Casimir from the highest weight: 2·C2 = (λ, λ+2ρ) in the orthogonal metric
    (roots of length² 2), i.e. 2T(R)·(N²−1) = dim(R)·(λ, λ+2ρ)."""
    from fractions import Fraction

    for g in SUN:
        N = GROUP_N[g]
        for r in ALLOWED_REPS[g]:
            hw = max(G.rep_weights(N, r))
            rho = [Fraction(N - 1 - 2 * i, 2) for i in range(N)]  # traceless ρ
            lam = [Fraction(x, N) for x in hw]
            c2 = sum(l * (l + 2 * p) for l, p in zip(lam, rho))
            assert G.TWO_T[GI[g], RI[r]] * (N * N - 1) == G.DIM[GI[g], RI[r]] * c2, (g, r)


def test_conj_real():
    exp_conj = {
        "SU2": {"1": "1", "F": "F", "Adj": "Adj"},
        "SU3": {"1": "1", "F": "Fb", "Fb": "F", "Adj": "Adj", "S2": "S2b", "S2b": "S2"},
        "SU4": {"1": "1", "F": "Fb", "Fb": "F", "Adj": "Adj", "A2": "A2"},
        "SU5": {"1": "1", "F": "Fb", "Fb": "F", "Adj": "Adj", "A2": "A2b", "A2b": "A2"},
    }
    assert (G.CONJ[0] == np.arange(8)).all() and G.IS_REAL[0].all()
    for g in SUN:
        for r in REPS:
            c = exp_conj[g].get(r, r)  # identity on reps the spec does not allow
            assert G.CONJ[GI[g], RI[r]] == RI[c], (g, r)
            assert G.IS_REAL[GI[g], RI[r]] == (r in REAL_REPS[g]), (g, r)
        # an involution on each row; real reps are self-conjugate
        row = G.CONJ[GI[g]]
        assert (row[row] == np.arange(8)).all()
        assert all(row[i] == i for i in np.flatnonzero(G.IS_REAL[GI[g]]))
    # SU(2) doublet is self-conjugate but pseudoreal, hence not REAL.
    assert G.CONJ[GI["SU2"], RI["F"]] == RI["F"] and not G.IS_REAL[GI["SU2"], RI["F"]]


def test_t3():
    assert G.T3X2[RI["1"]].tolist() == [0, 0, 0] and G.T3_COUNT[RI["1"]] == 1
    assert G.T3X2[RI["F"]].tolist() == [1, -1, 0] and G.T3_COUNT[RI["F"]] == 2
    assert G.T3X2[RI["Adj"]].tolist() == [2, 0, -2] and G.T3_COUNT[RI["Adj"]] == 3
    for r in ["Fb", "A2", "A2b", "S2", "S2b"]:
        assert G.T3_COUNT[RI[r]] == 0 and (G.T3X2[RI[r]] == 0).all()


def test_weights():
    assert sorted(G.rep_weights(3, "F")) == [(-1, -1, 2), (-1, 2, -1), (2, -1, -1)]
    assert sorted(G.rep_weights(3, "Fb")) == [(-2, 1, 1), (1, -2, 1), (1, 1, -2)]
    assert G.rep_weights(4, "Adj").count((0, 0, 0, 0)) == 3
    for N in range(2, 6):
        for r in REPS:
            assert all(sum(w) == 0 for w in G.rep_weights(N, r))


# --------------------------------------------------------------------------
# Hand-derived singlets (expectations reasoned by hand, see comments)

HAND = [
    # SU(2): spin addition; a singlet needs an even number of half-integer spins.
    ("SU2", "2 2", True),        # ε_ab
    ("SU2", "2 3", False),       # 1/2 ⊗ 1 = 1/2 + 3/2
    ("SU2", "2 2 3", True),      # 2⊗2 ∋ 3, 3⊗3 ∋ 1 (ψ^T ε σ^a ψ φ_a)
    ("SU2", "3 3 3", True),      # ε_abc
    ("SU2", "2 2 2", False),     # odd number of doublets: half-integer spin
    ("SU2", "2 2 2 2", True),    # (ε ψψ)(ε ψψ)
    ("SU2", "3 3 3 3", True),    # (φ·φ)²
    ("SU2", "1 1 3", False),     # a lone triplet is not invariant
    ("SU2", "2 3 3 3", False),   # one doublet
    # SU(3): triality (boxes mod 3): 3→1, 3b→2, 6→2, 6b→1, 8→0.
    ("SU3", "3 3b", True),       # δ^a_b
    ("SU3", "3 3", False),       # triality 2
    ("SU3", "3 3 3", True),      # ε_abc (baryon)
    ("SU3", "3 3 3b", False),    # triality 1
    ("SU3", "8 8", True),        # Killing form
    ("SU3", "8 8 8", True),      # f_abc (and d_abc)
    ("SU3", "6b 3 3", True),     # 3⊗3 = 6 + 3b ∋ 6, 6⊗6b ∋ 1 (diquark coupling)
    ("SU3", "6 3 3", False),     # triality 2+1+1 = 1
    ("SU3", "6 6 6", True),      # ε ε S S S (determinant of a symmetric matrix)
    ("SU3", "3 3 8", False),     # triality 2
    ("SU3", "3 3b 8", True),     # ψ̄ T^a ψ
    ("SU3", "6 6b 8", True),     # 6⊗6b = 1 + 8 + 27 ∋ 8
    ("SU3", "3 6 8", True),      # triality 0; 3⊗6 = 8 + 10 ∋ 8
    ("SU3", "6 3b 3b", True),    # 3b⊗3b = 6b + 3 ∋ 6b = conj(6)
    ("SU3", "3 3 3 3", False),   # triality 1
    ("SU3", "3 3 3b 3b", True),  # (ψ̄ψ)(ψ̄ψ)
    ("SU3", "6 6b 8 8", True),   # 6⊗6b ∋ 8, 8⊗8 ∋ 8
    # SU(4): 4-ality 4→1, 4b→3, 6→2, 15→0.
    ("SU4", "6 6", True),        # ε_abcd A^ab A^cd (6 is real)
    ("SU4", "4 4 6", True),      # 4⊗4 = 10 + 6, 6 self-conjugate
    ("SU4", "4 4 4 4", True),    # ε_abcd
    ("SU4", "4 4 4", False),     # 4-ality 3
    ("SU4", "4 4b 15", True),    # ψ̄ T^a ψ
    ("SU4", "6 6 15", True),     # 6⊗6 = 1 + 15 + 20'
    ("SU4", "4 6", False),       # 4-ality 3
    ("SU4", "4b 4b 6", True),    # 4b⊗4b ∋ 6b = 6
    # SU(5): 5-ality 5→1, 5b→4, 10→2, 10b→3, 24→0.
    ("SU5", "10 10 5", True),    # ε_abcde T^ab T^cd H^e (up-type Yukawa)
    ("SU5", "10 5b 5b", True),   # T^ab F_a H_b (down-type Yukawa)
    ("SU5", "5b 5b 10", True),   # same product, reordered
    ("SU5", "5 5b", True),
    ("SU5", "5 5 5", False),     # 5-ality 3
    ("SU5", "24 24 24", True),   # f_abc
    ("SU5", "10 10 10b", False),  # 5-ality 2
    ("SU5", "5 5 10b", True),    # 5⊗5 = 10 + 15 ∋ 10
    ("SU5", "10 10b 24", True),  # 10⊗10b = 1 + 24 + 75
    ("SU5", "10 10 5 24", True),  # 10⊗10 ∋ 5b; 5b⊗5 ∋ 24 ... i.e. 10⊗10⊗5 ∋ 24
    ("SU5", "5 5 5 5", False),   # 5-ality 4
    ("SU5", "5 5 5 10", True),   # 5-ality 0; 5⊗5⊗5 ∋ 10b (ε_abcde with two lower free)
]


@pytest.mark.parametrize("group,reps,expected", HAND)
def test_hand_singlets(group, reps, expected):
    names = [NAMED[group][x] for x in reps.split()]
    idx = [RI[r] for r in names]
    g = GI[group]
    table = {2: G.SINGLET2, 3: G.SINGLET3, 4: G.SINGLET4}[len(idx)]
    assert bool(table[(g, *idx)]) == expected
    assert G.contains_singlet(group, names) == expected


def test_singlet_multiplicities():
    """The Racah–Speiser count itself, on products with known multiplicity."""
    m = G._singlet_multiplicity
    assert m(2, ["F", "F", "F", "F"]) == 2   # two ways to pair four doublets
    assert m(2, ["Adj"] * 4) == 3            # (a·b)(c·d) and its two permutations
    assert m(3, ["Adj"] * 3) == 2            # f_abc and d_abc
    assert m(3, ["Adj", "Adj"]) == 1
    assert m(5, ["Adj"] * 3) == 2
    assert m(3, ["F", "F", "F", "Fb", "Fb", "Fb"]) == 6  # 3⊗3⊗3 = 1+8+8+10
    assert m(4, ["F"] * 4) == 1
    assert m(2, []) == 1


def test_contains_singlet_api():
    assert G.contains_singlet("U1", ["q_1", "q_-1"])
    assert G.contains_singlet("SU3", [])
    with pytest.raises(ValueError):
        G.contains_singlet("SU2", ["Fb"])
    with pytest.raises(ValueError):
        G.contains_singlet("SO10", ["F"])


# --------------------------------------------------------------------------
# Structure


def _allowed_idx(g: str) -> list[int]:
    return [RI[r] for r in ALLOWED_REPS[g]]


def test_u1_row_and_not_allowed():
    assert G.SINGLET2[0].all() and G.SINGLET3[0].all() and G.SINGLET4[0].all()
    for g in SUN:
        bad = ~G.ALLOWED[GI[g]]
        s4 = G.SINGLET4[GI[g]]
        assert not s4[bad].any() and not s4[:, bad].any() and not s4[:, :, :, bad].any()
        assert not G.SINGLET3[GI[g]][:, :, bad].any() and not G.SINGLET2[GI[g]][bad].any()


@pytest.mark.parametrize("g", SUN)
def test_singlet_structure(g):
    gi, N, idx = GI[g], GROUP_N[g], _allowed_idx(g)
    nal = {RI[r]: _n_ality(N, r) for r in ALLOWED_REPS[g]}
    s2, s3, s4 = G.SINGLET2[gi], G.SINGLET3[gi], G.SINGLET4[gi]
    for r, s in product(idx, repeat=2):
        assert s2[r, s] == (s == G.CONJ[gi, r])
        assert s2[r, s] == s2[s, r]
        assert s3[0, r, s] == s2[r, s]
    for t in product(idx, repeat=3):
        if s3[t]:
            assert sum(nal[x] for x in t) % N == 0
        assert all(s3[p] == s3[t] for p in permutations(t))
        assert s4[(0, *t)] == s3[t]
        # conjugating every factor maps singlets to singlets
        assert s3[tuple(G.CONJ[gi, x] for x in t)] == s3[t]
    for t in product(idx, repeat=4):
        if s4[t]:
            assert sum(nal[x] for x in t) % N == 0
        assert all(s4[p] == s4[t] for p in permutations(t))


@pytest.mark.parametrize("g", SUN)
def test_tables_agree_with_racah_speiser(g):
    """Tables (two-fold Brauer–Klimyk decompositions) vs. direct Racah–Speiser
    on the convolved weights of every 3- and 4-fold product."""
    gi, N = GI[g], GROUP_N[g]
    for k, table in [(3, G.SINGLET3), (4, G.SINGLET4)]:
        for combo in combinations_with_replacement(ALLOWED_REPS[g], k):
            exp = G._singlet_multiplicity(N, list(combo)) > 0
            assert bool(table[(gi, *[RI[r] for r in combo])]) == exp, combo


# --------------------------------------------------------------------------
# Independent numerical cross-check with explicit generator matrices


def _fund(N: int) -> list[np.ndarray]:
    """Simple-root raising and lowering operators E_{i,i+1}, E_{i+1,i}: they
    generate sl(N), so a vector is invariant iff all of them annihilate it."""
    gens = []
    for i in range(N - 1):
        for a, b in [(i, i + 1), (i + 1, i)]:
            e = np.zeros((N, N))
            e[a, b] = 1.0
            gens.append(e)
    return gens


def _tensor(ga: list[np.ndarray], gb: list[np.ndarray]) -> list[np.ndarray]:
    ia, ib = np.eye(ga[0].shape[0]), np.eye(gb[0].shape[0])
    return [np.kron(x, ib) + np.kron(ia, y) for x, y in zip(ga, gb)]


def _restrict(gens: list[np.ndarray], basis: np.ndarray) -> list[np.ndarray]:
    """Action on an invariant subspace with orthonormal columns ``basis``."""
    return [basis.T @ x @ basis for x in gens]


def _irrep(N: int, rep: str) -> list[np.ndarray]:
    """Generator matrices built from tensor powers of the defining rep."""
    if rep.endswith("b"):
        return [-x.T for x in _irrep(N, rep[:-1])]
    f = _fund(N)
    if rep == "1":
        return [np.zeros((1, 1)) for _ in f]
    if rep == "F":
        return f
    e = np.eye(N)
    if rep in ("A2", "S2"):
        sgn = -1.0 if rep == "A2" else 1.0
        cols = []
        for i in range(N):
            for j in range(i if rep == "S2" else i + 1, N):
                v = np.kron(e[i], e[j]) + sgn * np.kron(e[j], e[i])
                cols.append(v / np.linalg.norm(v))
        return _restrict(_tensor(f, f), np.array(cols).T)
    if rep == "Adj":  # traceless part of F ⊗ Fb (matrices M ↦ [X, M])
        _, _, vt = np.linalg.svd(np.eye(N).reshape(1, -1))
        return _restrict(_tensor(f, [-x.T for x in f]), vt[1:].T)
    raise AssertionError(rep)


def _invariant_dim(gens: list[np.ndarray]) -> int:
    m = sum(x.T @ x for x in gens)
    ev = np.linalg.eigvalsh(m)
    assert not ((ev > 1e-7) & (ev < 1e-3)).any(), "ambiguous numerical rank"
    return int((ev < 1e-7).sum())


def test_numerical_generators_reproduce_indices():
    """dim, 2T and A from traces of the explicit Cartan generators."""
    for g in SUN:
        N = GROUP_N[g]
        for r in ALLOWED_REPS[g]:
            x = _irrep(N, r)
            cartan = [x[2 * i] @ x[2 * i + 1] - x[2 * i + 1] @ x[2 * i] for i in range(N - 1)]
            assert x[0].shape[0] == G.DIM[GI[g], RI[r]]
            h1 = cartan[0]  # diag(1, −1, 0, ..)
            assert round(np.trace(h1 @ h1) / 2) == G.TWO_T[GI[g], RI[r]], (g, r)
            if N >= 3:
                h = cartan[0] + 2 * cartan[1]  # diag(1, 1, −2, 0, ..), tr_F h³ = −6
                assert round(np.trace(h @ h @ h) / -6) == G.CUBIC_A[GI[g], RI[r]], (g, r)


@pytest.mark.parametrize("g", SUN)
def test_numerical_invariants(g):
    """Invariant subspace of explicit product representations vs. tables,
    for every 2- and 3-fold product of dimension ≤ 600 and every 4-fold
    product of dimension ≤ 256, plus exact multiplicities vs Racah–Speiser."""
    gi, N = GI[g], GROUP_N[g]
    reps = ALLOWED_REPS[g]
    gens = {r: _irrep(N, r) for r in reps}
    checked = 0
    for k, table, limit in [(2, G.SINGLET2, 600), (3, G.SINGLET3, 600), (4, G.SINGLET4, 256)]:
        for combo in combinations_with_replacement(reps, k):
            if np.prod([G.DIM[gi, RI[r]] for r in combo]) > limit:
                continue
            prod_gens = gens[combo[0]]
            for r in combo[1:]:
                prod_gens = _tensor(prod_gens, gens[r])
            n_inv = _invariant_dim(prod_gens)
            assert n_inv == G._singlet_multiplicity(N, list(combo)), combo
            assert bool(table[(gi, *[RI[r] for r in combo])]) == (n_inv > 0), combo
            checked += 1
    assert checked >= 20
