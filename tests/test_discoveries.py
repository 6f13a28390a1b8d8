"""Canonical form of theories, the run's catalogue of discoveries keyed by physics model, and
the catalogue CLI (merge and listing of several runs).

Notation in the derivations: fields are written left-handed as (n_Y, SU2, SU3) with n in
units of 1/6 (an R field (n, r2, r3) is the L field (-n, conj r2, conj r3)); a field code
orders fermions by their first slot's digit n + 18, so added fields are listed by n_Y.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from theorygrpo_jax import tasks
from theorygrpo_jax.catalogue import main as catalogue_main
from theorygrpo_jax.catalogue import merge
from theorygrpo_jax.discoveries import (CatalogueError, DiscoveryCatalogue, canonical_theory,
                                        load_catalogue, model_id)
from theorygrpo_jax.grammar.recognizer import recognise
from theorygrpo_jax.grammar.text import parse_prompt_text, parse_theory_text

from .physics.theory_gen import random_theories

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


# ---------------------------------------------------------------------------
# The catalogue keyed by physics model

SM_PROMPT = parse_prompt_text(tasks.SM_FIELDS_PROMPT, "sm prompt")


def on_sm(fields: str, terms: str = "") -> list[str]:
    """A theory: the SM prompt's six fields, then `fields`, then `terms`."""
    return parse_theory_text(tasks.SM_FIELDS_PROMPT + fields + "\nEND_FIELDS\nTERMS\n" + terms
                             + "\nEND_TERMS\n")


NU_R = "  FERMION R gen_3 q_0 1 1 END\n"                         # m_7
SM_YUKAWAS = "  YUKAWA m_6 m_1 m_2 M2e-3 M1e0 M2e2 END\n  YUKAWA m_6 m_4 m_5 M5e-4 M1e-1 M2e0 END\n"
# The SM prompt plus three right-handed neutrinos, written four ways that are one model:
# (a) with the SM Yukawas; (b) other Yukawa masses; (c) the nu_R first and e_R written as its
# left-handed conjugate e^c = L q_6 1 1 (R (-6, 1, 1) -> L (6, 1, 1): the same field);
# (d) nu_R as gen_1 + gen_2 (3 copies, as gen_3).
NU_A = on_sm(NU_R, SM_YUKAWAS)
NU_B = on_sm(NU_R, SM_YUKAWAS.replace("M2e2", "M1e2").replace("M2e0", "M5e0"))
NU_C = parse_theory_text("""
GAUGE U1 SU2 SU3 END_GAUGE
FIELDS
  FERMION R gen_3 q_0 1 1 END
  FERMION L gen_3 q_-3 F 1 END
  FERMION L gen_3 q_6 1 1 END
  FERMION R gen_3 q_-2 1 F END
  FERMION R gen_3 q_4 1 F END
  FERMION L gen_3 q_1 F F END
  SCALAR CPLX VEV q_3 F 1 END
END_FIELDS
TERMS
  YUKAWA m_7 m_6 m_5 M2e2 END
END_TERMS
""")
NU_D = on_sm("  FERMION R gen_1 q_0 1 1 END\n  FERMION R gen_2 q_0 1 1 END\n")
# A 4th generation: Q (1, F, F), u^c (-4, 1, Fb), d^c (2, 1, Fb), L (-3, F, 1), e^c (6, 1, 1).
FOURTH = on_sm("""
  FERMION L gen_1 q_1 F F END
  FERMION R gen_1 q_4 1 F END
  FERMION R gen_1 q_-2 1 F END
  FERMION L gen_1 q_-3 F 1 END
  FERMION R gen_1 q_-6 1 1 END
""")
# A vector-like lepton doublet: L (-3, F, 1) and R (-3, F, 1) = L (3, F, 1), conjugates of
# each other (SU2's F is self-conjugate), so they pair: vector-like, not chiral.
VL_LEPTON = on_sm("  FERMION L gen_1 q_-3 F 1 END\n  FERMION R gen_1 q_-3 F 1 END\n")
SM_ONLY = on_sm("", SM_YUKAWAS)


