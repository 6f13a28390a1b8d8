"""Model keys, hashes and classes (`physics.identity`) against the plain-Python twin and by hand.

Every JAX evaluation goes through ONE jitted function of one shape [BATCH, LEN]
(keys of theories and prompts, both hashes, the class), so the module compiles once.

Notation in the derivations: fields are written left-handed as (n_Y, SU2, SU3) with
n in units of 1/6; an R field (n, r2, r3) is the L field (−n, r̄2, r̄3). The SM prompt
key is Q (1, F, F) ×3, u^c (−4, 1, Fb) ×3, d^c (2, 1, Fb) ×3, L (−3, F, 1) ×3,
e^c (6, 1, 1) ×3 and the Higgs (CPLX VEV, ±3, F, 1) ×1.
"""

from __future__ import annotations

from collections import Counter

import jax
import numpy as np
import pytest

from theorygrpo_jax import tasks
from theorygrpo_jax.grammar import recognizer, text
from theorygrpo_jax.physics import identity as I
from theorygrpo_jax.physics import identity_reference as IR
from theorygrpo_jax.physics import notation as N
from theorygrpo_jax.physics import reference as R
from theorygrpo_jax.physics.record import tokens_to_ids

from .helpers import SM_FIELDS, sm, theory
from .theory_gen import random_theories

BATCH, LEN = 2048, 256
N_RANDOM = 2000
CLASS_FIELDS = ("added_fields", "added_fermions", "adds_sm_charged", "sm_generations",
                "vector_like", "chiral")
SM_PROMPT = text.parse_prompt_text(tasks.SM_FIELDS_PROMPT, "sm prompt")
BOS = ["BOS"]


@jax.jit
def _analyse(ids, prompt_ids, sm_group):
    keys = jax.vmap(I.model_key_of_tokens)(ids)
    pkeys = jax.vmap(I.model_key_of_tokens)(prompt_ids)
    return (keys, pkeys, jax.vmap(I.key_hash)(keys), jax.vmap(I.key_hash64)(keys),
            jax.vmap(I.model_class)(keys, pkeys, sm_group))


def run(cases: list[tuple[list[str], list[str], bool]]) -> list[dict]:
    """JAX results per (theory, prompt, sm_group), padded to the one compiled shape."""
    assert 0 < len(cases) <= BATCH
    padded = cases + [cases[0]] * (BATCH - len(cases))
    ids = tokens_to_ids([c[0] for c in padded], LEN)
    pids = tokens_to_ids([c[1] for c in padded], LEN)
    keys, pkeys, h, h64, cls = jax.device_get(_analyse(ids, pids, np.array([c[2] for c in padded])))
    out = []
    for b in range(len(cases)):
        row = lambda tree: jax.tree_util.tree_map(lambda x: x[b], tree)  # noqa: E731
        out.append(dict(key=row(keys), prompt_key=row(pkeys), hash=int(h[b]),
                        hash64=tuple(int(x) for x in h64[b]),
                        cls={f: getattr(cls, f)[b].item() for f in CLASS_FIELDS}))
    return out


def key_tuple(key) -> tuple:
    return (tuple(np.asarray(key.gauge).tolist()), tuple(np.asarray(key.codes).tolist()),
            tuple(np.asarray(key.counts).tolist()))


# ---------------------------------------------------------------------------
# Random theories: the generic generator plus SM-generation soups (from-scratch removal)

_SM_LH = [(1, "F", "F"), (-4, "1", "Fb"), (2, "1", "Fb"), (-3, "F", "1"), (6, "1", "1")]
_SM_GAUGES = [["U1", "SU2", "SU3"], ["U1", "SU2", "SU3", "SU3"], ["U1", "U1", "SU2", "SU3"],
              ["U1", "SU2", "SU3", "SU5"], ["U1", "SU2", "SU2", "SU3"]]


