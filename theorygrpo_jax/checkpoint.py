"""Checkpoints of a training run, written with orbax-checkpoint.

Layout of a run directory::

    RUN_DIR/checkpoints/<step>/        one checkpoint per saved step (newest `keep` kept)
        state/                         the training-state pytree (orbax PyTree, OCDBT)
        metadata/metadata              a JSON dict (config, training stats, ...)
        commit_success.txt             written last, before the final rename
    RUN_DIR/checkpoints/best_model/    same layout; the best state so far

Atomicity: orbax writes a checkpoint into ``<name>.orbax-checkpoint-tmp``,
writes ``commit_success.txt`` into it and only then renames it to ``<name>``
(one rename on a local file system). A crash mid-save leaves at most the tmp
directory, which this module never lists, restores or counts, and which the
next `Checkpointer` removes. A directory is a checkpoint only when it holds
``commit_success.txt`` (so a half-copied step directory is ignored as well).
Replacing an existing checkpoint (a step saved again) writes ``<name>.next``
first and then swaps it in with two renames; a Checkpointer finishes a swap a
crash interrupted (``<name>.next`` complete: it wins; only ``<name>.old`` left:
it is put back) before anything reads the directory.

best_model is a copy of the step checkpoint just saved (hard links where the
file system allows), made in a tmp directory, renamed to ``best_model.next``
and swapped in: a crash at any point leaves the previous best model or the new
one, never neither. Each checkpoint's metadata names its step and the step of
the best model as of it (`Checkpointer.repair_best` restores a best model a
crash left behind).

A checkpoint that cannot be read (a truncated or garbage file) raises
`CorruptCheckpoint` naming it; `load_latest` then falls back to the newest
intact step, saying so.

Several processes (a multi-host run, see distributed.py) share one run directory on a
shared file system. Every process calls `save`, `restore` and the repairs (orbax's
writes and reads are collective: each process writes its own shards, process 0 the
metadata, the commit file and the final rename); the directory operations of this
module (removing leftovers, the swaps, best_model's copy, eviction, setting aside)
run on process 0 only, and every process waits at a barrier after them, so that
all processes see the same directory before the next step.

The module takes and returns plain pytrees: `target` arguments are example
pytrees (e.g. a freshly initialised TrainState) that give the structure,
shapes, dtypes and shardings of what is restored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import numpy as np
import orbax.checkpoint as ocp

from .faults import fault_point

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best_model"
STATE_ITEM = "state"
METADATA_ITEM = "metadata"
COMMIT_FILE = "commit_success.txt"
TMP_MARK = ".orbax-checkpoint-tmp"
NEXT_SUFFIX = ".next"   # a replacement being written
OLD_SUFFIX = ".old"     # a replaced checkpoint being removed
CORRUPT_SUFFIX = ".corrupt"   # an unreadable step checkpoint set aside by a resume

PyTree = Any


class CheckpointError(ValueError):
    """A missing, incomplete or incompatible checkpoint; str() is one line for users."""


class CorruptCheckpoint(CheckpointError):
    """A complete checkpoint whose files cannot be read (truncated, garbage)."""


# ----------------------------------------------------------------------------- processes


def _primary() -> bool:
    """True on the process that changes the checkpoint directory (process 0)."""
    return jax.process_index() == 0


def _barrier(name: str) -> None:
    """Every process waits here until all arrive (nothing with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(f"theorygrpo_jax.checkpoint:{name}")


# ----------------------------------------------------------------------------- paths


def is_checkpoint(path: Path) -> bool:
    """True when `path` is a complete (committed) checkpoint directory."""
    path = Path(path)
    return (path.is_dir() and TMP_MARK not in path.name
            and (path / COMMIT_FILE).is_file()
            and ((path / STATE_ITEM).is_dir() or (path / "_METADATA").is_file()))


def checkpoint_steps(directory: Path) -> list[int]:
    """Steps of the complete checkpoints in a `checkpoints/` directory, ascending."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir()
                  if p.name.isdigit() and is_checkpoint(p))


def resolve_checkpoint(path: str | Path) -> Path:
    """The concrete checkpoint directory meant by `path`.

    Accepts a run directory or its `checkpoints/` directory (giving the latest
    step, or `best_model` when there is no step checkpoint), a step directory
    or a `best_model` directory. Raises CheckpointError when there is none.
    """
    path = Path(path)
    expected = (f"expected a run directory, its {CHECKPOINTS_DIR}/ directory, "
                f"a step directory or {BEST_DIR}/")
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory ({expected})")
    if is_checkpoint(path):
        return path
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a directory ({expected})")
    directory = path / CHECKPOINTS_DIR if (path / CHECKPOINTS_DIR).is_dir() else path
    steps = checkpoint_steps(directory)
    if steps:
        return directory / str(steps[-1])
    if is_checkpoint(directory / BEST_DIR):
        return directory / BEST_DIR
    if (TMP_MARK in path.name or (path / STATE_ITEM).is_dir() or (path / "_METADATA").is_file()
            or (path / "_CHECKPOINT_METADATA").is_file()):
        raise CheckpointError(f"{path}: incomplete checkpoint (no {COMMIT_FILE}: "
                              f"its save was interrupted)")
    raise CheckpointError(f"{path}: no checkpoint found (looked for {CHECKPOINTS_DIR}/<step>/, "
                          f"<step>/ and {BEST_DIR}/ holding {COMMIT_FILE})")


# ----------------------------------------------------------------------------- helpers


def _json_default(value: Any) -> Any:
    """json.dumps fallback: numpy/JAX values, paths and dataclasses."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, jax.Array)):
        return np.asarray(value).tolist()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"checkpoint metadata: a value of type {type(value).__name__} "
                    f"is not JSON serialisable")


