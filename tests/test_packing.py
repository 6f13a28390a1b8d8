"""Sequence packing in the update (issue 17): several theories per row, a block-causal mask and
per-theory positions must give every token its unpacked log-prob, and the loss, its parts and
its gradient those of the unpacked batch."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from theorygrpo_jax import grpo, policy
from theorygrpo_jax import model as M
from theorygrpo_jax.config import GRPOConfig, config_from_dict
from theorygrpo_jax.grammar import automaton, walks
from theorygrpo_jax.policy import PolicySpec
from theorygrpo_jax.train import init_state

PAD = 0
L = 48


# --------------------------------------------------------------------------- host-side layout

def _random_batch(rng: np.random.Generator, rows: int, width: int) -> grpo.PolicyBatch:
    """Rows of random lengths (0 allowed: an empty replay row) with random fields; tokens are
    arbitrary non-PAD ids (the layout does not read them), prompts of random length."""
    lengths = rng.integers(0, width + 1, rows)
    filled = np.arange(width)[None, :] < lengths[:, None]
    tokens = np.where(filled, rng.integers(1, 130, (rows, width)), PAD).astype(np.int32)
    prompt = rng.integers(1, 4, rows)
    completion = filled & (np.arange(width)[None, :] >= prompt[:, None]) & (rng.random(rows) > 0.1)[:, None]
    return grpo.PolicyBatch(tokens=tokens, old_logprobs=rng.normal(size=(rows, width)).astype(np.float32),
                            completion_mask=completion,
                            advantages=rng.normal(size=rows).astype(np.float32),
                            weights=rng.random(rows).astype(np.float32))


def _reference_ffd(lengths: list[int], width: int) -> int:
    """Plain-Python first-fit decreasing: how many rows of `width` the lengths fill."""
    rows: list[int] = []
    for n in sorted(lengths, reverse=True):
        for i, used in enumerate(rows):
            if used + n <= width:
                rows[i] += n
                break
        else:
            rows.append(n)
    return len(rows)


def _rows_of(chunks, width: int) -> grpo.PolicyBatch:
    """The chunks' rows one after another (the numbering `segments` refers to), PAD to width."""
    pad = lambda a: np.pad(np.asarray(a), ((0, 0), (0, width - a.shape[1])))  # noqa: E731
    return grpo.PolicyBatch(*(np.concatenate([pad(getattr(c, f)) if getattr(c, f).ndim == 2
                                              else np.asarray(getattr(c, f)) for c in chunks])
                              for f in ("tokens", "old_logprobs", "completion_mask",
                                        "advantages", "weights")))


def _check_layout(chunks, width: int, packed: grpo.PackedBatch, min_width: int):
    """Walk the packed rows slot by slot (plain Python) and rebuild every theory."""
    batch = _rows_of(chunks, width)
    tokens = np.asarray(batch.tokens)
    lengths = [int(np.max(np.nonzero(r != PAD)[0], initial=-1)) + 1 for r in tokens]
    keep = [b for b in range(len(tokens))
            if lengths[b] > 1 and np.asarray(batch.completion_mask)[b, 1:].any()]
    seen: dict[int, list[tuple[int, int]]] = {}
    for r in range(packed.tokens.shape[0]):
        for c in range(packed.tokens.shape[1]):
            seg = int(packed.segments[r, c])
            if seg == 0:
                assert packed.tokens[r, c] == PAD and not packed.completion_mask[r, c]
                assert packed.weights[r, c] == 0
                continue
            seen.setdefault(seg - 1, []).append((r, c))
    assert sorted(seen) == keep
    for b, slots in seen.items():
        rows_used = {r for r, _ in slots}
        assert len(rows_used) == 1                                   # whole in one row
        r = rows_used.pop()
        cols = [c for _, c in slots]
        assert cols == list(range(cols[0], cols[0] + lengths[b]))    # contiguous, whole
        pos = [int(packed.positions[r, c]) for c in cols]
        assert pos == list(range(lengths[b]))
        for p, c in zip(pos, cols):
            assert packed.tokens[r, c] == tokens[b, p]
            assert packed.old_logprobs[r, c] == np.asarray(batch.old_logprobs)[b, p]
            # a theory's first token is never a target, packed or not
            assert packed.completion_mask[r, c] == (bool(np.asarray(batch.completion_mask)[b, p]) and p > 0)
            assert packed.advantages[r, c] == np.asarray(batch.advantages)[b]
            assert packed.weights[r, c] == np.asarray(batch.weights)[b]
    longest = max([lengths[b] for b in keep], default=1)
    assert packed.tokens.shape[1] == grpo.bucket_length(max(longest, min_width), tokens.shape[1])
    filled = _reference_ffd([lengths[b] for b in keep], packed.tokens.shape[1]) if keep else 1
    assert packed.tokens.shape[0] == grpo.packed_rows_bucket(filled)
    assert packed.theories == len(tokens)