def _conj(gauge, slots):
    return [-s if g == "U1" else R.conj_rep(g, s) for g, s in zip(gauge, slots)]


def _tokens(gauge, fields) -> list[str]:
    toks = ["BOS", "GAUGE", *gauge, "END_GAUGE", "FIELDS"]
    for head, a, b, slots in fields:
        toks += [head, a, b] + [f"q_{s}" if g == "U1" else s for g, s in zip(gauge, slots)] + ["END"]
    return toks + ["END_FIELDS", "TERMS", "END_TERMS", "EOS"]


def sm_soup(rng) -> list[str]:
    """SM fermions in random generation chunks and chiralities, plus typical extensions."""
    gauge = _SM_GAUGES[int(rng.integers(len(_SM_GAUGES)))]
    first = {g: gauge.index(g) for g in ("U1", "SU2", "SU3")}

    def slots_of(y, r2, r3):
        s = [0 if g == "U1" else "1" for g in gauge]
        s[first["U1"]], s[first["SU2"]], s[first["SU3"]] = y, r2, r3
        extra = [k for k in range(len(gauge)) if k not in first.values()]
        if extra and rng.random() < 0.1:   # charged under the extra factor: no longer SM
            k = extra[0]
            s[k] = 1 if gauge[k] == "U1" else "F"
        return s

    fields = []
    for y, r2, r3 in _SM_LH:
        n = int(rng.choice([0, 1, 2, 3, 3, 3, 4, 5, 6]))
        while n > 0:
            k = int(rng.integers(1, min(n, 4) + 1))
            n -= k
            s = slots_of(y, r2, r3)
            fields.append(("FERMION", "L", f"gen_{k}", s) if rng.random() < 0.5
                          else ("FERMION", "R", f"gen_{k}", _conj(gauge, s)))
    for _ in range(int(rng.integers(0, 5))):
        u = rng.random()
        gen = f"gen_{int(rng.integers(1, 5))}"
        if u < 0.2:     # ν^c-like singlet (real), either chirality
            fields.append(("FERMION", str(rng.choice(["L", "R"])), gen, slots_of(0, "1", "1")))
        elif u < 0.4:   # Y = 0 doublet: pseudo-real
            fields.append(("FERMION", "L", gen, slots_of(0, "F", "1")))
        elif u < 0.7:   # a vector-like pair, or an unequal pair
            y, r2, r3 = _SM_LH[int(rng.integers(5))]
            s = slots_of(y + int(rng.choice([0, 6])), r2, r3)
            gen2 = gen if rng.random() < 0.7 else f"gen_{int(rng.integers(1, 5))}"
            fields += [("FERMION", "L", gen, s), ("FERMION", "R", gen2, s)]
        else:           # scalars
            real = rng.random() < 0.3
            s = slots_of(0, "Adj", "1") if real else slots_of(int(rng.choice([3, -3, 2])), "F", "1")
            fields.append(("SCALAR", "REAL" if real else "CPLX", str(rng.choice(["VEV", "NOVEV"])), s))
    order = rng.permutation(len(fields))[:16]
    fields = [fields[i] for i in order] or [("FERMION", "L", "gen_1", slots_of(0, "1", "1"))]
    return _tokens(gauge, fields)


def equivalent(rng, toks: list[str]) -> list[str]:
    """The same model written differently: fields shuffled, fermions flipped to their
    conjugate with the other chirality, generations split, complex scalars conjugated,
    terms dropped."""
    th = R.parse_tokens(toks)
    fields = []
    room = 16 - len(th.fields)
    for f in th.fields:
        if f.fermion:
            parts = [f.gen]
            if f.gen > 1 and room > 0 and rng.random() < 0.5:
                a = int(rng.integers(1, f.gen))
                parts, room = [a, f.gen - a], room - 1
            for n in parts:
                flip = rng.random() < 0.5
                chir = ("R" if f.chirality == "L" else "L") if flip else f.chirality
                fields.append(("FERMION", chir, f"gen_{n}", _conj(th.gauge, f.slots) if flip else f.slots))
        else:
            s = _conj(th.gauge, f.slots) if (not f.real and rng.random() < 0.5) else f.slots
            fields.append(("SCALAR", "REAL" if f.real else "CPLX", "VEV" if f.vev else "NOVEV", s))
    return _tokens(th.gauge, [fields[i] for i in rng.permutation(len(fields))])


