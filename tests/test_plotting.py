"""Plots from a small synthetic metrics.jsonl, plot_curves and the plot script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from theorygrpo_jax.plotting import main as plotting_main
from theorygrpo_jax.plotting import plot_curves, plot_metrics, series, smooth

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_metrics(run_dir: Path, n: int = 40, extra: bool = True) -> Path:
    rng = np.random.default_rng(0)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "metrics.jsonl"
    with open(path, "w") as f:
        for step in range(1, n + 1):
            record = {"step": step, "mean_reward": float(rng.normal(step / 10, 1)),
                      "max_reward": step / 5, "total_reward": step / 8, "anomalies_reward": float(rng.normal()),
                      "light_exotics_reward": -1.0, "success_rate": step / n,
                      "unique_successes": step // 4, "kl": 0.01 * step, "entropy": 2.0 - step / n,
                      "kl_coef": 0.05, "entropy_coef": 0.01, "total_loss": 1.0 / step,
                      "policy_loss": -0.1, "note": "text is ignored"}
            if extra:
                record |= {"curriculum_phase": 1 + step // 15, "buffer_size": min(step * 10, 100),
                           "buffer_mean_reward": 3.0, "buffer_success_rate": 0.5}
            f.write(json.dumps(record) + "\n")
        f.write('{"step": 41, "mean_rew')        # truncated by a crash
    return path


def assert_pngs(paths: list[Path], names: set[str]) -> None:
    assert {p.name for p in paths} == names
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000
        assert p.read_bytes()[:8] == PNG_MAGIC


def test_all_plots_from_run_dir(tmp_path: Path) -> None:
    write_metrics(tmp_path)
    paths = plot_metrics(tmp_path)
    assert all(p.parent == tmp_path / "plots" for p in paths)
    assert_pngs(paths, {"reward.png", "success.png", "kl_entropy.png", "loss.png",
                        "curriculum.png", "replay.png"})


def test_missing_keys_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "run" / "metrics.jsonl"
    path.parent.mkdir()
    path.write_text('{"step": 1, "reward": 0.5, "loss": 2}\n{"step": 2, "reward": 1.5, "loss": 1}\n')
    paths = plot_metrics(path, tmp_path / "out")
    assert all(p.parent == tmp_path / "out" for p in paths)
    assert_pngs(paths, {"reward.png", "loss.png"})
    assert_pngs(plot_metrics(path), {"reward.png", "loss.png"})   # default: the run's plots/
    assert (tmp_path / "run" / "plots" / "loss.png").is_file()


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        plot_metrics(tmp_path / "missing")
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="no metrics records"):
        plot_metrics(tmp_path)


def test_series_keeps_last_value_of_repeated_steps_and_smooth() -> None:
    records = [{"step": 1, "a": 1.0}, {"step": 2, "a": 2.0}, {"step": 3, "a": 3.0},
               {"step": 2, "a": 20.0}, {"step": 3, "b": 1.0}, {"step": 4, "a": float("inf")}]
    steps, values = series(records, "a")
    assert steps.tolist() == [1, 2, 3, 4]
    assert values[:3].tolist() == [1.0, 20.0, 3.0] and np.isnan(values[3])
    smoothed = smooth(np.array([1.0, np.nan, 1.0]))
    np.testing.assert_allclose(smoothed, [1.0, 1.0, 1.0])


def test_plot_curves(tmp_path: Path) -> None:
    steps = np.arange(50)
    out = plot_curves({"pretrained": (steps, np.sqrt(steps)), "random init": (steps[:5], [0, 1, 1, 2, 2])},
                      tmp_path / "cmp" / "reward.png", "Reward", "mean reward")
    assert out == tmp_path / "cmp" / "reward.png"
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="'x'"):
        plot_curves({"x": ([1, 2], [1.0])}, tmp_path / "bad.png", "t", "y")


def test_script_one_line_error_and_success(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = ROOT / "scripts" / "plot.py"
    bad = subprocess.run([sys.executable, str(script), str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("theorygrpo-plot: error:") and "nope" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    # The success path in-process (the entry point's main), to spare a second interpreter start.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    assert plotting_main([str(tmp_path / "run"), "--out", str(tmp_path / "png")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "png" / "loss.png")]
    (tmp_path / "nothing_known.jsonl").write_text('{"step": 1, "unplotted_key": 0.5}\n')
    assert plotting_main([str(tmp_path / "nothing_known.jsonl")]) == 1
    assert "none of the plotted metrics was logged" in capsys.readouterr().err


def test_key_selection_of_the_reward_plot() -> None:
    from theorygrpo_jax.plotting import FIGURES
    keys = ["mean_reward", "total_reward", "max_reward", "best_reward", "anomalies_reward",
            "length_reward", "buffer_mean_reward", "kl"]
    (_, total, _, _), (_, components, _, _) = FIGURES["reward.png"][1]
    assert total(keys) == ["mean_reward", "total_reward", "max_reward"]
    assert components(keys) == ["anomalies_reward", "length_reward"]
