"""TheoryGPT: a small decoder-only transformer over the TheoryLang vocabulary.

Pre-norm blocks (RMSNorm or LayerNorm), rotary position embeddings, causal
multi-head self-attention, a GELU MLP and a tied or untied output head.

Pure functions (the module itself is an implementation detail):

    params = init_params(config, rng)
    logits = forward(params, config, tokens)                    # [B, T] -> [B, T, V]
    logits = forward(params, config, tokens, positions, segments)  # packed rows, block-causal
    cache = init_cache(config, batch, length)
    logits, cache = prefill(params, config, tokens, cache)     # writes K/V at 0..T-1
    logits, cache = decode_step(params, config, cache, token, pos)  # [B] -> [B, V]

Decode logits equal the full forward's logits at the same position (to float
rounding). Logits are always float32, whatever the compute dtype.

Numerics. `dtype` is the activations' dtype; `matmul_dtype="bfloat16"` rounds
both operands of the weight matmuls (qkv, out, MLP, head) to bfloat16 and sums
the products in float32, everything else staying in `dtype`: on CPUs with
AVX512-BF16/AMX those GEMMs run several times faster than in float32
(measured in docs/performance.md). Gradients stay float32 (the rounding is differentiated as
the identity; the backward matmuls run in float32, or with `forward(grad_dtype="bfloat16")`
on bfloat16 operands summed in float32). In every precision the weight matmuls' backward is
written as two 2-D GEMMs (`_rounded_dot_general`): XLA:CPU's own transpose of a
[B, T, K] x [K, N] dot copies the cotangent into a transposed layout first. A decode loop
reads the weights through `decode_params`, cast once outside the loop.

KV cache layout. The cache holds, per layer, a tuple of chunks, each
[B, heads, C, head_dim] (chunk i covers positions start_i .. start_i + C_i - 1),
rather than one stacked [layers, B, L, heads, head_dim] array:
- per layer, because on XLA:CPU slicing a layer out of a stacked cache copies
  it every decode step (measured in docs/performance_history.md);
- heads before positions, so that the attention dots need no transpose;
- in chunks, so that the sampler can grow the cache block by block (appending
  a zero chunk, never copying what is there) and attention reads only the
  chunks that exist: a decode step costs the filled length, not max_len.
  Attention combines per-chunk softmax partials (max, sum, weighted values).
`init_cache` makes one chunk; `grow_cache` appends one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .config import ModelConfig
from .grammar import vocab as V

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}  # ModelConfig dtype names


@struct.dataclass
class KVCache:
    """Decode cache: per layer a tuple of position chunks (see the module docstring)."""
    k: tuple[tuple[jax.Array, ...], ...]  # [layer][chunk] -> [B, heads, C, head_dim] keys (RoPE'd)
    v: tuple[tuple[jax.Array, ...], ...]  # [layer][chunk] -> [B, heads, C, head_dim] values

    @property
    def chunk_lengths(self) -> tuple[int, ...]:
        return tuple(c.shape[2] for c in self.k[0])

    @property
    def length(self) -> int:
        """L: positions the cache can hold."""
        return sum(self.chunk_lengths)


def init_cache(config: ModelConfig, batch: int, length: int | None = None) -> KVCache:
    """An all-zero cache (one chunk) for `batch` rows and `length` positions (default max_len)."""
    length = config.max_len if length is None else length
    shape = (batch, config.n_heads, length, config.head_dim)
    zeros = tuple((jnp.zeros(shape, _DTYPES[config.cache_dtype]),) for _ in range(config.n_layers))
    return KVCache(k=zeros, v=zeros)


def grow_cache(cache: KVCache, length: int) -> KVCache:
    """The same cache with room for `length` positions: one more zero chunk (nothing copied)."""
    extra = length - cache.length
    if extra < 0:
        raise ValueError(f"cannot shrink a cache of length {cache.length} to {length}")
    if extra == 0:
        return cache
    batch, heads, _, dim = cache.k[0][0].shape
    zero = jnp.zeros((batch, heads, extra, dim), cache.k[0][0].dtype)
    return KVCache(k=tuple(c + (zero,) for c in cache.k), v=tuple(c + (zero,) for c in cache.v))


def _write(chunks: tuple[jax.Array, ...], new: jax.Array, pos, write_chunk: int | None):
    """Chunks with new [B, H, 1, D] stored at absolute position pos."""
    new = new.astype(chunks[0].dtype)
    starts = np.cumsum((0,) + tuple(c.shape[2] for c in chunks))
    if write_chunk is not None:  # the caller guarantees pos lies in this chunk
        i = write_chunk % len(chunks)
        written = jax.lax.dynamic_update_slice(chunks[i], new, (0, 0, pos - starts[i], 0))
        return chunks[:i] + (written,) + chunks[i + 1:]
    out = []
    for c, start in zip(chunks, starts):  # out-of-chunk writes are dropped
        idx = pos - start
        idx = jnp.where((idx >= 0) & (idx < c.shape[2]), idx, c.shape[2])
        out.append(c.at[:, :, idx].set(new[:, :, 0], mode="drop"))
    return tuple(out)


def _chunked_attention(q, k_chunks, v_chunks, pos):
    """Softmax attention of q [B, H, D] over positions 0..pos of the chunks -> [B, H, D] f32."""
    cdt = k_chunks[0].dtype
    q = q.astype(cdt)
    start, parts = 0, []
    for k, v in zip(k_chunks, v_chunks):
        scores = jnp.einsum("bhd,bhld->bhl", q, k, preferred_element_type=jnp.float32)
        visible = start + jnp.arange(k.shape[2]) <= pos
        scores = jnp.where(visible, scores, -1e9)
        start += k.shape[2]
        if len(k_chunks) == 1:
            probs = jax.nn.softmax(scores, axis=-1).astype(cdt)
            return jnp.einsum("bhl,bhld->bhd", probs, v, preferred_element_type=jnp.float32)
        m = jnp.max(scores, axis=-1)
        p = jnp.exp(scores - m[..., None])
        o = jnp.einsum("bhl,bhld->bhd", p.astype(cdt), v, preferred_element_type=jnp.float32)
        parts.append((m, jnp.sum(p, axis=-1), o))
    m_all = functools.reduce(jnp.maximum, [m for m, _, _ in parts])
    weights = [jnp.exp(m - m_all) for m, _, _ in parts]
    total = sum(w * l for w, (_, l, _) in zip(weights, parts))
    return sum(w[..., None] * o for w, (_, _, o) in zip(weights, parts)) / total[..., None]


def _rope_tables(config: ModelConfig) -> tuple[jax.Array, jax.Array]:
    """sin, cos [max_len, head_dim // 2] float32."""
    half = config.head_dim // 2
    inv_freq = config.rope_base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles = jnp.arange(config.max_len, dtype=jnp.float32)[:, None] * inv_freq[None, :]
    return jnp.sin(angles), jnp.cos(angles)


def _apply_rope(x: jax.Array, sin: jax.Array, cos: jax.Array) -> jax.Array:
    """Rotate halves of x [..., T, H, D] by position; sin, cos [T, D/2] (the same positions for
    every row) or [B, T, D/2] (each row its own, packed rows); broadcast over heads."""
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    sin, cos = sin[..., None, :], cos[..., None, :]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _rounded_dot_general(lhs: jax.Array, rhs: jax.Array, dims: Any, dtype: Any,
                         grad_dtype: Any = jnp.float32) -> jax.Array:
    """dot_general of lhs and rhs rounded to `dtype`, the products summed in float32.

    Its gradient treats the rounding as the identity and is computed from the rounded
    operands: in float32 (grad_dtype float32), so training gets float32 gradients
    (differentiating the casts instead would round every cotangent to `dtype`); or, with
    grad_dtype bfloat16, from the operands and the cotangent rounded to it, the products
    again summed in float32 (the backward's GEMMs then also run on bfloat16 units).
    dtype float32 rounds nothing: the float32 weight matmuls come here for the backward alone,
    two 2-D GEMMs instead of XLA's transpose of the dot (which first copies the [B, T, N]
    cotangent into an [N, B*T] layout: 13-20 % of the original-size update)."""
    return jax.lax.dot_general(lhs.astype(dtype), rhs.astype(dtype), dims,
                               preferred_element_type=jnp.float32)


def _rounded_dot_general_fwd(lhs, rhs, dims, dtype, grad_dtype):
    return (_rounded_dot_general(lhs, rhs, dims, dtype, grad_dtype),
            (lhs.astype(dtype), rhs.astype(dtype)))


def _rounded_dot_general_bwd(dims, dtype, grad_dtype, rounded, g):
    (lhs_c, rhs_c), (lhs_b, _) = dims
    if lhs_b:
        _, vjp = jax.vjp(lambda a, b: jax.lax.dot_general(a, b, dims),
                         *(x.astype(jnp.float32) for x in rounded))
        return vjp(g.astype(jnp.float32))
    # no batch dimensions (every weight matmul): out = [lhs free axes, rhs free axes]. As 2-D
    # GEMMs, lhs [M, K], rhs [K, N], g [M, N]: XLA:CPU runs them on its fused GEMMs, where
    # its own transpose of the dot copies g into another layout first (and runs bfloat16 x
    # bfloat16 -> float32 dots of other layouts on a generic dot that does not support them).
    lhs, rhs = (x.astype(grad_dtype) for x in rounded)
    lhs_free = [i for i in range(lhs.ndim) if i not in lhs_c]
    rhs_free = [j for j in range(rhs.ndim) if j not in rhs_c]
    m = math.prod(lhs.shape[i] for i in lhs_free)
    k = math.prod(lhs.shape[i] for i in lhs_c)
    n = math.prod(rhs.shape[j] for j in rhs_free)
    lhs_perm, rhs_perm = lhs_free + list(lhs_c), list(rhs_c) + rhs_free
    a = lhs.transpose(lhs_perm).reshape(m, k)
    b = rhs.transpose(rhs_perm).reshape(k, n)
    g2 = g.astype(grad_dtype).reshape(m, n)
    d_a = jnp.matmul(g2, b.T, preferred_element_type=jnp.float32)     # [M, K]
    d_b = jnp.matmul(a.T, g2, preferred_element_type=jnp.float32)     # [K, N]
    d_lhs = d_a.reshape([lhs.shape[i] for i in lhs_perm]).transpose(np.argsort(lhs_perm))
    d_rhs = d_b.reshape([rhs.shape[j] for j in rhs_perm]).transpose(np.argsort(rhs_perm))
    return d_lhs, d_rhs


_rounded_dot_general.defvjp(_rounded_dot_general_fwd, _rounded_dot_general_bwd)


def _weight_dot_general(config: ModelConfig, grad_dtype: str = "float32"):
    """The dot_general of the weight matmuls. grad_dtype: the operand dtype of their
    backward's matmuls (`_rounded_dot_general`).

    Both operands are rounded to matmul_dtype (float32: nothing is rounded) and the products
    summed in float32 (`_rounded_dot_general`); the result has the input's (compute) dtype.
    """
    mdt = _DTYPES[config.matmul_dtype]

    def dot_general(lhs, rhs, dims, precision=None, preferred_element_type=None):
        dims = tuple(tuple(tuple(int(a) for a in d) for d in part) for part in dims)  # static
        # float32 operands: the cotangents must have the operands' dtypes (Flax promotes
        # both to the compute dtype; the cast is folded away when they already are float32)
        # matmul_dtype float32 rounds to the compute dtype, as Flax's own dot_general would
        dtype = mdt if mdt != jnp.float32 else jnp.result_type(lhs, rhs)
        return _rounded_dot_general(lhs.astype(jnp.float32), rhs.astype(jnp.float32), dims,
                                    dtype, _DTYPES[grad_dtype]).astype(lhs.dtype)
    return dot_general


def _weight_matmul(config: ModelConfig, x: jax.Array, w: jax.Array,
                   grad_dtype: str = "float32") -> jax.Array:
    """x [..., K] @ w [K, N] with the numerics of the weight matmuls (`_weight_dot_general`)."""
    return _weight_dot_general(config, grad_dtype)(x, w, (((x.ndim - 1,), (0,)), ((), ())))


def _norm(config: ModelConfig, name: str) -> nn.Module:
    kw = dict(epsilon=config.norm_eps, dtype=_DTYPES[config.dtype],
              param_dtype=_DTYPES[config.param_dtype], name=name)
    return nn.RMSNorm(**kw) if config.norm == "rmsnorm" else nn.LayerNorm(**kw)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""
    config: ModelConfig
    grad_dtype: str = "float32"   # the backward's weight-matmul operands (`_rounded_dot_general`)

    def setup(self):
        c = self.config
        dense = dict(use_bias=False, dtype=_DTYPES[c.dtype], param_dtype=_DTYPES[c.param_dtype],
                     dot_general=_weight_dot_general(c, self.grad_dtype))
        self.attn_norm = _norm(c, "attn_norm")
        self.qkv = nn.DenseGeneral((3, c.n_heads, c.head_dim), name="qkv", **dense)
        self.out = nn.DenseGeneral(c.d_model, axis=(-2, -1), name="out", **dense)
        self.mlp_norm = _norm(c, "mlp_norm")
        self.up = nn.Dense(c.d_ff, name="up", **dense)
        self.down = nn.Dense(c.d_model, name="down", **dense)

    def _qkv(self, x, sin, cos):
        """q (scaled), k, v [B, T, H, D] with RoPE at the given positions."""
        qkv = self.qkv(self.attn_norm(x))
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        q = _apply_rope(q, sin, cos) * jnp.asarray(1.0 / math.sqrt(self.config.head_dim), q.dtype)
        return q, _apply_rope(k, sin, cos), v

    def _mlp(self, x):
        return x + self.down(nn.gelu(self.up(self.mlp_norm(x))))

    def __call__(self, x, sin, cos, segments=None):
        """Full causal forward. x [B, T, d_model]; returns (x, k, v) with k, v [B, H, T, D].
        segments [B, T] int32 (packed rows): a position attends only within its own segment."""
        q, k, v = self._qkv(x, sin, cos)
        t = x.shape[1]
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
        causal = jnp.tril(jnp.ones((t, t), bool))
        if segments is not None:   # block-causal: [B, 1, T, T]
            causal = causal & (segments[:, None, :, None] == segments[:, None, None, :])
        probs = jax.nn.softmax(jnp.where(causal, scores, -1e9), axis=-1).astype(v.dtype)
        att = jnp.einsum("bhqk,bkhd->bqhd", probs, v, preferred_element_type=jnp.float32)
        x = x + self.out(att.astype(x.dtype))
        return self._mlp(x), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)

    def decode(self, x, sin, cos, pos, k_chunks, v_chunks, write_chunk=None):
        """One position for every row. x [B, 1, d_model]; cache chunks [B, H, C, D]; pos scalar."""
        q, k, v = self._qkv(x, sin, cos)
        k_chunks = _write(k_chunks, k.transpose(0, 2, 1, 3), pos, write_chunk)
        v_chunks = _write(v_chunks, v.transpose(0, 2, 1, 3), pos, write_chunk)
        att = _chunked_attention(q[:, 0], k_chunks, v_chunks, pos)
        x = x + self.out(att[:, None].astype(x.dtype))
        return self._mlp(x), k_chunks, v_chunks


