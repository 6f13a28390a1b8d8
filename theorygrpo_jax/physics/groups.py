"""Exact group theory of U(1) and SU(2..5) for the irreps of TheoryLang v1.

Everything here is derived at import time (a few milliseconds) from the
weights of the irreducible representations, with exact integer arithmetic,
and stored in small read-only numpy arrays indexed ``[g, r]`` where ``g`` is
the group index of ``vocab.GROUPS`` (U1=0, SU2=1, .., SU5=4) and ``r`` the rep
index of ``vocab.REPS`` ("1" F Fb Adj A2 A2b S2 S2b = 0..7). The jitted
reward code indexes these arrays; nothing here is JAX.

Weights
    A weight of SU(N) is written in the orthogonal basis e_1..e_N of the
    Cartan of U(N), projected to the traceless part, and multiplied by N so
    that all coordinates are integers: a weight with orthogonal components
    v (k = Σ v boxes) is stored as ``N·v − k·(1, .., 1)``. So the
    fundamental weight e_1 of SU(3) is (2, −1, −1). Coordinates always sum
    to zero; the N-ality of a weight is ``(−W[0]) mod N``.

Irreps (spec names -> Young diagrams / highest weights)
    1 trivial, F = □ (N), Fb its conjugate, Adj = F⊗Fb − 1 (N²−1),
    A2 = antisymmetric □⊗□ (N(N−1)/2), S2 = symmetric □⊗□ (N(N+1)/2),
    A2b, S2b the conjugates (weights negated).

Singlets
    The multiplicity of the trivial irrep in a (reducible) representation V
    with weight multiplicities m_V is the Racah–Speiser / Brauer–Klimyk sum

        mult(1 ⊂ V) = Σ_{w ∈ S_N} sign(w) · m_V(w(ρ) − ρ),

    (equivalently with ρ − w(ρ), since V and V* contain the same number of
    singlets). Tensor-product weights are obtained by convolution. For the
    precomputed tables the two-fold products are decomposed completely with
    Brauer–Klimyk, R1 ⊗ R2 = Σ_{ν ∈ wts(R1)} sign · V(dom(ν + λ2 + ρ) − ρ),
    and then R1⊗R2⊗R3 ∋ 1 iff R3* ⊂ R1⊗R2, and R1⊗R2⊗R3⊗R4 ∋ 1 iff some
    irrep of R1⊗R2 has its conjugate in R3⊗R4.

Indices
    2T(R) and the cubic anomaly A(R) are ratios of traces of one Cartan
    generator h over the weights (unique quadratic and cubic invariants of
    SU(N)): 2T(R) = Σ_w (w·h)² / Σ_F (w·h)², A(R) = Σ_w (w·h)³ / Σ_F (w·h)³.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from itertools import permutations

import numpy as np

from theorygrpo_jax.grammar.vocab import ALLOWED_REPS, GROUP_N, GROUPS, REPS

Weight = tuple[int, ...]
Dynkin = tuple[int, ...]

N_GROUPS = len(GROUPS)
N_REPS = len(REPS)
_REP_INDEX = {r: i for i, r in enumerate(REPS)}
_BASE_REPS = ("1", "F", "Adj", "A2", "S2")


# --------------------------------------------------------------------------
# Weights of the irreps


def _scaled(N: int, v: Sequence[int]) -> Weight:
    """N × (traceless projection of the orthogonal-basis vector v)."""
    k = sum(v)
    return tuple(N * x - k for x in v)


def rep_weights(N: int, rep: str) -> list[Weight]:
    """All weights (with multiplicity) of the SU(N) irrep named ``rep``.

    Coordinates are N times the traceless orthogonal-basis components (see
    the module docstring), so they are exact integers summing to zero.
    ``F`` = {e_i}, ``Adj`` = {e_i − e_j, i≠j} plus N−1 zero weights,
    ``A2`` = {e_i + e_j, i<j}, ``S2`` = {e_i + e_j, i≤j}; a trailing ``b``
    means the conjugate irrep, whose weights are the negatives.
    """
    if N < 2:
        raise ValueError(f"SU(N) needs N >= 2, got {N}")
    if rep not in _REP_INDEX:
        raise ValueError(f"unknown rep {rep!r}; expected one of {REPS}")
    if rep.endswith("b"):
        return [tuple(-x for x in w) for w in rep_weights(N, rep[:-1])]

    def vec(*plus: int, minus: int | None = None) -> Weight:
        v = [0] * N
        for i in plus:
            v[i] += 1
        if minus is not None:
            v[minus] -= 1
        return _scaled(N, v)

    idx = range(N)
    if rep == "1":
        return [vec()]
    if rep == "F":
        return [vec(i) for i in idx]
    if rep == "Adj":
        return [vec(i, minus=j) for i in idx for j in idx if i != j] + [vec()] * (N - 1)
    if rep == "A2":
        return [vec(i, j) for i in idx for j in idx if i < j]
    if rep == "S2":
        return [vec(i, j) for i in idx for j in idx if i <= j]
    raise AssertionError(rep)  # pragma: no cover


@lru_cache(maxsize=None)
def _weight_mult(N: int, rep: str) -> Mapping[Weight, int]:
    """Weight multiplicities of an irrep (a Counter, do not mutate)."""
    return Counter(rep_weights(N, rep))


def _convolve(a: Mapping[Weight, int], b: Mapping[Weight, int]) -> Counter:
    """Weight multiplicities of the tensor product of two representations."""
    out: Counter = Counter()
    for wa, ma in a.items():
        for wb, mb in b.items():
            out[tuple(x + y for x, y in zip(wa, wb))] += ma * mb
    return out


# --------------------------------------------------------------------------
# Weyl group S_N, Racah–Speiser, Brauer–Klimyk


def _perm_sign(p: Sequence[int]) -> int:
    """Sign of a permutation (parity of its inversions)."""
    inv = sum(1 for i in range(len(p)) for j in range(i + 1, len(p)) if p[i] > p[j])
    return -1 if inv % 2 else 1


def _rho(N: int) -> Weight:
    """N·ρ in orthogonal coordinates, shifted to (N−1, .., 0)·N.

    The shift by a multiple of (1, .., 1) is harmless wherever ρ is used:
    only differences w(ρ) − ρ and orderings of ν + λ + ρ matter.
    """
    return tuple(N * (N - 1 - i) for i in range(N))


@lru_cache(maxsize=None)
def _weyl_shifts(N: int) -> tuple[tuple[int, Weight], ...]:
    """(sign(w), w(ρ) − ρ) for every w in the Weyl group S_N (scaled coords)."""
    rho = _rho(N)
    out = []
    for p in permutations(range(N)):
        w_rho = tuple(rho[p[i]] for i in range(N))
        out.append((_perm_sign(p), tuple(a - b for a, b in zip(w_rho, rho))))
    return tuple(out)


def _trivial_multiplicity(N: int, mult: Mapping[Weight, int]) -> int:
    """Number of singlets in a representation of SU(N) given its weights."""
    return sum(s * mult.get(shift, 0) for s, shift in _weyl_shifts(N))


def _singlet_multiplicity(N: int, reps: Sequence[str]) -> int:
    """Number of independent singlets in ⊗ reps (SU(N), exact)."""
    total: Mapping[Weight, int] = _weight_mult(N, "1")
    for r in reps:
        total = _convolve(total, _weight_mult(N, r))
    return _trivial_multiplicity(N, total)


def _dynkin(N: int, w: Weight) -> Dynkin:
    """Dynkin labels a_i = ⟨w, α_i^∨⟩ of a weight in scaled coordinates."""
    labels = []
    for i in range(N - 1):
        d, rem = divmod(w[i] - w[i + 1], N)
        assert rem == 0, w
        labels.append(d)
    return tuple(labels)


def _highest_weight(N: int, rep: str) -> Weight:
    """Highest weight: the lexicographically largest weight (positive roots
    e_i − e_j, i<j, are lexicographically positive)."""
    return max(rep_weights(N, rep))


def _decompose(N: int, rep1: str, rep2: str) -> Counter:
    """R1 ⊗ R2 as a Counter {Dynkin labels of irrep: multiplicity}.

    Brauer–Klimyk: each weight ν of R1 contributes sign(w)·V(w(ν+λ2+ρ) − ρ)
    with w sorting ν+λ2+ρ into the dominant chamber; weights on a wall
    (two equal orthogonal coordinates) contribute nothing.
    """
    rho = _rho(N)
    hw = _highest_weight(N, rep2)
    out: Counter = Counter()
    for nu, m in _weight_mult(N, rep1).items():
        x = tuple(a + b + c for a, b, c in zip(nu, hw, rho))
        if len(set(x)) < N:
            continue
        order = sorted(range(N), key=lambda i: -x[i])
        mu = tuple(x[order[k]] - rho[k] for k in range(N))
        out[_dynkin(N, mu)] += _perm_sign(order) * m
    out = Counter({k: v for k, v in out.items() if v != 0})
    assert all(v > 0 for v in out.values()), (N, rep1, rep2, out)
    return out


# --------------------------------------------------------------------------
# Tables


def _group_reps(g: int) -> list[str]:
    """Allowed reps (spec table) of group index g; U1 has none."""
    return list(ALLOWED_REPS.get(GROUPS[g], []))


def _trace_ratio(N: int, rep: str, h: Sequence[int], power: int) -> int:
    """Σ_w (w·h)^power over rep divided by the same over F (exact)."""

    def tr(r: str) -> int:
        return sum(sum(a * b for a, b in zip(w, h)) ** power for w in rep_weights(N, r))

    q, rem = divmod(tr(rep), tr("F"))
    assert rem == 0, (N, rep, power)
    return q


def _is_real(N: int, rep: str) -> bool:
    """Real (orthogonal) irrep: a symmetric invariant bilinear, 1 ⊂ Sym²(R).

    A pseudoreal irrep (SU2 F) has its invariant in Λ²(R), a complex one in
    neither.
    """
    ws = rep_weights(N, rep)
    sym2 = Counter(
        tuple(a + b for a, b in zip(ws[i], ws[j])) for i in range(len(ws)) for j in range(i, len(ws))
    )
    return _trivial_multiplicity(N, sym2) > 0


def _build_tables() -> dict[str, np.ndarray]:
    G, R = N_GROUPS, N_REPS
    dim = np.zeros((G, R), np.int32)
    two_t = np.zeros((G, R), np.int32)
    cubic = np.zeros((G, R), np.int32)
    conj = np.tile(np.arange(R, dtype=np.int32), (G, 1))  # identity by default
    real = np.zeros((G, R), bool)
    allowed = np.zeros((G, R), bool)
    t3x2 = np.zeros((R, 3), np.int32)
    t3_count = np.zeros((R,), np.int32)
    s2 = np.zeros((G, R, R), bool)
    s3 = np.zeros((G, R, R, R), bool)
    s4 = np.zeros((G, R, R, R, R), bool)

    # U(1): dimension 1, charges are checked elsewhere.
    dim[0, :] = 1
    real[0, :] = True
    s2[0] = s3[0] = s4[0] = True

    for g in range(1, G):
        N = GROUP_N[GROUPS[g]]
        reps = _group_reps(g)
        idx = [_REP_INDEX[r] for r in reps]
        h2 = [1, -1] + [0] * (N - 2)  # 2·T3 of an SU(2) subgroup
        h3 = [1, 1, -2] + [0] * (N - 3)  # a Cartan element with tr_F h³ ≠ 0
        sorted_wts = {r: sorted(rep_weights(N, r)) for r in reps}
        for r, i in zip(reps, idx):
            allowed[g, i] = True
            dim[g, i] = len(sorted_wts[r])
            two_t[g, i] = _trace_ratio(N, r, h2, 2)
            cubic[g, i] = _trace_ratio(N, r, h3, 3) if N >= 3 else 0
            neg = sorted(tuple(-x for x in w) for w in sorted_wts[r])
            (c,) = [j for s, j in zip(reps, idx) if sorted_wts[s] == neg]
            conj[g, i] = c
            real[g, i] = _is_real(N, r)

        # Singlets from complete two-fold decompositions.
        dyn = {i: _dynkin(N, _highest_weight(N, r)) for r, i in zip(reps, idx)}
        pair = {(i, j): frozenset(_decompose(N, a, b)) for a, i in zip(reps, idx) for b, j in zip(reps, idx)}
        pair_conj = {k: frozenset(d[::-1] for d in v) for k, v in pair.items()}
        trivial = tuple([0] * (N - 1))
        for i in idx:
            for j in idx:
                s2[g, i, j] = trivial in pair[i, j]
                for k in idx:
                    s3[g, i, j, k] = dyn[k][::-1] in pair[i, j]
                    for l in idx:
                        s4[g, i, j, k, l] = not pair[i, j].isdisjoint(pair_conj[k, l])

    # SU(2) T3 eigenvalues (×2), highest first.
    for r in _group_reps(1):
        i = _REP_INDEX[r]
        vals = sorted(((w[0] - w[1]) // 2 for w in rep_weights(2, r)), reverse=True)
        t3x2[i, : len(vals)] = vals
        t3_count[i] = len(vals)

    tables = dict(DIM=dim, TWO_T=two_t, CUBIC_A=cubic, CONJ=conj, IS_REAL=real, ALLOWED=allowed,
                  T3X2=t3x2, T3_COUNT=t3_count, SINGLET2=s2, SINGLET3=s3, SINGLET4=s4)
    for a in tables.values():
        a.flags.writeable = False
    return tables


_T = _build_tables()

DIM: np.ndarray = _T["DIM"]
"""int32 [5, 8]: dimension of rep r of group g (U1 row 1; not-allowed reps 0)."""
TWO_T: np.ndarray = _T["TWO_T"]
"""int32 [5, 8]: Dynkin index 2T(R), 2T(F) = 1 (U1 row and not-allowed reps 0)."""
CUBIC_A: np.ndarray = _T["CUBIC_A"]
"""int32 [5, 8]: cubic anomaly A(R), A(F) = 1 (SU2 and U1 rows 0)."""
CONJ: np.ndarray = _T["CONJ"]
"""int32 [5, 8]: index of the conjugate rep (identity on U1 and not-allowed reps)."""
IS_REAL: np.ndarray = _T["IS_REAL"]
"""bool [5, 8]: real (orthogonal) reps; U1 row True (charge q_0 checked elsewhere)."""
ALLOWED: np.ndarray = _T["ALLOWED"]
"""bool [5, 8]: reps the spec allows in an SU(N) slot (U1 row False)."""
T3X2: np.ndarray = _T["T3X2"]
"""int32 [8, 3]: 2·T3 eigenvalues of SU(2) irreps, highest first, 0-padded."""
T3_COUNT: np.ndarray = _T["T3_COUNT"]
"""int32 [8]: number of T3 states of each SU(2) irrep (0 for reps not of SU2)."""
SINGLET2: np.ndarray = _T["SINGLET2"]
"""bool [5, 8, 8]: R1⊗R2 ∋ 1 (U1 row True; not-allowed reps False)."""
SINGLET3: np.ndarray = _T["SINGLET3"]
"""bool [5, 8, 8, 8]: R1⊗R2⊗R3 ∋ 1."""
SINGLET4: np.ndarray = _T["SINGLET4"]
"""bool [5, 8, 8, 8, 8]: R1⊗R2⊗R3⊗R4 ∋ 1."""
del _T


def contains_singlet(group: str, reps: Sequence[str]) -> bool:
    """Whether the tensor product of ``reps`` of ``group`` contains a singlet.

    ``group`` is a vocab group name ("SU3"); ``reps`` are rep names of the
    spec allowed for it (["F", "F", "F"]); conjugate barred fields yourself.
    Any number of factors (exact Racah–Speiser on the convolved weights, not
    the tables). For "U1" the answer is True: charges are checked elsewhere.
    """
    if group not in GROUP_N:
        raise ValueError(f"unknown group {group!r}; expected one of {GROUPS}")
    if group == "U1":
        return True
    bad = [r for r in reps if r not in ALLOWED_REPS[group]]
    if bad:
        raise ValueError(f"reps {bad} not allowed for {group}; allowed: {ALLOWED_REPS[group]}")
    return _singlet_multiplicity(GROUP_N[group], list(reps)) > 0


__all__ = ["DIM", "TWO_T", "CUBIC_A", "CONJ", "IS_REAL", "ALLOWED", "T3X2", "T3_COUNT",
           "SINGLET2", "SINGLET3", "SINGLET4", "contains_singlet", "rep_weights"]
