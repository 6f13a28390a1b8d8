"""A run directory: who owns it, and what a resume reads from it.

Ownership. A training run holds an exclusive `flock` on ``RUN_DIR/run.lock`` from
before it writes anything until it ends; the file names the holder (pid, host,
start time). The kernel drops the lock when the process dies (even by SIGKILL), so
a stale file never blocks; on a file system that cannot lock (some network mounts)
the run goes on unlocked. A second run on the directory stops with one line
naming the holder (`RunInUse`). A new run into a directory that already holds a
run's files stops too (`run_files`), unless told to replace them (`clear_run`).

Consistency on resume. A run writes, per step, the catalogue (discoveries.jsonl
and discoveries/*.theory), then metrics.jsonl, then training_stats.json, then the
checkpoint, then best_model; a crash can stop it between any two. A resume takes
the newest intact checkpoint's step s as the truth and cuts everything else back
to it: `cut_metrics` drops the records after s (and a line a crash truncated),
`history_from` rebuilds the statistics history from the records (so
training_stats.json never has to be newer than the checkpoint), `cut_catalogue`
drops the catalogue's lines after s and rewrites the `.theory` files as they were
at s. The resumed run then writes exactly what an uninterrupted run would have
(timings aside).
"""

from __future__ import annotations

import copy
import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from .discoveries import CATALOGUE_FILE, THEORY_DIR, CatalogueError, theory_text
from .metrics import METRICS_FILE, TENSORBOARD_DIR

LOCK_FILE = "run.lock"
STATS_FILE = "training_stats.json"
CONFIG_FILE = "config.yaml"
# What a run writes into its directory (anything else there is left alone).
RUN_FILES = ("checkpoints", METRICS_FILE, STATS_FILE, CATALOGUE_FILE, THEORY_DIR, CONFIG_FILE,
             "plots", TENSORBOARD_DIR, "run.log", "wandb_run_id", "wandb")


class RunDirError(ValueError):
    """A run directory that cannot be used as asked; str() is one line."""


class RunInUse(RunDirError):
    """Another process holds the run directory's lock."""


# --------------------------------------------------------------------------- ownership

