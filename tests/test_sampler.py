"""The jitted grammar-constrained sampler and the log-prob recomputation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theorygrpo_jax import model as M
from theorygrpo_jax import policy
from theorygrpo_jax import sampler as S
from theorygrpo_jax import tasks
from theorygrpo_jax.grammar import automaton, recognizer
from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.policy import PolicySpec

CONFIG = M.ModelConfig.tiny()  # 1 layer, d_model 32, max_len 64: two cache-window blocks
L = CONFIG.max_len
BATCH = 16
COMPLETE = "BOS GAUGE SU2 END_GAUGE FIELDS FERMION L gen_1 F END END_FIELDS TERMS END_TERMS EOS"
PROMPTS = [["BOS"], ["BOS", "GAUGE", "U1", "SU2"], COMPLETE.split(),
           "BOS GAUGE SU3 END_GAUGE FIELDS SCALAR CPLX VEV".split()]



@functools.partial(jax.jit, static_argnames=("config", "top_k"))
def recompute(params, config, tables, tokens, temperature, top_k=None):
    """(log-probs [B, L], entropies [B, L]) of the sampled tokens under `policy.log_policy`,
    0 at BOS: what the update sees."""
    log_probs = policy.log_policy(params, config, tokens,
                                  policy.grammar_masks(tables, tokens, config.max_len),
                                  PolicySpec(temperature, top_k))
    zero = jnp.zeros((tokens.shape[0], 1), jnp.float32)
    return (jnp.concatenate([zero, policy.token_logprobs(log_probs, tokens)], axis=1),
            jnp.concatenate([zero, policy.entropy(log_probs)], axis=1))


@pytest.fixture(scope="module")
def setup():
    # A larger init scale than the default makes the policy far from uniform, so that
    # greedy / top-k / temperature behave visibly differently.
    params = M.init_params(CONFIG, jax.random.PRNGKey(0))
    params = jax.tree_util.tree_map(lambda x: x * 2.0, params)
    return params, automaton.load_tables()


@pytest.fixture(scope="module")
def rollout(setup):
    """rollout(temperature, seed, ...): sampled once per module and setting."""
    params, tables = setup
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(BATCH)]
    cache = {}

    def get(temperature=1.0, seed=1, top_k=None, windows_and_compaction=False):
        # Default: one cache block, no compaction (one compiled loop body). The other
        # setting runs two cache-window blocks and compacts 16 rows into 8 slots.
        key = (temperature, seed, top_k, windows_and_compaction)
        if key not in cache:
            options = (S.SamplerOptions(block_size=32, min_slots=8) if windows_and_compaction
                       else S.SamplerOptions(block_size=L, min_slots=None))
            cache[key] = jax.device_get(S.sample(
                params, CONFIG, tables, jax.random.PRNGKey(seed), prompts,
                policy=PolicySpec(temperature, top_k), options=options))
        return cache[key]
    return get


def _strings(row, n):
    return V.token_strs(row[:n])


def test_every_theory_accepted_and_rows_freeze(rollout):
    r = rollout()
    assert r.tokens.shape == (BATCH, L) and r.finished.all()
    for row, n in zip(r.tokens, r.lengths):
        result = recognizer.recognise(_strings(row, n), L)
        assert result.accepted, result.error
        assert row[n - 1] == V.EOS and row[0] == V.BOS
        assert (row[n:] == V.PAD).all()                      # frozen after EOS
    after = np.arange(L)[None, :] >= r.lengths[:, None]
    assert not r.completion_mask[after].any() and (r.logprobs[after] == 0).all()
    assert int(r.num_steps) == r.lengths.max()                # stops when every row is done


def test_prompts_respected_and_completion_mask(rollout):
    r = rollout()
    for i, (row, n) in enumerate(zip(r.tokens, r.lengths)):
        prompt = PROMPTS[i % len(PROMPTS)]
        assert _strings(row, len(prompt)) == prompt
        assert r.prompt_len[i] == len(prompt)
        expected = (np.arange(L) >= len(prompt)) & (np.arange(L) < n)
        np.testing.assert_array_equal(r.completion_mask[i], expected)
        assert (r.logprobs[i][:len(prompt)] == 0).all()
        assert (r.logprobs[i][expected] <= 0).all() and (r.logprobs[i][expected] > -30).all()
    complete = [i for i in range(BATCH) if PROMPTS[i % len(PROMPTS)] == COMPLETE.split()]
    assert all(r.lengths[i] == len(COMPLETE.split()) for i in complete)


def test_recomputed_logprobs_match_sampler(setup, rollout):
    params, tables = setup
    r = rollout()
    logp, entropy = recompute(params, CONFIG, tables, jnp.asarray(r.tokens), 1.0)
    np.testing.assert_allclose(np.where(r.completion_mask, logp, 0.0), r.logprobs, atol=1e-5)
    assert (np.asarray(entropy) >= -1e-6).all()
    pads = r.tokens == V.PAD
    np.testing.assert_allclose(np.asarray(entropy)[pads], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(logp)[pads], 0.0, atol=1e-6)


def test_temperature_and_top_k_recompute(setup, rollout):
    params, tables = setup
    r = rollout(temperature=0.7, seed=3, top_k=5)
    logp, _ = recompute(params, CONFIG, tables, jnp.asarray(r.tokens), 0.7, top_k=5)
    np.testing.assert_allclose(np.where(r.completion_mask, logp, 0.0), r.logprobs, atol=1e-5)


def test_bfloat16_matmuls_sample_theories_and_recompute_close(setup):
    """matmul_dtype="bfloat16": still theories, and the recomputed log-probs close, though not
    to 1e-5 in general: decode and the parallel forward sum attention in different orders, so
    a matmul operand can round to a neighbouring bfloat16 (max 7e-3 measured at cpu_default;
    at this tiny size they happen to agree to ~1e-7)."""
    params, tables = setup
    config = CONFIG.replace(matmul_dtype="bfloat16")
    r = jax.device_get(S.sample(params, config, tables, jax.random.PRNGKey(2), [["BOS"]] * 8,
                                options=S.SamplerOptions(block_size=L, min_slots=None)))
    for row, n in zip(r.tokens, r.lengths):
        result = recognizer.recognise(_strings(row, n), L)
        assert result.accepted, result.error
    logp, _ = recompute(params, config, tables, jnp.asarray(r.tokens), 1.0)
    np.testing.assert_allclose(np.where(r.completion_mask, logp, 0.0), r.logprobs, atol=1e-2)


def test_default_blocks_are_64_positions_up_to_128_then_doubling():
    assert S.block_ends(128) == (64, 128)
    assert S.block_ends(100) == (64, 100)
    # after 128 each block is the largest power of two <= half its start: 64, 64, 128, 128
    assert S.block_ends(512) == (64, 128, 192, 256, 384, 512)
    assert S.block_ends(96, 32) == (32, 64, 96)


def test_blocks_inside_the_prompts_window_run_as_one():
    # ends 32, 64, 96, 128: a 40-token prompt is prefilled into the 64 window, so the blocks
    # ending at 32 and 64 both run with it and are one block ending at 64
    assert S._windows(128, 40, (32, 64, 96, 128)) == [(64, 64), (96, 96), (128, 128)]
    assert S._windows(128, 1, (32, 64, 96, 128)) == [(32, 32), (64, 64), (96, 96), (128, 128)]
    # a 56-token prompt leaves 8 of the block's 32 positions: that block joins the next one
    assert S._windows(128, 56, (32, 64, 96, 128)) == [(96, 96), (128, 128)]
    assert S._windows(128, 48, (32, 64, 96, 128)) == [(64, 64), (96, 96), (128, 128)]
    # the default config: 56 tokens of 128 in blocks of 64 is one window
    assert S._windows(128, 56, S.block_ends(128)) == [(128, 128)]
    assert S._windows(128, 120, (64, 128)) == [(128, 128)]
    assert S._windows(128, 128, (32, 64, 96, 128)) == [(128, 128)]
    assert S._windows(96, 200, (32, 64, 96)) == [(96, 96)]   # a prompt as long as max_len


def test_windows_and_compaction_do_not_change_samples(rollout):
    a, b = rollout(windows_and_compaction=True), rollout()
    assert S.block_ends(L, 32) == (32, 64) and S.slot_sizes(BATCH, 8) == [16, 8]
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)


def test_the_tail_in_chunks_does_not_change_samples(setup, rollout):
    # blocks of 16: 16 and 32 run as blocks, positions 33..64 as the tail, 3 rows at a time
    # (16 rows: at least 5 chunks when most rows reach it)
    params, tables = setup
    options = S.SamplerOptions(block_size=16, min_slots=8, tail_from=32, tail_slots=3)
    assert S.split_tail(S._windows(L, 1, S.block_ends(L, 16)), BATCH, options) == (
        [(16, 16), (32, 32)], 3)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(BATCH)]
    a = jax.device_get(S.sample(params, CONFIG, tables, jax.random.PRNGKey(1), prompts,
                                options=options))
    b = rollout()
    assert (b.lengths > 33).sum() > 3            # the tail runs several chunks
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.finished, b.finished)
    assert int(a.num_steps) == int(b.num_steps)
    np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)


def test_a_tail_of_no_slots_is_a_one_line_error():
    with pytest.raises(ValueError, match="^SamplerOptions.tail_slots must be >= 1 or None, got 0$"):
        S.SamplerOptions(tail_slots=0)


def test_no_tail_when_every_block_ends_before_it():
    options = S.SamplerOptions()
    windows = S._windows(128, 56, S.block_ends(128))
    assert S.split_tail(windows, 32, options) == (windows, None)
    # the original size: blocks to 128, then the tail on 4 slots (2 for a batch of 2)
    windows = S._windows(512, 1, S.block_ends(512))
    assert S.split_tail(windows, 64, options) == ([(64, 64), (128, 128)], 4)
    assert S.split_tail(windows, 2, options) == ([(64, 64), (128, 128)], 2)
    assert S.split_tail(windows, 64, S.SamplerOptions(tail_slots=None)) == (windows, None)
    # a prompt past tail_from keeps its own block
    assert S.split_tail(S._windows(512, 200, S.block_ends(512)), 64, options) == (
        [(256, 256)], 4)


def test_greedy_is_argmax_of_masked_logits(setup, rollout):
    params, tables = setup
    r = rollout(temperature=0.0)
    tokens = jnp.asarray(r.tokens)

    @jax.jit
    def masked_argmax(params, tables, tokens):
        logits = M.forward(params, CONFIG, tokens)[:, :-1]
        masks = jax.vmap(automaton.sequence_masks, in_axes=(None, 0, None))(tables, tokens, L)
        return jnp.argmax(jnp.where(masks[:, 1:], logits, policy.NEG_INF), axis=-1)

    greedy = np.asarray(masked_argmax(params, tables, tokens))
    gen = r.completion_mask[:, 1:]
    np.testing.assert_array_equal(r.tokens[:, 1:][gen], greedy[gen])
    # Greedy log-probs are those of the untempered policy, and the recompute agrees.
    logp, _ = recompute(params, CONFIG, tables, tokens, 0.0)
    np.testing.assert_allclose(np.where(r.completion_mask, logp, 0.0), r.logprobs, atol=1e-5)
    # Different keys: greedy rows with the same prompt are identical.
    again = rollout(temperature=0.0, seed=2)
    np.testing.assert_array_equal(r.tokens, again.tokens)
    assert (r.tokens[0] == r.tokens[4]).all()


def test_rng_per_row_and_key(rollout):
    a, b = rollout(seed=1), rollout(seed=2)
    assert not (a.tokens == b.tokens).all()
    # Rows with the same prompt differ (per-row RNG streams).
    assert not (a.tokens[0] == a.tokens[4]).all() or not (a.tokens[0] == a.tokens[8]).all()


@pytest.mark.parametrize("prompt, message", [
    (["BOS", "FIELDS"], r"token 'FIELDS' at position 1 .*allowed there: GAUGE"),
    (["GAUGE"], r"token 'GAUGE' at position 0 .*allowed there: BOS"),
    (["BOS", "GAUGE", "SU3", "U1"], r"token 'U1' at position 3 .*allowed there: END_GAUGE SU3 "
                                    r"SU4 SU5$"),
    (["BOS", "GAUGE", "XYZ"], r"unknown token 'XYZ'"),
])
def test_bad_prompt_raises_clear_error(setup, prompt, message):
    params, tables = setup
    with pytest.raises(ValueError, match=message):
        S.sample(params, CONFIG, tables, jax.random.PRNGKey(0), [["BOS"], prompt])


def _reference_draw(u: float, probs: np.ndarray) -> int:
    """Plain-Python inverse CDF in float64: the first token whose running sum exceeds u x total."""
    total, running = float(np.sum(probs, dtype=np.float64)), 0.0
    for token, p in enumerate(probs):
        running += float(p)
        if p > 0 and running > u * total:
            return token
    return int(np.flatnonzero(probs > 0)[-1])


def test_inverse_cdf_draw_matches_reference_and_never_draws_a_forbidden_token():
    rng = np.random.default_rng(7)
    rows, vocab = 4000, V.VOCAB_SIZE
    logits = rng.standard_normal((rows, vocab)).astype(np.float32) * rng.uniform(0.1, 6, (rows, 1))
    allowed = rng.random((rows, vocab)) < rng.uniform(0.01, 1.0, (rows, 1))
    allowed[np.arange(rows), rng.integers(0, vocab, rows)] = True   # at least one token each
    logp = jax.nn.log_softmax(jnp.where(allowed, logits, policy.NEG_INF))
    u = rng.random(rows).astype(np.float32)
    u[:100] = np.float32(1.0) - np.finfo(np.float32).eps             # the top of [0, 1)
    u[100:200] = 0.0
    drawn = np.asarray(jax.jit(S._inverse_cdf_sample)(jnp.asarray(u), logp))
    probs = np.exp(np.asarray(logp, np.float64))
    assert allowed[np.arange(rows), drawn].all()
    expected = np.array([_reference_draw(float(u[i]), probs[i]) for i in range(rows)])
    # float32 vs float64 running sums may differ right at a CDF boundary: allow a handful.
    assert (drawn == expected).mean() > 0.998
    np.testing.assert_array_equal(np.asarray(jax.jit(S._greedy)(logp)),
                                  np.argmax(np.asarray(logp), axis=-1))


def test_draw_tokens_picks_only_from_the_drawn_columns_by_temperature():
    """draw_tokens: temperature > 0 is the inverse CDF over columns first.., temperature 0 the
    first argmax there; both offset back to vocabulary ids."""
    rng = np.random.default_rng(11)
    rows, vocab, first = 500, V.VOCAB_SIZE, S.FIRST_DRAWN
    logits = rng.standard_normal((rows, vocab)).astype(np.float32)
    allowed = rng.random((rows, vocab)) < 0.3
    allowed[:, :first] = False                                       # PAD, BOS: never allowed
    allowed[np.arange(rows), rng.integers(first, vocab, rows)] = True
    logp = jax.nn.log_softmax(jnp.where(allowed, logits, policy.NEG_INF))
    u = rng.random(rows).astype(np.float32)
    draw = jax.jit(S.draw_tokens, static_argnums=3)
    sampled = np.asarray(draw(jnp.asarray(u), logp, jnp.float32(1.0), first))
    probs = np.exp(np.asarray(logp, np.float64))
    expected = np.array([_reference_draw(float(u[i]), probs[i]) for i in range(rows)])
    assert allowed[np.arange(rows), sampled].all()
    assert (sampled == expected).mean() > 0.99
    greedy = np.asarray(draw(jnp.asarray(u), logp, jnp.float32(0.0), first))
    np.testing.assert_array_equal(greedy, np.argmax(np.asarray(logp), axis=-1))


# ---------------------------------------------------------------------------
# The grammar under any logits: NaN, +-inf, huge values, temperature 1e-30


def _reference_choice(u: float, logp: np.ndarray, allowed: np.ndarray, temperature: float,
                      first: int) -> int:
    """Plain Python: the token draw_tokens must give. Only allowed columns >= first count; a row
    whose allowed probabilities do not sum to a finite positive number is uniform over them."""
    ok = allowed.copy()
    ok[:first] = False
    with np.errstate(all="ignore"):
        probs = np.where(ok, np.exp(logp.astype(np.float64)), 0.0)
    total = probs.sum()
    if not (np.isfinite(total) and total > 0):
        probs, logp = ok.astype(np.float64), np.where(ok, 0.0, -np.inf)
    if temperature > 0:
        return _reference_draw(u, probs)
    masked = np.where(ok, logp, -np.inf)
    return int(np.flatnonzero(masked == masked.max())[0])


def _wild_logits(rng: np.random.Generator, rows: int, vocab: int) -> np.ndarray:
    """Logits as a diverged model writes them: normal rows, rows with NaN, +-inf or +-1e30 /
    3e38 sprinkled in, rows all NaN, rows whose allowed tokens sit far below the mask value."""
    logits = (rng.standard_normal((rows, vocab)) * rng.uniform(0.1, 6, (rows, 1))).astype(np.float32)
    specials = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 3e38, -3e38], np.float32)
    kind = rng.integers(5, size=rows)
    hit = rng.random((rows, vocab)) < rng.uniform(0.01, 0.5, (rows, 1))
    sprinkled = (kind == 1)[:, None] & hit
    logits[sprinkled] = rng.choice(specials, size=int(sprinkled.sum()))
    logits[kind == 2] = np.nan
    logits[kind == 3] = -1e12 + logits[kind == 3]        # exp underflows: no mass on allowed
    logits[kind == 4] *= np.float32(1e35)                # overflow once tempered
    return logits


def test_draw_tokens_under_any_logits_matches_reference_and_stays_in_the_grammar():
    rng = np.random.default_rng(1234)
    rows, vocab, first = 6000, V.VOCAB_SIZE, S.FIRST_DRAWN
    logits = _wild_logits(rng, rows, vocab)
    allowed = rng.random((rows, vocab)) < rng.uniform(0.01, 1.0, (rows, 1))
    allowed[:, :first] = False
    allowed[np.arange(rows), rng.integers(first, vocab, rows)] = True
    u = rng.random(rows).astype(np.float32)
    draw = jax.jit(S.draw_tokens, static_argnums=3)
    for temperature in (1.0, 0.5, 1e-30, 0.0):
        spec = PolicySpec(temperature=temperature)
        logp = jax.jit(lambda z, a, t: jax.nn.log_softmax(policy.policy_logits(
            policy.apply_grammar(z, a), PolicySpec(temperature=t))))(logits, allowed, temperature)
        drawn = np.asarray(draw(jnp.asarray(u), logp, jnp.float32(spec.temperature), first,
                                jnp.asarray(allowed)))
        assert allowed[np.arange(rows), drawn].all(), temperature
        logp = np.asarray(logp)
        expected = np.array([_reference_choice(float(u[i]), logp[i], allowed[i], temperature,
                                               first) for i in range(rows)])
        # float32 vs float64 running sums may differ right at a CDF boundary: allow a handful.
        assert (drawn == expected).mean() > 0.995, temperature


def test_sampled_theories_stay_in_the_grammar_with_diverged_parameters(setup):
    """NaN, infinite and huge parameters, and a temperature of 1e-30: every row is still a
    theory the reference recogniser accepts (the sampler falls back to a uniform choice among
    the allowed tokens where the logits are not finite)."""
    params, tables = setup
    rng = np.random.default_rng(99)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(BATCH)]
    options = S.SamplerOptions(block_size=L, min_slots=None)   # the rollout fixture's compile

    def spoiled(values):
        def leaf(x):
            x = np.asarray(x).copy()
            hit = rng.random(x.shape) < 0.05
            x[hit] = rng.choice(values, size=int(hit.sum()))
            return jnp.asarray(x)
        return jax.tree.map(leaf, params)

    cases = [(jax.tree.map(lambda x: x * np.nan, params), 1.0),
             (jax.tree.map(lambda x: x * np.nan, params), 0.0),
             (jax.tree.map(lambda x: x * 1e30, params), 1.0),
             (params, 1e-30)]
    cases += [(spoiled(np.array([np.nan, np.inf, -np.inf, 1e30, -1e30], np.float32)), t)
              for t in (1.0, 0.5, 1e-30, 0.0) for _ in range(2)]
    for seed, (p, temperature) in enumerate(cases):
        r = jax.device_get(S.sample(p, CONFIG, tables, jax.random.PRNGKey(seed), prompts,
                                    policy=PolicySpec(temperature), options=options))
        for row, n in zip(r.tokens, r.lengths):
            result = recognizer.recognise(_strings(row, n), L)
            assert result.accepted, (seed, result.error)
            assert (row[n:] == V.PAD).all()
