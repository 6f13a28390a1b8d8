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