def check_output_dir(path: Path) -> None:
    """RunDirError when `path` cannot be a run directory: it is a file, or a part of it is."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(f"{parent}: is a file, not a directory (choose another "
                                  f"--output_dir)")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise RunDirError(f"{parent}: no permission to write there (choose another "
                                  f"--output_dir)")
            return


def lock_holder(run_dir: Path) -> dict[str, Any]:
    """What the lock file says about its holder ({} when unreadable)."""
    try:
        data = json.loads((Path(run_dir) / LOCK_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class RunLock:
    """The exclusive lock of a run directory (a context manager; see the module docstring)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.created = False   # the lock file did not exist before `acquire`
        self._fd: int | None = None
        self._previous = b""   # what the lock file said before `acquire`

    def acquire(self) -> "RunLock":
        while True:
            existed = self.path.exists()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise RunDirError(f"{self.path}: cannot create the run's lock file: "
                                  f"{e.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
                    break   # a file system without locks (some network mounts): run unlocked
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise RunDirError(f"{self.path}: cannot lock: {e.strerror}") from None
                h = lock_holder(self.run_dir)
                who = (f"pid {h.get('pid', '?')} on host {h.get('host', '?')}, started "
                       f"{h.get('started', '?')}")
                raise RunInUse(f"{self.run_dir}: in use by another run ({who}); wait for it to "
                               f"end or choose another --output_dir") from None
            # A holder that removed the file between our open and our lock leaves us a lock
            # on a file nobody else sees: start again on the file that is there now.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd, self.created = fd, not existed
        self._previous = b"" if not existed else os.pread(fd, 1 << 16, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        return self

    def release(self, undo: bool = False) -> None:
        """Drop the lock. `undo` (an attempt that changed nothing else): delete the lock file
        this acquire created, or put back what it said before (while still holding it)."""
        if self._fd is None:
            return
        try:
            if undo and self.created:
                self.path.unlink()
            elif undo:
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, self._previous, 0)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def run_files(run_dir: Path) -> list[str]:
    """The names of a run's files present in `run_dir` (RUN_FILES), in that order."""
    return [name for name in RUN_FILES if (Path(run_dir) / name).exists()]


def clear_run(run_dir: Path) -> None:
    """Remove a previous run's files (RUN_FILES) from `run_dir`; other files stay."""
    for name in run_files(run_dir):
        path = Path(run_dir) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'section.key old -> new' for every config key whose value differs (a key one side lacks
    shows as None)."""
    a, b = _flat(saved), _flat(current)
    return [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# --------------------------------------------------------------------------- resume

def _read_lines(path: Path) -> list[str]:
    """The lines of a jsonl file (keeping their newlines); RunDirError when it is not text."""
    try:
        return path.read_bytes().decode("utf-8").splitlines(keepends=True)
    except OSError as e:
        raise RunDirError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise RunDirError(f"{path}: not a JSON-lines file: not UTF-8 text (byte {e.start})") from None


def _rewrite(path: Path, lines: list[str]) -> None:
    """Replace a file's content atomically (tmp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, path)


def cut_metrics(run_dir: Path, step: int) -> list[dict[str, Any]]:
    """Cut metrics.jsonl back to the records of steps <= `step` (dropping a line a crash cut
    off) and return those records in file order."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    lines = _read_lines(path)
    keep, records = [], []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            keep.append(line if line.endswith("\n") else line + "\n")
            records.append(record)
    if keep != lines:
        _rewrite(path, keep)
    return records


def history_from(records: list[dict[str, Any]], step: int,
                 stats: dict[str, Any] | None = None) -> dict[str, list[float]]:
    """The statistics history of steps 1..`step`: each metric's values in step order from the
    last record of each step; without records, the saved statistics' history cut to `step`."""
    by_step = {r["step"]: r for r in records if 1 <= r["step"] <= step}
    if not by_step and stats:
        return {k: list(v)[:step] for k, v in stats.get("history", {}).items()
                if isinstance(v, list)}
    history: dict[str, list[float]] = {}
    for s in sorted(by_step):
        for k, v in by_step[s].items():
            if k != "step":
                history.setdefault(k, []).append(v)
    return history


def _line_step(record: dict[str, Any]) -> int | None:
    """The step whose flush wrote a catalogue line: a new model's line holds its first_step, an
    update its last_step (one flush per step, and every update counts an instance); prompt and
    merged_into lines hold none."""
    if "id" not in record or "merged_into" in record:
        return None
    step = record.get("last_step", record.get("first_step"))
    return step if isinstance(step, int) else None


def cut_catalogue(run_dir: Path, step: int) -> None:
    """Cut the catalogue back to `step`: drop discoveries.jsonl from its first line of a later
    step on (and a line a crash cut off), then make every `.theory` file what it was at `step`:
    the entry as of the last line that rewrote it (its first line, or one with a new best
    instance), and no file for an id the cut removed."""
    run_dir = Path(run_dir)
    path = run_dir / CATALOGUE_FILE
    lines = _read_lines(path) if path.is_file() else []
    keep: list[str] = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            at = _line_step(record)
            if at is not None and at > step:
                break
        keep.append(line if line.endswith("\n") else line + "\n")
    if keep != lines:
        _rewrite(path, keep)
    laid: dict[int, dict[str, Any]] = {}          # id -> its lines laid over each other
    written: dict[int, dict[str, Any]] = {}       # id -> the entry its .theory file shows
    for line in keep:
        record = json.loads(line)
        if not isinstance(record, dict) or not isinstance(record.get("id"), int):
            continue
        ident = record["id"]
        if "merged_into" in record:
            laid.pop(ident, None)
            written.pop(ident, None)
            continue
        laid.setdefault(ident, {}).update(record)
        if "best_step" in record:
            written[ident] = copy.deepcopy(laid[ident])
    theory_dir = run_dir / THEORY_DIR
    if not theory_dir.is_dir():
        return
    for file in theory_dir.glob("*.theory"):
        if not (file.stem.isdigit() and int(file.stem) in written):
            file.unlink()
    for ident, entry in written.items():
        file = theory_dir / f"{ident:05d}.theory"
        try:
            text = theory_text(entry)
        except (KeyError, TypeError, ValueError) as e:
            raise CatalogueError(f"{path}: entry {ident} cannot be rendered ({e})") from None
        if not file.is_file() or file.read_text(encoding="utf-8") != text:
            tmp = file.with_name(f".{file.name}.tmp")
            tmp.write_text(text)
            os.replace(tmp, file)
