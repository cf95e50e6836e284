"""Argument checks shared by the dataset modules: each error names the argument and what it
expected."""

from __future__ import annotations

from numbers import Integral


def check_int(value, name: str, minimum: int, maximum: int | None = None) -> int:
    """value as an int, if it is an integer (not a bool) in [minimum, maximum]; else ValueError."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum \
            or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


def check_seed(seed) -> int:
    """seed as an int, if it is a non-negative integer (what numpy's generators take)."""
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)
