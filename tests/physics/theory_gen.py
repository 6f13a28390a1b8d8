"""Random grammar-valid theories biased towards interesting physics (test helper).

Uniform grammar walks (`grammar.walks.random_walks`) rarely produce gauge-
invariant Yukawas, SM-like fields, anomaly-free sets or Higgs-capped masses;
this generator does, and it also covers the edges: two U1s, SU4/SU5, REAL
scalars, 16 fields / 16 terms, |q| = 18, conjugated SM fields, vector-like
pairs, bi-doublets. Theories are token-string lists BOS..EOS.
"""

from __future__ import annotations

import numpy as np

from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.physics import reference as R

SM_GAUGE = ["U1", "SU2", "SU3"]
# (chirality, n_Y, SU2, SU3) of SM fermions
SM_FERMIONS = [("L", 1, "F", "F"), ("R", 4, "1", "F"), ("R", -2, "1", "F"),
               ("L", -3, "F", "1"), ("R", -6, "1", "1"), ("R", 0, "1", "1")]
GOOD_MASSES = ["M0", "M1e-1", "M5e0", "M5e1", "M1e2", "M2e2", "M5e2", "M1e3", "M2e3", "M5e3", "M5e4"]


def _gauge(rng: np.random.Generator) -> list[str]:
    style = rng.random()
    if style < 0.45:
        g = list(SM_GAUGE)
        if rng.random() < 0.5:   # one extra factor, inserted in canonical order
            extra = str(rng.choice(V.GROUPS))
            g.append(extra)
            g.sort(key=V.GROUPS.index)
        return g
    n = int(rng.integers(1, 5))
    while True:
        g = sorted((str(x) for x in rng.choice(V.GROUPS, n)), key=V.GROUPS.index)
        if g.count("U1") <= 2:
            return g


def _charge(rng, big=False) -> int:
    if big or rng.random() < 0.1:
        return int(rng.integers(-18, 19))
    return int(rng.choice([-6, -4, -3, -2, -1, 0, 0, 0, 1, 2, 3, 4, 6]))


def _rep_table(group: str, real: bool) -> tuple[list[str], np.ndarray]:
    reps = V.REAL_REPS[group] if real else V.ALLOWED_REPS[group]
    p = np.array([4.0 if r == "1" else 2.0 if r in ("F", "Fb") else 1.0 for r in reps])
    return reps, np.cumsum(p / p.sum())


_REP_TABLES = {(g, real): _rep_table(g, real) for g in V.ALLOWED_REPS for real in (False, True)}


def _rep(rng, group: str, real=False) -> str:
    reps, cdf = _REP_TABLES[group, real]
    return reps[min(int(np.searchsorted(cdf, rng.random())), len(reps) - 1)]


def _conj_slots(gauge, slots):
    return [-s if g == "U1" else R.conj_rep(g, s) for g, s in zip(gauge, slots)]


def _fields(rng, gauge: list[str], n: int) -> list[tuple]:
    """Field specs: ("F", chir, gen, slots) or ("S", real, vev, slots)."""
    sm = all(x in gauge for x in SM_GAUGE)
    first = {x: gauge.index(x) for x in SM_GAUGE if x in gauge}
    out: list[tuple] = []

    def sm_slots(y, r2, r3):
        slots = [0 if g == "U1" else "1" for g in gauge]
        slots[first["U1"]], slots[first["SU2"]], slots[first["SU3"]] = y, r2, r3
        for i, g in enumerate(gauge):   # extra factors: usually trivial, sometimes charged
            if i not in first.values() and rng.random() < 0.3:
                slots[i] = _charge(rng) if g == "U1" else _rep(rng, g)
        return slots

    gen = int(rng.integers(1, 5))
    if sm and rng.random() < 0.8:
        for chir, y, r2, r3 in SM_FERMIONS:
            if rng.random() < 0.85:
                slots = sm_slots(y, r2, r3)
                if rng.random() < 0.15:   # written as the conjugate with the other chirality
                    chir, slots = ("R" if chir == "L" else "L"), _conj_slots(gauge, slots)
                out.append(("F", chir, gen if rng.random() < 0.8 else int(rng.integers(1, 5)), slots))
        slots = sm_slots(3, "F", "1")
        if rng.random() < 0.2:
            slots = _conj_slots(gauge, slots)
        out.append(("S", False, rng.random() < 0.85, slots))
    while len(out) < n:
        u = rng.random()
        if u < 0.3:      # scalar
            real = rng.random() < 0.3
            slots = [0 if (g == "U1" and real) else _charge(rng) if g == "U1" else _rep(rng, g, real)
                     for g in gauge]
            out.append(("S", real, rng.random() < 0.5, slots))
        elif u < 0.5 and out:   # vector-like partner / copy / conjugate of an existing fermion
            base = [f for f in out if f[0] == "F"]
            if not base:
                continue
            f = base[int(rng.integers(len(base)))]
            mode = rng.random()
            chir = f[1]
            if mode < 0.5:
                chir = "R" if chir == "L" else "L"
                slots = list(f[3])
            else:
                slots = _conj_slots(gauge, f[3])
            out.append(("F", chir, int(rng.integers(1, 5)), slots))
        elif u < 0.75:   # R fermion built so that some YUKAWA with an existing scalar is invariant
            ls = [f for f in out if f[0] == "F" and f[1] == "L"]
            ss = [f for f in out if f[0] == "S"]
            if not ls or not ss:
                out.append(("F", str(rng.choice(["L", "R"])), int(rng.integers(1, 5)),
                            [_charge(rng) if g == "U1" else _rep(rng, g) for g in gauge]))
                continue
            l, s = ls[int(rng.integers(len(ls)))], ss[int(rng.integers(len(ss)))]
            sign = 1 if rng.random() < 0.5 else -1      # φ or φ*
            slots = []
            for i, g in enumerate(gauge):
                if g == "U1":
                    slots.append(int(np.clip(l[3][i] - sign * s[3][i], -18, 18)))
                else:
                    rs = s[3][i] if sign == 1 else R.conj_rep(g, s[3][i])
                    if rs == "1":
                        slots.append(l[3][i])
                    elif l[3][i] == "1":
                        slots.append(R.conj_rep(g, rs))
                    else:
                        slots.append(_rep(rng, g))
            out.append(("F", "R", int(rng.integers(1, 5)), slots))
        else:            # random fermion (sometimes extreme)
            big = rng.random() < 0.1
            slots = [_charge(rng, big) if g == "U1" else _rep(rng, g) for g in gauge]
            out.append(("F", str(rng.choice(["L", "R"])), int(rng.integers(1, 5)), slots))
    return out[:n]


