"""A run directory stands alone (issue 15): resume, evaluate, sample and score it from its own
config.yaml, hooks included; num_episodes is the total number of steps; TRL names on the
command line. One smoke run (2 steps, curriculum, a reward.extra term and an advantage hook
given with --set), made through `train.main` in this process."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from theorygrpo_jax import generate, score
from theorygrpo_jax import train as T
from theorygrpo_jax.config import load_config
from theorygrpo_jax.discoveries import load_catalogue

HOOK_FLAGS = ["--set", "reward.extra=[{name: vev_scalars, weight: 0.5, "
                       "fn: 'tests.test_hooks:n_vev_scalars'}]",
              "--set", "grpo.advantage_fn=tests.test_hooks:centred_twice"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert T.main(["--config", "smoke", "--output_dir", str(out), "--num_episodes", "2",
                   "--use_curriculum", "--log_interval", "1", *HOOK_FLAGS]) == 0
    return out


def _exit(capsys, argv, main=T.main):
    with pytest.raises(SystemExit) as err:
        main(argv)
    return err.value.code, capsys.readouterr()


def test_the_run_saved_its_hooks_by_name(run):
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["reward"]["extra"] == [{"name": "vev_scalars", "weight": 0.5,
                                         "fn": "tests.test_hooks:n_vev_scalars"}]
    assert saved["grpo"]["advantage_fn"] == "tests.test_hooks:centred_twice"
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and all("vev_scalars" in r for r in records)


def test_resume_reads_the_run_config_and_continues_to_num_episodes(run, tmp_path, capsys):
    # The packaged default config (d_model 128) would not fit the smoke run's checkpoint: the
    # resume works only from the run's own config.yaml.
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert T.main(["--resume", str(copy), "--num_episodes", "3"]) == 0
    steps = [json.loads(x)["step"] for x in (copy / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert load_config(copy / "config.yaml").train.num_episodes == 3


def test_num_episodes_below_the_runs_step_is_a_one_line_error(run, capsys):
    code, out = _exit(capsys, ["--resume", str(run), "--num_episodes", "1"])
    assert code == 2
    assert out.err == ("error: num_episodes is the total number of steps; the run is at step 2: "
                       "pass --num_episodes > 2\n")


def test_num_episodes_at_the_runs_step_has_nothing_to_do(run, capsys):
    before = (run / "metrics.jsonl").read_text()
    assert T.main(["--resume", str(run)]) == 0          # config.yaml: num_episodes 2
    err = capsys.readouterr().err
    # the resume's checks (lock, checkpoint against the config) ran first, then the message
    assert err.strip().splitlines()[-1].startswith(f"nothing to do: {run} is at step 2 = num_episodes")
    assert (run / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize("flag", ["--checkpoint", "--resume"])
def test_eval_only_from_the_run_directory_alone(run, capsys, flag):
    assert T.main(["--eval_only", flag, str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["episodes"] == 8                      # the smoke run's train.eval_episodes


def test_sample_from_the_run_directory_alone(run, capsys):
    assert generate.main(["--checkpoint", str(run), "--n", "2", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all("vev_scalars" in r["rewards"] for r in rows)   # its reward


def test_score_with_the_run_config_equals_the_training_score(run, capsys):
    entries = load_catalogue(run)
    assert entries, "the smoke run found no successful theory to score"
    files = [str(run / "discoveries" / f"{e['id']:05d}.theory") for e in entries]
    for how in (["--config", str(run / "config.yaml")], ["--run", str(run)], ["--config", str(run)]):
        assert score.main([*files, "--json", *how]) == 0
        results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        for entry, res in zip(entries, results, strict=True):
            assert res["rewards"]["total_reward"] == pytest.approx(entry["scores"]["total_reward"],
                                                                   rel=1e-6, abs=1e-6)
            assert res["rewards"]["vev_scalars"] == entry["scores"]["vev_scalars"]
            assert res["weights"]["vev_scalars"] == 0.5
    # The default reward differs from the run's: no vev_scalars term (the run: weight 0.5),
    # heavy exotics weighed 0 (smoke: 1), and no length penalty for a theory of <= 64 tokens
    # (default soft_len 96; smoke: 60 of max_len 64). So default total = the run's total
    # - 0.5 x vev_scalars - heavy_exotics_reward - the run's length_reward.
    assert score.main([files[0], "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    entry = entries[0]["scores"]
    assert "vev_scalars" not in default["rewards"] and entry["length"] <= 64
    assert default["rewards"]["total_reward"] == pytest.approx(
        entry["total_reward"] - 0.5 * entry["vev_scalars"] - entry["heavy_exotics_reward"]
        - entry["length_reward"], abs=1e-5)


def test_score_table_shows_the_run_weights(run, capsys):
    entries = sorted((run / "discoveries").glob("*.theory"))
    assert score.main([str(entries[0]), "--run", str(run)]) == 0
    table = capsys.readouterr().out
    assert "rewards (total_reward = sum of weight x value):" in table
    assert any(line.split()[:3] == ["vev_scalars", "0.5", "x"] for line in table.splitlines())


def test_score_takes_one_reward_source(run, capsys):
    code, out = _exit(capsys, ["x.theory", "--run", str(run), "--preset", "lhc"], score.main)
    assert code == 2 and out.err == ("error: give one of --run, --preset: each names the reward "
                                     "to score with\n")


def test_trl_names_and_did_you_mean_on_the_command_line(capsys):
    code, out = _exit(capsys, ["--config", "smoke", "--set", "grpo.kl_coeff=0.1", "--eval_only"])
    assert code == 2 and len(out.err.splitlines()) == 1
    assert "unknown key 'grpo.kl_coeff': did you mean 'kl_coef'?" in out.err
    code, out = _exit(capsys, ["--config", "smoke", "--set", "grpo.loss_type=dr_grpo"])
    assert code == 2 and "'dr_grpo' has no equivalent here" in out.err


def test_a_hook_that_does_not_resolve_is_one_line(capsys):
    code, out = _exit(capsys, ["--config", "smoke", "--eval_only",
                               "--set", "grpo.advantage_fn=tests.test_hooks:nope"])
    assert code == 2 and len(out.err.splitlines()) == 1
    assert out.err.startswith("error: ") and (
        "grpo.advantage_fn: 'tests.test_hooks:nope': module 'tests.test_hooks' has no "
        "attribute 'nope'") in out.err


def test_the_config_help_says_run_directories_stand_alone(capsys):
    code, out = _exit(capsys, ["--help"])
    assert code == 0 and "config.yaml with --resume RUN or --eval_only --checkpoint RUN" in \
        " ".join(out.out.split())