class TheoryGPT(nn.Module):
    """Decoder-only transformer; see the module docstring."""
    config: ModelConfig
    grad_dtype: str = "float32"   # the backward's weight-matmul operands (`_rounded_dot_general`)

    def setup(self):
        c = self.config
        self.embed = nn.Embed(c.vocab_size, c.d_model, dtype=_DTYPES[c.dtype],
                              param_dtype=_DTYPES[c.param_dtype],
                              embedding_init=nn.initializers.normal(0.02), name="embed")
        self.blocks = [Block(c, self.grad_dtype, name=f"block_{i}") for i in range(c.n_layers)]
        self.final_norm = _norm(c, "final_norm")
        if not c.tie_embeddings:
            self.head = nn.Dense(c.vocab_size, use_bias=False, dtype=_DTYPES[c.dtype],
                                 param_dtype=_DTYPES[c.param_dtype], name="head",
                                 dot_general=_weight_dot_general(c, self.grad_dtype))
        self.rope = _rope_tables(c)

    def _logits(self, x, head=None):
        x = self.final_norm(x)
        if head is not None:
            return _weight_matmul(self.config, x, head, self.grad_dtype).astype(jnp.float32)
        if self.config.tie_embeddings:
            return _weight_matmul(self.config, x, self.embed.embedding.T,
                                  self.grad_dtype).astype(jnp.float32)
        return self.head(x).astype(jnp.float32)

    def _full(self, tokens, positions=None, segments=None):
        t = tokens.shape[1]
        if t > self.config.max_len:
            raise ValueError(f"sequence of {t} tokens is longer than max_len {self.config.max_len}")
        if positions is None:
            sin, cos = self.rope[0][:t], self.rope[1][:t]               # [T, D/2]
        else:
            sin, cos = self.rope[0][positions], self.rope[1][positions]  # [B, T, D/2]
        x = self.embed(tokens)
        ks, vs = [], []
        for block in self.blocks:
            x, k, v = block(x, sin, cos, segments)
            ks.append(k)
            vs.append(v)
        return self._logits(x), ks, vs

    def __call__(self, tokens, positions=None, segments=None):
        """tokens [B, T] int32 -> logits [B, T, V] float32 (causal; packed rows: see `forward`)."""
        return self._full(tokens, positions, segments)[0]

    def prefill(self, tokens, cache: KVCache):
        """Full forward over tokens [B, T] that also writes their K/V at positions 0..T-1."""
        logits, ks, vs = self._full(tokens)

        def put(chunks, new):  # new [B, H, T, D] spread over the chunks it overlaps
            out, start = [], 0
            for c in chunks:
                part = new[:, :, start:start + c.shape[2]].astype(c.dtype)
                if part.shape[2]:
                    c = jax.lax.dynamic_update_slice(c, part, (0, 0, 0, 0))
                out.append(c)
                start += c.shape[2]
            return tuple(out)

        return logits, KVCache(k=tuple(map(put, cache.k, ks)), v=tuple(map(put, cache.v, vs)))

    def decode(self, token, pos, cache: KVCache, write_chunk=None, head=None):
        """token [B] int32 at scalar position pos -> (logits [B, V] float32, cache)."""
        sin = jax.lax.dynamic_slice_in_dim(self.rope[0], pos, 1)
        cos = jax.lax.dynamic_slice_in_dim(self.rope[1], pos, 1)
        x = self.embed(token[:, None])
        ks, vs = [], []
        for block, k_chunks, v_chunks in zip(self.blocks, cache.k, cache.v):
            x, k_chunks, v_chunks = block.decode(x, sin, cos, pos, k_chunks, v_chunks, write_chunk)
            ks.append(k_chunks)
            vs.append(v_chunks)
        return self._logits(x, head)[:, 0], KVCache(k=tuple(ks), v=tuple(vs))


