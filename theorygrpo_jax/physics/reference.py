"""Plain-Python reference physics of TheoryLang v1 (no JAX): the oracle of the reward.

Written independently of the JAX path (`record`, `anomalies`, `spectrum`,
`reward`): it shares only `grammar.vocab` (token names, mass values) and
nothing else, not even `physics.groups` -- dimensions, Dynkin indices, cubic
anomalies, conjugates and singlet containment are recomputed here from small
formula tables and SU(N) weights. The property tests compare the two paths on
thousands of random theories; where they disagree, one of them is wrong.

The physics (spec §3, with the choices documented in `physics.spectrum`):

- Anomalies: R fermions are rewritten as left-handed conjugates (charges
  negated, reps conjugated), then every condition is a plain sum over
  left-handed Weyl fields. Coefficients are exact Python integers, clamped to
  ±(2**31 - 1) exactly as the int32 JAX path saturates (only U1^3 of absurd
  theories can get there: 16 fields of q_18 in three SU5 adjoints).
- Term invariance: U(1) charges of the product add to zero and, for every
  SU(N), the product of the reps (conjugated where the field is barred)
  contains a singlet (Racah-Speiser on the product's weights).
- Spectrum: masses per (field, T3 component, generation), the largest mass
  any counting term gives; exotic scalars get their SMASS mass.
- Rewards and success as in spec §4 (the user's extra reward components of
  `RewardConfig.extra` are JAX functions of a `TheoryRecord`: the reference
  ignores them, so its `total_reward` excludes them).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from itertools import combinations_with_replacement, permutations
from typing import Any

from theorygrpo_jax.grammar import vocab as V

INT32_MAX = 2**31 - 1
HIGGS_CAP_GEV = math.sqrt(4.0 * math.pi) * 246.0 / math.sqrt(2.0)  # ≈ 616.6 GeV

# ---------------------------------------------------------------------------
# Group theory from formulas (independent of physics.groups)

_N = {"SU2": 2, "SU3": 3, "SU4": 4, "SU5": 5}
_BAR = {"1": "1", "F": "Fb", "Fb": "F", "Adj": "Adj", "A2": "A2b", "A2b": "A2",
        "S2": "S2b", "S2b": "S2"}


def conj_rep(group: str, rep: str) -> str:
    """The conjugate irrep, by name (SU2 F and SU4 A2 are self-conjugate)."""
    if group == "SU2" and rep == "F":
        return "F"
    if group == "SU4" and rep == "A2":
        return "A2"
    return _BAR[rep]


def dim(group: str, rep: str) -> int:
    N = _N[group]
    base = rep.rstrip("b")
    return {"1": 1, "F": N, "Adj": N * N - 1, "A2": N * (N - 1) // 2, "S2": N * (N + 1) // 2}[base]


def two_t(group: str, rep: str) -> int:
    """Dynkin index 2T(R), 2T(F) = 1."""
    N = _N[group]
    return {"1": 0, "F": 1, "Adj": 2 * N, "A2": N - 2, "S2": N + 2}[rep.rstrip("b")]


def cubic(group: str, rep: str) -> int:
    """Cubic anomaly A(R), A(F) = 1, A(R̄) = -A(R)."""
    N = _N[group]
    a = {"1": 0, "F": 1, "Adj": 0, "A2": N - 4, "S2": N + 4}[rep.rstrip("b")]
    return -a if rep.endswith("b") else a


def t3x2(rep: str | None) -> list[int]:
    """2·T3 of the states of an SU(2) irrep, highest first (None: no SU2 -> [0])."""
    return {None: [0], "1": [0], "F": [1, -1], "Adj": [2, 0, -2]}[rep]


def _weights(N: int, rep: str) -> list[tuple[int, ...]]:
    """Weights in the orthogonal basis e_1..e_N of U(N) (equal modulo (1,..,1))."""
    def e(*idx: int, sign: int = 1) -> tuple[int, ...]:
        v = [0] * N
        for i in idx:
            v[i] += sign
        return tuple(v)

    if rep.endswith("b"):
        return [tuple(-x for x in w) for w in _weights(N, rep[:-1])]
    if rep == "1":
        return [e()]
    if rep == "F":
        return [e(i) for i in range(N)]
    if rep == "Adj":
        out = []
        for i in range(N):
            for j in range(N):
                if i != j:
                    v = [0] * N
                    v[i] += 1
                    v[j] -= 1
                    out.append(tuple(v))
        return out + [e()] * (N - 1)
    if rep == "A2":
        return [e(i, j) for i in range(N) for j in range(i + 1, N)]
    if rep == "S2":
        return [e(i, j) for i in range(N) for j in range(i, N)]
    raise ValueError(rep)


def _key(w: tuple[int, ...]) -> tuple[int, ...]:
    """Canonical form of a weight modulo (1,..,1): subtract the last coordinate."""
    return tuple(x - w[-1] for x in w[:-1])


@lru_cache(maxsize=None)
def singlets(group: str, reps: tuple[str, ...]) -> int:
    """Number of singlets in the tensor product of `reps` (Weyl character formula:
    mult(1 ⊂ V) = Σ_{w ∈ S_N} sign(w) m_V(ρ − wρ), weights of V by convolution; the
    last factor is convolved only at the N! weights the formula reads)."""
    if group == "U1" or not reps:
        return 1
    N = _N[group]
    mult = Counter({_key((0,) * N): 1})
    for r in reps[:-1]:
        new: Counter = Counter()
        for wa, ma in mult.items():
            for wb in _weights(N, r):
                new[tuple(a + b for a, b in zip(wa, _key(wb)))] += ma
        mult = new
    last = [_key(w) for w in _weights(N, reps[-1])]
    rho = tuple(range(N - 1, -1, -1))
    total = 0
    for p in permutations(range(N)):
        inversions = sum(1 for i in range(N) for j in range(i + 1, N) if p[i] > p[j])
        target = _key(tuple(a - rho[p[i]] for i, a in enumerate(rho)))
        count = sum(mult.get(tuple(t - x for t, x in zip(target, wb)), 0) for wb in last)
        total += (-1) ** inversions * count
    return total


def is_real_product(group_reps: list[tuple[str, str]]) -> bool:
    """Whether a product of irreps (one per SU(N) factor) is a real (orthogonal) rep:
    every factor self-conjugate, and an even number of pseudo-real factors (SU2 F)."""
    pseudo = 0
    for g, r in group_reps:
        if conj_rep(g, r) != r:
            return False
        pseudo += (g == "SU2" and r == "F")
    return pseudo % 2 == 0


# ---------------------------------------------------------------------------
# Theory objects


@dataclass
class Field:
    index: int                      # 0-based (m_{index+1})
    fermion: bool
    chirality: str | None           # "L" / "R" for fermions, None for scalars
    gen: int                        # generations (1 for scalars)
    real: bool = False              # REAL scalar
    vev: bool = False               # scalar with VEV
    slots: list = field(default_factory=list)  # per gauge factor: int charge n (U1) or rep name


@dataclass
class Term:
    kind: str                       # YUKAWA DIRAC MAJORANA SMASS QUARTIC
    refs: list[int]                 # 0-based field indices
    masses: list[float] = field(default_factory=list)   # GeV, generation i = masses[i]
    coupling: float | None = None


@dataclass
class Theory:
    gauge: list[str]
    fields: list[Field]
    terms: list[Term]
    length: int                     # tokens BOS..EOS inclusive


def parse_tokens(tokens: list[str]) -> Theory:
    """A grammar-valid token-string list (BOS..EOS, PAD after EOS ignored) -> Theory."""
    toks = [t for t in tokens if t != "PAD"]
    if toks and toks[0] != "BOS":
        toks = ["BOS"] + toks
    if toks[-1] != "EOS":
        toks = toks + ["EOS"]
    length = toks.index("EOS") + 1
    it = iter(toks[:length])
    assert next(it) == "BOS" and next(it) == "GAUGE"
    gauge = []
    for t in it:
        if t == "END_GAUGE":
            break
        gauge.append(t)
    assert next(it) == "FIELDS"
    fields: list[Field] = []
    for t in it:
        if t == "END_FIELDS":
            break
        if t == "FERMION":
            chir, gen = next(it), int(next(it)[4:])
            f = Field(len(fields), True, chir, gen)
        else:
            kind, vev = next(it), next(it)
            f = Field(len(fields), False, None, 1, real=(kind == "REAL"), vev=(vev == "VEV"))
        for g in gauge:
            s = next(it)
            f.slots.append(int(s[2:]) if g == "U1" else s)
        assert next(it) == "END"
        fields.append(f)
    assert next(it) == "TERMS"
    terms: list[Term] = []
    for t in it:
        if t == "END_TERMS":
            break
        term = Term(t, [])
        for s in it:
            if s == "END":
                break
            if s.startswith("m_"):
                term.refs.append(int(s[2:]) - 1)
            elif s.startswith("C"):
                term.coupling = float(V.COUPLING_VALUE[V.COUPLINGS.index(s)])
            else:
                term.masses.append(float(V.MASS_GEV[V.MASSES.index(s)]))
        terms.append(term)
    return Theory(gauge, fields, terms, length)


def factor_labels(gauge: list[str]) -> list[str]:
    """U1, U1_2, SU2, SU3, SU3_2, ...: the k-th factor of a kind gets `_k` (k ≥ 2)."""
    seen: Counter = Counter()
    out = []
    for g in gauge:
        seen[g] += 1
        out.append(g if seen[g] == 1 else f"{g}_{seen[g]}")
    return out


# ---------------------------------------------------------------------------
# Anomalies


def _left_handed(th: Theory) -> list[tuple[int, list]]:
    """(generations, slots) of every fermion as a left-handed Weyl field."""
    out = []
    for f in th.fields:
        if not f.fermion:
            continue
        if f.chirality == "L":
            out.append((f.gen, list(f.slots)))
        else:
            out.append((f.gen, [-s if g == "U1" else conj_rep(g, s) for g, s in zip(th.gauge, f.slots)]))
    return out


def _clamp(x: int) -> int:
    return max(-INT32_MAX, min(INT32_MAX, x))


def anomalies(th: Theory) -> dict[str, int]:
    """Every anomaly coefficient of spec §3 by condition name (exact, clamped to int32)."""
    labels = factor_labels(th.gauge)
    u1 = [k for k, g in enumerate(th.gauge) if g == "U1"]
    su = [k for k, g in enumerate(th.gauge) if g != "U1"]
    lh = _left_handed(th)

    def mult(gen: int, slots: list, skip: int | None) -> int:
        m = gen
        for k in su:
            if k != skip:
                m *= dim(th.gauge[k], slots[k])
        return m

    out: dict[str, int] = {}
    for k in su:
        g = th.gauge[k]
        if _N[g] >= 3:
            out[f"{labels[k]}^3"] = sum(cubic(g, s[k]) * mult(n, s, k) for n, s in lh)
    for k in su:
        g = th.gauge[k]
        for a in u1:
            out[f"{labels[k]}^2 {labels[a]}"] = sum(two_t(g, s[k]) * mult(n, s, k) * s[a] for n, s in lh)
    for combo in combinations_with_replacement(u1, 3):
        counts = Counter(combo)
        name = " ".join(labels[a] + (f"^{c}" if c > 1 else "") for a, c in sorted(counts.items()))
        out[name] = sum(mult(n, s, None) * s[combo[0]] * s[combo[1]] * s[combo[2]] for n, s in lh)
    for a in u1:
        out[f"grav {labels[a]}"] = sum(mult(n, s, None) * s[a] for n, s in lh)
    for k in su:
        if th.gauge[k] == "SU2":
            out[f"Witten {labels[k]}"] = sum(two_t("SU2", s[k]) * mult(n, s, k) for n, s in lh) % 2
    return {name: _clamp(v) for name, v in out.items()}


# ---------------------------------------------------------------------------
# Terms, charges, spectrum


def _product_invariant(th: Theory, parts: list[tuple[Field, bool]]) -> bool:
    """Whether Π fields (barred where the flag says so) is gauge invariant."""
    for k, g in enumerate(th.gauge):
        if g == "U1":
            if sum(-f.slots[k] if bar else f.slots[k] for f, bar in parts) != 0:
                return False
        else:
            reps = tuple(conj_rep(g, f.slots[k]) if bar else f.slots[k] for f, bar in parts)
            if singlets(g, reps) == 0:
                return False
    return True


def term_invariant(th: Theory, t: Term) -> bool:
    """Gauge invariance of a term (spec §3 Masses; MAJORANA: a real rep, zero charges)."""
    F = th.fields
    if t.kind == "YUKAWA":
        s, l, r = (F[i] for i in t.refs)
        # y φ ψ̄_L ψ_R or y φ* ψ̄_L ψ_R: one choice for all factors at once.
        return (_product_invariant(th, [(s, False), (l, True), (r, False)])
                or _product_invariant(th, [(s, True), (l, True), (r, False)]))
    if t.kind == "DIRAC":
        l, r = (F[i] for i in t.refs)
        return _product_invariant(th, [(l, True), (r, False)])
    if t.kind == "MAJORANA":
        f = F[t.refs[0]]
        charges_zero = all(s == 0 for g, s in zip(th.gauge, f.slots) if g == "U1")
        return charges_zero and is_real_product([(g, s) for g, s in zip(th.gauge, f.slots) if g != "U1"])
    return True  # SMASS, QUARTIC: |φ|², |φ|⁴


def _first(th: Theory, group: str, f: Field):
    """The field's slot under the first factor of `group`, or None if absent."""
    return f.slots[th.gauge.index(group)] if group in th.gauge else None


