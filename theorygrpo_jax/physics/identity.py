"""A theory's physics identity (its "model key") and its class relative to a prompt.

Pure JAX, fixed shapes, jittable and vmappable over records (``in_axes=0``).

Identity
    Two theories are the same physics model when they have the same gauge
    group (the ordered factor list of the GAUGE block) and the same MULTISET
    of fields, where

    - every fermion is written as a left-handed Weyl field: an R field becomes
      its conjugate (U(1) charges negated, SU(N) reps conjugated F<->Fb,
      A2<->A2b, S2<->S2b; 1 and Adj are self-conjugate, and so are SU2's F and
      SU4's A2 as rep labels);
    - generations are copies: gen_3 X is 3 copies of X, and gen_1 X plus
      gen_2 X is 3 copies as well;
    - a complex scalar is defined up to conjugation (φ and φ* are the same
      field): it is stored as the smaller of its code and its conjugate's code;
      a REAL scalar is stored as is (its rep is real, so it is its own
      conjugate anyway). A CPLX scalar is not identified with two REAL ones:
      the language treats them as different fields (VEV, SMASS, REAL-only
      Majorana rules), so the key does too;
    - scalars keep their VEV flag: a VEV changes the symmetry breaking pattern
      and so the physics (the language has no potential from which the VEV
      could be derived);
    - terms, mass and coupling values, and the order of the fields are ignored:
      they select a point in the model's parameter space, not another model.

Field code (int32, one per field descriptor)
    code = (2·kind + vev)·37⁴ + d₀·37³ + d₁·37² + d₂·37 + d₃, where kind is
    0 for a (left-handed) fermion, 1 for a CPLX scalar, 2 for a REAL scalar;
    vev is 1 for a VEV scalar (0 for fermions); d_k is the k-th gauge slot
    after conjugation: n + 18 (0..36) for a U(1) charge n, the rep index in
    ``vocab.REPS`` order (0..7) for an SU(N) slot, 0 for an unused factor. The
    largest code is 6·37⁴ − 1 = 11 244 965 < 2³¹. Codes sort fermions first,
    then CPLX scalars, then REAL ones. `decode_code` inverts it on the host.

ModelKey
    ``gauge`` is the record's gauge ([4], −1 unused); ``codes`` the distinct
    field codes ascending, padded with INT32 max; ``counts`` the copies of each.

Hashes
    `key_hash` is MurmurHash3 (x86, 32-bit) over the 36 uint32 words gauge,
    codes, counts, in uint32 arithmetic (a novelty-table index: hash mod size).
    A 32-bit hash of 1e5 distinct models has n²/2 / 2³² ≈ 1.2 expected
    colliding pairs, so exact deduplication must not rely on it alone:
    `key_hash64` returns two 32-bit MurmurHash3 values with independent seeds
    ([2] uint32, a 64-bit fingerprint): n²/2 / 2⁶⁴ ≈ 2.7e-10 expected colliding
    pairs for 1e5 models (for non-adversarial keys).

Class relative to a prompt (`model_class`)
    The added fields are the multiset difference key − prompt key (with
    multiplicity; when the two gauge groups differ nothing is shared, so
    everything is added). For a from-scratch theory (the prompt key has no
    fields) with ``sm_group`` set and a group that contains U1, SU2 and SU3,
    up to THREE Standard-Model generations are removed from the added
    fermions before the vector-like test. One generation is, as left-handed
    fields on (first U1, first SU2, first SU3) with every other slot trivial:
    Q q_1 (F, F), u^c q_-4 (1, Fb), d^c q_2 (1, Fb), L q_-3 (F, 1), e^c q_6 (1, 1).
    ("contains" rather than "starts with": the language gives the Y, SU2_L and
    colour roles to the FIRST factor of each kind, so U1 U1 SU2 SU3 is an SM
    group with a U(1)'.) The counts `added_fields`, `added_fermions` and the
    flag `adds_sm_charged` are taken BEFORE that removal (they describe the
    multiset difference itself); `sm_generations` says how many were removed.

    Pairing of the remaining added fermions: a complex code c pairs with its
    conjugate c̄ one for one; a fermion in a real rep (all U(1) charges 0, every
    SU(N) rep self-conjugate and an even number of pseudo-real SU2 doublets)
    is its own partner (Majorana mass) and is vector-like alone; a pseudo-real
    one (self-conjugate with an odd number of SU2 doublets) pairs only with
    another copy of itself. `chiral`: something is left unpaired;
    `vector_like`: remaining added fermions exist and all pair up.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.physics import groups
from theorygrpo_jax.physics.record import TheoryRecord, parse_record

F = V.MAX_FIELDS   # 16
K = V.MAX_GAUGE    # 4
BASE = 37          # digits per slot: 37 U(1) charges, 8 reps
SLOTS_SPAN = BASE ** K          # 37⁴ = 1 874 161
SENTINEL = np.int32(np.iinfo(np.int32).max)
KIND_NAMES = ("fermion", "complex", "real")
FERMION, COMPLEX, REAL = 0, 1, 2
_CHARGE0 = 18                    # digit of U(1) charge 0
_U1, _SU2, _SU3 = 0, 1, 2        # group indices (vocab.GROUPS order)
_F = V.REPS.index("F")
_POW = np.array([BASE ** (K - 1 - k) for k in range(K)], np.int32)   # [4] digit weights
_CONJ = np.asarray(groups.CONJ, np.int32)                              # [5, 8]
# One SM generation as left-handed fields: (n_Y, SU2 rep, SU3 rep) on the first U1, SU2, SU3.
SM_GENERATION = ((1, "F", "F"), (-4, "1", "Fb"), (2, "1", "Fb"), (-3, "F", "1"), (6, "1", "1"))
MAX_SM_GENERATIONS = 3


@flax.struct.dataclass
class ModelKey:
    """A theory's physics identity; shapes per example (a batch adds a leading [B])."""

    gauge: jax.Array   # [4] int32 group index (0=U1 .. 4=SU5), -1 unused
    codes: jax.Array   # [16] int32 distinct field codes ascending, SENTINEL (INT32 max) padding
    counts: jax.Array  # [16] int32 copies of each code (generations summed), 0 for padding


