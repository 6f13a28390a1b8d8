"""The peer benchmark in one process: this project's GRPO step, the hand-written PyTorch step,
TRL's GRPOTrainer step and the samplers, on the same CPU, shapes, initial weights, grammar,
reward and task, with the machine's load and matmul ceiling recorded in the same run.

    result = run("cpu_default", groups=(64, 8), repeats=3)
    print(table(result))

Per group size (one prompt per step, `group` theories):
- checks, before any timing (a failed one raises ValueError): the peer model's logits equal
  `model.forward`'s on random token rows; the numpy grammar's masks equal
  `policy.grammar_masks` on this project's sampled rows; the peer's masked log-probs of those
  rows equal the sampler's recorded ones; the hand-written loss equals `grpo.grpo_loss` on
  that batch (the reference parameters from another seed, so the KL term counts); every row
  HF generate samples is a theory the grammar accepts;
- this project: `train.train_step` as the trainer runs it (`step_s`), its jitted halves alone
  (`rollout_s`: sampling, reward, advantages; `update_s`) and the host's length split
  (`split_s`), each the median of `repeats` calls from a fresh state at step 0 (the same
  theories, so the same compiled shapes; compiles excluded, `first_step_s` includes them);
  and the update's pieces (`update_parts`);
- the hand-written PyTorch step (`torch_grpo.TorchGRPO.step`), `repeats` steps each from the
  initial weights after one warm-up step;
- TRL's step (`trl_grpo`), `repeats` optimiser steps after a warm-up one.
Times are medians, with the best; the update's FLOP/s (8 x params x non-PAD tokens: forward
and backward of the policy, forward of the reference) as a fraction of the JAX matmul ceiling.
torch runs on `torch_threads` threads (default: the usable cores). On a machine shared with
other jobs, torch's OpenMP threads wait on each other through the scheduler and its steps
slow down 5-20x (README.md): give it one thread there (`--torch-threads 1`).

Samplers (once, batch `sampler_batch`, `sampler_keys` batches): this project's
`sampler.sample_tokens`, and HF generate with the grammar processor forced to the very same
theories (`ForcedRowsProcessor`; same lengths, same finished rows), each batch timed `tries`
times, interleaved; tokens/s counts policy-generated tokens. HF generate sampling its own
theories is reported too (`hf_free`).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
from transformers import LogitsProcessorList

from theorygrpo_jax import grpo
from theorygrpo_jax import model as M
from theorygrpo_jax import sampler as S
from theorygrpo_jax import tasks
from theorygrpo_jax import train as T
from theorygrpo_jax.config import DTYPE_NAMES, Config, ModelConfig, config_from_dict
from theorygrpo_jax.grammar import automaton
from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.policy import PolicySpec, grammar_masks, log_policy, token_logprobs

from ..ceilings import measure_matmul_flops
from ..machine import host_cpu, usable_cores
from ..step_bench import original_config
from . import torch_grpo as TG
from . import trl_grpo
from .grammar_processor import ForcedRowsProcessor, GrammarLogitsProcessor
from .grammar_tables import NumpyGrammar
from .torch_model import from_flax
from .update_parts import update_parts

PRESETS = ("cpu_default", "original")
TOLERANCE = 1e-4   # logits, log-probs and loss: the peers must agree to this before timing


def preset_config(preset: str, group_size: int, task: str = "from_scratch",
                  matmul_dtype: str = "float32") -> Config:
    """The benchmark's config: the model preset with the seed's GRPO defaults (lr 1e-4, kl 0.05,
    clip 0.2, entropy 0.01, 4 update chunks); `original` is `step_bench.original_config`.
    matmul_dtype "bfloat16": the sampler's weight matmuls (`model.matmul_dtype`) and the
    update's, forward and backward (`grpo.update_matmul_dtype`, `update_grad_matmul_dtype`),
    on bfloat16 operands summed in float32."""
    if preset == "original":
        config = original_config(group_size, task)
    elif preset == "cpu_default":
        config = config_from_dict({"model": dataclasses.asdict(ModelConfig.cpu_default()),
                                   "grpo": {"group_size": group_size, "learning_rate": 1e-4,
                                            "kl_coef": 0.05},
                                   "train": {"task": task}}, "<cpu_default>")
    else:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    if matmul_dtype not in DTYPE_NAMES:
        raise ValueError(f"unknown matmul dtype {matmul_dtype!r}; expected one of "
                         f"{', '.join(DTYPE_NAMES)}")
    if matmul_dtype == "float32":
        return config
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, matmul_dtype=matmul_dtype),
        grpo=dataclasses.replace(config.grpo, update_matmul_dtype=matmul_dtype,
                                 update_grad_matmul_dtype=matmul_dtype))


def float32_config(config: Config) -> Config:
    """The config with every matmul in float32: what the peers' checks compare against."""
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, matmul_dtype="float32"),
        grpo=dataclasses.replace(config.grpo, update_matmul_dtype=None,
                                 update_grad_matmul_dtype="float32"))


