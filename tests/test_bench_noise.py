"""How `fusedrnn bench` flags a case measured on an unsteady machine."""

import dataclasses

from fusedrnn import bench
from fusedrnn.bench import Budget, Case

TINY = Budget(warmup=1, seconds=0.0, min_reps=2, max_reps=2)


def test_spread_of_the_reference_gemm():
    steady = [1e-3] * 8 + [1.01e-3, 0.99e-3]
    assert bench.spread(steady) < 0.05
    unsteady = [1e-3, 2e-3] * 10  # half the rounds twice as slow
    assert abs(bench.spread(unsteady) - 2 / 3) < 1e-9  # (2 - 1) ms over a median of 1.5 ms
    assert bench.spread(unsteady[:9]) is None  # too few rounds to tell
    assert bench.spread([t / 10 for t in unsteady]) is None  # 0.1-0.2 ms GEMMs jitter by nature


def test_an_unsteady_row_is_flagged_like_a_busy_one():
    result = bench.measure(Case("GRU", "infer", 2, 5, 3, 4), TINY, cpus=1)
    quiet = dataclasses.replace(result, foreign_cpu=0.0, gemm_spread=0.05)
    assert not quiet.noisy and "!" not in bench.format_row(quiet)
    shaken = dataclasses.replace(quiet, gemm_spread=bench.SPREAD_LIMIT + 0.1)
    assert shaken.noisy and "unsteady" in bench.format_row(shaken)
    busy = dataclasses.replace(quiet, foreign_cpu=bench.NOISE_LIMIT + 0.1)
    assert busy.noisy and "busy" in bench.format_row(busy)
