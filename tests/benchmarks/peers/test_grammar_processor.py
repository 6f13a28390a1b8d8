"""The grammar on the PyTorch side is this project's: the numpy automaton's masks equal
`policy.grammar_masks` on thousands of random walks, theories and corrupted rows; the HF
logits processor applies them step by step inside `generate`; the forcing processor makes
generate reproduce given theories. Skipped without torch (the main install)."""

import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from transformers import LogitsProcessorList  # noqa: E402

from benchmarks.peers.grammar_processor import ForcedRowsProcessor, GrammarLogitsProcessor  # noqa: E402
from benchmarks.peers.grammar_tables import NumpyGrammar  # noqa: E402
from benchmarks.peers.torch_model import from_flax  # noqa: E402
from theorygrpo_jax import model as M  # noqa: E402
from theorygrpo_jax.config import ModelConfig  # noqa: E402
from theorygrpo_jax.grammar import automaton, walks  # noqa: E402
from theorygrpo_jax.grammar import vocab as V  # noqa: E402
from theorygrpo_jax.physics.record import tokens_to_ids  # noqa: E402
from theorygrpo_jax.policy import NEG_INF, grammar_masks  # noqa: E402

from ...physics.theory_gen import random_theories  # noqa: E402

MAX_LEN = 96


@pytest.fixture(scope="module")
def grammar():
    return NumpyGrammar.load()


@pytest.fixture(scope="module")
def tables():
    return automaton.load_tables()


@pytest.fixture(scope="module")
def walk_rows(tables):
    return np.array(walks.random_walk_tokens(tables, jax.random.PRNGKey(5), 2000, MAX_LEN))


def _jax_masks(tables, rows, max_len):
    return np.asarray(jax.jit(grammar_masks, static_argnums=2)(tables, jnp.asarray(rows), max_len))


def test_masks_equal_the_jax_automaton_on_random_walks(grammar, tables, walk_rows):
    np.testing.assert_array_equal(grammar.sequence_masks(walk_rows, MAX_LEN),
                                  _jax_masks(tables, walk_rows, MAX_LEN))
    assert grammar.accepted(walk_rows, MAX_LEN).all()


def test_masks_equal_on_corrupted_rows(grammar, tables, walk_rows):
    """One random token per row replaced by a random id: most rows die there (node 0), some
    break a register (field kinds, counts); the two automata must agree after it too."""
    rng = np.random.default_rng(0)
    rows = walk_rows.copy()
    lengths = (rows != V.PAD).sum(1)
    where = rng.integers(1, lengths)
    rows[np.arange(len(rows)), where] = rng.integers(0, V.VOCAB_SIZE, len(rows))
    np.testing.assert_array_equal(grammar.sequence_masks(rows, MAX_LEN),
                                  _jax_masks(tables, rows, MAX_LEN))
    accepted = np.asarray(jax.vmap(automaton.sequence_accepted, in_axes=(None, 0, None))(
        tables, jnp.asarray(rows), MAX_LEN))
    np.testing.assert_array_equal(grammar.accepted(rows, MAX_LEN), accepted)
    assert 0 < accepted.sum() < len(rows)


def test_masks_equal_on_register_edge_theories(grammar, tables):
    """Theories with 16 fields or 16 terms, two U1s, REAL scalars, every field kind referenced
    (tests/physics/theory_gen.py), with the length budget of max_len 256."""
    rows = tokens_to_ids(random_theories(np.random.default_rng(1), 300, 256), 256)
    np.testing.assert_array_equal(grammar.sequence_masks(rows, 256), _jax_masks(tables, rows, 256))
    assert grammar.accepted(rows, 256).all()


def test_the_processor_masks_step_by_step(grammar, walk_rows):
    """Fed the rows one position at a time, as generate does, the processor leaves the allowed
    tokens' scores alone and sets the others to NEG_INF; it keeps those masks; a new batch
    (a shorter input) starts it afresh."""
    rows = walk_rows[:256, :40]
    want = grammar.sequence_masks(rows, MAX_LEN)
    processor = GrammarLogitsProcessor(grammar, MAX_LEN, keep_masks=True)
    scores = torch.randn(len(rows), V.VOCAB_SIZE)
    for start in (3, 1):   # two "generate" calls with different prompt lengths
        for t in range(start, rows.shape[1]):
            out = processor(torch.as_tensor(rows[:, :t]), scores.clone())
            allowed = torch.from_numpy(want[:, t])
            assert torch.equal(out[allowed], scores[allowed])
            assert bool((out[~allowed] == NEG_INF).all())
        np.testing.assert_array_equal(processor.masks(), want)


def test_generate_with_the_grammar_samples_theories(grammar, tables):
    mc = ModelConfig.tiny()
    model = from_flax(M.init_params(mc, jax.random.PRNGKey(0)), mc)
    processor = GrammarLogitsProcessor(grammar, mc.max_len, keep_masks=True)
    prompts = torch.full((256, 1), V.BOS)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                             top_k=0, max_length=mc.max_len, pad_token_id=V.PAD,
                             eos_token_id=V.EOS,
                             logits_processor=LogitsProcessorList([processor])).numpy()
    rows = np.full((len(out), mc.max_len), V.PAD, np.int32)
    rows[:, :out.shape[1]] = out
    accepted = jax.vmap(automaton.sequence_accepted, in_axes=(None, 0, None))(
        tables, jnp.asarray(rows), mc.max_len)
    assert bool(jnp.all(accepted))
    np.testing.assert_array_equal(processor.masks(out.shape[1]),
                                  grammar.sequence_masks(out, mc.max_len))


def test_forced_generate_reproduces_the_given_theories(grammar, walk_rows):
    mc = ModelConfig.tiny().replace(max_len=MAX_LEN)
    model = from_flax(M.init_params(mc, jax.random.PRNGKey(1)), mc)
    rows = walk_rows[:128]
    processors = LogitsProcessorList([GrammarLogitsProcessor(grammar, MAX_LEN),
                                      ForcedRowsProcessor(rows, V.PAD)])
    prompts = torch.as_tensor(rows[:, :1])
    with torch.no_grad():
        out = model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                             top_k=0, max_length=MAX_LEN, pad_token_id=V.PAD, eos_token_id=V.EOS,
                             logits_processor=processors).numpy()
    longest = int((rows != V.PAD).sum(1).max())
    assert out.shape[1] == longest
    np.testing.assert_array_equal(out, rows[:, :longest])
