"""The host description and the measured ceilings."""

from benchmarks import ceilings
from benchmarks.machine import host_cpu, usable_cores


def test_matmul_ceiling_is_measured_with_the_models_operand_dtype(monkeypatch):
    for dtype in ("float32", "bfloat16"):
        assert ceilings.measure_matmul_flops(64, dtype) > 0
    asked = []
    monkeypatch.setattr(ceilings, "measure_matmul_flops", lambda dtype: asked.append(dtype) or 2.0)
    monkeypatch.setattr(ceilings, "measure_bandwidth", lambda: 1.0)
    # The higher of the previous (3.0, 0.5) and this measurement (2.0, 1.0) counts.
    assert ceilings.measure_ceilings((3.0, 0.5), "bfloat16") == (3.0, 1.0)
    assert asked == ["bfloat16"]


def test_host_cpu_names_the_model_cores_and_widest_vector_isa(tmp_path):
    cores = len(usable_cores())
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Example CPU @ 2.0GHz\n"
                    "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw\n\n")
    assert host_cpu(str(info)) == f"Example CPU @ 2.0GHz, {cores} cores, avx512"
    info.write_text("model name\t: Older CPU\nflags\t\t: sse2 avx avx2\n")
    assert host_cpu(str(info)) == f"Older CPU, {cores} cores, avx2"
