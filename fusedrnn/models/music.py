"""A next-frame model of polyphonic music on the fused layers (vec2seq by sampling).

Music is a piano roll: frames [T, keys] with 1 where a key sounds. The model reads frames
0..t through a fused LSTM or GRU stack and predicts frame t + 1 as independent Bernoulli
variables, one a key (a sigmoid over a linear layer): the setting of Boulanger-Lewandowski,
Bengio and Vincent (2012), whose JSB Chorales split fusedrnn ships. Its score is the negative
log-likelihood of the next frame, in nats a frame, summed over keys and averaged over every
frame of every sequence (`frame_nll`).

`generate` samples a continuation frame by frame, carrying the recurrent state, so one fused
layer call of one step runs per frame; `max_voices` keeps a frame's most likely keys only (a
chorale has four voices).

`backend="torch"` builds the same network on torch.nn's layers (same parameter names and shapes).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .backend import recurrent_layer
from .lengths import checked_lengths, length_mask

CELLS = ("lstm", "gru")


def frame_nll(logits: Tensor, target: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Mean over frames of the next-frame negative log-likelihood summed over keys (nats).

    logits, target [B, T, keys]; lengths [B] (None: all T frames count). Frames past a
    sequence's length count for nothing, whatever they hold.
    """
    per_frame = nn.functional.binary_cross_entropy_with_logits(
        logits, target, reduction="none").sum(2)  # [B, T]
    if lengths is None:
        return per_frame.mean()
    valid = length_mask(torch.as_tensor(lengths, device=logits.device), logits.size(1))
    return per_frame.masked_fill(~valid, 0.0).sum() / valid.sum()


class PianoRollModel(nn.Module):
    """Logits [B, T, keys] of frame t + 1 for piano-roll frames [B, T, keys] up to frame t."""

    def __init__(self, keys: int, hidden_size: int = 256, num_layers: int = 1, cell: str = "lstm",
                 dropout: float = 0.0, backend: str = "fused"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if keys < 1:
            raise ValueError(f"keys must be positive, got {keys}")
        self.keys, self.cell = keys, cell
        self.rnn = recurrent_layer(cell, keys, hidden_size, num_layers=num_layers, batch_first=True,
                                   dropout=dropout if num_layers > 1 else 0.0, backend=backend)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, keys)

    def forward(self, roll: Tensor, lengths: Tensor | None = None, state=None):
        """(logits [B, T, keys], final state). With lengths, the frames past each sequence's
        length are not run (packed) and their logits are zeros."""
        if roll.dim() != 3 or roll.size(2) != self.keys:
            raise ValueError(f"PianoRollModel: roll must be [batch, time, {self.keys}], got shape "
                             f"{list(roll.shape)}")
        if lengths is None:
            out, state = self.rnn(roll, state)
        else:
            lengths = checked_lengths(lengths, roll.size(0), roll.size(1), "PianoRollModel",
                                      "sequence")
            packed = pack_padded_sequence(roll, lengths, batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed, state)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=roll.size(1))
        return self.head(self.dropout(out)), state

    @torch.no_grad()
    def generate(self, primer: Tensor, steps: int, temperature: float = 1.0,
                 max_voices: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """The primer [T0, keys] (T0 >= 1) followed by `steps` sampled frames: [T0 + steps, keys].

        Each key of the next frame sounds with probability sigmoid(logit / temperature), drawn
        independently (from `generator`, else torch's global generator); with max_voices, only
        that many of the frame's most probable keys may sound.
        """
        if primer.dim() != 2 or primer.size(1) != self.keys or primer.size(0) < 1:
            raise ValueError(f"generate: primer must be [frames >= 1, {self.keys}], got shape "
                             f"{list(primer.shape)}")
        if steps < 0:
            raise ValueError(f"generate: steps must be >= 0, got {steps}")
        if not temperature > 0:
            raise ValueError(f"generate: temperature must be positive, got {temperature}")
        if max_voices is not None and not 1 <= max_voices <= self.keys:
            raise ValueError(f"generate: max_voices must lie in [1, {self.keys}], got {max_voices}")
        was_training = self.training
        self.eval()
        frames = [primer.to(self.head.weight)]
        logits, state = self(frames[0].unsqueeze(0))
        for _ in range(steps):
            prob = torch.sigmoid(logits[0, -1] / temperature)
            if max_voices is not None and max_voices < self.keys:
                keep = prob.topk(max_voices).indices
                prob = torch.zeros_like(prob).index_copy_(0, keep, prob[keep])
            frame = torch.bernoulli(prob, generator=generator)
            frames.append(frame.unsqueeze(0))
            logits, state = self(frames[-1].unsqueeze(0), state=state)
        self.train(was_training)
        return torch.cat(frames)
