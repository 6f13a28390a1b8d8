"""PNG plots of a run's `metrics.jsonl`, and of curves that compare runs.

    theorygrpo-plot RUN_DIR_or_metrics.jsonl [--out DIR]

(also ``python -m theorygrpo_jax.plotting`` and ``python scripts/plot.py``) writes
reward.png, success.png, kl_entropy.png, loss.png and, when logged, curriculum.png (only
for a run with the curriculum on) and replay.png into DIR (default: the run's plots/).

Rendering uses matplotlib's Agg canvas on explicit Figure objects (no pyplot
global state, no display needed). Each plot is a column of panels sharing
the step axis (integer ticks), each panel with its y-axis label; a panel shows
those of its metric keys present in the records, and a figure none of whose keys
are present is skipped. Noisy series are drawn faintly with an exponentially
smoothed line over them.

Two rewards are logged: `total_reward`, the task's reward (the sum of its components),
and `mean_reward`, the reward the policy is trained on: total_reward plus the discovery
bonuses, or under the curriculum the phase's reward plus them. When they are equal
(no bonus, no curriculum) only total_reward is drawn; otherwise both, labelled so.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .metrics import read_metrics

PLOTS_DIR = "plots"
SMOOTHING = 0.9         # EMA weight of the smoothed line (TensorBoard-style, debiased)
MIN_SMOOTH_POINTS = 10  # fewer points than this: draw the raw series only

# Metric keys each plot looks for (exact names, in this order).
TOTAL_REWARD_KEYS = ("mean_reward", "reward", "total_reward")
EXTRA_TOTAL_KEYS = ("max_reward",)
NOT_COMPONENT_PREFIXES = ("mean_", "max_", "min_", "best_", "std_", "buffer_", "replay_")
SUCCESS_KEYS = ("success_rate",)
UNIQUE_KEYS = ("unique_successes", "num_unique_successes", "num_discoveries")
MODEL_COUNT_PREFIX = "models_"        # the catalogue's counts by kind
DARK_SETS_PREFIX = "dark_sets_"       # dark_u1: enumerated chiral charge sets found, by size
DISCOVERY_BONUS_KEYS = ("novelty_reward", "sm_charged_reward", "chiral_reward")
KL_KEYS = ("kl", "kl_divergence", "mean_kl")
ENTROPY_KEYS = ("entropy",)
COEF_KEYS = ("kl_coef", "entropy_coef")
PHASE_KEYS = ("curriculum_phase", "phase")
BUFFER_SIZE_KEYS = ("buffer_size", "replay_size")
BUFFER_REWARD_KEYS = ("buffer_mean_reward", "replay_mean_reward")
BUFFER_SUCCESS_KEYS = ("buffer_success_rate", "replay_success_rate")
CURRICULUM_FIGURE = "curriculum.png"
# Legend labels that say what a key is where its name does not.
LABELS = {
    "mean_reward": "mean_reward (trained on: + discovery bonuses, curriculum phase)",
    "total_reward": "total_reward (the task's reward: sum of its components)",
    "max_reward": "max_reward (best theory of the batch)",
    "unique_successes": "unique_successes (distinct physics models found so far)",
}
SAME_AS_TOTAL = "total_reward (= mean_reward: no discovery bonus, no curriculum)"
COUNT_PANELS = ("Unique successes", "Discovered models by kind", "Buffer size",
                "Curriculum phase", "Dark U(1)' charge sets found, by number of fermions")   # whole numbers: integer y ticks


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_keys(records: Sequence[dict]) -> list[str]:
    """Numeric metric keys of the records, in order of first appearance (without "step")."""
    keys: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if key != "step" and _is_number(value):
                keys.setdefault(key, None)
    return list(keys)


def series(records: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric, sorted by step; a repeated step keeps its last value.

    (A resumed run repeats the steps after its checkpoint; the later values win.)
    """
    by_step: dict[int, float] = {}
    for record in records:
        value = record.get(key)
        if _is_number(value) and _is_number(record.get("step")):
            by_step[int(record["step"])] = float(value) if math.isfinite(value) else math.nan
    steps = np.array(sorted(by_step), dtype=np.int64)
    return steps, np.array([by_step[s] for s in steps], dtype=np.float64)


def smooth(values: np.ndarray, weight: float = SMOOTHING) -> np.ndarray:
    """Debiased exponential moving average; non-finite values are skipped."""
    out = np.full(len(values), math.nan)
    acc = norm = 0.0
    for i, value in enumerate(values):
        if math.isfinite(value):
            acc = weight * acc + (1.0 - weight) * value
            norm = weight * norm + (1.0 - weight)
        if norm > 0:
            out[i] = acc / norm
    return out