@functools.partial(jax.jit, static_argnums=0)
def init_params(config: ModelConfig, rng: jax.Array) -> Any:
    """Fresh parameters (the 'params' collection) for `config` (jitted: one fused init)."""
    tokens = jnp.zeros((1, 2), jnp.int32)
    return TheoryGPT(config).init(rng, tokens)["params"]


def num_params(params: Any) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))


def forward(params: Any, config: ModelConfig, tokens: jax.Array, positions: jax.Array | None = None,
            segments: jax.Array | None = None, *, grad_dtype: str = "float32") -> jax.Array:
    """Full causal forward: tokens [B, T] int32 -> logits [B, T, V] float32.

    Packed rows (several sequences one after another in a row): positions [B, T] int32 each
    token's position in its own sequence (RoPE), segments [B, T] int32 which sequence it
    belongs to; attention is then block-causal (within a segment only), so every sequence's
    logits are those of its own unpacked forward (to float rounding).
    grad_dtype "bfloat16" (with matmul_dtype "bfloat16"): the backward's weight matmuls also
    take bfloat16 operands, summed in float32 (`_rounded_dot_general`).
    """
    return TheoryGPT(config, grad_dtype).apply({"params": params}, tokens, positions, segments)


def prefill(params: Any, config: ModelConfig, tokens: jax.Array,
            cache: KVCache) -> tuple[jax.Array, KVCache]:
    """Logits [B, T, V] of tokens [B, T] and the cache with their K/V at positions 0..T-1."""
    if tokens.shape[1] > cache.length:
        raise ValueError(f"prefill of {tokens.shape[1]} tokens into a cache of {cache.length}")
    return TheoryGPT(config).apply({"params": params}, tokens, cache, method=TheoryGPT.prefill)


