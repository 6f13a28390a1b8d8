"""TheoryGPT: config validation, presets, causal forward, KV-cache decode == full forward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theorygrpo_jax import model as M
from theorygrpo_jax.grammar import vocab as V

TINY = M.ModelConfig.tiny()
forward = jax.jit(M.forward, static_argnums=1)
decode_step = jax.jit(M.decode_step, static_argnums=1)


def _shapes_params(config):
    return M.num_params(jax.eval_shape(lambda: M.init_params(config, jax.random.PRNGKey(0))))


@pytest.mark.parametrize("changes, message", [
    (dict(d_model=30, n_heads=4), "not divisible by n_heads"),
    (dict(d_model=0), "d_model must be a positive int"),
    (dict(n_layers=-1), "n_layers must be a positive int"),
    (dict(vocab_size=10), "smaller than the TheoryLang vocabulary"),
    (dict(dtype="float16"), "dtype must be one of"),
    (dict(cache_dtype="int8"), "cache_dtype must be one of"),
    (dict(matmul_dtype="float16"), "matmul_dtype must be one of"),
    (dict(norm="batchnorm"), "norm must be"),
    (dict(d_model=24, n_heads=8), "must be even for RoPE"),
    (dict(max_len=1), "max_len must be at least 2"),
    (dict(rope_base=0.5), "rope_base must be > 1"),
])
def test_config_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        TINY.replace(**changes)


def test_presets():
    assert TINY.n_layers == 1 and TINY.d_model == 32
    original = M.ModelConfig.original()
    assert (original.d_model, original.n_layers, original.n_heads, original.d_ff,
            original.max_len) == (512, 4, 8, 1024, 512)
    assert 8.3e6 < _shapes_params(original) < 8.6e6
    assert _shapes_params(M.ModelConfig.gpu()) > _shapes_params(original)
    assert _shapes_params(M.ModelConfig.cpu_default()) < _shapes_params(original)
    hash(original)  # static jit argument


@pytest.fixture(scope="module")
def params():
    return M.init_params(TINY, jax.random.PRNGKey(0))


def test_forward_shapes_and_causality(params):
    tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 12), 0, V.VOCAB_SIZE)
    logits = forward(params, TINY, tokens)
    assert logits.shape == (2, 12, V.VOCAB_SIZE) and logits.dtype == jnp.float32
    changed = forward(params, TINY, tokens.at[:, 7].set((tokens[:, 7] + 1) % V.VOCAB_SIZE))
    np.testing.assert_array_equal(logits[:, :7], changed[:, :7])
    assert not np.allclose(logits[:, 7:], changed[:, 7:])
    with pytest.raises(ValueError, match="longer than max_len"):
        M.forward(params, TINY, jnp.zeros((1, TINY.max_len + 1), jnp.int32))


@pytest.mark.parametrize("config", [TINY, TINY.replace(tie_embeddings=False, norm="layernorm")],
                         ids=["tied-rmsnorm", "untied-layernorm"])
def test_decode_matches_forward(config):
    params = M.init_params(config, jax.random.PRNGKey(2))
    tokens = jax.random.randint(jax.random.PRNGKey(3), (3, 20), 0, V.VOCAB_SIZE)
    full = forward(params, config, tokens)
    logits, cache = jax.jit(M.prefill, static_argnums=1)(params, config, tokens[:, :5],
                                                          M.init_cache(config, 3, 16))
    np.testing.assert_allclose(logits, full[:, :5], atol=1e-5)
    cache = M.grow_cache(cache, 24)          # decode across two chunks: [0, 16) and [16, 24)
    assert cache.length == 24 and cache.chunk_lengths == (16, 8) and len(cache.k) == config.n_layers
    head = M.output_head(params, config)
    assert head.shape == (config.d_model, config.vocab_size)
    for t in range(5, 20):
        with_head, _ = decode_step(params, config, cache, tokens[:, t], t, head=head)
        logits, cache = decode_step(params, config, cache, tokens[:, t], t)
        np.testing.assert_allclose(logits, full[:, t], atol=1e-5, err_msg=f"position {t}")
        np.testing.assert_allclose(with_head, logits, atol=1e-5, err_msg=f"head, position {t}")


def test_bfloat16_cache_decodes_close(params):
    config = TINY.replace(cache_dtype="bfloat16")
    tokens = jax.random.randint(jax.random.PRNGKey(4), (2, 6), 0, V.VOCAB_SIZE)
    full = forward(params, config, tokens)
    cache = M.init_cache(config, 2, 8)
    assert cache.k[0][0].dtype == jnp.bfloat16
    for t in range(6):
        logits, cache = decode_step(params, config, cache, tokens[:, t], t)
    np.testing.assert_allclose(logits, full[:, 5], atol=0.05)


def _round_to_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16 (ties to even), as float32: the top 16 bits of the
    word after adding half an ulp of bfloat16 (finite inputs)."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def test_round_to_bfloat16_reference():
    # 1 + 2^-8 lies halfway between bfloat16 neighbours 1 and 1 + 2^-7: ties go to the even 1;
    # 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: to the even 1 + 2^-6.
    x = np.array([1.0, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -2.5], np.float32)
    np.testing.assert_array_equal(_round_to_bfloat16(x),
                                  [1.0, 1.0, 1 + 2 ** -6, 1 + 2 ** -7, -2.5])


def test_bfloat16_weight_matmuls_round_operands_and_sum_in_float32():
    """Thousands of random products against NumPy: operands rounded to bfloat16 (by the
    reference above), products summed in float64; float32 sums agree to float32 rounding."""
    config = TINY.replace(matmul_dtype="bfloat16")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2000, 48)) * rng.uniform(0.1, 10, (2000, 1))).astype(np.float32)
    w = rng.standard_normal((48, 24)).astype(np.float32)
    got = np.asarray(jax.jit(M._weight_matmul, static_argnums=0)(config, x, w))
    exact = _round_to_bfloat16(x).astype(np.float64) @ _round_to_bfloat16(w).astype(np.float64)
    scale = np.abs(_round_to_bfloat16(x)).astype(np.float64) @ np.abs(_round_to_bfloat16(w))
    assert got.dtype == np.float32
    assert np.all(np.abs(got - exact) <= 48 * 2 ** -24 * scale)
    # and it is not the float32 product: the rounding shows
    full = x.astype(np.float64) @ w.astype(np.float64)
    assert np.median(np.abs(got - full) / scale) > 1e-4
    f32 = np.asarray(jax.jit(M._weight_matmul, static_argnums=0)(TINY, x, w))
    assert np.all(np.abs(f32 - full) <= 48 * 2 ** -24 * (np.abs(x) @ np.abs(w)))

    # gradients: the rounding is differentiated as the identity, in float32 (not rounded)
    c = rng.standard_normal((2000, 24)).astype(np.float32)
    loss = lambda x, w: jnp.sum(c * M._weight_matmul(config, x, w))  # noqa: E731
    d_x, d_w = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)
    want_x = c.astype(np.float64) @ _round_to_bfloat16(w).astype(np.float64).T
    want_w = _round_to_bfloat16(x).astype(np.float64).T @ c.astype(np.float64)
    assert d_x.dtype == d_w.dtype == jnp.float32
    np.testing.assert_allclose(d_x, want_x, rtol=0, atol=24 * 2 ** -24 * np.abs(want_x).max())
    np.testing.assert_allclose(d_w, want_w, rtol=0, atol=2000 * 2 ** -24 * np.abs(want_w).max())
    assert not np.array_equal(np.asarray(d_w), _round_to_bfloat16(np.asarray(d_w)))


def test_bfloat16_matmuls_decode_params_and_decode_match_forward(params):
    config = TINY.replace(matmul_dtype="bfloat16")
    assert M.decode_params(params, TINY) is params
    cast = M.decode_params(params, config)
    kinds = {jax.tree_util.keystr(p): x.dtype for p, x in jax.tree_util.tree_leaves_with_path(cast)}
    assert {k for k, d in kinds.items() if d == jnp.bfloat16} == {
        k for k in kinds if k.endswith("['kernel']")} != set()
    assert kinds["['embed']['embedding']"] == jnp.float32
    tokens = jax.random.randint(jax.random.PRNGKey(5), (2, 10), 0, V.VOCAB_SIZE)
    full = forward(params, config, tokens)
    np.testing.assert_allclose(full, forward(params, TINY, tokens), atol=1e-2)
    cache = cache_cast = M.init_cache(config, 2, 16)
    for t in range(10):
        logits, cache = decode_step(params, config, cache, tokens[:, t], t)
        # the weights cast once before the loop: the very same numbers
        cast_logits, cache_cast = decode_step(cast, config, cache_cast, tokens[:, t], t,
                                              head=M.output_head(cast, config))
        np.testing.assert_array_equal(cast_logits, logits)
        np.testing.assert_allclose(logits, full[:, t], atol=1e-2, err_msg=f"position {t}")
    grads = jax.grad(lambda p: forward(p, config, tokens).sum())(params)
    assert all(g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g)))
               for g in jax.tree_util.tree_leaves(grads))


def test_bfloat16_backward_matmuls_round_cotangent_and_sum_in_float32():
    """grad_dtype bfloat16: both backward GEMMs read the rounded operand and the rounded
    cotangent (rounded by the plain reference above), products summed in float32; checked
    against NumPy float64 on thousands of random rows, for the Dense matmul [T, K] @ [K, N]
    and the attention output's DenseGeneral contraction over two axes [T, H, D] @ [H, D, N]."""
    config = TINY.replace(matmul_dtype="bfloat16")
    rng = np.random.default_rng(1)
    r = lambda a: _round_to_bfloat16(np.asarray(a, np.float32)).astype(np.float64)  # noqa: E731
    dims_dense = (((1,), (0,)), ((), ()))
    dims_general = (((1, 2), (0, 1)), ((), ()))
    for x_shape, w_shape, dims in (((3000, 48), (48, 24), dims_dense),
                                   ((2000, 4, 12), (4, 12, 24), dims_general)):
        x = (rng.standard_normal(x_shape) * rng.uniform(0.1, 10, (x_shape[0],) + (1,) * (len(x_shape) - 1))
             ).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        c = rng.standard_normal((x_shape[0], 24)).astype(np.float32)
        dot = M._weight_dot_general(config, "bfloat16")
        loss = lambda x, w: jnp.sum(c * dot(x, w, dims))  # noqa: E731
        d_x, d_w = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)
        xf, wf = r(x).reshape(x_shape[0], -1), r(w).reshape(-1, 24)
        want_x = (r(c) @ wf.T).reshape(x_shape)            # dL/dx = c W^T, c and W rounded
        want_w = (xf.T @ r(c)).reshape(w_shape)            # dL/dW = x^T c, x and c rounded
        assert d_x.dtype == d_w.dtype == jnp.float32
        k = xf.shape[1]
        np.testing.assert_allclose(d_x, want_x, rtol=0, atol=k * 2 ** -24 * np.abs(want_x).max())
        np.testing.assert_allclose(d_w, want_w, rtol=0,
                                   atol=x_shape[0] * 2 ** -24 * np.abs(want_w).max())
        # and it is not the float32 cotangent's gradient: the cotangent's rounding shows
        f32_x = c.astype(np.float64) @ wf.T
        assert np.median(np.abs(np.asarray(d_x).reshape(x_shape[0], -1) - f32_x)) > 1e-5
