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
- matmul_flops_per_s (a jitted 2048^3 matmul with the model's matmul_dtype
  operands and float32 sums: the ceiling of the GEMMs the model runs) and
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
  compaction scheme can beat with this decode step; and where the time goes
  (`phase_breakdown`): the whole sampler's loop step measured at each slot
  size the compaction uses (`sampler_step_s_by_slots`), and per slot size the
  share of the tokens generated in steps on it, their roofline seconds, the
  modelled seconds of those steps and the ratio (`phases_by_slots`);
  modelled_share_of_measured is the part of the measured time those steps
  explain (the rest: prefill, compaction gathers, cache windows past the
  first, devices sharing the thread pool);
- peak memory: XLA's memory analysis of the compiled sampler (arguments +
  outputs + temporaries) at batch 64 and 1024, and this process's max RSS.
"""

from __future__ import annotations

import functools
import platform
import resource
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import model as M
from . import sampler as S
from .bench_processes import usable_cores
from .grammar import automaton

PRESETS = ("cpu_default", "original")
PYTORCH_ORIGINAL_TOKENS_PER_S = 72.0  # the original PyTorch sampler, original preset, batch 64


def host_cpu(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU the figures were measured on: model, usable cores, widest float vector ISA,
    e.g. 'Intel(R) Xeon(R) Processor, 2 cores, avx512' (the ceilings depend on all three)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    cores = len(usable_cores())
    isa = next((name for name, flag in (("avx512", "avx512f"), ("avx2", "avx2")) if flag in flags),
               None)
    return ", ".join(x for x in (model, f"{cores} cores", isa) if x)


def _best_time(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def measure_matmul_flops(n: int = 2048, dtype: str = "float32") -> float:
    """FLOP/s of a jitted n x n x n matmul of `dtype` operands, summed in float32."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
    matmul = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
    return 2.0 * n ** 3 / _best_time(matmul, a, a)


