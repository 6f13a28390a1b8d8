"""Parsing and rendering of .theory files, and the one-line errors users see."""

import pytest

from theorygrpo_jax import resources
from theorygrpo_jax.grammar import text

# The packaged textbook theories and the anomalous counter-examples (grammar valid too).
EXAMPLES = ([resources.theory_file(name) for name, _ in resources.textbook_theories()]
            + [resources.theory_file(name, anomalous=True) for name, _ in resources.textbook_theories(anomalous=True)])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_round_trip(path):
    tokens = text.load_theory(path)
    assert tokens[0] == "BOS" and tokens[-1] == "EOS"
    rendered = text.render_theory(tokens)
    assert text.parse_theory_text(rendered) == tokens
    assert text.render_theory(text.parse_theory_text(rendered)) == rendered


def test_render_layout():
    tokens = text.parse_theory_text(
        "GAUGE U1 SU2 END_GAUGE FIELDS FERMION L gen_1 q_-3 F END SCALAR CPLX VEV q_3 F END "
        "END_FIELDS TERMS SMASS m_2 M1e2 END END_TERMS")
    assert text.render_theory(tokens) == (
        "GAUGE U1 SU2 END_GAUGE\n"
        "FIELDS\n"
        "  FERMION L gen_1 q_-3 F END   # m_1\n"
        "  SCALAR CPLX VEV q_3 F END    # m_2\n"
        "END_FIELDS\n"
        "TERMS\n"
        "  SMASS m_2 M1e2 END\n"
        "END_TERMS\n")


BAD = {
    "unknown token": ("GAUGE U1 END_GAUGE\nFIELDS\n  FERMION L gen_1 q_0 Q END\n",
                      "bad.theory:3: unknown token 'Q'"),
    "wrong order": ("GAUGE SU3 SU2 END_GAUGE\n",
                    "bad.theory:1: token 'SU2' is not allowed here"),
    "real scalar with a charge": ("GAUGE U1 END_GAUGE\nFIELDS\n  SCALAR REAL VEV q_3 END\n",
                                  "bad.theory:3: token 'q_3' is not allowed here"),
    "undeclared field": ("GAUGE U1 END_GAUGE\nFIELDS\n  FERMION L gen_1 q_0 END\nEND_FIELDS\n"
                         "TERMS\n  MAJORANA m_2 M1e0 END\nEND_TERMS\n",
                         "bad.theory:6: token 'm_2' is not allowed here"),
    "truncated": ("GAUGE U1 SU2 END_GAUGE\nFIELDS\n  FERMION L gen_3 q_1 F\n",
                  "bad.theory:3: after 'F': the theory ends too early"),
    "empty": ("# nothing\n", "bad.theory:1: empty theory"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_one_line_error(case):
    source, start = BAD[case]
    with pytest.raises(text.TheoryError) as err:
        text.parse_theory_text(source, "bad.theory")
    message = str(err.value)
    assert message.startswith(start), message
    assert "\n" not in message


def test_errors_say_what_was_allowed():
    with pytest.raises(text.TheoryError, match=r"allowed: END_GAUGE SU3 SU4 SU5$"):
        text.parse_theory_text("GAUGE SU3 SU2 END_GAUGE", "f")
    with pytest.raises(text.TheoryError, match=r"allowed: q_0$"):
        text.parse_theory_text("GAUGE U1 END_GAUGE FIELDS SCALAR REAL VEV q_3 END", "f")
    with pytest.raises(text.TheoryError, match=r"declared fermion \(m_1\); allowed: m_1$"):
        text.parse_theory_text("GAUGE U1 END_GAUGE FIELDS FERMION L gen_1 q_0 END END_FIELDS "
                               "TERMS MAJORANA m_2 M1e0 END END_TERMS", "f")


def test_unknown_token_says_what_was_allowed():
    with pytest.raises(text.TheoryError, match=r"^f:3: unknown token 'Q'; allowed there: END$"):
        text.parse_theory_text("GAUGE U1 END_GAUGE\nFIELDS\n  FERMION L gen_1 q_0 Q END\n", "f")


def test_missing_file():
    with pytest.raises(text.TheoryError, match="nope.theory: cannot read"):
        text.load_theory("nope.theory")


def test_prompt_prefix():
    assert text.parse_prompt_text("GAUGE U1 SU2 END_GAUGE FIELDS")[:2] == ["BOS", "GAUGE"]
    with pytest.raises(text.TheoryError, match="token 'END_FIELDS' is not allowed here"):
        text.parse_prompt_text("GAUGE U1 END_GAUGE FIELDS END_FIELDS")
