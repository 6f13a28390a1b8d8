"""Canonical form of theories and the run's discovery catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from theorygrpo_jax.discoveries import DiscoveryCatalogue, canonical_theory
from theorygrpo_jax.grammar.recognizer import recognise
from theorygrpo_jax.grammar.text import parse_theory_text

SM = parse_theory_text("""
GAUGE U1 SU2 SU3 END_GAUGE
FIELDS
  FERMION L gen_3 q_1  F F END
  FERMION R gen_3 q_4  1 F END
  FERMION R gen_3 q_-2 1 F END
  FERMION L gen_3 q_-3 F 1 END
  FERMION R gen_3 q_-6 1 1 END
  SCALAR CPLX VEV q_3 F 1 END
END_FIELDS
TERMS
  YUKAWA m_6 m_1 m_2 M2e-3 M1e0 M2e2 END
  YUKAWA m_6 m_1 m_3 M5e-3 M1e-1 M5e0 END
  YUKAWA m_6 m_4 m_5 M5e-4 M1e-1 M2e0 END
  SMASS m_6 M1e2 END
  QUARTIC m_6 C1e-1 END
END_TERMS
""")

# Two identical Higgs doublets that give masses to different fermions.
TWO_HIGGS = parse_theory_text("""
GAUGE U1 SU2 SU3 END_GAUGE
FIELDS
  FERMION L gen_1 q_1 F F END
  FERMION R gen_1 q_4 1 F END
  FERMION R gen_1 q_-2 1 F END
  SCALAR CPLX VEV q_3 F 1 END
  SCALAR CPLX VEV q_3 F 1 END
END_FIELDS
TERMS
  YUKAWA m_4 m_1 m_2 M2e2 END
  YUKAWA m_5 m_1 m_3 M5e0 END
  SMASS m_4 M1e2 END
  SMASS m_5 M2e3 END
END_TERMS
""")


def split(tokens: list[str]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(gauge block, fields, terms) of a theory."""
    def items(body: list[str]) -> list[list[str]]:
        out, cur = [], []
        for t in body:
            cur.append(t)
            if t == "END":
                out.append(cur)
                cur = []
        return out
    gauge = tokens[:tokens.index("END_GAUGE") + 1]
    fields = items(tokens[tokens.index("FIELDS") + 1:tokens.index("END_FIELDS")])
    terms = items(tokens[tokens.index("TERMS") + 1:tokens.index("END_TERMS")])
    return gauge, fields, terms


def join(gauge: list[str], fields: list[list[str]], terms: list[list[str]]) -> list[str]:
    return (gauge + ["FIELDS"] + sum(fields, []) + ["END_FIELDS", "TERMS"] + sum(terms, [])
            + ["END_TERMS", "EOS"])


def shuffled(tokens: list[str], rng: np.random.Generator, duplicate: bool = False) -> list[str]:
    """The same theory with fields and terms in a random order (references renumbered)."""
    gauge, fields, terms = split(tokens)
    perm = rng.permutation(len(fields))            # new position j holds old field perm[j]
    new_number = {int(old) + 1: j + 1 for j, old in enumerate(perm)}
    new_fields = [fields[i] for i in perm]
    new_terms = [[f"m_{new_number[int(t[2:])]}" if t.startswith("m_") else t for t in term]
                 for term in terms]
    if duplicate and new_terms:
        new_terms.append(list(new_terms[int(rng.integers(len(new_terms)))]))
    new_terms = [new_terms[i] for i in rng.permutation(len(new_terms))]
    return join(gauge, new_fields, new_terms)


def random_theory(rng: np.random.Generator) -> list[str]:
    """A random valid theory over U1 SU2 SU3 with few distinct fields (so some repeat)."""
    pool = [["FERMION", "L", "gen_1", "q_1", "F", "F", "END"],
            ["FERMION", "R", "gen_2", "q_4", "1", "F", "END"],
            ["FERMION", "L", "gen_1", "q_0", "1", "1", "END"],
            ["FERMION", "R", "gen_1", "q_0", "1", "1", "END"],
            ["SCALAR", "CPLX", "VEV", "q_3", "F", "1", "END"],
            ["SCALAR", "REAL", "NOVEV", "q_0", "Adj", "1", "END"]]
    fields = [pool[int(i)] for i in rng.integers(len(pool), size=int(rng.integers(1, 9)))]
    kinds = {"S": [], "L": [], "R": []}
    for n, f in enumerate(fields, start=1):
        kinds["S" if f[0] == "SCALAR" else f[1]].append(f"m_{n}")
    masses = ["M0", "M1e2", "M5e-1", "M2e3"]
    terms = []
    for _ in range(int(rng.integers(0, 12))):
        kw = rng.choice(["YUKAWA", "DIRAC", "MAJORANA", "SMASS", "QUARTIC"])
        need = {"YUKAWA": "SLR", "DIRAC": "LR", "MAJORANA": "F", "SMASS": "S", "QUARTIC": "S"}[kw]
        kinds["F"] = kinds["L"] + kinds["R"]
        if not all(kinds[k] for k in need):
            continue
        refs = [str(rng.choice(kinds[k])) for k in need]
        if kw == "QUARTIC":
            tail = [str(rng.choice(["C1e-1", "C5e-2"]))]
        elif kw == "SMASS":
            tail = [str(rng.choice(masses))]
        else:
            tail = [str(m) for m in rng.choice(masses, size=int(rng.integers(1, 3)))]
        terms.append([str(kw)] + refs + tail + ["END"])
    tokens = join(["BOS", "GAUGE", "U1", "SU2", "SU3", "END_GAUGE"], fields, terms)
    assert recognise(tokens).accepted, recognise(tokens).error
    return tokens


