"""The sampler's cost model and the bounds built on it (benchmarks/roofline.py): hand-derived
cases, and plain-Python references on thousands of random masks."""

import jax
import numpy as np
import pytest

from benchmarks import roofline as R
from theorygrpo_jax import model as M
from theorygrpo_jax import sampler as S


def test_roofline_cost_model():
    config = M.ModelConfig.original()
    shapes = jax.eval_shape(lambda: M.init_params(config, jax.random.PRNGKey(0)))
    costs = R.model_costs(config, shapes)
    assert costs["params"] == 8_459_776
    assert costs["matmul_flops"] == 2 * (4 * (4 * 512 * 512 + 2 * 512 * 1024) + 130 * 512)
    assert costs["kv_bytes_per_pos"] == 2 * 4 * 512 * 4
    assert costs["weight_bytes"] == 4 * 8_459_776
    # bfloat16 weight matmuls: the decode loop reads the 8 388 608 kernel weights and the
    # tied head (the embedding, 130 x 512, as the head matrix) in 2 bytes, the 9 norm scales
    # (512 each) in 4
    bf16 = R.model_costs(config.replace(matmul_dtype="bfloat16"), shapes)
    assert bf16["weight_bytes"] == 2 * (8_388_608 + 130 * 512) + 4 * 9 * 512
    assert bf16["matmul_flops"] == costs["matmul_flops"]
    # A bfloat16 cache: K and V of 4 layers x 512 per position, 2 bytes each
    assert R.model_costs(config.replace(cache_dtype="bfloat16"), shapes)["kv_bytes_per_pos"] \
        == 2 * 4 * 512 * 2
    mask = np.zeros((2, 8), bool)
    mask[0, 1] = True  # one token at position 1: compute-bound at 1 FLOP/s, 1 B/s
    flops = costs["matmul_flops"] + costs["attn_flops_per_pos"] * 2
    assert R.roofline_time(costs, mask, 1.0, 1e30) == pytest.approx(flops)


def test_roofline_reads_weights_once_per_batch_step():
    # By hand: weights 1000 B, KV 10 B per cached position, at 1 B/s (bandwidth-bound).
    costs = dict(matmul_flops=0.0, attn_flops_per_pos=0.0, weight_bytes=1000.0,
                 kv_bytes_per_pos=10.0)
    mask = np.zeros((4, 6), bool)
    mask[:, 1] = True      # position 1: 4 tokens share one weight read, each reads KV 0..1
    mask[0, 2] = True      # position 2: 1 token reads all the weights and KV 0..2
    expected = 4 * (1000 / 4 + 2 * 10) + (1000 + 3 * 10)
    assert R.roofline_time(costs, mask, 1e30, 1.0) == pytest.approx(expected)
    # A full batch of 4 at every step: every token pays 1000 / 4.
    assert R.roofline_time(costs, mask, 1e30, 1.0, weights_shared_by=4) == pytest.approx(
        5 * 1000 / 4 + 4 * 20 + 30)


def test_no_waste_time_charges_one_decode_step_of_the_active_rows():
    mask = np.zeros((4, 5), bool)
    mask[:, 1] = True         # step 1: 4 rows active
    mask[:2, 2] = True        # step 2: 2 rows
    mask[0, 3] = True         # step 3: 1 row
    rows, step_s = [1, 2, 4], [1.0, 3.0, 4.0]
    assert R.no_waste_time(mask, 1, rows, step_s) == pytest.approx(4.0 + 3.0 + 1.0)
    # Two devices: rows 0-1 (2, 2, 1 active) and rows 2-3 (2 active); the slower one counts.
    assert R.no_waste_time(mask, 2, rows, step_s) == pytest.approx(3.0 + 3.0 + 1.0)
    # Three active rows sit between the measured 2 and 4: interpolated.
    mask[2, 2] = True
    assert R.no_waste_time(mask, 1, rows, step_s) == pytest.approx(4.0 + 3.5 + 1.0)


