"""The training step on a 2-device CPU mesh (forced host devices): the batch is sharded, the
parameters stay replicated, and the step gives the single-device metrics."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
import jax
from theorygrpo_jax import train as T
from theorygrpo_jax.config import load_config
cfg = load_config(sys.argv[1], {"grpo.group_size": 4, "grpo.prompts_per_step": 2})
run = T.setup_run(cfg)
metrics, tokens, scores = T.train_step(run)
leaf = jax.tree.leaves(run.state.params)[0]
print(json.dumps({"devices": jax.device_count(), "metrics": metrics,
                  "replicated": bool(leaf.sharding.is_fully_replicated),
                  "batch_sharded": run.batch_sharding is not None}))
"""


def _run(devices: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "configs" / "smoke.yaml")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_device_step_matches_one_device():
    two, one = _run(2), _run(1)
    assert two["devices"] == 2 and two["batch_sharded"] and two["replicated"]
    assert one["devices"] == 1 and not one["batch_sharded"]
    # sampling keys are per row, so both meshes sample the same theories
    for key in ("success_rate", "mean_length", "max_length"):
        assert two["metrics"][key] == one["metrics"][key], key
    for key in ("mean_reward", "total_loss", "kl", "entropy"):   # sums reduced in another order
        assert abs(two["metrics"][key] - one["metrics"][key]) < 1e-4, key
