"""The host a benchmark's figures were measured on: the cores this process may use, and the
CPU's model and widest float vector ISA (the ceilings depend on all three).

Imports no JAX: scripts/bench.py reads the cores before JAX starts, to size the host devices.
"""

from __future__ import annotations

import os
import platform


def usable_cores() -> list[int]:
    """The CPU cores this process may run on (all of them where affinity is not exposed)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def host_cpu(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU the figures were measured on: model, usable cores, widest float vector ISA,
    e.g. 'Intel(R) Xeon(R) Processor, 2 cores, avx512' (the ceilings depend on all three)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    cores = len(usable_cores())
    isa = next((name for name, flag in (("avx512", "avx512f"), ("avx2", "avx2")) if flag in flags),
               None)
    return ", ".join(x for x in (model, f"{cores} cores", isa) if x)
