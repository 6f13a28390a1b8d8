"""User functions named in a config: `"package.module:function"` <-> the function itself.

Two config keys take a user function (a *hook*):

    reward.extra:        [{name, weight, fn: "pkg.mod:fn"}, ...]   fn(TheoryRecord) -> scalar
    grpo.advantage_fn:   "pkg.mod:fn"   fn(rewards [B], group_size, scale_by_std, eps) -> [B]

A hook is given as a name (YAML, `--set`) or, from Python, as the function. The
config holds the resolved function (so equal configs are those with the same
function objects, and everything compiled per config -- `reward.score_batch`,
`train.step_functions` -- is compiled again for a different or re-defined
function), and writes its name back to YAML (`name_of`), so that a run's
config.yaml loads in another process.

A module is found on `sys.path`, then in the current directory (as `python -m`
would): a notebook keeps its hooks in a file next to it (`my_hooks.py`, named
"my_hooks:fn"). Functions of `__main__` (defined in a notebook cell or a script)
are accepted, and written as "__main__:fn", but only the process that defined
them can load that name: a run directory that stands alone needs the hook in a
module file. Lambdas and functions defined inside other functions have no
importable name and are refused when the config is written (`name_of`).

Errors are `HookError`s (a ValueError) with a one-line message naming the key.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable


class HookError(ValueError):
    """A hook name that does not resolve, or a function that cannot be named; one line."""


MAIN = "__main__"


def _import(module: str, key: str, name: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        missing = e.name or module
        if missing != module and not module.startswith(missing + "."):   # it imports a missing one
            raise HookError(f"{key}: {name!r}: importing {module!r} failed: no module named "
                            f"{missing!r}") from None
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.append(cwd)    # as `python -m` would: the current directory's modules
            try:
                return importlib.import_module(module)
            except ModuleNotFoundError:
                pass
        raise HookError(f"{key}: {name!r}: no module named {missing!r} (the module must be "
                        f"importable: installed, on PYTHONPATH or in the current "
                        f"directory)") from None
    except Exception as e:   # noqa: BLE001 - the user's module failed while importing
        message = " ".join(str(e).split())
        raise HookError(f"{key}: {name!r}: importing {module!r} failed: "
                        f"{type(e).__name__}: {message}") from None


def resolve(hook: str | Callable, key: str) -> Callable:
    """The function `hook` names ("package.module:function", the function's qualified name
    after the colon may be dotted: "mod:Class.method"), or `hook` itself when it is callable.
    `key` names the config key in errors (e.g. "grpo.advantage_fn")."""
    if callable(hook):
        return hook
    if not isinstance(hook, str):
        raise HookError(f"{key}: expected a function or its name \"package.module:function\", "
                        f"got {hook!r}")
    module, sep, qualname = hook.strip().partition(":")
    if not sep or not module or not qualname:
        raise HookError(f"{key}: {hook!r}: expected \"package.module:function\" (a module, a "
                        f"colon, a function name)")
    if module == MAIN and MAIN not in sys.modules:   # pragma: no cover - always imported
        raise HookError(f"{key}: {hook!r}: no __main__ module")
    target: Any = _import(module, key, hook)
    owner = f"module {module!r}"
    for part in qualname.split("."):
        if not hasattr(target, part):
            where = ("was defined in a notebook or script (__main__) that is not this process: "
                     "move it into a module file and name it \"module:function\""
                     if module == MAIN else f"{owner} has no attribute {part!r}")
            raise HookError(f"{key}: {hook!r}: {where}")
        target = getattr(target, part)
        owner = repr(f"{module}:{qualname[:qualname.index(part) + len(part)]}")
    if not callable(target):
        raise HookError(f"{key}: {hook!r} is not callable (a {type(target).__name__})")
    return target


def name_of(fn: Callable, key: str) -> str:
    """"module:qualname" of a function, which `resolve` loads again (`__main__` functions: only
    in this process; a function re-defined since: its newest definition). HookError naming
    `key` for lambdas, functions defined inside functions, and callables without a
    module-level name."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname:
        raise HookError(f"{key}: {fn!r} has no importable name: pass a module-level function "
                        f"(or its name \"package.module:function\")")
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise HookError(f"{key}: {module}:{qualname} cannot be loaded back from config.yaml "
                        f"(a lambda or a function defined inside a function): define it at "
                        f"module level in a module file and name it \"module:function\"")
    name = f"{module}:{qualname}"
    try:
        resolve(name, key)   # a re-defined function (a reloaded module): the name loads its
    except HookError:        # newest definition, as a later process would
        raise HookError(f"{key}: {name} cannot be loaded back from config.yaml (no such "
                        f"name in its module): define it at module level under its own "
                        f"name") from None
    return name


def is_main(fn: Callable) -> bool:
    """True for a function of `__main__` (a notebook cell, a script): its name loads only in
    the process that defined it."""
    return getattr(fn, "__module__", None) == MAIN


__all__ = ["HookError", "resolve", "name_of", "is_main"]