def charges6(th: Theory, f: Field) -> list[int]:
    """6Q of each component (T3 state of the first SU2), highest T3 first."""
    y = _first(th, "U1", f) or 0
    return [3 * t + y for t in t3x2(_first(th, "SU2", f))]


def coloured(th: Theory, f: Field) -> bool:
    rep = _first(th, "SU3", f)
    return rep is not None and rep != "1"


def breaks_em_or_colour(th: Theory, f: Field) -> bool:
    """A VEV scalar without a neutral colour-singlet component."""
    return (not f.fermion and f.vev
            and (coloured(th, f) or all(q != 0 for q in charges6(th, f))))


_SM_FERMIONS = [("L", 1, "F", "F"), ("R", 4, "1", "F"), ("R", -2, "1", "F"),
                ("L", -3, "F", "1"), ("R", -6, "1", "1"), ("R", 0, "1", "1")]


def sm_like(th: Theory, f: Field) -> bool:
    """Spec §3: needs U1, SU2, SU3; compared on the first of each; a conjugate match counts."""
    if not all(g in th.gauge for g in ("U1", "SU2", "SU3")):
        return False
    y, r2, r3 = _first(th, "U1", f), _first(th, "SU2", f), _first(th, "SU3", f)
    conj = (-y, conj_rep("SU2", r2), conj_rep("SU3", r3))
    if f.fermion:
        flip = "R" if f.chirality == "L" else "L"
        return ((f.chirality, y, r2, r3) in _SM_FERMIONS
                or (flip,) + conj in _SM_FERMIONS)
    return not f.real and ((y, r2, r3) == (3, "F", "1") or conj == (3, "F", "1"))


