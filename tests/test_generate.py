"""scripts/sample.py (theorygrpo-sample): JSON lines with the spec's score fields, and one-line errors.

It runs outside the checkout (cwd: a temporary folder) with `--config smoke`, the packaged
config's name, as an installed package would.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sample(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "sample.py"), "--config", "smoke", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_json_lines_have_tokens_and_scores(tmp_path):
    prompt = tmp_path / "p.theory"
    prompt.write_text("GAUGE U1 SU2 END_GAUGE\nFIELDS\n")
    proc = _sample("--n", "3", "--json", "--prompt", str(prompt), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert row["tokens"][:7] == ["BOS", "GAUGE", "U1", "SU2", "END_GAUGE", "FIELDS", row["tokens"][6]]
        assert row["tokens"][-1] == "EOS"
        assert {"accepted", "error", "anomalies", "anomaly_free", "anomaly_l1", "invalid_terms",
                "light_exotics", "success", "rewards"} <= set(row)
        assert set(row["rewards"]) >= {"anomalies_reward", "light_exotics_reward",
                                       "invalid_terms_reward", "length_reward", "total_reward"}


def test_bad_prompt_is_one_line(tmp_path):
    prompt = tmp_path / "bad.theory"
    prompt.write_text("GAUGE U1\nSU3 SU2\n")
    proc = _sample("--n", "2", "--prompt", str(prompt), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {prompt}:2: token 'SU2' is not allowed here: expected a gauge "
                                   "factor (U1 SU2 SU3 SU4 SU5, in that order, at most two U1, at most "
                                   "four factors) or END_GAUGE; allowed: END_GAUGE SU3 SU4 SU5")


def test_batches_give_the_theories_of_one_batch():
    """Sampling in batches (memory constant in --n) draws exactly the theories one batch would:
    each row has its own RNG stream, named by its index."""
    from theorygrpo_jax.config import load_config
    from theorygrpo_jax.generate import iter_sample_and_score
    from theorygrpo_jax.resources import packaged_config
    config = load_config(packaged_config("smoke"))
    one = [r["tokens"] for r in iter_sample_and_score(config, 8, batch_size=8)]
    batched = [r["tokens"] for r in iter_sample_and_score(config, 8, batch_size=3)]
    assert batched == one and len(set(map(tuple, one))) > 1


def test_config_for_reads_a_run_directory(tmp_path):
    """--config RUN (a directory holding config.yaml) is that run's config, as --checkpoint
    RUN would give."""
    from theorygrpo_jax.config import load_config
    from theorygrpo_jax.generate import config_for
    from theorygrpo_jax.resources import packaged_config
    smoke = load_config(packaged_config("smoke"), {"grpo.temperature": 0.5})
    from theorygrpo_jax.config import save_config
    save_config(smoke, tmp_path / "config.yaml")
    assert config_for(None, str(tmp_path)) == smoke