def _jsonable(metadata: dict) -> dict:
    """`metadata` as plain JSON types (numpy scalars, arrays, paths, dataclasses converted)."""
    if not isinstance(metadata, dict):
        raise TypeError(f"checkpoint metadata must be a dict, not {type(metadata).__name__}")
    return json.loads(json.dumps(metadata, default=_json_default))


def _path_str(key: tuple[str, ...]) -> str:
    return "/".join(key)


def _state_dir(checkpoint: Path) -> Path:
    """The directory of the state pytree (a bare PyTree checkpoint is its own state); absolute,
    as orbax requires."""
    checkpoint = checkpoint.absolute()
    return checkpoint / STATE_ITEM if (checkpoint / STATE_ITEM).is_dir() else checkpoint


def _saved_leaves(checkpoint: Path) -> dict[tuple[str, ...], Any]:
    """{key path: orbax value metadata (with .shape)} of the saved state."""
    try:
        with _quiet_failures():
            tree = ocp.PyTreeCheckpointHandler().metadata(_state_dir(checkpoint)).tree
        return ocp.tree.to_flat_dict(tree)
    except Exception as e:   # noqa: BLE001 - orbax raises many kinds on garbage files
        raise CorruptCheckpoint(f"{_state_dir(checkpoint)}: unreadable checkpoint "
                                f"({_first_line(e)})") from None


def _first_line(error: BaseException) -> str:
    """A reader's error in a few words: tensorstore's messages name the file they failed on and
    then dump their whole spec, which is dropped."""
    text = (str(error).strip().splitlines() or [""])[0].split(" [tensorstore_spec")[0]
    files = re.findall(r'local file "([^"]+)"', text)
    if files:
        reason = text.split(f'local file "{files[-1]}"', 1)[1].lstrip(": ")
        return f"{files[-1]}: {reason}" if reason else files[-1]
    return f"{type(error).__name__}: {text[:300]}"


def _check_compatible(checkpoint: Path, saved: dict, target: dict, what: str) -> None:
    """Raise CheckpointError at the first leaf that is missing, extra or of another shape."""
    for key, leaf in target.items():
        if key not in saved:
            raise CheckpointError(f"{checkpoint}: the checkpoint has no {what} '{_path_str(key)}'")
        saved_shape = tuple(getattr(saved[key], "shape", None) or ())
        shape = tuple(np.shape(leaf))
        if saved_shape != shape:
            raise CheckpointError(f"{checkpoint}: {what} '{_path_str(key)}' has shape "
                                  f"{saved_shape} in the checkpoint but {shape} in the target "
                                  f"(different model config?)")
    for key in saved:
        if key not in target:
            raise CheckpointError(f"{checkpoint}: the checkpoint has a {what} "
                                  f"'{_path_str(key)}' that the target lacks "
                                  f"(different state structure?)")