def _draw(ax, steps: np.ndarray, values: np.ndarray, label: str, smoothed: bool,
          step_style: bool = False) -> None:
    """One series: raw (faint when smoothed) and its smoothed line."""
    if step_style:
        ax.plot(steps, values, label=label, drawstyle="steps-post")
    elif smoothed and len(values) >= MIN_SMOOTH_POINTS:
        (raw,) = ax.plot(steps, values, alpha=0.25, linewidth=1)
        ax.plot(steps, smooth(values), color=raw.get_color(), label=label, linewidth=1.8)
    else:
        ax.plot(steps, values, label=label, marker="o" if len(values) < 30 else None,
                markersize=3)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


# A panel: (title, keys present in the records -> keys to draw, smoothed?, step style?,
# y-axis label).
Panel = tuple[str, Callable[[list[str]], list[str]], bool, bool, str]


def _exact(names: Sequence[str]) -> Callable[[list[str]], list[str]]:
    return lambda keys: [n for n in names if n in keys]


def _first(names: Sequence[str]) -> Callable[[list[str]], list[str]]:
    return lambda keys: [n for n in names if n in keys][:1]


def _reward_components(keys: list[str]) -> list[str]:
    return [k for k in keys if k.endswith("_reward") and k not in TOTAL_REWARD_KEYS
            and k not in DISCOVERY_BONUS_KEYS and not k.startswith(NOT_COMPONENT_PREFIXES)]


def _prefixed(prefix: str) -> Callable[[list[str]], list[str]]:
    return lambda keys: [k for k in keys if k.startswith(prefix)]


def _losses(keys: list[str]) -> list[str]:
    return [k for k in keys if k == "loss" or k.endswith("_loss")]


FIGURES: dict[str, tuple[str, list[Panel]]] = {
    "reward.png": ("Reward", [
        ("Total reward", _exact(TOTAL_REWARD_KEYS + EXTRA_TOTAL_KEYS), True, False,
         "reward per theory (batch mean)"),
        ("Reward components", _reward_components, True, False, "reward term (batch mean)"),
        ("Discovery bonuses", _exact(DISCOVERY_BONUS_KEYS), True, False,
         "bonus per theory (batch mean)")]),
    "success.png": ("Success and discoveries", [
        ("Success rate", _exact(SUCCESS_KEYS), True, False, "fraction of theories"),
        ("Unique successes", _first(UNIQUE_KEYS), False, False, "models (cumulative)"),
        ("Discovered models by kind", _prefixed(MODEL_COUNT_PREFIX), False, False,
         "models (cumulative)"),
        ("Dark U(1)' charge sets found, by number of fermions", _prefixed(DARK_SETS_PREFIX),
         False, False, "charge sets (cumulative)")]),
    "kl_entropy.png": ("KL and entropy", [
        ("KL divergence", _exact(KL_KEYS), True, False, "KL to the reference (nats/token)"),
        ("Entropy", _exact(ENTROPY_KEYS), True, False, "entropy (nats/token)"),
        ("Coefficients", _exact(COEF_KEYS), False, False, "coefficient")]),
    "loss.png": ("Loss", [("Loss", _losses, True, False, "loss")]),
    CURRICULUM_FIGURE: ("Curriculum", [("Curriculum phase", _first(PHASE_KEYS), False, True,
                                        "phase")]),
    "replay.png": ("Replay buffer", [
        ("Buffer size", _first(BUFFER_SIZE_KEYS), False, False, "theories held"),
        ("Buffer mean reward", _first(BUFFER_REWARD_KEYS), True, False, "reward"),
        ("Buffer success rate", _first(BUFFER_SUCCESS_KEYS), True, False, "fraction")]),
}


def _same_series(records: Sequence[dict], a: str, b: str) -> bool:
    """Whether metrics a and b have the same values at the same steps (float32 rounding)."""
    (sa, va), (sb, vb) = series(records, a), series(records, b)
    return sa.shape == sb.shape and bool(np.all(sa == sb)) and bool(
        np.allclose(va, vb, rtol=1e-5, atol=1e-6, equal_nan=True))


def _label(key: str, same_as_total: bool) -> str:
    if key == "total_reward" and same_as_total:
        return SAME_AS_TOTAL
    return LABELS.get(key, key)


def _integer_steps(ax) -> None:
    """Whole-number step ticks, also on a run of one or two steps (a narrower axis than
    one step gets no integer tick: widen it)."""
    low, high = ax.get_xlim()
    if high - low < 2:
        middle = round((low + high) / 2)
        ax.set_xlim(middle - 1, middle + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def curriculum_on(run_dir: Path) -> bool | None:
    """train.use_curriculum of the run whose config.yaml is in `run_dir` (None: unknown)."""
    import yaml

    try:
        saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        value = saved["train"]["use_curriculum"]
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError):
        return None
    return value if isinstance(value, bool) else None


def plot_records(records: Sequence[dict], out_dir: str | Path,
                 curriculum: bool | None = None) -> list[Path]:
    """Write the plots of FIGURES that have data into `out_dir`; returns the written paths.

    `curriculum`: whether the run used the curriculum (False: no curriculum.png, whose
    phase is then a constant 0); None: draw it only when the phase changed.
    """
    return [_save(fig, Path(out_dir) / name)
            for name, fig in run_figures(records, curriculum).items()]


