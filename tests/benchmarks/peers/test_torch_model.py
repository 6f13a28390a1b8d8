"""The PyTorch peer model computes this project's transformer: its logits equal
`model.forward`'s on random token rows for random parameters, its KV-cache decode equals its
full forward, and the saved-and-reloaded model (TRL's path) is the same model.
Skipped without torch (the main install)."""

import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.peers import torch_model as TM  # noqa: E402
from theorygrpo_jax import model as M  # noqa: E402
from theorygrpo_jax.config import ModelConfig  # noqa: E402
from theorygrpo_jax.grammar import vocab as V  # noqa: E402

CONFIGS = [ModelConfig.tiny(), ModelConfig(d_model=64, n_heads=4, n_layers=2, d_ff=96, max_len=48,
                                           rope_base=500.0, norm_eps=1e-5)]


def _scrambled(params, key):
    """Random parameters of the same tree, larger than init's (norm scales off 1, a wide
    embedding), so that every weight and every norm scale shows in the logits."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return tree.unflatten([1.0 + 0.3 * jax.random.normal(k, x.shape) if x.ndim == 1
                           else 0.3 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])


@pytest.mark.parametrize("mc", CONFIGS, ids=["tiny", "small"])
def test_logits_equal_the_flax_forward_on_random_rows(mc):
    rng = np.random.default_rng(0)
    for seed in range(3):
        params = _scrambled(M.init_params(mc, jax.random.PRNGKey(seed)), jax.random.PRNGKey(10 + seed))
        peer = TM.from_flax(params, mc)
        # 1024 random rows of max_len (causal: every prefix is checked too) and 64 short ones
        for shape in ((1024, mc.max_len), (64, 3)):
            rows = rng.integers(0, mc.vocab_size, shape)
            want = np.asarray(M.forward(params, mc, jnp.asarray(rows, jnp.int32)))
            with torch.no_grad():
                got = peer(torch.as_tensor(rows)).logits.numpy()
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_the_head_is_the_embedding():
    mc = CONFIGS[0]
    peer = TM.from_flax(M.init_params(mc, jax.random.PRNGKey(0)), mc)
    assert peer.lm_head.weight is peer.model.embed_tokens.weight


def test_cached_decoding_equals_the_full_forward():
    """generate's per-step logits (KV cache, one token at a time) are the full forward's."""
    mc = CONFIGS[1]
    params = _scrambled(M.init_params(mc, jax.random.PRNGKey(1)), jax.random.PRNGKey(2))
    peer = TM.from_flax(params, mc)
    prompts = torch.as_tensor(np.random.default_rng(1).integers(3, mc.vocab_size, (16, 5)))
    torch.manual_seed(0)
    with torch.no_grad():
        out = peer.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                            top_k=0, max_length=mc.max_len, min_length=mc.max_len,
                            pad_token_id=V.PAD, eos_token_id=V.EOS, output_logits=True,
                            return_dict_in_generate=True)
        full = peer(out.sequences).logits
    stepped = torch.stack(out.logits, dim=1)                   # [B, L - 5, V]
    np.testing.assert_allclose(stepped.numpy(), full[:, 4:-1].numpy(), atol=1e-4, rtol=1e-4)


def test_saved_and_reloaded_peer_is_the_same_model(tmp_path):
    mc = CONFIGS[1]
    params = _scrambled(M.init_params(mc, jax.random.PRNGKey(3)), jax.random.PRNGKey(4))
    peer = TM.from_flax(params, mc)
    peer.save_pretrained(tmp_path)
    again = TM.TheoryGPTForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    rows = torch.as_tensor(np.random.default_rng(2).integers(0, mc.vocab_size, (8, mc.max_len)))
    with torch.no_grad():
        np.testing.assert_array_equal(again(rows).logits.numpy(), peer(rows).logits.numpy())
    assert again.lm_head.weight.data_ptr() == again.model.embed_tokens.weight.data_ptr()


@pytest.mark.parametrize("change", [dict(norm="layernorm"), dict(tie_embeddings=False),
                                    dict(matmul_dtype="bfloat16"), dict(dtype="bfloat16")])
def test_models_without_a_peer_are_refused_naming_the_setting(change):
    mc = CONFIGS[0].replace(**change)
    with pytest.raises(ValueError, match=f"no counterpart of model .*{next(iter(change))}"):
        TM.TheoryGPTConfig.from_model_config(mc)