def _read_metadata(checkpoint: Path) -> dict:
    item = checkpoint.absolute() / METADATA_ITEM
    if not item.is_dir():
        return {}
    try:
        data = ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(item, ocp.args.JsonRestore())
    except Exception as e:   # noqa: BLE001
        raise CorruptCheckpoint(f"{item}: unreadable checkpoint metadata "
                                f"({_first_line(e)})") from None
    if not isinstance(data, dict):
        raise CorruptCheckpoint(f"{item}: the checkpoint's metadata is not a JSON object")
    return data


def read_metadata(checkpoint: str | Path) -> dict:
    """The metadata dict of a checkpoint (any path `resolve_checkpoint` accepts)."""
    return _read_metadata(resolve_checkpoint(checkpoint))


def saved_shape(checkpoint: str | Path, key: tuple[str, ...]) -> tuple[int, ...] | None:
    """The shape of one saved state entry (a key path such as ("replay", "tokens")); None when
    the checkpoint has no such entry or cannot be read."""
    try:
        leaf = _saved_leaves(resolve_checkpoint(checkpoint)).get(key)
    except CheckpointError:
        return None
    return None if leaf is None else tuple(getattr(leaf, "shape", None) or ())


@contextlib.contextmanager
def _quiet_failures() -> Iterator[None]:
    """Keep orbax's asynchronous readers quiet while they fail on a corrupt file: their
    abandoned tasks and coroutines would print tracebacks (asyncio's log, the unraisable
    hook) next to the one-line error that reports the file. A reader thread may still report
    "Event loop is closed" afterwards: that one stays silenced (`_without_closed_loop_noise`)."""
    asyncio_log = logging.getLogger("asyncio")
    level, hook = asyncio_log.level, sys.unraisablehook
    asyncio_log.setLevel(logging.CRITICAL + 1)
    sys.unraisablehook = lambda _: None
    try:
        yield
    finally:
        gc.collect()   # finalise the abandoned coroutines while the hook is silent
        sys.unraisablehook = _without_closed_loop_noise(hook)
        asyncio_log.setLevel(level)


def _without_closed_loop_noise(hook: Callable) -> Callable:
    """`hook`, except for the RuntimeError a late tensorstore callback raises into orbax's
    closed event loop (noise of a read that already failed and was reported)."""
    if getattr(hook, "drops_closed_loop_noise", False):
        return hook

    def filtered(unraisable: Any) -> None:
        error = getattr(unraisable, "exc_value", None)
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            hook(unraisable)

    filtered.drops_closed_loop_noise = True   # type: ignore[attr-defined]
    return filtered


def _restore(checkpoint: Path, target: PyTree) -> tuple[PyTree, dict]:
    """(state, metadata) of a complete checkpoint, restored into the form of `target`."""
    saved = _saved_leaves(checkpoint)
    _check_compatible(checkpoint, saved, ocp.tree.to_flat_dict(target), "state entry")
    metadata = _read_metadata(checkpoint)
    try:
        with _quiet_failures():
            state = ocp.Checkpointer(ocp.StandardCheckpointHandler()).restore(
                _state_dir(checkpoint), ocp.args.StandardRestore(target))
    except Exception as e:   # noqa: BLE001 - a truncated or garbage data file
        raise CorruptCheckpoint(f"{_state_dir(checkpoint)}: cannot read the saved state "
                                f"({_first_line(e)})") from None
    return state, metadata


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _swap(staged: Path, final: Path, step: int = -1) -> None:
    """Put the complete checkpoint `staged` in place of `final` (which may exist).

    Two renames; a crash between them leaves `<final>.old` and `staged`, which
    `Checkpointer` finishes on start-up.
    """
    old = final.with_name(final.name + OLD_SUFFIX)
    _remove(old)
    if final.exists():
        final.rename(old)
    fault_point("mid_swap", step)
    staged.rename(final)
    fault_point("after_swap", step)
    _remove(old)


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link a checkpoint file (checkpoints are never modified in place), else copy it."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _handler(step: int) -> ocp.CompositeCheckpointHandler:
    """orbax's composite handler, with a fault point after the items are written into the tmp
    directory and before orbax commits and renames it (its `finalize`)."""
    handler = ocp.CompositeCheckpointHandler()
    finalize = handler.finalize

    def finalize_after_fault_point(directory):
        fault_point("in_checkpoint_write", step)
        return finalize(directory)

    handler.finalize = finalize_after_fault_point
    return handler


