"""Seeding, device choice, matmul precision, and capturing/restoring every random number
generator's state."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def resolve_device(name: str | None) -> torch.device:
    """torch.device(name); None or "auto" picks CUDA when it is available, else the CPU. A name
    that is no device, or a GPU this machine lacks, is a RuntimeError saying so."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RuntimeError(f"expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise RuntimeError(f"device {name!r} requested but CUDA is not available: this machine "
                               "has 0 CUDA device(s)")
        if device.index is not None and device.index >= count:
            raise RuntimeError(f"device {name!r} requested but this machine has {count} CUDA device(s)")
    return device


@contextmanager
def float32_matmul_precision(precision: str) -> Iterator[None]:
    """torch.set_float32_matmul_precision(precision) inside the block, the previous one after it,
    so that a task run from Python leaves the caller's setting as it found it."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def rng_states() -> dict:
    """The states of Python's, NumPy's and torch's generators (CUDA's too when present)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_states(states: dict) -> None:
    """Restore generator states captured by rng_states()."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
