"""What a training run shows while it runs, and its run.log.

On a terminal (stderr is a tty) the progress is a tqdm bar whose keys come in a fixed
order (reward, success, models, loss, kl, entropy); elsewhere (a SLURM log, a pipe, a
file) it is one plain line every log_interval steps, never a `\\r` bar. Before the first
step a notice says the step is compiling, and after it how long that took. Every line the
run shows (notices, statistics blocks, progress lines, stop messages) is also appended to
RUN_DIR/run.log, which a resume continues.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Callable, TextIO

from tqdm import tqdm

RUN_LOG = "run.log"
# (shown name, metric key, kind) in the order a reader scans them: the reward and how often
# it succeeds, what it found, then the optimiser's view.
PROGRESS_KEYS = (("reward", "mean_reward", "value"), ("success", "success_rate", "percent"),
                 ("models", "unique_successes", "count"), ("loss", "total_loss", "value"),
                 ("kl", "kl", "value"), ("entropy", "entropy", "value"))


def format_value(value: float) -> str:
    """A metric for a progress line: 4 significant digits; a small magnitude (a KL of 3.2e-05)
    in scientific notation, never as -0.0000."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e5:
        return f"{value:.1e}"
    return f"{value:.4g}"


def progress_fields(metrics: dict[str, float]) -> dict[str, str]:
    """The progress keys of PROGRESS_KEYS present in `metrics`, in that order, formatted."""
    out = {}
    for shown, key, kind in PROGRESS_KEYS:
        if key not in metrics:
            continue
        value = float(metrics[key])
        if kind == "percent":
            out[shown] = f"{100 * value:.1f}%"
        elif kind == "count":
            out[shown] = str(int(value)) if math.isfinite(value) else str(value)
        else:
            out[shown] = format_value(value)
    return out


def plain_line(step: int, total: int, metrics: dict[str, float], seconds: float) -> str:
    """One progress line: `step 10/200 | reward -3.21 | ... | 1.52 s/step`."""
    fields = " | ".join(f"{k} {v}" for k, v in progress_fields(metrics).items())
    return f"step {step}/{total} | {fields} | {seconds:.3g} s/step"


def compile_notice(backend: str) -> str:
    # the first steps measured on 2 cores: docs/performance.md, "Compilation and start-up"
    where = "up to ~30 s on CPU, seconds once cached" if backend == "cpu" else "takes a while"
    return f"compiling the step (first step; {where})…"


class RunLog:
    """Appends lines to a run's run.log (flushed per line: a crash keeps what was shown).
    `path` None: writes nothing (a process other than 0 of a multi-host run)."""

    def __init__(self, path: Path | None):
        self._file = open(path, "a", encoding="utf-8") if path is not None else None

    def write(self, text: str) -> None:
        if self._file is not None and not self._file.closed:
            self._file.write(text.rstrip("\n") + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class Progress:
    """The console of a run from step `start` to `total`.

    `write`: a line the run shows on stdout (statistics blocks, stop messages), above the bar;
    `notice`: a line for `log` (the caller's sink for notices: stderr on the command line);
    `compiling` before the first step, `step_done` after each. Both kinds of lines and the
    plain progress lines (every `log_interval` steps and at the end) go to `run_log` too.
    `show` False: no bar and no progress lines (run.log still gets them). `tty`: whether
    `stream` (default stderr) is a terminal; None: ask it. `primary` False (a process other
    than 0 of a multi-host run): shows and logs nothing.
    """

    def __init__(self, start: int, total: int, log_interval: int, run_log: RunLog,
                 log: Callable[[str], None] | None = print, show: bool = True,
                 stream: TextIO | None = None, out: TextIO | None = None,
                 tty: bool | None = None, backend: str = "cpu", primary: bool = True):
        self.start, self.total, self.log_interval = start, total, log_interval
        self.primary = primary
        self.run_log = run_log if primary else RunLog(None)
        self.log = log if primary else None
        self.backend = backend
        show = show and primary
        self.stream = stream if stream is not None else sys.stderr
        self.out = out
        tty = is_terminal(self.stream) if tty is None else tty
        self.show, self.tty = show, tty
        self.bar: Any = None
        if show and tty:
            self.bar = tqdm(total=total, initial=start, desc="Training", file=self.stream,
                            dynamic_ncols=True)
        self._first = True

    def write(self, text: str) -> None:
        """A line the run shows (on stdout, above the bar), also into run.log."""
        if not self.primary:
            return
        self.run_log.write(text)
        out = self.out if self.out is not None else sys.stdout
        if self.bar is not None:
            self.bar.write(text, file=out)
        else:
            print(text, file=out, flush=True)

    def notice(self, text: str) -> None:
        """A notice for the caller's log, also into run.log."""
        self.run_log.write(text)
        if self.log is not None:
            if self.bar is not None:
                with self.bar.external_write_mode():
                    self.log(text)
            else:
                self.log(text)

    def compiling(self) -> None:
        """Before the first step of this process: the step compiles now."""
        self.notice(compile_notice(self.backend))

    def step_done(self, step: int, metrics: dict[str, float], seconds: float,
                  last: bool = False) -> None:
        """After step `step` (1-based: the steps done) took `seconds`."""
        if self._first:
            self._first = False
            self.notice(f"compiled in {seconds:.1f} s (the first step included)")
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(progress_fields(metrics), refresh=True)
        if step % self.log_interval == 0 or last:
            line = plain_line(step, self.total, metrics, seconds)
            self.run_log.write(line)
            if self.show and self.bar is None:
                print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def is_terminal(stream: Any) -> bool:
    """True when `stream` is a terminal (a bar may redraw itself there; a log file, a SLURM
    output or a notebook gets plain lines)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
