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
  (`SamplerOptions.use_masks`), both over the same positions (stop_pos) without
  compaction;
- with `ceiling`: the model's decode step (no sampling, no grammar) at
  1, 2, 4, ... rows, and the no-waste ceiling: the tokens/s the same rollouts
  would reach if each loop step cost exactly one decode step of the rows
  still generating (interpolated from those measurements); what no
  compaction scheme can beat with this decode step; and where the time goes
  (`roofline.phase_breakdown`): the whole sampler's loop step measured at each slot
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
import json
import resource
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from theorygrpo_jax import model as M
from theorygrpo_jax import sampler as S
from theorygrpo_jax import tasks
from theorygrpo_jax.grammar import automaton
from theorygrpo_jax.policy import PolicySpec
from theorygrpo_jax.sampler import SamplerOptions

from .ceilings import measure_ceilings, measure_matmul_flops
from .machine import host_cpu
from .roofline import model_costs, no_waste_time, phase_breakdown, roofline_time
from .timing import best_time, check_counts, time_batches

PRESETS = ("cpu_default", "original")
PYTORCH_ORIGINAL_TOKENS_PER_S = 72.0  # the original PyTorch sampler, original preset, batch 64
# The policy every benchmark samples: temperature 1 as a float32 (a NumPy scalar: no JAX
# device at import, so a script can still shape the host devices after importing this).
UNTEMPERED = PolicySpec(temperature=np.float32(1.0))


def _blank_prompts(max_len: int, batch: int) -> tuple[jax.Array, jax.Array]:
    """BOS-only prompts for `batch` rows: (tokens [batch, 1] int32, prompt_len [batch] int32)."""
    tokens, prompt_len = tasks.pack_prompts(None, max_len, batch)
    return jnp.asarray(tokens), jnp.asarray(prompt_len)


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

    return best_time(jax.jit(run), params, cache) / steps


def sampler_step_seconds(params: Any, tables: automaton.GrammarTables, config: M.ModelConfig,
                         rows: int, steps: int = 31, block_size: int | None = None) -> float:
    """Seconds of one step of the whole sampler loop (model, grammar, draw, bookkeeping) on
    `rows` slots without compaction, in the first cache window: the difference of two calls
    stopped after 1 and 1 + steps positions, over the steps the second one ran."""
    tokens, prompt_len = _blank_prompts(config.max_len, rows)

    def call(stop):  # stop_pos is static: one compile per stop, outside the timing
        return S.sample_tokens(params, tables, tokens, prompt_len, jax.random.PRNGKey(0),
                               UNTEMPERED, config=config,
                               options=SamplerOptions(block_size=block_size, min_slots=None,
                                                      stop_pos=stop))

    steps = min(steps, S.block_ends(config.max_len, block_size)[0] - 1)
    ran = int(call(1 + steps).num_steps) - int(call(1).num_steps)
    return (best_time(call, 1 + steps) - best_time(call, 1)) / max(ran, 1)