def _masses(rng, n: int) -> list[str]:
    return [GOOD_MASSES[int(rng.integers(len(GOOD_MASSES)))] if rng.random() < 0.6
            else V.MASSES[int(rng.integers(len(V.MASSES)))] for _ in range(n)]


def random_theory(rng: np.random.Generator, max_len: int = 256) -> list[str]:
    """One random grammar-valid theory (token strings BOS..EOS, at most max_len tokens)."""
    gauge = _gauge(rng)
    k = len(gauge)
    n_fields = int(rng.integers(1, 17)) if rng.random() < 0.7 else int(rng.integers(6, 17))
    n_fields = min(n_fields, (max_len - 9 - k) // (k + 4))
    specs = _fields(rng, gauge, n_fields)
    toks = ["BOS", "GAUGE", *gauge, "END_GAUGE", "FIELDS"]
    for f in specs:
        if f[0] == "F":
            toks += ["FERMION", f[1], f"gen_{f[2]}"]
        else:
            toks += ["SCALAR", "REAL" if f[1] else "CPLX", "VEV" if f[2] else "NOVEV"]
        toks += [f"q_{s}" if g == "U1" else s for g, s in zip(gauge, f[3])] + ["END"]
    toks += ["END_FIELDS", "TERMS"]

    th = R.parse_tokens(toks + ["END_TERMS", "EOS"])
    S = [f.index for f in th.fields if not f.fermion]
    Ls = [f.index for f in th.fields if f.fermion and f.chirality == "L"]
    Rs = [f.index for f in th.fields if f.fermion and f.chirality == "R"]
    Fs = Ls + Rs
    def some(cands, kind, tries=24):   # a few candidates, keep the gauge-invariant ones
        if len(cands) > tries:
            cands = [cands[i] for i in rng.choice(len(cands), tries, replace=False)]
        return [c for c in cands if R.term_invariant(th, R.Term(kind, list(c)))]

    inv_yuk = some([(s, l, r) for s in S for l in Ls for r in Rs], "YUKAWA")
    inv_dirac = some([(l, r) for l in Ls for r in Rs], "DIRAC")
    inv_maj = [f[0] for f in some([(f,) for f in Fs], "MAJORANA")]
    budget = max_len - len(toks) - 2
    n_terms = int(rng.integers(0, 17))
    for _ in range(n_terms):
        kinds = [kd for kd, ok in (("YUKAWA", S and Ls and Rs), ("DIRAC", Ls and Rs), ("MAJORANA", Fs),
                                   ("SMASS", S), ("QUARTIC", S)) if ok]
        if not kinds:
            break
        p = np.array([{"YUKAWA": 4, "DIRAC": 2, "MAJORANA": 1, "SMASS": 2, "QUARTIC": 0.5}[x] for x in kinds])
        kind = str(rng.choice(kinds, p=p / p.sum()))
        if kind == "YUKAWA":
            refs = (list(inv_yuk[int(rng.integers(len(inv_yuk)))]) if inv_yuk and rng.random() < 0.75 else
                    [int(rng.choice(S)), int(rng.choice(Ls)), int(rng.choice(Rs))])
        elif kind == "DIRAC":
            refs = (list(inv_dirac[int(rng.integers(len(inv_dirac)))]) if inv_dirac and rng.random() < 0.7
                    else [int(rng.choice(Ls)), int(rng.choice(Rs))])
        elif kind == "MAJORANA":
            refs = [int(rng.choice(inv_maj))] if inv_maj and rng.random() < 0.6 else [int(rng.choice(Fs))]
        else:
            refs = [int(rng.choice(S))]
        if kind == "QUARTIC":
            tail = [str(rng.choice(V.COUPLINGS))]
        elif kind == "SMASS":
            tail = _masses(rng, 1)
        else:
            tail = _masses(rng, int(rng.integers(1, 5)))
        term = [kind] + [f"m_{i + 1}" for i in refs] + tail + ["END"]
        if len(term) > budget:
            break
        budget -= len(term)
        toks += term
    return toks + ["END_TERMS", "EOS"]


def random_theories(rng: np.random.Generator, n: int, max_len: int = 256) -> list[list[str]]:
    return [random_theory(rng, max_len) for _ in range(n)]
