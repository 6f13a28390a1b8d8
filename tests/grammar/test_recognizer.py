"""The reference recogniser on hand-written cases."""

from theorygrpo_jax.grammar import recognizer

SM_HEAD = "BOS GAUGE U1 SU2 SU3 END_GAUGE FIELDS".split()
MINIMAL = "BOS GAUGE U1 END_GAUGE FIELDS FERMION L gen_1 q_0 END END_FIELDS TERMS END_TERMS EOS".split()


def test_minimal_theory():
    assert recognizer.recognise(MINIMAL).accepted
    assert recognizer.recognise(MINIMAL, max_len=14).accepted
    assert not recognizer.recognise(MINIMAL, max_len=13).accepted


def test_canonical_gauge_order():
    r = recognizer.recognise("BOS GAUGE SU3 SU2 END_GAUGE".split())
    assert not r.accepted and r.position == 3 and r.token == "SU2"
    assert r.allowed == ["END_GAUGE", "SU3", "SU4", "SU5"]
    r = recognizer.recognise("BOS GAUGE U1 U1 U1".split())
    assert r.token == "U1" and r.position == 4 and "U1" not in r.allowed
    r = recognizer.recognise("BOS GAUGE U1 U1 SU2 SU2 SU3".split())
    assert r.token == "SU3" and r.allowed == ["END_GAUGE"]   # at most four factors


def test_real_scalar_slots():
    head = "BOS GAUGE U1 SU4 END_GAUGE FIELDS SCALAR REAL VEV".split()
    r = recognizer.recognise(head + ["q_3"])
    assert r.token == "q_3" and r.allowed == ["q_0"]
    r = recognizer.recognise(head + ["q_0", "F"])
    assert r.token == "F" and r.allowed == ["1", "Adj", "A2"]   # the real irreps of SU(4)


def test_reference_to_undeclared_field():
    toks = (SM_HEAD + "FERMION L gen_3 q_1 F F END SCALAR CPLX VEV q_3 F 1 END "
            "FERMION R gen_3 q_4 1 F END END_FIELDS TERMS YUKAWA m_7".split())
    r = recognizer.recognise(toks)
    assert r.token == "m_7" and r.allowed == ["m_2"] and "declared scalar" in r.error


def test_truncated_and_trailing():
    r = recognizer.recognise(MINIMAL[:6])
    assert not r.accepted and r.token is None and r.allowed == ["L", "R"]
    r = recognizer.recognise(MINIMAL + ["EOS"])
    assert not r.accepted and r.position == len(MINIMAL)


def test_allowed_next_respects_length():
    prefix = MINIMAL[:10]   # ... END of the first field
    assert recognizer.allowed_next(prefix, 14) == {"END_FIELDS"}
    assert recognizer.allowed_next(prefix, 100) == {"FERMION", "SCALAR", "END_FIELDS"}
    assert recognizer.allowed_next(MINIMAL, 20) == {"PAD"}


def test_mass_tokens_per_term():
    toks = ("BOS GAUGE U1 END_GAUGE FIELDS FERMION L gen_1 q_0 END FERMION R gen_1 q_0 END END_FIELDS "
            "TERMS DIRAC m_1 m_2 M1e0 M1e0 M1e0 M1e0 M1e0 END END_TERMS EOS").split()
    r = recognizer.recognise(toks)
    assert r.position == toks.index("DIRAC") + 7   # the fifth mass: at most four generations
    assert r.allowed == ["END"]
