"""Compiled programs are kept in .cache/jax (git-ignored), so a second `make test` skips most
XLA compiles; scripts the tests start in subprocesses inherit the same directory."""

import os
from pathlib import Path

os.environ.setdefault("THEORYGRPO_JAX_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "jax"))

from theorygrpo_jax.cli import use_compilation_cache  # noqa: E402

use_compilation_cache()
