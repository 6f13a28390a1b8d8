"""Anomaly-free chiral U(1)' charge sets of SM-singlet Weyl fermions, enumerated exhaustively.

n left-handed SM singlets with integer charges z_1..z_n under a new U(1)' are
anomaly free iff

    Σ z = 0      (mixed U(1)'-gravity)      and      Σ z³ = 0      (U(1)'³).

A set is *chiral* when no charge is zero and no two charges are opposite
(z and -z): such a pair could be given a gauge-invariant Dirac mass. Because an
anomaly-free set of 2 or 4 nonzero charges is always vector-like and one of 3 is
impossible (see the tests), for n ≤ 7 "no opposite pair" is the same as "no
proper anomaly-free subset". Repeated charges (z, z) are allowed.

Two sets are the same discovery when they differ by order, overall sign or a
common factor. `canonical_charge_set` picks one representative per class:
divide by gcd(|z|), sort ascending, and of sorted(z) and sorted(-z) keep the
lexicographically LARGER tuple. For a chiral set that means the charge of
largest magnitude is positive (ties between z and -z cannot occur), e.g.
(1, 5, -7, -8, 9) -> (-8, -7, 1, 5, 9).

`enumerate_chiral_sets(n, zmax)` lists every primitive (gcd 1) chiral
anomaly-free set with 1 ≤ |z| ≤ zmax, by meet-in-the-middle on the key
(Σ z, Σ z³): a multiset written in non-decreasing order is split into its
first k = n // 2 charges (half A) and the remaining n - k (half B); A's last
charge ≤ B's first, so every multiset arises from exactly one (A, B) pair.
Both halves are enumerated with numpy, halves that already contain an
opposite pair are dropped, and A is joined against B on key(A) = -key(B).

Plain Python + numpy; nothing here is jitted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

# --- single sets (plain Python) ------------------------------------------------------------


def is_anomaly_free(charges: Iterable[int]) -> bool:
    """Σ z = 0 and Σ z³ = 0 (exact integers)."""
    zs = [int(z) for z in charges]
    return sum(zs) == 0 and sum(z ** 3 for z in zs) == 0


def is_chiral(charges: Iterable[int]) -> bool:
    """No zero charge and no pair z, -z (a repeated z, z is allowed)."""
    zs = [int(z) for z in charges]
    present = set(zs)
    return 0 not in present and not any(-z in present for z in present)


def canonical_charge_set(charges: Iterable[int]) -> tuple[int, ...]:
    """Representative of `charges` up to order, overall sign and common factor (module docstring).

    Divided by gcd(|z|) (left as is when all charges are 0), sorted ascending, and the
    lexicographically larger of sorted(z) and sorted(-z)."""
    zs = [int(z) for z in charges]
    g = math.gcd(*zs) if zs else 0
    if g > 1:
        zs = [z // g for z in zs]
    up = tuple(sorted(zs))
    down = tuple(sorted(-z for z in zs))
    return max(up, down)


# --- exhaustive enumeration (numpy) --------------------------------------------------------


def _charge_values(zmax: int) -> np.ndarray:
    """The 2·zmax allowed charges in ascending order, so index order is charge order."""
    return np.concatenate([np.arange(-zmax, 0), np.arange(1, zmax + 1)]).astype(np.int64)


def _sorted_multisets(m: int, k: int) -> np.ndarray:
    """All non-decreasing index tuples of length k over range(m): [C(m+k-1, k), k] int64."""
    rows = np.zeros((1, 0), dtype=np.int64)
    for _ in range(k):
        start = rows[:, -1] if rows.shape[1] else np.zeros(len(rows), dtype=np.int64)
        counts = m - start                                           # choices j in [start, m)
        rep = np.repeat(rows, counts, axis=0)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        new = np.repeat(start, counts) + offsets
        rows = np.concatenate([rep, new[:, None]], axis=1)
    return rows


def _has_opposite_pair(z: np.ndarray) -> np.ndarray:
    """[N, k] charges -> [N] bool: some i < j with z_i + z_j == 0."""
    k = z.shape[1]
    out = np.zeros(len(z), dtype=bool)
    for i in range(k):
        for j in range(i + 1, k):
            out |= z[:, i] + z[:, j] == 0
    return out


def _half(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted k-multisets without an opposite pair: (idx [N, k], Σz [N], Σz³ [N])."""
    idx = _sorted_multisets(len(values), k)
    z = values[idx]
    keep = ~_has_opposite_pair(z)
    idx, z = idx[keep], z[keep]
    return idx, z.sum(axis=1), (z ** 3).sum(axis=1)