def higgs_like(th: Theory, f: Field) -> bool:
    return not f.fermion and sm_like(th, f)


def component_masses(th: Theory) -> list[list[list[float]]]:
    """masses[field][component][generation] in GeV (0 = massless / no term)."""
    M = [[[0.0] * f.gen for _ in charges6(th, f)] for f in th.fields]

    def give(f: Field, comp: int, g: int, m: float) -> None:
        M[f.index][comp][g] = max(M[f.index][comp][g], m)

    for t in th.terms:
        if t.kind == "QUARTIC" or not term_invariant(th, t):
            continue
        fs = [th.fields[i] for i in t.refs]
        if t.kind == "YUKAWA":
            s, l, r = fs
            if not s.vev or breaks_em_or_colour(th, s):
                continue
            cap = HIGGS_CAP_GEV if higgs_like(th, s) else math.inf
            ql, qr = charges6(th, l), charges6(th, r)
            for g, m in enumerate(t.masses[: min(l.gen, r.gen)]):
                for cl, a in enumerate(ql):
                    for cr, b in enumerate(qr):
                        if a == b:
                            give(l, cl, g, min(m, cap))
                            give(r, cr, g, min(m, cap))
        else:  # DIRAC, MAJORANA, SMASS: every component, generation by generation
            for f in fs:
                for g, m in enumerate(t.masses[: f.gen if t.kind != "DIRAC" else min(x.gen for x in fs)]):
                    for c in range(len(M[f.index])):
                        give(f, c, g, m)
    return M


