"""scripts/bench.py: bad device counts stop with one line, before anything compiles."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


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
        "--matmul-dtype applies to the main benchmark, not to --processes, --parts or --ablation")


def test_matmul_ceiling_is_measured_with_the_models_operand_dtype(monkeypatch):
    from theorygrpo_jax import bench

    for dtype in ("float32", "bfloat16"):
        assert bench.measure_matmul_flops(64, dtype) > 0
    asked = []
    monkeypatch.setattr(bench, "measure_matmul_flops", lambda dtype: asked.append(dtype) or 2.0)
    monkeypatch.setattr(bench, "measure_bandwidth", lambda: 1.0)
    assert bench.measure_ceilings((3.0, 0.5), "bfloat16") == (3.0, 1.0)
    assert asked == ["bfloat16"]


def test_host_cpu_names_the_model_cores_and_widest_vector_isa(tmp_path):
    from theorygrpo_jax import bench
    from theorygrpo_jax.bench_processes import usable_cores
    cores = len(usable_cores())
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Example CPU @ 2.0GHz\n"
                    "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw\n\n")
    assert bench.host_cpu(str(info)) == f"Example CPU @ 2.0GHz, {cores} cores, avx512"
    info.write_text("model name\t: Older CPU\nflags\t\t: sse2 avx avx2\n")
    assert bench.host_cpu(str(info)) == f"Older CPU, {cores} cores, avx2"