def compiled_memory(params, tables, config: M.ModelConfig, batch: int,
                    block_size: int | None = None) -> int | None:
    """Bytes XLA plans for one sampler call at `batch` (arguments + outputs + temporaries)."""
    tokens, prompt_len = _blank_prompts(config.max_len, batch)
    compiled = S.sample_tokens.lower(params, tables, tokens, prompt_len, jax.random.PRNGKey(0),
                                     UNTEMPERED, config=config,
                                     options=SamplerOptions(block_size=block_size)).compile()
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
                  min_slots: int | None = SamplerOptions.min_slots,
                  matmul_dtype: str | None = None) -> dict[str, Any]:
    """Benchmark the sampler for a preset; returns a JSON-able dict (see the module docstring).

    devices > 1: the batch is split over that many devices with
    `sampler.sample_tokens_sharded` (on a CPU, host devices made with
    XLA_FLAGS=--xla_force_host_platform_device_count, one per core: each runs
    its rows on its own thread). The theories are the same as on one device.
    ceiling: also report the no-waste ceiling (`roofline.no_waste_time`): what
    this model's measured decode step would allow if compaction were perfect,
    and the time by slot size (`roofline.phase_breakdown`).
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
    tokens, prompt_len = _blank_prompts(config.max_len, batch)

    def call(key, use_masks=True, stop_pos=None, min_slots=min_slots):
        options = SamplerOptions(block_size=block_size, min_slots=min_slots,
                                 use_masks=use_masks, stop_pos=stop_pos)
        return sampler(params, tables, tokens, prompt_len, key, UNTEMPERED, config=config,
                       options=options)

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
        return sum(generated) / sum(roofline_time(costs, r.completion_mask, flops_per_s,
                                                  bytes_per_s, shared_by) for r in rollouts)

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


ABLATION = {  # name -> sampler options; each variant samples the very same theories
    "full_window_no_compaction": lambda c: SamplerOptions(block_size=c.max_len, min_slots=None),
    "windows_no_compaction": lambda c: SamplerOptions(min_slots=None),
    "windows_and_compaction": lambda c: SamplerOptions(),
}


def _interleaved_seconds(calls: dict[str, Any], keys: list[jax.Array],
                         rounds: int) -> dict[str, list[list[float]]]:
    """Seconds of each call(key), [name][key][round]: every round runs every key through every
    call in turn, so a burst of load hits them alike. Each call is compiled first."""
    for call in calls.values():
        jax.block_until_ready(call(keys[0]))
    times = {name: [[] for _ in keys] for name in calls}
    for _ in range(rounds):
        for i, key in enumerate(keys):
            for name, call in calls.items():
                start = time.perf_counter()
                jax.block_until_ready(call(key))
                times[name][i].append(time.perf_counter() - start)
    return times


def _sampler_calls(config: M.ModelConfig, batch: int, seed: int,
                   options: dict[str, SamplerOptions]) -> dict[str, Any]:
    """name -> call(key): the sampler from a fresh model on BOS prompts with those options."""
    params = M.init_params(config, jax.random.PRNGKey(seed))
    tables = automaton.load_tables()
    tokens, prompt_len = _blank_prompts(config.max_len, batch)
    return {name: functools.partial(lambda key, o: S.sample_tokens(
        params, tables, tokens, prompt_len, key, UNTEMPERED, config=config, options=o), o=o)
        for name, o in options.items()}


def run_ablation(preset: str = "cpu_default", batch: int = 64, repeats: int = 3,
                 seed: int = 0) -> dict[str, Any]:
    """Seconds per batch (best of `repeats`, interleaved) of the sampler's speed-ups switched
    off one by one: the whole cache every step, then cache windows, then compaction."""
    config = getattr(M.ModelConfig, preset)()
    calls = _sampler_calls(config, batch, seed,
                           {name: options(config) for name, options in ABLATION.items()})
    keys = [jax.random.PRNGKey(seed + 1 + i) for i in range(repeats)]
    times = _interleaved_seconds(calls, keys, rounds=1)
    return dict(preset=preset, batch=batch, matmul_flops_per_s=measure_matmul_flops(),
                **{f"{name}_s": min(t[0] for t in ts) for name, ts in times.items()})


def run_options(variants: list[dict[str, Any]], preset: str = "original", batch: int = 64,
                keys: int = 6, rounds: int = 3, seed: int = 0) -> dict[str, Any]:
    """Generated tokens/s of the sampler under each `SamplerOptions(**variant)`, interleaved in
    one process (the way the tail's slot count was chosen): `keys` batches from a fresh model
    on BOS prompts, each timed `rounds` times; per variant the sum over batches of the best
    and of the median time. Every variant samples the same theories (checked)."""
    check_counts(keys, rounds)
    if not variants:
        raise ValueError("--options: give at least one JSON object of SamplerOptions fields")
    config = getattr(M.ModelConfig, preset)()
    named = {}
    for v in variants:
        try:
            named[json.dumps(v, sort_keys=True)] = SamplerOptions(**v)
        except (TypeError, ValueError) as e:   # an unknown field, or a value it refuses
            raise ValueError(f"--options {json.dumps(v)}: {e}") from None
    calls = _sampler_calls(config, batch, seed, named)
    rng_keys = [jax.random.PRNGKey(seed + 1 + i) for i in range(keys)]
    outputs = {name: [jax.device_get(call(k)) for k in rng_keys] for name, call in calls.items()}
    first = next(iter(outputs.values()))
    if any(not np.array_equal(a.tokens, b.tokens)
           for out in outputs.values() for a, b in zip(out, first)):
        raise ValueError("the variants sampled different theories")
    generated = sum(int(np.sum(r.completion_mask)) for r in first)
    times = _interleaved_seconds(calls, rng_keys, rounds)
    return {"preset": preset, "batch": batch, "keys": keys, "rounds": rounds,
            "generated_tokens": generated, "cpu": host_cpu(), "tokens_per_s": {
                name: {"best": generated / sum(min(t) for t in ts),
                       "median": generated / sum(statistics.median(t) for t in ts)}
                for name, ts in times.items()}}


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
            out[f"{name}_us_batch_{b}"] = best_time(loop) / steps * 1e6
    return out