# ---------------------------------------------------------------------------
# Rewards


def _config(config):
    if config is None:
        from theorygrpo_jax.reward import RewardConfig  # the dataclass only; nothing here uses JAX
        config = RewardConfig()
    return config


@dataclass
class Analysis:
    theory: Theory
    anomalies: dict[str, int]
    term_ok: list[bool]
    breaking_vevs: list[int]            # field indices
    masses: list[list[list[float]]]
    exotic: list[bool]
    light: list[tuple[int, int, int, float]]   # (field, component, generation, mass)
    heavy_exotic_fields: int


def analyse(th: Theory, config=None) -> Analysis:
    cfg = _config(config)
    anom = anomalies(th)
    term_ok = [term_invariant(th, t) for t in th.terms]
    breaking = [f.index for f in th.fields if breaks_em_or_colour(th, f)]
    masses = component_masses(th)
    exotic = [not sm_like(th, f) for f in th.fields]
    light = []
    heavy_keys = set()
    for f in th.fields:
        if not exotic[f.index]:
            continue
        col = coloured(th, f)
        thr = cfg.coloured_mass_threshold if col else cfg.mass_threshold
        charged = [c for c, q in enumerate(charges6(th, f)) if q != 0 or col]
        mine = [(f.index, c, g, masses[f.index][c][g]) for c in charged for g in range(f.gen)
                if masses[f.index][c][g] < thr]
        light += mine
        if charged and not mine:
            if f.fermion and f.chirality == "R":
                slots = [-s if g == "U1" else conj_rep(g, s) for g, s in zip(th.gauge, f.slots)]
            else:
                slots = list(f.slots)
            bar = [-s if g == "U1" else conj_rep(g, s) for g, s in zip(th.gauge, slots)]
            heavy_keys.add((f.fermion, min(tuple(map(str, slots)), tuple(map(str, bar)))))
    return Analysis(th, anom, term_ok, breaking, masses, exotic, light, len(heavy_keys))


