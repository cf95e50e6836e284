"""argparse types for the command line: a bad number is a usage error (exit 2, the option named)
before anything runs, not a traceback minutes later or a run that silently trains wrong."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(kind: type, test: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not (math.isfinite(value) and test(value)):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected  # what argparse names in its message
    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive whole number")
non_negative_int = _number(int, lambda v: v >= 0, "a whole number >= 0")
positive_float = _number(float, lambda v: v > 0, "a number > 0")
non_negative_float = _number(float, lambda v: v >= 0, "a number >= 0")
probability = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
decay_factor = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")


def threads_or_auto(text: str) -> str | int:
    return text if text == "auto" else _number(int, lambda v: v >= 1, "a positive whole number or "
                                                                      "'auto'")(text)


def device(text: str) -> str:
    """'auto' or a torch device this machine has (training.resolve_device's check): a typo or a
    missing GPU is a usage error."""
    from .training.runtime import resolve_device

    try:
        resolve_device(text)
    except RuntimeError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text