def test_pack_rows_layout_on_random_batches():
    rng = np.random.default_rng(0)
    for case in range(2000):
        rows, width = int(rng.integers(1, 12)), int(rng.choice([8, 16, 40, 64]))
        batch = _random_batch(rng, rows, width)
        min_width = int(rng.choice([1, 8, 32]))
        chunks = ((batch,) if case % 2 else
                  grpo.split_by_length(batch, int(rng.integers(1, 4)), width))
        _check_layout(chunks, width, grpo.pack_rows(chunks, width, min_width), min_width)


def test_packed_rows_bucket():
    # the sizes by hand: 1..8, then four an octave, the first one >= rows
    sizes = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64,
             80, 96, 112, 128]
    for rows in range(1, 129):
        assert grpo.packed_rows_bucket(rows) == min(s for s in sizes if s >= rows)


# --------------------------------------------------------------------------- the model on packed rows

@pytest.fixture(scope="module")
def tiny():
    config = config_from_dict({"model": {"d_model": 32, "n_heads": 2, "n_layers": 2, "d_ff": 64,
                                         "max_len": L},
                               "grpo": {"group_size": 4, "learning_rate": 1e-2}})
    return config, automaton.load_tables(), init_state(config)


def _walk_batch(tables, seed: int, rows: int, config, params) -> grpo.PolicyBatch:
    """Grammar walks of random lengths with their policy's log-probs (perturbed: ratios != 1)."""
    key = jax.random.PRNGKey(seed)
    tokens = walks.random_walk_tokens(tables, key, rows, L)
    masks = policy.grammar_masks(tables, tokens, L)
    logp = policy.token_logprobs(policy.log_policy(params, config.model, tokens, masks, PolicySpec()),
                                 tokens)
    k1, k2, k3 = jax.random.split(key, 3)
    old = jnp.concatenate([jnp.zeros((rows, 1)), logp + 0.2 * jax.random.normal(k1, logp.shape)], 1)
    prompt = jax.random.randint(k3, (rows, 1), 1, 6)
    return grpo.PolicyBatch(tokens=tokens, old_logprobs=old,
                            completion_mask=(tokens != PAD) & (jnp.arange(L)[None] >= prompt),
                            advantages=jax.random.normal(k2, (rows,)),
                            weights=jnp.linspace(0.5, 1.5, rows))


