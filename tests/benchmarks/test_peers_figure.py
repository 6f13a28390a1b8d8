"""The peer benchmark's figure (torch-free): the rows it draws from a result, the PNG, and
`bench_peers.py --from-json` in the main install, with a one-line error for a file that is not
a result."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.peers.figure import figure, step_rows

ROOT = Path(__file__).resolve().parents[2]


def _result(preset="original", dtype="bfloat16", trl=True):
    def side(s):
        return {"step_s": {"median": s, "best": s}}
    groups = {"64": {"project": side(1.5), "torch": side(4.5), **({"trl": side(7.5)} if trl else {})},
              "8": {"project": side(0.3), "torch": side(0.9)}}
    return {"preset": preset, "matmul_dtype": dtype, "groups": groups}


def test_step_rows_read_every_group_of_every_result():
    rows = step_rows([_result(), _result("cpu_default", "float32", trl=False)])
    assert rows == [
        ("original, bfloat16, group 64", {"project": 1.5, "torch": 4.5, "trl": 7.5}),
        ("original, bfloat16, group 8", {"project": 0.3, "torch": 0.9}),
        ("cpu_default, float32, group 64", {"project": 1.5, "torch": 4.5}),
        ("cpu_default, float32, group 8", {"project": 0.3, "torch": 0.9}),
    ]


def test_a_result_without_this_projects_step_is_refused():
    bad = _result()
    del bad["groups"]["8"]["project"]
    with pytest.raises(KeyError):
        step_rows([bad])


def test_figure_writes_a_png(tmp_path):
    path = figure([_result()], tmp_path / "sub" / "peers.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _script(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_peers.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_from_json_draws_without_torch_and_refuses_other_files(tmp_path):
    good, bad = tmp_path / "run.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_result()))
    bad.write_text(json.dumps({"preset": "original"}))
    proc = _script("--from-json", str(good), "--plot", str(tmp_path / "p.png"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p.png").is_file()
    proc = _script("--from-json", str(good), str(bad), "--plot", str(tmp_path / "q.png"))
    assert proc.returncode == 2 and not (tmp_path / "q.png").exists()
    assert proc.stderr.strip() == f"error: {bad}: not a bench_peers --json output (no 'groups' in it)"
