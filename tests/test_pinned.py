"""Pinned outputs: the architecture's restructuring (policy.py, the split sampler, the pure
training step, one home for configuration) kept the sampled tokens and the losses bit for bit.

The values were recorded with the code before that restructuring (commit 04f2b10), on the
smoke config with curriculum and replay on, and on a tiny model sampling from BOS. A change
that moves them is a change of behaviour, not of structure: say so in its commit.
"""

import jax
import numpy as np

from theorygrpo_jax import model as M
from theorygrpo_jax import sampler as S
from theorygrpo_jax import train as T
from theorygrpo_jax.config import load_config
from theorygrpo_jax.grammar import automaton
from theorygrpo_jax.policy import PolicySpec
from theorygrpo_jax.resources import packaged_config

# rows 0, 3 and 5 of the first two steps' sampled theories
STEP_TOKENS = [
    [
        [1, 3, 10, 11, 12, 4, 5, 15, 17, 21, 46, 65, 65, 9, 15, 18, 21, 49, 64, 65, 9, 15, 18, 21, 43, 64, 65, 9, 15, 17, 21, 42, 65, 64, 9, 15, 18, 21, 39, 64, 64, 9, 16, 23, 25, 48, 65, 64, 9, 6, 7, 72, 82, 80, 81, 109, 112, 117, 113, 9, 8, 2, 0, 0],
        [1, 3, 10, 11, 12, 4, 5, 15, 17, 21, 46, 65, 65, 9, 15, 18, 21, 49, 64, 65, 9, 15, 18, 21, 43, 64, 65, 9, 15, 17, 21, 42, 65, 64, 9, 15, 18, 21, 39, 64, 64, 9, 16, 23, 25, 48, 65, 64, 9, 6, 7, 72, 82, 77, 78, 117, 104, 9, 8, 2, 0, 0, 0, 0],
        [1, 3, 10, 11, 12, 4, 5, 15, 17, 21, 46, 65, 65, 9, 15, 18, 21, 49, 64, 65, 9, 15, 18, 21, 43, 64, 65, 9, 15, 17, 21, 42, 65, 64, 9, 15, 18, 21, 39, 64, 64, 9, 16, 23, 25, 48, 65, 64, 9, 16, 23, 26, 48, 67, 70, 9, 6, 7, 74, 79, 114, 9, 8, 2],
    ],
    [
        [1, 3, 10, 11, 12, 4, 5, 15, 17, 21, 46, 65, 65, 9, 15, 18, 21, 49, 64, 65, 9, 15, 18, 21, 43, 64, 65, 9, 15, 17, 21, 42, 65, 64, 9, 15, 18, 21, 39, 64, 64, 9, 16, 23, 25, 48, 65, 64, 9, 6, 7, 74, 81, 93, 110, 9, 76, 82, 127, 9, 8, 2, 0, 0],
        [1, 3, 10, 11, 12, 4, 5, 15, 17, 21, 46, 65, 65, 9, 15, 18, 21, 49, 64, 65, 9, 15, 18, 21, 43, 64, 65, 9, 15, 17, 21, 42, 65, 64, 9, 15, 18, 21, 39, 64, 64, 9, 16, 23, 25, 48, 65, 64, 9, 15, 17, 20, 34, 65, 66, 9, 6, 7, 75, 82, 108, 9, 8, 2],
        [1, 3, 10, 11, 12, 4, 5, 15, 17, 21, 46, 65, 65, 9, 15, 18, 21, 49, 64, 65, 9, 15, 18, 21, 43, 64, 65, 9, 15, 17, 21, 42, 65, 64, 9, 15, 18, 21, 39, 64, 64, 9, 16, 23, 25, 48, 65, 64, 9, 6, 7, 75, 82, 103, 9, 75, 82, 102, 9, 8, 2, 0, 0, 0],
    ],
]
STEP_METRICS = [
    {"total_loss": -0.436521977186203, "kl": 0.0, "mean_reward": -1.09375,
     "entropy": 1.2749104499816895},
    {"total_loss": -0.5221534371376038, "kl": 0.000620745646301657, "mean_reward": -0.90625,
     "entropy": 1.0870497226715088},
]
# Step 2's kl was 0.0006207460537552834 until session 9: the weight matmuls' backward became
# two 2-D GEMMs (model._rounded_dot_general), which sum step 1's gradient in another order;
# the tokens and every other value stayed bit for bit.
# rows 0, 2 and 7 of a tiny model's batch of 8 from BOS (params seed 3, sampling seed 4)
SCRATCH_TOKENS = [
        [1, 3, 10, 13, 4, 5, 16, 24, 26, 45, 68, 9, 15, 17, 22, 30, 68, 9, 16, 24, 26, 45, 64, 9, 15, 18, 22, 47, 68, 9, 16, 24, 26, 45, 64, 9, 6, 7, 72, 81, 78, 80, 96, 101, 112, 111, 9, 72, 79, 78, 80, 116, 101, 100, 98, 9, 74, 80, 94, 93, 103, 9, 8, 2],
        [1, 3, 10, 11, 12, 13, 4, 5, 16, 24, 26, 45, 64, 67, 67, 9, 15, 17, 19, 50, 64, 71, 64, 9, 6, 7, 76, 77, 127, 9, 75, 77, 106, 9, 8, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, 3, 11, 11, 12, 12, 4, 5, 15, 17, 21, 67, 64, 65, 70, 9, 16, 24, 26, 67, 67, 64, 64, 9, 15, 17, 19, 64, 65, 67, 64, 9, 6, 7, 74, 77, 108, 116, 105, 108, 9, 8, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ]
SCRATCH_LOGPROB_SUM = -291.60760498046875


def _pinned_steps(packing: bool):
    config = load_config(packaged_config("smoke"), {"train.use_curriculum": True,
                                                    "train.use_priority_buffer": True,
                                                    "grpo.update_packing": packing})
    state, inputs, fns = T.place(config, T.init_state(config))
    for tokens, metrics in zip(STEP_TOKENS, STEP_METRICS):
        state, out = T.train_step(state, inputs, fns, config)
        np.testing.assert_array_equal(np.asarray(out.tokens)[[0, 3, 5]], np.array(tokens))
        got = jax.device_get(out.metrics)
        yield {k: float(got[k]) for k in metrics}, metrics


def test_training_steps_are_pinned():
    # The pinned update is the unpacked one (length-sorted chunks), bit for bit.
    for got, pinned in _pinned_steps(packing=False):
        assert got == pinned


def test_packed_training_steps_match_the_pins():
    # The default update packs theories several to a row (grpo.update_packing): the same
    # tokens, and the same losses up to float rounding (the sums run in another order).
    for got, pinned in _pinned_steps(packing=True):
        for key, value in pinned.items():
            assert abs(got[key] - value) <= 1e-6 * max(1.0, abs(value)), (key, got[key], value)


def test_sampling_from_bos_is_pinned():
    config = M.ModelConfig.tiny()
    params = M.init_params(config, jax.random.PRNGKey(3))
    rollout = S.sample(params, config, automaton.load_tables(), jax.random.PRNGKey(4), batch_size=8,
                       policy=PolicySpec(temperature=1.0))
    np.testing.assert_array_equal(np.asarray(rollout.tokens)[[0, 2, 7]], np.array(SCRATCH_TOKENS))
    assert float(np.asarray(rollout.logprobs).sum()) == SCRATCH_LOGPROB_SUM
