"""A notebook-style walk through the pure functions: tables -> params -> sample -> score -> update.

Run it as a script (python examples/notebook_walkthrough.py, about a minute on a laptop CPU)
or paste the cells into a notebook. Every step prints what it returns.
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