def test_packed_forward_equals_each_sequence_alone(tiny):
    config, tables, state = tiny
    tokens = np.asarray(walks.random_walk_tokens(tables, jax.random.PRNGKey(1), 2, L))
    a, b = tokens[0][tokens[0] != PAD][:20], tokens[1][tokens[1] != PAD][:25]
    row = np.concatenate([a, b, np.zeros(L - 45, np.int32)])[None]
    positions = np.concatenate([np.arange(20), np.arange(25), np.zeros(L - 45, int)])[None]
    segments = np.concatenate([np.full(20, 1), np.full(25, 2), np.zeros(L - 45, int)])[None]
    packed = M.forward(state.params, config.model, row, positions, segments)[0]
    np.testing.assert_allclose(packed[:20], M.forward(state.params, config.model, a[None])[0],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(packed[20:45], M.forward(state.params, config.model, b[None])[0],
                               rtol=1e-5, atol=1e-5)


def test_packed_grammar_masks_equal_unpacked(tiny):
    _, tables, _ = tiny
    for seed in range(5):
        tokens = walks.random_walk_tokens(tables, jax.random.PRNGKey(seed), 16, L)
        batch = grpo.PolicyBatch(tokens=tokens, old_logprobs=jnp.zeros((16, L)),
                                 completion_mask=(tokens != PAD) & (jnp.arange(L) > 0),
                                 advantages=jnp.zeros(16), weights=jnp.ones(16))
        packed = grpo.pack_rows((batch,), L, min_width=L)
        got = np.asarray(policy.packed_grammar_masks(tables, packed.tokens, packed.positions, L))
        want = np.asarray(policy.grammar_masks(tables, tokens, L))
        seg, pos = packed.segments, packed.positions
        for r, c in zip(*np.nonzero(seg)):
            np.testing.assert_array_equal(got[r, c], want[seg[r, c] - 1, pos[r, c]])


def test_packed_token_logprobs_equal_unpacked(tiny):
    config, tables, state = tiny
    for seed in range(6):
        batch = _walk_batch(tables, 10 + seed, 24, config, state.params)
        tokens = batch.tokens
        want = np.asarray(policy.token_logprobs(policy.log_policy(
            state.params, config.model, tokens, policy.grammar_masks(tables, tokens, L),
            PolicySpec(temperature=0.7)), tokens))
        packed = grpo.pack_rows((batch,), L, min_width=L)
        masks = policy.packed_grammar_masks(tables, packed.tokens, packed.positions, L)
        got = np.asarray(policy.token_logprobs(policy.log_policy(
            state.params, config.model, packed.tokens, masks, PolicySpec(temperature=0.7),
            packed.positions, packed.segments), packed.tokens))
        seg, pos = packed.segments[:, 1:], packed.positions[:, 1:]
        checked = 0
        for r, c in zip(*np.nonzero((seg > 0) & (pos > 0))):
            np.testing.assert_allclose(got[r, c], want[seg[r, c] - 1, pos[r, c] - 1],
                                       rtol=1e-5, atol=2e-5)
            checked += 1
        assert checked > 200


@pytest.mark.parametrize("mode", ["token", "sequence"])
@pytest.mark.parametrize("estimator", ["exact", "k3"])
def test_packed_loss_and_gradient_equal_unpacked(tiny, mode, estimator):
    config, tables, state = tiny
    cfg = GRPOConfig(loss_aggregation=mode, kl_estimator=estimator, temperature=0.8)
    spec = PolicySpec.from_config(cfg)
    ref_params = jax.tree.map(lambda x: x * 1.05, state.ref_params)   # a reference != policy
    for seed in range(3):
        batch = _walk_batch(tables, 20 + seed, 16, config, state.params)
        chunks = grpo.split_by_length(batch, 3, L)
        masks = tuple(policy.grammar_masks(tables, c.tokens, L) for c in chunks)
        ref = tuple(policy.log_policy(ref_params, config.model, c.tokens, m, spec)
                    for c, m in zip(chunks, masks))
        (_, want), want_g = jax.value_and_grad(grpo.grpo_loss, has_aux=True)(
            state.params, chunks, masks, ref, 0.1, 0.01, model_config=config.model, config=cfg)
        packed = grpo.pack_rows(chunks, L, min_width=32)
        pmasks = policy.packed_grammar_masks(tables, packed.tokens, packed.positions, L)
        pref = policy.log_policy(ref_params, config.model, packed.tokens, pmasks, spec,
                                 packed.positions, packed.segments)
        (_, got), got_g = jax.value_and_grad(grpo.packed_grpo_loss, has_aux=True)(
            state.params, packed, pmasks, pref, 0.1, 0.01, model_config=config.model, config=cfg)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
        for g, w in zip(jax.tree.leaves(got_g), jax.tree.leaves(want_g)):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


def test_packed_update_step_equals_unpacked(tiny):
    config, tables, state = tiny
    batch = _walk_batch(tables, 30, 16, config, state.params)
    chunks = grpo.split_by_length(batch, 2, L)
    copy = lambda tree: jax.tree.map(jnp.copy, tree)  # noqa: E731  (the update donates its state)
    want_state, want = grpo.make_update_step(config.model, config.grpo, packing=False)(
        copy(state), chunks, tables)
    packed_update = grpo.make_update_step(config.model, config.grpo, packing=True)
    lr = config.grpo.learning_rate
    want_mu = jax.tree.leaves(optax.tree_utils.tree_get(want_state.opt_state, "mu"))
    for given in (chunks, grpo.pack_rows(chunks, L)):     # chunks packed inside, or already packed
        got_state, got = packed_update(copy(state), given, tables)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
        # The first moment is (1 - b1) x the clipped gradient: the gradients agree to rounding.
        got_mu = jax.tree.leaves(optax.tree_utils.tree_get(got_state.opt_state, "mu"))
        for g, w in zip(got_mu, want_mu):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-7)
        # Adam's first step moves each parameter by lr * g / (|g| + eps): where |g| is near
        # eps (1e-8) a gradient that rounds differently (the two updates sum their matmuls in
        # different orders) moves it by up to ~lr, so those are held to Adam's bound alone.
        for g, w, m in zip(jax.tree.leaves(got_state.params), jax.tree.leaves(want_state.params),
                           want_mu):
            g, w, settled = np.asarray(g), np.asarray(w), np.abs(np.asarray(m)) > 1e-6
            np.testing.assert_allclose(g[settled], w[settled], rtol=1e-4, atol=1e-6)
            assert np.all(np.abs(g - w) <= 2 * lr * 1.001)
        assert int(got_state.step) == 1