def test_orderings_of_the_same_theory_agree() -> None:
    rng = np.random.default_rng(0)
    canonical = canonical_theory(SM)
    for _ in range(10):
        assert canonical_theory(shuffled(SM, rng)) == canonical
    assert canonical_theory(shuffled(SM, rng, duplicate=True)) == canonical


def test_identical_fields_in_either_order_agree() -> None:
    gauge, fields, terms = split(TWO_HIGGS)
    # Swap the two Higgs doublets (m_4 <-> m_5) in the term block only.
    swap = {"m_4": "m_5", "m_5": "m_4"}
    swapped = join(gauge, fields, [[swap.get(t, t) for t in term] for term in terms])
    assert swapped != TWO_HIGGS
    assert canonical_theory(swapped) == canonical_theory(TWO_HIGGS)


def test_random_theories_permutation_invariant_valid_idempotent() -> None:
    rng = np.random.default_rng(1)
    for _ in range(60):
        theory = random_theory(rng)
        canonical = canonical_theory(theory)
        assert recognise(canonical).accepted
        assert canonical_theory(canonical) == canonical
        assert canonical_theory(shuffled(theory, rng, duplicate=True)) == canonical
        assert canonical[0] == "BOS" and canonical[-1] == "EOS"


def test_different_theories_differ() -> None:
    other_mass = [("M2e3" if t == "M2e2" else t) for t in SM]
    no_quartic = SM[:SM.index("QUARTIC")] + SM[SM.index("QUARTIC") + 4:]
    assert recognise(no_quartic).accepted
    forms = {tuple(canonical_theory(t)) for t in (SM, other_mass, no_quartic, TWO_HIGGS)}
    assert len(forms) == 4
    # A Yukawa between other fields is another theory, even with the same field content.
    gauge, fields, terms = split(TWO_HIGGS)
    rewired = join(gauge, fields, [["YUKAWA", "m_4", "m_1", "m_3", "M5e0", "END"]] + terms[1:])
    assert canonical_theory(rewired) != canonical_theory(TWO_HIGGS)


def test_sorted_by_vocabulary_ids_and_pad_ignored() -> None:
    canonical = canonical_theory(SM + ["PAD", "PAD"])
    _, fields, terms = split(canonical)
    assert fields[0][0] == "FERMION" and fields[-1][0] == "SCALAR"
    assert canonical_theory(SM) == canonical
    assert len(terms) == 5


def test_invalid_theory_is_value_error() -> None:
    with pytest.raises(ValueError, match="not a valid theory"):
        canonical_theory(SM[:-2])


def test_catalogue_dedups_persists_and_reloads(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    cat = DiscoveryCatalogue(tmp_path)
    assert len(cat) == 0 and SM not in cat
    assert cat.add(SM, step=7, scores={"total_reward": np.float32(12.5), "anomaly_free": True})
    assert not cat.add(shuffled(SM, rng, duplicate=True), step=8, scores={"total_reward": 1.0})
    assert cat.add(TWO_HIGGS, step=9, scores={"total_reward": 3})
    assert len(cat) == 2 and shuffled(SM, rng) in cat and ["BOS"] not in cat

    lines = (tmp_path / "discoveries.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [1, 2] and [r["step"] for r in records] == [7, 9]
    assert records[0]["tokens"] == canonical_theory(SM)
    assert records[0]["scores"] == {"total_reward": 12.5, "anomaly_free": True}
    text = (tmp_path / "discoveries" / "00001.theory").read_text()
    assert text.startswith("# Discovery 00001, found at step 7\n# scores: total_reward=12.5")
    assert parse_theory_text(text) == canonical_theory(SM)
    assert (tmp_path / "discoveries" / "00002.theory").is_file()

    # A crash left a truncated line; the resumed run still deduplicates and numbers on.
    with open(tmp_path / "discoveries.jsonl", "a") as f:
        f.write('{"id": 3, "step": 10, "tok')
    again = DiscoveryCatalogue(tmp_path)
    assert len(again) == 2 and SM in again
    assert not again.add(shuffled(TWO_HIGGS, rng), step=11, scores={})
    third = random_theory(np.random.default_rng(5))
    assert again.add(third, step=12, scores={})
    records = [json.loads(line) for line in (tmp_path / "discoveries.jsonl").read_text().splitlines()
               if line.endswith("}")]
    assert records[-1]["id"] == 3 and (tmp_path / "discoveries" / "00003.theory").is_file()
    assert len(DiscoveryCatalogue(tmp_path)) == 3


def test_catalogue_rejects_bad_scores(tmp_path: Path) -> None:
    cat = DiscoveryCatalogue(tmp_path)
    with pytest.raises(TypeError, match="score 'x'"):
        cat.add(SM, step=1, scores={"x": [1, 2]})
    assert len(cat) == 0 and not (tmp_path / "discoveries.jsonl").exists()
