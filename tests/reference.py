"""Plain PyTorch reference of one recurrent layer, step by step, used to check the fused ops.

It states each cell's formula once more, independently of csrc/cells/*.h, in torch.nn's
conventions; the module tests compare against torch.nn itself.
"""

import torch
from torch import Tensor


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    return x @ w.t() if b is None else x @ w.t() + b


def lstm_step(x, state, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None):
    h, c = state
    i, f, g, o = (_linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    if w_hr is not None:
        h = h @ w_hr.t()
    return h, c


def gru_step(x, state, w_ih, w_hh, b_ih=None, b_hh=None):
    (h,) = state
    a_r, a_z, a_n = _linear(x, w_ih, b_ih).chunk(3, dim=1)
    b_r, b_z, b_n = _linear(h, w_hh, b_hh).chunk(3, dim=1)
    r = torch.sigmoid(a_r + b_r)
    z = torch.sigmoid(a_z + b_z)
    n = torch.tanh(a_n + r * b_n)
    return ((1 - z) * n + z * h,)


def rnn_step(x, state, w_ih, w_hh, b_ih=None, b_hh=None, relu=False):
    (h,) = state
    pre = _linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)
    return (torch.relu(pre) if relu else torch.tanh(pre),)


def run_layer(step, x, states, batch_sizes=None, reverse=False, **weights):
    """Runs `step` over x ([T, B, I], or packed [N, I] with batch_sizes) in one direction.

    Returns (y, final states) with y shaped like the fused op's output.
    """
    if batch_sizes is None:
        sizes = [x.shape[1]] * x.shape[0]
        rows_of = [x[t] for t in range(x.shape[0])]
    else:
        sizes = [int(s) for s in batch_sizes]
        offsets = [sum(sizes[:t]) for t in range(len(sizes))]
        rows_of = [x[o : o + s] for o, s in zip(offsets, sizes, strict=True)]
    states = list(states)
    outputs = [None] * len(sizes)
    order = range(len(sizes) - 1, -1, -1) if reverse else range(len(sizes))
    for t in order:
        n = sizes[t]
        new = step(rows_of[t], [s[:n] for s in states], **weights)
        states = [torch.cat([a, s[n:]]) for a, s in zip(new, states, strict=True)]
        outputs[t] = new[0]
    y = torch.stack(outputs) if batch_sizes is None else torch.cat(outputs)
    return y, states