def test_bfloat16_packed_update_stays_close(tiny):
    """The update's bfloat16 options (forward matmuls; and the backward's) move the loss and
    its gradient by bfloat16 rounding only: operands carry 8 significant bits (relative
    error 2^-9 each), a few matmuls deep, so a few percent at most. The gradient is judged
    through Adam's first step, -lr * g / (|g| + eps) ~ -lr * sign(g): its signs agree where
    the gradient is not tiny."""
    config, tables, state = tiny
    batch = _walk_batch(tables, 40, 16, config, state.params)
    chunks = grpo.split_by_length(batch, 2, L)
    copy = lambda tree: jax.tree.map(jnp.copy, tree)  # noqa: E731
    make = lambda **kw: grpo.make_update_step(config.model, config.grpo, packing=True, **kw)  # noqa: E731
    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])  # noqa: E731
    want_state, want = make()(copy(state), chunks, tables)
    before = flat(state.params)
    want_step = flat(want_state.params) - before
    for kw in ({"matmul_dtype": "bfloat16"},
               {"matmul_dtype": "bfloat16", "grad_matmul_dtype": "bfloat16"}):
        got_state, got = make(**kw)(copy(state), chunks, tables)
        for key in ("total_loss", "policy_loss", "entropy", "grad_norm"):
            np.testing.assert_allclose(got[key], want[key], rtol=3e-2, atol=3e-3, err_msg=key)
        got_step = flat(got_state.params) - before
        big = np.abs(want_step) > 0.5 * config.grpo.learning_rate
        assert big.mean() > 0.5
        assert np.mean(np.sign(got_step[big]) == np.sign(want_step[big])) > 0.97
