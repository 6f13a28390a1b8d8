"""The benchmark scripts: bad input stops with one line before anything compiles, and the
scripts run from any directory (the `benchmarks` package is installed, no sys.path edits)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script(name, *args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def _bench(*args):
    return _script("bench.py", *args)


def test_devices_that_do_not_split_the_batch_is_a_one_line_error():
    proc = _bench("--devices", "3", "--batch", "64")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --devices 3 does not split a batch of 64 rows evenly"


def test_negative_devices_is_a_usage_error():
    proc = _bench("--devices", "-1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "--devices must be 0 (every device) or a positive count, got -1")


def test_zero_tries_is_a_one_line_error():
    proc = _bench("--tries", "0", "--devices", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --repeats and --tries must be at least 1, got 3 and 0"


def test_processes_that_do_not_split_the_batch_is_a_one_line_error():
    proc = _bench("--processes", "3", "--batch", "64")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: --processes 3 must split a batch of 64 rows")


def test_matmul_dtype_outside_the_main_benchmark_is_a_usage_error():
    proc = _bench("--parts", "--matmul-dtype", "bfloat16")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "--matmul-dtype applies to the main benchmark, not to --processes, --parts, --ablation "
        "or --options")


def test_bad_sampler_options_are_one_line_errors():
    cases = {"nope": "error: --options 'nope': not JSON (Expecting value)",
             "[16]": "error: --options '[16]': expected a JSON object",
             '{"tails": 4}': ('error: --options {"tails": 4}: SamplerOptions.__init__() got an '
                              "unexpected keyword argument 'tails'"),
             '{"tail_slots": 0}': ('error: --options {"tail_slots": 0}: SamplerOptions.tail_slots '
                                   "must be >= 1 or None, got 0")}
    for text, message in cases.items():
        proc = _bench("--options", text, "--devices", "1")
        assert proc.returncode == 2, (text, proc.stderr)
        assert proc.stderr.strip() == message


def test_reward_bench_bad_counts_is_a_one_line_error():
    proc = _script("bench_reward.py", "--batch", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: --batch, --repeats and --ref-sample must be at least 1, "
                                   "got 0, 20 and 1000")


def test_step_bench_missing_config_is_a_one_line_error(tmp_path):
    proc = _script("bench_step.py", "--config", str(tmp_path / "none.yaml"))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"error: {tmp_path / 'none.yaml'}: no such config file")


def test_scripts_start_from_another_directory(tmp_path):
    for name in ("bench.py", "bench_reward.py", "bench_step.py", "learn_check.py",
                 "pretrain_check.py"):
        proc = _script(name, "--help", cwd=tmp_path)
        assert proc.returncode == 0, (name, proc.stderr)
        assert proc.stdout.startswith("usage:"), name
