"""The hand-written PyTorch GRPO step optimises this project's objective: its loss and every
part of it equal `grpo.grpo_loss` on the same batch and weights, its gradient equals JAX's,
one update (clip + AdamW) lands on the parameters `grpo.make_update_step` gives, and its
advantages and entropy schedule are this project's. Skipped without torch (the main install)."""

import dataclasses

import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.peers import torch_grpo as TG  # noqa: E402
from benchmarks.peers.grammar_tables import NumpyGrammar  # noqa: E402
from benchmarks.peers.torch_model import from_flax, torch_state_dict  # noqa: E402
from theorygrpo_jax import grpo  # noqa: E402
from theorygrpo_jax import model as M  # noqa: E402
from theorygrpo_jax import train as T  # noqa: E402
from theorygrpo_jax.config import config_from_dict  # noqa: E402
from theorygrpo_jax.grammar import automaton, walks  # noqa: E402
from theorygrpo_jax.grammar import vocab as V  # noqa: E402
from theorygrpo_jax.policy import PolicySpec, grammar_masks, log_policy, token_logprobs  # noqa: E402

MAX_LEN = 64
ROWS = 32


def _config(**grpo):
    return config_from_dict({"model": {"d_model": 32, "n_heads": 2, "n_layers": 2, "d_ff": 48,
                                       "max_len": MAX_LEN},
                             "grpo": {"group_size": 8, "prompts_per_step": ROWS // 8, **grpo},
                             "train": {"task": "from_scratch"}})


def _scrambled(params, key, scale=0.3):
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return tree.unflatten([1.0 + scale * jax.random.normal(k, x.shape) if x.ndim == 1
                           else scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])


@pytest.fixture(scope="module")
def grammar():
    return NumpyGrammar.load()


@pytest.fixture(scope="module")
def tables():
    return automaton.load_tables()


def _case(config, tables, seed):
    """Policy and reference parameters (different), and a batch of ROWS random theories with
    random sampling log-probs (so the ratio is clipped on both sides), advantages and weights."""
    mc = config.model
    policy = _scrambled(M.init_params(mc, jax.random.PRNGKey(seed)), jax.random.PRNGKey(100 + seed))
    ref = _scrambled(M.init_params(mc, jax.random.PRNGKey(50 + seed)), jax.random.PRNGKey(200 + seed))
    tokens = walks.random_walk_tokens(tables, jax.random.PRNGKey(seed), ROWS, MAX_LEN)
    masks = grammar_masks(tables, tokens, MAX_LEN)
    spec = PolicySpec.from_config(config.grpo)
    logp = token_logprobs(log_policy(policy, mc, tokens, masks, spec), tokens)
    rng = np.random.default_rng(seed)
    prompt_len = rng.integers(1, 4, ROWS)      # 1-3 teacher-forced tokens per row
    completion = (np.arange(MAX_LEN)[None] >= prompt_len[:, None]) & (np.asarray(tokens) != V.PAD)
    old = np.zeros((ROWS, MAX_LEN), np.float32)
    old[:, 1:] = np.asarray(logp) + rng.normal(0.0, 0.4, (ROWS, MAX_LEN - 1))
    old *= completion
    batch = grpo.PolicyBatch(tokens=tokens, old_logprobs=jnp.asarray(old),
                             completion_mask=jnp.asarray(completion),
                             advantages=jnp.asarray(rng.normal(size=ROWS), jnp.float32),
                             weights=jnp.asarray(rng.uniform(0.5, 1.5, ROWS), jnp.float32))
    return policy, ref, batch


def _torch_batch(batch, grammar):
    tokens = np.array(batch.tokens)
    return TG.TorchBatch(tokens=torch.as_tensor(tokens, dtype=torch.long),
                         old_logprobs=torch.as_tensor(np.array(batch.old_logprobs)),
                         completion_mask=torch.as_tensor(np.array(batch.completion_mask)),
                         advantages=torch.as_tensor(np.array(batch.advantages)),
                         weights=torch.as_tensor(np.array(batch.weights)),
                         masks=torch.from_numpy(grammar.sequence_masks(tokens, MAX_LEN)))


def _jax_loss(config, tables, policy, ref, batch, kl_coef, entropy_coef):
    mc, gc = config.model, config.grpo
    chunks = grpo.split_by_length(batch, gc.update_chunks, MAX_LEN)
    masks = tuple(grammar_masks(tables, c.tokens, MAX_LEN) for c in chunks)
    refs = tuple(log_policy(ref, mc, c.tokens, m, PolicySpec.from_config(gc))
                 for c, m in zip(chunks, masks))
    return jax.value_and_grad(grpo.grpo_loss, has_aux=True)(
        policy, chunks, masks, refs, jnp.float32(kl_coef), jnp.float32(entropy_coef),
        model_config=mc, config=gc)


GRPO_VARIANTS = {
    "token_exact": {},
    "sequence_k3": {"loss_aggregation": "sequence", "kl_estimator": "k3"},
    "tempered_topk_clip_higher": {"temperature": 0.7, "top_k": 20, "clip_range_high": 0.28},
    "one_chunk_no_std": {"update_chunks": 1, "scale_by_std": False},
}


@pytest.mark.parametrize("variant", GRPO_VARIANTS)
def test_loss_parts_and_gradient_equal_jax(variant, grammar, tables):
    config = _config(**GRPO_VARIANTS[variant])
    for seed in range(2):
        policy, ref, batch = _case(config, tables, seed)
        (loss, parts), grads = _jax_loss(config, tables, policy, ref, batch, 0.05, 0.01)
        model, ref_model = from_flax(policy, config.model), from_flax(ref, config.model)
        tb = _torch_batch(batch, grammar)
        got, got_parts = TG.grpo_loss(model, ref_model, TG.split_by_length(
            tb, config.grpo.update_chunks), 0.05, 0.01, config.grpo, backward=True)
        # top-k: the reference's top k differs from the policy's, and the exact KL counts the
        # policy's mass on tokens the reference cut (log-prob NEG_INF): a loss of ~1e6
        assert got == pytest.approx(float(loss), rel=1e-5, abs=1e-5)
        for key, value in parts.items():
            assert got_parts[key] == pytest.approx(float(value), rel=1e-5, abs=1e-5), key
        assert 0.0 < got_parts["clip_fraction"] < 1.0 and got_parts["kl"] > 0.0
        want = torch_state_dict(jax.device_get(grads), model.config)
        for name, param in model.named_parameters():
            # float32 sums of terms up to ~1e5 (top-k's KL) cancel to small entries: the
            # tolerance scales with the largest entry
            scale = float(np.abs(want[name].numpy()).max())
            np.testing.assert_allclose(param.grad.numpy(), want[name].numpy(),
                                       atol=1e-6 + 1e-5 * scale, rtol=1e-3, err_msg=name)


def test_one_update_lands_where_the_jax_update_does(grammar, tables):
    """Clip to max_grad_norm (the gradient here is larger) and one AdamW step."""
    config = _config(learning_rate=1e-2, weight_decay=0.1, max_grad_norm=0.5)
    policy, ref, batch = _case(config, tables, 3)
    state = T.init_state(config)
    optimizer = grpo.make_optimizer(config.grpo)
    copy = lambda tree: jax.tree.map(jnp.copy, tree)  # noqa: E731  (the update donates the state)
    state = state.replace(params=copy(policy), ref_params=copy(ref),
                          opt_state=optimizer.init(policy))
    update = grpo.make_update_step(config.model, config.grpo)
    new_state, metrics = update(state, grpo.split_by_length(batch, 4, MAX_LEN), tables)
    peer = TG.TorchGRPO(config, policy, ref)
    got = peer.update(_torch_batch(batch, grammar))
    assert float(metrics["grad_norm"]) > config.grpo.max_grad_norm
    assert got["grad_norm"] == pytest.approx(float(metrics["grad_norm"]), rel=1e-4)
    want = torch_state_dict(jax.device_get(new_state.params), peer.policy.config)
    before = torch_state_dict(jax.device_get(policy), peer.policy.config)
    lr = config.grpo.learning_rate
    for name, param in peer.policy.named_parameters():
        # Adam's first step moves each weight by lr * g / (|g| + 1e-8) (+ decay): where a
        # gradient entry is within a few orders of 1e-8 (float32 rounding of sums of ~1e-1
        # terms), its rounding shows at up to ~1e-2 of lr; elsewhere the step agrees to 1e-4
        diff = np.abs(param.detach().numpy() - want[name].numpy())
        assert diff.max() < 1e-2 * lr, name
        assert np.mean(diff > 1e-4 * lr) < 0.01, name
        assert np.abs(want[name].numpy() - before[name].numpy()).max() > 0.5 * lr, name


def test_bfloat16_autocast_moves_log_probs_by_rounding_only(grammar, tables):
    """`--matmul-dtype bfloat16`: the peer's forward under torch's CPU autocast (bfloat16
    operands, 8 significant bits, a few matmuls deep) moves the masked log-probs by rounding
    only: as far as this project's bfloat16 weight matmuls move them (within 4x; this case's
    scrambled weights give logits of tens, so both move by ~1e-1); and the loss stays finite."""
    config = _config()
    policy, ref, batch = _case(config, tables, 0)
    model, ref_model = from_flax(policy, config.model), from_flax(ref, config.model)
    tb = _torch_batch(batch, grammar)
    mask = tb.completion_mask[:, 1:].numpy()
    with torch.no_grad():
        logps = {dtype: TG.policy_log_probs(model, tb.tokens, tb.masks, 1.0, None, dtype)
                 .gather(-1, tb.tokens[:, 1:, None])[..., 0].numpy()
                 for dtype in ("float32", "bfloat16")}
    tokens, masks = jnp.asarray(batch.tokens), jnp.asarray(tb.masks.numpy())
    jax_bf16 = np.asarray(token_logprobs(log_policy(
        policy, dataclasses.replace(config.model, matmul_dtype="bfloat16"), tokens, masks,
        PolicySpec()), tokens))
    torch_diff = np.max(np.abs(logps["bfloat16"] - logps["float32"]) * mask)
    jax_diff = np.max(np.abs(jax_bf16 - logps["float32"]) * mask)
    assert 0.0 < torch_diff < 4 * jax_diff and jax_diff < 4 * torch_diff
    loss, _ = TG.grpo_loss(model, ref_model, TG.split_by_length(tb, 4), 0.05, 0.01, config.grpo,
                           matmul_dtype="bfloat16")
    assert np.isfinite(loss)


def test_group_advantages_by_hand():
    # group (1, 2, 3, 4): mean 2.5, sample std sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3) = sqrt(5/3)
    # = 1.2909944, so (r - 2.5) / std = -1.161895, -0.387298, 0.387298, 1.161895; a constant
    # group (5, 5, 5, 5) has std 0: 0 / (0 + eps) = 0
    got = TG.group_advantages(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0]), 4)
    np.testing.assert_allclose(got.numpy(), [-1.161895, -0.387298, 0.387298, 1.161895, 0, 0, 0, 0],
                               atol=1e-5)