# ----------------------------------------------------------------------------- loading


def load_checkpoint(path: str | Path, target: PyTree) -> tuple[PyTree, dict]:
    """(state, metadata) from a checkpoint (any path `resolve_checkpoint` accepts).

    `target` is an example pytree of the same structure (shapes, dtypes and
    shardings are taken from it). Structure or shape differences raise
    CheckpointError naming the first differing entry.
    """
    return _restore(resolve_checkpoint(path), target)


def load_latest(path: str | Path, target: PyTree,
                warn: Callable[[str], None] = log.warning) -> tuple[PyTree, dict, Path, list[Path]]:
    """(state, metadata, checkpoint, skipped) of the newest intact checkpoint of `path`.

    A run directory or its checkpoints/ directory: its step checkpoints newest
    first (then best_model when there is no step); one that cannot be read is
    skipped with one warning line naming the file, and the next is tried
    (`skipped` lists them). Any other path: that checkpoint, or its error. An
    incompatible checkpoint (another model config) is an error at once.
    """
    return _newest_intact(path, lambda c: _restore(c, target), warn)


def load_params_latest(path: str | Path, target_params: PyTree,
                       warn: Callable[[str], None] = log.warning) -> PyTree:
    """`load_params` from the newest intact checkpoint of `path` (see `load_latest`)."""
    return _newest_intact(path, lambda c: (load_params(c, target_params), None), warn)[0]


def _newest_intact(path: str | Path, load: Callable[[Path], tuple[Any, Any]],
                   warn: Callable[[str], None]) -> tuple[Any, Any, Path, list[Path]]:
    path = Path(path)
    directory = path / CHECKPOINTS_DIR if (path / CHECKPOINTS_DIR).is_dir() else path
    steps = (checkpoint_steps(directory)
             if path.is_dir() and not is_checkpoint(path) and TMP_MARK not in path.name else [])
    if not steps:
        checkpoint = resolve_checkpoint(path)
        return (*load(checkpoint), checkpoint, [])
    skipped: list[Path] = []
    for step in reversed(steps):
        checkpoint = directory / str(step)
        try:
            first, second = load(checkpoint)
        except CorruptCheckpoint as e:
            skipped.append(checkpoint)
            older = [s for s in steps if s < step]
            warn(f"warning: {e}; " + (f"falling back to step {older[-1]}" if older
                                      else "no older checkpoint"))
            continue
        return first, second, checkpoint, skipped
    raise CorruptCheckpoint(f"{directory}: no intact checkpoint (every one of steps "
                            f"{', '.join(map(str, steps))} is unreadable)")


def load_params(path: str | Path, target_params: PyTree) -> PyTree:
    """Only the `params` subtree of a checkpoint's saved state.

    The rest of the saved state may have any structure (e.g. a pretraining
    checkpoint holding just {"params", "step"}). A missing, extra or
    differently shaped parameter raises CheckpointError naming it and both shapes.
    """
    checkpoint = resolve_checkpoint(path)
    saved = _saved_leaves(checkpoint)
    saved_params = {k: v for k, v in saved.items() if k[0] == "params"}
    if not saved_params:
        tops = sorted({k[0] for k in saved})
        raise CheckpointError(f"{checkpoint}: the saved state has no 'params' "
                              f"(top-level entries: {', '.join(tops) or 'none'})")
    target = {"params": target_params}
    _check_compatible(checkpoint, saved_params, ocp.tree.to_flat_dict(target), "parameter")
    try:
        with _quiet_failures():
            restored = ocp.PyTreeCheckpointer().restore(
                _state_dir(checkpoint),
                args=ocp.args.PyTreeRestore(
                    item=target, partial_restore=True,
                    restore_args=ocp.checkpoint_utils.construct_restore_args(target)))
    except Exception as e:   # noqa: BLE001 - a truncated or garbage data file
        raise CorruptCheckpoint(f"{_state_dir(checkpoint)}: cannot read the saved parameters "
                                f"({_first_line(e)})") from None
    return restored["params"]


