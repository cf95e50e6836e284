"""A pen-stroke sketch classifier on the fused layers (seq2vec).

A sketch is a sequence of pen points, [B, T, C] with C = 3 (dx, dy, lift: stroke-3) or 5
(stroke-5), zero-padded after each sketch's length (`fusedrnn.datasets.sketches`). The model:

* a Conv1D front (fused Conv1d, ReLU) over the points: local stroke shape, and optionally fewer
  steps for the recurrent layers (a stride above 1);
* a bidirectional LSTM or GRU stack over the conv features, packed by length, so that no step of
  padding is computed;
* the recurrent outputs averaged over each sketch's own steps, then a linear layer to the class
  scores.

Padding never reaches a real step: each conv layer's outputs past a sketch's (new) length are
zeroed before the next layer reads them, as zeros are what a shorter batch would have held there,
and the recurrent stack sees only packed steps. So a sketch's scores do not depend on how much
padding its batch carries.

`backend="torch"` builds the same network on torch.nn's layers (same parameter names and shapes).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .backend import conv1d_layer, recurrent_layer
from .lengths import checked_lengths, length_mask

CELLS = ("lstm", "gru")


class SketchClassifier(nn.Module):
    """Class scores [B, num_classes] for padded sketches x [B, T, input_size] of `lengths` points.

    conv_channels: the Conv1D front's widths, one layer each (empty: no front); conv_stride: the
    first conv layer's stride (the later ones keep the step count).
    """

    def __init__(self, num_classes: int, input_size: int = 3,
                 conv_channels: tuple[int, ...] = (48, 64, 96), kernel_size: int = 5,
                 conv_stride: int = 1, hidden_size: int = 128, num_layers: int = 2,
                 cell: str = "lstm", bidirectional: bool = True, dropout: float = 0.3,
                 backend: str = "fused"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            # an odd kernel centres each output on its point ('same' padding needs no shift)
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.input_size, self.num_classes = input_size, num_classes
        convs, width = [], input_size
        for k, channels in enumerate(conv_channels):
            stride = conv_stride if k == 0 else 1
            convs.append(conv1d_layer(width, channels, kernel_size, backend=backend, stride=stride,
                                      padding=kernel_size // 2, activation="relu",
                                      batch_first=True))
            width = channels
        self.convs = nn.ModuleList(convs)
        self.conv_dropout = nn.Dropout(dropout)
        self.rnn = recurrent_layer(cell, width, hidden_size, num_layers=num_layers,
                                   batch_first=True, bidirectional=bidirectional,
                                   dropout=dropout if num_layers > 1 else 0.0, backend=backend)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """The recurrent stack's step count for sketches of these lengths."""
        for conv in self.convs:
            lengths = conv.output_lengths(lengths)
        return lengths

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        if x.dim() != 3 or x.size(2) != self.input_size:
            raise ValueError(f"SketchClassifier: x must be [batch, time, {self.input_size}], "
                             f"got shape {list(x.shape)}")
        lengths = checked_lengths(lengths, x.size(0), x.size(1), "SketchClassifier", "sketch")
        for conv in self.convs:
            x = conv(x)
            # with padding k // 2 every sketch of at least one point keeps at least one step
            lengths = conv.output_lengths(lengths.to(x.device)).cpu()
            x = x * length_mask(lengths.to(x.device), x.size(1)).unsqueeze(2).to(x.dtype)
        x = self.conv_dropout(x)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)  # zeros past each length
        pooled = out.sum(1) / lengths.to(out.device, out.dtype).unsqueeze(1)
        return self.head(pooled)
