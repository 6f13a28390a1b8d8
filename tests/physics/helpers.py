"""Test helpers: theories from text, and the JAX path's full analysis of a few theories.

All hand-written cases are scored in batches padded to the SAME shape
[BATCH, LEN], so the jitted `reward.analyse_batch` compiles once per config
for the whole test session.
"""

from __future__ import annotations

import numpy as np

from theorygrpo_jax import resources
from theorygrpo_jax.grammar import text
from theorygrpo_jax.physics import anomalies as anom
from theorygrpo_jax.physics import spectrum as spec
from theorygrpo_jax.physics.record import tokens_to_ids
from theorygrpo_jax.reward import RewardConfig, analyse_batch

BATCH, LEN = 64, 256
EXAMPLES = str(resources.THEORIES)     # the packaged textbook theories (sm.theory, su5_gut.theory, ...)

SM_GAUGE = "GAUGE U1 SU2 SU3 END_GAUGE"
SM_FIELDS = """
  FERMION L gen_3 q_1  F F END   # m_1  Q_L
  FERMION R gen_3 q_4  1 F END   # m_2  u_R
  FERMION R gen_3 q_-2 1 F END   # m_3  d_R
  FERMION L gen_3 q_-3 F 1 END   # m_4  L_L
  FERMION R gen_3 q_-6 1 1 END   # m_5  e_R
  SCALAR CPLX VEV q_3 F 1 END    # m_6  Higgs
"""
SM_TERMS = """
  YUKAWA m_6 m_1 m_2 M2e-3 M1e0 M2e2 END
  YUKAWA m_6 m_1 m_3 M5e-3 M1e-1 M5e0 END
  YUKAWA m_6 m_4 m_5 M5e-4 M1e-1 M2e0 END
  SMASS m_6 M1e2 END
  QUARTIC m_6 C1e-1 END
"""


def theory(gauge: str, fields: str, terms: str = "") -> list[str]:
    """Token list of a theory given its three blocks' contents (gauge: the factor names)."""
    src = f"GAUGE {gauge} END_GAUGE\nFIELDS\n{fields}\nEND_FIELDS\nTERMS\n{terms}\nEND_TERMS\n"
    return text.parse_theory_text(src, "<test>")


def sm(extra_fields: str = "", extra_terms: str = "", fields: str = SM_FIELDS, terms: str = SM_TERMS):
    return theory("U1 SU2 SU3", fields + extra_fields, terms + extra_terms)


def analyse(theories: dict[str, list[str]], config: RewardConfig | None = None) -> dict[str, dict]:
    """JAX analysis of named theories: per name a dict with the reward outputs (python scalars),
    ``anomalies`` {condition: int}, and numpy arrays ``mass`` [16, 3, 4] (GeV, float64),
    ``q6``, ``term_invariant``, ``breaking_vev``, ``exotic``, ``coloured``, ``sm_like``."""
    names = list(theories)
    out: dict[str, dict] = {}
    for start in range(0, len(names), BATCH):
        chunk = names[start:start + BATCH]
        toks = [theories[n] for n in chunk]
        ids = tokens_to_ids(toks + [toks[0]] * (BATCH - len(toks)), LEN)
        res = analyse_batch(ids, config)
        host = {k: np.asarray(v) for k, v in res.items() if k not in ("spectrum", "record")}
        sp = {k: np.asarray(v) for k, v in vars(res["spectrum"]).items()}
        for b, name in enumerate(chunk):
            t = toks[b]
            gauge = t[t.index("GAUGE") + 1: t.index("END_GAUGE")]
            d = {k: v[b].item() for k, v in host.items() if v.ndim == 1}
            d["anomalies"] = dict(zip(anom.condition_names(gauge),
                                      host["anomaly_coeffs"][b][host["anomaly_valid"][b]].tolist()))
            d["mass"] = spec.CODE_GEV[sp["mass_code"][b]]
            for k in ("q6", "term_invariant", "breaking_vev", "exotic", "coloured", "sm_like", "charged"):
                d[k] = sp[k][b]
            out[name] = d
    return out
