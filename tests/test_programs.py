"""Step programs kept on disk as exported StableHLO and loaded without tracing
(theorygrpo_jax.programs). Each "run" below is a fresh Python process, as a later run is."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from theorygrpo_jax import grpo, programs
from theorygrpo_jax import train as T
from theorygrpo_jax.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")

# One run of two small jitted functions through programs.Program: prints how often the
# Python function was traced, what was traced and loaded, the outputs, and whether the
# program donated its argument.
TOY = """
import json, sys, warnings
import jax, jax.numpy as jnp, numpy as np
from theorygrpo_jax import programs
directory, n, static = sys.argv[1], int(sys.argv[2]), sys.argv[3]
traced = []
def double_plus(x, y):
    traced.append(x.shape)   # runs when the function is traced, not when it is run
    return {"sum": 2 * x + y, "max": jnp.max(x)}
program = programs.Program(jax.jit(double_plus), "double_plus", static, directory)
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    out = program(jnp.arange(float(n)), jnp.ones(n))
    again = program(jnp.arange(float(n)), jnp.ones(n))   # the same process: held
inc = programs.Program(jax.jit(lambda x: x + 1, donate_argnums=(0,)), "inc", static, directory,
                       donate_argnums=(0,))
x = jnp.zeros(4)
y = inc(x)
print(json.dumps({"python_traces": len(traced), **programs.STATS,
                  "sum": np.asarray(out["sum"]).tolist(), "max": float(out["max"]),
                  "again": np.asarray(again["sum"]).tolist(), "donated": x.is_deleted(),
                  "inc": float(y.sum()), "warnings": [str(w.message) for w in seen]}))
"""


def _run(script: str, *args: str) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_later_process_loads_the_program_without_tracing(tmp_path):
    first = _run(TOY, str(tmp_path), "6", "k")
    assert (first["python_traces"], first["traced"], first["loaded"]) == (1, 2, 0)
    assert sorted(p.name.split("-")[0] for p in tmp_path.glob("*.exported")) == [
        "double_plus", "inc"]
    second = _run(TOY, str(tmp_path), "6", "k")
    assert (second["python_traces"], second["traced"], second["loaded"]) == (0, 0, 2)
    # 2 x (0..5) + 1 and max 5, computed by the loaded program
    assert second["sum"] == second["again"] == first["sum"] == [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]
    assert second["max"] == 5.0
    assert first["donated"] and second["donated"] and second["inc"] == 4.0
    assert not second["warnings"]


def test_other_shapes_and_other_settings_are_other_programs(tmp_path):
    _run(TOY, str(tmp_path), "6", "k")
    assert _run(TOY, str(tmp_path), "4", "k")["python_traces"] == 1       # another shape
    assert _run(TOY, str(tmp_path), "6", "other")["python_traces"] == 1   # another config
    assert len(list(tmp_path.glob("double_plus-*.exported"))) == 3
    assert _run(TOY, str(tmp_path), "4", "k")["python_traces"] == 0


def test_a_damaged_file_is_traced_again_with_a_warning(tmp_path):
    _run(TOY, str(tmp_path), "2", "k")
    (path,) = tmp_path.glob("double_plus-*.exported")
    path.write_bytes(path.read_bytes()[:100])   # truncated, as by a full disk
    again = _run(TOY, str(tmp_path), "2", "k")
    assert again["python_traces"] == 1 and again["sum"] == [1.0, 3.0]
    assert any("cannot load this kept program" in w for w in again["warnings"])
    clean = _run(TOY, str(tmp_path), "2", "k")   # rewritten whole: the next load is clean
    assert clean["python_traces"] == 0 and not clean["warnings"]


# Two smoke-config steps with the compilation cache (and so the kept programs) in argv[1];
# prints what was traced and loaded and a digest of the final state and metrics.
STEPS = """
import hashlib, json, sys
from pathlib import Path
import jax, numpy as np
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
from theorygrpo_jax import programs, train as T
from theorygrpo_jax.config import load_config
config = load_config(sys.argv[2], {})
state, inputs, fns = T.place(config, T.init_state(config))
for _ in range(2):
    state, out = T.train_step(state, inputs, fns, config)
digest = hashlib.sha256()
for leaf in jax.tree.leaves(jax.device_get((state, out.metrics, out.tokens))):
    digest.update(np.asarray(leaf).tobytes())
print(json.dumps({**programs.STATS, "digest": digest.hexdigest(),
                  "kept": sorted(p.name.split("-")[0] for p in
                                 (programs.programs_directory() or Path("-")).glob("*.exported"))}))
"""

# The same two steps with nothing kept (no compilation cache).
PLAIN = STEPS.replace('jax.config.update("jax_compilation_cache_dir", sys.argv[1])', "")


def test_training_steps_from_kept_programs_equal_plainly_jitted_ones(tmp_path):
    first = _run(STEPS, str(tmp_path), SMOKE)
    assert first["kept"] == ["rollout"] and (first["traced"], first["loaded"]) == (1, 0)
    second = _run(STEPS, str(tmp_path), SMOKE)
    assert (second["traced"], second["loaded"]) == (0, 1)
    plain = _run(PLAIN, "-", SMOKE)
    assert (plain["traced"], plain["loaded"]) == (0, 0)
    assert second["digest"] == first["digest"] == plain["digest"]   # bit for bit


def test_only_the_newest_programs_are_kept(tmp_path):
    for i in range(5):
        path = tmp_path / f"p{i}{programs.SUFFIX}"
        path.write_bytes(b"x")
        os.utime(path, (1000 + i, 1000 + i))
    (tmp_path / "other.txt").write_bytes(b"x")
    programs._forget_oldest(tmp_path, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other.txt", "p2.exported", "p3.exported", "p4.exported"]


def test_hooks_mesh_and_patched_advantages_are_not_kept():
    config = load_config(SMOKE, {})
    assert T._program_key(config, None, (), grpo.group_advantages) is not None
    assert T._program_key(config, None, (np.mean,), grpo.group_advantages) is None
    assert T._program_key(config, None, (), lambda *a: a) is None   # a notebook's patch
    assert T._program_key(config, object(), (), grpo.group_advantages) is None
