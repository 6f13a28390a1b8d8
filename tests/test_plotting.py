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
    (_, total, *_), (_, components, *_), (_, bonuses, *_) = FIGURES["reward.png"][1]
    assert total(keys) == ["mean_reward", "total_reward", "max_reward"]
    assert components(keys) == ["anomalies_reward", "length_reward"]
    assert bonuses(keys + ["novelty_reward"]) == ["novelty_reward"]
    assert "novelty_reward" not in components(keys + ["novelty_reward"])


def short_run(n: int = 3, curriculum_phase: float = 0.0, bonus: float = 0.0) -> list[dict]:
    """Records as a short run logs them: mean_reward = total_reward + the bonus."""
    return [{"step": s, "mean_reward": -s + bonus, "total_reward": -float(s),
             "anomalies_reward": -1.0, "novelty_reward": bonus, "success_rate": 0.1 * s,
             "unique_successes": s, "models_chiral": s // 2, "models_sm_charged": 0,
             "kl": 1e-5 * s, "entropy": 1.0, "total_loss": 0.1, "curriculum_phase": curriculum_phase}
            for s in range(1, n + 1)]


def legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_every_panel_has_a_y_label_and_integer_step_ticks() -> None:
    from theorygrpo_jax.plotting import run_figures
    records = short_run(3)
    records[0] |= {"buffer_size": 4, "buffer_mean_reward": 1.0, "buffer_success_rate": 0.5,
                   "kl_coef": 0.05, "policy_loss": 0.1}
    figures = run_figures(records, curriculum=True)
    assert set(figures) == {"reward.png", "success.png", "kl_entropy.png", "loss.png",
                            "curriculum.png", "replay.png"}
    for name, fig in figures.items():
        for ax in fig.axes:
            assert ax.get_ylabel(), (name, ax.get_title())
            ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
            assert ticks and all(float(t).is_integer() for t in ticks), (name, ticks)
        assert fig.axes[-1].get_xlabel() == "step"


def test_no_curriculum_png_when_the_curriculum_is_off(tmp_path: Path) -> None:
    from theorygrpo_jax.plotting import run_figures
    records = short_run(3)                                   # phase 0 throughout
    assert "curriculum.png" not in run_figures(records, curriculum=False)
    assert "curriculum.png" not in run_figures(records)       # unknown: the phase never moved
    assert "curriculum.png" in run_figures(records, curriculum=True)
    moved = short_run(3)
    moved[-1]["curriculum_phase"] = 1.0
    assert "curriculum.png" in run_figures(moved)
    # from a run directory: its config.yaml says whether the curriculum was on
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in moved))
    (tmp_path / "config.yaml").write_text("train:\n  use_curriculum: false\n")
    assert "curriculum.png" not in {p.name for p in plot_metrics(tmp_path)}
    (tmp_path / "config.yaml").write_text("train:\n  use_curriculum: true\n")
    assert "curriculum.png" in {p.name for p in plot_metrics(tmp_path)}


def test_mean_and_total_reward_drawn_once_when_equal_and_labelled_when_not() -> None:
    from theorygrpo_jax.plotting import SAME_AS_TOTAL, run_figures
    total_ax = run_figures(short_run(3))["reward.png"].axes[0]
    assert legend(total_ax) == [SAME_AS_TOTAL] and len(total_ax.get_lines()) == 1
    reward = run_figures(short_run(3, bonus=0.5))["reward.png"]
    labels = legend(reward.axes[0])
    assert len(labels) == 2 and labels[0].startswith("mean_reward (trained on: + discovery bonuses")
    assert labels[1].startswith("total_reward (the task's reward")
    # the bonus gets its own panel, and is left out when it is 0 throughout (switched off)
    assert [ax.get_title() for ax in reward.axes][-1] == "Discovery bonuses"
    titles = [ax.get_title() for ax in run_figures(short_run(3))["reward.png"].axes]
    assert titles == ["Total reward", "Reward components"]


def test_discovery_counts_are_plotted() -> None:
    from theorygrpo_jax.plotting import run_figures
    success = run_figures(short_run(3))["success.png"]
    kinds = [ax for ax in success.axes if ax.get_title() == "Discovered models by kind"]
    assert len(kinds) == 1 and set(legend(kinds[0])) == {"models_chiral", "models_sm_charged"}
    steps, values = kinds[0].get_lines()[legend(kinds[0]).index("models_chiral")].get_data()
    assert list(steps) == [1, 2, 3] and list(values) == [0, 1, 1]
    dark = short_run(3)
    for r in dark:
        r |= {"dark_sets_5": 1, "dark_sets_6": 0}
    titles = [ax.get_title() for ax in run_figures(dark)["success.png"].axes]
    assert titles[-1].startswith("Dark U(1)' charge sets") and len(titles) == 4


def test_plot_curves_points_are_markers_at_their_step() -> None:
    from theorygrpo_jax.plotting import curves_figure
    fig = curves_figure({"batch": ([1, 2, 3], [0.1, 0.2, 0.3])}, "t", "y",
                        points={"before": (0, 0.05), "after": (3, 0.9)})
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    for label, step, value in (("before", 0, 0.05), ("after", 3, 0.9)):
        xs, ys = lines[label].get_data()
        assert list(xs) == [step] and list(ys) == [value]          # one point, not a line
        assert lines[label].get_linestyle() == "None" and lines[label].get_marker() != "None"
    assert ax.get_ylabel() == "y"


def test_learn_check_figure_draws_the_final_evaluation_at_the_final_step(tmp_path: Path) -> None:
    from benchmarks.experiments import learn_check_curves, plot_learn_check
    records = [{"step": s, "mean_reward": -s + 0.5, "total_reward": -float(s),
                "success_rate": 0.2 * s} for s in range(1, 6)]
    before = {"mean_reward": -16.8, "success_rate": 0.08, "episodes": 512}
    after = {"mean_reward": 0.0, "success_rate": 1.0, "episodes": 512}
    specs = learn_check_curves(records, before, after)
    assert set(specs) == {"learn_check_reward.png", "learn_check_success.png"}
    reward = specs["learn_check_reward.png"]
    (label, (steps, values)), = reward["curves"].items()
    assert "total_reward" in label and values == [-1.0, -2.0, -3.0, -4.0, -5.0]
    assert list(reward["points"].values()) == [(0, -16.8), (5, 0.0)]   # before step 1, at step 5
    assert list(specs["learn_check_success.png"]["points"].values()) == [(0, 0.08), (5, 1.0)]
    paths = plot_learn_check(records, before, after, tmp_path)
    assert_pngs(paths, {"learn_check_reward.png", "learn_check_success.png"})
