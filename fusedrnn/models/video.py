"""A video classifier on the fused layers (seq2vec over frames).

Each frame goes through the same small convolutional encoder (Conv2d, ReLU and 2×2 max-pooling
blocks, then a linear layer to a feature vector); the frames' features, in order, go through a
fused LSTM or GRU stack, and the last layer's final state (both directions' when bidirectional)
gives the class scores. Videos of different lengths come zero-padded with their `lengths`: the
recurrent stack then runs packed, so padding frames are encoded (a batched Conv2d over all of
them is cheaper than gathering) but never enter the recurrence.

`backend="torch"` builds the same network on torch.nn's layers (same parameter names and shapes).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from .backend import recurrent_layer
from .lengths import checked_lengths

CELLS = ("lstm", "gru")


class FrameEncoder(nn.Module):
    """[N, C, S, S] frames -> [N, feature_size]: conv blocks halving the side, then a linear layer."""

    def __init__(self, in_channels: int, frame_size: int, channels: tuple[int, ...] = (16, 32),
                 feature_size: int = 128):
        super().__init__()
        if frame_size >> len(channels) < 1:
            raise ValueError(f"frame_size {frame_size} is too small for {len(channels)} "
                             f"pooling blocks (each halves it)")
        blocks, width = [], in_channels
        for out in channels:
            blocks += [nn.Conv2d(width, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.blocks = nn.Sequential(*blocks)
        side = frame_size >> len(channels)
        self.project = nn.Sequential(nn.Flatten(), nn.Linear(width * side * side, feature_size),
                                     nn.ReLU())

    def forward(self, frames: Tensor) -> Tensor:
        return self.project(self.blocks(frames))


class VideoClassifier(nn.Module):
    """Class scores [B, num_classes] for videos [B, T, C, S, S] (frames of side frame_size)."""

    def __init__(self, num_classes: int, frame_size: int, in_channels: int = 1,
                 channels: tuple[int, ...] = (16, 32), feature_size: int = 128,
                 hidden_size: int = 128, num_layers: int = 1, cell: str = "lstm",
                 bidirectional: bool = False, dropout: float = 0.0, backend: str = "fused"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes, self.frame_size, self.in_channels = num_classes, frame_size, in_channels
        self.cell, self.bidirectional = cell, bidirectional
        self.encoder = FrameEncoder(in_channels, frame_size, channels, feature_size)
        self.dropout = nn.Dropout(dropout)
        self.rnn = recurrent_layer(cell, feature_size, hidden_size, num_layers=num_layers,
                                   batch_first=True, bidirectional=bidirectional,
                                   dropout=dropout if num_layers > 1 else 0.0, backend=backend)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def forward(self, video: Tensor, lengths: Tensor | None = None) -> Tensor:
        expected = (self.in_channels, self.frame_size, self.frame_size)
        if video.dim() != 5 or tuple(video.shape[2:]) != expected:
            raise ValueError(f"VideoClassifier: video must be [batch, time, {expected[0]}, "
                             f"{expected[1]}, {expected[2]}], got shape {list(video.shape)}")
        B, T = video.shape[:2]
        features = self.encoder(video.reshape(B * T, *expected)).reshape(B, T, -1)
        features = self.dropout(features)
        if lengths is None:
            _, state = self.rnn(features)
        else:
            lengths = checked_lengths(lengths, B, T, "VideoClassifier", "video")
            packed = pack_padded_sequence(features, lengths, batch_first=True,
                                          enforce_sorted=False)
            _, state = self.rnn(packed)
        h_n = state[0] if self.cell == "lstm" else state  # [layers · directions, B, H]
        last = h_n[-2:] if self.bidirectional else h_n[-1:]  # the last layer's directions
        return self.head(self.dropout(torch.cat(list(last), dim=1)))