@flax.struct.dataclass
class ModelClass:
    """A model relative to its prompt; scalars per example (a batch adds [B])."""

    added_fields: jax.Array     # [] int32 field copies in key − prompt_key (with multiplicity)
    added_fermions: jax.Array   # [] int32 of which fermion copies
    adds_sm_charged: jax.Array  # [] bool an added field is charged under Y, or non-singlet
    #                             under the first SU2 or the first SU3
    sm_generations: jax.Array   # [] int32 SM generations removed before the pairing (0..3)
    vector_like: jax.Array      # [] bool remaining added fermions exist and all pair up
    chiral: jax.Array           # [] bool some remaining added fermion is unpaired


# --------------------------------------------------------------------------
# Codes


def _first_mask(gauge: jax.Array, g: int) -> jax.Array:
    """[4] bool: the position of the FIRST factor of group g (all False if absent)."""
    is_g = gauge == g
    before = jnp.cumsum(is_g.astype(jnp.int32)) - is_g.astype(jnp.int32)
    return is_g & (before == 0)


def _encode(head: jax.Array, digits: jax.Array) -> jax.Array:
    """code from head = 2·kind + vev [...] and digits [..., 4]."""
    return head * SLOTS_SPAN + jnp.sum(digits * jnp.asarray(_POW), axis=-1)


