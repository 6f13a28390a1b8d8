"""Discovery check: the GRPO policy against a random walker and the untrained policy.

    result = discovery_check(config, minutes, out_dir)

Three arms run one after the other, each for `minutes` of wall time (compilation included)
and each into its own folder of `out_dir`:

- "grpo":      `train.train` with train.max_minutes = minutes (train.num_episodes lifted, so
               the clock is the limit), into out_dir/grpo. Its periodic bookkeeping is off
               (save_interval and log_interval beyond the run, no TensorBoard, no progress
               bar; the last step still logs, saves and plots): an orbax checkpoint and the
               plots cost more than a small model's step, and the arm's clock is meant to
               measure sampling and learning, as the other arms' measures sampling;
- "untrained": the config's freshly initialised policy (`train.init_state(config).params`)
               sampling batches of grpo.batch_size rows of the task's prompts at the config's
               temperature and top_k, never updated;
- "walker":    `benchmarks.walker.walk_tokens`, uniform among the grammar-allowed tokens,
               continuing the same prompts, same batch size.

Every arm is judged by the same code: `reward.score_batch(tokens, config.reward)` and a
`DiscoveryCatalogue(out_dir/<arm>, prompt=the task's prompt)` with step = batch number
(1, 2, ...). The sampling arms always run at least one batch, so the first batch's compile
is in every arm's time.

Curves of finds against wall time (exact step functions): the sampling arms record
(seconds since the arm started, batch, catalogue summary) after every batch that found a new
model, and after the last; their clocks include building the draw (the untrained arm's
parameter initialisation). GRPO's steps are timed inside `train`: a
step's wall time is `train`'s setup (until its first log line) plus the `step_seconds` of
the steps up to it (metrics.jsonl) plus, spread evenly over the steps, the host time
outside them (catalogue, metrics, checkpoints, plots: the arm's wall time minus setup and
steps); its finds at step s are the catalogue's entries with first_step <= s.

Result (also written to out_dir/discovery_check.json; the figure to
out_dir/discovery_vs_time.png), per arm: samples (theories generated), batches, seconds,
setup_seconds (before the first batch), first_batch_seconds and compile_seconds (first batch minus the median batch; None with a
single batch), models, sm_charged, chiral, vector_like, dark_sets {n: distinct chiral
anomaly-free dark charge sets of n charges}, instances, per_minute rates, for the dark_u1
task coverage {n: total, found, fraction, outside} of `enumerate_chiral_sets(n, 18)` for
n = 5, 6, 7, and the curve. Then the ratios grpo/walker and grpo/untrained of the rates of
distinct chiral models and of distinct models, with notes where the denominator found
nothing (its sample count and GRPO's finds).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from benchmarks.walker import walk_tokens
from theorygrpo_jax import sampler as S
from theorygrpo_jax import tasks
from theorygrpo_jax import train as T
from theorygrpo_jax.config import Config
from theorygrpo_jax.discoveries import DiscoveryCatalogue
from theorygrpo_jax.grammar import automaton
from theorygrpo_jax.metrics import read_metrics
from theorygrpo_jax.physics.u1_charges import coverage
from theorygrpo_jax.policy import PolicySpec
from theorygrpo_jax.reward import score_batch

ARMS = ("grpo", "untrained", "walker", "pretrained")   # "pretrained" only with a checkpoint
COUNTS = ("models", "sm_charged", "chiral", "vector_like")   # distinct models of each class
COVERAGE_N = (5, 6, 7)
COVERAGE_ZMAX = 18
# train.num_episodes for the GRPO arm: never reached, train.max_minutes stops it.
UNLIMITED_STEPS = 10**9
PLOT_FILE = "discovery_vs_time.png"
# A sampling arm's source of theories: (batch index, prompt_tokens [B, W], prompt_len [B])
# -> tokens [B, L] int32.
Draw = Callable[[int, np.ndarray, np.ndarray], jax.Array]
RESULT_FILE = "discovery_check.json"
ARM_LABELS = {"grpo": "GRPO policy", "untrained": "untrained policy", "walker": "random walker",
              "pretrained": "pretrained policy, no RL"}
# Lines that lie on each other (arms that found nothing) stay told apart.
LINE_STYLES = {"grpo": "-", "untrained": "--", "walker": ":", "pretrained": "-."}
RATIO_TARGET = 100   # the field's benchmark: an RL agent finding O(100x) a random walker's rate


def summary_of(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """`DiscoveryCatalogue.summary()` of a list of catalogue entries (e.g. those found by
    some step): models, sm_charged, chiral, vector_like, dark_sets {n: count}, instances."""
    dark = {tuple(e["dark_set"]) for e in entries if e["dark_set"]}
    return {
        "models": len(entries),
        "sm_charged": sum(bool(e["class"]["adds_sm_charged"]) for e in entries),
        "chiral": sum(bool(e["class"]["chiral"]) for e in entries),
        "vector_like": sum(bool(e["class"]["vector_like"]) for e in entries),
        "dark_sets": dict(sorted(Counter(len(s) for s in dark).items())),
        "instances": sum(e["count"] for e in entries),
    }


@dataclasses.dataclass
class ArmRun:
    """What one arm leaves behind: its catalogue folder, each batch's time, and the points
    where its finds changed."""
    name: str
    run_dir: Path
    batch_size: int
    seconds: float = 0.0                    # the arm's whole wall time
    setup_seconds: float = 0.0              # from the arm's start to its first batch
    batch_seconds: list[float] = dataclasses.field(default_factory=list)   # [batches]
    # (wall seconds since the arm started, batch number, catalogue summary) after each batch
    # that found a new model, and after the last batch: the curve of finds, exact as a step
    # function, without a point per batch (a walker runs ~10^5 batches an hour).
    points: list[tuple[float, int, dict[str, Any]]] = dataclasses.field(default_factory=list)

    @property
    def batches(self) -> int:
        return len(self.batch_seconds)


# --------------------------------------------------------------------------- the arms


def _fresh_dir(path: Path) -> Path:
    """An arm's folder, which must not hold an earlier run (its catalogue would be continued)."""
    if path.exists() and any(path.iterdir()):
        raise ValueError(f"{path}: already holds a run; give an empty or new output folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _catalogue(config: Config, run_dir: Path) -> DiscoveryCatalogue:
    prompt = tasks.task_prompts(config.train.task, config.train.prompt_files)[0]
    return DiscoveryCatalogue(run_dir, prompt=prompt)


def sampling_arm(name: str, config: Config, run_dir: Path, minutes: float,
                 make_draw: Callable[[], Draw], log: Callable[[str], None] = print) -> ArmRun:
    """Build the arm's draw (`make_draw()`, on the arm's clock), then run it on the task's
    prompts (cycled as in training) for `minutes` of wall time from the arm's start (at least
    one batch), scoring every batch and cataloguing its successes with step = batch number
    (from 1)."""
    gc = config.grpo
    run = ArmRun(name, run_dir, gc.batch_size)
    start = time.perf_counter()
    deadline = start + 60.0 * minutes
    prompt_tokens, prompt_len = T.task_prompts(config)
    catalogue = _catalogue(config, _fresh_dir(run_dir))
    draw = make_draw()
    run.setup_seconds = time.perf_counter() - start
    while not run.batch_seconds or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        batch = run.batches
        pt, pl = tasks.step_prompts(prompt_tokens, prompt_len, batch, gc.prompts_per_step,
                                    gc.group_size)
        tokens = draw(batch, pt, pl)
        scores = jax.device_get(score_batch(tokens, config.reward))
        tokens = np.asarray(tokens)
        new = catalogue.add_batch([(T.token_strings(tokens[i]),
                                    {k: v[i].item() for k, v in scores.items()})
                                   for i in np.flatnonzero(scores["success"])], batch + 1)
        now = time.perf_counter()
        run.batch_seconds.append(now - t0)
        if new:   # the summary's counts change only with a new model
            run.points.append((now - start, batch + 1, catalogue.summary()))
    run.seconds = time.perf_counter() - start
    run.points.append((run.seconds, run.batches, catalogue.summary()))
    found = run.points[-1][2]
    log(f"{name}: {run.batches} batches, {run.batches * gc.batch_size} theories in "
        f"{run.seconds:.1f} s; {found['models']} models, {found['chiral']} chiral")
    return run


def untrained_draw(config: Config, checkpoint: str | None = None) -> Draw:
    """The freshly initialised policy (or, with `checkpoint`, that policy's parameters) as a
    `sampling_arm` draw (the config's temperature, top_k and model; a key per batch)."""
    params = T.initial_state(config, checkpoint=checkpoint).params
    tables = automaton.load_tables()
    policy = PolicySpec.from_config(config.grpo)
    policy = policy.replace(temperature=jnp.asarray(policy.temperature, jnp.float32))
    key = jax.random.fold_in(jax.random.PRNGKey(config.train.seed), 1)

    def draw(batch, prompt_tokens, prompt_len):
        return S.sample_tokens(params, tables, jnp.asarray(prompt_tokens), jnp.asarray(prompt_len),
                               jax.random.fold_in(key, batch), policy, config=config.model).tokens
    return draw


def walker_draw(config: Config) -> Draw:
    """The uniform grammar walker as a `sampling_arm` draw (a key per batch)."""
    tables = automaton.load_tables()
    key = jax.random.fold_in(jax.random.PRNGKey(config.train.seed), 2)

    def draw(batch, prompt_tokens, prompt_len):
        return walk_tokens(tables, jnp.asarray(prompt_tokens), jnp.asarray(prompt_len),
                           jax.random.fold_in(key, batch), max_len=config.model.max_len)
    return draw


def grpo_arm(config: Config, run_dir: Path, minutes: float,
             log: Callable[[str], None] = print, checkpoint: str | None = None) -> ArmRun:
    """`train.train` for `minutes` of wall time into run_dir, its finds timed by step (see
    the module docstring)."""
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, max_minutes=float(minutes), num_episodes=UNLIMITED_STEPS,
        save_interval=UNLIMITED_STEPS, log_interval=UNLIMITED_STEPS, tensorboard=False,
        progress_bar=False))
    _fresh_dir(run_dir)
    start = time.perf_counter()
    setup: list[float] = []

    def timed_log(message: str) -> None:
        if not setup:   # train logs once, when its state and prompts are in place
            setup.append(time.perf_counter() - start)
        log(message)

    T.train(config, run_dir, checkpoint=checkpoint, log=timed_log)
    run = ArmRun("grpo", run_dir, config.grpo.batch_size, seconds=time.perf_counter() - start)
    records = read_metrics(run_dir / "metrics.jsonl")
    run.batch_seconds = [float(r["step_seconds"]) for r in records]
    run.setup_seconds = setup[0] if setup else 0.0
    host = max(run.seconds - run.setup_seconds - sum(run.batch_seconds), 0.0) / len(records)
    times = run.setup_seconds + np.cumsum(run.batch_seconds) + host * np.arange(1, len(records) + 1)
    entries = sorted(DiscoveryCatalogue(run_dir).entries(), key=lambda e: e["first_step"])
    found = 0
    for record, t in zip(records, times):
        step = int(record["step"])
        seen = found
        while found < len(entries) and entries[found]["first_step"] <= step:
            found += 1
        if found > seen:
            run.points.append((float(t), step, summary_of(entries[:found])))
    run.points.append((run.seconds, run.batches, summary_of(entries)))
    log(f"grpo: {run.batches} steps, {run.batches * run.batch_size} theories in "
        f"{run.seconds:.1f} s; {len(entries)} models, {run.points[-1][2]['chiral']} chiral")
    return run