def test_one_model_however_written_best_instance_kept(tmp_path: Path) -> None:
    assert model_id(NU_A) == model_id(NU_B) == model_id(NU_C) == model_id(NU_D)
    assert model_id(NU_A) != model_id(SM_ONLY)
    cat = DiscoveryCatalogue(tmp_path, prompt=SM_PROMPT)
    assert cat.add(NU_A, step=3, scores={"total_reward": 1.5})
    assert not cat.add(NU_B, step=4, scores={"total_reward": np.float32(2.5)})   # better
    assert not cat.add(NU_C, step=5, scores={"total_reward": 2.5})               # a tie: keep B
    assert not cat.add(NU_D, step=6, scores={"total_reward": 0.5})
    assert len(cat) == 1 and NU_C in cat and SM_ONLY not in cat
    (entry,) = cat.entries()
    assert (entry["id"], entry["first_step"], entry["last_step"], entry["count"],
            entry["best_step"]) == (1, 3, 6, 4, 4)
    assert entry["scores"] == {"total_reward": 2.5}
    assert entry["tokens"] == canonical_theory(NU_B) != canonical_theory(NU_A)
    # Added to the SM prompt: nu_R (0, 1, 1) x 3 -> "(1, 1)_{0} × 3"; a real singlet is its own
    # partner (Majorana mass), so the addition is vector-like and SM-neutral.
    assert entry["added"] == ["(1, 1)_{0} × 3"]
    assert entry["class"] == {"added_fields": 3, "added_fermions": 3, "adds_sm_charged": False,
                              "vector_like": True, "chiral": False, "sm_generations": 0}
    assert entry["dark_charges"] is None and entry["dark_set"] is None   # no second U1
    assert entry["key"]["gauge"] == ["U1", "SU2", "SU3"]
    # 5 SM fermion codes x 3 copies, nu_R x 3, the Higgs x 1
    assert sorted(n for _, n in entry["key"]["fields"]) == [1, 3, 3, 3, 3, 3, 3]
    assert len(entry["key"]["hash"]) == 16 and int(entry["key"]["hash"], 16) >= 0


def test_fourth_generation_is_chiral_and_vector_like_lepton_is_not(tmp_path: Path) -> None:
    cat = DiscoveryCatalogue(tmp_path, prompt=SM_PROMPT)
    assert cat.add_batch([(FOURTH, {"total_reward": 1.0}), (VL_LEPTON, {"total_reward": 2.0}),
                          (SM_ONLY, {"total_reward": 3.0}), (FOURTH, {"total_reward": 0.0})],
                         step=2) == 3
    fourth, vl, bare = cat.entries()
    # Each 4th-generation field is complex and its conjugate is not added: all 5 unpaired.
    # Labels (SU3 dim, SU2 dim)_{n/6}, ordered by n: u^c -4, L -3, Q 1, d^c 2, e^c 6.
    assert fourth["added"] == ["(3bar, 1)_{-2/3}", "(1, 2)_{-1/2}", "(3, 2)_{1/6}",
                               "(3bar, 1)_{1/3}", "(1, 1)_{1}"]
    assert fourth["class"] == {"added_fields": 5, "added_fermions": 5, "adds_sm_charged": True,
                               "vector_like": False, "chiral": True, "sm_generations": 0}
    assert fourth["count"] == 2 and fourth["scores"] == {"total_reward": 1.0}
    assert vl["added"] == ["(1, 2)_{-1/2}", "(1, 2)_{1/2}"]
    assert vl["class"] == {"added_fields": 2, "added_fermions": 2, "adds_sm_charged": True,
                           "vector_like": True, "chiral": False, "sm_generations": 0}
    assert bare["added"] == [] and bare["class"]["added_fields"] == 0
    assert cat.summary() == {"models": 3, "sm_charged": 2, "chiral": 1, "vector_like": 1,
                             "dark_sets": {}, "instances": 4}
    header = (tmp_path / "discoveries" / "00001.theory").read_text().splitlines()[:4]
    assert header == [
        "# Discovery 00001: (3bar, 1)_{-2/3} + (1, 2)_{-1/2} + (3, 2)_{1/6} + (3bar, 1)_{1/3}"
        " + (1, 1)_{1}",
        "# class: chiral, SM-charged; 5 added fields (5 fermions)",
        "# first found at step 2; seen 2 times by step 2; this instance at step 2",
        "# scores: total_reward=1"]
    assert parse_theory_text((tmp_path / "discoveries" / "00003.theory").read_text()) == \
        canonical_theory(SM_ONLY)


