"""Training metrics: `metrics.jsonl`, TensorBoard scalars and the periodic console block."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
RULE = "=" * 80


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
    """Appends one JSON line per `write` to `run_dir/metrics.jsonl`, and scalars to TensorBoard.

    The file is opened for appending, so a resumed run continues it (a line
    truncated by a crash is ended first). Every line is flushed when written.
    TensorBoard event files go to `run_dir/tensorboard/` (tensorboardX).
    Usable as a context manager.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True):
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
        if self._tb is not None:
            for name, value in clean.items():
                if not isinstance(value, str):
                    self._tb.add_scalar(name, float(value), int(step))
            self._tb.flush()

    def close(self) -> None:
        """Flush and close the files (idempotent)."""
        if not self._file.closed:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    return f"{value:.4f}" if math.isfinite(value) else str(value)


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
