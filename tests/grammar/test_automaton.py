"""The jitted grammar tables against the reference recogniser, on thousands of random walks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theorygrpo_jax.grammar import automaton, recognizer, vocab as V, walks
from theorygrpo_jax.grammar.compiler import compile_grammar

MAX_LEN = 96
NUM_WALKS = 2000


@pytest.fixture(scope="module")
def tables():
    return automaton.load_tables()


@pytest.fixture(scope="module")
def walk_ids(tables):
    return np.asarray(walks.random_walk_tokens(tables, jax.random.PRNGKey(0), NUM_WALKS, MAX_LEN))


@pytest.fixture(scope="module")
def batch_masks(tables):
    return jax.jit(jax.vmap(lambda t: automaton.sequence_masks(tables, t, MAX_LEN)))


@pytest.fixture(scope="module")
def batch_accepted(tables):
    return jax.jit(jax.vmap(lambda t: automaton.sequence_accepted(tables, t, MAX_LEN)))


def _strip(row) -> list[str]:
    toks = V.token_strs(row)
    while toks and toks[-1] == "PAD":
        toks.pop()
    return toks


def test_walks_end_in_eos_and_are_accepted(walk_ids):
    for row in walk_ids:
        toks = _strip(row)
        assert toks[-1] == "EOS" and len(toks) <= MAX_LEN
        assert np.all(row[len(toks):] == V.PAD)
        result = recognizer.recognise(toks, MAX_LEN)
        assert result.accepted, (result.error, toks)
    lengths = (walk_ids != V.PAD).sum(1)
    assert lengths.min() == 14            # the shortest theory: one factor, one field, no term
    assert (lengths == MAX_LEN).any()     # and walks that fill max_len exactly


def test_mask_equals_recogniser_at_every_step(walk_ids, batch_masks):
    masks = np.asarray(batch_masks(jnp.asarray(walk_ids)))
    for row, row_masks in zip(walk_ids, masks):
        toks = V.token_strs(row)
        for p in range(MAX_LEN):
            want = recognizer.allowed_next(toks[:p], MAX_LEN)
            got = {V.TOKENS[i] for i in np.flatnonzero(row_masks[p])}
            assert got == want, (p, toks[:p], sorted(got ^ want))


def test_random_edits_rejected_by_recogniser_are_rejected_by_tables(walk_ids, batch_accepted):
    rng = np.random.default_rng(1)
    edited, verdicts = [], []
    for row in walk_ids:
        toks = _strip(row)
        kind, pos = rng.integers(3), int(rng.integers(1, len(toks)))
        tok = V.TOKENS[int(rng.integers(V.VOCAB_SIZE))]
        if kind == 0:
            toks[pos] = tok
        elif kind == 1:
            del toks[pos]
        else:
            toks.insert(pos, tok)
        verdicts.append(recognizer.recognise(toks, MAX_LEN).accepted)
        ids = V.token_ids(toks)[:MAX_LEN]
        edited.append(ids + [V.PAD] * (MAX_LEN - len(ids)))
    got = np.asarray(batch_accepted(jnp.asarray(edited, jnp.int32)))
    np.testing.assert_array_equal(got, np.array(verdicts))
    assert 0 < sum(verdicts) < len(verdicts)  # both outcomes occur
    np.testing.assert_array_equal(np.asarray(batch_accepted(jnp.asarray(walk_ids))), True)


def test_short_max_len_still_finishes(tables):
    ids = np.asarray(walks.random_walk_tokens(tables, jax.random.PRNGKey(2), 200, 20))
    for row in ids:
        assert recognizer.recognise(_strip(row), 20).accepted


def test_tables_are_small_and_cached():
    g = compile_grammar()
    assert g.next_node.shape == (g.num_nodes, V.VOCAB_SIZE)
    assert g.num_nodes < 3000 and g.nbytes() < 1_000_000
    assert g.dist[g.start] == 14
    assert automaton.load_tables() is automaton.load_tables()


def test_invalid_token_kills_the_state(tables):
    state = automaton.init_state(tables)
    for tok in ["BOS", "GAUGE", "SU3", "SU2"]:     # SU2 after SU3 breaks the canonical order
        state = automaton.step(tables, state, V.TOKEN_ID[tok])
    assert bool(automaton.is_dead(state))
    assert not np.asarray(automaton.allowed_mask(tables, state, 50)).any()


def test_references_need_declared_fields_of_the_right_kind(tables):
    toks = ("BOS GAUGE U1 END_GAUGE FIELDS FERMION L gen_1 q_1 END SCALAR CPLX VEV q_0 END "
            "FERMION R gen_1 q_1 END END_FIELDS TERMS YUKAWA").split()
    state = automaton.init_state(tables)
    for tok in toks:
        state = automaton.step(tables, state, V.TOKEN_ID[tok])
    allowed = {V.TOKENS[i] for i in np.flatnonzero(automaton.allowed_mask(tables, state, 50))}
    assert allowed == {"m_2"}                        # the only scalar
    state = automaton.step(tables, state, V.TOKEN_ID["m_2"])
    allowed = {V.TOKENS[i] for i in np.flatnonzero(automaton.allowed_mask(tables, state, 50))}
    assert allowed == {"m_1"}                        # the only left-handed fermion
