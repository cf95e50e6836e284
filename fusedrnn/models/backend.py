"""Choose between the fused layers and torch.nn's, so every model can run on either.

`--backend torch` builds the same model on torch.nn layers: the same run then shows both the speed
difference and that accuracy does not depend on the backend.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

BACKENDS = ("fused", "torch")


def _check(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _recurrent_module(kind: str, suffix: str, backend: str, args, kwargs) -> nn.Module:
    """torch.nn's or fusedrnn's LSTM/GRU/RNN class + suffix ('' or 'Cell'), constructed."""
    _check(backend)
    names = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
    if kind.lower() not in names:
        raise ValueError(f"kind must be one of {tuple(names)}, got {kind!r}")
    name = names[kind.lower()] + suffix
    if backend == "torch":
        return getattr(nn, name)(*args, **kwargs)
    import fusedrnn

    return getattr(fusedrnn, name)(*args, **kwargs)


def recurrent_layer(kind: str, *args, backend: str = "fused", **kwargs) -> nn.Module:
    """An LSTM, GRU or RNN layer (kind 'lstm' | 'gru' | 'rnn') from the chosen backend."""
    return _recurrent_module(kind, "", backend, args, kwargs)


def recurrent_cell(kind: str, *args, backend: str = "fused", **kwargs) -> nn.Module:
    """An LSTMCell, GRUCell or RNNCell (kind 'lstm' | 'gru' | 'rnn') from the chosen backend."""
    return _recurrent_module(kind, "Cell", backend, args, kwargs)


class TorchConv1d(nn.Conv1d):
    """fusedrnn.Conv1d's contract on torch.nn: activation(conv(x)) on [B, T, C] (batch_first) or
    [T, B, C] input, padded as fusedrnn.Conv1d pads ('valid', 'same', 'causal', int, (left,
    right)), by permuting around nn.functional.conv1d. Parameters are nn.Conv1d's -- the same
    names and shapes as fusedrnn.Conv1d's, so state_dicts load either way.
    """

    _ACTIVATIONS = {"identity": lambda x: x, "relu": torch.relu, "tanh": torch.tanh,
                    "sigmoid": torch.sigmoid, "gelu": nn.functional.gelu}

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: str | int | tuple[int, int] = 0, dilation: int = 1, bias: bool = True,
                 activation: str = "identity", batch_first: bool = True, device=None, dtype=None):
        from ..conv_ops import resolve_padding

        if activation not in self._ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(self._ACTIVATIONS)}, got {activation!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         dilation=dilation, bias=bias, device=device, dtype=dtype)
        self.pad = resolve_padding(padding, kernel_size, dilation, stride)
        self.activation, self.batch_first = activation, batch_first

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Lengths of the outputs of sequences of these lengths, as fusedrnn.Conv1d's."""
        from ..conv_ops import output_lengths

        return output_lengths(lengths, self.kernel_size[0], self.stride[0], self.dilation[0],
                              self.pad)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 1) if self.batch_first else x.permute(1, 2, 0)  # -> [B, C, T]
        if any(self.pad):
            x = nn.functional.pad(x, self.pad)
        y = self._ACTIVATIONS[self.activation](super().forward(x))
        return y.permute(0, 2, 1) if self.batch_first else y.permute(2, 0, 1)


def conv1d_layer(in_channels: int, out_channels: int, kernel_size: int, *, backend: str = "fused",
                 **kwargs) -> nn.Module:
    """A Conv1D layer with fusedrnn.Conv1d's signature (stride, padding, dilation, bias,
    activation, batch_first) from the chosen backend: fusedrnn.Conv1d or TorchConv1d."""
    _check(backend)
    if backend == "torch":
        return TorchConv1d(in_channels, out_channels, kernel_size, **kwargs)
    import fusedrnn

    return fusedrnn.Conv1d(in_channels, out_channels, kernel_size, **kwargs)
