"""cli: the compilation cache (where compiled programs go, switching it off), result printing,
and the command-line tools' main(argv) behind the entry points and scripts/."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from theorygrpo_jax import cli, resources

ROOT = Path(__file__).resolve().parents[1]


def test_compilation_cache_directory_from_the_environment(monkeypatch, tmp_path):
    before = jax.config.jax_compilation_cache_dir
    try:
        monkeypatch.setenv("THEORYGRPO_JAX_CACHE", str(tmp_path / "xla"))
        assert cli.use_compilation_cache() == str(tmp_path / "xla")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")

        monkeypatch.delenv("THEORYGRPO_JAX_CACHE")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert cli.use_compilation_cache() == str(tmp_path / "xdg" / "theorygrpo_jax")

        for off in ("off", "OFF", "0", "none", "false"):
            monkeypatch.setenv("THEORYGRPO_JAX_CACHE", off)
            assert cli.use_compilation_cache() is None
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_print_result_aligns_keys_and_flattens_nested_entries(capsys):
    cli.print_result({"tokens_per_s": 91287.3377, "phases": {"32": {"share": 0.711438}},
                      "cpu": "Example CPU"}, as_json=False)
    assert capsys.readouterr().out.splitlines() == [
        "tokens_per_s     9.129e+04",
        "phases.32.share  0.7114",
        "cpu              Example CPU",
    ]
    cli.print_result({"phases": {"32": {"share": 0.5}}}, as_json=True)
    assert capsys.readouterr().out == '{"phases": {"32": {"share": 0.5}}}\n'


# ---------------------------------------------------------------------------
# The tools' main(argv) (the entry points theorygrpo-score/-sample/-pretrain/-plot)

TOOLS = {"score": "theorygrpo-score", "generate": "theorygrpo-sample", "pretrain": "theorygrpo-pretrain",
         "plotting": "theorygrpo-plot"}


@pytest.mark.parametrize("module", sorted(TOOLS))
def test_tool_help_exits_0(module, capsys):
    main = importlib.import_module(f"theorygrpo_jax.{module}").main
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {TOOLS[module]}")
    if module in ("generate", "pretrain"):      # --config takes a packaged name too: say so
        assert "packaged config" in " ".join(out.split())


def test_score_main_on_a_packaged_theory(capsys):
    from theorygrpo_jax.score import main
    assert main([str(resources.theory_file("sm")), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    # the SM is anomaly free with its textbook masses: every penalty is zero (spec §4)
    assert row["accepted"] and row["success"] and row["anomaly_l1"] == 0 and row["rewards"]["total_reward"] == 0.0


@pytest.mark.parametrize("module", ["generate", "pretrain"])
def test_unknown_config_is_one_line(module, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main = importlib.import_module(f"theorygrpo_jax.{module}").main
    with pytest.raises(SystemExit) as e:
        main(["--config", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: nope: no such config file") and err.count("\n") == 1
    assert "smoke" in err                       # lists the packaged configs


def test_sample_rejects_n_below_1(capsys):
    from theorygrpo_jax.generate import main
    with pytest.raises(SystemExit) as e:
        main(["--config", "smoke", "--n", "0"])
    assert e.value.code == 2 and capsys.readouterr().err == "error: --n must be >= 1, got 0\n"


@pytest.mark.parametrize("script", ["score", "sample", "pretrain", "plot"])
def test_scripts_are_wrappers_that_run_from_anywhere(script, tmp_path):
    path = ROOT / "scripts" / f"{script}.py"
    assert "sys.path" not in path.read_text()
    proc = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: theorygrpo-")


def test_python_dash_m_score(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "theorygrpo_jax.score", str(resources.theory_file("su5_gut")),
                           "--json"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    # SU(5) with 3 x (5b + 10): A(5b) + A(10) = -1 + 1 = 0 per generation, the only condition
    assert row["anomalies"] == {"SU5^3": 0} and row["success"]


def test_pretrain_main_runs_two_steps_with_a_packaged_config(tmp_path, capsys):
    from theorygrpo_jax.pretrain import main
    out = tmp_path / "run"
    assert main(["--config", "smoke", "--steps", "2", "--output_dir", str(out),
                 "--set", "pretrain.synthetic_theories=40", "--set", "pretrain.batch_size=4",
                 "--set", "pretrain.warmup_steps=1", "--set", "pretrain.log_interval=1"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2] and (out / "config.yaml").is_file()
    assert "pretraining done" in capsys.readouterr().out
