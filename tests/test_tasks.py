"""Host-side prompts: the grammar check with its one-line message, and packing."""

import numpy as np
import pytest

from theorygrpo_jax import tasks
from theorygrpo_jax.grammar import vocab as V

L = 64


def test_prompt_that_cannot_finish_in_max_len_is_rejected():
    fields = (["BOS", "GAUGE", "SU2", "END_GAUGE", "FIELDS"]
              + ["FERMION", "L", "gen_1", "F", "END"] * 11)
    tasks.check_prompt(fields, L)  # 60 tokens: END_FIELDS TERMS END_TERMS EOS still fit in 64
    with pytest.raises(ValueError,
                       match="token 'FERMION' at position 60 .*allowed there: END_FIELDS$"):
        tasks.check_prompt(fields + ["FERMION"], L)  # a 12th field could not be finished
    with pytest.raises(ValueError, match="longer than max_len"):
        tasks.check_prompt(["BOS"] * (L + 1), L)


def test_pack_prompts_packs_and_repeats():
    tokens, lens = tasks.pack_prompts([["BOS", "GAUGE"]], L, batch_size=3)
    assert tokens.shape == (3, 2) and (lens == 2).all()
    tokens, lens = tasks.pack_prompts([[V.BOS], ["BOS", "GAUGE", "U1"]], L)
    np.testing.assert_array_equal(tokens[0], [V.BOS, V.PAD, V.PAD])
    np.testing.assert_array_equal(lens, [1, 3])
    with pytest.raises(ValueError, match="batch_size"):
        tasks.pack_prompts(None, L)
