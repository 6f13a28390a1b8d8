"""Shared command-line plumbing: the seed's override flags, one-line user errors and the
on-disk compilation cache."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any, Iterator, NoReturn

import yaml

# The seed's flags and the config keys they set.
FLAG_KEYS = {
    "num_episodes": ("train.num_episodes", int),
    "group_size": ("grpo.group_size", int),
    "learning_rate": ("grpo.learning_rate", float),
    "temperature": ("grpo.temperature", float),
    "kl_coef": ("grpo.kl_coef", float),
    "clip_range": ("grpo.clip_range", float),
    "entropy_coef": ("grpo.entropy_coef", float),
    "log_interval": ("train.log_interval", int),
    "save_interval": ("train.save_interval", int),
    "eval_episodes": ("train.eval_episodes", int),
    "seed": ("train.seed", int),
    "max_minutes": ("train.max_minutes", float),
}
FLAG_NOTES = {"num_episodes": " (the total number of steps of the run, a resumed one included; "
                             "not a number of further steps)"}
SWITCH_KEYS = {"use_curriculum": "train.use_curriculum", "use_priority_buffer": "train.use_priority_buffer"}


class UserError(Exception):
    """An error to show as one line, without a traceback."""


def fail(message: str) -> NoReturn:
    raise UserError(message)


def use_compilation_cache() -> str | None:
    """Keep compiled XLA programs on disk between runs; returns the directory (None: off).

    On a CPU the sampler and the update take tens of seconds to compile, most of
    a short run; a later run with the same shapes and flags loads them instead.
    Directory: JAX's own $JAX_COMPILATION_CACHE_DIR when set (clusters point it at shared
    scratch: it wins over everything below), else $THEORYGRPO_JAX_CACHE, else
    $XDG_CACHE_HOME/theorygrpo_jax (default ~/.cache/theorygrpo_jax); with
    THEORYGRPO_JAX_CACHE=off and no JAX_COMPILATION_CACHE_DIR it does nothing (no cache).
    Call it before the first jit compile.
    """
    import jax

    standard = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if standard:   # JAX read it at import; set again only if it was exported after that
        if jax.config.jax_compilation_cache_dir != standard:
            jax.config.update("jax_compilation_cache_dir", standard)
        return standard
    where = os.environ.get("THEORYGRPO_JAX_CACHE")
    if where is not None and where.strip().lower() in ("off", "0", "none", "false"):
        return None
    if not where:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        where = os.path.join(base, "theorygrpo_jax")
    jax.config.update("jax_compilation_cache_dir", where)
    return where


def add_override_flags(parser: argparse.ArgumentParser) -> None:
    for flag, (key, kind) in FLAG_KEYS.items():
        parser.add_argument(f"--{flag}", type=kind, help=f"sets {key}{FLAG_NOTES.get(flag, '')}")
    for flag, key in SWITCH_KEYS.items():
        parser.add_argument(f"--{flag}", action="store_true", default=None, help=f"sets {key}: true")
    add_set_flag(parser)


def add_set_flag(parser: argparse.ArgumentParser) -> None:
    """`--set SECTION.KEY=VALUE`, repeatable: any config key, the value read as YAML."""
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="set any config key (YAML value), e.g. --set grpo.target_kl=0.02")


def set_overrides(items: list[str]) -> dict[str, Any]:
    """{"section.key": value} from `--set` items; a malformed item is a UserError."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            fail(f"--set {item!r}: expected SECTION.KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for flag, (key, _) in FLAG_KEYS.items():
        if getattr(args, flag) is not None:
            out[key] = getattr(args, flag)
    for flag, key in SWITCH_KEYS.items():
        if getattr(args, flag):
            out[key] = True
    out.update(set_overrides(args.set))
    return out


def _flat(result: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: {'a': {'b': 1}} -> {'a.b': 1}."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def print_result(result: dict[str, Any], as_json: bool) -> None:
    """A benchmark's result: one JSON object, or one aligned `key value` line per entry
    (nested entries as dotted keys, floats to 4 significant digits)."""
    if as_json:
        print(json.dumps(result))
        return
    flat = _flat(result)
    width = max(len(k) for k in flat) + 2
    for key, value in flat.items():
        print(f"{key:{width}s}{value:.4g}" if isinstance(value, float) else f"{key:{width}s}{value}")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the project's input errors into `error: <message>` and exit status 2, and an
    operating-system error (no permission, disk full, a file where a directory should be)
    into `error: <file>: <reason>` and exit status 1.

    Set THEORYGRPO_DEBUG=1 to see the traceback instead.
    """
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .grammar.text import TheoryError

    try:
        yield
    except (UserError, ConfigError, TheoryError, CheckpointError, ValueError, FileNotFoundError) as e:
        if os.environ.get("THEORYGRPO_DEBUG"):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:
        quiet_broken_pipe()
    except OSError as e:
        if os.environ.get("THEORYGRPO_DEBUG"):
            raise
        where = e.filename if e.filename is not None else "error"
        print(f"error: {where}: {e.strerror or e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def _one_line(error: BaseException) -> str:
    """An error's message on one line (a library's multi-line message joined)."""
    return " ".join(str(error).split("\n")).strip()


def quiet_broken_pipe() -> None:
    """The reader of stdout went away (`theorygrpo-score ... | head`): exit quietly, as Unix tools
    do, without Python's 'Exception ignored ... BrokenPipeError' when stdout is flushed at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(141)   # 128 + SIGPIPE, what a shell reports for a tool killed by the pipe
