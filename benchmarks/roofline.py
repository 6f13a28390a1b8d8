"""The per-token cost model of the sampler and the bounds built on it.

- `model_costs`: matmul FLOPs per token, weight bytes a decode loop reads,
  KV bytes and attention FLOPs per cached position;
- `roofline_time`: the lower bound on the time to generate a batch's tokens,
  each costing max(FLOPs / flops_per_s, bytes / bytes_per_s), with a batch
  step's tokens sharing one read of the weights;
- `no_waste_time`: the time if every loop step cost one measured model decode
  step of the rows still generating (what no compaction scheme can beat);
- `slot_sizes_of` and `phase_breakdown`: which slot size each loop step ran on
  (the sampler's compaction rule), and the tokens, roofline seconds and
  modelled seconds per slot size.

Everything but `model_costs` is NumPy over completion masks [B, L] bool.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from theorygrpo_jax import model as M


def model_costs(config: M.ModelConfig, params: Any) -> dict[str, float]:
    """Per-token cost model: matmul FLOPs, weight bytes, KV bytes per cached position.

    Weight bytes are those a decode loop reads: the weight matrices in matmul_dtype
    (`model.decode_params`), a tied embedding as the head matrix (`model.output_head`).
    `params` may be shapes (`jax.eval_shape`)."""
    n_params = M.num_params(params)
    # Matmul weights: every matrix except the embedding table (a gather), which a tied head
    # reuses as its matmul; norm scales and biases are vectors.
    matrices = sum(int(x.size) for x in jax.tree_util.tree_leaves(params) if x.ndim >= 2)
    embed = config.vocab_size * config.d_model
    matmul_params = matrices - (0 if config.tie_embeddings else embed)
    read = jax.eval_shape(lambda p: M.decode_params(p, config), params)
    weight_bytes = sum(int(x.size) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(read))
    if config.tie_embeddings:  # the step reads the embedding whole as the head, in its dtype
        head = jax.eval_shape(lambda p: M.output_head(p, config), read)
        weight_bytes += int(head.size) * (head.dtype.itemsize
                                          - read["embed"]["embedding"].dtype.itemsize)
    kv_bytes_per_pos = (2 * config.n_layers * config.d_model
                        * jnp.dtype(config.cache_dtype).itemsize)
    attn_flops_per_pos = 4 * config.n_layers * config.d_model  # q.k and p.v
    return dict(params=n_params, matmul_flops=2.0 * matmul_params, weight_bytes=weight_bytes,
                kv_bytes_per_pos=kv_bytes_per_pos, attn_flops_per_pos=attn_flops_per_pos)


def token_roofline_times(costs: dict[str, float], completion_mask: np.ndarray,
                         flops_per_s: float, bytes_per_s: float,
                         weights_shared_by: int | None = None) -> np.ndarray:
    """The roofline time of each token marked in completion_mask [B, L], in np.nonzero order.

    Each token costs max(FLOPs / flops_per_s, bytes / bytes_per_s). FLOPs: the
    matmuls plus attention over positions 0..p. Bytes: the KV cache up to p,
    plus its share of the weights. All rows advance together, one position
    per batch step, and a batch step reads the weights once: the tokens
    generated at position p (completion_mask[:, p].sum()) share one read.
    weights_shared_by=n instead charges weights / n to every token, as if
    every step generated n tokens (n = batch: a full batch at every step,
    which no sequential sampler reaches once rows finish at different lengths).
    """
    mask = np.asarray(completion_mask, bool)
    positions = np.nonzero(mask)[1]
    sharing = (mask.sum(axis=0)[positions] if weights_shared_by is None
               else np.full(positions.shape, weights_shared_by))
    p = positions.astype(np.float64)
    flops = costs["matmul_flops"] + costs["attn_flops_per_pos"] * (p + 1)
    bytes_ = costs["weight_bytes"] / sharing + costs["kv_bytes_per_pos"] * (p + 1)
    return np.maximum(flops / flops_per_s, bytes_ / bytes_per_s)


def roofline_time(costs: dict[str, float], completion_mask: np.ndarray, flops_per_s: float,
                  bytes_per_s: float, weights_shared_by: int | None = None) -> float:
    """Lower bound on the time to generate the tokens marked in completion_mask [B, L]: the
    sum of `token_roofline_times`."""
    return float(np.sum(token_roofline_times(costs, completion_mask, flops_per_s, bytes_per_s,
                                             weights_shared_by)))


def no_waste_time(completion_mask: np.ndarray, devices: int, rows: list[int],
                  step_s: list[float]) -> float:
    """Seconds a sampler would take if every loop step cost exactly one model decode step of
    the rows still generating: no finished rows in the batch, no sampling, grammar or
    compaction cost. step_s[i] is the measured decode step of rows[i] rows (interpolated in
    between); rows are split over `devices` that run in parallel."""
    return max(float(np.sum(np.interp(active[active > 0], rows, step_s)))
               for active in (part.sum(axis=0) for part in
                              np.array_split(np.asarray(completion_mask), devices)))


def slot_sizes_of(active: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Slots the sampler runs `active` unfinished rows on (`sampler` rule: slot size
    sizes[k] runs while more than sizes[k + 1] rows are unfinished; the last while any is)."""
    active = np.asarray(active)
    out = np.full(active.shape, sizes[-1])
    for size, below in reversed(list(zip(sizes[:-1], sizes[1:]))):
        out = np.where(active > below, size, out)
    return out


