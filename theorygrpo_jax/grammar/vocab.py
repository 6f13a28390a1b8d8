"""The TheoryLang v1 vocabulary: every token of the spec with a stable id.

Ids are fixed by the order below (never reorder: checkpoints store embeddings
by id). Token groups are contiguous ranges so that JAX code can classify a
token with two comparisons.
"""

from __future__ import annotations

import numpy as np

SPECIAL = ["PAD", "BOS", "EOS"]
STRUCTURE = ["GAUGE", "END_GAUGE", "FIELDS", "END_FIELDS", "TERMS", "END_TERMS", "END"]
GROUPS = ["U1", "SU2", "SU3", "SU4", "SU5"]
FIELD_WORDS = ["FERMION", "SCALAR", "L", "R", "gen_1", "gen_2", "gen_3", "gen_4",
               "CPLX", "REAL", "VEV", "NOVEV"]
CHARGE_VALUES = list(range(-18, 19))  # U(1) charge n, physical charge n/6
CHARGES = [f"q_{n}" for n in CHARGE_VALUES]
REPS = ["1", "F", "Fb", "Adj", "A2", "A2b", "S2", "S2b"]
TERM_WORDS = ["YUKAWA", "DIRAC", "MAJORANA", "SMASS", "QUARTIC"]
MAX_FIELDS = 16
MAX_TERMS = 16
MAX_GAUGE = 4
MAX_U1 = 2
MAX_GEN = 4
MAX_MASSES = 4  # mass tokens per YUKAWA/DIRAC/MAJORANA term (one per generation)
REFS = [f"m_{k}" for k in range(1, MAX_FIELDS + 1)]
MASS_MANTISSAS = [1, 2, 5]
MASS_EXPONENTS = list(range(-4, 5))
MASSES = ["M0"] + [f"M{b}e{k}" for k in MASS_EXPONENTS for b in MASS_MANTISSAS]
COUPLING_EXPONENTS = list(range(-2, 1))
COUPLINGS = [f"C{b}e{k}" for k in COUPLING_EXPONENTS for b in MASS_MANTISSAS]

TOKENS: list[str] = (SPECIAL + STRUCTURE + GROUPS + FIELD_WORDS + CHARGES + REPS
                     + TERM_WORDS + REFS + MASSES + COUPLINGS)
VOCAB_SIZE = len(TOKENS)
TOKEN_ID: dict[str, int] = {t: i for i, t in enumerate(TOKENS)}
assert len(TOKEN_ID) == VOCAB_SIZE, "duplicate token"

PAD, BOS, EOS = (TOKEN_ID[t] for t in SPECIAL)


def _span(names: list[str]) -> tuple[int, int]:
    """[first, last] ids of a contiguous token group."""
    first, last = TOKEN_ID[names[0]], TOKEN_ID[names[-1]]
    assert last - first + 1 == len(names)
    return first, last


GROUP_SPAN = _span(GROUPS)      # U1=0 .. SU5=4 after subtracting GROUP_SPAN[0]
CHARGE_SPAN = _span(CHARGES)    # charge n = id - CHARGE_SPAN[0] - 18
REP_SPAN = _span(REPS)          # rep index (REPS order) = id - REP_SPAN[0]
TERM_SPAN = _span(TERM_WORDS)
REF_SPAN = _span(REFS)          # field index (0-based) = id - REF_SPAN[0]
MASS_SPAN = _span(MASSES)
COUPLING_SPAN = _span(COUPLINGS)
GEN_SPAN = _span(["gen_1", "gen_2", "gen_3", "gen_4"])

# Gauge factor kinds, in canonical order. N of SU(N); U1 has N = 1 here.
GROUP_N = {"U1": 1, "SU2": 2, "SU3": 3, "SU4": 4, "SU5": 5}
# Distinct irreps allowed in an SU(N) slot (spec table), in REPS order.
ALLOWED_REPS = {
    "SU2": ["1", "F", "Adj"],
    "SU3": ["1", "F", "Fb", "Adj", "S2", "S2b"],
    "SU4": ["1", "F", "Fb", "Adj", "A2"],
    "SU5": ["1", "F", "Fb", "Adj", "A2", "A2b"],
}
# Real representations (allowed for a REAL scalar).
REAL_REPS = {
    "SU2": ["1", "Adj"],
    "SU3": ["1", "Adj"],
    "SU4": ["1", "Adj", "A2"],
    "SU5": ["1", "Adj"],
}


def _mass_value(tok: str) -> float:
    if tok == "M0":
        return 0.0
    b, k = tok[1:].split("e")
    return float(b) * 10.0 ** int(k)


# Value in GeV of every mass token, in MASSES order; coupling values likewise.
MASS_GEV = np.array([_mass_value(t) for t in MASSES], dtype=np.float64)
COUPLING_VALUE = np.array([_mass_value("M" + t[1:]) for t in COUPLINGS], dtype=np.float64)


def token_ids(tokens: list[str]) -> list[int]:
    """Ids of a list of token strings (KeyError names the unknown token)."""
    return [TOKEN_ID[t] for t in tokens]


def token_strs(ids) -> list[str]:
    """Token strings of a sequence of ids."""
    return [TOKENS[int(i)] for i in ids]
