"""Fixed-shape record of one theory, parsed from token ids by a pure jittable function.

`parse_record(tokens)` takes the token ids [L] of ONE grammar-valid theory
(BOS .. EOS, BOS optional; whatever follows EOS is never read) and returns a
`TheoryRecord` of fixed shapes; batch it with
``jax.vmap(parse_record, in_axes=0)``. It relies on the grammar (it does not
validate): every field has exactly 3 header tokens before its slots, every
term has its refs right after its keyword, then its masses or coupling.

No scan, cumsum, argmax or even a sum over the L tokens: the rigid gauge and
field layout and 17 pointer jumps over the terms (gathers of a few tokens).
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from theorygrpo_jax.grammar import vocab as V

F = V.MAX_FIELDS   # 16
T = V.MAX_TERMS    # 16
K = V.MAX_GAUGE    # 4
NM = V.MAX_MASSES  # 4

# term_kind codes (order of vocab.TERM_WORDS)
YUKAWA, DIRAC, MAJORANA, SMASS, QUARTIC = range(5)
N_REFS = np.array([3, 2, 1, 1, 1], np.int32)  # refs per term kind

_TERM_WINDOW = 1 + 3 + NM + 1   # keyword, refs, masses, END: the longest term (YUKAWA)
_FIELD_WINDOW = 3 + K           # FERMION L gen_3 | SCALAR CPLX VEV, then up to 4 slots
_MASS_GEV32 = np.asarray(V.MASS_GEV, np.float32)
_COUPLING32 = np.asarray(V.COUPLING_VALUE, np.float32)


@flax.struct.dataclass
class TheoryRecord:
    """One theory; shapes below are per example (a batch adds a leading [B])."""

    gauge: jax.Array          # [4] int32 group index (0=U1, 1=SU2 .. 4=SU5), -1 unused
    n_gauge: jax.Array        # [] int32 number of gauge factors (1..4)
    field_valid: jax.Array    # [16] bool declared field
    is_fermion: jax.Array     # [16] bool
    chirality: jax.Array      # [16] int32 +1 L, -1 R, 0 scalar / unused
    generations: jax.Array    # [16] int32 copies (scalars 1, unused 0)
    is_real_scalar: jax.Array  # [16] bool REAL scalar
    has_vev: jax.Array        # [16] bool scalar with VEV
    slots: jax.Array          # [16, 4] int32 per gauge factor: U1 charge n (units of 1/6) or SU(N)
    #                           rep index (vocab.REPS order); 0 for unused factors / fields
    n_fields: jax.Array       # [] int32
    term_valid: jax.Array     # [16] bool declared term
    term_kind: jax.Array      # [16] int32 0 YUKAWA, 1 DIRAC, 2 MAJORANA, 3 SMASS, 4 QUARTIC, -1 unused
    term_refs: jax.Array      # [16, 3] int32 0-based field indices in written order, -1 unused
    term_mass_idx: jax.Array  # [16, 4] int32 index into vocab.MASSES of the i-th mass token
    #                           (generation i), -1 unused; ascending index = ascending mass
    term_masses: jax.Array    # [16, 4] float32 GeV of the i-th mass token, 0 unused
    n_masses: jax.Array       # [16] int32 number of mass tokens of the term
    coupling: jax.Array       # [16] float32 QUARTIC coupling value, 0 otherwise
    n_terms: jax.Array        # [] int32
    length: jax.Array         # [] int32 tokens BOS..EOS inclusive


def lookup(table: np.ndarray, idx: jax.Array) -> jax.Array:
    """table[idx] for a SMALL constant 1-d table, as a chain of selects (out-of-range -> 0).

    On XLA:CPU a batched gather costs ~5-10 ns per element; a handful of fused
    compare-and-selects is several times cheaper.
    """
    out = jnp.zeros(idx.shape, jnp.asarray(table).dtype)
    for j, v in enumerate(np.asarray(table).tolist()):
        if v:
            out = jnp.where(idx == j, v, out)
    return out


def _in(tok: jax.Array, span: tuple[int, int]) -> jax.Array:
    return (tok >= span[0]) & (tok <= span[1])


@jax.named_scope("parse_record")
def parse_record(tokens: jax.Array) -> TheoryRecord:
    """TheoryRecord of the token ids [L] of one grammar-valid theory (jittable, no batch axis).

    `tokens` is BOS .. EOS (BOS may be omitted; `length` counts it anyway),
    then anything (PAD from the sampler). The layout is rigid except for the terms: with k
    gauge factors after GAUGE at position g, field i starts at
    g + k + 3 + i·(k + 4), so gauge and fields are single gathers (a field
    block ends where a head is not FERMION/SCALAR). Terms have 4..9 tokens;
    their starts are found by 16 unrolled pointer jumps (read a 9-token
    window, skip past its END), each a [9]-gather; the jump that finds no
    term keyword sits on END_TERMS, which gives the length. Nothing touches
    all L tokens: a cumsum or argmax over L costs more on XLA:CPU than the
    whole rest of the parse.
    """
    tok = jnp.asarray(tokens, jnp.int32)
    L = tok.shape[0]

    def gather(idx):
        return tok[jnp.clip(idx, 0, L - 1)]

    g0 = (tok[0] == V.BOS).astype(jnp.int32)              # position of GAUGE
    kk = jnp.arange(K, dtype=jnp.int32)
    gw = gather(g0 + 1 + kk)                                # up to 4 factors, then END_GAUGE
    g_valid = jnp.cumprod(_in(gw, V.GROUP_SPAN).astype(jnp.int32)).astype(bool)
    n_gauge = jnp.sum(g_valid.astype(jnp.int32))
    gauge = jnp.where(g_valid, gw - V.GROUP_SPAN[0], -1)

    # Fields: [16, 7] windows = FERMION/SCALAR, L/R | CPLX/REAL, gen_k | VEV/NOVEV, slots...
    stride = n_gauge + 4
    first_field = g0 + n_gauge + 3
    ff = jnp.arange(F, dtype=jnp.int32)
    fw = gather(first_field + ff[:, None] * stride + jnp.arange(_FIELD_WINDOW, dtype=jnp.int32)[None, :])
    head = (fw[:, 0] == V.TOKEN_ID["FERMION"]) | (fw[:, 0] == V.TOKEN_ID["SCALAR"])
    field_valid = jnp.cumprod(head.astype(jnp.int32)).astype(bool)   # fields end at END_FIELDS
    n_fields = jnp.sum(field_valid.astype(jnp.int32))
    is_fermion = field_valid & (fw[:, 0] == V.TOKEN_ID["FERMION"])
    is_scalar = field_valid & ~is_fermion
    chirality = jnp.where(is_fermion, jnp.where(fw[:, 1] == V.TOKEN_ID["L"], 1, -1), 0)
    generations = jnp.where(is_fermion, fw[:, 2] - V.GEN_SPAN[0] + 1, is_scalar.astype(jnp.int32))
    is_real_scalar = is_scalar & (fw[:, 1] == V.TOKEN_ID["REAL"])
    has_vev = is_scalar & (fw[:, 2] == V.TOKEN_ID["VEV"])
    st = fw[:, 3:]                                           # [16, 4]
    slot_valid = field_valid[:, None] & (kk[None, :] < n_gauge)
    slot_val = jnp.where(_in(st, V.CHARGE_SPAN), st - V.CHARGE_SPAN[0] - 18, st - V.REP_SPAN[0])
    slots = jnp.where(slot_valid, slot_val, 0)

    # Terms: pointer jumps from TERMS + 1 (= first field + n_fields·stride + 2).
    w = jnp.arange(_TERM_WINDOW, dtype=jnp.int32)
    start = first_field + n_fields * stride + 2
    alive = jnp.bool_(True)
    windows, valids = [], []
    for _ in range(T + 1):                                   # the 17th window only finds END_TERMS
        win = gather(start + w)                              # [9]
        alive = alive & _in(win[0], V.TERM_SPAN)
        windows.append(win)
        valids.append(alive)
        start = jnp.where(alive, start + jnp.min(jnp.where(win == V.TOKEN_ID["END"], w, _TERM_WINDOW)) + 1,
                          start)
    windows, valids = windows[:T], valids[:T]
    length = start + 3 - g0                                  # start = END_TERMS; BOS .. EOS inclusive
    tw = jnp.stack(windows)                                  # [16, 9]
    term_valid = jnp.stack(valids)                           # [16]
    term_kind = jnp.where(term_valid, tw[:, 0] - V.TERM_SPAN[0], -1)
    n_refs = jnp.where(term_valid, lookup(N_REFS, term_kind), 0)
    j3 = jnp.arange(3)[None, :]
    term_refs = jnp.where(j3 < n_refs[:, None], tw[:, 1:4] - V.REF_SPAN[0], -1)
    # Mass i of a term is window entry 1 + n_refs + i; masses end at END.
    mi = jnp.arange(NM)[None, :]
    mcol = jnp.clip(1 + n_refs[:, None] + mi, 0, _TERM_WINDOW - 1)
    mtok = jnp.take_along_axis(tw, mcol, axis=1)                 # [16, 4]
    is_mass = _in(mtok, V.MASS_SPAN) & term_valid[:, None]
    is_mass = jnp.cumprod(is_mass.astype(jnp.int32), axis=1).astype(bool)
    term_mass_idx = jnp.where(is_mass, mtok - V.MASS_SPAN[0], -1)
    term_masses = jnp.where(is_mass, jnp.asarray(_MASS_GEV32)[jnp.clip(term_mass_idx, 0)], 0.0)
    n_masses = jnp.sum(is_mass.astype(jnp.int32), axis=1)
    ctok = mtok[:, 0]
    coupling = jnp.where(term_valid & _in(ctok, V.COUPLING_SPAN),
                         jnp.asarray(_COUPLING32)[jnp.clip(ctok - V.COUPLING_SPAN[0], 0,
                                                           len(V.COUPLINGS) - 1)], 0.0)

    return TheoryRecord(
        gauge=gauge.astype(jnp.int32), n_gauge=n_gauge,
        field_valid=field_valid, is_fermion=is_fermion, chirality=chirality.astype(jnp.int32),
        generations=generations.astype(jnp.int32), is_real_scalar=is_real_scalar, has_vev=has_vev,
        slots=slots.astype(jnp.int32), n_fields=n_fields,
        term_valid=term_valid, term_kind=term_kind.astype(jnp.int32),
        term_refs=term_refs.astype(jnp.int32), term_mass_idx=term_mass_idx.astype(jnp.int32),
        term_masses=term_masses, n_masses=n_masses, coupling=coupling,
        n_terms=jnp.sum(term_valid.astype(jnp.int32)), length=length,
    )


def parse_batch(tokens: jax.Array) -> TheoryRecord:
    """vmap of parse_record over a batch [B, L] (not jitted: jit the caller)."""
    return jax.vmap(parse_record, in_axes=0)(tokens)


def tokens_to_ids(theories: list[list[str]], length: int | None = None) -> np.ndarray:
    """[B, L] int32 ids of token-string theories, PAD-padded to `length` (default: longest)."""
    L = length or max(len(t) for t in theories)
    out = np.full((len(theories), L), V.PAD, np.int32)
    for b, t in enumerate(theories):
        if len(t) > L:
            raise ValueError(f"theory {b} has {len(t)} tokens, more than {L}")
        out[b, : len(t)] = V.token_ids(t)
    return out
