"""The training step on 2- and 4-device CPU meshes (forced host devices): the batch is sharded,
the parameters stay replicated (or, train.param_sharding = fsdp, are split over the devices),
and the step gives the single-device step's theories, metrics, gradients' moments and updated
parameters (to float rounding)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
if len(sys.argv) > 3:   # FSDP_SCRIPT, in this process (its 4 devices, one start-up)
    exec(sys.argv[3])
np.savez(sys.argv[2], **arrays)
"""

# Run by STEP_SCRIPT after its replicated step (`cfg`, `state`, `arrays`): the same step with
# train.param_sharding = fsdp (its results under "fsdp/"), and checkpoints across the layouts.
FSDP_SCRIPT = """
import os, warnings
from theorygrpo_jax import distributed
from theorygrpo_jax.checkpoint import Checkpointer
fcfg = load_config(sys.argv[1], {"grpo.group_size": 2, "grpo.prompts_per_step": 4,
                                 "train.param_sharding": "fsdp"})
fstate, finputs, ffns = T.place(fcfg, T.init_state(fcfg))
shardings = lambda s: distributed.state_shardings(s, distributed.global_mesh(), fsdp=True)
def kept(s):   # every leaf in its fsdp sharding
    return all(x.sharding.is_equivalent_to(w, x.ndim)
               for x, w in zip(jax.tree.leaves(s), jax.tree.leaves(shardings(s))))
arrays["fsdp/placed"] = np.asarray(kept(fstate))
with warnings.catch_warnings(record=True) as caught:   # "donated buffers were not usable"
    warnings.simplefilter("always")
    fstate, fout = T.train_step(fstate, finputs, ffns, fcfg)
arrays["fsdp/kept"] = np.asarray(kept(fstate))
arrays["fsdp/donation_lost"] = np.asarray(any("donated" in str(w.message) for w in caught))
embed = fstate.params["embed"]["embedding"]
arrays["fsdp/embed_spec"] = np.asarray([str(a) for a in embed.sharding.spec])
arrays["fsdp/embed_shape"] = np.asarray(embed.shape)
arrays["fsdp/embed_shards"] = np.asarray([x.data.shape for x in embed.addressable_shards])
host = jax.device_get((fout, fstate))
arrays["fsdp/tokens"] = np.asarray(host[0].tokens)
arrays.update({"fsdp/metric/" + k: np.asarray(v) for k, v in host[0].metrics.items()})
arrays.update({f"fsdp/param/{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(host[1].params))})
arrays.update({f"fsdp/opt/{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(host[1].opt_state))})
# checkpoints across layouts: the fsdp state resumed replicated, the replicated one resumed
# and loaded (--checkpoint) into fsdp; each must give back the values it saved
split_run, whole_run = os.path.join(sys.argv[4], "fsdp"), os.path.join(sys.argv[4], "replicated")
Checkpointer(split_run).save(1, fstate, {})
Checkpointer(whole_run).save(1, state, {})
same = lambda a, b: all(np.array_equal(x, y) for x, y in
                        zip(jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))))
resumed = T.initial_state(cfg, resume=split_run)
arrays["ckpt/fsdp_to_replicated"] = np.asarray(same(resumed, fstate)
                                               and resumed.params["embed"]["embedding"].sharding.is_fully_replicated)
resumed = T.initial_state(fcfg, resume=whole_run)
arrays["ckpt/replicated_to_fsdp"] = np.asarray(same(resumed, state) and kept(resumed))
loaded = T.initial_state(fcfg, checkpoint=whole_run)
arrays["ckpt/params_to_fsdp"] = np.asarray(same(loaded.params, state.params) and all(
    x.sharding.is_equivalent_to(w, x.ndim) for x, w in
    zip(jax.tree.leaves(loaded.params), jax.tree.leaves(shardings(loaded).params))))
"""


def _step(devices: int, tmp_path: Path, fsdp: bool = False) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    out = tmp_path / f"step{devices}.npz"
    extra = []
    if fsdp:
        extra = [FSDP_SCRIPT, str(tmp_path / "runs")]
    proc = subprocess.run([sys.executable, "-c", STEP_SCRIPT, str(ROOT / "configs" / "smoke.yaml"),
                           str(out), *extra], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(out))


@pytest.fixture(scope="module")
def steps(tmp_path_factory) -> dict[int, dict]:
    """The step on 4 devices (replicated, then fsdp, in one process) and on 1 device."""
    tmp = tmp_path_factory.mktemp("steps")
    return {4: _step(4, tmp, fsdp=True), 1: _step(1, tmp)}


def test_four_device_step_equals_one_device_step(steps):
    four, one = steps[4], steps[1]
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


