"""The discovery bonuses and the novelty table, on hand-built theories."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from theorygrpo_jax import discovery as D
from theorygrpo_jax import tasks
from theorygrpo_jax.config import DiscoveryConfig
from theorygrpo_jax.grammar import text
from theorygrpo_jax.grammar import vocab as V

L = 128
SM_FIELDS = tasks.SM_FIELDS_PROMPT.split("FIELDS", 1)[1]
SM_TERMS = """
END_FIELDS TERMS
  YUKAWA m_6 m_1 m_2 M2e-3 M1e0 M2e2 END
  YUKAWA m_6 m_1 m_3 M5e-3 M1e-1 M5e0 END
  YUKAWA m_6 m_4 m_5 M5e-4 M1e-1 M2e0 END
"""
BARE_SM = "GAUGE U1 SU2 SU3 END_GAUGE FIELDS" + SM_FIELDS + SM_TERMS + "END_TERMS"
# A vector-like lepton doublet (L and R with the quantum numbers of L_L, q_-3 F 1) with a
# 1 TeV Dirac mass: anomaly free (each anomaly gets +x from the L and -x from the R), every
# component heavy, so successful; it adds hypercharge and SU(2) matter, vector-like.
VL_DOUBLET = ("GAUGE U1 SU2 SU3 END_GAUGE FIELDS" + SM_FIELDS
              + "FERMION L gen_1 q_-3 F 1 END FERMION R gen_1 q_-3 F 1 END"
              + SM_TERMS + "DIRAC m_7 m_8 M1e3 END END_TERMS")
# The same model written with another mass: one physics model, so one novelty count.
VL_DOUBLET_2 = VL_DOUBLET.replace("M1e3", "M2e3")


def _rows(*theories):
    out = np.full((len(theories), L), V.PAD, np.int32)
    for i, source in enumerate(theories):
        tokens = text.parse_theory_text(source, "test")
        out[i, :len(tokens)] = V.token_ids(tokens)
    return jnp.asarray(out)


def _prompts(n):
    tokens, _ = tasks.pack_prompts(tasks.task_prompts("sm_extension"), L, batch_size=n)
    return jnp.asarray(tokens)


CONFIG = DiscoveryConfig(novelty_weight=2.0, sm_charged_weight=0.5, chiral_weight=3.0,
                         table_size=64)
bonuses = jax.jit(D.discovery_rewards, static_argnames="config")


def test_bonuses_by_hand_and_counts_carry_over():
    tokens = _rows(BARE_SM, VL_DOUBLET, VL_DOUBLET_2, VL_DOUBLET)
    success = jnp.array([True, True, True, False])
    table = D.init_novelty(CONFIG)
    bonus, table = bonuses(tokens, _prompts(4), success, table, config=CONFIG)
    # bare SM: adds nothing, so no SM-charged / chiral bonus and (scope charged_or_chiral) no
    # novelty; rows 1-2: one new model, n = 0 before this batch: 2 / sqrt(1) = 2, plus 0.5 for
    # SM-charged matter, no chiral bonus (vector-like); row 3 failed: nothing.
    np.testing.assert_allclose(bonus["novelty_reward"], [0.0, 2.0, 2.0, 0.0])
    np.testing.assert_allclose(bonus["sm_charged_reward"], [0.0, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(bonus["chiral_reward"], [0.0, 0.0, 0.0, 0.0])
    assert int(table.counts.sum()) == 2          # the two successful finds of the doublet model
    # The next batch sees n = 2 finds of the doublet model: 2 / sqrt(3).
    bonus, table = bonuses(tokens, _prompts(4), success, table, config=CONFIG)
    np.testing.assert_allclose(bonus["novelty_reward"], [0.0, 2 / math.sqrt(3), 2 / math.sqrt(3), 0.0],
                               rtol=1e-6)
    assert int(table.counts.sum()) == 4 and int(table.counts.max()) == 4


def test_scope_any_pays_the_bare_sm_too():
    config = DiscoveryConfig(novelty_weight=1.0, novelty_scope="any", table_size=64,
                             scalar_only_factor=0.25)
    bonus, table = bonuses(_rows(BARE_SM), _prompts(1), jnp.array([True]),
                           D.init_novelty(config), config=config)
    np.testing.assert_allclose(bonus["novelty_reward"], [0.25])   # adds no fermion: 1 x 0.25
    assert int(table.counts.sum()) == 1


def test_scalar_only_models_earn_a_fraction_of_the_novelty():
    # A heavy colour-triplet scalar (3, 1)_{-1/3} (q_-2 1 F) with a 1 TeV SMASS: SM-charged,
    # no fermion added, so the novelty is 2 x 0.2 (the default factor) = 0.4.
    leptoquark = BARE_SM.replace("END_FIELDS", "SCALAR CPLX NOVEV q_-2 1 F END END_FIELDS").replace(
        "END_TERMS", "SMASS m_7 M1e3 END END_TERMS")
    bonus, _ = bonuses(_rows(leptoquark), _prompts(1), jnp.array([True]), D.init_novelty(CONFIG),
                       config=CONFIG)
    np.testing.assert_allclose(bonus["novelty_reward"], [0.4], rtol=1e-6)
    np.testing.assert_allclose(bonus["sm_charged_reward"], [0.5])


def test_novelty_off_allocates_one_bucket_and_never_counts():
    config = DiscoveryConfig(sm_charged_weight=1.0)
    table = D.init_novelty(config)
    assert table.counts.shape == (1,)
    bonus, after = bonuses(_rows(VL_DOUBLET), _prompts(1), jnp.array([True]), table, config=config)
    np.testing.assert_allclose(bonus["novelty_reward"], [0.0])
    np.testing.assert_allclose(bonus["sm_charged_reward"], [1.0])
    np.testing.assert_array_equal(after.counts, [0])


def test_pure_same_inputs_same_outputs():
    tokens, prompts = _rows(VL_DOUBLET, BARE_SM), _prompts(2)
    table = D.init_novelty(CONFIG)
    a = bonuses(tokens, prompts, jnp.array([True, True]), table, config=CONFIG)
    b = bonuses(tokens, prompts, jnp.array([True, True]), table, config=CONFIG)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    np.testing.assert_array_equal(table.counts, np.zeros(64, np.int32))   # input not mutated


def test_novelty_counts_resume_exactly_and_max_minutes_stops(tmp_path):
    """The novelty table is part of the TrainState: a run resumed from its step-2 checkpoint
    ends with the same counts (and the same everything) as an uninterrupted one. And
    train.max_minutes stops a run cleanly after the step that passes the deadline."""
    from theorygrpo_jax import train as T
    from theorygrpo_jax.config import load_config
    from theorygrpo_jax.resources import packaged_config

    novelty = {"discovery.novelty_weight": 2.0, "discovery.novelty_scope": "any",
               "discovery.sm_charged_weight": 0.5, "discovery.chiral_weight": 1.0,
               "discovery.table_size": 256, "train.save_interval": 2}
    config = load_config(packaged_config("smoke"), {**novelty, "train.num_episodes": 4})
    straight, _ = T.train(config, tmp_path / "straight", log=lambda _: None)
    assert int(straight.novelty.counts.sum()) > 0      # the smoke policy finds the bare SM
    half = load_config(packaged_config("smoke"), {**novelty, "train.num_episodes": 2})
    T.train(half, tmp_path / "resumed", log=lambda _: None)
    resumed, _ = T.train(config, tmp_path / "resumed", resume=str(tmp_path / "resumed"),
                         log=lambda _: None)
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    quick = load_config(packaged_config("smoke"), {**novelty, "train.num_episodes": 50,
                                                   "train.max_minutes": 1e-6})
    state, _ = T.train(quick, tmp_path / "quick", log=lambda _: None)
    assert int(state.step) == 1                         # the deadline passed during step 1
    assert (tmp_path / "quick" / "checkpoints" / "1").is_dir()   # the last step is saved


def test_fermion_novelty_key_ignores_added_scalars():
    # The vector-like doublet alone, and dressed with a real singlet scalar (q_0 1 1, no vev):
    # two physics models, one fermion content.
    dressed = VL_DOUBLET.replace("END_FIELDS", "SCALAR REAL NOVEV q_0 1 1 END END_FIELDS")
    tokens, success = _rows(VL_DOUBLET, dressed), jnp.array([True, True])
    by_model = DiscoveryConfig(novelty_weight=2.0, table_size=64)
    by_fermions = DiscoveryConfig(novelty_weight=2.0, table_size=64, novelty_key="fermions")
    for config, second in ((by_model, 2 / math.sqrt(2)), (by_fermions, 2 / math.sqrt(3))):
        table = D.init_novelty(config)
        first, table = bonuses(tokens, _prompts(2), success, table, config=config)
        # first batch: nothing seen before, 2 / sqrt(1) = 2 for both rows either way
        np.testing.assert_allclose(first["novelty_reward"], [2.0, 2.0])
        # second batch: by model each model was found once (2 / sqrt(2)); by fermions the one
        # fermion content was found twice (2 / sqrt(3))
        again, table = bonuses(tokens, _prompts(2), success, table, config=config)
        np.testing.assert_allclose(again["novelty_reward"], [second, second], rtol=1e-6)
    assert int(table.counts.max()) == 4   # by fermions: all four finds in one bucket