def run_figures(records: Sequence[dict], curriculum: bool | None = None) -> dict[str, Figure]:
    """The figures of FIGURES that have data, by file name (see plot_records)."""
    keys = metric_keys(records)
    if "mean_reward" in keys and "total_reward" in keys:
        same_as_total = _same_series(records, "mean_reward", "total_reward")
    else:
        same_as_total = False
    if same_as_total:   # one line, labelled as both
        keys = [k for k in keys if k != "mean_reward"]
    # A bonus that is 0 at every step is switched off: not drawn.
    keys = [k for k in keys if k not in DISCOVERY_BONUS_KEYS
            or np.any(np.nan_to_num(series(records, k)[1]) != 0)]
    if curriculum is None:
        phase = _first(PHASE_KEYS)(keys)
        curriculum = bool(phase) and len(set(series(records, phase[0])[1].tolist())) > 1
    figures = {}
    for filename, (title, panels) in FIGURES.items():
        if filename == CURRICULUM_FIGURE and not curriculum:
            continue
        present = [(name, select(keys), smoothed, steps, ylabel)
                   for name, select, smoothed, steps, ylabel in panels if select(keys)]
        if not present:
            continue
        fig = Figure(figsize=(11, 2.8 * len(present) + 0.6))
        axes = fig.subplots(len(present), 1, sharex=True, squeeze=False)[:, 0]
        for ax, (name, names, smoothed, step_style, ylabel) in zip(axes, present):
            for key in names:
                _draw(ax, *series(records, key), _label(key, same_as_total), smoothed, step_style)
            ax.set_title(name, fontsize=10)
            ax.set_ylabel(ylabel, fontsize=9)
            if name in COUNT_PANELS:
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never hides data
        axes[-1].set_xlabel("step")
        _integer_steps(axes[-1])
        fig.suptitle(title)
        fig.tight_layout()
        figures[filename] = fig
    return figures


def plot_metrics(source: str | Path, out_dir: str | Path | None = None,
                 curriculum: bool | None = None) -> list[Path]:
    """Plots of a run directory or `metrics.jsonl` (default output: the run's `plots/`).

    `curriculum` None: read from the run's config.yaml when there is one (see plot_records).
    Raises FileNotFoundError when there is no metrics file and ValueError when
    it holds no records; returns the written paths (missing keys are skipped).
    """
    source = Path(source)
    records = read_metrics(source)
    if not records:
        raise ValueError(f"{source}: no metrics records")
    run_dir = source if source.is_dir() else source.parent
    if out_dir is None:
        out_dir = run_dir / PLOTS_DIR
    if curriculum is None:
        curriculum = curriculum_on(run_dir)
    return plot_records(records, out_dir, curriculum)


def plot_curves(curves: dict[str, tuple[Sequence[float], Sequence[float]]], path: str | Path,
                title: str, ylabel: str, xlabel: str = "step",
                points: dict[str, tuple[float, float]] | None = None) -> Path:
    """One axes comparing named curves {label: (steps, values)} (e.g. pretrained vs random init),
    and named single measurements {label: (step, value)} drawn as markers (an evaluation
    before or after training: a value at one step, not a line).

    Long curves are drawn faintly with a smoothed line. Returns `path`.
    """
    if not curves:
        raise ValueError(f"plot_curves: no curves to plot into {path}")
    return _save(curves_figure(curves, title, ylabel, xlabel, points), Path(path))


def curves_figure(curves: dict[str, tuple[Sequence[float], Sequence[float]]], title: str,
                  ylabel: str, xlabel: str = "step",
                  points: dict[str, tuple[float, float]] | None = None) -> Figure:
    """The figure of plot_curves."""
    fig = Figure(figsize=(10, 5))
    ax = fig.subplots()
    for label, (steps, values) in curves.items():
        steps = np.asarray(steps, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        if steps.shape != values.shape or steps.ndim != 1:
            raise ValueError(f"plot_curves: curve '{label}' has {steps.shape} steps "
                             f"but {values.shape} values")
        _draw(ax, steps, values, label, smoothed=True)
    for (label, (step, value)), marker in zip((points or {}).items(), "D*sP^v"):
        ax.plot([step], [value], linestyle="none", marker=marker, markersize=11,
                markeredgecolor="black", label=label, zorder=5)
    _integer_steps(ax)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    """`theorygrpo-plot`: the PNGs of a run; a missing or empty metrics file is one line, exit 1."""
    parser = argparse.ArgumentParser(prog="theorygrpo-plot",
                                     description="Plot a training run: PNGs from its metrics.jsonl.")
    parser.add_argument("source", type=Path, help="a run directory or its metrics.jsonl")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: RUN_DIR/plots)")
    args = parser.parse_args(argv)
    try:
        written = plot_metrics(args.source, args.out)
    except (OSError, ValueError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    if not written:
        print(f"{parser.prog}: error: {args.source}: none of the plotted metrics was logged", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