def test_fsdp_step_splits_the_state_and_equals_one_device_step(steps):
    four, one = steps[4], steps[1]
    assert bool(four["fsdp/placed"]) and bool(four["fsdp/kept"])   # placed split, stays split
    assert not bool(four["fsdp/donation_lost"])   # the state's buffers are reused in place
    # the embedding [V=130, d_model=32]: 130 % 4 != 0, so its columns are split, 32 / 4 = 8 each
    assert tuple(four["fsdp/embed_shape"]) == (130, 32)
    assert four["fsdp/embed_spec"].tolist() == ["None", "data"]
    assert four["fsdp/embed_shards"].tolist() == [[130, 8]] * 4
    np.testing.assert_array_equal(four["fsdp/tokens"], one["tokens"])
    for key in ("metric/success_rate", "metric/mean_length", "metric/max_length"):
        assert four["fsdp/" + key] == one[key], key
    for key in ("metric/mean_reward", "metric/total_loss", "metric/policy_loss", "metric/kl",
                "metric/entropy", "metric/grad_norm"):
        np.testing.assert_allclose(four["fsdp/" + key], one[key], rtol=1e-4, atol=1e-5, err_msg=key)
    keys = [k for k in one if k.startswith(("param/", "opt/"))]
    assert keys and {"fsdp/" + k for k in keys} == {k for k in four
                                                   if k.startswith(("fsdp/param/", "fsdp/opt/"))}
    for key in keys:
        np.testing.assert_allclose(four["fsdp/" + key], one[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_checkpoints_load_across_the_parameter_layouts(steps):
    four = steps[4]
    assert bool(four["ckpt/fsdp_to_replicated"])   # an fsdp run's checkpoint, resumed replicated
    assert bool(four["ckpt/replicated_to_fsdp"])   # a replicated one resumed split
    assert bool(four["ckpt/params_to_fsdp"])       # and its policy loaded split (--checkpoint)


def _spec_reference(shape: tuple[int, ...], n: int) -> tuple:
    """fsdp_spec by hand: the axes n divides, the largest of them, the first of equal ones."""
    best = None
    for axis, size in enumerate(shape):
        if size % n == 0 and (best is None or size > shape[best]):
            best = axis
    return tuple("data" if axis == best else None for axis in range(len(shape))) if best is not None else ()


def test_fsdp_spec_shards_the_largest_divisible_axis():
    from jax.sharding import PartitionSpec as P

    from theorygrpo_jax.distributed import fsdp_spec
    assert fsdp_spec((64, 128), 4) == P(None, "data")   # both divisible: the larger, 128
    assert fsdp_spec((7, 3), 4) == P()                  # neither divisible: replicated
    assert fsdp_spec((8,), 4) == P("data")
    assert fsdp_spec((), 4) == P()                      # a scalar: replicated
    assert fsdp_spec((8, 8), 4) == P("data", None)      # a tie: the first
    assert fsdp_spec((3, 16, 16), 4) == P(None, "data", None)
    assert fsdp_spec((130, 32), 4) == P(None, "data")   # the smoke embedding: 130 = 4 x 32 + 2
    assert fsdp_spec((12, 8), 4) == P("data", None)
    rng = np.random.default_rng(0)
    for _ in range(5000):
        shape = tuple(int(d) for d in rng.integers(1, 40, size=rng.integers(0, 5)))
        n = int(rng.integers(1, 9))
        assert tuple(fsdp_spec(shape, n)) == _spec_reference(shape, n), (shape, n)


def test_state_shardings_split_only_parameters_and_optimiser_state():
    import jax

    from theorygrpo_jax import train as T
    from theorygrpo_jax.config import load_config
    from theorygrpo_jax.distributed import state_shardings
    config = load_config(ROOT / "configs" / "smoke.yaml")
    shapes = jax.eval_shape(lambda: T.init_state(config))   # abstract: only shapes are read
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    split = state_shardings(shapes, mesh, fsdp=True)
    # on one device every axis divides: each leaf of params, ref_params and opt_state with an
    # axis names "data" (Adam's count, a scalar, stays replicated); nothing else does
    for field in ("params", "ref_params", "opt_state"):
        for x, s in zip(jax.tree.leaves(getattr(shapes, field)), jax.tree.leaves(getattr(split, field))):
            assert ("data" in tuple(s.spec)) == (x.ndim > 0), (field, x.shape, s.spec)
    for field in ("step", "rng", "kl_coef", "best_reward", "curriculum", "replay", "novelty"):
        assert all(s.spec == jax.sharding.PartitionSpec()
                   for s in jax.tree.leaves(getattr(split, field))), field
    assert all(s.spec == jax.sharding.PartitionSpec()
               for s in jax.tree.leaves(state_shardings(shapes, mesh, fsdp=False)))
