"""TRL's GRPOTrainer, as the peer benchmark configures it, runs this project's task: its
tokenizer maps token names to this project's ids, its wrapped generate samples theories the
grammar accepts, and its reward is this project's. Skipped without torch (the main install)."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.peers import trl_grpo  # noqa: E402
from benchmarks.peers.grammar_tables import NumpyGrammar  # noqa: E402
from theorygrpo_jax import model as M  # noqa: E402
from theorygrpo_jax.config import config_from_dict  # noqa: E402
from theorygrpo_jax.grammar import vocab as V  # noqa: E402
from theorygrpo_jax.reward import score_batch  # noqa: E402


def test_tokenizer_maps_token_names_to_the_project_ids():
    tokenizer = trl_grpo.theory_tokenizer()
    names = ["BOS", "GAUGE", "U1", "SU2", "END_GAUGE", "q_-18", "m_16", "M5e4", "EOS"]
    assert tokenizer(" ".join(names))["input_ids"] == [V.TOKEN_ID[n] for n in names]
    assert tokenizer.pad_token_id == V.PAD and tokenizer.eos_token_id == V.EOS


@pytest.mark.parametrize("task", ["from_scratch", "sm_extension"])
def test_two_trainer_steps_sample_theories_and_score_them_with_the_project_reward(task, tmp_path):
    config = config_from_dict({"model": {"d_model": 32, "n_heads": 2, "n_layers": 1, "d_ff": 48,
                                         "max_len": 96},
                               "grpo": {"group_size": 4}, "train": {"task": task}})
    params = M.init_params(config.model, jax.random.PRNGKey(0))
    trainer, timer, reward = trl_grpo.make_trainer(config, params, steps=2, workdir=str(tmp_path))
    trainer.train()
    assert len(timer.step_seconds) == 2
    rows = reward.rows
    assert rows.shape == (4, 96)
    assert NumpyGrammar.load().accepted(rows, 96).all()
    prompt = reward.prompt_ids
    assert (rows[:, :len(prompt)] == prompt).all()
    np.testing.assert_array_equal(reward.rewards, np.asarray(score_batch(rows, config.reward)
                                                             ["total_reward"]))
