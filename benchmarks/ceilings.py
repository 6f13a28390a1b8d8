"""The machine's ceilings, measured: FLOP/s of a large matmul and bytes/s of a large read.

Measured before and after a timed run, the higher counting (`measure_ceilings`):
a burst of load from other processes should not lower the bar.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .timing import best_time


def measure_matmul_flops(n: int = 2048, dtype: str = "float32") -> float:
    """FLOP/s of a jitted n x n x n matmul of `dtype` operands, summed in float32."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
    matmul = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
    return 2.0 * n ** 3 / best_time(matmul, a, a)


def measure_bandwidth(nbytes: int = 256 << 20) -> float:
    """Bytes/s read by a jitted sum over a float32 array of `nbytes` (larger than the caches)."""
    x = jnp.ones((nbytes // 4,), jnp.float32)
    return nbytes / best_time(jax.jit(jnp.sum), x)


def measure_ceilings(previous: tuple[float, float] = (0.0, 0.0),
                     matmul_dtype: str = "float32") -> tuple[float, float]:
    """(matmul FLOP/s, bandwidth bytes/s), each the higher of this measurement and `previous`;
    the matmul with `matmul_dtype` operands (the model's)."""
    return (max(previous[0], measure_matmul_flops(dtype=matmul_dtype)),
            max(previous[1], measure_bandwidth()))