def prefix(toks: list[str], n_fields: int) -> list[str]:
    """The prompt made of a theory's gauge block and its first n_fields fields."""
    i = toks.index("FIELDS") + 1
    for _ in range(n_fields):
        i = toks.index("END", i) + 1
    return toks[:i]


@pytest.fixture(scope="module")
def random_cases():
    rng = np.random.default_rng(20250611)
    theories = random_theories(rng, N_RANDOM, LEN)
    theories += [sm_soup(rng) for _ in range(BATCH - N_RANDOM)]
    cases = []
    for t in theories:
        u = rng.random()
        if u < 0.35:
            prompt = BOS
        elif u < 0.7:
            prompt = prefix(t, int(rng.integers(0, len(R.parse_tokens(t).fields) + 1)))
        else:
            prompt = SM_PROMPT
        cases.append((t, prompt, bool(rng.random() < 0.8)))
    return cases, run(cases)


def test_generated_theories_are_grammar_valid(random_cases):
    cases, _ = random_cases
    bad = [c[0] for c in cases if not recognizer.recognise(c[0], LEN).accepted]
    assert not bad, recognizer.recognise(bad[0], LEN).error


def test_key_matches_reference_on_random_theories(random_cases):
    cases, out = random_cases
    assert len(cases) >= 2000
    for (toks, prompt, _), res in zip(cases, out):
        ref = IR.reference_model_key(toks)
        assert key_tuple(res["key"]) == tuple(map(tuple, IR.reference_key_arrays(ref))), toks
        pref = IR.reference_model_key(prompt)
        assert key_tuple(res["prompt_key"]) == tuple(map(tuple, IR.reference_key_arrays(pref))), prompt
        # the host decoder inverts the code: the reference descriptors come back
        gauge, items = I.key_items(res["key"])
        assert [(I.decode_code(c, gauge), n) for c, n in items] == list(ref[1])


def test_class_matches_reference_on_random_theories(random_cases):
    cases, out = random_cases
    seen = Counter()
    for (toks, prompt, sm_group), res in zip(cases, out):
        want = IR.reference_model_class(toks, prompt, sm_group)
        assert res["cls"] == want, (toks, prompt, sm_group)
        seen.update(k for k, v in want.items() if v is True)
        seen["removed"] += want["sm_generations"] > 0
    # every branch is exercised often
    for k in ("adds_sm_charged", "vector_like", "chiral", "removed"):
        assert seen[k] >= 50, seen


def test_hash_matches_reference(random_cases):
    cases, out = random_cases
    for (toks, _, _), res in zip(cases, out):
        ref = IR.reference_model_key(toks)
        assert res["hash"] == IR.reference_key_hash(ref)
        assert res["hash64"] == (IR.reference_key_hash(ref, I.HASH_SEED_HI), res["hash"])


def test_hash_collisions_are_rare(random_cases):
    _, out = random_cases
    by_key = {key_tuple(r["key"]): (r["hash"], r["hash64"]) for r in out}
    distinct = len(by_key)
    assert distinct > 1500
    h32 = Counter(h for h, _ in by_key.values())
    h64 = Counter(h for _, h in by_key.values())
    # ~1700 distinct keys: n²/2 / 2³² ≈ 3e-4 expected 32-bit collisions, 64-bit ≈ 1e-13
    assert sum(c - 1 for c in h32.values()) <= 1
    assert sum(c - 1 for c in h64.values()) == 0
    # novelty-table use: the low bits spread evenly (64 buckets, ~27 per bucket on average)
    buckets = Counter(h % 64 for h in h32)
    assert max(buckets.values()) < 3 * distinct / 64 and len(buckets) == 64


