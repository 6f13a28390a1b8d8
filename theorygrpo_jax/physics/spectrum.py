"""Term invariance, EM/colour-breaking VEVs and the mass spectrum of a `TheoryRecord`.

Pure jittable functions of ONE record (vmap them for a batch). The physics is
spec §3; where the spec is silent these are the choices (mirrored by the
plain-Python `physics.reference`):

Invariance
    YUKAWA m_s m_l m_r is y φ ψ̄_L ψ_R with φ OR φ* -- the same choice for
    every factor at once: U(1) charges ±n_s − n_l + n_r = 0 and SU(N) singlet
    in (φ or φ̄) ⊗ ψ̄_L ⊗ ψ_R (groups.SINGLET3). DIRAC: n_l = n_r and
    ψ̄_L ⊗ ψ_R ∋ 1. MAJORANA ψψ: all U(1) charges zero and the field's rep
    of the whole gauge group real (orthogonal): every non-abelian factor
    self-conjugate and an EVEN number of pseudo-real factors (SU2 doublets).
    So an SU2 doublet alone is not allowed (ε_ab ψ^a ψ^b vanishes for one
    Weyl field), but a bi-doublet (2, 2) of SU2 × SU2 is -- the spec's
    "real rep" read for the full gauge group. SMASS |φ|² and QUARTIC |φ|⁴ are
    always invariant.

EM / colour-breaking VEV
    A VEV scalar with no component of 6Q = 6T3 + n_Y = 0, or non-singlet
    under the first SU3 (no colour-singlet component at all), counts one
    violation.

Components and masses
    A component is one T3 state of the first SU2 multiplet (T3 highest
    first, groups.T3X2), 6Q = 3·(2T3) + n_Y (n_Y of the first U(1), 0 if
    none). Masses are per (field, component ≤ 3, generation ≤ 4): the largest
    mass any counting term gives (0 if none). Only gauge-invariant terms
    count. YUKAWA counts only when its scalar has VEV **and that VEV is not
    EM/colour-breaking** (the spec puts the VEV in the neutral colour-singlet
    component; with no such component there is nothing to pair through; the
    breaking VEV is penalised separately). It pairs ψ_L and ψ_R components of
    equal 6Q, generation by generation (mass token i = generation i, only
    generations both fields have). Through an SM-like Higgs the mass is
    capped at √(4π)·246/√2 ≈ 616.6 GeV. DIRAC gives all components of both
    fields the mass of their common generations, MAJORANA all components of
    its field.
    Scalars: every scalar's components get the mass of its SMASS term(s)
    (largest if several; 0 if none), VEV or NOVEV alike. The spec fixes this
    for NOVEV exotic scalars; for VEV exotic scalars we use the same rule:
    the SMASS token is the model's statement of the field's physical scale,
    and exempting VEV scalars would let a policy hide light charged scalars
    behind a VEV flag (the would-be Goldstones of a VEV that breaks only
    extra factors are not charged anyway; an EM-breaking VEV is penalised).

Masses are carried as integer *codes* ordered like the masses: code i is
mass token i of vocab.MASSES, shifted by one above the Higgs cap, and the cap
itself has its own code (`CAP_CODE`); `CODE_GEV[code]` is the value in GeV.
Max over terms and the cap are integer max/min, and threshold comparisons
are exact table look-ups made on the host.

SM-like vs exotic (spec §3): needs U1, SU2 and SU3 in the group; the first
U1/SU2/SU3 slots of the field, or of its conjugate, match one of Q_L u_R d_R
L_L e_R ν_R (fermions, chirality included) or the Higgs (CPLX, q_3, F, 1);
everything else is exotic. Charged component: 6Q ≠ 0 or coloured (non-singlet
under the first SU3).
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.physics import groups
from theorygrpo_jax.physics.anomalies import slot_info
from theorygrpo_jax.physics.record import DIRAC, MAJORANA, SMASS, YUKAWA, TheoryRecord, lookup

HIGGS_CAP_GEV = math.sqrt(4.0 * math.pi) * 246.0 / math.sqrt(2.0)   # ≈ 616.6 GeV

_MASS_GEV = np.asarray(V.MASS_GEV, np.float64)
CAP_CODE = int(np.searchsorted(_MASS_GEV, HIGGS_CAP_GEV))            # first token heavier than the cap
assert _MASS_GEV[CAP_CODE - 1] < HIGGS_CAP_GEV < _MASS_GEV[CAP_CODE]
CODE_GEV = np.concatenate([_MASS_GEV[:CAP_CODE], [HIGGS_CAP_GEV], _MASS_GEV[CAP_CODE:]])  # float64 [29]
NUM_CODES = len(CODE_GEV)
_CODE_GEV32 = CODE_GEV.astype(np.float32)

_NR = len(V.REPS)
_T3X2 = groups.T3X2.astype(np.int32)
_T3_COUNT = groups.T3_COUNT.astype(np.int32)


def _term_table() -> np.ndarray:
    """Invariance bits of a term's non-abelian part per factor, flat [((g*8 + x)*8 + a)*8 + b],
    derived on the host from groups.SINGLET2/3 and CONJ so that a term needs ONE gather:
    bit 0: x ⊗ ā ⊗ b ∋ 1 (YUKAWA with φ = x, ψ_L = a, ψ_R = b), bit 1: x̄ ⊗ ā ⊗ b ∋ 1 (with φ*),
    bit 2: ā ⊗ b ∋ 1 (DIRAC a, b; independent of x). U1 rows (g = 0) are all ones."""
    G, R = groups.SINGLET3.shape[:2]
    out = np.zeros((G, R, R, R), np.int32)
    for g in range(G):
        conj = groups.CONJ[g]
        for x in range(R):
            for a in range(R):
                for b in range(R):
                    out[g, x, a, b] = (int(groups.SINGLET3[g, x, conj[a], b])
                                       | int(groups.SINGLET3[g, conj[x], conj[a], b]) << 1
                                       | int(groups.SINGLET2[g, conj[a], b]) << 2)
    return out.reshape(-1)


_TERM_BITS = _term_table()

_R = {r: i for i, r in enumerate(V.REPS)}
# (chirality, n_Y, SU2 rep, SU3 rep) of the SM fermions: Q_L u_R d_R L_L e_R ν_R
SM_FERMIONS = np.array([[1, 1, _R["F"], _R["F"]], [-1, 4, _R["1"], _R["F"]], [-1, -2, _R["1"], _R["F"]],
                        [1, -3, _R["F"], _R["1"]], [-1, -6, _R["1"], _R["1"]], [-1, 0, _R["1"], _R["1"]]],
                       np.int32)
SM_HIGGS = np.array([3, _R["F"], _R["1"]], np.int32)


@flax.struct.dataclass
class Spectrum:
    """Per-theory physics derived from a record (shapes per example)."""

    q6: jax.Array              # [16, 3] int32 6Q of each component (T3 highest first), 0 if invalid
    comp_valid: jax.Array      # [16, 3] bool component exists (field valid, c < #T3 states)
    gen_valid: jax.Array       # [16, 4] bool generation exists (g < generations)
    coloured: jax.Array        # [16] bool non-singlet under the first SU3
    charged: jax.Array         # [16, 3] bool valid component with 6Q ≠ 0 or coloured
    sm_like: jax.Array         # [16] bool SM-like field (valid fields only)
    exotic: jax.Array          # [16] bool valid and not SM-like
    higgs_like: jax.Array      # [16] bool SM-like scalar
    term_invariant: jax.Array  # [16] bool gauge-invariant term (False for unused slots)
    invalid_term: jax.Array    # [16] bool declared term that is not gauge invariant
    breaking_vev: jax.Array    # [16] bool VEV scalar without a neutral colour-singlet component
    mass_code: jax.Array       # [16, 3, 4] int32 mass code per (field, component, generation)
    mass_gev: jax.Array        # [16, 3, 4] float32 GeV (CODE_GEV of mass_code)


@jax.named_scope("spectrum_fields")
def spectrum(record: TheoryRecord) -> Spectrum:
    """Spectrum of one record (jittable; vmap for a batch)."""
    info = slot_info(record)
    G, rep, chg, conj_rep = record.gauge, info["rep"], info["chg"], info["conj"]
    fv = record.field_valid

    # First U1 / SU2 / SU3 factors.
    has_y = G[0] == 0
    has2, has3 = jnp.any(G == 1), jnp.any(G == 2)
    k2, k3 = jnp.argmax(G == 1), jnp.argmax(G == 2)
    n_y = jnp.where(has_y, chg[:, 0], 0)                        # [16]
    kk = jnp.arange(V.MAX_GAUGE)
    first2 = has2 & (kk == k2)                                  # [4] one-hot of the first SU2 / SU3
    first3 = has3 & (kk == k3)
    pick = lambda x, onehot: jnp.sum(jnp.where(onehot[None, :], x, 0), axis=1)   # noqa: E731
    rep2, rep3 = pick(rep, first2), pick(rep, first3)
    coloured = fv & (rep3 != 0)

    c3 = jnp.arange(3)
    comp_valid = fv[:, None] & (c3[None, :] < lookup(_T3_COUNT, rep2)[:, None])
    t3x2 = jnp.stack([lookup(_T3X2[:, c], rep2) for c in range(3)], axis=1)     # [16, 3]
    q6 = jnp.where(comp_valid, 3 * t3x2 + n_y[:, None], 0)
    gen_valid = jnp.arange(V.MAX_GEN)[None, :] < record.generations[:, None]
    charged = comp_valid & ((q6 != 0) | coloured[:, None])

    # SM-like.
    chir = record.chirality
    conj2, conj3 = pick(conj_rep, first2), pick(conj_rep, first3)
    own = jnp.stack([chir, n_y, rep2, rep3], axis=1)           # [16, 4]
    bar = jnp.stack([-chir, -n_y, conj2, conj3], axis=1)
    pat = jnp.asarray(SM_FERMIONS)
    ferm_match = (jnp.any(jnp.all(own[:, None, :] == pat[None], axis=2), axis=1)
                  | jnp.any(jnp.all(bar[:, None, :] == pat[None], axis=2), axis=1))
    higgs = jnp.asarray(SM_HIGGS)
    scal_match = ~record.is_real_scalar & (jnp.all(own[:, 1:] == higgs, axis=1)
                                           | jnp.all(bar[:, 1:] == higgs, axis=1))
    sm_group = has_y & has2 & has3
    sm_like = fv & sm_group & jnp.where(record.is_fermion, ferm_match, scal_match)
    exotic = fv & ~sm_like
    higgs_like = sm_like & ~record.is_fermion

    neutral = jnp.any(comp_valid & (q6 == 0), axis=1)
    breaking_vev = record.has_vev & (coloured | ~neutral)

    return _terms_and_masses(record, info, q6, comp_valid, gen_valid, coloured, charged, sm_like, exotic,
                             higgs_like, breaking_vev)


@jax.named_scope("spectrum_terms")
def _terms_and_masses(record, info, q6, comp_valid, gen_valid, coloured, charged, sm_like, exotic,
                      higgs_like, breaking_vev) -> "Spectrum":
    """Second half of `spectrum`: term invariance and the masses, from the per-field results."""
    grp, chg, rep = info["grp"], info["chg"], info["rep"]
    # Per-field data the terms need, bit-packed in 3 int32 words per field so that the three
    # roles of every term are ONE small row gather [48, 3] (gathers dominate on XLA:CPU):
    #   w0: chg_k + 32 (6 bits × 4) | comp_valid (3 bits, 24..26) | vev_ok 27 | higgs 28 | majorana_ok 29
    #   w1: rep_k (3 bits × 4) | generations (12..14)       w2: q6_c + 32 (6 bits × 3)
    vev_ok = record.has_vev & ~breaking_vev
    # MAJORANA ψψ: zero U(1) charges and a real rep of the whole group (every factor
    # self-conjugate, an even number of pseudo-real ones).
    majorana_field = (jnp.all((chg == 0) & info["selfconj"], axis=1)
                      & (jnp.sum(info["pseudo"].astype(jnp.int32), axis=1) % 2 == 0))
    k4, c3 = jnp.arange(4), jnp.arange(3)
    w0 = (jnp.sum((chg + 32) << (6 * k4), axis=1) + jnp.sum(comp_valid.astype(jnp.int32) << (24 + c3), axis=1)
          + (vev_ok.astype(jnp.int32) << 27) + (higgs_like.astype(jnp.int32) << 28)
          + (majorana_field.astype(jnp.int32) << 29))
    w1 = jnp.sum(rep << (3 * k4), axis=1) + (record.generations << 12)
    w2 = jnp.sum((q6 + 32) << (6 * c3), axis=1)
    pack = jnp.stack([w0, w1, w2], axis=1)                        # [16, 3]

    kind = record.term_kind                                   # [16]
    refs = jnp.clip(record.term_refs, 0, V.MAX_FIELDS - 1)     # [16, 3]
    is_yuk = kind == YUKAWA
    a_idx = jnp.where(is_yuk, refs[:, 1], refs[:, 0])          # ψ_L (YUKAWA, DIRAC), ψ (MAJORANA), φ (SMASS)
    b_idx = jnp.where(is_yuk, refs[:, 2], jnp.where(kind == DIRAC, refs[:, 1], a_idx))
    s_idx = jnp.where(is_yuk, refs[:, 0], a_idx)
    roles = pack[jnp.concatenate([s_idx, a_idx, b_idx])]       # ONE row gather [48, 3]
    w0, w1, w2 = roles[:, 0:1], roles[:, 1:2], roles[:, 2:3]   # [48, 1]
    chg_r = ((w0 >> (6 * k4)) & 63) - 32                       # [48, 4]
    rep_r = (w1 >> (3 * k4)) & 7
    valid_r = ((w0 >> (24 + c3)) & 1) == 1                      # [48, 3]
    q6_r = ((w2 >> (6 * c3)) & 63) - 32
    flag = lambda bit: ((w0[:, 0] >> bit) & 1) == 1             # noqa: E731  [48]
    gen_r = (w1[:, 0] >> 12) & 7
    chg_s, chg_a, chg_b = chg_r[:16], chg_r[16:32], chg_r[32:]
    bits = jnp.asarray(_TERM_BITS)[((grp[None, :] * _NR + rep_r[:16]) * _NR + rep_r[16:32]) * _NR + rep_r[32:]]
    yuk_phi = jnp.all((chg_s - chg_a + chg_b == 0) & ((bits & 1) == 1), axis=1)
    yuk_phistar = jnp.all((-chg_s - chg_a + chg_b == 0) & ((bits & 2) == 2), axis=1)
    dirac_ok = jnp.all((chg_a == chg_b) & ((bits & 4) == 4), axis=1)
    majorana_ok = flag(29)[16:32]
    inv = jnp.select([is_yuk, kind == DIRAC, kind == MAJORANA],
                     [yuk_phi | yuk_phistar, dirac_ok, majorana_ok], True)
    term_invariant = record.term_valid & inv
    invalid_term = record.term_valid & ~inv

    # Masses.
    midx = record.term_mass_idx                                # [16, 4], -1 unused
    code = jnp.where(midx >= 0, midx + (midx >= CAP_CODE), 0)
    code = jnp.where((is_yuk & flag(28)[:16])[:, None], jnp.minimum(code, CAP_CODE), code)
    yuk_on = is_yuk & flag(27)[:16]
    active = term_invariant & (yuk_on | (kind == DIRAC) | (kind == MAJORANA) | (kind == SMASS))
    gen_lim = jnp.minimum(gen_r[16:32], gen_r[32:])
    gens_ok = jnp.arange(V.MAX_MASSES)[None, :] < gen_lim[:, None]                  # [16, 4]
    qa, qb = q6_r[16:32], q6_r[32:]                                                # [16, 3]
    va, vb = valid_r[16:32], valid_r[32:]
    pair = va[:, :, None] & vb[:, None, :] & (qa[:, :, None] == qb[:, None, :])    # [16, 3, 3]
    comp_a = jnp.where(is_yuk[:, None], jnp.any(pair, axis=2), va)
    comp_b = jnp.where(is_yuk[:, None], jnp.any(pair, axis=1), vb)
    give = jnp.where((active[:, None] & gens_ok), code, 0)                         # [16 t, 4]
    contrib_a = jnp.where(comp_a[:, :, None], give[:, None, :], 0)                  # [16 t, 3, 4]
    contrib_b = jnp.where(comp_b[:, :, None], give[:, None, :], 0)
    # Scatter-max into [16 f, 3, 4] (a scatter, not a [t, f, 3, 4] masked max: XLA would fuse
    # and recompute the whole term computation per element of that 4-d broadcast).
    mass_code = jnp.zeros((V.MAX_FIELDS, 3, V.MAX_GEN), jnp.int32).at[
        jnp.concatenate([a_idx, b_idx])].max(jnp.concatenate([contrib_a, contrib_b]), mode="drop")
    mass_code = jnp.where(comp_valid[:, :, None] & gen_valid[:, None, :], mass_code, 0)

    return Spectrum(
        q6=q6.astype(jnp.int32), comp_valid=comp_valid, gen_valid=gen_valid, coloured=coloured,
        charged=charged, sm_like=sm_like, exotic=exotic, higgs_like=higgs_like,
        term_invariant=term_invariant, invalid_term=invalid_term, breaking_vev=breaking_vev,
        mass_code=mass_code.astype(jnp.int32), mass_gev=jnp.asarray(_CODE_GEV32)[mass_code],
    )


def normalised_slots(record: TheoryRecord) -> tuple[jax.Array, jax.Array]:
    """(slots, conjugate slots) [16, 4] with R fermions rewritten as left-handed conjugates."""
    info = slot_info(record)
    conj = jnp.where(info["is_u1"][None, :], -record.slots, jnp.where(info["is_su"][None, :], info["conj"], 0))
    flip = (record.chirality == -1)[:, None]
    return jnp.where(flip, conj, record.slots), jnp.where(flip, record.slots, conj)


__all__ = ["Spectrum", "spectrum", "normalised_slots", "HIGGS_CAP_GEV", "CAP_CODE", "CODE_GEV",
           "NUM_CODES"]
