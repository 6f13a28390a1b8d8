"""A notebook-style walk through the pure functions: tables -> params -> sample -> score -> update,
then a tiny run with a custom reward term and a custom advantage (the two hooks).

Run it as a script from any directory (python path/to/notebook_walkthrough.py, about a minute
on a laptop CPU) or paste the cells into a notebook. Every step prints what it returns.
"""

# %% 1. The grammar as arrays
import jax
import jax.numpy as jnp
import numpy as np

from theorygrpo_jax import grpo, model, reward, sampler, train
from theorygrpo_jax.config import load_config
from theorygrpo_jax.grammar import automaton, text
from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.policy import PolicySpec
from theorygrpo_jax.resources import packaged_config

tables = automaton.load_tables()
print("transition table:", tables.next_node.shape, tables.next_node.dtype,
      "| distance to acceptance from the start:", int(tables.dist[tables.start]), "tokens")

state = automaton.init_state(tables)
for tok in ["BOS", "GAUGE", "U1", "SU2"]:
    state = automaton.step(tables, state, V.TOKEN_ID[tok])
allowed = automaton.allowed_mask(tables, state, budget=100)
print("after 'BOS GAUGE U1 SU2' the grammar allows:", [V.TOKENS[i] for i in np.flatnonzero(allowed)])

# %% 2. A policy: parameters of a small TheoryGPT
config = load_config(packaged_config("smoke"))   # the packaged smoke config, from any directory
params = model.init_params(config.model, jax.random.PRNGKey(0))
print("parameters:", f"{model.num_params(params):,}", "| logits of BOS:",
      model.forward(params, config.model, jnp.array([[V.BOS]])).shape)

# %% 3. Sample a batch of theories under the grammar masks (one jitted lax loop)
rollout = sampler.sample(params, config.model, tables, jax.random.PRNGKey(1), batch_size=4,
                         policy=PolicySpec(temperature=1.0))
print("tokens", rollout.tokens.shape, "| lengths", rollout.lengths.tolist())
first = [V.TOKENS[t] for t in np.asarray(rollout.tokens[0]) if t != V.PAD]
print(text.render_theory(first))

# %% 4. Score them: the vmapped, jitted reward
scores = reward.score_batch(rollout.tokens, config.reward)
for key in ("total_reward", "anomalies_reward", "light_exotics_reward", "invalid_terms_reward",
            "length_reward", "success"):
    values = np.asarray(scores[key])
    print(f"{key:22s}", values.tolist() if values.dtype == bool else values.astype(float).round(3).tolist())

# %% 5. Group-relative advantages (one group of 4)
advantages = grpo.group_advantages(scores["total_reward"], group_size=4)
print("advantages:", np.asarray(advantages).astype(float).round(3).tolist())

# %% 6. One GRPO step on a TrainState (sample, reward, advantages, update)
state, inputs, fns = train.place(config, train.init_state(config))
state, outputs = train.train_step(state, inputs, fns, config)
metrics = {k: float(v) for k, v in jax.device_get(outputs.metrics).items()}
print("after one step: state.step =", int(state.step))
print({k: round(v, 4) for k, v in metrics.items() if k in ("mean_reward", "success_rate", "total_loss",
                                                            "policy_loss", "kl", "entropy")})

# %% 7. Hooks: a custom reward term and a custom advantage, named "module:function"
# A hook lives in a module file, so that the run's config.yaml names it and every tool
# (--resume, --eval_only, theorygrpo-sample, theorygrpo-score --run) loads it again. In a
# notebook, write the file next to the notebook (%%writefile my_hooks.py); here it goes to a
# temporary folder put on sys.path. (A function defined in a notebook cell works too, with a
# warning when the run saves its config: only that kernel can load "__main__:function".)
import dataclasses
import json
import sys
import tempfile
import textwrap
from pathlib import Path

folder = Path(tempfile.mkdtemp(prefix="theorygrpo_walkthrough_"))
(folder / "my_hooks.py").write_text(textwrap.dedent("""
    import jax.numpy as jnp

    def vev_scalars(record):
        # reward term: scalars with a VEV (record: one TheoryRecord, no batch axis)
        return jnp.sum(record.has_vev).astype(jnp.float32)

    def rank_advantages(rewards, group_size, scale_by_std, eps):
        # advantage: each theory's rank in its group, centred and scaled to [-1, 1]
        grouped = rewards.reshape(-1, group_size)
        ranks = jnp.argsort(jnp.argsort(grouped, axis=1), axis=1).astype(jnp.float32)
        return (2.0 * ranks / (group_size - 1) - 1.0).reshape(-1)
"""))
sys.path.insert(0, str(folder))

hooked = load_config(packaged_config("smoke"), {   # the YAML / --set form of the two hooks
    "reward.extra": [{"name": "vev_scalars", "weight": 0.1, "fn": "my_hooks:vev_scalars"}],
    "grpo.advantage_fn": "my_hooks:rank_advantages",
    "train.num_episodes": 2,
})
import my_hooks  # noqa: E402 - from Python: the functions themselves, the same config
base = load_config(packaged_config("smoke"), {"train.num_episodes": 2})
from_python = dataclasses.replace(
    base, reward=dataclasses.replace(base.reward, extra=(("vev_scalars", 0.1, my_hooks.vev_scalars),)),
    grpo=dataclasses.replace(base.grpo, advantage_fn=my_hooks.rank_advantages))
print("the same config from Python:", from_python == hooked)
run = folder / "run"
train.train(hooked, run, log=lambda line: None)
last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
print("logged per step: vev_scalars =", round(last["vev_scalars"], 3),
      "| total_reward =", round(last["total_reward"], 3))
print("config.yaml names the hooks:",
      [line.strip() for line in (run / "config.yaml").read_text().splitlines()
       if "my_hooks:" in line])
print("reloaded from config.yaml:", load_config(run / "config.yaml") == hooked)