def test_from_scratch_removes_sm_generations(tmp_path: Path) -> None:
    # Prompt ["BOS"] (or None): up to three SM generations are removed before the pairing, so
    # the SM with its Higgs adds 16 field copies (15 fermions + 1 Higgs) but nothing chiral.
    cat = DiscoveryCatalogue(tmp_path, prompt=None)
    assert cat.add(SM_ONLY, 1, {})
    (entry,) = cat.entries()
    assert entry["class"] == {"added_fields": 16, "added_fermions": 15, "adds_sm_charged": True,
                              "vector_like": False, "chiral": False, "sm_generations": 3}
    assert entry["added"][-1] == "S(vev): (1, 2)_{1/2}"


# The SM on U1 U1 SU2 SU3 (every SM field has U(1)' charge 0).
DARK_PROMPT = """
GAUGE U1 U1 SU2 SU3 END_GAUGE
FIELDS
  FERMION L gen_3 q_1  q_0 F F END
  FERMION R gen_3 q_4  q_0 1 F END
  FERMION R gen_3 q_-2 q_0 1 F END
  FERMION L gen_3 q_-3 q_0 F 1 END
  FERMION R gen_3 q_-6 q_0 1 1 END
  SCALAR CPLX VEV q_3 q_0 F 1 END
"""


def dark_theory(fields: str) -> list[str]:
    return parse_theory_text(DARK_PROMPT + fields + "END_FIELDS\nTERMS\nEND_TERMS\n")


def test_dark_charges_and_their_canonical_set(tmp_path: Path) -> None:
    # Added: five SM singlets with U(1)' charges 1, 5, -7, -8, 9 (-7 and -8 written as R fields
    # of charge 7 and 8, conjugated), a sterile neutrino of charge 0 (no U(1)' charge: left out)
    # and a hypercharged field (Y = 1/6 != 0: not a singlet, left out).
    # Sum z = 1 + 5 - 7 - 8 + 9 = 0; sum z^3 = 1 + 125 - 343 - 512 + 729 = 0: anomaly free.
    # No zero and no pair z, -z: chiral. gcd 1; sorted(z) = (-8, -7, 1, 5, 9) is larger than
    # sorted(-z) = (-9, -5, -1, 7, 8), so the canonical set is (-8, -7, 1, 5, 9).
    good = dark_theory("""
      FERMION L gen_1 q_0 q_1 1 1 END
      FERMION L gen_1 q_0 q_5 1 1 END
      FERMION R gen_1 q_0 q_7 1 1 END
      FERMION R gen_1 q_0 q_8 1 1 END
      FERMION L gen_1 q_0 q_9 1 1 END
      FERMION L gen_1 q_0 q_0 1 1 END
      FERMION L gen_1 q_1 q_3 1 1 END
    """)
    # Charges 2, 2, -3 (one field, gen_2): sum 1 != 0, anomalous -> charges but no set.
    bad = dark_theory("  FERMION L gen_2 q_0 q_2 1 1 END\n  FERMION L gen_1 q_0 q_-3 1 1 END\n")
    prompt = parse_prompt_text(DARK_PROMPT)
    cat = DiscoveryCatalogue(tmp_path, prompt=prompt)
    cat.add_batch([(good, {"total_reward": 1.0}), (bad, {"total_reward": 1.0})], step=1)
    g, b = cat.entries()
    assert g["dark_charges"] == [-8, -7, 1, 5, 9] and g["dark_set"] == [-8, -7, 1, 5, 9]
    assert g["class"]["chiral"] and g["class"]["adds_sm_charged"]     # the hypercharged field
    assert b["dark_charges"] == [-3, 2, 2] and b["dark_set"] is None
    assert cat.summary()["dark_sets"] == {5: 1}
    # The same theories on the 3-factor SM prompt: other gauge group, nothing shared, all added.
    other = DiscoveryCatalogue(tmp_path / "other", prompt=SM_PROMPT)
    other.add(good, 1, {})
    assert other.entries()[0]["dark_set"] == [-8, -7, 1, 5, 9]
    assert other.entries()[0]["class"]["added_fields"] == 15 + 1 + 7


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "discoveries.jsonl").read_text().splitlines()]


