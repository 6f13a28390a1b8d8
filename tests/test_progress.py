"""The run's console and run.log: value formatting, the fixed key order, a tqdm bar on a
terminal and plain lines elsewhere, the compile notice, and run.log through a real (smoke)
run that is then resumed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from theorygrpo_jax import progress as P

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
METRICS = {"entropy": 1.2345, "kl": -3.2e-05, "total_loss": 0.0709, "unique_successes": 7.0,
           "success_rate": 0.375, "mean_reward": -7.4256, "other": 1.0}   # not in display order


class TTY(io.StringIO):
    def isatty(self):
        return True


def test_format_value():
    assert P.format_value(3.2e-05) == "3.2e-05"
    assert P.format_value(-3.2e-05) == "-3.2e-05"       # not -0.0000
    assert P.format_value(0.0) == "0"
    assert P.format_value(-7.4256) == "-7.426"
    assert P.format_value(0.0709) == "0.0709"
    assert P.format_value(123456.0) == "1.2e+05"
    assert P.format_value(float("nan")) == "nan"


def test_fields_in_fixed_order():
    fields = P.progress_fields(METRICS)
    assert list(fields) == ["reward", "success", "models", "loss", "kl", "entropy"]
    assert fields == {"reward": "-7.426", "success": "37.5%", "models": "7", "loss": "0.0709",
                      "kl": "-3.2e-05", "entropy": "1.234"}
    assert list(P.progress_fields({"kl": 1e-2, "mean_reward": 1.0})) == ["reward", "kl"]


def make(tmp_path, stream, tty=None, show=True, log=None):
    run_log = P.RunLog(tmp_path / P.RUN_LOG)
    out = io.StringIO()
    return P.Progress(0, 5, 2, run_log, log=log, show=show, stream=stream, out=out, tty=tty), out


def test_plain_lines_when_not_a_terminal(tmp_path):
    stream, notices = io.StringIO(), []     # a StringIO is no terminal: isatty() is False
    progress, out = make(tmp_path, stream, log=notices.append)
    assert progress.bar is None
    progress.compiling()
    for step in range(1, 6):
        progress.step_done(step, METRICS, 0.5, last=step == 5)
    progress.write("a statistics block")
    progress.close()
    progress.run_log.close()
    lines = stream.getvalue().splitlines()
    # every log_interval (2) steps and the last
    assert [line.split(" | ")[0] for line in lines] == ["step 2/5", "step 4/5", "step 5/5"]
    assert lines[0] == ("step 2/5 | reward -7.426 | success 37.5% | models 7 | loss 0.0709 | "
                        "kl -3.2e-05 | entropy 1.234 | 0.5 s/step")
    assert "\r" not in stream.getvalue() and "\r" not in out.getvalue()
    assert out.getvalue() == "a statistics block\n"
    assert notices == ["compiling the step (first step; up to ~30 s on CPU, seconds once cached)…",
                       "compiled in 0.5 s (the first step included)"]
    logged = (tmp_path / P.RUN_LOG).read_text().splitlines()
    assert logged == notices + lines + ["a statistics block"]


def test_compile_notice_on_other_backends():
    assert P.compile_notice("cpu") == "compiling the step (first step; up to ~30 s on CPU, seconds once cached)…"
    assert "CPU" not in P.compile_notice("gpu")


def test_bar_on_a_terminal_in_fixed_order(tmp_path):
    stream = TTY()
    progress, out = make(tmp_path, stream)
    assert progress.bar is not None
    progress.step_done(1, METRICS, 0.5)
    progress.write("above the bar")
    progress.close()
    progress.run_log.close()
    drawn = stream.getvalue()
    assert "\r" in drawn                                  # a live bar
    last = drawn.split("\r")[-1]
    order = [last.index(f"{k}=") for k in ("reward", "success", "models", "loss", "kl", "entropy")]
    assert order == sorted(order) and "kl=-3.2e-05" in last
    assert "above the bar" in out.getvalue()
    assert "step 1/5" not in drawn                        # no plain lines under a bar


def test_no_bar_and_no_lines_when_progress_is_off_but_run_log_has_them(tmp_path):
    stream = TTY()
    progress, _ = make(tmp_path, stream, show=False)
    progress.step_done(2, METRICS, 0.5)
    progress.close()
    progress.run_log.close()
    assert stream.getvalue() == ""
    assert (tmp_path / P.RUN_LOG).read_text().startswith("compiled in 0.5 s")
    assert "step 2/5 | reward" in (tmp_path / P.RUN_LOG).read_text()


def test_non_primary_shows_and_logs_nothing(tmp_path):
    stream, notices = TTY(), []
    run_log = P.RunLog(tmp_path / P.RUN_LOG)
    progress = P.Progress(0, 5, 1, run_log, log=notices.append, stream=stream, primary=False)
    progress.compiling()
    progress.step_done(1, METRICS, 0.5, last=True)
    progress.write("block")
    progress.notice("notice")
    progress.close()
    run_log.close()
    assert stream.getvalue() == "" and notices == [] and progress.bar is None
    assert (tmp_path / P.RUN_LOG).read_text() == ""


def test_run_log_of_a_run_and_its_resume(tmp_path, capsys):
    """A real smoke run: run.log holds what it showed (notices, statistics blocks, progress
    lines), stdout/stderr are no terminal under pytest so progress comes as plain lines, and
    a resume appends to run.log."""
    from theorygrpo_jax import train as T
    from theorygrpo_jax.config import load_config

    config = load_config(SMOKE, {"train.num_episodes": 2, "train.log_interval": 1,
                                 "train.progress_bar": True})
    notices = []
    T.train(config, tmp_path, log=notices.append)
    first = (tmp_path / P.RUN_LOG).read_text()
    shown = capsys.readouterr()
    assert notices[0].startswith("theorygrpo_jax: ") and "steps 0..2" in notices[0]
    assert notices[1].startswith("compiling the step (first step")
    assert notices[2].startswith("compiled in ")
    assert "Episode 2 Statistics:" in shown.out
    assert "step 1/2 | reward" in shown.err and "\r" not in shown.err + shown.out
    for line in notices + ["Episode 1 Statistics:", "Episode 2 Statistics:", "step 2/2 | reward"]:
        assert line in first, line
    longer = load_config(SMOKE, {"train.num_episodes": 3, "train.log_interval": 1,
                                 "train.progress_bar": True})
    T.train(longer, tmp_path, resume=str(tmp_path), log=lambda _: None)
    both = (tmp_path / P.RUN_LOG).read_text()
    assert both.startswith(first)                         # appended, not rewritten
    assert "steps 2..3" in both[len(first):] and "Episode 3 Statistics:" in both[len(first):]


@pytest.mark.parametrize("value,text", [(5e-4, "5.0e-04"), (1e-3, "0.001"), (9.9e-4, "9.9e-04")])
def test_format_value_threshold(value, text):
    assert P.format_value(value) == text


def test_pretraining_prints_plain_lines_when_not_a_terminal(tmp_path, capsys):
    # capsys' stderr is not a terminal (a pipe, a SLURM log): no tqdm bar, a line per log interval
    from theorygrpo_jax.config import load_config
    from theorygrpo_jax.pretrain import pretrain
    from theorygrpo_jax.resources import packaged_config

    config = load_config(packaged_config("pretrain"), {
        "pretrain.steps": 2, "pretrain.synthetic_theories": 40, "pretrain.batch_size": 4,
        "pretrain.warmup_steps": 0, "pretrain.log_interval": 1, "pretrain.save_interval": 2,
        "model.d_model": 32, "model.n_heads": 2, "model.n_layers": 1, "model.d_ff": 64,
        "train.tensorboard": False})
    lines = []
    pretrain(config, tmp_path / "run", log=lines.append)
    assert "\r" not in capsys.readouterr().err
    steps = [line for line in lines if line.startswith("step ")]
    assert [s.split(" |")[0] for s in steps] == ["step 1/2", "step 2/2"]