def torch_matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of torch's float32 n x n x n matmul, best of `repeats` after one warm-up."""
    a = torch.randn(n, n)
    torch.matmul(a, a)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, a)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best


def _median_best(times: list[float]) -> dict[str, float]:
    return {"median": statistics.median(times), "best": min(times)}


def _prompt_rows(config: Config, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """[batch, W] int32 prompt rows and [batch] lengths of step 0 (the task's first prompt)."""
    tokens, lens = T.task_prompts(config)
    return tasks.step_prompts(tokens, lens, 0, batch // config.grpo.group_size,
                              config.grpo.group_size)


# ---------------------------------------------------------------- this project

def project_step(config: Config, repeats: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """This project's step timed (see the module docstring); returns (figures, context for the
    checks and the update's pieces: the step-0 state, batch, chunks, inputs)."""
    def fresh_state():
        return T.place(config, T.init_state(config))[0]

    state, inputs, fns = T.place(config, T.init_state(config))
    gc = config.grpo
    prompts, lens = (jnp.asarray(a) for a in _prompt_rows(config, gc.batch_size))

    start = time.perf_counter()
    _, outputs = T.train_step(state, inputs, fns, config)
    jax.device_get(outputs)
    first_step_s = time.perf_counter() - start

    times: dict[str, list[float]] = {k: [] for k in ("rollout_s", "split_s", "update_s", "step_s")}
    for _ in range(repeats):
        s = jax.block_until_ready(fresh_state())
        t0 = time.perf_counter()
        s, batch, *_ = jax.block_until_ready(fns.rollout(s, inputs.tables, prompts, lens))
        t1 = time.perf_counter()
        chunks = grpo.split_by_length(batch, gc.update_chunks, config.model.max_len)
        t2 = time.perf_counter()
        jax.block_until_ready(fns.update(s, chunks, inputs.tables))
        t3 = time.perf_counter()
        times["rollout_s"].append(t1 - t0)
        times["split_s"].append(t2 - t1)
        times["update_s"].append(t3 - t2)
        s = jax.block_until_ready(fresh_state())
        t0 = time.perf_counter()
        _, outputs = T.train_step(s, inputs, fns, config)
        jax.device_get(outputs)
        times["step_s"].append(time.perf_counter() - t0)
    s = fresh_state()
    state0 = jax.tree.map(jnp.copy, s)          # the rollout donates s
    _, batch, _, rollout, _ = fns.rollout(s, inputs.tables, prompts, lens)
    chunks = grpo.split_by_length(batch, gc.update_chunks, config.model.max_len)
    figures = {k: _median_best(v) for k, v in times.items()}
    figures.update(first_step_s=first_step_s,
                   tokens=int(np.sum(np.asarray(batch.tokens) != V.PAD)),
                   mean_length=float(np.mean(np.asarray(rollout.lengths))))
    return figures, {"state": state0, "batch": batch, "chunks": chunks, "inputs": inputs,
                     "rollout": rollout}


# ---------------------------------------------------------------- checks

def checks(config: Config, ctx: dict[str, Any], grammar: NumpyGrammar) -> dict[str, Any]:
    """The peers agree with this project (see the module docstring); ValueError when not.

    Every check runs in float32. When the timed config has bfloat16 matmuls, the sampler's
    recorded log-probs are replaced by this project's float32 ones of the same rows for the
    check, and their distance to the float32 peer is reported (`bf16_logprobs_max_abs_diff`)."""
    bf16 = config.model.matmul_dtype != "float32"
    config = float32_config(config)
    mc, gc = config.model, config.grpo
    state, batch, chunks = ctx["state"], ctx["batch"], ctx["chunks"]
    tables = ctx["inputs"].tables
    params = state.params
    ref_params = M.init_params(mc, jax.random.PRNGKey(config.train.seed + 1))
    policy, ref_model = from_flax(params, mc), from_flax(ref_params, mc)
    out: dict[str, Any] = {}

    rows = np.random.default_rng(0).integers(0, mc.vocab_size, (4, min(64, mc.max_len)))
    with torch.no_grad():
        peer_logits = policy(torch.as_tensor(rows)).logits.numpy()
    out["logits_max_abs_diff"] = float(np.max(np.abs(
        peer_logits - np.asarray(M.forward(params, mc, jnp.asarray(rows, jnp.int32))))))

    tokens = np.asarray(batch.tokens)
    width = int(np.max(np.sum(tokens != V.PAD, axis=1)))
    tokens = tokens[:, :width]
    masks = grammar.sequence_masks(tokens, mc.max_len)
    out["masks_equal"] = bool(np.array_equal(
        masks, np.asarray(grammar_masks(tables, jnp.asarray(tokens), mc.max_len))))

    completion = np.asarray(batch.completion_mask)[:, :width]
    torch_batch = TG.TorchBatch(
        tokens=torch.as_tensor(tokens, dtype=torch.long),
        old_logprobs=torch.as_tensor(np.array(batch.old_logprobs)[:, :width]),
        completion_mask=torch.as_tensor(completion), advantages=torch.as_tensor(
            np.array(batch.advantages)), weights=torch.as_tensor(np.array(batch.weights)),
        masks=torch.from_numpy(masks))
    with torch.no_grad():
        logp = TG.policy_log_probs(policy, torch_batch.tokens, torch_batch.masks,
                                   gc.temperature, gc.top_k or None)
        token_logp = logp.gather(-1, torch_batch.tokens[:, 1:, None])[..., 0].numpy()
    sampled = np.asarray(batch.old_logprobs)[:, 1:width]
    spec = PolicySpec.from_config(gc)
    if bf16:
        out["bf16_logprobs_max_abs_diff"] = float(np.max(np.abs(token_logp - sampled)
                                                         * completion[:, 1:]))
        sampled = np.asarray(token_logprobs(log_policy(
            params, mc, jnp.asarray(tokens), jnp.asarray(masks), spec), jnp.asarray(tokens)))
    out["logprobs_max_abs_diff"] = float(np.max(np.abs(token_logp - sampled) * completion[:, 1:]))

    jax_masks = tuple(grammar_masks(tables, c.tokens, mc.max_len) for c in chunks)
    refs = tuple(log_policy(ref_params, mc, c.tokens, m, spec) for c, m in zip(chunks, jax_masks))
    entropy_coef = float(grpo.entropy_coefficient(gc, state.step))
    jax_loss = float(grpo.grpo_loss(params, chunks, jax_masks, refs, state.kl_coef, entropy_coef,
                                    model_config=mc, config=gc)[0])
    torch_loss, parts = TG.grpo_loss(policy, ref_model, TG.split_by_length(
        torch_batch, gc.update_chunks), float(state.kl_coef), entropy_coef, gc)
    out.update(loss=jax_loss, loss_abs_diff=abs(torch_loss - jax_loss), loss_kl=parts["kl"])

    bad = [k for k, ok in (("logits", out["logits_max_abs_diff"] <= TOLERANCE),
                           ("grammar masks", out["masks_equal"]),
                           ("log-probs", out["logprobs_max_abs_diff"] <= TOLERANCE),
                           ("loss", out["loss_abs_diff"] <= TOLERANCE)) if not ok]
    if bad:
        raise ValueError(f"the peers disagree with this project ({', '.join(bad)}): {out}")
    return out


# ---------------------------------------------------------------- the peers

def torch_step(config: Config, params: Any, grammar: NumpyGrammar, repeats: int) -> dict[str, Any]:
    """The hand-written step: one warm-up, then `repeats` steps each from the initial weights."""
    prompts, lens = _prompt_rows(config, config.grpo.batch_size)
    prompts = prompts[:, :int(lens[0])]
    dtype = config.model.matmul_dtype
    config = float32_config(config)   # the peer's model; its matmuls follow `dtype`
    peer = TG.TorchGRPO(config, params, matmul_dtype=dtype)
    start = time.perf_counter()
    peer.step(prompts)
    first_step_s = time.perf_counter() - start
    times: dict[str, list[float]] = {k: [] for k in ("sample_s", "reward_s", "update_s", "step_s")}
    lengths, tokens, accepted = [], [], True
    for r in range(repeats):
        peer = TG.TorchGRPO(config, params, matmul_dtype=dtype)
        torch.manual_seed(config.train.seed + 1 + r)
        seconds, metrics = peer.step(prompts)
        for k, v in seconds.items():
            times[k].append(v)
        lengths.append(metrics["mean_length"])
        tokens.append(metrics["mean_length"] * config.grpo.batch_size)
    # the grammar holds on HF generate's own rows
    rows = peer.sample(prompts).tokens.numpy()
    padded = np.full((rows.shape[0], config.model.max_len), V.PAD, np.int64)
    padded[:, :rows.shape[1]] = rows
    accepted = bool(grammar.accepted(padded, config.model.max_len).all())
    if not accepted:
        raise ValueError("HF generate with the grammar processor sampled a row the grammar rejects")
    out = {k: _median_best(v) for k, v in times.items()}
    out.update(first_step_s=first_step_s, mean_length=statistics.mean(lengths),
               tokens=statistics.mean(tokens), rows_accepted=accepted)
    return out


def trl_step(config: Config, params: Any, grammar: NumpyGrammar, repeats: int) -> dict[str, Any]:
    """TRL's step: `repeats` optimiser steps after a warm-up one."""
    trainer, timer, reward = trl_grpo.make_trainer(
        float32_config(config), params, steps=repeats + 1,
        bf16=config.model.matmul_dtype == "bfloat16")
    torch.manual_seed(config.train.seed)
    trainer.train()
    if not bool(grammar.accepted(reward.rows, config.model.max_len).all()):
        raise ValueError("TRL's wrapped generate sampled a row the grammar rejects")
    lengths = np.sum(reward.rows != V.PAD, axis=1)
    return {"step_s": _median_best(timer.step_seconds[1:]), "first_step_s": timer.step_seconds[0],
            "mean_length": float(lengths.mean()),   # of the last step's theories
            "knob_differences": list(trl_grpo.KNOB_DIFFERENCES)}


def samplers(config: Config, params: Any, grammar: NumpyGrammar, batch: int, keys: int,
             tries: int) -> dict[str, Any]:
    """This project's sampler against HF generate on the same theories (module docstring)."""
    mc = config.model
    tables = automaton.load_tables()
    prompts, lens = (jnp.asarray(a) for a in _prompt_rows(
        dataclasses.replace(config, grpo=dataclasses.replace(config.grpo, group_size=batch)),
        batch))
    policy = PolicySpec.from_config(config.grpo, temperature=np.float32(config.grpo.temperature))

    def project(key):
        return S.sample_tokens(params, tables, prompts, lens, key, policy, config=mc)

    rng_keys = [jax.random.PRNGKey(1 + i) for i in range(keys)]
    start = time.perf_counter()
    jax.block_until_ready(project(rng_keys[0]))
    compile_s = time.perf_counter() - start
    rollouts = [jax.device_get(project(k)) for k in rng_keys]
    generated = [int(np.sum(r.completion_mask)) for r in rollouts]

    model = from_flax(params, float32_config(config).model)
    p = int(lens[0])
    hf_prompts = torch.as_tensor(np.asarray(prompts)[:, :p], dtype=torch.long)
    processor = GrammarLogitsProcessor(grammar, mc.max_len)

    def hf(rows: np.ndarray | None):
        processor.reset()
        extra = [] if rows is None else [ForcedRowsProcessor(rows, V.PAD)]
        with torch.no_grad(), TG.autocast(mc.matmul_dtype):
            return model.generate(hf_prompts, attention_mask=torch.ones_like(hf_prompts),
                                  logits_processor=LogitsProcessorList([processor, *extra]),
                                  do_sample=True, top_k=0, top_p=1.0, max_length=mc.max_len,
                                  pad_token_id=V.PAD, bos_token_id=V.BOS, eos_token_id=V.EOS)

    hf(None)  # warm-up
    for r in rollouts:   # the forced HF rows are this project's theories
        rows = np.asarray(r.tokens)
        out = hf(rows).numpy()
        if not np.array_equal(out, rows[:, :out.shape[1]]) or np.any(rows[:, out.shape[1]:]):
            raise ValueError("HF generate forced to this project's theories produced other rows")
    times = {"project": [[] for _ in rollouts], "hf_same": [[] for _ in rollouts],
             "hf_free": [[] for _ in rollouts]}
    free_tokens = []
    for _ in range(tries):   # interleaved: a burst of load hits every sampler
        for i, (k, r) in enumerate(zip(rng_keys, rollouts)):
            t0 = time.perf_counter()
            jax.block_until_ready(project(k))
            t1 = time.perf_counter()
            hf(np.asarray(r.tokens))
            t2 = time.perf_counter()
            free = hf(None).numpy()
            t3 = time.perf_counter()
            times["project"][i].append(t1 - t0)
            times["hf_same"][i].append(t2 - t1)
            times["hf_free"][i].append(t3 - t2)
            free_tokens.append(int(np.sum(free[:, p:] != V.PAD)))
    total = sum(generated)
    out: dict[str, Any] = {"batch": batch, "theories": batch * keys, "generated_tokens": total,
                           "mean_length": float(np.mean([r.lengths.mean() for r in rollouts])),
                           "project_compile_s": compile_s}
    for name in ("project", "hf_same"):
        out[f"{name}_tokens_per_s"] = {
            "median": total / sum(statistics.median(t) for t in times[name]),
            "best": total / sum(min(t) for t in times[name])}
    free_s = [s for t in times["hf_free"] for s in t]
    out["hf_free_tokens_per_s"] = {"median": statistics.median(
        [n / s for n, s in zip(free_tokens, free_s)]), "best": max(
        n / s for n, s in zip(free_tokens, free_s))}
    return out


# ---------------------------------------------------------------- the whole run

def run(preset: str = "cpu_default", groups: tuple[int, ...] = (64, 8), repeats: int = 3,
        task: str = "from_scratch", sampler_batch: int = 64, sampler_keys: int = 3,
        tries: int = 3, with_trl: bool = True, torch_threads: int | None = None,
        matmul_dtype: str = "float32") -> dict[str, Any]:
    """Everything (module docstring) in this process; a JSON-able dict. torch_threads: torch's
    intra-op threads (None: the usable cores, as JAX's thread pool). matmul_dtype "bfloat16":
    every side's weight matmuls on bfloat16 operands (this project: `preset_config`; PyTorch:
    CPU autocast; TRL: its `bf16` mixed precision), the ceiling a bfloat16 GEMM's."""
    if repeats < 1 or tries < 1 or sampler_keys < 1:
        raise ValueError(f"--repeats, --tries and --sampler-keys must be at least 1, got "
                         f"{repeats}, {tries} and {sampler_keys}")
    torch.set_num_threads(torch_threads or len(usable_cores()))
    grammar = NumpyGrammar.load()
    result: dict[str, Any] = {
        "preset": preset, "task": task, "repeats": repeats, "matmul_dtype": matmul_dtype,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": host_cpu(), "torch_threads": torch.get_num_threads(),
        # under load from other processes, torch's OpenMP threads are sensitive to this
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "versions": {"jax": jax.__version__, "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__,
                     "trl": __import__("trl").__version__},
        "load_start": list(os.getloadavg()),
    }
    ceilings = [measure_matmul_flops(dtype=matmul_dtype)]
    result["torch_matmul_flops_per_s"] = torch_matmul_flops()
    result["groups"] = {}
    for g in groups:
        config = preset_config(preset, g, task, matmul_dtype)
        project, ctx = project_step(config, repeats)
        params = ctx["state"].params
        entry: dict[str, Any] = {"checks": checks(config, ctx, grammar), "project": project}
        entry["project"]["update_parts"] = update_parts(config, ctx["state"], ctx["chunks"],
                                                        ctx["inputs"].tables, repeats)
        entry["torch"] = torch_step(config, params, grammar, repeats)
        if with_trl:
            entry["trl"] = trl_step(config, params, grammar, repeats)
        entry["params"] = M.num_params(params)
        entry["load"] = list(os.getloadavg())
        result["groups"][str(g)] = entry
    config = preset_config(preset, sampler_batch, task, matmul_dtype)
    result["samplers"] = samplers(config, T.init_state(config).params, grammar, sampler_batch,
                                  sampler_keys, tries)
    ceilings.append(measure_matmul_flops(dtype=matmul_dtype))
    result["matmul_flops_per_s"] = max(ceilings)   # a burst of load should not lower the bar
    for entry in result["groups"].values():
        flops = 8 * entry["params"]
        for side in ("project", "torch"):
            e = entry[side]
            e["update_flop_fraction"] = (flops * e["tokens"] / e["update_s"]["median"]
                                         / result["matmul_flops_per_s"])
    result["load_end"] = list(os.getloadavg())
    return result


def table(result: dict[str, Any]) -> str:
    """The side-by-side table (markdown), as issue 17 lays it out, and the update's pieces."""
    s = lambda x: f"{x:.2f} s"   # noqa: E731
    head = ("| | this project | hand-written PyTorch GRPO (HF generate + KV cache + grammar "
            "LogitsProcessor, 4 length-sorted chunks) | TRL GRPOTrainer (same generate) |")
    lines = [f"{result['preset']}, task {result['task']}, weight matmuls "
             f"{result.get('matmul_dtype', 'float32')}, {result['cpu']}, {result['date']}; "
             f"torch threads {result['torch_threads']} (OMP_WAIT_POLICY "
             f"{result['omp_wait_policy'] or 'unset'}); "
             f"load {result['load_start'][0]:.2f} -> {result['load_end'][0]:.2f}; medians of "
             f"{result['repeats']} (best)", "", head, "|---|---|---|---|"]
    for g, e in result["groups"].items():
        p, t = e["project"], e["torch"]
        trl = e.get("trl", {}).get("step_s")
        trl_cell = f"{s(trl['median'])} (best {s(trl['best'])})" if trl else "—"
        lines.append(
            f"| step, group {g} | {s(p['step_s']['median'])} (best {s(p['step_s']['best'])}; "
            f"rollout {s(p['rollout_s']['median'])}, update {s(p['update_s']['median'])}) | "
            f"{s(t['step_s']['median'])} (best {s(t['step_s']['best'])}; sample "
            f"{s(t['sample_s']['median'])}, update {s(t['update_s']['median'])}) | {trl_cell} |")
        ratio_trl = (f"{trl['median'] / p['step_s']['median']:.2f}×" if trl else "—")
        lines.append(f"| peer step / this project's, group {g} | 1 | "
                     f"{t['step_s']['median'] / p['step_s']['median']:.2f}× | {ratio_trl} |")
        lines.append(f"| update FLOP/s / matmul ceiling, group {g} | "
                     f"{p['update_flop_fraction']:.0%} | {t['update_flop_fraction']:.0%} | — |")
        trl_length = f"{e['trl']['mean_length']:.1f}" if trl else "—"
        lines.append(f"| mean theory length, group {g} | {p['mean_length']:.1f} | "
                     f"{t['mean_length']:.1f} | {trl_length} |")
    sm = result["samplers"]
    lines.append(f"| sampler, batch {sm['batch']}, the same {sm['theories']} theories | "
                 f"{sm['project_tokens_per_s']['median']:,.0f} tokens/s (best "
                 f"{sm['project_tokens_per_s']['best']:,.0f}) | HF generate "
                 f"{sm['hf_same_tokens_per_s']['median']:,.0f} tokens/s (best "
                 f"{sm['hf_same_tokens_per_s']['best']:,.0f}; sampling its own theories "
                 f"{sm['hf_free_tokens_per_s']['median']:,.0f}) | — |")
    lines += ["", f"matmul ceiling (JAX, {result.get('matmul_dtype', 'float32')}, 2048³): "
              f"{result['matmul_flops_per_s']:.3g} "
              f"FLOP/s; torch's: {result['torch_matmul_flops_per_s']:.3g} FLOP/s", "",
              "This project's update by piece (seconds, medians):", "",
              "| group | masks | reference fwd | loss fwd | loss fwd+bwd | optimizer | "
              "whole update | chunk shapes | padded / real tokens |", "|---" * 9 + "|"]
    for g, e in result["groups"].items():
        u = e["project"]["update_parts"]
        lines.append(f"| {g} | {u['masks_s']:.3f} | {u['reference_s']:.3f} | {u['loss_s']:.3f} | "
                     f"{u['loss_and_grad_s']:.3f} | {u['optimizer_s']:.3f} | "
                     f"{e['project']['update_s']['median']:.3f} | {u['chunk_shapes']} | "
                     f"{u['padded_tokens']} / {u['tokens']} |")
    return "\n".join(lines)
