"""The discovery check: the prompted random walker against the reference recogniser (valid
theories that continue their prompts, uniform over the allowed tokens), the ratios, the whole
check on the smoke config, and the script's one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import stats

from benchmarks.discovery_check import (ARMS, COUNTS, PLOT_FILE, RESULT_FILE, discovery_check,
                                        ratios, summary_of)
from benchmarks.walker import uniform_allowed, walk_tokens
from theorygrpo_jax import tasks
from theorygrpo_jax.config import load_config
from theorygrpo_jax.discoveries import DiscoveryCatalogue
from theorygrpo_jax.grammar import automaton, recognizer
from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.resources import config_path

from ..physics.theory_gen import random_theories

ROOT = Path(__file__).resolve().parents[2]
MAX_LEN = 96
NUM_ROWS = 2000


def _pack(prompts: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Prompts known to be valid, packed as the sampler takes them (no per-token check)."""
    width = max(len(p) for p in prompts)
    tokens = np.full((len(prompts), width), V.PAD, np.int32)
    for r, p in enumerate(prompts):
        tokens[r, :len(p)] = V.token_ids(p)
    return tokens, np.array([len(p) for p in prompts], np.int32)


def _rows(ids: np.ndarray) -> list[list[str]]:
    return [V.token_strs(row) for row in ids]


def _walk(prompts: list[list[str]], max_len: int, seed: int) -> list[list[str]]:
    tokens, lengths = _pack(prompts)
    return _rows(np.asarray(walk_tokens(automaton.load_tables(), tokens, lengths,
                                        jax.random.PRNGKey(seed), max_len=max_len)))


def test_uniform_allowed_against_a_plain_python_reference():
    # Thousands of random masks (some with a single allowed token) and uniforms, the edges
    # u = 0 and u just below 1 among them: the k-th allowed column, k = floor(u x count).
    rng = np.random.default_rng(4)
    n, v = 4000, V.VOCAB_SIZE
    density = rng.choice([0.01, 0.1, 0.5, 0.95], size=(n, 1))
    allowed = rng.random((n, v)) < density
    allowed[np.arange(n), rng.integers(0, v, n)] = True      # at least one allowed token
    u = rng.random(n).astype(np.float32)
    u[:50], u[50:100] = 0.0, np.nextafter(np.float32(1), np.float32(0))
    got = np.asarray(uniform_allowed(u, allowed))
    for i in range(n):
        columns = np.flatnonzero(allowed[i]).tolist()
        k = min(int(np.float32(u[i]) * np.float32(len(columns))), len(columns) - 1)
        assert got[i] == columns[k], i


def test_walker_writes_valid_theories_that_continue_their_prompts():
    # Thousands of prompts: every proper prefix length of random (physics-biased) theories of
    # at most MAX_LEN tokens, so each prompt has a completion within MAX_LEN; plus BOS alone
    # and the tasks' own prompts.
    rng = np.random.default_rng(0)
    prompts = [t[:int(rng.integers(1, len(t)))] for t in random_theories(rng, NUM_ROWS - 3, MAX_LEN)]
    prompts += [["BOS"]] + [tasks.task_prompts(task)[0] for task in ("sm_extension", "dark_u1")]
    rows = _walk(prompts, MAX_LEN, seed=1)
    for prompt, row in zip(prompts, rows):
        end = row.index("EOS") + 1
        theory, tail = row[:end], row[end:]
        assert theory[:len(prompt)] == prompt
        result = recognizer.recognise(theory, MAX_LEN)
        assert result.accepted, (prompt, theory, result.error)
        assert set(tail) <= {"PAD"}
    # The walk goes on past the prompt: rows that could choose did (not only forced EOS).
    assert np.mean([len(r) - r.count("PAD") > len(p) + 1 for p, r in zip(prompts, rows)]) > 0.9


@pytest.mark.parametrize("prompt,max_len", [
    # After `FERMION L gen_3` in the SM gauge group the first slot is a U(1) charge: q_-18..q_18.
    (["BOS", "GAUGE", "U1", "SU2", "SU3", "END_GAUGE", "FIELDS", "FERMION", "L", "gen_3"], 64),
    # After the SM's six fields: another FERMION or SCALAR, or END_FIELDS.
    (tasks.task_prompts("sm_extension")[0], 128),
    # A Dirac mass's left-handed field after the SM's fields: m_1 (Q_L) or m_4 (L_L) only (the
    # registers, not the node, decide which m_k are allowed).
    (tasks.task_prompts("sm_extension")[0] + ["END_FIELDS", "TERMS", "DIRAC"], 128),
])
def test_walker_draws_uniformly_among_the_allowed_tokens(prompt, max_len):
    n = 4000
    rows = _walk([prompt] * n, max_len, seed=len(prompt))
    drawn = [row[len(prompt)] for row in rows]
    allowed = sorted(recognizer.allowed_next(prompt, max_len), key=V.TOKEN_ID.get)   # reference
    assert set(drawn) == set(allowed)
    counts = np.array([drawn.count(t) for t in allowed])
    if len(allowed) > 1:   # Pearson's chi-square against n / k per allowed token
        statistic = float(np.sum((counts - n / len(allowed)) ** 2 / (n / len(allowed))))
        assert stats.chi2.sf(statistic, len(allowed) - 1) > 1e-3, dict(zip(allowed, counts))


