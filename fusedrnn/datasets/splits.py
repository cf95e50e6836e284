"""A seeded 80/10/10 split of n items into train, valid and test."""

from __future__ import annotations

import numpy as np

from .checks import check_int, check_seed


def split_80_10_10(n: int, seed: int = 0,
                   what: str = "items") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint (train, valid, test) index arrays (sorted int64) that cover range(n): 80/10/10.

    The indices are shuffled with the seed first (data files are often grouped by class). valid
    and test get round(n / 10) each, at least 1; train the rest; n must be >= 3 (`what` names
    the items in that error).
    """
    n = check_int(n, f"n (number of {what})", 3)
    order = np.random.default_rng(check_seed(seed)).permutation(n)
    held = max(1, round(n / 10))
    groups = order[:n - 2 * held], order[n - 2 * held:n - held], order[n - held:]
    return tuple(np.sort(g).astype(np.int64) for g in groups)
