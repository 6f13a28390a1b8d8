"""This project's transformer (`theorygrpo_jax.model`) in PyTorch, as a Hugging Face model.

The same shapes and math: token embedding, pre-norm blocks (RMSNorm, causal multi-head
attention with rotary position embeddings on the two halves of each head, a tanh-GELU MLP),
a final RMSNorm and a head tied to the embedding; no biases. Written in the layout of
transformers' own decoders (a backbone `model` and an `lm_head`) so that `generate` (with its
KV cache) and TRL's GRPOTrainer (which reads `base_model` and `get_output_embeddings`) work.

    model = from_flax(params, model_config)               # weights from this project's params
    logits = model(torch.as_tensor(tokens)).logits        # [B, T, V], == model.forward's

Only rows that share their start (no left padding) are supported, as in the benchmark, where
every row of a batch has the same prompt: padding after EOS is harmless under causal attention.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (AutoConfig, AutoModelForCausalLM, GenerationMixin, PretrainedConfig,
                          PreTrainedModel)
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from theorygrpo_jax.config import ModelConfig
from theorygrpo_jax.grammar import vocab as V

MODEL_TYPE = "theorygpt_peer"


class TheoryGPTConfig(PretrainedConfig):
    """HF config of the peer model (attribute names as transformers' decoders spell them, which
    its DynamicCache and TRL read)."""
    model_type = MODEL_TYPE

    def __init__(self, vocab_size: int = V.VOCAB_SIZE, hidden_size: int = 128,
                 num_attention_heads: int = 4, num_hidden_layers: int = 2,
                 intermediate_size: int = 256, max_position_embeddings: int = 128,
                 rope_theta: float = 10000.0, rms_norm_eps: float = 1e-6, **kwargs: Any):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_attention_heads
        self.head_dim = hidden_size // num_attention_heads
        self.num_hidden_layers = num_hidden_layers
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        kwargs.setdefault("tie_word_embeddings", True)
        for name, token in (("pad_token_id", V.PAD), ("bos_token_id", V.BOS),
                            ("eos_token_id", V.EOS)):
            kwargs.setdefault(name, token)
        # TRL reads auto_map when it rebuilds the reference model from the saved peer
        kwargs.setdefault("auto_map", {})
        super().__init__(**kwargs)

    @classmethod
    def from_model_config(cls, mc: ModelConfig) -> "TheoryGPTConfig":
        """The peer of a ModelConfig; only the float32, RMSNorm, tied-head model has one."""
        unsupported = {k: getattr(mc, k) for k, ok in (
            ("norm", mc.norm == "rmsnorm"), ("tie_embeddings", mc.tie_embeddings),
            ("dtype", mc.dtype == "float32"), ("param_dtype", mc.param_dtype == "float32"),
            ("matmul_dtype", mc.matmul_dtype == "float32")) if not ok}
        if unsupported:
            raise ValueError(f"the PyTorch peer has no counterpart of model {unsupported} "
                             f"(it is the float32 RMSNorm model with a tied head)")
        return cls(vocab_size=mc.vocab_size, hidden_size=mc.d_model, num_attention_heads=mc.n_heads,
                   num_hidden_layers=mc.n_layers, intermediate_size=mc.d_ff,
                   max_position_embeddings=mc.max_len, rope_theta=mc.rope_base,
                   rms_norm_eps=mc.norm_eps)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * scale, as flax.linen.RMSNorm."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_angles(config: TheoryGPTConfig, positions: torch.Tensor) -> torch.Tensor:
    """[..., head_dim // 2] float32 rotation angles of positions [...] (`model._rope_tables`).

    Computed per call rather than kept in a buffer: `from_pretrained` builds the model on the
    meta device and would leave a non-persistent buffer empty."""
    half = config.head_dim // 2
    inv_freq = config.rope_theta ** (-torch.arange(half, dtype=torch.float32,
                                                   device=positions.device) / half)
    return positions.to(torch.float32)[..., None] * inv_freq


def apply_rope(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """Rotate the two halves of x [B, H, T, D] by position; sin, cos [B or 1, 1, T, D/2]."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x)) (`model.Block`)."""

    def __init__(self, config: TheoryGPTConfig, layer_idx: int):
        super().__init__()
        d, self.heads = config.hidden_size, config.num_attention_heads
        self.head_dim = config.head_dim
        self.layer_idx = layer_idx
        self.attn_norm = RMSNorm(d, config.rms_norm_eps)
        self.qkv = nn.Linear(d, 3 * d, bias=False)     # output laid out [3, heads, head_dim]
        self.out = nn.Linear(d, d, bias=False)         # input laid out [heads, head_dim]
        self.mlp_norm = RMSNorm(d, config.rms_norm_eps)
        self.up = nn.Linear(d, config.intermediate_size, bias=False)
        self.down = nn.Linear(config.intermediate_size, d, bias=False)

    def forward(self, x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor,
                cache: Cache | None) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(self.attn_norm(x)).view(b, t, 3, self.heads, self.head_dim)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))       # [B, H, T, hd] each
        q, k = apply_rope(q, sin, cos), apply_rope(k, sin, cos)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        # q attends to every cached position and, among the new ones, to those up to its own
        # (bottom-right aligned causal mask; none needed for one new position)
        if t == 1:
            mask = None
        else:
            mask = torch.ones(t, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - t)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             scale=1.0 / math.sqrt(self.head_dim))
        x = x + self.out(att.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.mlp_norm(x)), approximate="tanh"))