def test_ratios_and_notes_by_hand():
    def arm(chiral, models, seconds, samples):
        return {"chiral": chiral, "models": models, "seconds": seconds, "samples": samples,
                "per_minute": {"chiral": chiral * 60 / seconds, "models": models * 60 / seconds}}
    # GRPO: 10 chiral in 60 s = 10 / min; walker: 1 in 120 s = 0.5 / min -> 20x.
    # Untrained: no chiral model in 30 s (4000 samples): no ratio; had it found one its rate
    # would be 2 / min, so GRPO's 10 / min is 5x that. Models: 20 / min over 3 / min and 4 / min.
    out, notes = ratios({"grpo": arm(10, 20, 60, 640), "walker": arm(1, 6, 120, 9000),
                         "untrained": arm(0, 2, 30, 4000)})
    assert out["chiral_per_minute"]["grpo/walker"] == pytest.approx(20.0)
    assert out["chiral_per_minute"]["grpo/untrained"] is None
    assert out["chiral_per_minute"]["grpo/untrained_if_untrained_had_found_1"] == pytest.approx(5.0)
    assert out["models_per_minute"] == {"grpo/walker": pytest.approx(20 / 3),
                                        "grpo/untrained": pytest.approx(5.0)}
    assert notes == ["the untrained policy found no chiral models in 4000 samples (30 s); "
                     "GRPO found 10 in 640 samples (60 s)"]


def test_discovery_check_on_the_smoke_config(tmp_path):
    config = load_config(config_path("smoke"))
    minutes = 0.05
    result = discovery_check(config, minutes, tmp_path, log=lambda m: None, name="smoke")
    assert set(result["arms"]) == set(ARMS) - {"pretrained"}   # no --checkpoint: three arms
    batch = config.grpo.batch_size
    for name, arm in result["arms"].items():
        run_dir = tmp_path / name
        # Each arm ran at least its wall time (the grpo clock starts after train's setup).
        assert arm["seconds"] >= 60 * minutes - (arm["setup_seconds"] if name == "grpo" else 0)
        assert arm["batches"] >= 1 and arm["samples"] == arm["batches"] * batch
        assert arm["first_batch_seconds"] > 0
        catalogue = DiscoveryCatalogue(run_dir)
        summary = catalogue.summary()
        assert summary_of(catalogue.entries()) == summary
        assert {k: arm[k] for k in summary} == summary
        assert arm["per_minute"]["models"] == pytest.approx(arm["models"] * 60 / arm["seconds"])
        assert arm["per_minute"]["samples"] == pytest.approx(arm["samples"] * 60 / arm["seconds"])
        curve = arm["curve"]
        assert curve["seconds"][0] == 0 and curve["seconds"][-1] == pytest.approx(arm["seconds"])
        assert np.all(np.diff(curve["seconds"]) >= 0) and np.all(np.diff(curve["batch"]) >= 0)
        assert curve["batch"][-1] == arm["batches"]
        for key in COUNTS:
            assert np.all(np.diff(curve[key]) >= 0) and curve[key][-1] == arm[key]
        assert all(e["first_step"] <= arm["batches"] for e in catalogue.entries())
    assert result["arms"]["walker"]["samples"] > batch   # the walker ran more than one batch
    assert set(result["ratios"]) == {"chiral_per_minute", "models_per_minute"}
    for rates in result["ratios"].values():
        assert {"grpo/walker", "grpo/untrained"} <= set(rates)
    png = tmp_path / PLOT_FILE
    assert result["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / RESULT_FILE).read_text()) == json.loads(json.dumps(result))


def _script(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "discovery_check.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_script_bad_input_is_one_line(tmp_path):
    proc = _script("--config", "smoke", "--minutes", "0", "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "error: --minutes must be a positive number, got 0.0"
    proc = _script("--config", str(tmp_path / "none.yaml"), "--minutes", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"error: {tmp_path / 'none.yaml'}: no such config file")
    (tmp_path / "grpo").mkdir()
    (tmp_path / "grpo" / "metrics.jsonl").write_text("{}\n")
    proc = _script("--config", "smoke", "--minutes", "1", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {tmp_path / 'grpo'}: already holds a run; give an "
                                   "empty or new output folder")
