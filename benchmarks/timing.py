"""Wall-clock timing of jitted calls: compile excluded, best of several calls (on a shared
machine the slow calls measure the other tenants)."""

from __future__ import annotations

import time
from typing import Any, Callable

import jax


def best_time(fn: Callable, *args: Any, repeats: int = 5) -> float:
    """Seconds of the fastest of `repeats` calls of fn(*args), after one warm-up call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def check_counts(repeats: int, tries: int) -> None:
    if repeats < 1 or tries < 1:
        raise ValueError(f"--repeats and --tries must be at least 1, got {repeats} and {tries}")


def time_batches(call: Callable, keys: list[jax.Array],
                 tries: int) -> tuple[list[list[float]], list, float, float]:
    """Call `call(key)` `tries` times per key, interleaved (a burst of load hits one try of
    every batch). Returns (seconds [key][try], the first try's outputs on the host, the first
    call's start and the last call's end on CLOCK_MONOTONIC, comparable between processes)."""
    times: list[list[float]] = [[] for _ in keys]
    outputs = []
    first_start = time.monotonic()
    for t in range(tries):
        for i, key in enumerate(keys):
            start = time.monotonic()
            out = jax.block_until_ready(call(key))
            times[i].append(time.monotonic() - start)
            if t == 0:
                outputs.append(jax.device_get(out))
    return times, outputs, first_start, time.monotonic()