def _canonical_rows(z: np.ndarray) -> np.ndarray:
    """Row-wise `canonical_charge_set` for [N, n] ascending rows of gcd 1 (vectorised)."""
    neg = -z[:, ::-1]                                                # sorted(-z), ascending
    differ = z != neg
    first = differ.argmax(axis=1)
    rows = np.arange(len(z))
    keep_up = ~differ.any(axis=1) | (z[rows, first] > neg[rows, first])
    return np.where(keep_up[:, None], z, neg)


def _check_args(n: int, zmax: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(zmax, (int, np.integer)) or zmax < 1:
        raise ValueError(f"zmax must be a positive integer, got {zmax!r}")
    # the (Σz, Σz³) key is packed into one int64: |Σz³| ≤ n·zmax³, times the Σz span 2·n·zmax + 1
    if n * zmax ** 3 * (2 * n * zmax + 1) * 2 >= 2 ** 62:
        raise ValueError(f"n={n}, zmax={zmax} overflows the int64 join key")


@lru_cache(maxsize=16)
def _enumerate(n: int, zmax: int) -> frozenset[tuple[int, ...]]:
    values = _charge_values(zmax)
    if n == 1:
        return frozenset()                                          # one nonzero charge: Σz ≠ 0
    ka = n // 2
    idx_a, s_a, c_a = _half(values, ka)
    idx_b, s_b, c_b = _half(values, n - ka)
    span = 2 * n * zmax + 1
    key_a = c_a * span + (s_a + n * zmax)
    want = -c_b * span + (-s_b + n * zmax)                          # key of (-Σz_B, -Σz³_B)
    order = np.argsort(key_a, kind="stable")
    sorted_a = key_a[order]
    lo = np.searchsorted(sorted_a, want, side="left")
    hi = np.searchsorted(sorted_a, want, side="right")
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return frozenset()
    b = np.repeat(np.arange(len(idx_b)), counts)
    a = order[np.repeat(lo, counts) + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)]
    split = idx_a[a, -1] <= idx_b[b, 0]                             # one split per multiset
    a, b = a[split], b[split]
    z = values[np.concatenate([idx_a[a], idx_b[b]], axis=1)]        # [M, n] ascending
    z = z[~_has_opposite_pair(z) & (np.gcd.reduce(np.abs(z), axis=1) == 1)]
    return frozenset(map(tuple, _canonical_rows(z).tolist()))


def enumerate_chiral_sets(n: int, zmax: int) -> set[tuple[int, ...]]:
    """Every primitive, anomaly-free, chiral set of n charges with 1 ≤ |z| ≤ zmax, each once in
    `canonical_charge_set` form. Results are cached per (n, zmax); the returned set is a copy."""
    _check_args(n, zmax)
    return set(_enumerate(int(n), int(zmax)))


def coverage(found: Iterable[Iterable[int]], n: int | Iterable[int], zmax: int) -> dict[int, dict]:
    """How much of the enumeration at `zmax` the charge sets in `found` cover, per size n.

    `found` may hold sets of any size, order, sign and scale, valid or not; each is
    canonicalised and counted once. Per requested n:
      total     number of enumerated sets (`enumerate_chiral_sets(n, zmax)`)
      found     distinct enumerated sets present in `found`
      fraction  found / total (0.0 when total is 0)
      sets      the found sets, sorted
      invalid   distinct inputs of size n that are not anomaly free or not chiral
      outside   distinct valid inputs of size n whose canonical form has |z| > zmax
    """
    ns = [int(n)] if isinstance(n, (int, np.integer)) else [int(x) for x in n]
    by_n: dict[int, set[tuple[int, ...]]] = defaultdict(set)
    invalid: dict[int, set[tuple[int, ...]]] = defaultdict(set)
    for charges in found:
        canon = canonical_charge_set(charges)
        ok = is_anomaly_free(canon) and is_chiral(canon)
        (by_n if ok else invalid)[len(canon)].add(canon)
    out: dict[int, dict] = {}
    for size in ns:
        universe = enumerate_chiral_sets(size, zmax)
        hit = by_n[size] & universe
        out[size] = {
            "total": len(universe),
            "found": len(hit),
            "fraction": len(hit) / len(universe) if universe else 0.0,
            "sets": sorted(hit),
            "invalid": len(invalid[size]),
            "outside": len(by_n[size] - universe),
        }
    return out
