"""The training step on 2- and 4-device CPU meshes (forced host devices): the batch is sharded,
the parameters stay replicated, and the step gives the single-device step's theories,
metrics, gradients' moments and updated parameters (to float rounding)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
import jax
from theorygrpo_jax import train as T
from theorygrpo_jax.config import load_config
cfg = load_config(sys.argv[1], {"grpo.group_size": 4, "grpo.prompts_per_step": 2})
state, inputs, fns = T.place(cfg, T.init_state(cfg))
state, out = T.train_step(state, inputs, fns, cfg)
metrics = {k: float(v) for k, v in jax.device_get(out.metrics).items()}
leaf = jax.tree.leaves(state.params)[0]
print(json.dumps({"devices": jax.device_count(), "metrics": metrics,
                  "replicated": bool(leaf.sharding.is_fully_replicated),
                  "batch_sharded": inputs.batch_sharding is not None}))
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


SAMPLER_SCRIPT = """
import json
import jax, jax.numpy as jnp, numpy as np
from theorygrpo_jax import model as M, sampler as S, tasks
from theorygrpo_jax.grammar import automaton
config = M.ModelConfig.tiny()
params = M.init_params(config, jax.random.PRNGKey(0))
tables = automaton.load_tables()
tokens, prompt_len = tasks.pack_prompts([["BOS"], ["BOS", "GAUGE", "SU3"]] * 4, config.max_len)
mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
key = jax.random.PRNGKey(7)
one = S.sample_tokens(params, tables, jnp.asarray(tokens), jnp.asarray(prompt_len), key,
                      config=config)
two = S.sample_tokens_sharded(params, tables, jnp.asarray(tokens), jnp.asarray(prompt_len), key,
                              config=config, mesh=mesh)
print(json.dumps({"devices": jax.device_count(),
                  "sharded": not two.tokens.sharding.is_fully_replicated,
                  "tokens": [np.asarray(one.tokens).tolist(), np.asarray(two.tokens).tolist()],
                  "logprob_diff": float(np.abs(np.asarray(one.logprobs) - np.asarray(two.logprobs)).max()),
                  "num_steps": [int(one.num_steps), int(two.num_steps)]}))
"""


def test_sharded_sampler_draws_the_single_device_theories():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SAMPLER_SCRIPT], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2 and out["sharded"]
    assert out["tokens"][0] == out["tokens"][1]   # each row keeps its global RNG stream
    assert out["logprob_diff"] < 1e-5
    assert out["num_steps"][0] == out["num_steps"][1]


# One step on however many devices XLA was given; what it sampled, its metrics and the
# updated state into OUT (an .npz). 4 prompts x group 2: on 4 devices each device holds one
# whole group (prompts_per_step a multiple of the device count: no group straddles two).
STEP_SCRIPT = """
import sys
import jax, numpy as np
from theorygrpo_jax import train as T
from theorygrpo_jax.config import load_config
cfg = load_config(sys.argv[1], {"grpo.group_size": 2, "grpo.prompts_per_step": 4})
state, inputs, fns = T.place(cfg, T.init_state(cfg))
state, out = T.train_step(state, inputs, fns, cfg)
host = jax.device_get((out, state))
arrays = {"tokens": np.asarray(host[0].tokens), "devices": np.asarray(jax.device_count()),
          "replicated": np.asarray(jax.tree.leaves(state.params)[0].sharding.is_fully_replicated)}
arrays.update({"metric/" + k: np.asarray(v) for k, v in host[0].metrics.items()})
arrays.update({f"param/{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(host[1].params))})
arrays.update({f"opt/{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(host[1].opt_state))})
np.savez(sys.argv[2], **arrays)
"""


def _step(devices: int, tmp_path: Path) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    out = tmp_path / f"step{devices}.npz"
    proc = subprocess.run([sys.executable, "-c", STEP_SCRIPT, str(ROOT / "configs" / "smoke.yaml"),
                           str(out)], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(out))


def test_four_device_step_equals_one_device_step(tmp_path):
    four, one = _step(4, tmp_path), _step(1, tmp_path)
    assert int(four["devices"]) == 4 and int(one["devices"]) == 1 and bool(four["replicated"])
    # each row keeps its own RNG stream wherever it is sampled: the same theories
    np.testing.assert_array_equal(four["tokens"], one["tokens"])
    for key in ("metric/success_rate", "metric/mean_length", "metric/max_length"):
        assert four[key] == one[key], key
    # sums over the batch are reduced across devices in another order: float rounding only
    for key in ("metric/mean_reward", "metric/total_loss", "metric/policy_loss", "metric/kl",
                "metric/entropy", "metric/grad_norm"):
        np.testing.assert_allclose(four[key], one[key], rtol=1e-4, atol=1e-5, err_msg=key)
    # the gradients' moments (Adam's mu and nu after one step are (1-b1) g and (1-b2) g^2)
    # and the updated parameters
    keys = [k for k in one if k.startswith(("param/", "opt/"))]
    assert keys and set(keys) == {k for k in four if k.startswith(("param/", "opt/"))}
    for key in keys:
        np.testing.assert_allclose(four[key], one[key], rtol=1e-4, atol=1e-6, err_msg=key)