def test_reload_equals_memory_after_updates_and_a_truncated_line(tmp_path: Path, caplog) -> None:
    cat = DiscoveryCatalogue(tmp_path, prompt=SM_PROMPT)
    assert cat.add_batch([(NU_A, {"total_reward": 1.0, "anomaly_free": True}),
                          (FOURTH, {"total_reward": 2.0})], step=1) == 2
    assert cat.add_batch([(NU_D, {"total_reward": 0.5})], step=2) == 0     # a count update
    first = (tmp_path / "discoveries" / "00001.theory").read_text()
    assert cat.add_batch([(NU_B, {"total_reward": 3.0})], step=3) == 0     # a better instance
    records = read_records(tmp_path)
    assert records[0] == {"prompt": SM_PROMPT}
    assert [r["id"] for r in records[1:]] == [1, 2, 1, 1]
    assert records[3] == {"id": 1, "last_step": 2, "count": 2}            # only what changed
    assert set(records[4]) == {"id", "last_step", "count", "best_step", "scores", "tokens"}
    second = (tmp_path / "discoveries" / "00001.theory").read_text()
    assert "total_reward=1" in first and "total_reward=3" in second
    assert parse_theory_text(second) == canonical_theory(NU_B)
    assert DiscoveryCatalogue(tmp_path).entries() == cat.entries()
    assert load_catalogue(tmp_path) == cat.entries()

    # A crash left a truncated line: skipped with a warning; the resumed run numbers on.
    with open(tmp_path / "discoveries.jsonl", "a") as f:
        f.write('{"id": 1, "count": 9, "tok')
    with caplog.at_level(logging.WARNING):
        again = DiscoveryCatalogue(tmp_path, prompt=SM_PROMPT)
    assert "discoveries.jsonl:6: skipping unreadable line" in caplog.text
    assert again.entries() == cat.entries() and len(again) == 2
    assert again.add_batch([(VL_LEPTON, {}), (NU_C, {"total_reward": 0.0})], step=4) == 1
    assert again.entries()[-1]["id"] == 3 and (tmp_path / "discoveries" / "00003.theory").is_file()
    assert again.entries()[0]["count"] == 4
    assert DiscoveryCatalogue(tmp_path).entries() == again.entries()
    assert not DiscoveryCatalogue(tmp_path)._changed   # nothing to rewrite after a clean load


def test_random_adds_and_flushes_reload_exactly(tmp_path: Path) -> None:
    # Property: over random theories (generic generator, many gauge groups) added in random
    # order with repeats and random rewards, flushed at random points, the catalogue has one
    # entry per distinct model with the instances counted, and reading the file back gives
    # the in-memory catalogue.
    rng = np.random.default_rng(7)
    pool = random_theories(rng, 120)
    prompt = None
    cat = DiscoveryCatalogue(tmp_path, prompt=prompt)
    counts: Counter = Counter()
    best: dict = {}
    for step in range(1, 41):
        rows = []
        for i in rng.integers(len(pool), size=int(rng.integers(0, 60))):
            reward = float(rng.integers(0, 5))
            rows.append((pool[i], {"total_reward": reward}))
            counts[model_id(pool[i])] += 1
            best[model_id(pool[i])] = max(best.get(model_id(pool[i]), -1.0), reward)
        cat.add_batch(rows, step)
        if rng.random() < 0.2:
            reloaded = DiscoveryCatalogue(tmp_path)
            assert reloaded.entries() == cat.entries()
    entries = cat.entries()
    assert len(entries) == len(counts) and sum(counts.values()) > 1000
    assert {model_id(e["tokens"]): e["count"] for e in entries} == dict(counts)
    assert {model_id(e["tokens"]): e["scores"]["total_reward"] for e in entries} == best
    assert DiscoveryCatalogue(tmp_path).entries() == entries


