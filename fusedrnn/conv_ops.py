"""The fused Conv1D op: typed wrapper and fake kernel (kernels: csrc/cpu/conv1d.cpp; autograd:
csrc/conv1d_autograd.cpp)."""

from __future__ import annotations

import torch
from torch import Tensor

from ._fake import register_fake

ACTIVATIONS = {"identity": 0, "relu": 1, "tanh": 2, "sigmoid": 3, "gelu": 4}
_NEEDS_PREACTIVATION = {"gelu"}


def resolve_padding(padding: str | int | tuple[int, int], kernel_size: int, dilation: int,
                    stride: int) -> tuple[int, int]:
    """(left, right) padding in steps for 'valid', 'same', 'causal', an int or a pair."""
    span = dilation * (kernel_size - 1)
    if padding == "valid":
        return 0, 0
    if padding == "causal":  # the output at t sees inputs up to t only
        return span, 0
    if padding == "same":
        if stride != 1:
            raise ValueError("padding='same' is not supported for strided convolutions")
        return span // 2, span - span // 2  # the extra step on the right, as nn.Conv1d
    if isinstance(padding, int):
        return padding, padding
    if isinstance(padding, tuple) and len(padding) == 2:
        return int(padding[0]), int(padding[1])
    raise ValueError(
        f"padding must be 'valid', 'same', 'causal', an int or a (left, right) pair, got {padding!r}"
    )


def output_steps(steps: int, kernel_size: int, stride: int, dilation: int,
                 pad: tuple[int, int]) -> int:
    return (steps + pad[0] + pad[1] - dilation * (kernel_size - 1) - 1) // stride + 1


def output_lengths(lengths: Tensor, kernel_size: int, stride: int, dilation: int,
                   pad: tuple[int, int]) -> Tensor:
    """Per-sequence output_steps for a tensor of lengths (0 where a sequence is too short)."""
    return output_steps(lengths, kernel_size, stride, dilation, pad).clamp(min=0)


def activation_code(activation: str) -> int:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return ACTIVATIONS[activation]


@register_fake("fusedrnn::conv1d")
def _conv1d_fake(x, weight, bias, stride, dilation, pad_left, pad_right, activation, batch_first,
                 train):
    time_dim = 1 if batch_first else 0
    steps = output_steps(x.shape[time_dim], weight.shape[2], stride, dilation,
                         (pad_left, pad_right))
    shape = list(x.shape)
    shape[time_dim], shape[2] = steps, weight.shape[0]
    keep = train and activation == ACTIVATIONS["gelu"]
    return x.new_empty(shape), x.new_empty(shape if keep else (0,))


@register_fake("fusedrnn::conv1d_backward")
def _conv1d_backward_fake(grad_y, x, weight, y, pre, stride, dilation, pad_left, pad_right,
                          activation, batch_first, has_bias, x_grad):
    return (x.new_empty(x.shape if x_grad else (0,)), weight.new_empty(weight.shape),
            x.new_empty((weight.shape[0] if has_bias else 0,)))


# The autograd of fusedrnn::conv1d is registered in C++ (csrc/conv1d_autograd.cpp): the Python
# wrapper cost 5-10% of a training step of the small convolutions a sequence front runs.


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1,
           padding: str | int | tuple[int, int] = 0, dilation: int = 1,
           activation: str = "identity", batch_first: bool = True) -> Tensor:
    """activation(conv1d(x)) on channels-last x: [B, T, C] (batch_first) or [T, B, C].

    weight is nn.Conv1d's [C_out, C_in, K]; padding is 'valid', 'same', 'causal' (left only), an
    int or a (left, right) pair.
    """
    pad = resolve_padding(padding, weight.shape[-1], dilation, stride)
    train = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, weight, bias)
    )
    y, _ = torch.ops.fusedrnn.conv1d(x, weight, bias, stride, dilation, pad[0], pad[1],
                                     activation_code(activation), batch_first, train)
    return y