def test_group_advantages_equal_jax_on_random_rewards():
    rewards = np.random.default_rng(0).normal(0.0, 3.0, 4096).astype(np.float32)
    for group, scale in ((8, True), (64, True), (16, False)):
        np.testing.assert_allclose(
            TG.group_advantages(torch.as_tensor(rewards), group, scale).numpy(),
            np.asarray(grpo.group_advantages(jnp.asarray(rewards), group, scale)), atol=1e-5)


@pytest.mark.parametrize("schedule", ["constant", "linear", "exponential", "cosine"])
def test_entropy_schedule_equals_jax(schedule):
    gc = dataclasses.replace(_config().grpo, entropy_schedule=schedule, entropy_coef=0.02,
                             entropy_coef_final=0.001, entropy_decay_steps=50)
    for step in (0, 7, 25, 50, 80):
        assert TG.entropy_coefficient(gc, step) == pytest.approx(
            float(grpo.entropy_coefficient(gc, jnp.int32(step))), rel=1e-5)


def test_a_whole_step_samples_theories_and_records_their_log_probs(grammar):
    config = _config()
    params = M.init_params(config.model, jax.random.PRNGKey(0))
    peer = TG.TorchGRPO(config, params)
    torch.manual_seed(0)
    batch = peer.sample(np.full((ROWS, 1), V.BOS))
    tokens = batch.tokens.numpy()
    assert grammar.accepted(np.pad(tokens, ((0, 0), (0, MAX_LEN - tokens.shape[1]))), MAX_LEN).all()
    np.testing.assert_array_equal(batch.masks.numpy(), grammar.sequence_masks(tokens, MAX_LEN))
    with torch.no_grad():
        logp = TG.policy_log_probs(peer.policy, batch.tokens, batch.masks, 1.0)
    recomputed = logp.gather(-1, batch.tokens[:, 1:, None])[..., 0] * batch.completion_mask[:, 1:]
    np.testing.assert_allclose(recomputed.numpy(), batch.old_logprobs[:, 1:].numpy(), atol=1e-5)
    seconds, metrics = peer.step(np.full((ROWS, 1), V.BOS))
    assert set(seconds) == {"sample_s", "reward_s", "update_s", "step_s"}
    assert metrics["ratio_mean"] == pytest.approx(1.0, abs=1e-5) and metrics["kl"] == 0.0