def test_equivalent_rewritings_have_the_same_key_and_hash(random_cases):
    cases, out = random_cases
    rng = np.random.default_rng(7)
    picks = [int(i) for i in rng.choice(len(cases), BATCH, replace=False)]
    variants = [(equivalent(rng, cases[i][0]), BOS, False) for i in picks]
    for i, res in zip(picks, run(variants)):
        assert key_tuple(res["key"]) == key_tuple(out[i]["key"]), cases[i][0]
        assert (res["hash"], res["hash64"]) == (out[i]["hash"], out[i]["hash64"])


# ---------------------------------------------------------------------------
# Hand-derived cases

G1 = ("FERMION L gen_1 q_1 F F END\nFERMION R gen_1 q_4 1 F END\nFERMION R gen_1 q_-2 1 F END\n"
      "FERMION L gen_1 q_-3 F 1 END\nFERMION R gen_1 q_-6 1 1 END\n")
DARK_SM6 = """
  FERMION L gen_3 q_1  q_0 F F END
  FERMION R gen_3 q_4  q_0 1 F END
  FERMION R gen_3 q_-2 q_0 1 F END
  FERMION L gen_3 q_-3 q_0 F 1 END
  FERMION R gen_3 q_-6 q_0 1 1 END
  SCALAR CPLX VEV q_3 q_0 F 1 END
"""
DARK_PROMPT = text.parse_prompt_text("GAUGE U1 U1 SU2 SU3 END_GAUGE\nFIELDS\n" + DARK_SM6, "dark prompt")
DARK_FIELDS = DARK_SM6 + """
  FERMION L gen_1 q_0 q_1  1 1 END
  FERMION L gen_1 q_0 q_5  1 1 END
  FERMION L gen_1 q_0 q_-7 1 1 END
  FERMION L gen_1 q_0 q_-8 1 1 END
  FERMION L gen_1 q_0 q_9  1 1 END
"""
# examples/theories/dark_u1_vectorlike.theory: chi_L, chi_R with (Y, Y') = (-1, 1), a dark Higgs
DARK_VL_FIELDS = DARK_SM6 + """
  FERMION L gen_1 q_-6 q_6 1 1 END
  FERMION R gen_1 q_-6 q_6 1 1 END
  SCALAR CPLX VEV q_0 q_12 1 1 END
"""
SM_NO_TERMS = sm(terms="")

