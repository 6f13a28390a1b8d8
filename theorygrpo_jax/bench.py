"""Sampler benchmark: throughput, roofline, grammar-mask overhead, memory.

`run_benchmark(preset, batch)` samples batches of theories from a freshly
initialised model (random init: the length distribution is that of a random
policy under the grammar masks) and reports:

- tokens_per_s: policy-generated tokens (Rollout.completion_mask) per second
  of wall time of the jitted sampler, compile excluded: `repeats` batches
  (RNG keys), each timed `tries` times, interleaved, and each batch's best
  time counted (the same best-of rule as the matmul and bandwidth ceilings:
  on a shared machine the slow calls measure the other tenants);
  theories_per_s likewise; median_tokens_per_s uses each batch's median;
- matmul_flops_per_s (a jitted 2048^3 float32 matmul) and
  mem_bandwidth_bytes_per_s (a jitted sum over a 256 MiB array), measured in
  the same run, before and after the sampler's timing (the higher counts);
- roofline_tokens_per_s: generated tokens / the sum over those tokens of
  max(FLOPs(token) / matmul_flops_per_s, bytes(token) / mem_bandwidth), with
  FLOPs = 2 x matmul params + attention over positions 0..p, and bytes = the
  KV cache up to position p + the weights once per batch step, shared by the
  tokens generated in that step (`roofline_time`);
  roofline_fraction = tokens_per_s / roofline_tokens_per_s;
  full_batch_roofline_*: the same with the weights shared by the whole batch
  at every step (a looser bound: once rows finish, a step generates fewer
  tokens than the batch has rows, but still reads every weight);
- mask_overhead: time with grammar masks / the same sampler with masks off
  (static flag), both over the same positions (stop_pos) without compaction;
- with `ceiling`: the model's decode step (no sampling, no grammar) at
  1, 2, 4, ... rows, and the no-waste ceiling: the tokens/s the same rollouts
  would reach if each loop step cost exactly one decode step of the rows
  still generating (interpolated from those measurements); what no
  compaction scheme can beat with this decode step;
- peak memory: XLA's memory analysis of the compiled sampler (arguments +
  outputs + temporaries) at batch 64 and 1024, and this process's max RSS.
"""

from __future__ import annotations

import functools
import resource
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import model as M
from . import sampler as S
from .grammar import automaton

PRESETS = ("cpu_default", "original")
PYTORCH_ORIGINAL_TOKENS_PER_S = 72.0  # the original PyTorch sampler, original preset, batch 64


