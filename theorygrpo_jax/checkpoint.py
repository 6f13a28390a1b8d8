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
Replacing an existing checkpoint (best_model, or a step saved again after a
resume) writes ``<name>.next`` first and then swaps it in with two renames.

The module takes and returns plain pytrees: `target` arguments are example
pytrees (e.g. a freshly initialised TrainState) that give the structure,
shapes, dtypes and shardings of what is restored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best_model"
STATE_ITEM = "state"
METADATA_ITEM = "metadata"
COMMIT_FILE = "commit_success.txt"
TMP_MARK = ".orbax-checkpoint-tmp"
NEXT_SUFFIX = ".next"   # a replacement being written
OLD_SUFFIX = ".old"     # a replaced checkpoint being removed

PyTree = Any


class CheckpointError(ValueError):
    """A missing, incomplete or incompatible checkpoint; str() is one line for users."""


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
        tree = ocp.PyTreeCheckpointHandler().metadata(_state_dir(checkpoint)).tree
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{checkpoint}: cannot read the checkpoint: "
                              f"{str(e).splitlines()[0]}") from None
    return ocp.tree.to_flat_dict(tree)


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
    return ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(item, ocp.args.JsonRestore())


def _restore(checkpoint: Path, target: PyTree) -> tuple[PyTree, dict]:
    """(state, metadata) of a complete checkpoint, restored into the form of `target`."""
    saved = _saved_leaves(checkpoint)
    _check_compatible(checkpoint, saved, ocp.tree.to_flat_dict(target), "state entry")
    state = ocp.Checkpointer(ocp.StandardCheckpointHandler()).restore(
        _state_dir(checkpoint), ocp.args.StandardRestore(target))
    return state, _read_metadata(checkpoint)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _swap(staged: Path, final: Path) -> None:
    """Put the complete checkpoint `staged` in place of `final` (which may exist).

    Two renames; a crash between them leaves `<final>.old` and `staged`, which
    `Checkpointer` finishes on start-up.
    """
    old = final.with_name(final.name + OLD_SUFFIX)
    _remove(old)
    if final.exists():
        final.rename(old)
    staged.rename(final)
    _remove(old)


# ----------------------------------------------------------------------------- loading


def load_checkpoint(path: str | Path, target: PyTree) -> tuple[PyTree, dict]:
    """(state, metadata) from a checkpoint (any path `resolve_checkpoint` accepts).

    `target` is an example pytree of the same structure (shapes, dtypes and
    shardings are taken from it). Structure or shape differences raise
    CheckpointError naming the first differing entry.
    """
    return _restore(resolve_checkpoint(path), target)


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
    restored = ocp.PyTreeCheckpointer().restore(
        _state_dir(checkpoint),
        args=ocp.args.PyTreeRestore(item=target, partial_restore=True,
                                    restore_args=ocp.checkpoint_utils.construct_restore_args(target)))
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
    Creating a Checkpointer removes leftovers of an interrupted save.
    """

    def __init__(self, run_dir: str | Path, keep: int = 3):
        if keep < 1:
            raise ValueError(f"Checkpointer: keep must be at least 1, got {keep}")
        self.run_dir = Path(run_dir).absolute()   # orbax requires absolute paths
        self.directory = self.run_dir / CHECKPOINTS_DIR
        self.keep = keep
        self.directory.mkdir(parents=True, exist_ok=True)
        self._cleanup()

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
        self._write(path, state, metadata)
        if best:
            self._write(self.directory / BEST_DIR, state, metadata)
        self._evict()
        return path

    def restore(self, target: PyTree, which: int | str = "latest") -> tuple[PyTree, dict]:
        """(state, metadata) of checkpoint `which` (a step, "latest" or "best").

        `target` is an example pytree giving structure, shapes, dtypes and shardings.
        """
        return _restore(self.path(which), target)

    # -- internals

    def _write(self, final: Path, state: PyTree, metadata: dict) -> None:
        """Save atomically to `final`, replacing a complete checkpoint there by a swap."""
        args = ocp.args.Composite(**{STATE_ITEM: ocp.args.StandardSave(state),
                                     METADATA_ITEM: ocp.args.JsonSave(metadata)})
        checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
        if final.exists() and not is_checkpoint(final):
            log.warning("removing incomplete checkpoint %s", final)
            _remove(final)
        if not final.exists():
            checkpointer.save(final, args)
            return
        staged = final.with_name(final.name + NEXT_SUFFIX)
        _remove(staged)
        checkpointer.save(staged, args)
        _swap(staged, final)

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