def measure_bandwidth(nbytes: int = 256 << 20) -> float:
    """Bytes/s read by a jitted sum over a float32 array of `nbytes` (larger than the caches)."""
    x = jnp.ones((nbytes // 4,), jnp.float32)
    return nbytes / _best_time(jax.jit(jnp.sum), x)


def measure_ceilings(previous: tuple[float, float] = (0.0, 0.0),
                     matmul_dtype: str = "float32") -> tuple[float, float]:
    """(matmul FLOP/s, bandwidth bytes/s), each the higher of this measurement and `previous`;
    the matmul with `matmul_dtype` operands (the model's).

    Measured before and after a timed run, the higher counting: a burst of load
    from other processes should not lower the bar.
    """
    return (max(previous[0], measure_matmul_flops(dtype=matmul_dtype)),
            max(previous[1], measure_bandwidth()))


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
    """Per-token cost model: matmul FLOPs, weight bytes, KV bytes per cached position.

    Weight bytes are those a decode loop reads: the weight matrices in matmul_dtype
    (`model.decode_params`), a tied embedding as the head matrix (`model.output_head`)."""
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
    kv_bytes_per_pos = 2 * config.n_layers * config.d_model * jnp.dtype(config.kv_dtype).itemsize
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


def decode_step_seconds(params: Any, config: M.ModelConfig, batch: int, window: int,
                        steps: int = 32) -> float:
    """Seconds of one model decode step (no sampling, no grammar) for `batch` rows over a cache
    of `window` positions (best of 5 runs of `steps` steps in one jitted loop)."""
    cache = M.init_cache(config, batch, window)
    token = jnp.full((batch,), 1, jnp.int32)

    def run(params, cache):
        params = M.decode_params(params, config)  # as the sampler does
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


def slot_sizes_of(active: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Slots the sampler runs `active` unfinished rows on (`sampler` rule: slot size
    sizes[k] runs while more than sizes[k + 1] rows are unfinished; the last while any is)."""
    active = np.asarray(active)
    out = np.full(active.shape, sizes[-1])
    for size, below in reversed(list(zip(sizes[:-1], sizes[1:]))):
        out = np.where(active > below, size, out)
    return out


def sampler_step_seconds(params: Any, tables: automaton.GrammarTables, config: M.ModelConfig,
                         rows: int, steps: int = 31, block_size: int | None = None) -> float:
    """Seconds of one step of the whole sampler loop (model, grammar, draw, bookkeeping) on
    `rows` slots without compaction, in the first cache window: the difference of two calls
    stopped after 1 and 1 + steps positions, over the steps the second one ran."""
    tokens, prompt_len = (jnp.asarray(a) for a in S.make_prompts(None, config.max_len, rows))

    def call(stop):
        return S.sample_tokens(params, tables, tokens, prompt_len, jax.random.PRNGKey(0),
                               jnp.float32(1.0), jnp.int32(stop), config=config, min_slots=None,
                               block_size=block_size)

    steps = min(steps, S.block_ends(config.max_len, block_size)[0] - 1)
    ran = int(call(1 + steps).num_steps) - int(call(1).num_steps)
    return (_best_time(call, 1 + steps) - _best_time(call, 1)) / max(ran, 1)


def phase_breakdown(costs: dict[str, float], completion_mask: np.ndarray, devices: int,
                    sizes: list[int], step_s: dict[int, float], flops_per_s: float,
                    bytes_per_s: float) -> dict[int, np.ndarray]:
    """Where a batch's time goes, by the slot size its loop steps ran on.

    For each slot size z: [tokens generated in steps on z slots, their roofline
    seconds, modelled seconds]. Modelled: every device's loop step costs
    step_s[z] (`sampler_step_seconds`), summed over the devices and divided by
    their number (they run side by side). Rows split evenly over the devices
    in order, as `sampler.sample_tokens_sharded` does.
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
                  min_slots: int | None = 4, matmul_dtype: str | None = None) -> dict[str, Any]:
    """Benchmark the sampler for a preset; returns a JSON-able dict (see the module docstring).

    devices > 1: the batch is split over that many devices with
    `sampler.sample_tokens_sharded` (on a CPU, host devices made with
    XLA_FLAGS=--xla_force_host_platform_device_count, one per core: each runs
    its rows on its own thread). The theories are the same as on one device.
    ceiling: also report the no-waste ceiling (`no_waste_time`): what this
    model's measured decode step would allow if compaction were perfect, and
    the time by slot size (`phase_breakdown`).
    matmul_dtype: the weight matmuls' operand dtype (None: the config's); the
    matmul ceiling is measured with it.
    """
    config = config or getattr(M.ModelConfig, preset)()
    if matmul_dtype is not None:
        config = config.replace(matmul_dtype=matmul_dtype)
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

    ceilings = measure_ceilings(matmul_dtype=config.matmul_dtype)
    keys = [jax.random.PRNGKey(seed + 1 + i) for i in range(repeats)]
    times, rollouts, _, _ = time_batches(call, keys, tries)
    best_s = sum(min(ts) for ts in times)
    median_s = sum(statistics.median(ts) for ts in times)
    generated = [int(r.completion_mask.sum()) for r in rollouts]  # tokens per batch
    steps = [int(r.num_steps) for r in rollouts]

    flops_per_s, bytes_per_s = measure_ceilings(ceilings, config.matmul_dtype)
    costs = model_costs(config, params)

    def roofline(shared_by=None):
        return sum(generated) / sum(roofline_time(costs, r.completion_mask, flops_per_s, bytes_per_s,
                                               shared_by) for r in rollouts)

    roof, roof_full_batch = roofline(), roofline(batch)
    tokens_per_s = sum(generated) / best_s
    out: dict[str, Any] = dict(
        preset=preset, batch=batch, devices=devices, max_len=config.max_len, params=costs["params"],
        block_ends=list(S.block_ends(config.max_len, block_size)), min_slots=min_slots,
        cache_dtype=config.cache_dtype, matmul_dtype=config.matmul_dtype,
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
        # Where the batch's time goes: the whole sampler's loop step at each slot size the
        # compaction uses, charged to the steps that ran on it, against the roofline of the
        # tokens those steps generated.
        sizes = S.slot_sizes(per_device, min_slots)
        sampler_s = {z: sampler_step_seconds(params, tables, config, z, block_size=block_size)
                     for z in sizes}
        phases = sum(np.stack(list(phase_breakdown(costs, r.completion_mask, devices, sizes,
                                                   sampler_s, flops_per_s, bytes_per_s).values()))
                     for r in rollouts)  # [slot size, (tokens, roofline s, modelled s)]
        out["sampler_step_s_by_slots"] = {str(z): t for z, t in sampler_s.items()}
        out["phases_by_slots"] = {
            str(z): dict(token_share=tokens / sum(generated), roofline_s_per_batch=roof_s / repeats,
                         modelled_s_per_batch=model_s / repeats, roofline_fraction=roof_s / model_s)
            for z, (tokens, roof_s, model_s) in zip(sizes, phases)}
        out["modelled_share_of_measured"] = float(phases[:, 2].sum() / best_s)
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
    out["cpu"] = host_cpu()
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
