"""Interleaved timing in one process for the comparison scripts (env_switch.py, conv_speed.py):
each round runs every case once, in order, so that a change in the host's speed falls on every
case alike; the first rounds are warm-up; medians are reported."""

import statistics
import time
from collections.abc import Callable


def add_options(parser, rounds: int) -> None:
    """--rounds (default `rounds`), --warmup and --threads."""
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)


def medians(cases: dict[str, tuple[Callable[[], None] | None, Callable[[], None]]], rounds: int,
            warmup: int) -> dict[str, float]:
    """Median seconds of each case's timed call; a case is (untimed setup or None, timed call)."""
    times = {name: [] for name in cases}
    for r in range(warmup + rounds):
        for name, (setup, call) in cases.items():
            if setup is not None:
                setup()
            start = time.perf_counter()
            call()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
