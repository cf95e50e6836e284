"""Conv1D preprocessing on the sequences an RNN consumes, and a WaveNet-style causal stack."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import conv_ops
from ._fallback import autocast_dtype, cast_all


class Conv1d(nn.Module):
    """activation(Conv1d(x)) on [B, T, C] (batch_first) or [T, B, C] input, in one fused op.

    Replaces the permute -> nn.Conv1d -> activation -> permute(.contiguous()) sequence; parameters
    are named and shaped as nn.Conv1d's (weight [C_out, C_in, K], bias [C_out]) so state_dicts
    load either way. padding: 'valid', 'same', 'causal' (left only), an int or (left, right).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: str | int | tuple[int, int] = 0, dilation: int = 1, bias: bool = True,
                 activation: str = "identity", batch_first: bool = True, device=None, dtype=None):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("kernel_size", kernel_size)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if stride <= 0:
            raise ValueError(f"stride must be positive, got {stride}")
        if dilation <= 0:
            raise ValueError(f"dilation must be positive, got {dilation}")
        conv_ops.activation_code(activation)  # validates the name
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.padding = padding
        self.pad = conv_ops.resolve_padding(padding, kernel_size, dilation, stride)
        self.activation, self.batch_first = activation, batch_first
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Conv1d's initialisation, so a fresh module matches a fresh nn.Conv1d's distribution
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_channels * self.kernel_size
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_torch(cls, conv: nn.Conv1d, activation: str = "identity", batch_first: bool = True):
        """The fused equivalent of activation(conv(x.transpose(1, 2))).transpose(1, 2)."""
        if conv.groups != 1:
            raise ValueError("fusedrnn.Conv1d supports groups=1 only")
        if conv.padding_mode != "zeros":
            raise ValueError(f"fusedrnn.Conv1d pads with zeros, not {conv.padding_mode!r}")
        padding = conv.padding if isinstance(conv.padding, str) else conv.padding[0]
        fused = cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0],
                    padding, conv.dilation[0], conv.bias is not None, activation, batch_first,
                    device=conv.weight.device, dtype=conv.weight.dtype)
        fused.load_state_dict(conv.state_dict())
        return fused

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Lengths of the outputs of sequences of these lengths (for packing after the conv)."""
        return conv_ops.output_lengths(lengths, self.kernel_size, self.stride, self.dilation,
                                       self.pad)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3:
            layout = "[batch, time, channels]" if self.batch_first else "[time, batch, channels]"
            raise ValueError(f"Conv1d: input must be {layout}, got shape {list(x.shape)}")
        weight, bias = self.weight, self.bias
        run_in = autocast_dtype(x)  # under torch.autocast, as the recurrent layers
        if run_in is not None:
            x, weight, bias = cast_all([x, weight, bias], run_in)
        return conv_ops.conv1d(x, weight, bias, self.stride, self.pad, self.dilation,
                               self.activation, self.batch_first)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}, dilation={self.dilation}, "
                f"bias={self.bias is not None}, activation={self.activation!r}, "
                f"batch_first={self.batch_first}")


class WaveNet(nn.Module):
    """A stack of causal dilated convolutions (dilations 1, 2, 4, ... repeated), each a fused
    Conv1d, with optional residual connections (x + conv(x)) and skip connections (the sum of
    every layer's output is returned instead of the last one's).
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 2,
                 dilations: tuple[int, ...] = (1, 2, 4, 8), repeats: int = 1,
                 activation: str = "relu", residual: bool = True, skip: bool = True,
                 batch_first: bool = True, device=None, dtype=None):
        super().__init__()
        if not dilations or repeats < 1:  # no layer: forward would return None
            raise ValueError(f"WaveNet needs at least one layer: non-empty dilations and repeats >= 1, "
                             f"got dilations={tuple(dilations)}, repeats={repeats}")
        self.residual, self.skip = residual, skip
        layers, width = [], in_channels
        for d in list(dilations) * repeats:
            layers.append(Conv1d(width, channels, kernel_size, padding="causal", dilation=d,
                                 activation=activation, batch_first=batch_first, device=device,
                                 dtype=dtype))
            width = channels
        self.layers = nn.ModuleList(layers)

    @property
    def receptive_field(self) -> int:
        return 1 + sum(conv.dilation * (conv.kernel_size - 1) for conv in self.layers)

    def forward(self, x: Tensor) -> Tensor:
        skips = None
        for conv in self.layers:
            h = conv(x)
            skips = h if skips is None else skips + h
            x = x + h if self.residual and x.shape == h.shape else h
        return skips if self.skip else x
