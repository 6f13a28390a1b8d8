"""cli: the compilation cache (where compiled programs go, switching it off), result printing,
and the command-line tools' main(argv) behind the entry points and scripts/."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from theorygrpo_jax import cli, resources

ROOT = Path(__file__).resolve().parents[1]


def test_compilation_cache_directory_from_the_environment(monkeypatch, tmp_path):
    before = jax.config.jax_compilation_cache_dir
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
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


def test_compilation_cache_respects_jax_compilation_cache_dir(monkeypatch, tmp_path):
    """The standard variable (a cluster's shared scratch) wins over ours and over the default,
    and is used as it is, also when it is exported after jax was imported."""
    before = jax.config.jax_compilation_cache_dir
    try:
        shared = str(tmp_path / "scratch" / "xla")
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", shared)
        monkeypatch.setenv("THEORYGRPO_JAX_CACHE", str(tmp_path / "ours"))
        assert cli.use_compilation_cache() == shared
        assert jax.config.jax_compilation_cache_dir == shared
        monkeypatch.setenv("THEORYGRPO_JAX_CACHE", "off")   # ours off: JAX's own still holds
        assert cli.use_compilation_cache() == shared
        assert jax.config.jax_compilation_cache_dir == shared
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_compilation_cache_env_var_read_by_a_fresh_process(tmp_path):
    """As on a cluster: exported before Python starts, JAX reads it and we leave it."""
    shared = str(tmp_path / "shared")
    code = ("import jax; from theorygrpo_jax import cli; "
            "print(cli.use_compilation_cache(), jax.config.jax_compilation_cache_dir)")
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": shared,
           "THEORYGRPO_JAX_CACHE": str(tmp_path / "ours"), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [shared, shared]


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


# ---------------------------------------------------------------------------
# One-line errors for what the operating system refuses, and nonsense flags (issue 14)


@pytest.mark.parametrize("error,expected,status", [
    (PermissionError(13, "Permission denied", "/runs/x/metrics.jsonl"),
     "error: /runs/x/metrics.jsonl: Permission denied\n", 1),
    (OSError(28, "No space left on device", "/runs/x/checkpoints/3"),
     "error: /runs/x/checkpoints/3: No space left on device\n", 1),
    (NotADirectoryError(20, "Not a directory", "/runs/file/x"),
     "error: /runs/file/x: Not a directory\n", 1),
    (ValueError("a\nmulti-line\nmessage"), "error: a multi-line message\n", 2),
])
def test_user_errors_turn_os_errors_into_one_line(capsys, error, expected, status):
    with pytest.raises(SystemExit) as e:
        with cli.user_errors():
            raise error
    assert e.value.code == status and capsys.readouterr().err == expected


def test_score_piped_into_head_ends_quietly(tmp_path):
    files = [str(resources.theory_file("sm"))] * 30   # ~100 kB: more than a pipe buffers
    proc = subprocess.run(f"{sys.executable} -m theorygrpo_jax.score --json {' '.join(files)} | head -c 10",
                          shell=True, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          executable="/bin/bash")
    assert proc.stdout == '{"file": "' and proc.stderr == ""


def test_pretrain_steps_0_is_an_error_not_the_default(capsys, tmp_path):
    from theorygrpo_jax.pretrain import main
    with pytest.raises(SystemExit) as e:
        main(["--config", "smoke", "--steps", "0", "--output_dir", str(tmp_path / "run")])
    assert e.value.code == 2
    assert capsys.readouterr().err.endswith(": pretrain: steps must be >= 1, got 0\n")
    assert not (tmp_path / "run").exists()


def test_pretrain_into_a_used_directory_stops(capsys, tmp_path):
    from theorygrpo_jax.pretrain import main
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(SystemExit) as e:
        main(["--config", "smoke", "--steps", "2", "--set", "pretrain.warmup_steps=1",
              "--output_dir", str(tmp_path)])
    assert e.value.code == 2
    assert capsys.readouterr().err == (f"error: {tmp_path}: holds a run already (metrics.jsonl): "
                                       f"choose another --output_dir, or pass --overwrite to "
                                       f"replace it\n")


@pytest.mark.parametrize("args,message", [
    (["--seed", "-1"], "error: --seed must be in 0..9223372036854775806, got -1\n"),
    (["--seed", str(2**64)], "error: --seed must be in 0..9223372036854775806, got 18446744073709551616\n"),
    (["--temperature", "nan"], "error: --temperature must be 0 (greedy) or a finite number >= 0.001, "
                               "got nan\n"),
    (["--temperature", "1e-30"], "error: --temperature must be 0 (greedy) or a finite number >= "
                                 "0.001, got 1e-30\n"),
])
def test_sample_rejects_nonsense_flags(capsys, args, message):
    from theorygrpo_jax.generate import main
    with pytest.raises(SystemExit) as e:
        main(["--config", "smoke", "--n", "2", *args])
    assert e.value.code == 2 and capsys.readouterr().err == message


@pytest.mark.parametrize("content,message", [
    (b"# only a comment\n\n", ":1: empty prompt (no tokens)"),
    (b"", ":1: empty prompt (no tokens)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", ": not a prompt file: not UTF-8 text (byte 0)"),
])
def test_sample_rejects_prompt_files_without_a_prompt(capsys, tmp_path, content, message):
    from theorygrpo_jax.generate import main
    prompt = tmp_path / "p.theory"
    prompt.write_bytes(content)
    with pytest.raises(SystemExit) as e:
        main(["--config", "smoke", "--n", "2", "--prompt", str(prompt)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(f"error: {prompt}{message}") and err.count("\n") == 1
