"""The textbook corpus (the packaged theories, examples/theories in a checkout) and the
synthetic pretraining corpus.

Anomalies are checked three ways: BY HAND for the SM, SM + nu_R and SM + U(1)_{B-L}
(the arithmetic is written out below), with a small evaluator typed in from the
spec's §3 table (independent of `physics.groups` and `physics.reference`), and
against the reference scorer `physics.reference`.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations_with_replacement
from pathlib import Path

import pytest

from theorygrpo_jax import corpus as C
from theorygrpo_jax import resources
from theorygrpo_jax.grammar import recognizer
from theorygrpo_jax.grammar.text import load_theory

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "theories"   # the checkout's documented path
TEXTBOOK = sorted(EXAMPLES.glob("*.theory"))
ANOMALOUS = sorted((EXAMPLES / "anomalous").glob("*.theory"))
REQUIRED = {"sm", "sm_nu_r", "sm_b_minus_l", "sm_vectorlike_lepton", "sm_vectorlike_quark",
            "two_higgs_doublet", "sm_singlet_scalar", "su5_gut", "sm_4th_generation", "pati_salam_toy",
            "dark_u1_vectorlike", "dark_su3_hidden_valley"}
REQUIRED_COUNTER = {"sm_no_e_r", "witten_single_doublet", "em_breaking_vev"}

# ---------------------------------------------------------------------------
# The spec's anomaly formulas, typed in from the §3 table


TWO_T = {"SU2": {"1": 0, "F": 1, "Adj": 4},
         "SU3": {"1": 0, "F": 1, "Fb": 1, "Adj": 6, "S2": 5, "S2b": 5},
         "SU4": {"1": 0, "F": 1, "Fb": 1, "Adj": 8, "A2": 2},
         "SU5": {"1": 0, "F": 1, "Fb": 1, "Adj": 10, "A2": 3, "A2b": 3}}
CUBIC = {"SU3": {"1": 0, "F": 1, "Fb": -1, "Adj": 0, "S2": 7, "S2b": -7},
         "SU4": {"1": 0, "F": 1, "Fb": -1, "Adj": 0, "A2": 0},
         "SU5": {"1": 0, "F": 1, "Fb": -1, "Adj": 0, "A2": 1, "A2b": -1}}
DIM = {"SU2": {"1": 1, "F": 2, "Adj": 3},
       "SU3": {"1": 1, "F": 3, "Fb": 3, "Adj": 8, "S2": 6, "S2b": 6},
       "SU4": {"1": 1, "F": 4, "Fb": 4, "Adj": 15, "A2": 6},
       "SU5": {"1": 1, "F": 5, "Fb": 5, "Adj": 24, "A2": 10, "A2b": 10}}


def spec_anomalies(tokens: list[str]) -> list[int]:
    """Every §3 coefficient (order: SU^3, SU^2 U1, U1^3 multisets, grav, Witten), with s = ±1 for L/R."""
    gauge = tokens[tokens.index("GAUGE") + 1:tokens.index("END_GAUGE")]
    body = tokens[tokens.index("FIELDS") + 1:tokens.index("END_FIELDS")]
    fermions, i = [], 0
    while i < len(body):
        head = body[i]
        slots = body[i + 3:i + 3 + len(gauge)]
        if head == "FERMION":
            s = 1 if body[i + 1] == "L" else -1
            fermions.append((s, int(body[i + 2][4:]),
                             [int(x[2:]) if g == "U1" else x for g, x in zip(gauge, slots)]))
        i += 3 + len(gauge) + 1
    u1 = [k for k, g in enumerate(gauge) if g == "U1"]
    su = [k for k, g in enumerate(gauge) if g != "U1"]

    def mult(gen, slots, skip=None):
        m = gen
        for k in su:
            if k != skip:
                m *= DIM[gauge[k]][slots[k]]
        return m

    out = []
    for k in su:
        if gauge[k] != "SU2":
            out.append(sum(s * CUBIC[gauge[k]][sl[k]] * mult(n, sl, k) for s, n, sl in fermions))
    for k in su:
        for a in u1:
            out.append(sum(s * TWO_T[gauge[k]][sl[k]] * mult(n, sl, k) * sl[a] for s, n, sl in fermions))
    for a, b, c in combinations_with_replacement(u1, 3):
        out.append(sum(s * mult(n, sl) * sl[a] * sl[b] * sl[c] for s, n, sl in fermions))
    for a in u1:
        out.append(sum(s * mult(n, sl) * sl[a] for s, n, sl in fermions))
    for k in su:
        if gauge[k] == "SU2":
            out.append(sum(TWO_T["SU2"][sl[k]] * mult(n, sl, k) for s, n, sl in fermions) % 2)
    return out


def fermion_table(tokens: list[str]) -> list[tuple]:
    """(chirality, gen, slot tokens...) of every fermion, in declaration order."""
    gauge = tokens[tokens.index("GAUGE") + 1:tokens.index("END_GAUGE")]
    out, i = [], tokens.index("FIELDS") + 1
    while tokens[i] != "END_FIELDS":
        if tokens[i] == "FERMION":
            out.append((tokens[i + 1], tokens[i + 2], *tokens[i + 3:i + 3 + len(gauge)]))
        i += 3 + len(gauge) + 1
    return out


def reference_report(tokens):
    return C.score_theories([tokens])[0]


# ---------------------------------------------------------------------------
# Textbook files


@pytest.mark.parametrize("path", TEXTBOOK + ANOMALOUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_textbook_file_parses_and_has_header(path):
    tokens = load_theory(path)
    assert tokens[0] == "BOS" and tokens[-1] == "EOS"
    text = path.read_text()
    assert text.startswith("#"), "each file starts with a header comment saying what it is"
    declared = tokens.count("FERMION") + tokens.count("SCALAR")
    for k in range(1, declared + 1):   # every field carries a '# m_k name' comment
        assert f"# m_{k} " in text, f"{path.name}: field m_{k} has no '# m_{k} name' comment"


def test_required_files_present_and_textbook_loader():
    books = C.textbook_theories()
    assert REQUIRED <= set(books)
    assert REQUIRED_COUNTER <= {p.stem for p in ANOMALOUS}
    assert not set(books) & {p.stem for p in ANOMALOUS}, "anomalous/ must not be loaded"
    # the packaged theories are the checkout's files: same names, same tokens
    assert books == {p.stem: load_theory(p) for p in TEXTBOOK}
    assert C.textbook_theories(EXAMPLES) == books
    assert [name for name, _ in resources.textbook_theories(anomalous=True)] == [p.stem for p in ANOMALOUS]


@pytest.mark.parametrize("path", TEXTBOOK, ids=lambda p: p.name)
def test_textbook_anomaly_free_by_spec_formulas(path):
    assert all(a == 0 for a in spec_anomalies(load_theory(path)))


@pytest.mark.parametrize("path", TEXTBOOK, ids=lambda p: p.name)
def test_textbook_successful_per_reference(path):
    tokens = load_theory(path)
    r = reference_report(tokens)
    assert r["anomaly_free"] and r["invalid_terms"] == 0 and r["light_exotics"] == 0 and r["success"], r
    assert sorted(r["anomalies"].values()) == sorted(spec_anomalies(tokens))


@pytest.mark.parametrize("path", ANOMALOUS, ids=lambda p: p.name)
def test_counter_examples_fail(path):
    tokens = load_theory(path)
    r = reference_report(tokens)
    assert not r["success"]
    assert sorted(r["anomalies"].values()) == sorted(spec_anomalies(tokens))


def test_sm_anomalies_by_hand():
    # Per generation, every field left-handed (R: charge negated, rep conjugated);
    # d = dim SU2 x dim SU3, n = 6 Y:
    #   Q (d=6, n=1)  u^c (3, -4)  d^c (3, 2)  L (2, -3)  e^c (1, 6)
    sm = load_theory(EXAMPLES / "sm.theory")
    assert fermion_table(sm) == [("L", "gen_3", "q_1", "F", "F"), ("R", "gen_3", "q_4", "1", "F"),
                                 ("R", "gen_3", "q_-2", "1", "F"), ("L", "gen_3", "q_-3", "F", "1"),
                                 ("R", "gen_3", "q_-6", "1", "1")]
    su3_cubed = 3 * (2 * 1 + 1 * (-1) + 1 * (-1))                 # Q: A=1 x 2; u^c, d^c: A(3b) = -1
    su3_sq_y = 3 * (2 * 1 + 1 * (-4) + 1 * 2)                     # 2T = 1: 2 - 4 + 2
    su2_sq_y = 3 * (3 * 1 + 1 * (-3))                             # Q: 3 colours x 1; L: -3
    y_cubed = 3 * (6 * 1 + 3 * (-64) + 3 * 8 + 2 * (-27) + 1 * 216)   # 6 - 192 + 24 - 54 + 216
    grav_y = 3 * (6 * 1 + 3 * (-4) + 3 * 2 + 2 * (-3) + 1 * 6)        # 6 - 12 + 6 - 6 + 6
    witten = (3 * (3 + 1)) % 2                                     # 3 doublets (Q) + 1 (L) per gen
    hand = [su3_cubed, su3_sq_y, su2_sq_y, y_cubed, grav_y, witten]
    assert hand == [0, 0, 0, 0, 0, 0]
    assert sorted(spec_anomalies(sm)) == sorted(hand)

    # Without e_R (anomalous/sm_no_e_r.theory): e^c contributed +216 to Y^3 and +6 to grav Y.
    no_e = load_theory(EXAMPLES / "anomalous" / "sm_no_e_r.theory")
    hand_no_e = [su3_cubed, su3_sq_y, su2_sq_y, y_cubed - 3 * 216, grav_y - 3 * 6, witten]   # -648, -18
    assert sorted(spec_anomalies(no_e)) == sorted(hand_no_e)
    assert sorted(reference_report(no_e)["anomalies"].values()) == sorted(hand_no_e)


def test_sm_nu_r_b_minus_l_anomalies_by_hand():
    # nu_R is a total singlet: it adds 0 everywhere; SM + nu_R has the SM's zeros.
    assert all(a == 0 for a in spec_anomalies(load_theory(EXAMPLES / "sm_nu_r.theory")))

    # U1 U1 SU2 SU3: n_Y, n_BL (units of 1/6; B-L = 1/3 -> 2 for quarks, -1 -> -6 for leptons).
    bl = load_theory(EXAMPLES / "sm_b_minus_l.theory")
    assert fermion_table(bl) == [
        ("L", "gen_3", "q_1", "q_2", "F", "F"), ("R", "gen_3", "q_4", "q_2", "1", "F"),
        ("R", "gen_3", "q_-2", "q_2", "1", "F"), ("L", "gen_3", "q_-3", "q_-6", "F", "1"),
        ("R", "gen_3", "q_-6", "q_-6", "1", "1"), ("R", "gen_3", "q_0", "q_-6", "1", "1")]
    # Left-handed per generation: (d, n_Y, n_BL)
    #   Q (6, 1, 2)  u^c (3, -4, -2)  d^c (3, 2, -2)  L (2, -3, -6)  e^c (1, 6, 6)  nu^c (1, 0, 6)
    hand = {
        "SU3^3": 3 * (2 - 1 - 1),                                                    # 0
        "SU3^2 Y": 3 * (2 * 1 - 4 + 2),                                              # 0
        "SU3^2 BL": 3 * (2 * 2 + 1 * (-2) + 1 * (-2)),                               # 4 - 2 - 2 = 0
        "SU2^2 Y": 3 * (3 * 1 + 1 * (-3)),                                           # 0
        "SU2^2 BL": 3 * (3 * 2 + 1 * (-6)),                                          # 6 - 6 = 0
        "Y^3": 3 * (6 * 1 + 3 * (-64) + 3 * 8 + 2 * (-27) + 1 * 216 + 0),            # 0
        "Y^2 BL": 3 * (6 * 1 * 2 + 3 * 16 * (-2) + 3 * 4 * (-2) + 2 * 9 * (-6) + 36 * 6 + 0),
        #                12      - 96          - 24          - 108        + 216     = 0
        "Y BL^2": 3 * (6 * 1 * 4 + 3 * (-4) * 4 + 3 * 2 * 4 + 2 * (-3) * 36 + 6 * 36 + 0),
        #                24      - 48            + 24        - 216            + 216  = 0
        "BL^3": 3 * (6 * 8 + 3 * (-8) + 3 * (-8) + 2 * (-216) + 216 + 216),
        #            48   - 24       - 24       - 432         + 432         = 0
        "grav Y": 3 * (6 * 1 + 3 * (-4) + 3 * 2 + 2 * (-3) + 6 + 0),                 # 0
        "grav BL": 3 * (6 * 2 + 3 * (-2) + 3 * (-2) + 2 * (-6) + 6 + 6),             # 12-6-6-12+6+6 = 0
        "Witten SU2": (3 * (3 + 1)) % 2,                                             # 0
    }
    assert all(v == 0 for v in hand.values()), hand
    assert sorted(spec_anomalies(bl)) == sorted(hand.values())

    # Without nu_R the B-L conditions that nu^c (1, 0, 6) enters break:
    # grav BL: -3 x 6 = -18, BL^3: -3 x 216 = -648 (Y^2 BL, Y BL^2 have n_Y(nu) = 0: unchanged).
    fields = bl[bl.index("FIELDS"):bl.index("END_FIELDS")]
    start = [i for i in range(len(fields)) if fields[i:i + 4] == ["FERMION", "R", "gen_3", "q_0"]][0]
    without_nu = bl[:bl.index("FIELDS") + start] + bl[bl.index("FIELDS") + start + 8:]
    # field references shift by one after nu_R: drop the terms that name fields (keep the matter)
    without_nu = without_nu[:without_nu.index("TERMS") + 1] + ["END_TERMS", "EOS"]
    assert recognizer.recognise(without_nu).accepted
    expected = dict(hand, **{"grav BL": -18, "BL^3": -648})
    assert sorted(spec_anomalies(without_nu)) == sorted(expected.values())
    assert sorted(reference_report(bl)["anomalies"].values()) == sorted(hand.values())
    assert sorted(reference_report(without_nu)["anomalies"].values()) == sorted(expected.values())


def test_witten_counter_example_by_hand():
    # One doublet, gen 1: 2T(F) x 1 = 1, odd.
    assert spec_anomalies(load_theory(EXAMPLES / "anomalous" / "witten_single_doublet.theory")) == [1]


# ---------------------------------------------------------------------------
# Synthetic corpus


@pytest.fixture(scope="module")
def synthetic_128():
    return C.synthetic_theories(200, seed=0, max_len=128)


def _counts(t: list[str]) -> tuple[int, int]:
    return t.count("FERMION") + t.count("SCALAR"), sum(t.count(k) for k in ("YUKAWA", "DIRAC", "MAJORANA",
                                                                             "SMASS", "QUARTIC"))


@pytest.mark.parametrize("max_len", [24, 48, 128, 256])
def test_synthetic_grammar_valid_within_max_len(max_len, synthetic_128):
    theories = synthetic_128 if max_len == 128 else C.synthetic_theories(100, seed=1, max_len=max_len)
    assert len(theories) == (200 if max_len == 128 else 100)
    for t in theories:
        assert len(t) <= max_len
        assert recognizer.recognise(t, max_len).accepted, t
        fields, terms = _counts(t)
        assert 1 <= fields <= 16 and terms <= 16


def test_synthetic_deterministic_and_diverse(synthetic_128):
    assert C.synthetic_theories(200, seed=0, max_len=128) == synthetic_128
    assert C.synthetic_theories(50, seed=1, max_len=128) != synthetic_128[:50]
    assert len({tuple(t) for t in synthetic_128}) >= 100          # >= 50% unique
    gauges = Counter(tuple(t[2:t.index("END_GAUGE")]) for t in synthetic_128)
    assert len(gauges) >= 10 and gauges[("U1", "SU2", "SU3")] >= 20
    kinds = Counter(k for t in synthetic_128 for k in ("YUKAWA", "DIRAC", "MAJORANA", "SMASS", "QUARTIC") if k in t)
    assert all(kinds[k] >= 5 for k in ("YUKAWA", "DIRAC", "MAJORANA", "SMASS", "QUARTIC")), kinds


def test_synthetic_perfect_ones_anomaly_free_by_spec_formulas():
    for t in C.synthetic_theories(150, seed=2, max_len=160, imperfect_fraction=0.0):
        assert all(a == 0 for a in spec_anomalies(t)), t


def test_synthetic_mostly_successful(synthetic_128):
    reports = C.score_theories(synthetic_128)
    success = sum(r["success"] for r in reports) / len(reports)
    assert success >= 0.8, success
    # the imperfect ones are a minority; without them every theory is a success
    perfect = C.synthetic_theories(150, seed=3, max_len=128, imperfect_fraction=0.0)
    assert all(r["success"] for r in C.score_theories(perfect))
    flawed = C.synthetic_theories(60, seed=4, max_len=128, imperfect_fraction=1.0)
    assert not any(r["success"] for r in C.score_theories(flawed))


def test_build_corpus_and_stats():
    corpus = C.build_corpus(100, seed=5, max_len=128, textbook_weight=0.2)
    assert corpus == C.build_corpus(100, seed=5, max_len=128, textbook_weight=0.2)
    books = [t for t in C.textbook_theories().values() if len(t) <= 128]
    assert len(corpus) == 100 + round(0.25 * 100)
    assert all(recognizer.recognise(t, 128).accepted for t in corpus)
    assert sum(t in books for t in corpus) >= 25
    assert len(C.build_corpus(30, seed=5, max_len=128, textbook_weight=0.0)) == 30
    stats = C.corpus_stats(corpus[:60])
    assert stats["count"] == 60 and 14 <= stats["mean_length"] <= 128
    assert 0.8 <= stats["fraction_successful"] <= stats["fraction_anomaly_free"] <= 1.0


def test_dark_u1_practice_sets_cancel_the_linear_anomaly_only():
    import random
    rng = random.Random(7)
    for _ in range(2000):
        n = rng.choice(C.DARK_U1_SIZES)
        zs = C.dark_u1_charges(rng, n)
        assert len(zs) == n and all(1 <= abs(z) <= 18 for z in zs)
        assert sum(zs) == 0                                   # mixed U(1)'-gravity cancels
        assert sum(z * z * z for z in zs) != 0                # the cubic never does
        assert not any(-z in zs for z in zs)                  # chiral: no z beside -z
    theories = C.dark_u1_practice(40, seed=3, max_len=128)
    assert theories == C.dark_u1_practice(40, seed=3, max_len=128)
    prompt = C.build_corpus(0, 0, 128, 0.0, 0.0, 1)[0][:56]
    assert prompt[:8] == ["BOS", "GAUGE", "U1", "U1", "SU2", "SU3", "END_GAUGE", "FIELDS"]
    for t in theories:
        assert t[:56] == prompt and t[-4:] == ["END_FIELDS", "TERMS", "END_TERMS", "EOS"]
        assert recognizer.recognise(t, 128).accepted
        added = t[56:-4]
        assert len(added) % 8 == 0 and 5 <= len(added) // 8 <= 7
        for i in range(0, len(added), 8):
            assert added[i:i + 4] == ["FERMION", "L", "gen_1", "q_0"]
            assert added[i + 5:i + 8] == ["1", "1", "END"]
    # the reference scorer agrees: anomalous (the cubic condition), so no practice set is a find
    assert not any(r["success"] for r in C.score_theories(theories[:20]))
    corpus = C.build_corpus(10, 0, 128, 0.0, 0.0, 15)
    assert len(corpus) == 25 and sum(t[:56] == prompt for t in corpus) >= 15
    with pytest.raises(ValueError, match="max_len 90"):   # 56 + 5 * 8 + 4 = 100 tokens at least
        C.dark_u1_practice(1, 0, 90)