def output_head(params: Any, config: ModelConfig) -> jax.Array:
    """The output projection as a [d_model, V] matrix (the embedding transposed when tied).

    A decode loop passes it to `decode_step(head=...)` after computing it once
    outside the loop: XLA:CPU runs the tied head's dot against the [V, d_model]
    embedding as a transposed-operand GEMM, 3-5x slower per step than against
    a [d_model, V] matrix (54 us of a 274 us sampler step at 4 rows, cpu_default).
    """
    # the dtype the head's matmul reads it in (`_weight_matmul`)
    dtype = (_DTYPES[config.dtype] if config.matmul_dtype == "float32"
             else _DTYPES[config.matmul_dtype])
    if config.tie_embeddings:
        return params["embed"]["embedding"].T.astype(dtype)
    return params["head"]["kernel"].astype(dtype)


def decode_params(params: Any, config: ModelConfig) -> Any:
    """The parameters as a decode loop should read them: the weight matrices (Dense kernels)
    cast to matmul_dtype once, outside the loop, instead of at every step (the cast is the
    one the matmul would make: the loop computes the same numbers). float32: unchanged."""
    if config.matmul_dtype == "float32":
        return params
    mdt = _DTYPES[config.matmul_dtype]
    return jax.tree_util.tree_map_with_path(
        lambda path, x: x.astype(mdt) if getattr(path[-1], "key", None) == "kernel" else x,
        params)


def decode_step(params: Any, config: ModelConfig, cache: KVCache, token: jax.Array,
                pos: jax.Array | int, *, write_chunk: int | None = None,
                head: jax.Array | None = None) -> tuple[jax.Array, KVCache]:
    """Feed token [B] at position pos (scalar, the same for every row; pos < cache.length).

    Returns the logits [B, V] for position pos + 1 and the cache with K/V at pos.
    Attention reads cache positions 0..pos (the caller must have written 0..pos-1).
    write_chunk (static): the index of the chunk that holds pos, when the caller
    knows it (one in-place update instead of a masked write into every chunk).
    head: `output_head(params, config)`, computed once outside a decode loop
    (None: the model's own head).
    """
    return TheoryGPT(config).apply({"params": params}, token, jnp.asarray(pos, jnp.int32), cache,
                                   write_chunk, head, method=TheoryGPT.decode)