CASES = {
    # -- relative to the SM prompt (not empty: sm_group changes nothing)
    "4th_gen": (sm(G1), SM_PROMPT, True),
    "vl_lepton": (sm("FERMION L gen_1 q_-3 F 1 END\nFERMION R gen_1 q_-3 F 1 END"), SM_PROMPT, True),
    "leptoquark": (sm("SCALAR CPLX NOVEV q_2 1 Fb END"), SM_PROMPT, True),
    "octet": (sm("SCALAR REAL NOVEV q_0 1 Adj END"), SM_PROMPT, True),
    "nu_r": (sm("FERMION R gen_3 q_0 1 1 END"), SM_PROMPT, True),
    "pseudo_1": (sm("FERMION L gen_1 q_0 F 1 END"), SM_PROMPT, True),
    "pseudo_2": (sm("FERMION L gen_2 q_0 F 1 END"), SM_PROMPT, True),
    "sm_itself": (sm(), SM_PROMPT, True),
    # -- from scratch
    "su5": (theory("SU5", "FERMION L gen_1 Fb END\nFERMION L gen_1 A2 END"), BOS, True),
    "sm_scratch": (sm(), BOS, True),
    "sm_scratch_no_removal": (sm(), BOS, False),
    "sm4_scratch": (sm(G1), BOS, True),
    "sm_nu_r_scratch": (sm("FERMION R gen_3 q_0 1 1 END"), BOS, True),
    "bidoublet": (theory("SU2 SU2", "FERMION L gen_1 F F END"), BOS, True),
    "dark_vl_scratch": (theory("U1 U1 SU2 SU3", DARK_VL_FIELDS), BOS, True),
    # -- dark U(1)' charges
    "dark": (theory("U1 U1 SU2 SU3", DARK_FIELDS), DARK_PROMPT, True),
    "dark_scratch": (theory("U1 U1 SU2 SU3", DARK_FIELDS), BOS, True),
    # -- identity rewritings (compared below)
    "sm_terms": (sm(), BOS, False),
    "sm_no_terms": (SM_NO_TERMS, BOS, False),
    "sm_other_masses": (sm(terms="YUKAWA m_6 m_1 m_2 M1e3 END\nDIRAC m_4 m_5 M5e1 END"), BOS, False),
    "sm_reversed": (theory("U1 SU2 SU3", "\n".join(reversed(SM_FIELDS.strip().splitlines()))), BOS, False),
    "u_R": (theory("U1 SU2 SU3", "FERMION R gen_3 q_4 1 F END"), BOS, False),
    "u_c": (theory("U1 SU2 SU3", "FERMION L gen_3 q_-4 1 Fb END"), BOS, False),
    "u_L_wrong": (theory("U1 SU2 SU3", "FERMION L gen_3 q_4 1 F END"), BOS, False),
    "gen3": (theory("U1 SU3", "FERMION L gen_3 q_2 F END"), BOS, False),
    "gen1_gen2": (theory("U1 SU3", "FERMION L gen_1 q_2 F END\nFERMION L gen_2 q_2 F END"), BOS, False),
    "gen2": (theory("U1 SU3", "FERMION L gen_2 q_2 F END"), BOS, False),
    "higgs": (theory("U1 SU2 SU3", "SCALAR CPLX VEV q_3 F 1 END"), BOS, False),
    "higgs_conj": (theory("U1 SU2 SU3", "SCALAR CPLX VEV q_-3 F 1 END"), BOS, False),
    "higgs_novev": (theory("U1 SU2 SU3", "SCALAR CPLX NOVEV q_3 F 1 END"), BOS, False),
    "singlet_cplx": (theory("U1 SU2 SU3", "SCALAR CPLX NOVEV q_0 1 1 END"), BOS, False),
    "singlet_real": (theory("U1 SU2 SU3", "SCALAR REAL NOVEV q_0 1 1 END"), BOS, False),
    "two_higgs": (theory("U1 SU2 SU3", "SCALAR CPLX VEV q_3 F 1 END\nSCALAR CPLX VEV q_-3 F 1 END"),
                  BOS, False),
}


@pytest.fixture(scope="module")
def hand():
    names = list(CASES)
    return dict(zip(names, run([CASES[n] for n in names])))


def test_hand_cases_match_reference(hand):
    for name, (toks, prompt, sm_group) in CASES.items():
        assert hand[name]["cls"] == IR.reference_model_class(toks, prompt, sm_group), name


def cls(hand, name):
    return hand[name]["cls"]


def test_fourth_generation_is_chiral(hand):
    # Each gen_1 field has an SM code (u_R q_4 1 F -> u^c (−4, 1, Fb), ...): the five counts go
    # 3 -> 4, so the difference is one copy each: 5 fields, 5 fermions. Q (1, F, F) is complex
    # and its conjugate (−1, F, Fb) is not added: unpaired -> chiral. Q has Y ≠ 0: SM-charged.
    assert cls(hand, "4th_gen") == dict(added_fields=5, added_fermions=5, adds_sm_charged=True,
                                        sm_generations=0, vector_like=False, chiral=True)


