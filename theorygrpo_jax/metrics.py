"""Training metrics: `metrics.jsonl` (flat keys), the sinks that group them (TensorBoard, W&B)
and the periodic console block.

metrics.jsonl keeps the step's flat keys (`mean_reward`, `kl`, ...), which the plots and
tests read. TensorBoard and W&B get the same values under grouped tags (`tag_of`):
reward/..., discovery/..., loss/..., policy/..., rollout/..., buffer/..., time/..., so
their dashboards show one section per concern.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
RULE = "=" * 80
WANDB_ID_FILE = "wandb_run_id"   # in the run directory: a resume continues the same W&B run
WANDB_MISSING = ("report_to includes wandb but the wandb package is not installed: "
                 "pip install wandb")

# The discovery bonuses (discovery.discovery_rewards' keys): paid on top of the reward, so
# they are grouped under discovery/, not reward/.
DISCOVERY_BONUSES = ("novelty_reward", "sm_charged_reward", "chiral_reward")
# Flat metric key -> grouped tag, for the keys whose group is not read off their name.
TAGS = {
    "mean_reward": "reward/mean",            # the reward trained on (bonuses, curriculum phase)
    "reward_std": "reward/std",              # mean within-group std of total_reward
    "total_reward": "reward/total",          # the task's reward
    "success_rate": "reward/success_rate",
    "unique_successes": "discovery/unique_models",
    "total_loss": "loss/total",
    "loss": "loss/total",
    "grad_norm": "loss/grad_norm",
    "kl": "policy/kl",
    "entropy": "policy/entropy",
    "kl_coef": "policy/kl_coef",
    "entropy_coef": "policy/entropy_coef",
    "clip_fraction": "policy/clip_fraction",
    "ratio_mean": "policy/ratio_mean",
    "mean_length": "rollout/completion_length_mean",
    "max_length": "rollout/completion_length_max",
    "zero_variance_groups": "rollout/zero_variance_groups",
    "curriculum_phase": "rollout/curriculum_phase",
    "step_seconds": "time/step_seconds",
}


def tag_of(name: str) -> str:
    """The grouped TensorBoard / W&B tag of a flat metric key (unknown keys: other/<key>)."""
    if name in TAGS:
        return TAGS[name]
    if name in DISCOVERY_BONUSES:
        return f"discovery/{name.removesuffix('_reward')}_bonus"
    if name.startswith(("models_", "dark_sets_")):
        return f"discovery/{name}"
    if name.startswith("buffer_"):
        return f"buffer/{name.removeprefix('buffer_')}"
    if name.endswith("_loss"):
        return f"loss/{name.removesuffix('_loss')}"
    if name.endswith("_reward"):      # a reward component, built-in or custom
        return f"reward/{name.removesuffix('_reward')}"
    return f"other/{name}"


def group_stats(total_reward: np.ndarray, group_size: int) -> dict[str, float]:
    """GRPO's signal in a batch of rewards [B] = [groups * group_size] (groups contiguous, as
    grpo.group_advantages cuts them): reward_std, the mean over groups of the rewards'
    standard deviation within the group (ddof 0; TRL's reward_std), and zero_variance_groups,
    the fraction of groups whose rewards are all equal (no advantage, no gradient)."""
    groups = np.asarray(total_reward, dtype=np.float64).reshape(-1, group_size)
    return {"reward_std": float(groups.std(axis=1).mean()),
            "zero_variance_groups": float(np.mean(groups.max(axis=1) == groups.min(axis=1)))}


def samples_markdown(rows: Sequence[tuple[float, str]]) -> str:
    """Sample theories as a markdown table (TensorBoard renders text summaries as markdown)."""
    lines = ["| total reward | theory |", "|---:|---|"]
    lines += [f"| {reward:.4g} | `{text}` |" for reward, text in rows]
    return "\n".join(lines)


def open_wandb(run_dir: Path, project: str, config: dict[str, Any], name: str | None = None) -> Any:
    """A W&B run for `run_dir` (wandb imported only here). The run's id is kept in
    run_dir/wandb_run_id, so a resumed run continues the same W&B run. UserError (one line)
    when the wandb package is missing."""
    from .cli import UserError

    try:
        import wandb
    except ImportError:
        raise UserError(WANDB_MISSING) from None
    id_file = Path(run_dir) / WANDB_ID_FILE
    run_id = id_file.read_text().strip() if id_file.is_file() else ""
    if not run_id:
        run_id = uuid.uuid4().hex[:12]
        id_file.write_text(run_id + "\n")
    return wandb.init(project=project, id=run_id, resume="allow", dir=str(run_dir),
                      name=name or Path(run_dir).resolve().name, config=config)


def require_sinks(report_to: Sequence[str]) -> None:
    """UserError before a run starts when a sink in report_to cannot be used (wandb missing)."""
    if "wandb" in report_to:
        try:
            import wandb  # noqa: F401
        except ImportError:
            from .cli import UserError
            raise UserError(WANDB_MISSING) from None


def json_scalar(name: str, value: Any, kind: str = "metric") -> bool | int | float | str:
    """A metric (or other named scalar) as a JSON value (numpy scalars and 0-d arrays converted)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{kind} '{name}' has type {type(value).__name__}, not a number") from None


class MetricsWriter:
    """Appends one JSON line per `write` to `run_dir/metrics.jsonl`, and the same scalars under
    grouped tags (`tag_of`) to TensorBoard and, when given a W&B run, to W&B.

    The file is opened for appending, so a resumed run continues it (a line
    truncated by a crash is ended first). Every line is flushed when written.
    TensorBoard event files go to `run_dir/tensorboard/` (tensorboardX).
    `wandb`: a run from `open_wandb` (finished by `close`); `tags`: flat key -> tag for keys
    `tag_of` cannot group by name (a custom reward term). Usable as a context manager.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, wandb: Any = None,
                 tags: dict[str, str] | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / METRICS_FILE
        unterminated = False
        if self.path.is_file() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as f:
                f.seek(-1, 2)
                unterminated = f.read(1) != b"\n"
        self._file = open(self.path, "a", encoding="utf-8")
        if unterminated:   # a crash cut the last line: end it so the next record parses
            self._file.write("\n")
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(logdir=str(self.run_dir / TENSORBOARD_DIR))
        self._wandb = wandb
        self._tags = dict(tags or {})

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        """Record `metrics` at `step`: a JSON line {"step": step, **metrics}, and TB scalars.

        Values may be Python or numpy numbers or 0-d arrays (converted), bools or
        strings (JSON only). Raises TypeError for anything else.
        """
        if self._file.closed:
            raise ValueError(f"{self.path}: MetricsWriter is closed")
        clean = {str(k): json_scalar(str(k), v) for k, v in metrics.items()}
        if "step" in clean:
            raise ValueError("metrics must not contain a 'step' key (it is the step argument)")
        self._file.write(json.dumps({"step": int(step), **clean}) + "\n")
        self._file.flush()
        scalars = {self._tags.get(k) or tag_of(k): float(v) for k, v in clean.items()
                   if not isinstance(v, str)}
        if self._tb is not None:
            for tag, value in scalars.items():
                self._tb.add_scalar(tag, value, int(step))
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=int(step))

    def write_text(self, step: int, tag: str, text: str) -> None:
        """A text summary (markdown) at `step`: TensorBoard's Text tab, a W&B HTML panel."""
        if self._tb is not None:
            self._tb.add_text(tag, text, int(step))
            self._tb.flush()
        if self._wandb is not None:
            import wandb
            self._wandb.log({tag: wandb.Html(f"<pre>{_escape(text)}</pre>")}, step=int(step))

    def close(self) -> None:
        """Flush and close the files, finish the W&B run (idempotent)."""
        if not self._file.closed:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a `metrics.jsonl` (or of a run directory's), in file order.

    Lines that do not parse (a line truncated by a crash) are skipped; a
    missing file raises FileNotFoundError with a one-line message.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such metrics file")
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number < len(lines):
                log.warning("%s:%d: skipping a truncated line", path, number)
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def _format_value(value: Any) -> str:
    if isinstance(value, (bool, np.bool_, str)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    # A small value (a KL of 3e-05) in 4 decimals would read -0.0000: 2 significant digits.
    return f"{value:.1e}" if 0 < abs(value) < 5e-4 else f"{value:.4f}"


def format_stats_block(step: int, metrics: dict[str, Any], buffer: dict[str, Any] | None = None,
                       phase: int | None = None) -> str:
    """The periodic statistics block of the console log (no trailing newline).

    `buffer` may hold "size", "capacity", "mean_reward" and "success_rate" (a
    fraction, shown in percent); missing entries are left out, and so are the
    replay-buffer section when `buffer` is None and the phase line when `phase` is None.
    """
    lines = [RULE, f"Episode {step} Statistics:", RULE]
    lines += [f"  {name:<20}: {_format_value(value)}" for name, value in metrics.items()]
    if buffer is not None:
        lines += ["", "Replay Buffer:"]
        if "size" in buffer:
            capacity = f"/{int(buffer['capacity'])}" if "capacity" in buffer else ""
            lines.append(f"  Size: {int(buffer['size'])}{capacity}")
        if "mean_reward" in buffer:
            lines.append(f"  Mean Reward: {float(buffer['mean_reward']):.2f}")
        if "success_rate" in buffer:
            lines.append(f"  Success Rate: {100.0 * float(buffer['success_rate']):.2f}%")
    if phase is not None:
        lines += ["", f"Curriculum Phase: {int(phase)}"]
    lines.append(RULE)
    return "\n".join(lines)
