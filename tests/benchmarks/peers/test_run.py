"""The peer benchmark's configs: `--matmul-dtype bfloat16` turns on exactly this project's three
bfloat16 matmul options, and the checks' float32 config turns them off again. Skipped without
torch (the main install)."""

import pytest

pytest.importorskip("torch")

from benchmarks.peers.run import float32_config, preset_config  # noqa: E402


@pytest.mark.parametrize("preset", ["cpu_default", "original"])
def test_bfloat16_preset_sets_the_sampler_and_update_matmuls(preset):
    plain = preset_config(preset, 8)
    bf16 = preset_config(preset, 8, matmul_dtype="bfloat16")
    assert (plain.model.matmul_dtype, plain.grpo.update_matmul_dtype,
            plain.grpo.update_grad_matmul_dtype) == ("float32", None, "float32")
    assert (bf16.model.matmul_dtype, bf16.grpo.update_matmul_dtype,
            bf16.grpo.update_grad_matmul_dtype) == ("bfloat16", "bfloat16", "bfloat16")
    assert float32_config(bf16) == plain


def test_unknown_matmul_dtype_is_refused():
    with pytest.raises(ValueError, match="float16"):
        preset_config("cpu_default", 8, matmul_dtype="float16")
