"""Windowing for multi-step forecasting on a daily series, with targets confined to a split.

Vocabulary: an *origin* t is the last day whose values a forecast may use; the forecast covers
days t+1..t+H (horizons 1..H). A window is the `length` input steps ending at its origin. A
split is a half-open range [lo, hi) of day positions; a target counts for the split only if its
day lies in [lo, hi). Inputs may reach back before lo: history is context, not leakage.
"""

from __future__ import annotations

import numpy as np


def date_range(dates: np.ndarray, start: str, end: str) -> tuple[int, int]:
    """Positions [lo, hi) of the days start..end (inclusive, YYYY-MM-DD) in sorted dates."""
    lo = int(np.searchsorted(dates, np.datetime64(start, "D"), side="left"))
    hi = int(np.searchsorted(dates, np.datetime64(end, "D"), side="right"))
    if lo >= hi:
        raise ValueError(f"no days between {start} and {end}")
    return lo, hi


def forecast_origins(lo: int, hi: int, horizon: int, length: int) -> np.ndarray:
    """Every origin with at least one of its H targets in [lo, hi) and `length` days of history.

    Each day of the split is then the horizon-h target of exactly one origin, for every h (a
    forecast made h days ahead is scored on every day of the split), and no target outside the
    split is ever needed.
    """
    first = max(lo - horizon, length - 1)
    last = hi - 2  # the origin whose horizon-1 target is the split's last day
    if first > last:
        raise ValueError(f"no origin has {length} days of history and a target in [{lo}, {hi})")
    return np.arange(first, last + 1)


def horizon_targets(series: np.ndarray, horizon: int) -> np.ndarray:
    """[N, H]: entry [t, h-1] is series[t+h]; NaN where t+h runs past the end."""
    n = len(series)
    out = np.full((n, horizon), np.nan, dtype=np.float64)
    for h in range(1, horizon + 1):
        out[: n - h, h - 1] = series[h:]
    return out


def target_mask(n: int, horizon: int, lo: int, hi: int) -> np.ndarray:
    """[N, H] bool: True where the target day t+h lies in [lo, hi)."""
    day = np.arange(n)[:, None] + np.arange(1, horizon + 1)[None, :]
    return (day >= lo) & (day < hi)


def gather_windows(array: np.ndarray, origins: np.ndarray, length: int) -> np.ndarray:
    """[n, length, ...]: array[t-length+1 .. t] for each origin t (a copy)."""
    origins = np.asarray(origins)
    if origins.min() < length - 1 or origins.max() >= len(array):
        raise IndexError("a window runs outside the array")
    index = origins[:, None] + np.arange(-length + 1, 1)[None, :]
    return array[index]


def seasonal_naive(series: np.ndarray, origins: np.ndarray, horizon: int, season: int = 7) -> np.ndarray:
    """[n, H] forecasts: each target day's value one season (or whole seasons) earlier, never
    later than the origin -- day t+h gets series[t+h-season*ceil(h/season)]."""
    h = np.arange(1, horizon + 1)
    back = season * -(-h // season)
    return series[np.asarray(origins)[:, None] + (h - back)[None, :]]


def masked_mae(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[H] mean absolute error per horizon over the entries where mask is True."""
    err = np.where(mask, np.abs(pred - np.nan_to_num(target)), 0.0)
    counts = mask.sum(axis=0)
    if np.any(counts == 0):
        raise ValueError("a horizon has no target in the mask")
    return err.sum(axis=0) / counts