def test_older_token_keyed_catalogue_is_folded_by_model(tmp_path: Path) -> None:
    # The former format: one line per distinct token string {id, step, tokens, scores}.
    old = [{"id": 1, "step": 5, "tokens": canonical_theory(NU_A), "scores": {"total_reward": 1.0}},
           {"id": 2, "step": 6, "tokens": canonical_theory(FOURTH), "scores": {}},
           {"id": 3, "step": 7, "tokens": canonical_theory(NU_B), "scores": {"total_reward": 2.0}}]
    (tmp_path / "discoveries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    cat = DiscoveryCatalogue(tmp_path, prompt=SM_PROMPT)
    nu, fourth = cat.entries()
    assert (nu["id"], nu["count"], nu["first_step"], nu["best_step"]) == (1, 2, 5, 7)
    assert nu["tokens"] == canonical_theory(NU_B) and fourth["id"] == 2
    cat.flush()
    assert {"id": 3, "merged_into": 1} in read_records(tmp_path)
    assert DiscoveryCatalogue(tmp_path).entries() == cat.entries()
    assert cat.add(VL_LEPTON, 8, {}) and cat.entries()[-1]["id"] == 4


def test_catalogue_rejects_bad_scores_and_theories(tmp_path: Path) -> None:
    cat = DiscoveryCatalogue(tmp_path)
    with pytest.raises(TypeError, match="score 'x'"):
        cat.add(SM, step=1, scores={"x": [1, 2]})
    with pytest.raises(ValueError, match="not a valid theory"):
        cat.add(SM[:-2], step=1, scores={})
    cat.flush()
    assert len(cat) == 0 and not (tmp_path / "discoveries.jsonl").exists()


def test_invalid_record_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "discoveries.jsonl").write_text(
        json.dumps({"id": 1, "first_step": 1, "tokens": NU_A}) + "\n"
        + json.dumps({"id": 2, "first_step": 1, "tokens": ["BOS", "GAUGE"]}) + "\n")
    with pytest.raises(CatalogueError, match=r"discoveries.jsonl:2: invalid record: .*not a valid"):
        DiscoveryCatalogue(tmp_path)
    (tmp_path / "discoveries.jsonl").write_text(json.dumps({"id": 1, "tokens": NU_A}) + "\n")
    with pytest.raises(CatalogueError, match=r"discoveries.jsonl:1: record has no 'step'"):
        DiscoveryCatalogue(tmp_path)


# ---------------------------------------------------------------------------
# Merge and the CLI


def two_runs(root: Path) -> tuple[Path, Path]:
    """Run a finds NU at step 5 (twice, best 4.0) and FOURTH; run b finds NU first, at step 3,
    with a lower reward (1.0), and VL_LEPTON."""
    a, b = root / "a", root / "b"
    cat = DiscoveryCatalogue(a, prompt=SM_PROMPT)
    cat.add_batch([(FOURTH, {"total_reward": 2.0})], step=1)
    cat.add_batch([(NU_A, {"total_reward": 4.0}), (NU_C, {"total_reward": 0.0})], step=5)
    cat = DiscoveryCatalogue(b, prompt=SM_PROMPT)
    cat.add_batch([(NU_B, {"total_reward": 1.0})], step=3)
    cat.add_batch([(VL_LEPTON, {"total_reward": 3.0})], step=4)
    return a, b