class TheoryGPTPreTrainedModel(PreTrainedModel):
    config_class = TheoryGPTConfig
    base_model_prefix = "model"
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        # the weights always come from this project's parameters (`from_flax`)
        pass


class TheoryGPTModel(TheoryGPTPreTrainedModel):
    """The backbone: embedding, blocks, final norm -> hidden states [B, T, D]."""

    def __init__(self, config: TheoryGPTConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, cache: Cache | None = None,
                use_cache: bool | None = None, **kwargs: Any) -> BaseModelOutputWithPast:
        x = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if position_ids is None:
            start = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(start, start + input_ids.shape[1],
                                        device=input_ids.device)[None]
        angles = rope_angles(self.config, position_ids)[:, None]      # [B or 1, 1, T, hd/2]
        sin, cos = torch.sin(angles), torch.cos(angles)
        for layer in self.layers:
            x = layer(x, sin, cos, cache)
        return BaseModelOutputWithPast(last_hidden_state=self.norm(x),
                                       cache=cache if use_cache else None)


class TheoryGPTForCausalLM(TheoryGPTPreTrainedModel, GenerationMixin):
    """Backbone + tied head: logits [B, T, V] float32."""
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: TheoryGPTConfig):
        super().__init__(config)
        self.model = TheoryGPTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, cache: Cache | None = None,
                use_cache: bool | None = None, logits_to_keep: int = 0,
                **kwargs: Any) -> CausalLMOutputWithPast:
        out = self.model(input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         cache=cache, use_cache=use_cache)
        hidden = out.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        return CausalLMOutputWithPast(logits=self.lm_head(hidden), cache=out.cache)


AutoConfig.register(MODEL_TYPE, TheoryGPTConfig, exist_ok=True)
AutoModelForCausalLM.register(TheoryGPTConfig, TheoryGPTForCausalLM, exist_ok=True)


def _tensor(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(a, np.float32))


def torch_state_dict(params: Any, config: TheoryGPTConfig) -> dict[str, torch.Tensor]:
    """This project's Flax parameters (`model.init_params`' tree) as the peer's state dict."""
    d = config.hidden_size
    embed = _tensor(params["embed"]["embedding"])                           # [V, D]
    out = {"model.embed_tokens.weight": embed, "lm_head.weight": embed,
           "model.norm.weight": _tensor(params["final_norm"]["scale"])}
    for i in range(config.num_hidden_layers):
        p, pre = params[f"block_{i}"], f"model.layers.{i}."
        out.update({
            pre + "attn_norm.weight": _tensor(p["attn_norm"]["scale"]),
            pre + "qkv.weight": _tensor(p["qkv"]["kernel"]).reshape(d, 3 * d).T,   # [D,3,H,hd]
            pre + "out.weight": _tensor(p["out"]["kernel"]).reshape(d, d).T,       # [H,hd,D]
            pre + "mlp_norm.weight": _tensor(p["mlp_norm"]["scale"]),
            pre + "up.weight": _tensor(p["up"]["kernel"]).T,
            pre + "down.weight": _tensor(p["down"]["kernel"]).T,
        })
    return {k: v.contiguous() for k, v in out.items()}


def from_flax(params: Any, model_config: ModelConfig) -> TheoryGPTForCausalLM:
    """The peer model holding this project's parameters (eval mode; float32)."""
    config = TheoryGPTConfig.from_model_config(model_config)
    model = TheoryGPTForCausalLM(config)
    missing, unexpected = model.load_state_dict(torch_state_dict(params, config), strict=False)
    if missing or unexpected:
        raise ValueError(f"parameter conversion: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    return model.eval()
