"""Step programs kept on disk as exported StableHLO, so that a later run skips tracing them.

JAX's persistent compilation cache saves XLA's compile, but every run still traces and
lowers each program in Python to find its cache key, and for the rollout (the sampler's
loops, the reward, the catalogue's keys) that is most of a warm start. Here a program,
once traced, is kept as its `jax.export.Exported` (the lowered StableHLO module and its
argument and result trees) under a key made of everything that decides it; a later run
loads that and jits `exported.call`, whose compile the persistent cache then finds. The
executable itself is never serialized here: XLA:CPU failed to run deserialized
executables beside others (docs/performance.md, start-up), while this path compiles (or
loads from JAX's own cache) like any jitted function.

The key: this package's files (so any edit invalidates every program), jax and jaxlib, the
backend and its devices, XLA_FLAGS and the JAX settings that change programs, the
program's name and static settings (the run's config as plain data) and the arguments'
tree, shapes, dtypes and placements. Used only where that is the whole story: one process,
one device, no user hook (a hook's code lives outside this package and could change under
the same name). A file that cannot be read is replaced by a fresh trace, with a warning.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

# JAX settings that change what a traced function lowers to.
_JAX_SETTINGS = ("jax_enable_x64", "jax_default_matmul_precision", "jax_numpy_rank_promotion",
                 "jax_default_prng_impl", "jax_threefry_partitionable")
FORMAT = 1   # bump when the file layout below changes
SUFFIX = ".exported"
KEEP = 64    # programs kept per directory, the most recently written (each ~1-2 MB; every edit
             # to the package makes new ones, and nothing else removes the old)
STATS = {"loaded": 0, "traced": 0}   # programs this process read from disk / traced


@functools.lru_cache(maxsize=1)
def package_digest() -> str:
    """sha256 over this package's files (names and bytes; caches of compiled Python skipped)."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def environment_key() -> str:
    """What outside the program decides it: versions, backend, devices, flags."""
    import jaxlib
    devices = jax.devices()
    parts = [str(FORMAT), jax.__version__, getattr(jaxlib, "__version__", "?"),
             jax.default_backend(), str(len(devices)), devices[0].device_kind,
             str(jax.process_count()), os.environ.get("XLA_FLAGS", ""),
             *(f"{name}={getattr(jax.config, name, None)}" for name in _JAX_SETTINGS),
             sys.version.split()[0], package_digest()]
    return "\n".join(parts)


def signature(args: tuple) -> tuple:
    """The arguments' tree and, per leaf, what a program depends on: shape, dtype, weak type
    and placement (an uncommitted array compiles apart from a committed one). Hashable, and
    cheap enough to take at every call; its repr is the arguments' part of a file's key."""
    leaves, treedef = jax.tree.flatten(args)

    def leaf(x: Any) -> tuple:
        if isinstance(x, jax.Array):
            where = x.sharding if getattr(x, "committed", True) else "uncommitted"
            return (x.shape, str(x.dtype), x.weak_type, where)
        if isinstance(x, np.ndarray | np.generic):
            return (np.shape(x), str(x.dtype), "host")
        return (type(x).__name__,)   # a Python scalar: weakly typed, its value is traced
    return (treedef, tuple(leaf(x) for x in leaves))


class Program:
    """`jitted` (a jax.jit function, whose `donate_argnums` are passed again here) kept as an
    exported module in `directory` under `name` and `static_key`, one per argument
    signature, and loaded from there in a later run instead of traced. Call it as `jitted`
    (positional arguments)."""

    def __init__(self, jitted: Callable, name: str, static_key: str, directory: str | Path,
                 donate_argnums: tuple[int, ...] = ()):
        self.jitted, self.name, self.directory = jitted, name, Path(directory)
        self.donate_argnums = tuple(donate_argnums)
        self.static_key = f"{environment_key()}\n{name}\n{static_key}"
        self.programs: dict[tuple, Callable] = {}   # signature -> jit(exported.call)

    def __call__(self, *args: Any) -> Any:
        key = signature(args)
        program = self.programs.get(key)
        if program is None:
            exported = self._read_or_export(self.path(key), args)
            program = self.programs[key] = jax.jit(exported.call,
                                                   donate_argnums=self.donate_argnums)
        return program(*args)

    def path(self, key: tuple) -> Path:
        digest = hashlib.sha256(f"{self.static_key}\n{key!r}".encode()).hexdigest()[:32]
        return self.directory / f"{self.name}-{digest}{SUFFIX}"

    def _read_or_export(self, path: Path, args: tuple) -> Any:
        if path.is_file():
            try:
                exported = pickle.loads(path.read_bytes())
                if not isinstance(exported, jax.export.Exported):
                    raise TypeError(type(exported).__name__)
                STATS["loaded"] += 1
                return exported
            except Exception as e:   # unreadable, truncated, from another build: trace again
                warnings.warn(f"{path}: cannot load this kept program ({type(e).__name__}); "
                              f"tracing it again", stacklevel=3)
        exported = jax.export.export(self.jitted)(*args)
        STATS["traced"] += 1
        try:
            # the vjp hook is a closure (not picklable), and the update differentiates
            # inside its own program, never through this one
            blob = pickle.dumps(dataclasses.replace(exported, _get_vjp=None),
                                protocol=pickle.HIGHEST_PROTOCOL)
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(blob)
            os.replace(tmp, path)   # whole or absent: a reader never sees half a file
            _forget_oldest(self.directory, KEEP)
        except (OSError, pickle.PicklingError, TypeError, AttributeError):
            pass   # not picklable here, or the disk refused: the run goes on traced
        return exported


def _forget_oldest(directory: Path, keep: int) -> None:
    """Remove all but the `keep` most recently written programs of `directory`."""
    def written(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:   # removed meanwhile by another process
            return float("inf")
    kept = sorted(directory.glob(f"*{SUFFIX}"), key=written, reverse=True)
    for path in kept[keep:]:
        try:
            path.unlink()
        except OSError:
            pass


def programs_directory() -> Path | None:
    """Where exported programs are kept: `programs/` in the compilation cache directory
    (`cli.use_compilation_cache`), None when that cache is off or the run cannot use them
    (several processes or devices)."""
    where = jax.config.jax_compilation_cache_dir
    if not where or jax.process_count() > 1 or jax.device_count() > 1:
        return None
    return Path(where) / "programs"


def maybe_kept(jitted: Callable, name: str, static_key: str | None,
               donate_argnums: tuple[int, ...] = ()) -> Callable:
    """`Program(jitted, ...)` where programs can be kept (`programs_directory`) and
    `static_key` is given (None: the caller's program is not fully described by it), else
    `jitted` unchanged."""
    directory = programs_directory()
    if directory is None or static_key is None:
        return jitted
    return Program(jitted, name, static_key, directory, donate_argnums)
