"""Pretraining corpus: textbook theories and a synthetic, grammar-valid corpus.

`textbook_theories()` loads the hand-written models packaged in
`theorygrpo_jax/data/theories/*.theory` (`resources.textbook_theories`; in a checkout
also `examples/theories/`); the counter-examples of `anomalous/` are not loaded.

`synthetic_theories(n, seed, max_len)` draws `n` theories with one
`random.Random(seed)` stream (deterministic given the seed; independent of
hash seeds and of numpy). Each theory is built as follows.

1. Base (weights in `BASE_WEIGHTS`), every one anomaly free by construction:
   - ``sm``: U(1)_Y x SU(2)_L x SU(3)_C, optionally with one extra ("dark")
     factor SU2/SU3/SU4/SU5 under which the SM is a singlet; 1-4 generations
     (3 most often), optional nu_R (Dirac Yukawa written M0, sub-eV, or a
     type-I MAJORANA mass 1-50 TeV), the Higgs doublet, SM Yukawas with the
     textbook mass tokens (sometimes shifted by one token), a 4th generation
     at 100-500 GeV (below the 617 GeV Higgs cap), Higgs SMASS / QUARTIC.
   - ``sm_u1prime``: U1 U1 SU2 SU3 with a second U(1)' whose charges are
     n' = a n_Y + b n_{B-L} for small integers (a, b) with all |n'| <= 18 (B-L
     in units of 1/6: quarks 2, leptons -6). Every such U(1)' is anomaly free
     with one nu_R per generation (included whenever b != 0); (a, b) = (0, 0)
     is a dark U(1)' under which the SM is neutral. The Higgs has n' = 3a, so
     the SM Yukawas stay invariant. Optional U(1)'-breaking scalar (Y = 0,
     SU(2)xSU(3) singlet, VEV, SMASS 1-50 TeV).
   - ``2hdm``: the ``sm`` base plus a second (CPLX, q_3, F, 1) doublet, VEV or
     inert, each SM Yukawa through either doublet (types I/II/X/Y), SMASS.
   - ``su5``: SU(5) (optionally with one factor before it) with 1-4 x (5b + 10),
     sometimes written as (5_R + 10_L) with the Yukawa 5_H 10 5, the adjoint
     24 (REAL VEV) and the 5_H.
   - ``random``: a random gauge group of 1-4 factors in canonical order (at
     most two U1); matter comes from the steps below.
2. Anomaly-free chiral blocks on factors whose fields are neutral and
   colourless under the spec's charge rule (SU4/SU5, a second SU2/SU3, a
   second U1; other slots trivial): SU5 g x (5b + 10); SU4 A2 or Adj; SU3
   S2 + 7 x 3b or Adj; SU2 an even number of doublets or a triplet; U(1) the
   five Weyl charges (1, 5, -7, -8, 9) (or twice them).
   With probability EXTRA_GENERATION_P an SM base also gets a whole extra generation
   (sequential or mirror) as new gen_1 fields with Yukawas to the Higgs (`_add_extra_generation`).
3. Vector-like pairs: an L and an R fermion with identical quantum numbers
   (anomaly free by construction) - an SM-like template (Q, u, d, L, e and
   exotic ones such as a Y = -3/2 doublet or Y = 0, 1 SU(2) triplets) or random allowed
   quantum numbers - with 1-3 generations and a DIRAC mass >= 100 GeV per
   generation (coloured pairs mostly >= 1 TeV; neutral pairs anything).
4. Extra scalars: REAL singlets or real adjoints, complex fields of random
   quantum numbers (NOVEV unless they have a neutral colour-singlet
   component), dark Higgses (SM-neutral, charged under an extra factor); every
   charged scalar gets a SMASS >= 100 GeV; optional QUARTIC.
5. Extra gauge-invariant terms: YUKAWAs through VEV scalars that are not
   EM/colour breaking, found by enumerating (scalar, L, R) triples and checking
   invariance exactly (U(1) charges with phi or phi*, `groups.contains_singlet`
   for every SU(N)); tokens <= M5e2 through an SM-like Higgs (617 GeV cap);
   MAJORANA masses for fields in a real representation with zero U(1) charges.
   Extra terms can only raise masses, so they never spoil success.

Every addition is made only if the theory stays within `max_len` tokens, 16
fields and 16 terms (optional base terms are dropped first when a base is too
long; a base that still does not fit is redrawn). Theories are rendered in
canonical order (fields in construction order; terms grouped YUKAWA, DIRAC,
MAJORANA, SMASS, QUARTIC) and every one is checked with
`recognizer.recognise(tokens, max_len)`; an exact duplicate of an earlier
theory is redrawn (a few times, then kept).

Imperfect theories: a fraction `imperfect_fraction` (default 0.1) gets exactly
one deliberate defect so that the policy also sees near misses: a lone chiral
fermion (anomalous), a charged vector-like pair lighter than 100 GeV or with
no mass term (light exotic), a YUKAWA/DIRAC that is not gauge invariant, or a
VEV on a scalar with no neutral colour-singlet component (EM/colour breaking).

`dark_u1_practice(n, seed, max_len)` writes `n` theories of the ``dark_u1`` task
(its prompt, then 5-7 SM-singlet Weyl fermions charged under U(1)'): each set of
charges is chiral and cancels the mixed U(1)'-gravity anomaly (sum z = 0) but
never the cubic one (sum z^3 != 0). They teach the linear condition, which the
policy cannot find by sampling (the walker and RL from the plain corpus wrote
sum z = 0 in ~1.5 % of theories), and hold no anomaly-free set: every one a run
finds is its own.

`build_corpus` mixes the synthetic theories with the textbook ones (those that
fit `max_len`), repeated to make up about `textbook_weight` of the corpus, adds
`dark_u1_theories` practice theories, and shuffles deterministically. `corpus_stats`
reports size, lengths and the fractions anomaly free / successful according to
`physics.reference`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from theorygrpo_jax import resources

from theorygrpo_jax.grammar import recognizer
from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.grammar.text import load_theory, parse_theory_text
from theorygrpo_jax.physics.groups import contains_singlet
from theorygrpo_jax.physics.u1_charges import is_chiral
from theorygrpo_jax.tasks import task_prompts

BASE_WEIGHTS = {"sm": 0.30, "sm_u1prime": 0.14, "2hdm": 0.10, "su5": 0.10, "random": 0.36}
DEFECT_RESERVE = 20  # tokens kept free for the flaw of an imperfect theory
MIN_THEORY_LEN = 14  # BOS GAUGE U1 END_GAUGE FIELDS SCALAR REAL VEV q_0 END END_FIELDS TERMS END_TERMS EOS

# Textbook mass tokens per generation (GeV: u 2.2e-3, c 1.27, t 173; d, s, b; e, mu, tau).
SM_MASSES = {"up": ["M2e-3", "M1e0", "M2e2"], "down": ["M5e-3", "M1e-1", "M5e0"],
             "lepton": ["M5e-4", "M1e-1", "M2e0"]}
FOURTH_GEN = {"up": ["M2e2", "M5e2"], "down": ["M1e2", "M2e2", "M5e2"], "lepton": ["M1e2", "M2e2"],
              "nu": ["M1e2", "M2e2"]}
HEAVY = ["M1e2", "M2e2", "M5e2", "M1e3", "M2e3", "M5e3", "M1e4", "M2e4", "M5e4"]
HEAVY_W = [2, 3, 4, 4, 3, 2, 1, 1, 1]
COLOURED = ["M5e2", "M1e3", "M2e3", "M5e3", "M1e4", "M2e4", "M5e4"]
COLOURED_W = [1, 3, 4, 3, 2, 1, 1]
CAPPED = ["M1e2", "M2e2", "M5e2"]                       # <= 617 GeV, >= 100 GeV
ANY_MASS = [m for m in V.MASSES if m != "M0"]
LIGHT_BAD = ["M1e-1", "M1e0", "M5e0", "M1e1", "M2e1", "M5e1"]  # < 100 GeV (imperfect theories)
COUPLINGS_W = {"C1e-2": 1, "C2e-2": 1, "C5e-2": 2, "C1e-1": 4, "C2e-1": 3, "C5e-1": 2, "C1e0": 1,
               "C2e0": 0.5, "C5e0": 0.2}

# (a, b) of U(1)' = a Y + b (B-L) with every SM charge within |n| <= 18 (checked at import).
U1PRIME_AB = [(0, 0), (0, 1), (0, -1), (0, 2), (0, 3), (1, 1), (1, -1), (-1, 1), (1, 2), (2, 1),
              (2, -1), (1, 0), (2, 0), (1, -2), (-1, -1)]
# SM fermions: (name, chirality, n_Y, n_{B-L}, SU2, SU3)
SM_FIELDS = [("Q", "L", 1, 2, "F", "F"), ("u", "R", 4, 2, "1", "F"), ("d", "R", -2, 2, "1", "F"),
             ("L", "L", -3, -6, "F", "1"), ("e", "R", -6, -6, "1", "1"), ("nu", "R", 0, -6, "1", "1")]
for _a, _b in U1PRIME_AB:
    assert all(abs(_a * y + _b * bl) <= 18 for _, _, y, bl, _, _ in SM_FIELDS), (_a, _b)
# Vector-like templates on U1 SU2 SU3: (n_Y, SU2, SU3)
VL_TEMPLATES = [(1, "F", "F"), (4, "1", "F"), (-2, "1", "F"), (-3, "F", "1"), (-6, "1", "1"),
                (0, "1", "1"), (-9, "F", "1"), (7, "F", "F"), (-5, "F", "F"), (0, "Adj", "1"),
                (6, "Adj", "1"), (-12, "1", "1"), (0, "1", "Adj"), (6, "1", "1"), (3, "F", "1")]
CHARGE_CHOICES = [0, 1, -1, 2, -2, 3, -3, 4, -4, 6, -6, 8, -8, 9, -9, 12, -12, 5, -5, 18, -18]
CHARGE_W = [6, 2, 2, 2, 2, 3, 3, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 0.5, 0.5, 0.3, 0.3]
REP_W = {"1": 6, "F": 3, "Fb": 1.5, "Adj": 0.8, "A2": 0.8, "A2b": 0.4, "S2": 0.4, "S2b": 0.3}
DARK_U1_SETS = [(1, 5, -7, -8, 9), (2, 10, -14, -16, 18)]


# ---------------------------------------------------------------------------
# A small mutable theory


@dataclass
class _Field:
    kind: str                # "L", "R" (fermions) or "S" (scalar)
    slots: list              # per factor: int charge n (U1) or rep name (SU(N))
    gen: int = 1
    real: bool = False
    vev: bool = False


@dataclass
class _Term:
    kind: str                # YUKAWA DIRAC MAJORANA SMASS QUARTIC
    refs: list[int]          # 0-based field indices
    values: list[str]        # mass tokens or one coupling token
    optional: bool = True    # may be dropped to fit max_len (no exotic relies on it)


_TERM_ORDER = {k: i for i, k in enumerate(V.TERM_WORDS)}


@dataclass
class _Theory:
    gauge: list[str]
    fields: list[_Field] = field(default_factory=list)
    terms: list[_Term] = field(default_factory=list)

    # roles (spec §1): first U1 = Y, first SU2 = weak, first SU3 = colour
    def first(self, g: str) -> int | None:
        return self.gauge.index(g) if g in self.gauge else None

    def nth(self, g: str, n: int) -> int | None:
        idx = [i for i, x in enumerate(self.gauge) if x == g]
        return idx[n] if len(idx) > n else None

    def blank(self) -> list:
        return [0 if g == "U1" else "1" for g in self.gauge]

    def add(self, f: _Field) -> int:
        self.fields.append(f)
        return len(self.fields) - 1

    def length(self) -> int:
        k = len(self.gauge)
        n = 1 + 1 + k + 1 + 1 + sum(3 + k + 1 for _ in self.fields) + 1 + 1
        n += sum(term_len(t.kind, len(t.values)) for t in self.terms)
        return n + 1 + 1   # END_TERMS EOS

    def tokens(self) -> list[str]:
        out = ["BOS", "GAUGE", *self.gauge, "END_GAUGE", "FIELDS"]
        for f in self.fields:
            if f.kind == "S":
                out += ["SCALAR", "REAL" if f.real else "CPLX", "VEV" if f.vev else "NOVEV"]
            else:
                out += ["FERMION", f.kind, f"gen_{f.gen}"]
            out += [f"q_{s}" if g == "U1" else s for g, s in zip(self.gauge, f.slots)]
            out.append("END")
        out += ["END_FIELDS", "TERMS"]
        for t in sorted(self.terms, key=lambda t: _TERM_ORDER[t.kind]):
            out += [t.kind, *(f"m_{i + 1}" for i in t.refs), *t.values, "END"]
        return out + ["END_TERMS", "EOS"]


def term_len(kind: str, n_values: int) -> int:
    args = {"YUKAWA": 3, "DIRAC": 2, "MAJORANA": 1, "SMASS": 1, "QUARTIC": 1}[kind]
    return 1 + args + n_values + 1


def field_len(th: _Theory) -> int:
    return 3 + len(th.gauge) + 1


# ---------------------------------------------------------------------------
# Physics helpers (spec §3), used to construct valid theories


def conj_rep(group: str, rep: str) -> str:
    if rep == "1" or (group == "SU2" and rep in ("F", "Adj")) or (group == "SU4" and rep == "A2") or rep == "Adj":
        return rep
    return rep[:-1] if rep.endswith("b") else rep + "b"


def _t3x2(rep: str | None) -> list[int]:
    return {None: [0], "1": [0], "F": [1, -1], "Adj": [2, 0, -2]}[rep]


def charges6(th: _Theory, slots: list) -> list[int]:
    """6Q of each component (first SU2 T3 state) of a field with these slots."""
    y, w = th.first("U1"), th.first("SU2")
    n_y = slots[y] if y is not None else 0
    return [3 * t + n_y for t in _t3x2(slots[w] if w is not None else None)]


def coloured(th: _Theory, slots: list) -> bool:
    c = th.first("SU3")
    return c is not None and slots[c] != "1"


def is_charged(th: _Theory, slots: list) -> bool:
    return coloured(th, slots) or any(q != 0 for q in charges6(th, slots))


def can_vev(th: _Theory, slots: list) -> bool:
    """Has a neutral, colour-singlet component (a VEV there breaks neither EM nor colour)."""
    return not coloured(th, slots) and any(q == 0 for q in charges6(th, slots))


def higgs_like(th: _Theory, f: _Field) -> bool:
    if f.kind != "S" or f.real or any(th.first(g) is None for g in ("U1", "SU2", "SU3")):
        return False
    y, w, c = (f.slots[th.first(g)] for g in ("U1", "SU2", "SU3"))
    return abs(y) == 3 and w == "F" and c == "1"


def _invariant(th: _Theory, parts: list[tuple[list, bool]]) -> bool:
    """Π (slots, barred) contains a gauge singlet: U(1) charges sum to 0, SU(N) singlet."""
    for k, g in enumerate(th.gauge):
        if g == "U1":
            if sum(-s[k] if bar else s[k] for s, bar in parts) != 0:
                return False
        elif not contains_singlet(g, [conj_rep(g, s[k]) if bar else s[k] for s, bar in parts]):
            return False
    return True


def yukawa_invariant(th: _Theory, s: _Field, l: _Field, r: _Field) -> bool:
    """y phi psibar_L psi_R with phi or phi* (one choice for all factors)."""
    return (_invariant(th, [(s.slots, False), (l.slots, True), (r.slots, False)])
            or _invariant(th, [(s.slots, True), (l.slots, True), (r.slots, False)]))


def dirac_invariant(th: _Theory, l: _Field, r: _Field) -> bool:
    return _invariant(th, [(l.slots, True), (r.slots, False)])


def majorana_allowed(th: _Theory, f: _Field) -> bool:
    """Zero U(1) charges, every non-abelian rep self-conjugate, an even number of SU2 doublets."""
    if any(s != 0 for g, s in zip(th.gauge, f.slots) if g == "U1"):
        return False
    pseudo = 0
    for g, s in zip(th.gauge, f.slots):
        if g != "U1":
            if conj_rep(g, s) != s:
                return False
            pseudo += g == "SU2" and s == "F"
    return pseudo % 2 == 0


# ---------------------------------------------------------------------------
# The generator


def _pick(rng: random.Random, items, weights=None):
    return rng.choices(items, weights=weights, k=1)[0]


def _heavy(rng: random.Random, th: _Theory, slots: list, n: int) -> list[str]:
    """n mass tokens >= 100 GeV (>= 500 GeV, mostly TeV, for coloured fields)."""
    if coloured(th, slots):
        return [_pick(rng, COLOURED, COLOURED_W) for _ in range(n)]
    return [_pick(rng, HEAVY, HEAVY_W) for _ in range(n)]


def _coupling(rng: random.Random) -> str:
    return _pick(rng, list(COUPLINGS_W), list(COUPLINGS_W.values()))


def _jitter(rng: random.Random, tokens: list[str], p: float = 0.2) -> list[str]:
    """Shift each token by one step of the mass grid with probability p (variety)."""
    out = []
    for t in tokens:
        i = V.MASSES.index(t)
        if t != "M0" and rng.random() < p:
            i = min(max(i + rng.choice((-1, 1)), 1), len(V.MASSES) - 1)
        out.append(V.MASSES[i])
    return out


def _random_rep(rng: random.Random, group: str, real: bool = False) -> str:
    reps = V.REAL_REPS[group] if real else V.ALLOWED_REPS[group]
    return _pick(rng, reps, [REP_W[r] for r in reps])


def _random_slots(rng: random.Random, th: _Theory, real: bool = False) -> list:
    """Random quantum numbers (an SM-like template on SM roles half the time)."""
    slots = []
    for g in th.gauge:
        if g == "U1":
            slots.append(0 if real else _pick(rng, CHARGE_CHOICES, CHARGE_W))
        else:
            slots.append(_random_rep(rng, g, real))
    y, w, c = th.first("U1"), th.first("SU2"), th.first("SU3")
    if not real and None not in (y, w, c) and rng.random() < 0.5:
        ny, rw, rc = _pick(rng, VL_TEMPLATES)
        slots[y], slots[w], slots[c] = ny, rw, rc
        for k in range(len(slots)):          # extra factors: singlet most of the time
            if k not in (y, w, c) and rng.random() < 0.7:
                slots[k] = 0 if th.gauge[k] == "U1" else "1"
    return slots


def _gen(rng: random.Random) -> int:
    return _pick(rng, [1, 2, 3], [6, 2, 1])


class _Budget:
    """Token / field / term limits of the theory under construction."""

    def __init__(self, th: _Theory, max_len: int):
        self.th, self.max_len = th, max_len

    def fits(self, fields: int = 0, terms: list[tuple[str, int]] = ()) -> bool:
        th = self.th
        extra = fields * field_len(th) + sum(term_len(k, n) for k, n in terms)
        return (th.length() + extra <= self.max_len and len(th.fields) + fields <= V.MAX_FIELDS
                and len(th.terms) + len(terms) <= V.MAX_TERMS)


def _sm_gauge(rng: random.Random, u1prime: bool) -> list[str]:
    gauge = ["U1", "U1", "SU2", "SU3"] if u1prime else ["U1", "SU2", "SU3"]
    if not u1prime and rng.random() < 0.25:
        gauge.append(_pick(rng, ["SU2", "SU3", "SU4", "SU5"], [1, 2, 1.5, 1]))
        gauge.sort(key=V.GROUPS.index)
    return gauge


def _base_sm(rng: random.Random, kind: str) -> _Theory:
    """SM (+ U(1)' / second Higgs)."""
    th = _Theory(_sm_gauge(rng, kind == "sm_u1prime"))
    y, w, c = th.first("U1"), th.first("SU2"), th.first("SU3")
    x = th.nth("U1", 1) if kind == "sm_u1prime" else None
    a, b = _pick(rng, U1PRIME_AB) if x is not None else (0, 0)
    ngen = _pick(rng, [1, 2, 3, 4], [1, 1.5, 6, 1.5])
    nu_r = b != 0 or rng.random() < 0.4
    idx = {}
    for name, chir, ny, nbl, rw, rc in SM_FIELDS:
        if name == "nu" and not nu_r:
            continue
        s = th.blank()
        s[y], s[w], s[c] = ny, rw, rc
        if x is not None:
            s[x] = a * ny + b * nbl
        idx[name] = th.add(_Field(chir, s, ngen))
    h = th.blank()
    h[y], h[w] = 3, "F"
    if x is not None:
        h[x] = 3 * a
    idx["H"] = th.add(_Field("S", h, vev=True))
    higgses = [idx["H"]]
    if kind == "2hdm":
        idx["H2"] = th.add(_Field("S", list(h), vev=rng.random() < 0.7))
        if th.fields[idx["H2"]].vev:       # an inert (NOVEV, Z2-odd) doublet has no Yukawas
            higgses.append(idx["H2"])

    def masses(sector: str) -> list[str]:
        base = _jitter(rng, SM_MASSES[sector][:min(ngen, 3)])
        return base + ([_pick(rng, FOURTH_GEN[sector])] if ngen == 4 else [])

    for sector, l, r in (("up", "Q", "u"), ("down", "Q", "d"), ("lepton", "L", "e")):
        if rng.random() < 0.85:
            th.terms.append(_Term("YUKAWA", [_pick(rng, higgses), idx[l], idx[r]], masses(sector)))
    if nu_r:
        if rng.random() < 0.5:
            nu = ["M0"] * min(ngen, 3) + ([_pick(rng, FOURTH_GEN["nu"])] if ngen == 4 else [])
            th.terms.append(_Term("YUKAWA", [idx["H"], idx["L"], idx["nu"]], nu))
        if majorana_allowed(th, th.fields[idx["nu"]]) and rng.random() < 0.35:
            th.terms.append(_Term("MAJORANA", [idx["nu"]], _heavy(rng, th, th.blank(), ngen)))
    if rng.random() < 0.6:
        th.terms.append(_Term("SMASS", [idx["H"]], [_pick(rng, ["M1e2", "M2e2"], [4, 1])]))
    if rng.random() < 0.4:
        th.terms.append(_Term("QUARTIC", [idx["H"]], [_coupling(rng)]))
    if kind == "2hdm":
        # The spec counts any (CPLX, q_3, F, 1) doublet as SM-like; give H, A, H+- a mass anyway.
        th.terms.append(_Term("SMASS", [idx["H2"]], [_pick(rng, HEAVY[:6])]))
        if rng.random() < 0.3:
            th.terms.append(_Term("QUARTIC", [idx["H2"]], [_coupling(rng)]))
    if x is not None and rng.random() < 0.6:
        s = th.blank()
        s[x] = _pick(rng, [6, -6, 12, -12, 3, 18])
        i = th.add(_Field("S", s, vev=True))
        th.terms.append(_Term("SMASS", [i], [_pick(rng, HEAVY[3:])]))
        if rng.random() < 0.4:
            th.terms.append(_Term("QUARTIC", [i], [_coupling(rng)]))
    return th


def _base_su5(rng: random.Random) -> _Theory:
    pre = _pick(rng, [None, "U1", "SU2", "SU3", "SU4"], [6, 1.5, 1, 1, 0.5])
    th = _Theory(([pre] if pre else []) + ["SU5"])
    k = th.gauge.index("SU5")
    ngen = _pick(rng, [1, 2, 3, 4], [2, 1, 6, 1])
    yukawa_form = rng.random() < 0.4
    s5, s10 = th.blank(), th.blank()
    s5[k], s10[k] = ("F" if yukawa_form else "Fb"), "A2"
    i5 = th.add(_Field("R" if yukawa_form else "L", s5, ngen))
    i10 = th.add(_Field("L", s10, ngen))
    if rng.random() < 0.7:
        s = th.blank()
        s[k] = "Adj"
        i24 = th.add(_Field("S", s, real=True, vev=True))
        if rng.random() < 0.5:
            th.terms.append(_Term("QUARTIC", [i24], [_coupling(rng)]))
        if rng.random() < 0.3:
            th.terms.append(_Term("SMASS", [i24], ["M5e4"]))
    if rng.random() < 0.7 or yukawa_form:
        s = th.blank()
        s[k] = "F"
        i5h = th.add(_Field("S", s, vev=True))
        if yukawa_form:
            th.terms.append(_Term("YUKAWA", [i5h, i10, i5], _jitter(rng, SM_MASSES["down"][:min(ngen, 3)])
                                  + (["M2e2"] if ngen == 4 else [])))
        if rng.random() < 0.6:
            th.terms.append(_Term("SMASS", [i5h], [_pick(rng, ["M1e2", "M2e2"])]))
        if rng.random() < 0.4:
            th.terms.append(_Term("QUARTIC", [i5h], [_coupling(rng)]))
    return th


def _base_random(rng: random.Random) -> _Theory:
    n = _pick(rng, [1, 2, 3, 4], [2.5, 3.5, 2.5, 1.5])
    while True:
        gauge = sorted(rng.choices(V.GROUPS, weights=[3.5, 2.5, 2, 1, 1], k=n), key=V.GROUPS.index)
        if gauge.count("U1") <= 2:
            return _Theory(gauge)


def _dark_factors(th: _Theory) -> list[int]:
    """Factors under which a field with otherwise trivial slots is neutral and colourless."""
    out = []
    for k, g in enumerate(th.gauge):
        if g in ("SU4", "SU5") or (g in ("U1", "SU2", "SU3") and th.first(g) != k):
            out.append(k)
    return out


def _add_chiral_block(rng: random.Random, th: _Theory, bud: _Budget) -> bool:
    """An anomaly-free chiral set on one 'dark' factor (all its fields neutral, colourless)."""
    dark = _dark_factors(th)
    if not dark:
        return False
    k = _pick(rng, dark)
    g = th.gauge[k]
    gen = _pick(rng, [1, 2, 3], [3, 1, 2])
    if g == "SU5":
        block = [("L", "Fb", gen), ("L", "A2", gen)] if rng.random() < 0.7 else [("R", "F", gen), ("L", "A2", gen)]
    elif g == "SU4":
        block = [("L", _pick(rng, ["A2", "Adj"]), gen)]
    elif g == "SU3":
        block = [("L", "S2", 1), ("L", "Fb", 4), ("L", "Fb", 3)] if rng.random() < 0.5 else [("L", "Adj", gen)]
    elif g == "SU2":
        block = [("L", "F", 2 * _pick(rng, [1, 2]))] if rng.random() < 0.6 else [("L", "Adj", gen)]
    else:  # U1
        charges = _pick(rng, DARK_U1_SETS)
        sign = _pick(rng, [1, -1])
        block = [("L", sign * q, 1) for q in charges]
    if not bud.fits(fields=len(block)):
        return False
    for chir, slot, n in block:
        s = th.blank()
        s[k] = slot
        th.add(_Field(chir, s, n))
    return True


EXTRA_GENERATION_P = 0.2  # share of SM bases that get a whole extra generation as new fields


def _add_extra_generation(rng: random.Random, th: _Theory, max_len: int) -> bool:
    """A sequential (or, a third of the time, mirror) extra generation written as new gen_1
    fields beside the SM's: Q', u', d', L', e' (+ nu' at times), each heavy through a Yukawa
    with the Higgs (<= the 617 GeV cap). A whole generation is anomaly free and chiral, the
    one chiral extension an SM-prompted policy can write on the SM's own group, so the corpus
    shows it in the form that prompt needs. Optional base terms (the SM Yukawas, SMASS,
    QUARTIC) are dropped to make room; False (nothing added) if it still does not fit."""
    y, w, c = th.first("U1"), th.first("SU2"), th.first("SU3")
    higgs = [i for i, f in enumerate(th.fields) if f.kind == "S" and f.vev and higgs_like(th, f)]
    if not higgs or None in (y, w, c):
        return False
    mirror = rng.random() < 1 / 3
    names = ["Q", "u", "d", "L", "e"] + (["nu"] if rng.random() < 0.3 else [])
    fields = {}
    for name, chir, ny, _, rw, rc in SM_FIELDS:
        if name in names:
            slots = th.blank()
            slots[y], slots[w], slots[c] = ny, rw, rc
            fields[name] = _Field({"L": "R", "R": "L"}[chir] if mirror else chir, slots)
    pairs = [("up", "Q", "u"), ("down", "Q", "d"), ("lepton", "L", "e")]
    if "nu" in fields:
        pairs.append(("nu", "L", "nu"))
    extra = len(fields) * field_len(th) + len(pairs) * term_len("YUKAWA", 1)
    while th.length() + extra > max_len and any(t.optional for t in th.terms):
        del th.terms[max(i for i, t in enumerate(th.terms) if t.optional)]
    if (th.length() + extra > max_len or len(th.fields) + len(fields) > V.MAX_FIELDS
            or len(th.terms) + len(pairs) > V.MAX_TERMS):
        return False
    index = {name: th.add(f) for name, f in fields.items()}
    for sector, doublet, singlet in pairs:
        l, r = (singlet, doublet) if mirror else (doublet, singlet)
        h = th.fields[higgs[0]]
        if yukawa_invariant(th, h, th.fields[index[l]], th.fields[index[r]]):
            th.terms.append(_Term("YUKAWA", [higgs[0], index[l], index[r]],
                                  [_pick(rng, FOURTH_GEN[sector])], optional=False))
    return True


def _add_vectorlike(rng: random.Random, th: _Theory, bud: _Budget, light: bool = False,
                    massless: bool = False) -> bool:
    slots = _random_slots(rng, th)
    gen = _gen(rng)
    charged = is_charged(th, slots)
    if light or massless:           # imperfect: needs a charged pair to be a defect
        if not charged:
            return False
        values = [_pick(rng, LIGHT_BAD) for _ in range(gen)]
    elif charged:
        values = _heavy(rng, th, slots, gen)
    else:
        values = [_pick(rng, ANY_MASS) for _ in range(gen)]
    with_mass = not massless and (charged or rng.random() < 0.7)
    if not bud.fits(fields=2, terms=[("DIRAC", gen)] if with_mass else []):
        return False
    i = th.add(_Field("L", slots, gen))
    j = th.add(_Field("R", list(slots), gen))
    if with_mass:
        th.terms.append(_Term("DIRAC", [i, j], values, optional=not charged))
    return True


def _add_scalar(rng: random.Random, th: _Theory, bud: _Budget) -> bool:
    style = _pick(rng, ["real", "complex", "dark_higgs"], [3, 4, 3])
    real, vev = False, False
    if style == "real":
        real = True
        slots = th.blank() if rng.random() < 0.6 else _random_slots(rng, th, real=True)
        vev = can_vev(th, slots) and rng.random() < 0.4
    elif style == "complex":
        slots = _random_slots(rng, th)
        vev = can_vev(th, slots) and rng.random() < 0.3
    else:
        slots = th.blank()
        extra = _dark_factors(th)
        if extra:
            k = _pick(rng, extra)
            slots[k] = _pick(rng, [6, -6, 12, 3, 1]) if th.gauge[k] == "U1" else "F"
        vev = True
    charged = is_charged(th, slots)
    terms = [("SMASS", 1)] if (charged or rng.random() < 0.6) else []
    quartic = rng.random() < 0.35
    if quartic:
        terms.append(("QUARTIC", 1))
    if not bud.fits(fields=1, terms=terms):
        return False
    i = th.add(_Field("S", slots, real=real, vev=vev))
    if terms and terms[0][0] == "SMASS":
        value = _heavy(rng, th, slots, 1) if charged else [_pick(rng, HEAVY if vev else ANY_MASS)]
        th.terms.append(_Term("SMASS", [i], value, optional=not charged))
    if quartic:
        th.terms.append(_Term("QUARTIC", [i], [_coupling(rng)]))
    return True


def _add_yukawas(rng: random.Random, th: _Theory, bud: _Budget, count: int) -> None:
    used = {tuple(t.refs) for t in th.terms if t.kind == "YUKAWA"}
    F = th.fields
    cands = [(s, l, r) for s in range(len(F)) if F[s].kind == "S" and F[s].vev and can_vev(th, F[s].slots)
             for l in range(len(F)) if F[l].kind == "L"
             for r in range(len(F)) if F[r].kind == "R"
             if (s, l, r) not in used and yukawa_invariant(th, F[s], F[l], F[r])]
    rng.shuffle(cands)
    for s, l, r in cands[:count]:
        n = min(F[l].gen, F[r].gen)
        if not bud.fits(terms=[("YUKAWA", n)]):
            return
        pool = [m for m in ANY_MASS if V.MASS_GEV[V.MASSES.index(m)] <= 500] if higgs_like(th, F[s]) else ANY_MASS
        th.terms.append(_Term("YUKAWA", [s, l, r], [_pick(rng, pool) for _ in range(n)]))


def _add_majorana(rng: random.Random, th: _Theory, bud: _Budget) -> None:
    have = {t.refs[0] for t in th.terms if t.kind == "MAJORANA"}
    cands = [i for i, f in enumerate(th.fields)
             if f.kind != "S" and i not in have and majorana_allowed(th, f)]
    if cands:
        i = _pick(rng, cands)
        f = th.fields[i]
        if bud.fits(terms=[("MAJORANA", f.gen)]):
            th.terms.append(_Term("MAJORANA", [i], _heavy(rng, th, f.slots, f.gen)))


def _add_defect(rng: random.Random, th: _Theory, bud: _Budget) -> bool:
    """Exactly one deliberate flaw (imperfect theories); False if none could be added."""
    kinds = ["lone_chiral", "light_vectorlike", "massless_vectorlike", "non_invariant", "breaking_vev"]
    rng.shuffle(kinds)
    F = th.fields
    for kind in kinds:
        for _ in range(10):
            if kind == "lone_chiral":
                slots = _random_slots(rng, th)
                s = th.blank()
                k = rng.randrange(len(th.gauge))
                g = th.gauge[k]
                s[k] = (_pick(rng, [q for q in CHARGE_CHOICES if q]) if g == "U1"
                        else "F")  # U1^3 / grav, SU(N)^3 (N >= 3) or Witten: nonzero
                slots = s if rng.random() < 0.5 else slots
                if all(slots[j] == (0 if h == "U1" else "1") for j, h in enumerate(th.gauge)):
                    continue
                f = _Field(_pick(rng, ["L", "R"]), slots, _pick(rng, [1, 3]))
                if bud.fits(fields=1) and _anomalous_alone(th, f):
                    th.add(f)
                    return True
            elif kind == "light_vectorlike":
                if _add_vectorlike(rng, th, bud, light=True):
                    return True
            elif kind == "massless_vectorlike":
                if _add_vectorlike(rng, th, bud, massless=True):
                    return True
            elif kind == "non_invariant":
                ls = [i for i, f in enumerate(F) if f.kind == "L"]
                rs = [i for i, f in enumerate(F) if f.kind == "R"]
                ss = [i for i, f in enumerate(F) if f.kind == "S"]
                if not ls or not rs:
                    break
                l, r = _pick(rng, ls), _pick(rng, rs)
                n = min(F[l].gen, F[r].gen)
                if ss and rng.random() < 0.6:
                    s = _pick(rng, ss)
                    if not yukawa_invariant(th, F[s], F[l], F[r]) and bud.fits(terms=[("YUKAWA", n)]):
                        th.terms.append(_Term("YUKAWA", [s, l, r], [_pick(rng, ANY_MASS) for _ in range(n)]))
                        return True
                elif not dirac_invariant(th, F[l], F[r]) and bud.fits(terms=[("DIRAC", n)]):
                    th.terms.append(_Term("DIRAC", [l, r], [_pick(rng, HEAVY) for _ in range(n)]))
                    return True
            else:  # breaking_vev
                slots = _random_slots(rng, th)
                if can_vev(th, slots) or not bud.fits(fields=1, terms=[("SMASS", 1)]):
                    continue
                i = th.add(_Field("S", slots, vev=True))
                th.terms.append(_Term("SMASS", [i], _heavy(rng, th, slots, 1)))
                return True
    return False


def _anomalous_alone(th: _Theory, f: _Field) -> bool:
    """Whether one extra chiral field certainly makes the theory anomalous (its own sums ≠ 0)."""
    su = [k for k, g in enumerate(th.gauge) if g != "U1"]

    def dim(g: str, r: str) -> int:
        N = V.GROUP_N[g]
        return {"1": 1, "F": N, "Adj": N * N - 1, "A2": N * (N - 1) // 2, "S2": N * (N + 1) // 2}[r.rstrip("b")]

    d = f.gen
    for k in su:
        d *= dim(th.gauge[k], f.slots[k])
    if any(g == "U1" and f.slots[k] != 0 for k, g in enumerate(th.gauge)):
        return True                                  # grav U1 = ±d·n ≠ 0
    for k in su:
        g, r = th.gauge[k], f.slots[k]
        if g != "SU2" and r in ("F", "Fb", "S2", "S2b") or (g == "SU5" and r in ("A2", "A2b")):
            return True                              # SU(N)^3 ≠ 0
        if g == "SU2" and r == "F" and (d // 2) % 2 == 1:
            return True                              # Witten: odd number of doublets
    return False


def _one(rng: random.Random, max_len: int, imperfect: bool, small: bool) -> _Theory | None:
    full_len = max_len
    if imperfect:   # keep room for the defect (a field and a term)
        max_len = max(MIN_THEORY_LEN, max_len - DEFECT_RESERVE)
    kind = "random" if small else _pick(rng, list(BASE_WEIGHTS), list(BASE_WEIGHTS.values()))
    if kind in ("sm", "sm_u1prime", "2hdm"):
        th = _base_sm(rng, kind)
    elif kind == "su5":
        th = _base_su5(rng)
    else:
        th = _base_random(rng)
    # drop optional base terms until the base fits (QUARTIC, SMASS, then YUKAWA/others)
    for drop in ("QUARTIC", "SMASS", "MAJORANA", "YUKAWA"):
        while th.length() > max_len and any(t.optional and t.kind == drop for t in th.terms):
            j = max(i for i, t in enumerate(th.terms) if t.optional and t.kind == drop)
            del th.terms[j]
    if th.length() > max_len and th.fields:
        return None
    if kind in ("sm", "sm_u1prime") and rng.random() < EXTRA_GENERATION_P:
        _add_extra_generation(rng, th, max_len)
    bud = _Budget(th, max_len)
    if rng.random() < (0.5 if kind == "random" else 0.2):
        _add_chiral_block(rng, th, bud)
    n_vl = _pick(rng, [0, 1, 2, 3], [3, 4, 2.5, 1] if th.fields else [0, 5, 3, 1.5])
    for _ in range(n_vl):
        _add_vectorlike(rng, th, bud)
    for _ in range(_pick(rng, [0, 1, 2], [4, 4, 2])):
        _add_scalar(rng, th, bud)
    if not th.fields:                # a random group that got nothing: one scalar at least
        for _ in range(5):
            if _add_scalar(rng, th, bud):
                break
        if not th.fields:
            if th.length() + field_len(th) > max_len:
                return None
            th.add(_Field("S", th.blank(), real=True, vev=True))
    _add_yukawas(rng, th, bud, _pick(rng, [0, 1, 2], [5, 3, 2]))
    if rng.random() < 0.25:
        _add_majorana(rng, th, bud)
    if imperfect and not _add_defect(rng, th, _Budget(th, full_len)):
        return None
    return th


def synthetic_theories(n: int, seed: int, max_len: int, imperfect_fraction: float = 0.1) -> list[list[str]]:
    """`n` grammar-valid theories (token lists BOS..EOS, each <= max_len tokens), deterministic in seed.

    See the module docstring for the procedure. About `imperfect_fraction` of
    them carry one deliberate flaw; the rest are anomaly free, gauge invariant
    and have no light charged exotic by construction.
    """
    if max_len < MIN_THEORY_LEN:
        raise ValueError(f"max_len {max_len} is shorter than the shortest theory ({MIN_THEORY_LEN} tokens)")
    rng = random.Random(seed)
    out: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    while len(out) < n:
        imperfect = rng.random() < imperfect_fraction
        tokens = None
        for attempt in range(60):
            th = _one(rng, max_len, imperfect, small=attempt >= 30)
            if th is None:
                continue
            cand = th.tokens()
            if not recognizer.recognise(cand, max_len).accepted:   # never expected; be safe
                continue
            tokens = cand
            if tuple(cand) not in seen or attempt >= 10:
                break
        if tokens is None:                     # only for absurdly small max_len
            tokens = ["BOS", "GAUGE", "U1", "END_GAUGE", "FIELDS", "SCALAR", "REAL", "VEV", "q_0", "END",
                      "END_FIELDS", "TERMS", "END_TERMS", "EOS"]
        seen.add(tuple(tokens))
        out.append(tokens)
    return out


# ---------------------------------------------------------------------------
# Textbook theories, the mixed corpus and its statistics


def textbook_theories(directory: str | Path | None = None) -> dict[str, list[str]]:
    """{file stem: tokens} of the packaged textbook theories (not the anomalous/
    counter-examples), or of `directory`/*.theory when given."""
    if directory is not None:
        return {p.stem: load_theory(p) for p in sorted(Path(directory).glob("*.theory"))}
    return {name: parse_theory_text(source, f"{name}.theory")
            for name, source in resources.textbook_theories()}


DARK_U1_SIZES = (5, 6, 7)   # fermions per practice set: the sizes issue 13's coverage counts
DARK_U1_ZMAX = max(V.CHARGE_VALUES)   # |z| <= 18: the q_-18..q_18 charge tokens


def dark_u1_charges(rng: random.Random, n: int, zmax: int = DARK_U1_ZMAX) -> list[int]:
    """n nonzero charges |z| <= zmax, chiral (no z beside -z), sum z = 0, sum z^3 != 0: the
    first n - 1 uniform, the last -sum of them, redrawn until all three conditions hold."""
    values = [z for z in range(-zmax, zmax + 1) if z]
    while True:
        zs = [rng.choice(values) for _ in range(n - 1)]
        zs.append(-sum(zs))
        if abs(zs[-1]) <= zmax and is_chiral(zs) and sum(z ** 3 for z in zs) != 0:
            return zs


def dark_u1_practice(n: int, seed: int, max_len: int) -> list[list[str]]:
    """`n` dark_u1-task theories with practice charge sets (module docstring), each the task's
    prompt, the set as left-handed gen_1 singlets and empty TERMS; deterministic in seed."""
    prompt = task_prompts("dark_u1")[0]
    rng = random.Random(seed + 0xDA4C)
    out = []
    for _ in range(n):
        theory = list(prompt)
        for z in dark_u1_charges(rng, rng.choice(DARK_U1_SIZES)):
            theory += ["FERMION", "L", "gen_1", "q_0", f"q_{z}", "1", "1", "END"]
        theory += ["END_FIELDS", "TERMS", "END_TERMS", "EOS"]
        if len(theory) > max_len:
            raise ValueError(f"a dark_u1 practice theory needs {len(theory)} tokens, more than "
                             f"max_len {max_len}")
        out.append(theory)
    return out


def build_corpus(n_synthetic: int, seed: int, max_len: int, textbook_weight: float = 0.1,
                 imperfect_fraction: float = 0.1, dark_u1_theories: int = 0) -> list[list[str]]:
    """Synthetic theories plus the textbook ones that fit `max_len` (and `dark_u1_theories`
    practice theories, `dark_u1_practice`), shuffled deterministically.

    The textbook theories are repeated (cyclically, in file-name order) so that
    they make up about `textbook_weight` of the synthetic and textbook theories (each at
    least once when the weight is positive); `textbook_weight = 0` leaves them out.
    """
    if not 0.0 <= textbook_weight < 1.0:
        raise ValueError(f"textbook_weight must be in [0, 1), got {textbook_weight}")
    corpus = synthetic_theories(n_synthetic, seed, max_len, imperfect_fraction)
    corpus += dark_u1_practice(dark_u1_theories, seed, max_len)
    books = [t for _, t in sorted(textbook_theories().items())
             if recognizer.recognise(t, max_len).accepted]
    if books and textbook_weight > 0:
        copies = max(len(books), round(textbook_weight / (1.0 - textbook_weight) * n_synthetic))
        corpus += [list(books[i % len(books)]) for i in range(copies)]
    random.Random(seed + 0x5EED).shuffle(corpus)
    return corpus


def score_theories(theories: list[list[str]]) -> list[dict[str, Any]]:
    """`physics.reference.score_report` of each theory (spec §4 default thresholds)."""
    from theorygrpo_jax.physics import reference
    from theorygrpo_jax.reward import RewardConfig

    config = RewardConfig()
    return [reference.score_report(t, config) for t in theories]


def corpus_stats(theories: list[list[str]]) -> dict[str, Any]:
    """Count, lengths, field/term counts and, via the reference scorer, the physics fractions."""
    n = len(theories)
    lengths = [len(t) for t in theories]
    stats: dict[str, Any] = {
        "count": n,
        "unique_fraction": len({tuple(t) for t in theories}) / n if n else 0.0,
        "mean_length": sum(lengths) / n if n else 0.0,
        "min_length": min(lengths, default=0),
        "max_length": max(lengths, default=0),
        "mean_fields": sum(t.count("FERMION") + t.count("SCALAR") for t in theories) / n if n else 0.0,
        "mean_terms": sum(sum(t.count(k) for k in V.TERM_WORDS) for t in theories) / n if n else 0.0,
    }
    reports = score_theories(theories)
    frac = (lambda xs: sum(xs) / n) if n else (lambda xs: 0.0)
    stats.update(
        fraction_anomaly_free=frac([r["anomaly_free"] for r in reports]),
        fraction_no_invalid_terms=frac([r["invalid_terms"] == 0 for r in reports]),
        fraction_no_light_exotics=frac([r["light_exotics"] == 0 for r in reports]),
        fraction_successful=frac([r["success"] for r in reports]),
    )
    return stats