def phase_breakdown(costs: dict[str, float], completion_mask: np.ndarray, devices: int,
                    sizes: list[int], step_s: dict[int, float], flops_per_s: float,
                    bytes_per_s: float) -> dict[int, np.ndarray]:
    """Where a batch's time goes, by the slot size its loop steps ran on.

    For each slot size z: [tokens generated in steps on z slots, their roofline
    seconds, modelled seconds]. Modelled: every device's loop step costs
    step_s[z] (`sampler_bench.sampler_step_seconds`), summed over the devices and
    divided by their number (they run side by side). Rows split evenly over the
    devices in order, as `sampler.sample_tokens_sharded` does.
    """
    mask = np.asarray(completion_mask, bool)
    per_device = mask.shape[0] // devices
    active = mask.reshape(devices, per_device, -1).sum(axis=1)  # [devices, L]
    slots = slot_sizes_of(active, sizes)
    rows, positions = np.nonzero(mask)
    token_slots = slots[rows // per_device, positions]
    token_s = token_roofline_times(costs, mask, flops_per_s, bytes_per_s)
    out = {}
    for z in sizes:
        steps = (active > 0) & (slots == z)
        out[z] = np.array([np.sum(token_slots == z), np.sum(token_s[token_slots == z]),
                           steps.sum() * step_s[z] / devices])
    return out


def update_matmul_flops(config: M.ModelConfig, tokens: int,
                        dtypes: tuple[str, ...] = ("float32", "bfloat16")) -> dict[str, dict[str, float]]:
    """FLOP/s of the update's weight GEMMs at its shapes, per operand dtype (sums in float32):
    does XLA:CPU run bfloat16 operands faster here (AVX512-BF16, AMX)?

    For `tokens` rows (the packed batch's slots): the forward x [tokens, d] @ W [d, n] for
    the qkv, MLP-up and MLP-down matrices, and the backward's weight gradient x^T @ g
    [d, tokens] @ [tokens, n] (a contraction over the tokens). Also the 2048^3 ceiling.
    Returns {shape name: {dtype: FLOP/s}}."""
    from .ceilings import measure_matmul_flops
    from .timing import best_time

    d, f = config.d_model, config.d_ff
    shapes = {"qkv fwd": (tokens, d, 3 * d), "up fwd": (tokens, d, f), "down fwd": (tokens, f, d),
              "up wgrad": (d, tokens, f), "down wgrad": (f, tokens, d)}
    matmul = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
    out: dict[str, dict[str, float]] = {}
    for name, (m, k, n) in shapes.items():
        a = jax.random.normal(jax.random.PRNGKey(0), (m, k), jnp.float32)
        b = jax.random.normal(jax.random.PRNGKey(1), (k, n), jnp.float32)
        out[name] = {dt: 2.0 * m * k * n / best_time(matmul, a.astype(dt), b.astype(dt), repeats=10)
                     for dt in dtypes}
    out["2048^3 ceiling"] = {dt: measure_matmul_flops(dtype=dt) for dt in dtypes}
    return out