def _digits(codes: jax.Array) -> jax.Array:
    """[..., 4] slot digits of codes [...] (garbage for SENTINEL)."""
    return (codes[..., None] // jnp.asarray(_POW)) % BASE


def _conj_digits(gauge: jax.Array, digits: jax.Array) -> jax.Array:
    """Digits of the conjugate slots: charge n -> -n, rep -> its conjugate; unused stay 0."""
    g = jnp.clip(gauge, 0, None)
    rep_conj = jnp.asarray(_CONJ)[g, jnp.clip(digits, 0, len(V.REPS) - 1)]
    out = jnp.where(gauge == _U1, 2 * _CHARGE0 - digits, rep_conj)
    return jnp.where(gauge >= 0, out, 0)


def model_key(record: TheoryRecord) -> ModelKey:
    """The ModelKey of one theory's record (no batch axis; vmap for a batch)."""
    gauge = record.gauge                                           # [4]
    used = gauge >= 0
    raw = jnp.where(used, jnp.where(gauge == _U1, record.slots + _CHARGE0, record.slots), 0)  # [16, 4]
    conj = _conj_digits(gauge[None, :], raw)
    right = record.is_fermion & (record.chirality < 0)
    digits = jnp.where(right[:, None], conj, raw)                  # fermions as left-handed
    kind = jnp.where(record.is_fermion, FERMION, jnp.where(record.is_real_scalar, REAL, COMPLEX))
    head = 2 * kind + record.has_vev.astype(jnp.int32)
    code = _encode(head, digits)
    code = jnp.where(kind == COMPLEX, jnp.minimum(code, _encode(head, conj)), code)
    return _collect(gauge, code, record.field_valid, record.generations)


def _collect(gauge: jax.Array, code: jax.Array, valid: jax.Array, weight: jax.Array) -> ModelKey:
    """Distinct codes ascending with summed weights, by 16×16 comparisons (no sort)."""
    c = jnp.where(valid, code, SENTINEL)                           # [16]
    w = jnp.where(valid, weight, 0)
    eq = c[:, None] == c[None, :]                                  # [16, 16]
    total = jnp.sum(jnp.where(eq, w[None, :], 0), axis=1)
    earlier = jnp.tril(jnp.ones((F, F), bool), -1)                 # [i, j]: j < i
    first = valid & ~jnp.any(eq & earlier, axis=1)
    rank = jnp.sum(first[None, :] & (c[None, :] < c[:, None]), axis=1)
    slot = first[None, :] & (rank[None, :] == jnp.arange(F)[:, None])   # [k, i]
    codes = jnp.min(jnp.where(slot, c[None, :], SENTINEL), axis=1)
    counts = jnp.sum(jnp.where(slot, total[None, :], 0), axis=1)
    return ModelKey(gauge=gauge.astype(jnp.int32), codes=codes.astype(jnp.int32),
                    counts=counts.astype(jnp.int32))


def fermion_key(key: ModelKey) -> ModelKey:
    """The key with its scalars dropped: the fermion content alone. Fermion codes have head 0,
    so they are the codes below SLOTS_SPAN and come first in the ascending order: masking the
    rest to SENTINEL (count 0) keeps the key canonical without a sort."""
    fermion = key.codes < SLOTS_SPAN
    return ModelKey(gauge=key.gauge, codes=jnp.where(fermion, key.codes, SENTINEL),
                    counts=jnp.where(fermion, key.counts, 0))


def model_key_of_tokens(tokens: jax.Array) -> ModelKey:
    """ModelKey of token ids [L] of a theory or of a prompt prefix (PAD-padded; BOS alone -> empty)."""
    return model_key(parse_record(tokens))


# --------------------------------------------------------------------------
# Hashes


def _rotl(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _murmur3(words: jax.Array, seed: int) -> jax.Array:
    """MurmurHash3_x86_32 of uint32 words [n] (the last axis), little-endian 4-byte blocks."""
    c1, c2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)
    h = jnp.full(words.shape[:-1], np.uint32(seed), jnp.uint32)
    for i in range(words.shape[-1]):
        k = words[..., i] * c1
        k = _rotl(k, 15) * c2
        h = _rotl(h ^ k, 13) * np.uint32(5) + np.uint32(0xE6546B64)
    h = h ^ np.uint32(4 * words.shape[-1])
    h = (h ^ (h >> np.uint32(16))) * np.uint32(0x85EBCA6B)
    h = (h ^ (h >> np.uint32(13))) * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


HASH_SEED, HASH_SEED_HI = 0x9747B28C, 0x2545F491


def _key_words(key: ModelKey) -> jax.Array:
    w = jnp.concatenate([key.gauge, key.codes, key.counts], axis=-1).astype(jnp.int32)   # [36]
    return jax.lax.bitcast_convert_type(w, jnp.uint32)


def key_hash(key: ModelKey) -> jax.Array:
    """[] uint32 MurmurHash3 of (gauge, codes, counts): equal keys hash equal."""
    return _murmur3(_key_words(key), HASH_SEED)


def key_hash64(key: ModelKey) -> jax.Array:
    """[2] uint32 (hi, lo) 64-bit fingerprint: lo = key_hash, hi with an independent seed."""
    words = _key_words(key)
    return jnp.stack([_murmur3(words, HASH_SEED_HI), _murmur3(words, HASH_SEED)], axis=-1)


# --------------------------------------------------------------------------
# Class relative to a prompt


def _count_of(codes: jax.Array, counts: jax.Array, query: jax.Array) -> jax.Array:
    """[...] counts[codes == query] (0 when absent), for query [...] against codes [16]."""
    hit = query[..., None] == codes
    return jnp.sum(jnp.where(hit, counts, 0), axis=-1)


def _sm_codes(gauge: jax.Array) -> jax.Array:
    """[5] codes of one SM generation's left-handed fermions for this gauge (extras trivial)."""
    fy, f2, f3 = (_first_mask(gauge, g) for g in (_U1, _SU2, _SU3))
    trivial = jnp.where(gauge == _U1, _CHARGE0, 0)                 # [4] charge 0 / rep "1"
    rows = []
    for y, r2, r3 in SM_GENERATION:
        d = jnp.where(fy, y + _CHARGE0, jnp.where(f2, V.REPS.index(r2),
                                                  jnp.where(f3, V.REPS.index(r3), trivial)))
        rows.append(_encode(jnp.int32(2 * FERMION), d))
    return jnp.stack(rows)


def model_class(key: ModelKey, prompt_key: ModelKey, sm_group) -> ModelClass:
    """How `key` extends `prompt_key` (one example; vmap for a batch). `sm_group` (bool, may
    be traced): remove up to 3 SM generations when the prompt has no fields and the group
    contains U1, SU2, SU3 (see the module docstring)."""
    gauge = key.gauge
    same = jnp.all(gauge == prompt_key.gauge)
    valid = key.codes != SENTINEL
    in_prompt = _count_of(prompt_key.codes, jnp.where(same, prompt_key.counts, 0), key.codes)
    added = jnp.where(valid, jnp.maximum(key.counts - in_prompt, 0), 0)        # [16]
    head = key.codes // SLOTS_SPAN
    fermion = valid & (head == 2 * FERMION)
    added_f = jnp.where(fermion, added, 0)

    digits = _digits(key.codes)                                                # [16, 4]
    fy, f2, f3 = (_first_mask(gauge, g) for g in (_U1, _SU2, _SU3))
    charged = jnp.any((fy & (digits != _CHARGE0)) | ((f2 | f3) & (digits != 0)), axis=1)
    adds_sm_charged = jnp.any((added > 0) & charged)

    has_sm = jnp.any(fy) & jnp.any(f2) & jnp.any(f3)
    prompt_empty = jnp.sum(prompt_key.counts) == 0
    remove = jnp.asarray(sm_group, bool) & prompt_empty & has_sm
    sm = _sm_codes(gauge)                                                      # [5]
    avail = _count_of(key.codes, added_f, sm)                                  # [5]
    n_gen = jnp.where(remove, jnp.minimum(jnp.min(avail), MAX_SM_GENERATIONS), 0)
    is_sm = jnp.any(key.codes[:, None] == sm[None, :], axis=1)
    rest = added_f - jnp.where(is_sm, n_gen, 0)                                # [16]

    conj = jnp.where(valid, _encode(head, _conj_digits(gauge[None, :], digits)), SENTINEL)  # [16]
    self_conj = valid & (conj == key.codes)
    pseudo = self_conj & (jnp.sum((gauge[None, :] == _SU2) & (digits == _F), axis=1) % 2 == 1)
    partners = _count_of(key.codes, rest, conj)
    left = jnp.where(self_conj, jnp.where(pseudo, rest % 2, 0), jnp.maximum(rest - partners, 0))
    chiral = jnp.sum(left) > 0
    return ModelClass(
        added_fields=jnp.sum(added).astype(jnp.int32),
        added_fermions=jnp.sum(added_f).astype(jnp.int32),
        adds_sm_charged=adds_sm_charged,
        sm_generations=n_gen.astype(jnp.int32),
        vector_like=(jnp.sum(rest) > 0) & ~chiral,
        chiral=chiral,
    )


# --------------------------------------------------------------------------
# Host side


def gauge_names(gauge) -> tuple[str, ...]:
    """Group names of a gauge row ([4] ints, -1 unused) or of a sequence of names."""
    out = []
    for g in gauge:
        if isinstance(g, str):
            if g not in V.GROUP_N:
                raise ValueError(f"unknown gauge factor {g!r}; expected one of {V.GROUPS}")
            out.append(g)
        elif int(g) >= 0:
            if int(g) >= len(V.GROUPS):
                raise ValueError(f"gauge index {int(g)} out of range 0..{len(V.GROUPS) - 1}")
            out.append(V.GROUPS[int(g)])
    return tuple(out)


def decode_code(code: int, gauge) -> tuple[str, bool, tuple]:
    """(kind, vev, slots) of a field code: kind in KIND_NAMES, slots per gauge factor (int
    charge n for U1, rep name for SU(N)); fermions are left-handed. ValueError if invalid."""
    names = gauge_names(gauge)
    code = int(code)
    head, rest = divmod(code, SLOTS_SPAN)
    kind, vev = divmod(head, 2)
    if code < 0 or kind >= len(KIND_NAMES) or (kind == FERMION and vev):
        raise ValueError(f"not a field code: {code}")
    digits = [(rest // int(p)) % BASE for p in _POW]
    slots = []
    for k, d in enumerate(digits):
        if k >= len(names):
            if d:
                raise ValueError(f"field code {code} uses slot {k} beyond the gauge {names}")
            continue
        if names[k] == "U1":
            slots.append(d - _CHARGE0)
        elif d < len(V.REPS) and V.REPS[d] in V.ALLOWED_REPS[names[k]]:
            slots.append(V.REPS[d])
        else:
            raise ValueError(f"field code {code}: digit {d} is no {names[k]} rep")
    return KIND_NAMES[kind], bool(vev), tuple(slots)


def key_items(key: ModelKey) -> tuple[tuple[int, ...], list[tuple[int, int]]]:
    """(gauge row, [(code, count), ...]) of ONE ModelKey on the host."""
    gauge = tuple(int(g) for g in np.asarray(key.gauge))
    items = [(int(c), int(n)) for c, n in zip(np.asarray(key.codes), np.asarray(key.counts))
             if int(c) != int(SENTINEL)]
    return gauge, items


__all__ = ["ModelKey", "ModelClass", "model_key", "model_key_of_tokens", "model_class", "key_hash",
           "key_hash64", "decode_code", "key_items", "gauge_names", "SENTINEL", "KIND_NAMES",
           "SM_GENERATION"]