def rewards(an: Analysis, config=None) -> dict[str, Any]:
    """The reward components, totals and diagnostics of spec §4 (float64 / int)."""
    cfg = _config(config)
    A = list(an.anomalies.values())
    anomalies_reward = sum(-math.log1p(abs(a)) - 5.0 * (a != 0) for a in A) / len(A)
    light_reward = 0.1 * sum(-abs(math.log10(max(m, 1e-10)) - math.log10(
        cfg.coloured_mass_threshold if coloured(an.theory, an.theory.fields[f]) else cfg.mass_threshold))
        for f, _, _, m in an.light)
    invalid = sum(not ok for ok in an.term_ok) + len(an.breaking_vevs)
    excess = max(an.theory.length - cfg.soft_len, 0)
    length_reward = 0.0 - cfg.length_alpha * excess / (cfg.max_len - cfg.soft_len)
    heavy_reward = float(an.heavy_exotic_fields)
    total = (cfg.anomalies_weight * anomalies_reward + cfg.light_exotics_weight * light_reward
             + cfg.invalid_terms_weight * float(-invalid) + cfg.length_weight * length_reward
             + cfg.heavy_exotics_weight * heavy_reward)
    l1 = min(sum(abs(a) for a in A), INT32_MAX)
    return {
        "anomalies_reward": anomalies_reward,
        "light_exotics_reward": light_reward,
        "invalid_terms_reward": float(-invalid),
        "length_reward": length_reward,
        "heavy_exotics_reward": heavy_reward,
        "total_reward": total,
        "success": l1 == 0 and invalid == 0 and not an.light,
        "anomaly_l1": l1,
        "invalid_terms": invalid,
        "light_exotics": len(an.light),
        "heavy_exotic_fields": an.heavy_exotic_fields,
        "length": an.theory.length,
    }


def _q_str(q6: int) -> str:
    return str(Fraction(q6, 6))


def score_report(tokens: list[str], config=None) -> dict[str, Any]:
    """Spec §5 report of one grammar-valid theory, plus per-field details."""
    cfg = _config(config)
    th = parse_tokens(tokens)
    an = analyse(th, cfg)
    r = rewards(an, cfg)
    fields = []
    for f in th.fields:
        col = coloured(th, f)
        fields.append({
            "name": f"m_{f.index + 1}",
            "kind": "FERMION" if f.fermion else "SCALAR",
            "chirality": f.chirality,
            "generations": f.gen,
            "slots": [f"q_{s}" if g == "U1" else s for g, s in zip(th.gauge, f.slots)],
            "vev": f.vev,
            "exotic": an.exotic[f.index],
            "coloured": col,
            "breaks_em_or_colour": f.index in an.breaking_vevs,
            "components": [{"t3x2": t3, "q6": q, "Q": _q_str(q), "charged": q != 0 or col,
                            "masses_gev": an.masses[f.index][c]}
                           for c, (t3, q) in enumerate(zip(t3x2(_first(th, "SU2", f)), charges6(th, f)))],
        })
    return {
        "anomalies": dict(an.anomalies),
        "anomaly_free": r["anomaly_l1"] == 0,
        "anomaly_l1": r["anomaly_l1"],
        "invalid_terms": r["invalid_terms"],
        "light_exotics": r["light_exotics"],
        "heavy_exotic_fields": r["heavy_exotic_fields"],
        "success": r["success"],
        "length": th.length,
        "rewards": {k: r[k] for k in ("anomalies_reward", "light_exotics_reward", "invalid_terms_reward",
                                      "length_reward", "heavy_exotics_reward", "total_reward")},
        "terms": [{"kind": t.kind, "refs": [f"m_{i + 1}" for i in t.refs], "invariant": ok}
                  for t, ok in zip(th.terms, an.term_ok)],
        "fields": fields,
    }