def test_vector_like_lepton(hand):
    # L q_-3 F 1 is one more L (−3, F, 1); R q_-3 F 1 is the L field (3, F, 1): conjugates of
    # each other, one copy each -> a vector-like pair; Y = ∓1/2 ≠ 0 -> SM-charged.
    assert cls(hand, "vl_lepton") == dict(added_fields=2, added_fermions=2, adds_sm_charged=True,
                                          sm_generations=0, vector_like=True, chiral=False)


def test_coloured_scalars_add_charged_matter_only(hand):
    # S1 leptoquark (3̄, 1)_{1/3}: one complex scalar, Y = 2/6 ≠ 0 and colour anti-triplet.
    # No fermion added: neither vector-like (needs added fermions) nor chiral.
    want = dict(added_fields=1, added_fermions=0, adds_sm_charged=True, sm_generations=0,
                vector_like=False, chiral=False)
    assert cls(hand, "leptoquark") == want
    # a real colour octet: Y = 0 but SU3 non-singlet -> still SM-charged
    assert cls(hand, "octet") == want


def test_right_handed_neutrinos_are_vector_like(hand):
    # R q_0 1 1 -> L (0, 1, 1): all charges 0, all reps trivial: a real rep, its own partner
    # (Majorana mass), 3 copies, all paired; Y = 0 and singlet -> not SM-charged.
    assert cls(hand, "nu_r") == dict(added_fields=3, added_fermions=3, adds_sm_charged=False,
                                     sm_generations=0, vector_like=True, chiral=False)


def test_pseudo_real_doublet_pairs_only_with_a_copy(hand):
    # (0, F, 1): U(1) charge 0 and SU2's F is self-conjugate, one doublet -> pseudo-real.
    # One copy cannot pair (Witten-anomalous alone): chiral; two copies pair up: vector-like.
    # Non-singlet under the first SU2 -> SM-charged.
    assert cls(hand, "pseudo_1") == dict(added_fields=1, added_fermions=1, adds_sm_charged=True,
                                         sm_generations=0, vector_like=False, chiral=True)
    assert cls(hand, "pseudo_2") == dict(added_fields=2, added_fermions=2, adds_sm_charged=True,
                                         sm_generations=0, vector_like=True, chiral=False)


def test_bidoublet_is_real(hand):
    # (2, 2) of SU2 × SU2: two pseudo-real factors make a real rep -> vector-like alone.
    # It is a doublet of the FIRST SU2 (the language's weak isospin): SM-charged by definition.
    assert cls(hand, "bidoublet") == dict(added_fields=1, added_fermions=1, adds_sm_charged=True,
                                          sm_generations=0, vector_like=True, chiral=False)


def test_the_prompt_itself_adds_nothing(hand):
    assert cls(hand, "sm_itself") == dict(added_fields=0, added_fermions=0, adds_sm_charged=False,
                                          sm_generations=0, vector_like=False, chiral=False)


def test_su5_from_scratch_is_chiral(hand):
    # 5̄ (Fb) and 10 (A2) of SU5: both complex (conjugates 5, 10̄ absent) -> unpaired -> chiral.
    # No U1, SU2 or SU3 factor: nothing is SM-charged and no SM generation can be removed.
    assert cls(hand, "su5") == dict(added_fields=2, added_fermions=2, adds_sm_charged=False,
                                    sm_generations=0, vector_like=False, chiral=True)