# --------------------------------------------------------------------------- the result


def arm_result(run: ArmRun, task: str) -> dict[str, Any]:
    """The JSON-able result of one arm (see the module docstring)."""
    final = DiscoveryCatalogue(run.run_dir).summary()
    minutes = run.seconds / 60.0
    first = run.batch_seconds[0]
    rest = run.batch_seconds[1:]
    out: dict[str, Any] = {
        "samples": run.batches * run.batch_size,
        "batches": run.batches,
        "seconds": run.seconds,
        "setup_seconds": run.setup_seconds,
        "first_batch_seconds": first,
        "compile_seconds": max(first - float(np.median(rest)), 0.0) if rest else None,
        **{k: final[k] for k in (*COUNTS, "dark_sets", "instances")},
        "per_minute": {k: final[k] / minutes for k in (*COUNTS, "instances")},
    }
    out["per_minute"]["samples"] = out["samples"] / minutes
    if task == "dark_u1":
        sets = [e["dark_set"] for e in DiscoveryCatalogue(run.run_dir).entries() if e["dark_set"]]
        out["coverage"] = {n: {k: c[k] for k in ("total", "found", "fraction", "outside")}
                           for n, c in coverage(sets, COVERAGE_N, COVERAGE_ZMAX).items()}
    out["curve"] = {"seconds": [0.0, *(t for t, _, _ in run.points)],
                    "batch": [0, *(b for _, b, _ in run.points)],
                    **{k: [0, *(s[k] for _, _, s in run.points)] for k in COUNTS},
                    "dark_sets": [0, *(sum(s["dark_sets"].values()) for _, _, s in run.points)]}
    return out