# ----------------------------------------------------------------------------- writing


def run_dir_of(checkpoint_path: str | Path) -> Path:
    """The run directory that holds a checkpoint path (run dir, checkpoints/, or a step dir)."""
    path = Path(checkpoint_path)
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / CHECKPOINTS_DIR).is_dir():
            return candidate
    return path


class Checkpointer:
    """Saves and restores the checkpoints of one run directory (synchronously).

    `save(step, ...)` writes `run_dir/checkpoints/<step>/` and keeps the newest
    `keep` step checkpoints; `best=True` also replaces `checkpoints/best_model/`.
    Creating a Checkpointer removes leftovers of an interrupted save. With several
    processes every one of them creates it and calls each method (see the module
    docstring).
    """

    def __init__(self, run_dir: str | Path, keep: int = 3):
        if keep < 1:
            raise ValueError(f"Checkpointer: keep must be at least 1, got {keep}")
        self.run_dir = Path(run_dir).absolute()   # orbax requires absolute paths
        self.directory = self.run_dir / CHECKPOINTS_DIR
        self.keep = keep
        if _primary():
            self.directory.mkdir(parents=True, exist_ok=True)
            self._cleanup()
        _barrier("init")

    # -- queries

    def all_steps(self) -> list[int]:
        """Steps of the complete step checkpoints, ascending."""
        return checkpoint_steps(self.directory)

    def latest_step(self) -> int | None:
        """The newest complete step checkpoint, or None."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def path(self, which: int | str = "latest") -> Path:
        """Directory of checkpoint `which` (a step, "latest" or "best"); CheckpointError if none."""
        if which == "best":
            path = self.directory / BEST_DIR
            if not is_checkpoint(path):
                raise CheckpointError(f"{path}: no best checkpoint saved")
            return path
        if which == "latest":
            step = self.latest_step()
            if step is None:
                raise CheckpointError(f"{self.directory}: no checkpoint saved")
            return self.directory / str(step)
        if isinstance(which, (int, np.integer)) and not isinstance(which, bool):
            path = self.directory / str(int(which))
            if not is_checkpoint(path):
                steps = " ".join(map(str, self.all_steps())) or "none"
                raise CheckpointError(f"{path}: no checkpoint for step {which} "
                                      f"(saved steps: {steps})")
            return path
        raise CheckpointError(f"checkpoint selector must be a step, 'latest' or 'best', "
                              f"not {which!r}")

    # -- save / restore

    def save(self, step: int, state: PyTree, metadata: dict, best: bool = False) -> Path:
        """Write checkpoint `step` (and best_model when `best`); returns the step directory.

        Returns only when the checkpoint is on disk. Evicts all but the newest
        `keep` step checkpoints afterwards.
        """
        step = int(step)
        if step < 0:
            raise ValueError(f"Checkpointer.save: step must be >= 0, got {step}")
        metadata = _jsonable(metadata)
        path = self.directory / str(step)
        self._write(path, state, metadata, step)
        fault_point("after_checkpoint", step)
        if _primary():
            if best:
                self._copy_best(path, step)
            self._evict()
            fault_point("after_evict", step)
        _barrier("saved")
        return path

    def restore(self, target: PyTree, which: int | str = "latest") -> tuple[PyTree, dict]:
        """(state, metadata) of checkpoint `which` (a step, "latest" or "best").

        `target` is an example pytree giving structure, shapes, dtypes and shardings.
        """
        return _restore(self.path(which), target)

    # -- repairs after a crash

    def repair_best(self, best_step: int | None, warn: Callable[[str], None] = log.warning) -> None:
        """Make best_model the checkpoint of `best_step` when a crash left an older one (or none)
        there and that step's checkpoint is still on disk (a crash during the best-model save
        of step s leaves checkpoints/<s>, whose metadata names s as the best step)."""
        if best_step is None:
            return
        best = self.directory / BEST_DIR
        try:
            current = _read_metadata(best).get("step") if is_checkpoint(best) else None
        except CheckpointError:
            current = None
        source = self.directory / str(int(best_step))
        if current != best_step and is_checkpoint(source):
            warn(f"warning: {best}: holds step {current}, not the best step {best_step}: "
                 f"copying {source} there")
            if _primary():
                self._copy_best(source, int(best_step))
            _barrier("repair_best")

    def discard_after(self, step: int, corrupt: list[Path] = ()) -> list[Path]:
        """Take the step checkpoints after `step` out of the run (a resume from `step` makes them
        a discarded future): unreadable ones (`corrupt`) are renamed <step>.corrupt and kept
        for inspection, the others removed. Returns what was taken out."""
        gone = []
        corrupt = {Path(p).absolute() for p in corrupt}
        for later in self.all_steps():
            if later <= step:
                continue
            path = self.directory / str(later)
            gone.append(path)
            if not _primary():
                continue
            if path.absolute() in corrupt:
                aside = path.with_name(path.name + CORRUPT_SUFFIX)
                _remove(aside)
                path.rename(aside)
            else:
                _remove(path)
        _barrier("discard_after")
        return gone

    # -- internals

    def _write(self, final: Path, state: PyTree, metadata: dict, step: int = -1) -> None:
        """Save atomically to `final`, replacing a complete checkpoint there by a swap."""
        args = ocp.args.Composite(**{STATE_ITEM: ocp.args.StandardSave(state),
                                     METADATA_ITEM: ocp.args.JsonSave(metadata)})
        checkpointer = ocp.Checkpointer(_handler(step))
        replacing = is_checkpoint(final)   # read before process 0 changes anything
        staged = final.with_name(final.name + NEXT_SUFFIX)
        if _primary():
            if final.exists() and not replacing:
                log.warning("removing incomplete checkpoint %s", final)
                _remove(final)
            if replacing:
                _remove(staged)
        _barrier(f"write:{step}")
        if not replacing:
            checkpointer.save(final, args)   # collective: every process writes its shards
            return
        checkpointer.save(staged, args)
        if _primary():
            _swap(staged, final, step)
        _barrier(f"swap:{step}")

    def _copy_best(self, source: Path, step: int) -> None:
        """best_model := a copy of the complete checkpoint `source`: copied into a tmp dir (which
        no reader lists), renamed to best_model.next, swapped in."""
        best = self.directory / BEST_DIR
        tmp = best.with_name(BEST_DIR + NEXT_SUFFIX + TMP_MARK)
        staged = best.with_name(BEST_DIR + NEXT_SUFFIX)
        _remove(tmp)
        _remove(staged)
        shutil.copytree(source, tmp, copy_function=_link_or_copy)
        fault_point("in_best_copy", step)
        tmp.rename(staged)
        fault_point("best_staged", step)
        _swap(staged, best, step)

    def _evict(self) -> None:
        for step in self.all_steps()[:-self.keep]:
            _remove(self.directory / str(step))

    def _cleanup(self) -> None:
        """Remove tmp dirs of interrupted saves; finish an interrupted replacement."""
        for path in sorted(self.directory.iterdir()):
            if TMP_MARK in path.name:
                log.warning("removing leftover of an interrupted save: %s", path)
                _remove(path)
        for path in sorted(self.directory.iterdir()):
            if path.name.endswith(NEXT_SUFFIX):
                # A complete replacement (orbax renames it into place only when complete).
                final = path.with_name(path.name[:-len(NEXT_SUFFIX)])
                if is_checkpoint(path):
                    _swap(path, final)
                else:
                    _remove(path)
        for path in sorted(self.directory.iterdir()):
            if path.name.endswith(OLD_SUFFIX):
                final = path.with_name(path.name[:-len(OLD_SUFFIX)])
                if is_checkpoint(final) or not is_checkpoint(path):
                    _remove(path)
                else:
                    path.rename(final)