def test_standard_model_from_scratch(hand):
    # Everything is added: 5 fermion fields × gen_3 = 15 copies, plus the Higgs = 16.
    # Three SM generations are removed -> no fermion left: neither chiral nor vector-like.
    assert cls(hand, "sm_scratch") == dict(added_fields=16, added_fermions=15, adds_sm_charged=True,
                                           sm_generations=3, vector_like=False, chiral=False)
    # without the removal the SM is chiral (Q has no conjugate partner)
    assert cls(hand, "sm_scratch_no_removal")["chiral"]
    assert cls(hand, "sm_scratch_no_removal")["sm_generations"] == 0
    # 4 of each: 3 removed, the 4th generation is left -> chiral (as relative to the SM prompt)
    assert cls(hand, "sm4_scratch") == dict(added_fields=21, added_fermions=20, adds_sm_charged=True,
                                            sm_generations=3, vector_like=False, chiral=True)
    # ν^c is not part of a removed generation: 3 real singlets are left -> vector-like
    assert cls(hand, "sm_nu_r_scratch")["vector_like"] and not cls(hand, "sm_nu_r_scratch")["chiral"]
    # U1 U1 SU2 SU3: the SM fields have U(1)' charge 0 (trivial extra slot) and are removed;
    # chi_L (−6, 6, 1, 1) and chi_R -> (6, −6, 1, 1) are conjugates: one vector-like pair.
    assert cls(hand, "dark_vl_scratch")["sm_generations"] == 3
    assert cls(hand, "dark_vl_scratch")["vector_like"] and not cls(hand, "dark_vl_scratch")["chiral"]


def test_dark_chiral_u1(hand):
    # Relative to the SM prompt written with U(1)' charge q_0: the five (0, q', 1, 1) singlets
    # with q' = 1, 5, −7, −8, 9 are added (5 copies). Y = 0, SU2 and SU3 singlets: not SM-charged.
    # Conjugates have q' = −1, −5, 7, 8, −9: none of them is present, so nothing pairs -> chiral
    # (all five are massless while U(1)' is unbroken, yet anomaly free: Σq' = 0, Σq'³ = 0).
    assert cls(hand, "dark") == dict(added_fields=5, added_fermions=5, adds_sm_charged=False,
                                     sm_generations=0, vector_like=False, chiral=True)
    # From scratch: 15 + 1 + 5 = 21 copies; the three SM generations are removed, the
    # dark five stay chiral.
    assert cls(hand, "dark_scratch") == dict(added_fields=21, added_fermions=20, adds_sm_charged=True,
                                             sm_generations=3, vector_like=False, chiral=True)


def test_identity_ignores_terms_masses_order_and_writing(hand):
    k = {name: key_tuple(r["key"]) for name, r in hand.items()}
    h = {name: r["hash64"] for name, r in hand.items()}
    same = [("sm_terms", "sm_no_terms"), ("sm_terms", "sm_other_masses"), ("sm_terms", "sm_reversed"),
            ("u_R", "u_c"), ("gen3", "gen1_gen2"), ("higgs", "higgs_conj")]
    for a, b in same:
        assert k[a] == k[b] and h[a] == h[b], (a, b)
    # physics differences: R q_4 vs L q_4 (conjugate quantum numbers), 3 vs 2 copies,
    # VEV vs no VEV, a complex vs a real singlet, one vs two Higgs doublets
    differ = [("u_R", "u_L_wrong"), ("gen3", "gen2"), ("higgs", "higgs_novev"),
              ("singlet_cplx", "singlet_real"), ("higgs", "two_higgs")]
    for a, b in differ:
        assert k[a] != k[b] and h[a] != h[b], (a, b)
    # two Higgs doublets written as H and H*: one code with count 2
    assert k["two_higgs"][2][:2] == (2, 0)


def test_code_layout_by_hand(hand):
    # u^c = (−4, 1, Fb) as a fermion: head 0; digits (−4 + 18, "1" = 0, "Fb" = 2, unused 0)
    # = 14·37³ + 0 + 2·37 + 0 = 14·50653 + 74 = 709216
    assert I.key_items(hand["u_R"]["key"])[1] == [(709216, 3)]
    # Higgs: CPLX VEV head 2·1 + 1 = 3; conjugate (−3, F, 1) has digits (15, 1, 0) and is the
    # smaller: 3·37⁴ + 15·37³ + 1·37² = 5622483 + 759795 + 1369 = 6383647
    assert I.key_items(hand["higgs"]["key"])[1] == [(6383647, 1)]
    assert I.decode_code(6383647, ["U1", "SU2", "SU3"]) == ("complex", True, (-3, "F", "1"))


