"""Plain-Python twin of `physics.identity`, written from token strings (no JAX, no TheoryRecord).

It shares only `grammar.vocab` (token names and the REPS order the documented
field code uses); conjugates, reality, the SM generation, the code and the
hash are written out again here. The definitions are those of the
`physics.identity` module docstring; the property tests compare the two.

A field descriptor is ``(kind, vev, slots)``: kind "fermion" (left-handed
Weyl), "complex" or "real" scalar; vev a bool (False for fermions); slots a
tuple with one entry per gauge factor, the int charge n (units of 1/6) of a
U1 slot or the rep name of an SU(N) slot.
"""

from __future__ import annotations

from collections import Counter

from theorygrpo_jax.grammar import vocab as V

INT32_MAX = 2**31 - 1
MAX_SLOTS = 4
_KINDS = ("fermion", "complex", "real")
_SELF_CONJUGATE = {("SU2", "F"), ("SU4", "A2")}
_BAR = {"1": "1", "Adj": "Adj", "F": "Fb", "Fb": "F", "A2": "A2b", "A2b": "A2", "S2": "S2b", "S2b": "S2"}
# One SM generation, left-handed: (n_Y, SU2 rep, SU3 rep); R fields conjugated by hand:
# u_R (q_4, 1, F) -> u^c (q_-4, 1, Fb); d_R (q_-2, 1, F) -> d^c (q_2, 1, Fb); e_R q_-6 -> e^c q_6.
_SM_GEN = [(1, "F", "F"), (-4, "1", "Fb"), (2, "1", "Fb"), (-3, "F", "1"), (6, "1", "1")]

Descriptor = tuple  # (kind, vev, slots)


def _conj_slot(group: str, slot):
    if group == "U1":
        return -slot
    return slot if (group, slot) in _SELF_CONJUGATE else _BAR[slot]


def conjugate(gauge: tuple[str, ...], slots: tuple) -> tuple:
    return tuple(_conj_slot(g, s) for g, s in zip(gauge, slots))


def encode(gauge: tuple[str, ...], desc: Descriptor) -> int:
    """The documented int32 field code of a descriptor (see `physics.identity`)."""
    kind, vev, slots = desc
    code = 2 * _KINDS.index(kind) + int(vev)
    for k in range(MAX_SLOTS):
        if k < len(gauge):
            digit = slots[k] + 18 if gauge[k] == "U1" else V.REPS.index(slots[k])
        else:
            digit = 0
        code = code * 37 + digit
    return code


def _fields(tokens: list[str]) -> tuple[tuple[str, ...], list[tuple]]:
    """Gauge names and the complete declared fields of a theory or of a prompt prefix.

    A field is (head, a, b, slots): FERMION chirality gen_k or SCALAR CPLX|REAL VEV|NOVEV.
    """
    toks = [t for t in tokens if t not in ("PAD", "BOS")]
    gauge: list[str] = []
    i = 0
    if i < len(toks) and toks[i] == "GAUGE":
        i += 1
        while i < len(toks) and toks[i] in V.GROUP_N:
            gauge.append(toks[i])
            i += 1
    i += 2  # END_GAUGE FIELDS
    fields = []
    width = 3 + len(gauge) + 1
    while i + width <= len(toks) and toks[i] in ("FERMION", "SCALAR"):
        head, a, b = toks[i:i + 3]
        raw = toks[i + 3:i + 3 + len(gauge)]
        slots = tuple(int(s[2:]) if g == "U1" else s for g, s in zip(gauge, raw))
        fields.append((head, a, b, slots))
        i += width
    return tuple(gauge), fields


def _multiset(tokens: list[str]) -> tuple[tuple[str, ...], Counter]:
    gauge, fields = _fields(tokens)
    out: Counter = Counter()
    for head, a, b, slots in fields:
        if head == "FERMION":
            gen = int(b[len("gen_"):])
            lh = slots if a == "L" else conjugate(gauge, slots)
            out[("fermion", False, lh)] += gen
        elif a == "REAL":
            out[("real", b == "VEV", slots)] += 1
        else:
            d = ("complex", b == "VEV", slots)
            dc = ("complex", b == "VEV", conjugate(gauge, slots))
            out[min(d, dc, key=lambda x: encode(gauge, x))] += 1
    return gauge, out


def reference_model_key(tokens: list[str]) -> tuple[tuple[str, ...], tuple[tuple[Descriptor, int], ...]]:
    """(gauge names, ((descriptor, count), ...) in ascending code order) of token strings."""
    gauge, ms = _multiset(tokens)
    return gauge, tuple(sorted(ms.items(), key=lambda item: encode(gauge, item[0])))


