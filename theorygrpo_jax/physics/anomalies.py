"""Gauge anomaly coefficients of a `TheoryRecord` (spec §3), exact int32, jittable.

Conditions live in a fixed list of C = 22 slots (k = gauge factor 0..3,
a = U(1) factor 0..1; canonical order puts the U(1)s first, so a U(1) can
only be factor 0 or 1):

    0..3    SU(N)^3            of factor k, for N ≥ 3
    4..11   SU(N)^2 U1_a       slot 4 + 2k + a, for every SU(N) k (N ≥ 2) and U(1) a
    12..15  U(1) cubes         {0,0,0} {0,0,1} {0,1,1} {1,1,1}
    16..17  grav U1_a
    18..21  Witten SU2         of factor k, (Σ 2T·mult) mod 2

`anomaly_coefficients(record)` returns (coeffs [22] int32, valid [22] bool)
(invalid slots are 0); `condition_names(gauge)` gives, on the host, the names
of the valid slots in slot order (so ``names == [n for n, v in zip(all, valid)
if v]``).

R fermions count as left-handed conjugates: sign s = -1, which negates the
cubic A(R) and the U(1) charges and leaves 2T(R) alone.

Magnitudes (int32 max 2 147 483 647): per field |n| ≤ 18, gen ≤ 4, dims ≤ 24,
at most 3 non-abelian factors beside a U(1) (d ≤ 4·24³ = 55 296):
SU(N)^3 ≤ 7·55 296, SU(N)^2 U1 ≤ 10·2 304·18, grav ≤ 55 296·18, all < 2^20
per field and < 2^24 for 16 fields. The U(1) cubes reach 55 296·18³ ≈ 3.2e8
per field, which fits, but 16 such fields (≈ 5.2e9) do NOT: those sums (and
the L1 norm) are taken exactly in two 16-bit limbs and SATURATE at
±(2^31 − 1). The value is then exact whenever |A| < 2^31 and in particular
zero exactly when the true sum is zero; the Python reference clamps the same.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.physics import groups
from theorygrpo_jax.physics.record import TheoryRecord

NUM_CONDITIONS = 22
INT32_MAX = 2**31 - 1
_U1_CUBES = ((0, 0, 0), (0, 0, 1), (0, 1, 1), (1, 1, 1))

_NR = len(V.REPS)


def _packed_rep_table() -> np.ndarray:
    """groups' per-(group, rep) data packed in one int32 per entry, flat [g*8 + r], so that a
    slot needs ONE gather (XLA:CPU gathers cost ~10 ns per element): dim (bits 0..4),
    2T (5..8), A + 8 (9..12), conjugate rep (13..15), self-conjugate (16), pseudo-real (17)."""
    eye = np.arange(_NR)[None, :]
    selfconj = groups.CONJ == eye
    pseudo = selfconj & ~groups.IS_REAL
    assert groups.DIM.max() < 32 and groups.TWO_T.max() < 16 and np.abs(groups.CUBIC_A).max() < 8
    t = (groups.DIM.astype(np.int64) | (groups.TWO_T.astype(np.int64) << 5)
         | ((groups.CUBIC_A.astype(np.int64) + 8) << 9) | (groups.CONJ.astype(np.int64) << 13)
         | (selfconj.astype(np.int64) << 16) | (pseudo.astype(np.int64) << 17))
    return t.astype(np.int32).reshape(-1)


_PACKED = _packed_rep_table()


def slot_info(record: TheoryRecord) -> dict[str, jax.Array]:
    """Per (field, gauge factor) group data [16, 4] (and per factor [4]) from groups' tables.

    Keys: grp [4] (0..4, unused -> 0), is_u1 [4], is_su [4]; rep, chg (U1 charge n, else 0),
    dim (1 on U1 / unused), two_t, cubic, conj (rep index of the conjugate; identity on U1 /
    unused), selfconj, pseudo (pseudo-real) -- all [16, 4].
    """
    G = record.gauge
    grp = jnp.clip(G, 0, 4)
    is_u1, is_su = G == 0, G >= 1
    rep = jnp.where(is_su[None, :], record.slots, 0)
    chg = jnp.where(is_u1[None, :], record.slots, 0)
    p = jnp.asarray(_PACKED)[grp[None, :] * _NR + rep]
    return dict(
        grp=grp, is_u1=is_u1, is_su=is_su, rep=rep, chg=chg,
        dim=jnp.where(is_su[None, :], p & 31, 1), two_t=(p >> 5) & 15, cubic=((p >> 9) & 15) - 8,
        conj=(p >> 13) & 7, selfconj=((p >> 16) & 1) == 1, pseudo=((p >> 17) & 1) == 1,
    )


def factor_labels(gauge: list[str]) -> list[str]:
    """U1, U1_2, SU2, SU3, SU3_2, ...: the k-th factor of a kind is labelled `<kind>_k` for k ≥ 2."""
    counts: dict[str, int] = {}
    out = []
    for g in gauge:
        counts[g] = counts.get(g, 0) + 1
        out.append(g if counts[g] == 1 else f"{g}_{counts[g]}")
    return out


def all_condition_names(gauge: list[str]) -> list[str | None]:
    """Names of all 22 slots for this gauge group, None where the slot is not a condition."""
    lab = factor_labels(gauge)
    kind = list(gauge) + [None] * (V.MAX_GAUGE - len(gauge))
    names: list[str | None] = []
    for k in range(4):
        names.append(f"{lab[k]}^3" if kind[k] in ("SU3", "SU4", "SU5") else None)
    for k in range(4):
        for a in range(2):
            ok = kind[k] not in (None, "U1") and kind[a] == "U1"
            names.append(f"{lab[k]}^2 {lab[a]}" if ok else None)
    for combo in _U1_CUBES:
        if all(kind[a] == "U1" for a in combo):
            parts = []
            for a in sorted(set(combo)):
                c = combo.count(a)
                parts.append(lab[a] + (f"^{c}" if c > 1 else ""))
            names.append(" ".join(parts))
        else:
            names.append(None)
    for a in range(2):
        names.append(f"grav {lab[a]}" if kind[a] == "U1" else None)
    for k in range(4):
        names.append(f"Witten {lab[k]}" if kind[k] == "SU2" else None)
    assert len(names) == NUM_CONDITIONS
    return names


def condition_names(gauge: list[str]) -> list[str]:
    """Names of the valid conditions of a gauge group (e.g. ["U1", "SU2", "SU3"]), in slot order."""
    return [n for n in all_condition_names(gauge) if n is not None]


def saturating_sum(x: jax.Array, axis: int = -1) -> jax.Array:
    """Exact int32 sum of int32 terms (up to 2^15 of them), saturated at ±(2^31 − 1).

    Splits every term into a signed high and an unsigned low 16-bit limb, sums
    the limbs separately (no overflow) and recombines with saturation.
    """
    x = x.astype(jnp.int32)
    hi = jnp.sum(jnp.right_shift(x, 16), axis=axis)           # arithmetic shift: floor(x / 2^16)
    lo = jnp.sum(jnp.bitwise_and(x, 0xFFFF), axis=axis)
    hi = hi + jnp.right_shift(lo, 16)
    lo = jnp.bitwise_and(lo, 0xFFFF)
    inside = (hi <= 32767) & (hi >= -32768)
    exact = jnp.maximum(jnp.where(inside, hi, 0) * 65536 + lo, -INT32_MAX)
    return jnp.where(inside, exact, jnp.where(hi > 0, INT32_MAX, -INT32_MAX)).astype(jnp.int32)


@jax.named_scope("anomalies")
def anomaly_coefficients(record: TheoryRecord) -> tuple[jax.Array, jax.Array]:
    """(coeffs [22] int32, valid [22] bool) of one record (vmap for a batch)."""
    info = slot_info(record)
    G, is_u1, is_su = record.gauge, info["is_u1"], info["is_su"]
    chg, dims, two_t, cub = info["chg"], info["dim"], info["two_t"], info["cubic"]
    s = record.chirality                                   # [16] +1 L / -1 R / 0 scalar, unused
    gen = record.generations
    d = gen * jnp.prod(dims, axis=1)                       # [16] gen × all non-abelian dims
    mult = d[:, None] // dims                              # [16, 4] gen × dims of the other factors
    sd = s * d

    su3 = jnp.sum((s[:, None] * cub * mult), axis=0)                           # [4]
    t_mult = s[:, None] * two_t * mult                                        # [16, 4]
    su2u1 = jnp.sum(t_mult[:, :, None] * chg[:, None, :2], axis=0).reshape(-1)  # [8] = k*2 + a
    n0, n1 = chg[:, 0], chg[:, 1]
    cubes = jnp.stack([sd * (n0 * n0 * n0), sd * (n0 * n0 * n1),
                       sd * (n0 * n1 * n1), sd * (n1 * n1 * n1)], axis=0)        # [4, 16]
    u1cubes = saturating_sum(cubes, axis=1)                                    # [4]
    grav = jnp.sum(sd[:, None] * chg[:, :2], axis=0)                          # [2]
    witten = jnp.sum(jnp.abs(s)[:, None] * two_t * mult, axis=0) % 2          # [4]
    coeffs = jnp.concatenate([su3, su2u1, u1cubes, grav, witten]).astype(jnp.int32)

    valid_su3 = G >= 2
    valid_su2u1 = (is_su[:, None] & is_u1[None, :2]).reshape(-1)
    valid_cubes = jnp.stack([is_u1[0], is_u1[0] & is_u1[1], is_u1[0] & is_u1[1], is_u1[1]])
    valid = jnp.concatenate([valid_su3, valid_su2u1, valid_cubes, is_u1[:2], G == 1])
    return jnp.where(valid, coeffs, 0), valid


def anomaly_l1(coeffs: jax.Array) -> jax.Array:
    """Σ |A_c| (int32, saturated at 2^31 − 1)."""
    return saturating_sum(jnp.abs(coeffs), axis=-1)
