"""rundir: the lock of a run directory, a run's files, changed settings, and cutting metrics,
history and catalogue back to a checkpoint's step (what a resume reads)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from theorygrpo_jax import rundir
from theorygrpo_jax.discoveries import DiscoveryCatalogue
from theorygrpo_jax.grammar.text import parse_prompt_text
from theorygrpo_jax.tasks import SM_FIELDS_PROMPT

from ..physics.helpers import sm


def test_a_second_lock_on_a_held_directory_names_the_holder(tmp_path):
    with rundir.RunLock(tmp_path) as lock:
        assert lock.created and json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()
        with pytest.raises(rundir.RunInUse) as err:   # another open file: flock refuses it
            rundir.RunLock(tmp_path).acquire()
        assert f"pid {os.getpid()} on host" in str(err.value) and "\n" not in str(err.value)
    with rundir.RunLock(tmp_path):                     # released: free again
        pass


def test_an_undone_lock_leaves_the_file_as_it_was(tmp_path):
    rundir.RunLock(tmp_path).acquire().release(undo=True)
    assert not (tmp_path / "run.lock").exists()
    (tmp_path / "run.lock").write_text("before\n")
    rundir.RunLock(tmp_path).acquire().release(undo=True)
    assert (tmp_path / "run.lock").read_text() == "before\n"


def test_run_files_and_clear_run_leave_other_files(tmp_path):
    for name in ("metrics.jsonl", "config.yaml", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "checkpoints" / "1").mkdir(parents=True)
    assert rundir.run_files(tmp_path) == ["checkpoints", "metrics.jsonl", "config.yaml"]
    rundir.clear_run(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_check_output_dir_rejects_a_file_on_the_way(tmp_path):
    (tmp_path / "f").write_text("x")
    for path in (tmp_path / "f", tmp_path / "f" / "run"):
        with pytest.raises(rundir.RunDirError, match=f"^{tmp_path / 'f'}: is a file"):
            rundir.check_output_dir(path)
    rundir.check_output_dir(tmp_path / "new" / "run")


def test_changed_settings_lists_each_changed_key():
    saved = {"grpo": {"learning_rate": 1e-4, "group_size": 8}, "train": {"num_episodes": 2}}
    now = {"grpo": {"learning_rate": 2e-4, "group_size": 8}, "train": {"num_episodes": 4,
                                                                       "seed": 1}}
    assert rundir.changed_settings(saved, now) == ["grpo.learning_rate 0.0001 -> 0.0002",
                                                   "train.num_episodes 2 -> 4",
                                                   "train.seed None -> 1"]


def test_cut_metrics_keeps_the_steps_up_to_the_checkpoint(tmp_path):
    lines = [json.dumps({"step": s, "loss": s / 10}) + "\n" for s in (1, 2, 3, 4)]
    (tmp_path / "metrics.jsonl").write_text("".join(lines) + '{"step": 5, "lo')   # cut by a crash
    records = rundir.cut_metrics(tmp_path, 2)
    assert [r["step"] for r in records] == [1, 2]
    assert (tmp_path / "metrics.jsonl").read_text() == "".join(lines[:2])
    assert rundir.history_from(records, 2) == {"loss": [0.1, 0.2]}
    # no records: the saved statistics' history, cut to the step
    assert rundir.history_from([], 2, {"history": {"loss": [1, 2, 3]}}) == {"loss": [1, 2]}


def test_undecodable_metrics_are_one_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_bytes(b'{"step": 1}\n\xff\xfe')
    with pytest.raises(rundir.RunDirError, match="metrics.jsonl: not a JSON-lines file"):
        rundir.cut_metrics(tmp_path, 1)


SM_PROMPT = parse_prompt_text(SM_FIELDS_PROMPT, "sm prompt")
SINGLET = "  SCALAR CPLX NOVEV q_{} 1 1 END\n"


def _files(run: Path) -> dict[str, str]:
    out = {"discoveries.jsonl": (run / "discoveries.jsonl").read_text()}
    out.update({p.name: p.read_text() for p in sorted((run / "discoveries").glob("*.theory"))})
    return out


def test_cut_catalogue_restores_the_files_of_the_step_and_a_resume_rewrites_the_rest(tmp_path):
    a, b, c = (sm(SINGLET.format(q)) for q in (6, 12, 18))
    steps = {1: [(a, -1.0), (b, -2.0)], 2: [(a, -0.5)], 3: [(c, -1.0), (a, -0.1)],
             4: [(b, -1.5), (c, -3.0)]}

    def run_steps(catalogue, which):
        for step in which:
            catalogue.add_batch([(t, {"total_reward": r}) for t, r in steps[step]], step)

    straight = tmp_path / "straight"
    catalogue = DiscoveryCatalogue(straight, prompt=SM_PROMPT)
    run_steps(catalogue, [1, 2])
    at_two = _files(straight)
    run_steps(catalogue, [3, 4])
    at_four = _files(straight)
    assert at_four != at_two and len(at_four) == 4            # 3 models, a's file rewritten

    rundir.cut_catalogue(straight, 2)                         # a crash after step 4, resumed at 2
    assert _files(straight) == at_two
    run_steps(DiscoveryCatalogue(straight, prompt=SM_PROMPT), [3, 4])
    assert _files(straight) == at_four
