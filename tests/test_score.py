"""scripts/score.py (spec §5): JSON lines, rejected files, exit status, readable table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from theorygrpo_jax import resources, score
from theorygrpo_jax.grammar import text
from theorygrpo_jax.reward import RewardConfig

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "theories"     # the documented path: a symlink to the packaged theories
SPEC_KEYS = {"file", "accepted", "error", "anomalies", "anomaly_free", "anomaly_l1", "invalid_terms",
             "light_exotics", "success", "rewards"}
REWARD_KEYS = {"anomalies_reward", "light_exotics_reward", "invalid_terms_reward", "length_reward",
               "total_reward"}


@pytest.fixture(scope="module")
def bad_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("theories") / "bad.theory"
    path.write_text("GAUGE U1 END_GAUGE\nFIELDS\n  FERMION L gen_1 q_1 END\n"
                    "  FERMION L gen_1 q_2 BOGUS END\nEND_FIELDS\nTERMS\nEND_TERMS\n")
    return path


def test_score_script_json(bad_file):
    files = [EXAMPLES / "sm.theory", bad_file, EXAMPLES / "su5_gut.theory"]
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "score.py"), *map(str, files), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0                       # one file was rejected
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["file"] for r in lines] == list(map(str, files))
    sm, bad, su5 = lines
    for r in lines:
        assert SPEC_KEYS <= set(r)

    assert sm["accepted"] and sm["error"] is None
    assert sm["success"] and sm["anomaly_free"] and sm["anomaly_l1"] == 0
    assert sm["invalid_terms"] == 0 and sm["light_exotics"] == 0
    assert sm["anomalies"] == {"SU3^3": 0, "SU2^2 U1": 0, "SU3^2 U1": 0, "U1^3": 0, "grav U1": 0,
                               "Witten SU2": 0}
    assert REWARD_KEYS <= set(sm["rewards"]) and sm["rewards"]["total_reward"] == 0.0
    assert sm["reference_agrees"]

    assert bad["accepted"] is False
    assert "bad.theory:4" in bad["error"] and "BOGUS" in bad["error"]   # file, line, token

    assert su5["accepted"] and su5["success"] and su5["anomalies"] == {"SU5^3": 0}


def test_score_table_and_preset(capsys):
    assert score.main([str(EXAMPLES / "sm.theory"), "--preset", "lhc"]) == 0
    table = capsys.readouterr().out
    assert "SUCCESS" in table and "U1^3" in table and "Witten SU2" in table
    assert "Q=  2/3" in table and "m=[0.002, 1, 200]" in table       # the top, as a fraction and GeV
    assert "total_reward" in table and _row(table, "total_reward") == ["total_reward", "0.0000"]


def _row(table: str, name: str) -> list[str]:
    """The words of the table's reward row `name`."""
    rows = [line.split() for line in table.splitlines() if line.split()[:1] == [name]]
    assert len(rows) == 1, table
    return rows[0]


def test_the_table_shows_each_weight_and_marks_components_the_total_ignores(capsys):
    # the default reward weighs heavy exotics 0: shown, marked as not in the total
    assert score.main([str(EXAMPLES / "sm.theory")]) == 0
    table = capsys.readouterr().out
    assert _row(table, "anomalies_reward") == ["anomalies_reward", "1", "x", "0.0000"]
    assert _row(table, "heavy_exotics_reward")[:4] == ["heavy_exotics_reward", "0", "x", "0.0000"]
    assert "(weight 0: not in the total)" in " ".join(_row(table, "heavy_exotics_reward"))
    assert "not in the total" not in " ".join(_row(table, "length_reward"))


def test_score_with_a_packaged_config_uses_its_reward(capsys):
    # smoke: max_len 64, soft_len 60, length_alpha 1, heavy exotics weighed 1. The SM file has
    # L tokens (BOS..EOS): length_reward = -(L - 60) / (64 - 60) when L > 60.
    theory = text.load_theory(EXAMPLES / "sm.theory")
    length = len(theory)
    assert score.main([str(EXAMPLES / "sm.theory"), "--config", "smoke", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["length"] == length and length > 60
    assert res["rewards"]["length_reward"] == pytest.approx(-(length - 60) / 4)
    assert res["rewards"]["total_reward"] == pytest.approx(-(length - 60) / 4)
    assert res["weights"]["heavy_exotics_reward"] == 1.0


@pytest.mark.parametrize("args,message", [
    (["--config", "nope"], "error: nope: no such config file"),
    (["--run", "/nonexistent"], "error: /nonexistent: not a run directory (no config.yaml)"),
    (["--config", "smoke", "--preset", "lhc"], "error: give one of --config, --preset"),
])
def test_reward_source_errors_are_one_line(capsys, args, message):
    with pytest.raises(SystemExit) as err:
        score.main([str(EXAMPLES / "sm.theory"), *args])
    out = capsys.readouterr()
    assert err.value.code == 2 and out.err.startswith(message) and len(out.err.splitlines()) == 1


def test_score_files_in_process(bad_file):
    res = score.score_files([str(bad_file), str(EXAMPLES / "sm.theory")], RewardConfig())
    assert res[0]["accepted"] is False and res[1]["accepted"] is True
    higgs = res[1]["fields"][5]
    assert not higgs["exotic"] and [c["Q"] for c in higgs["components"]] == ["1", "0"]
    assert higgs["components"][0]["masses_gev"] == [100.0]


def test_files_that_are_not_theories_are_rejected_and_the_others_scored(tmp_path):
    binary = tmp_path / "binary.theory"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    bom = tmp_path / "bom.theory"
    bom.write_bytes(b"\xef\xbb\xbf" + (EXAMPLES / "sm.theory").read_bytes())
    files = [str(binary), "/dev/zero", str(tmp_path), str(bom), str(EXAMPLES / "sm.theory")]
    res = score.score_files(files, RewardConfig())
    assert [r["accepted"] for r in res] == [False, False, False, True, True]
    assert res[0]["error"] == f"{binary}: not a theory file: not UTF-8 text (byte 0)"
    assert res[1]["error"] == "/dev/zero: not a theory file: larger than 1048576 bytes"
    assert res[2]["error"] == f"{tmp_path}: cannot read theory: Is a directory"
    assert res[3]["rewards"] == res[4]["rewards"]            # a BOM changes nothing


def test_scores_in_batches_equal_one_batch():
    theories = [text.load_theory(EXAMPLES / name) for name in ("sm.theory", "su5_gut.theory")]
    many = [theories[i % 2] for i in range(score.SCORE_BATCH + 3)]   # two JAX calls
    res = score.score_token_lists(many, RewardConfig())
    assert len(res) == len(many)
    assert all(r == res[i % 2] for i, r in enumerate(res))