def test_decode_rejects_bad_codes():
    for code, gauge in [(-1, ["U1"]), (6 * 37**4, ["U1"]), (1 * 37**4, ["U1"]),   # fermion with VEV
                        (4 * 37**3, ["SU3"]), (5, ["U1"])]:                     # A2 not SU3; slot 3
        with pytest.raises(ValueError) as e:
            I.decode_code(code, gauge)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="SO10"):
        N.describe_fields(["SO10"], [])


# ---------------------------------------------------------------------------
# Notation


def test_notation_of_the_standard_model(hand):
    got = N.describe_key(hand["sm_terms"]["key"])
    # Y = n/6: Q 1/6, u^c −4/6 = −2/3, d^c 2/6 = 1/3, L −3/6 = −1/2, e^c 6/6 = 1; H shown with Y > 0
    assert sorted(got) == sorted(["(3, 2)_{1/6} × 3", "(3bar, 1)_{-2/3} × 3", "(3bar, 1)_{1/3} × 3",
                                  "(1, 2)_{-1/2} × 3", "(1, 1)_{1} × 3", "S(vev): (1, 2)_{1/2}"])


def test_notation_of_added_fields(hand):
    r = hand["dark"]
    # q' = 5 -> 5/6, −8 -> −4/3, 9 -> 3/2
    assert N.describe_added(r["key"], r["prompt_key"]) == [
        "(1, 1)_{0; -4/3}", "(1, 1)_{0; -7/6}", "(1, 1)_{0; 1/6}", "(1, 1)_{0; 5/6}", "(1, 1)_{0; 3/2}"]
    lq = hand["leptoquark"]
    assert N.describe_added(lq["key"], lq["prompt_key"]) == ["S: (3bar, 1)_{1/3}"]
    assert N.describe_added(hand["octet"]["key"], hand["octet"]["prompt_key"]) == ["S(real): (8, 1)_{0}"]
    assert N.describe_added(hand["nu_r"]["key"], hand["nu_r"]["prompt_key"]) == ["(1, 1)_{0} × 3"]
    assert N.describe_key(hand["su5"]["key"]) == ["(5bar)", "(10)"]
    assert N.describe_key(hand["bidoublet"]["key"]) == ["(2, 2)"]


def test_notation_never_fails_on_random_keys(random_cases):
    _, out = random_cases
    for res in out[:500]:
        labels = N.describe_key(res["key"])
        assert len(labels) == len(I.key_items(res["key"])[1])


def test_one_compile(random_cases, hand):
    # every batch above went through the same jitted program and shape
    assert _analyse._cache_size() == 1


@jax.jit
def _fermion_keys(ids):
    keys = jax.vmap(lambda t: I.fermion_key(I.model_key_of_tokens(t)))(ids)
    return keys, jax.vmap(I.key_hash)(keys)


def test_fermion_key_matches_reference_on_random_theories(random_cases):
    cases, _ = random_cases
    theories = [c[0] for c in cases]
    ids = tokens_to_ids(theories + [theories[0]] * (BATCH - len(theories)), LEN)
    keys, hashes = jax.device_get(_fermion_keys(ids))
    with_scalars = 0
    for b, toks in enumerate(theories):
        ref = IR.reference_model_key(toks)
        fermions = IR.reference_fermion_key(ref)
        key = jax.tree_util.tree_map(lambda x: x[b], keys)   # noqa: B023
        assert key_tuple(key) == tuple(map(tuple, IR.reference_key_arrays(fermions))), toks
        assert int(hashes[b]) == IR.reference_key_hash(fermions)
        with_scalars += len(fermions[1]) < len(ref[1])
    assert with_scalars >= 500   # the scalars were there to drop