def test_slot_sizes_follow_the_samplers_compaction_rule():
    # Sizes 8, 4, 2: 8 slots while more than 4 rows are unfinished, 4 while more than 2,
    # then 2 down to the last row.
    active = np.array([8, 5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(R.slot_sizes_of(active, [8, 4, 2]), [8, 8, 4, 4, 2, 2, 2])
    np.testing.assert_array_equal(R.slot_sizes_of(active, [8]), [8] * 7)


def test_phase_breakdown_charges_steps_and_tokens_to_their_slot_size():
    costs = dict(matmul_flops=0.0, attn_flops_per_pos=0.0, weight_bytes=800.0,
                 kv_bytes_per_pos=0.0)
    mask = np.zeros((4, 6), bool)
    mask[:, 1] = True          # 4 unfinished: 4 slots
    mask[:3, 2] = True         # 3: 4 slots (more than 2)
    mask[:2, 3] = True         # 2: 2 slots
    mask[0, 4] = True          # 1: 2 slots
    step_s = {4: 10.0, 2: 1.0}
    # One device: positions 1-2 on 4 slots (7 tokens), 3-4 on 2 slots (3 tokens). Roofline
    # with bytes_per_s 1: each token's share of the 800 weight bytes read at its position.
    phases = R.phase_breakdown(costs, mask, 1, [4, 2], step_s, 1e30, 1.0)
    np.testing.assert_allclose(phases[4], [7, 4 * 200 + 3 * 800 / 3, 2 * 10.0])
    np.testing.assert_allclose(phases[2], [3, 2 * 400 + 800, 2 * 1.0])
    # Two devices of 2 rows each (sizes 2, 1): device 0 (rows 0-1) has 2, 2, 2, 1 unfinished,
    # device 1 has 2, 1; each device's step counts half (they run side by side). The weights
    # are still shared by the whole batch's tokens at a position: at position 2, rows 0-1
    # (device 0, 2 slots) and row 2 (device 1, 1 slot) each pay 800 / 3.
    phases = R.phase_breakdown(costs, mask, 2, [2, 1], {2: 4.0, 1: 1.0}, 1e30, 1.0)
    np.testing.assert_allclose(phases[2], [8, 4 * 200 + 2 * 800 / 3 + 2 * 400, (3 + 1) * 2.0])
    np.testing.assert_allclose(phases[1], [2, 800 / 3 + 800, (1 + 1) * 0.5])


# ------------------------------------------------------------ plain-Python references

def _ref_token_time(costs, mask, b, p, flops_per_s, bytes_per_s, shared_by=None):
    """One token's roofline seconds, from the definition, one scalar at a time."""
    sharing = shared_by if shared_by is not None else sum(1 for row in mask if row[p])
    flops = costs["matmul_flops"] + costs["attn_flops_per_pos"] * (p + 1)
    nbytes = costs["weight_bytes"] / sharing + costs["kv_bytes_per_pos"] * (p + 1)
    return max(flops / flops_per_s, nbytes / bytes_per_s)


def _ref_roofline(costs, mask, flops_per_s, bytes_per_s, shared_by=None):
    return sum(_ref_token_time(costs, mask, b, p, flops_per_s, bytes_per_s, shared_by)
               for b, row in enumerate(mask) for p, on in enumerate(row) if on)


def _ref_interp(x, xs, ys):
    """Piecewise-linear through (xs, ys), flat beyond the ends."""
    if x <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def _ref_parts(n, devices):
    """Row ranges of `devices` parts of n rows, the first n % devices parts one row longer."""
    out, start = [], 0
    for d in range(devices):
        size = n // devices + (1 if d < n % devices else 0)
        out.append(range(start, start + size))
        start += size
    return out


def _ref_no_waste(mask, devices, rows, step_s):
    length = len(mask[0])
    return max(sum(_ref_interp(a, rows, step_s)
                   for a in (sum(1 for r in part if mask[r][p]) for p in range(length)) if a > 0)
               for part in _ref_parts(len(mask), devices))


def _ref_slot_size(active, sizes):
    """The sampler's rule: the first size k whose successor it outnumbers; the last otherwise."""
    for k in range(len(sizes) - 1):
        if active > sizes[k + 1]:
            return sizes[k]
    return sizes[-1]


def _ref_phases(costs, mask, devices, sizes, step_s, flops_per_s, bytes_per_s):
    per = len(mask) // devices
    length = len(mask[0])
    out = {z: [0.0, 0.0, 0.0] for z in sizes}
    for d in range(devices):
        for p in range(length):
            active = sum(1 for r in range(d * per, (d + 1) * per) if mask[r][p])
            if active == 0:
                continue
            z = _ref_slot_size(active, sizes)
            out[z][2] += step_s[z] / devices
            for r in range(d * per, (d + 1) * per):
                if mask[r][p]:
                    out[z][0] += 1
                    out[z][1] += _ref_token_time(costs, mask, r, p, flops_per_s, bytes_per_s)
    return out


def _random_costs(rng):
    return dict(matmul_flops=float(rng.uniform(0, 1e6)),
                attn_flops_per_pos=float(rng.uniform(0, 1e3)),
                weight_bytes=float(rng.uniform(0, 1e6)),
                kv_bytes_per_pos=float(rng.uniform(0, 1e3)))


def _random_mask(rng, rows, length):
    return (rng.random((rows, length)) < rng.uniform(0.05, 1.0)).tolist()


CASES = 2000


def test_roofline_matches_the_plain_python_reference_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(CASES):
        mask = _random_mask(rng, int(rng.integers(1, 9)), int(rng.integers(1, 13)))
        costs = _random_costs(rng)
        flops_per_s, bytes_per_s = 10 ** rng.uniform(3, 9), 10 ** rng.uniform(3, 9)
        shared_by = None if rng.random() < 0.5 else int(rng.integers(1, 9))
        assert R.roofline_time(costs, np.array(mask), flops_per_s, bytes_per_s, shared_by) \
            == pytest.approx(_ref_roofline(costs, mask, flops_per_s, bytes_per_s, shared_by),
                             rel=1e-9, abs=1e-300)


def test_no_waste_time_matches_the_plain_python_reference_on_random_masks():
    rng = np.random.default_rng(1)
    for _ in range(CASES):
        n = int(rng.integers(1, 9))
        mask = _random_mask(rng, n, int(rng.integers(1, 13)))
        devices = int(rng.integers(1, n + 1))
        rows = sorted(set(int(x) for x in rng.integers(1, 10, int(rng.integers(1, 5)))))
        step_s = sorted(float(x) for x in rng.uniform(0.1, 5.0, len(rows)))
        assert R.no_waste_time(np.array(mask), devices, rows, step_s) == pytest.approx(
            _ref_no_waste(mask, devices, rows, step_s), rel=1e-9)


def test_slot_sizes_match_the_plain_python_rule_on_the_samplers_sizes():
    rng = np.random.default_rng(2)
    for _ in range(CASES):
        batch = int(rng.integers(1, 129))
        min_slots = None if rng.random() < 0.2 else int(rng.integers(1, 9))
        sizes = S.slot_sizes(batch, min_slots)
        active = rng.integers(0, batch + 1, int(rng.integers(1, 20)))
        assert R.slot_sizes_of(active, sizes).tolist() == [_ref_slot_size(int(a), sizes)
                                                           for a in active]


def test_phase_breakdown_matches_the_plain_python_reference_on_random_masks():
    rng = np.random.default_rng(3)
    for _ in range(CASES):
        devices = int(rng.integers(1, 4))
        per = int(rng.integers(1, 9))
        mask = _random_mask(rng, devices * per, int(rng.integers(1, 13)))
        sizes = S.slot_sizes(per, None if rng.random() < 0.2 else int(rng.integers(1, 5)))
        step_s = {z: float(rng.uniform(0.1, 5.0)) for z in sizes}
        costs = _random_costs(rng)
        flops_per_s, bytes_per_s = 10 ** rng.uniform(3, 9), 10 ** rng.uniform(3, 9)
        got = R.phase_breakdown(costs, np.array(mask), devices, sizes, step_s, flops_per_s,
                                bytes_per_s)
        want = _ref_phases(costs, mask, devices, sizes, step_s, flops_per_s, bytes_per_s)
        assert set(got) == set(sizes)
        for z in sizes:
            np.testing.assert_allclose(got[z], want[z], rtol=1e-9, atol=1e-300)