def ratios(arms: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """grpo/walker and grpo/untrained of the per-minute rates of distinct chiral models and
    of distinct models (None where the denominator found none), and notes saying so."""
    out: dict[str, Any] = {}
    notes: list[str] = []
    grpo = arms["grpo"]
    for count in ("chiral", "models"):
        rates = out.setdefault(f"{count}_per_minute", {})
        for other in [a for a in ("walker", "untrained", "pretrained") if a in arms]:
            theirs = arms[other]
            key = f"grpo/{other}"
            if theirs[count]:
                rates[key] = grpo["per_minute"][count] / theirs["per_minute"][count]
                continue
            rates[key] = None
            # Had it found one, its rate would be 1 / its minutes: GRPO's rate over that.
            rates[f"{key}_if_{other}_had_found_1"] = grpo["per_minute"][count] * theirs["seconds"] / 60
            what = "chiral models" if count == "chiral" else "models"
            notes.append(f"the {ARM_LABELS[other]} found no {what} in {theirs['samples']} samples "
                         f"({theirs['seconds']:.0f} s); GRPO found {grpo[count]} in "
                         f"{grpo['samples']} samples ({grpo['seconds']:.0f} s)")
    return out, notes


def plot_discoveries(arms: dict[str, dict[str, Any]], path: Path, title: str,
                     task: str) -> Path:
    """Finds against wall time, one line per arm: distinct models, chiral models, and
    SM-charged models (dark sets for the dark_u1 task)."""
    third = ("dark_sets", "distinct chiral dark U(1)' charge sets") if task == "dark_u1" else \
        ("sm_charged", "distinct models adding SM-charged matter")
    panels = [("models", "distinct models"), ("chiral", "distinct chiral models"), third]
    longest = max(a["curve"]["seconds"][-1] for a in arms.values())
    scale, unit = (60.0, "min") if longest > 180 else (1.0, "s")
    fig = Figure(figsize=(15, 4.8))
    axes = fig.subplots(1, len(panels))
    for ax, (key, label) in zip(axes, panels):
        for name, arm in arms.items():
            t = np.asarray(arm["curve"]["seconds"]) / scale
            ax.plot(t, arm["curve"][key], drawstyle="steps-post", linewidth=1.8,
                    linestyle=LINE_STYLES.get(name, "-"),
                    label=f"{name} ({arm[key] if key != 'dark_sets' else sum(arm['dark_sets'].values())})")
        ax.set_title(label)
        ax.set_xlabel(f"wall time ({unit}, compilation included)")
        ax.set_ylabel(f"{label} found")
        top = max(max(arm["curve"][key]) for arm in arms.values())
        ax.set_xlim(left=0)
        # Counts: integer ticks; a little room below 0 so that an arm that found nothing
        # shows as a line above the axis.
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(-0.03 * max(top, 1), 1.08 * max(top, 1))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", title="arm (final count)")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def discovery_check(config: Config, minutes: float, out_dir: str | Path,
                    log: Callable[[str], None] = print, name: str | None = None,
                    checkpoint: str | None = None) -> dict[str, Any]:
    """Run the three arms for `minutes` each into out_dir/<arm>; returns the result (see the
    module docstring), also written to out_dir/discovery_check.json, and draws
    out_dir/discovery_vs_time.png. `name`: the config's name for the title (default: the
    task). `checkpoint`: GRPO starts from this pretrained policy, and a fourth arm samples
    that policy without updates (what RL adds over pretraining). ValueError for minutes <= 0
    or an arm folder that already holds a run."""
    if not (minutes > 0 and np.isfinite(minutes)):
        raise ValueError(f"minutes must be a positive number, got {minutes}")
    out = Path(out_dir)
    for arm in ARMS:
        if (out / arm).exists() and any((out / arm).iterdir()):
            raise ValueError(f"{out / arm}: already holds a run; give an empty or new output folder")
    task = config.train.task
    log(f"discovery check: {minutes:g} min per arm, {config.grpo.batch_size} theories per batch, "
        f"task {task}, output in {out}")
    runs = {"grpo": grpo_arm(config, out / "grpo", minutes, log, checkpoint)}
    runs["untrained"] = sampling_arm("untrained", config, out / "untrained", minutes,
                                     lambda: untrained_draw(config), log)
    runs["walker"] = sampling_arm("walker", config, out / "walker", minutes,
                                  lambda: walker_draw(config), log)
    if checkpoint:
        runs["pretrained"] = sampling_arm("pretrained", config, out / "pretrained", minutes,
                                          lambda: untrained_draw(config, checkpoint), log)
    arms = {arm: arm_result(run, task) for arm, run in runs.items()}
    rates, notes = ratios(arms)
    title = (f"discoveries against wall time: config {name or task} (task {task}), "
             f"{minutes:g} min per arm, {config.grpo.batch_size} theories per batch")
    plot = plot_discoveries(arms, out / PLOT_FILE, title, task)
    result = {"config": name or task, "task": task, "minutes": minutes,
              "batch_size": config.grpo.batch_size, "arms": arms, "ratios": rates,
              "ratio_target": RATIO_TARGET, "notes": notes, "plot": str(plot),
              "out_dir": str(out)}
    (out / RESULT_FILE).write_text(json.dumps(result, indent=2))
    return result


def without_curves(result: dict[str, Any]) -> dict[str, Any]:
    """The result without the per-batch curves (for printing)."""
    return {**result, "arms": {a: {k: v for k, v in r.items() if k != "curve"}
                               for a, r in result["arms"].items()}}


__all__ = ["ARMS", "ArmRun", "arm_result", "discovery_check", "grpo_arm", "plot_discoveries",
           "ratios", "sampling_arm", "summary_of", "untrained_draw", "walker_draw",
           "without_curves"]
