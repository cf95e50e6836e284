"""Padded batches of sequences of different lengths: which steps are real."""

from __future__ import annotations

import torch
from torch import Tensor


def length_mask(lengths: Tensor, steps: int) -> Tensor:
    """[B, steps] bool on lengths' device: True at each sequence's valid steps."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