def test_merge_of_two_runs(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path)
    merged = merge([("a", load_catalogue(a)), ("b", load_catalogue(b))])
    assert [(e["run"], e["id"], e["first_step"]) for e in merged] == [("a", 1, 1), ("b", 1, 3),
                                                                     ("b", 2, 4)]
    nu = merged[1]
    assert nu["count"] == 3 and (nu["best_run"], nu["best_step"]) == ("a", 5)
    assert nu["scores"] == {"total_reward": 4.0} and nu["tokens"] == canonical_theory(NU_A)
    assert nu["runs"] == [{"run": "a", "id": 2, "first_step": 5, "count": 2},
                          {"run": "b", "id": 1, "first_step": 3, "count": 1}]
    assert nu["added"] == ["(1, 1)_{0} × 3"]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = catalogue_main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_formats_and_filters(tmp_path: Path, capsys) -> None:
    a, b = two_runs(tmp_path)
    code, out, _ = run_cli([str(a), str(b), "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert [(r["run"], r["id"], r["count"]) for r in rows] == [(str(a), 1, 1), (str(b), 1, 3),
                                                               (str(b), 2, 1)]
    code, out, _ = run_cli([str(a), str(b), "--csv", "--sort", "count"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["count"] for r in rows] == ["3", "1", "1"]
    assert rows[0]["added"] == "(1, 1)_{0} × 3" and rows[0]["chiral"] == "False"
    assert rows[0]["runs"] == f"{a}#2 {b}#1" and rows[0]["total_reward"] == "4.0"
    code, out, _ = run_cli([str(a), str(b), "--chiral", "--json"], capsys)
    assert [r["added"][0] for r in json.loads(out)] == ["(3bar, 1)_{-2/3}"]     # the 4th gen
    code, out, _ = run_cli([str(a), str(b), "--markdown", "--sort", "reward", "--limit", "2"],
                           capsys)
    lines = out.splitlines()
    assert lines[0] == "| id | run | first step | count | reward | class | added fields |"
    assert len(lines) == 4 and lines[2].startswith(f"| 00001 | {b} | 3 | 3 | 4 |")
    assert "`(1, 1)_{0} × 3`" in lines[2]
    code, out, _ = run_cli([str(a), str(b), "--sm-charged", "--sort", "fields"], capsys)
    lines = out.splitlines()
    assert lines[0].split() == ["id", "run", "first", "step", "count", "reward", "class", "added",
                                "fields"]
    assert "vector-like, SM-charged" in lines[1] and "(1, 2)_{-1/2} + (1, 2)_{1/2}" in lines[1]
    assert "chiral, SM-charged" in lines[2] and lines[3] == "2 of 3 models from 2 run(s)"


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys) -> None:
    a, _ = two_runs(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / "discoveries.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "discoveries.jsonl").write_text('{"id": "x", "tokens": []}\n')
    cases = {str(tmp_path / "missing"): "no such directory",
             str(a / "discoveries.jsonl"): "not a run directory",
             str(empty): "no discoveries.jsonl",
             str(binary): "not a text file",
             str(bad): "'id' must be a positive integer"}
    for path, message in cases.items():
        code, out, err = run_cli([path], capsys)
        assert code == 2 and out == "" and len(err.splitlines()) == 1, (path, err)
        assert err.startswith(f"error: {path}") and message in err, err
    code, _, err = run_cli([str(a), str(a) + "/"], capsys)
    assert code == 2 and "given twice" in err and len(err.splitlines()) == 1


def singlets(*charges: int) -> list[str]:
    """A dark theory adding one left-handed SM-singlet fermion per U(1)' charge (q_n units)."""
    return dark_theory("".join(f"  FERMION L gen_1 q_0 q_{z} 1 1 END\n" for z in charges))


def test_cli_dark_sets_counts_each_charge_set_once(tmp_path: Path, capsys) -> None:
    # (1, 5, -7, -8, 9): sum 0, cubes 1 + 125 - 343 - 512 + 729 = 0, canonical (-8, -7, 1, 5, 9)
    # (see test_dark_charges_and_their_canonical_set). Written three ways, three models: as is,
    # doubled (2, 10, -14, -16, 18) and sign-flipped (-1, -5, 7, 8, -9); one U(1)'.
    # (2, 4, -7, -9, 10): sum 0, cubes 8 + 64 - 343 - 729 + 1000 = 0, chiral; sorted(z) =
    # (-9, -7, 2, 4, 10) > sorted(-z) = (-10, -4, -2, 7, 9), so that is its canonical form.
    # (1, 2, -3): sum 0, cubes 1 + 8 - 27 != 0: anomalous, no set.
    a, b = tmp_path / "a", tmp_path / "b"
    prompt = parse_prompt_text(DARK_PROMPT)
    cat = DiscoveryCatalogue(a, prompt=prompt)
    cat.add_batch([(singlets(1, 5, -7, -8, 9), {"total_reward": 1.0}),
                   (singlets(1, 2, -3), {"total_reward": 0.5})], step=1)
    cat.add_batch([(singlets(2, 10, -14, -16, 18), {"total_reward": 3.0}),
                   (singlets(2, 4, -7, -9, 10), {"total_reward": 2.0})], step=2)
    cat.add_batch([(singlets(-1, -5, 7, 8, -9), {"total_reward": 0.0})], step=3)
    cat = DiscoveryCatalogue(b, prompt=prompt)
    cat.add_batch([(singlets(1, 5, -7, -8, 9), {"total_reward": 1.0})] * 2, step=1)

    code, out, _ = run_cli([str(a), str(b), "--dark-sets", "--json"], capsys)
    assert code == 0
    first, second = json.loads(out)
    assert first["charges"] == [-8, -7, 1, 5, 9] and first["n"] == 5
    assert first["models"] == [f"{a}#1", f"{a}#3", f"{a}#5"]   # b's copy merged into a#1
    assert first["count"] == 1 + 2 + 1 + 1 and first["best"] == f"{a}#3"
    assert (first["run"], first["id"], first["first_step"]) == (str(a), 1, 1)
    assert second["charges"] == [-9, -7, 2, 4, 10] and second["models"] == [f"{a}#4"]

    code, out, _ = run_cli([str(a), str(b), "--dark-sets", "--sort", "reward"], capsys)
    lines = out.splitlines()   # the charge set last, as the added fields in the model table
    assert lines[0].split() == ["n", "first", "step", "first", "found", "models", "count", "best",
                                "reward", "charge", "set"]
    assert lines[1].split() == ["5", "1", f"{a}#1", "3", "5", "3", "(-8,", "-7,", "1,", "5,", "9)"]
    assert lines[2].split()[-5:] == ["(-9,", "-7,", "2,", "4,", "10)"]
    assert lines[3] == "2 chiral anomaly-free charge set(s) (n = 5: 2) in 4 model(s)"

    # Costa, Dobrescu and Fox (PRL 123, 151601, 2019): with five charges and |z| <= 10 the
    # chiral anomaly-free sets are (1, 5, -7, -8, 9) and (2, 4, -7, -9, 10) alone, so with
    # |z| <= 9 only the first; a run that found both covers 1 of 1 at 9 and 2 of 2 at 10.
    for zmax, text in ((9, "n = 5: 1 of 1"), (10, "n = 5: 2 of 2")):
        code, out, _ = run_cli([str(a), "--dark-sets", "--zmax", str(zmax)], capsys)
        assert out.splitlines()[-1] == f"coverage of the sets with |z| <= {zmax}: {text}"

    code, out, _ = run_cli([str(a), "--dark-sets", "--markdown", "--limit", "1"], capsys)
    assert out.splitlines() == [
        "| charge set | n | first step | first found | models | count | best reward |",
        "|---|---|---|---|---|---|---|",
        f"| (-8, -7, 1, 5, 9) | 5 | 1 | {a}#1 | 3 | 3 | 3 |"]
    code, out, err = run_cli([str(a), "--zmax", "9"], capsys)
    assert code == 2 and out == "" and err.startswith("error: --zmax 9") and len(err.splitlines()) == 1


def test_cli_dark_sets_sort_by_fields_counts_charges(tmp_path: Path, capsys) -> None:
    # (1, 1, 1, -4, -4, 5): sum 3 - 8 + 5 = 0, cubes 3 - 128 + 125 = 0, no zero and no z, -z
    # pair: a chiral anomaly-free set of six; sorted(z) = (-4, -4, 1, 1, 1, 5) > sorted(-z) =
    # (-5, -1, -1, -1, 4, 4), its canonical form. Found before the five-charge set, listed
    # after it by --sort fields (fewest charges first).
    prompt = parse_prompt_text(DARK_PROMPT)
    cat = DiscoveryCatalogue(tmp_path / "a", prompt=prompt)
    cat.add_batch([(singlets(1, 1, 1, -4, -4, 5), {"total_reward": 1.0})], step=1)
    cat.add_batch([(singlets(1, 5, -7, -8, 9), {"total_reward": 1.0})], step=2)
    code, out, _ = run_cli([str(tmp_path / "a"), "--dark-sets", "--json"], capsys)
    assert [g["charges"] for g in json.loads(out)] == [[-4, -4, 1, 1, 1, 5], [-8, -7, 1, 5, 9]]
    code, out, _ = run_cli([str(tmp_path / "a"), "--dark-sets", "--sort", "fields", "--json"],
                           capsys)
    assert code == 0
    assert [g["n"] for g in json.loads(out)] == [5, 6]


def test_cli_fermions_groups_models_by_their_added_fermions(tmp_path: Path, capsys) -> None:
    # Run a: three nu_R (NU_A), the same with a singlet scalar (another model, the same matter),
    # a 4th generation, the same with a leptoquark scalar (3, 1)_{-1/3} (q_-2, SU3 F);
    # run b: the vector-like lepton doublet and NU_B (NU_A's model, merged into a#1).
    scalar = "  SCALAR CPLX NOVEV q_0 1 1 END\n"
    leptoquark = "  SCALAR CPLX NOVEV q_-2 1 F END\n"
    fourth_fields = """
  FERMION L gen_1 q_1 F F END
  FERMION R gen_1 q_4 1 F END
  FERMION R gen_1 q_-2 1 F END
  FERMION L gen_1 q_-3 F 1 END
  FERMION R gen_1 q_-6 1 1 END
"""
    a, b = tmp_path / "a", tmp_path / "b"
    cat = DiscoveryCatalogue(a, prompt=SM_PROMPT)
    cat.add_batch([(NU_A, {"total_reward": 1.0}), (on_sm(NU_R + scalar), {"total_reward": 2.0})],
                  step=1)
    cat.add_batch([(FOURTH, {"total_reward": 3.0}),
                   (on_sm(fourth_fields + leptoquark), {"total_reward": 4.0})], step=2)
    cat = DiscoveryCatalogue(b, prompt=SM_PROMPT)
    cat.add_batch([(VL_LEPTON, {"total_reward": 0.5}), (NU_B, {"total_reward": 0.0})], step=1)

    code, out, _ = run_cli([str(a), str(b), "--fermions", "--json"], capsys)
    assert code == 0
    groups = json.loads(out)
    assert [g["fermions"] for g in groups] == [
        ["(1, 1)_{0} × 3"], ["(1, 2)_{-1/2}", "(1, 2)_{1/2}"],
        ["(3bar, 1)_{-2/3}", "(1, 2)_{-1/2}", "(3, 2)_{1/6}", "(3bar, 1)_{1/3}", "(1, 1)_{1}"]]
    nu, vl, fourth = groups
    assert nu["models"] == [f"{a}#1", f"{a}#2"] and nu["count"] == 3 and nu["best"] == f"{a}#2"
    assert nu["gauge"] == ["U1", "SU2", "SU3"] and nu["class"] == "vector-like"
    assert vl["models"] == [f"{b}#1"] and vl["class"] == "vector-like"
    assert fourth["models"] == [f"{a}#3", f"{a}#4"] and fourth["class"] == "chiral"
    assert fourth["best"] == f"{a}#4" and (fourth["run"], fourth["first_step"]) == (str(a), 2)

    code, out, _ = run_cli([str(a), str(b), "--fermions", "--chiral"], capsys)
    lines = out.splitlines()
    assert lines[0].split() == ["class", "first", "step", "first", "found", "models", "count",
                                "best", "reward", "added", "fermions"]
    assert lines[1].split()[:6] == ["chiral", "2", f"{a}#3", "2", "2", "4"]
    assert lines[1].endswith("(3bar, 1)_{-2/3} + (1, 2)_{-1/2} + (3, 2)_{1/6} + (3bar, 1)_{1/3} "
                             "+ (1, 1)_{1}")
    assert lines[2] == "1 fermion content(s) (chiral: 1) in 2 model(s)"
    code, out, _ = run_cli([str(a), str(b), "--fermions", "--sort", "count"], capsys)
    assert out.splitlines()[1].split()[0] == "vector-like"      # the nu_R: 3 instances
    assert out.splitlines()[-1] == "3 fermion content(s) (chiral: 1, vector-like: 2) in 5 model(s)"
    code, out, err = run_cli([str(a), "--fermions", "--dark-sets"], capsys)
    assert code == 2 and out == "" and "choose one" in err and len(err.splitlines()) == 1