def reference_fermion_key(ref_key):
    """A reference key without its scalars: (gauge names, its fermions' (descriptor, count)
    items, in the same order)."""
    gauge, items = ref_key
    return gauge, tuple(item for item in items if item[0][0] == "fermion")


def reference_key_arrays(ref_key) -> tuple[list[int], list[int], list[int]]:
    """A reference key as the JAX ModelKey's rows: gauge [4] (-1 unused), codes [16]
    (INT32_MAX padding), counts [16]."""
    gauge, items = ref_key
    g = [V.GROUPS.index(x) for x in gauge] + [-1] * (MAX_SLOTS - len(gauge))
    codes = [encode(gauge, d) for d, _ in items]
    counts = [n for _, n in items]
    pad = V.MAX_FIELDS - len(codes)
    return g, codes + [INT32_MAX] * pad, counts + [0] * pad


def _is_real(gauge, slots) -> str:
    """'real', 'pseudo' or 'complex' for a left-handed fermion's slots."""
    if conjugate(gauge, slots) != slots:
        return "complex"
    doublets = sum(1 for g, s in zip(gauge, slots) if g == "SU2" and s == "F")
    return "pseudo" if doublets % 2 else "real"


def _sm_charged(gauge, slots) -> bool:
    for group, trivial in (("U1", 0), ("SU2", "1"), ("SU3", "1")):
        if group in gauge and slots[gauge.index(group)] != trivial:
            return True
    return False


def reference_model_class(tokens: list[str], prompt_tokens: list[str], sm_group: bool = True) -> dict:
    """The class of a theory relative to its prompt (fields as `physics.identity.ModelClass`)."""
    gauge, key = _multiset(tokens)
    pgauge, prompt = _multiset(prompt_tokens)
    if pgauge != gauge:
        prompt_shared: Counter = Counter()
    else:
        prompt_shared = prompt
    added = Counter({d: n - prompt_shared[d] for d, n in key.items() if n > prompt_shared[d]})
    fermions = Counter({d: n for d, n in added.items() if d[0] == "fermion"})

    n_gen = 0
    if sm_group and not prompt and all(g in gauge for g in ("U1", "SU2", "SU3")):
        sm = []
        for y, r2, r3 in _SM_GEN:
            slots = []
            seen = set()
            for g in gauge:
                if g in ("U1", "SU2", "SU3") and g not in seen:
                    slots.append({"U1": y, "SU2": r2, "SU3": r3}[g])
                    seen.add(g)
                else:
                    slots.append(0 if g == "U1" else "1")
            sm.append(("fermion", False, tuple(slots)))
        n_gen = min([fermions[d] for d in sm] + [3])
        for d in sm:
            fermions[d] -= n_gen
    fermions = Counter({d: n for d, n in fermions.items() if n > 0})

    unpaired = 0
    for d, n in fermions.items():
        kind = _is_real(gauge, d[2])
        if kind == "pseudo":
            unpaired += n % 2
        elif kind == "complex":
            unpaired += max(0, n - fermions[("fermion", False, conjugate(gauge, d[2]))])
    return {
        "added_fields": sum(added.values()),
        "added_fermions": sum(n for d, n in added.items() if d[0] == "fermion"),
        "adds_sm_charged": any(_sm_charged(gauge, d[2]) for d in added),
        "sm_generations": n_gen,
        "vector_like": bool(fermions) and unpaired == 0,
        "chiral": unpaired > 0,
    }


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF


def murmur3_32(words: list[int], seed: int) -> int:
    """MurmurHash3_x86_32 of 32-bit words (each taken mod 2^32, as little-endian blocks)."""
    h = seed
    for w in words:
        k = (w & 0xFFFFFFFF) * 0xCC9E2D51 & 0xFFFFFFFF
        k = _rotl(k, 15) * 0x1B873593 & 0xFFFFFFFF
        h = (_rotl(h ^ k, 13) * 5 + 0xE6546B64) & 0xFFFFFFFF
    h ^= 4 * len(words)
    h = (h ^ (h >> 16)) * 0x85EBCA6B & 0xFFFFFFFF
    h = (h ^ (h >> 13)) * 0xC2B2AE35 & 0xFFFFFFFF
    return h ^ (h >> 16)


def reference_key_hash(ref_key, seed: int = 0x9747B28C) -> int:
    """murmur3_32 over the key's rows (gauge, codes, counts), as `identity.key_hash`."""
    g, codes, counts = reference_key_arrays(ref_key)
    return murmur3_32(g + codes + counts, seed)
