"""Padded batches of sequences of different lengths: which steps are real."""

from __future__ import annotations

import torch
from torch import Tensor


def length_mask(lengths: Tensor, steps: int) -> Tensor:
    """[B, steps] bool on lengths' device: True at each sequence's valid steps."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def checked_lengths(lengths, batch: int, steps: int, who: str, item: str) -> Tensor:
    """lengths as an int64 CPU tensor (what packing takes), if it holds one length in [1, steps]
    for each of the batch's `item`s; else a ValueError naming `who` and what was expected."""
    lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
    if lengths.shape != (batch,):
        raise ValueError(f"{who}: lengths must be [{batch}] (one per {item}), got shape "
                         f"{list(lengths.shape)}")
    if batch and (lengths.min() < 1 or lengths.max() > steps):
        raise ValueError(f"{who}: lengths must lie in [1, {steps}] (the padded length), got "
                         f"{lengths.min().item()}..{lengths.max().item()}")
    return lengths