def _best_time(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def measure_matmul_flops(n: int = 2048) -> float:
    """FLOP/s of a jitted n x n x n float32 matmul."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    return 2.0 * n ** 3 / _best_time(jax.jit(jnp.matmul), a, a)


def measure_bandwidth(nbytes: int = 256 << 20) -> float:
    """Bytes/s read by a jitted sum over a float32 array of `nbytes` (larger than the caches)."""
    x = jnp.ones((nbytes // 4,), jnp.float32)
    return nbytes / _best_time(jax.jit(jnp.sum), x)


def measure_ceilings(previous: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    """(matmul FLOP/s, bandwidth bytes/s), each the higher of this measurement and `previous`.

    Measured before and after a timed run, the higher counting: a burst of load
    from other processes should not lower the bar.
    """
    return (max(previous[0], measure_matmul_flops()), max(previous[1], measure_bandwidth()))


def check_counts(repeats: int, tries: int) -> None:
    if repeats < 1 or tries < 1:
        raise ValueError(f"--repeats and --tries must be at least 1, got {repeats} and {tries}")


def time_batches(call, keys: list[jax.Array],
                 tries: int) -> tuple[list[list[float]], list, float, float]:
    """Call `call(key)` `tries` times per key, interleaved (a burst of load hits one try of
    every batch). Returns (seconds [key][try], the first try's outputs on the host, the first
    call's start and the last call's end on CLOCK_MONOTONIC, comparable between processes)."""
    times: list[list[float]] = [[] for _ in keys]
    outputs = []
    first_start = time.monotonic()
    for t in range(tries):
        for i, key in enumerate(keys):
            start = time.monotonic()
            out = jax.block_until_ready(call(key))
            times[i].append(time.monotonic() - start)
            if t == 0:
                outputs.append(jax.device_get(out))
    return times, outputs, first_start, time.monotonic()


def model_costs(config: M.ModelConfig, params: Any) -> dict[str, float]:
    """Per-token cost model: matmul FLOPs, weight bytes, KV bytes per cached position."""
    n_params = M.num_params(params)
    # Matmul weights: every matrix except the embedding table (a gather), which a tied head
    # reuses as its matmul; norm scales and biases are vectors.
    matrices = sum(int(x.size) for x in jax.tree_util.tree_leaves(params) if x.ndim >= 2)
    embed = config.vocab_size * config.d_model
    matmul_params = matrices - (0 if config.tie_embeddings else embed)
    weight_bytes = sum(int(x.size) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(params))
    kv_bytes_per_pos = 2 * config.n_layers * config.d_model * jnp.dtype(config.kv_dtype).itemsize
    attn_flops_per_pos = 4 * config.n_layers * config.d_model  # q.k and p.v
    return dict(params=n_params, matmul_flops=2.0 * matmul_params, weight_bytes=weight_bytes,
                kv_bytes_per_pos=kv_bytes_per_pos, attn_flops_per_pos=attn_flops_per_pos)


def roofline_time(costs: dict[str, float], completion_mask: np.ndarray, flops_per_s: float,
                  bytes_per_s: float, weights_shared_by: int | None = None) -> float:
    """Lower bound on the time to generate the tokens marked in completion_mask [B, L].

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
    return float(np.sum(np.maximum(flops / flops_per_s, bytes_ / bytes_per_s)))


def decode_step_seconds(params: Any, config: M.ModelConfig, batch: int, window: int,
                        steps: int = 32) -> float:
    """Seconds of one model decode step (no sampling, no grammar) for `batch` rows over a cache
    of `window` positions (best of 5 runs of `steps` steps in one jitted loop)."""
    cache = M.init_cache(config, batch, window)
    token = jnp.full((batch,), 1, jnp.int32)

    def run(params, cache):
        head = M.output_head(params, config)

        def body(i, carry):
            cache, total = carry
            logits, cache = M.decode_step(params, config, cache, token, i % window, write_chunk=-1,
                                          head=head)
            return cache, total + logits[:, 0].sum()
        return jax.lax.fori_loop(0, steps, body, (cache, jnp.float32(0)))[1]

    return _best_time(jax.jit(run), params, cache) / steps


def no_waste_time(completion_mask: np.ndarray, devices: int, rows: list[int],
                  step_s: list[float]) -> float:
    """Seconds a sampler would take if every loop step cost exactly one model decode step of
    the rows still generating: no finished rows in the batch, no sampling, grammar or
    compaction cost. step_s[i] is the measured decode step of rows[i] rows (interpolated in
    between); rows are split over `devices` that run in parallel."""
    return max(float(np.sum(np.interp(active[active > 0], rows, step_s)))
               for active in (part.sum(axis=0) for part in
                              np.array_split(np.asarray(completion_mask), devices)))


def compiled_memory(params, tables, config: M.ModelConfig, batch: int,
                    block_size: int | None = None) -> int | None:
    """Bytes XLA plans for one sampler call at `batch` (arguments + outputs + temporaries)."""
    tokens, prompt_len = S.make_prompts(None, config.max_len, batch)
    compiled = S.sample_tokens.lower(params, tables, jnp.asarray(tokens), jnp.asarray(prompt_len),
                                     jax.random.PRNGKey(0), jnp.float32(1.0),
                                     jnp.int32(config.max_len), config=config,
                                     block_size=block_size).compile()
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
               + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def default_devices(batch: int) -> int:
    """The most devices (all of them at most) that split `batch` evenly."""
    return max(n for n in range(1, jax.device_count() + 1) if batch % n == 0)


def run_benchmark(preset: str = "cpu_default", batch: int = 64, repeats: int = 3,
                  tries: int = 5, masks_compare: bool = True,
                  memory_batches: tuple[int, ...] = (64, 1024),
                  block_size: int | None = None, config: M.ModelConfig | None = None,
                  seed: int = 0, devices: int = 1, ceiling: bool = False,
                  min_slots: int | None = 4) -> dict[str, Any]:
    """Benchmark the sampler for a preset; returns a JSON-able dict (see the module docstring).

    devices > 1: the batch is split over that many devices with
    `sampler.sample_tokens_sharded` (on a CPU, host devices made with
    XLA_FLAGS=--xla_force_host_platform_device_count, one per core: each runs
    its rows on its own thread). The theories are the same as on one device.
    ceiling: also report the no-waste ceiling (`no_waste_time`): what this
    model's measured decode step would allow if compaction were perfect.
    """
    config = config or getattr(M.ModelConfig, preset)()
    sampler = S.sample_tokens
    check_counts(repeats, tries)
    if devices < 1 or batch % devices:
        raise ValueError(f"--devices {devices} does not split a batch of {batch} rows evenly")
    if devices > 1:
        if jax.device_count() < devices:
            raise ValueError(f"{devices} devices asked for, {jax.device_count()} available (on a "
                             f"CPU set XLA_FLAGS=--xla_force_host_platform_device_count={devices} "
                             f"before jax starts; scripts/bench.py --devices does)")
        mesh = jax.sharding.Mesh(np.array(jax.devices()[:devices]), ("data",))
        sampler = functools.partial(S.sample_tokens_sharded, mesh=mesh)
    params = M.init_params(config, jax.random.PRNGKey(seed))
    tables = automaton.load_tables()
    tokens, prompt_len = (jnp.asarray(a) for a in S.make_prompts(None, config.max_len, batch))
    temperature = jnp.float32(1.0)

    def call(key, use_masks=True, stop_pos=None, min_slots=min_slots):
        return sampler(params, tables, tokens, prompt_len, key, temperature,
                               jnp.int32(config.max_len if stop_pos is None else stop_pos),
                               config=config, use_masks=use_masks, block_size=block_size,
                               min_slots=min_slots)

    start = time.perf_counter()
    jax.block_until_ready(call(jax.random.PRNGKey(seed)))
    compile_s = time.perf_counter() - start

    ceilings = measure_ceilings()
    keys = [jax.random.PRNGKey(seed + 1 + i) for i in range(repeats)]
    times, rollouts, _, _ = time_batches(call, keys, tries)
    best_s = sum(min(ts) for ts in times)
    median_s = sum(statistics.median(ts) for ts in times)
    generated = [int(r.completion_mask.sum()) for r in rollouts]  # tokens per batch
    steps = [int(r.num_steps) for r in rollouts]

    flops_per_s, bytes_per_s = measure_ceilings(ceilings)
    costs = model_costs(config, params)

    def roofline(shared_by=None):
        return sum(generated) / sum(roofline_time(costs, r.completion_mask, flops_per_s, bytes_per_s,
                                               shared_by) for r in rollouts)

    roof, roof_full_batch = roofline(), roofline(batch)
    tokens_per_s = sum(generated) / best_s
    out: dict[str, Any] = dict(
        preset=preset, batch=batch, devices=devices, max_len=config.max_len, params=costs["params"],
        block_ends=list(S.block_ends(config.max_len, block_size)), min_slots=min_slots,
        cache_dtype=config.cache_dtype,
        tokens_per_s=tokens_per_s, theories_per_s=batch * repeats / best_s,
        median_tokens_per_s=sum(generated) / median_s, timing=f"best of {tries} per batch",
        seconds_per_batch=best_s / repeats, generated_tokens_per_batch=sum(generated) / repeats,
        mean_length=float(np.mean([r.lengths.mean() for r in rollouts])),
        loop_steps=steps, active_row_fraction=sum(generated) / (batch * sum(steps)),
        compile_s=compile_s,
        roofline_tokens_per_s=roof, roofline_fraction=tokens_per_s / roof,
        full_batch_roofline_tokens_per_s=roof_full_batch,
        full_batch_roofline_fraction=tokens_per_s / roof_full_batch,
        matmul_flops_per_s=flops_per_s, mem_bandwidth_bytes_per_s=bytes_per_s,
        speedup_vs_pytorch_original=(tokens_per_s / PYTORCH_ORIGINAL_TOKENS_PER_S
                                     if preset == "original" and batch == 64 else None),
    )
    if ceiling:
        # The no-waste ceiling: every step costs the model's decode step of the rows still
        # generating, measured here at 1, 2, 4, ... rows (first cache window, one device).
        window = S.block_ends(config.max_len, block_size)[0]
        per_device = batch // devices
        rows = sorted({1 << i for i in range(per_device.bit_length()) if 1 << i < per_device}
                      | {per_device})
        step_s = [decode_step_seconds(params, config, b, window) for b in rows]
        no_waste = sum(generated) / sum(no_waste_time(r.completion_mask, devices, rows, step_s)
                                     for r in rollouts)
        out.update(decode_step_s_by_rows={str(b): t for b, t in zip(rows, step_s)},
                   no_waste_tokens_per_s=no_waste, no_waste_roofline_fraction=no_waste / roof)
    if masks_compare:
        # Masks on vs off, both without compaction (without masks rows rarely stop, so
        # compaction would not kick in) and stopped at the same position: the same steps
        # over the same cache windows. The batches are the timed ones, and the stop is
        # before the last EOS of every device's rows in each of them, so that no masked
        # loop ends early (a device's loop ends when its own rows are done).
        stop = min(int(part.max()) for r in rollouts
                   for part in np.array_split(np.asarray(r.lengths), devices))
        for use_masks in (True, False):  # compile
            jax.block_until_ready(call(keys[0], use_masks, stop, None))
        best = {True: float("inf"), False: float("inf")}
        for i in range(max(repeats, 10, 4 * tries)):  # interleaved: load from others hits both
            for use_masks in (True, False):
                start = time.perf_counter()
                jax.block_until_ready(call(keys[i % repeats], use_masks, stop, None))
                best[use_masks] = min(best[use_masks], time.perf_counter() - start)
        out["mask_overhead"] = best[True] / best[False]
    for b in memory_batches:
        out[f"peak_bytes_batch_{b}"] = compiled_memory(params, tables, config, b, block_size)
    out["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["device"] = str(jax.devices()[0].device_kind)
    return out


ABLATION = {  # name -> sample_tokens options; each variant samples the very same theories
    "full_window_no_compaction": lambda c: dict(block_size=c.max_len, min_slots=None),
    "windows_no_compaction": lambda c: dict(min_slots=None),
    "windows_and_compaction": lambda c: dict(),
}


def run_ablation(preset: str = "cpu_default", batch: int = 64, repeats: int = 3,
                 seed: int = 0) -> dict[str, Any]:
    """Seconds per batch (best of `repeats`, interleaved) of the sampler's speed-ups switched
    off one by one: the whole cache every step, then cache windows, then compaction."""
    config = getattr(M.ModelConfig, preset)()
    params = M.init_params(config, jax.random.PRNGKey(seed))
    tables = automaton.load_tables()
    tokens, prompt_len = (jnp.asarray(a) for a in S.make_prompts(None, config.max_len, batch))
    calls = {name: (lambda key, kw=options(config): S.sample_tokens(
        params, tables, tokens, prompt_len, key, jnp.float32(1.0), config=config, **kw))
        for name, options in ABLATION.items()}
    for call in calls.values():
        jax.block_until_ready(call(jax.random.PRNGKey(seed)))
    best = {name: float("inf") for name in calls}
    for i in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(call(jax.random.PRNGKey(seed + 1 + i)))
            best[name] = min(best[name], time.perf_counter() - start)
    return dict(preset=preset, batch=batch, matmul_flops_per_s=measure_matmul_flops(),
                **{f"{name}_s": t for name, t in best.items()})


def run_parts(batches: tuple[int, ...] = (4, 32, 64), steps: int = 50,
              seed: int = 0) -> dict[str, Any]:
    """Microseconds per call of the sampler's per-step pieces besides the model, each in a
    jitted loop of `steps` calls at each batch: the vmapped grammar mask, the vmapped
    automaton step, and drawing a token (`sampler.draw_tokens` at temperature 1)."""
    tables = automaton.load_tables()
    rng = np.random.default_rng(seed)
    vocab = tables.next_node.shape[1]
    out: dict[str, Any] = {}
    for b in batches:
        state = jax.vmap(lambda _: automaton.init_state(tables))(jnp.arange(b))
        state = state.replace(node=jnp.asarray(rng.integers(1, tables.next_node.shape[0], b),
                                               jnp.int32))
        tokens = jnp.asarray(rng.integers(0, vocab, b), jnp.int32)
        logp = jax.nn.log_softmax(jnp.asarray(rng.standard_normal((b, vocab)), jnp.float32))
        u = jnp.asarray(rng.random(b), jnp.float32)

        def mask(i):
            m = jax.vmap(automaton.allowed_mask, in_axes=(None, 0, None))(
                tables, state.replace(node=state.node + i % 2), 100 - i % 5)
            return m.sum()

        def grammar_step(i):
            s = jax.vmap(automaton.step, in_axes=(None, 0, 0))(tables, state, (tokens + i) % vocab)
            return s.node.sum()

        def draw(i):
            shifted = logp + i.astype(jnp.float32) * 1e-9
            return S.draw_tokens(u, shifted, jnp.float32(1.0), S.FIRST_DRAWN).sum()

        for name, piece in (("mask", mask), ("automaton_step", grammar_step), ("draw", draw)):
            loop = jax.jit(lambda piece=piece: jax.lax.fori_loop(
                0, steps, lambda i, acc: acc + piece(i).astype(jnp.int32), jnp.int32(0)))
            out[f"{name}_us_batch_{b}"] = _best_time(loop) / steps * 1e6
    return out
