"""Typed wrappers around the fusedrnn custom ops, with their fake kernels.

Each forward op returns a workspace that is filled only when it is called with train=True; the
wrappers ask for it exactly when autograd will need it. The backward of every op is itself a
registered op, so torch.compile and torch.export trace through training steps. Autograd is
registered in C++ (csrc/layer_autograd.cpp, cell_autograd.cpp, conv1d_autograd.cpp): torch.library's
Python wrapper cost each call more than a whole small step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._fake import register_fake

_ops = torch.ops.fusedrnn

# Gate blocks per cell, as in csrc/cells/*.h (kGates).
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def workspace_cols(cell: str, hidden: int, proj: bool = False, *, x: Tensor | None = None,
                   zoneout_h: Tensor | None = None, steps: int | None = None,
                   masked: bool = False) -> int:
    """Columns of the workspace, mirroring workspace_cols in csrc/layer_ops.h: an Elman layer
    given x (not float16/bfloat16) and no zoneout has none, since y itself is its workspace. A
    GRU layer on the CPU given its `steps` leaves out b_n (3H) unless it runs one step without
    regularisers (`masked`: recurrent dropout or zoneout), as the cell ops do."""
    if cell == "rnn" and x is not None and zoneout_h is None and x.dtype not in _REDUCED:
        return 0
    if (cell == "gru" and x is not None and x.device.type == "cpu" and steps is not None
            and (steps != 1 or masked)):
        return 3 * hidden
    per_hidden = {"lstm": 5, "gru": 4, "rnn": 1}[cell]
    return per_hidden * hidden + (hidden if proj else 0)


_REDUCED = (torch.float16, torch.bfloat16)


def _needs_grad(*tensors: Tensor | None) -> bool:
    if not torch.is_grad_enabled():
        return False
    for t in tensors:  # a loop, not any() over a generator: a cell op's call per step
        if t is not None and t.requires_grad:
            return True
    return False


def _grad_x_fake(x: Tensor, x_grad: bool) -> Tensor:
    # a layer backward op called with x_grad=False returns an empty grad_x
    return x.new_empty(x.shape if x_grad else (0,))


def _layer_rows(x: Tensor, batch_sizes: Tensor | None) -> int:
    return x.shape[0] if batch_sizes is not None else x.shape[0] * x.shape[1]


def _fake_workspace(x: Tensor, rows: int, cols: int, train: bool) -> Tensor:
    # float16/bfloat16 layers keep an fp32 workspace (Driver::workspace_dtype in csrc/)
    reduced = x.dtype in _REDUCED
    return x.new_empty((rows, cols) if train else (0,), dtype=torch.float32 if reduced else x.dtype)


def _bias_grad_fake(x: Tensor, gates_hidden: int, has_bias: bool) -> Tensor:
    return x.new_empty((gates_hidden if has_bias else 0,))


# ---- LSTM layer ----------------------------------------------------------------------------


@register_fake("fusedrnn::lstm_layer")
def _lstm_layer_fake(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, train,
                     rec_mask=None, zoneout_h=None, zoneout_c=None):
    hidden = w_hh.shape[0] // 4
    out = w_hr.shape[0] if w_hr is not None else hidden
    # with zoneout on c the workspace also keeps the zoned c_t (H more columns)
    cols = workspace_cols("lstm", hidden, w_hr is not None) + (hidden if zoneout_c is not None else 0)
    return (
        x.new_empty((*x.shape[:-1], out)),
        h0.new_empty(h0.shape),
        c0.new_empty(c0.shape),
        _fake_workspace(x, _layer_rows(x, batch_sizes), cols, train),
    )


@register_fake("fusedrnn::lstm_layer_backward")
def _lstm_layer_backward_fake(
    grad_y, grad_h_n, grad_c_n, x, h0, c0, w_ih, w_hh, w_hr, batch_sizes, y, workspace, reverse,
    has_bias, rec_mask=None, zoneout_h=None, zoneout_c=None, *, x_grad=True,
):
    return (
        _grad_x_fake(x, x_grad),
        h0.new_empty(h0.shape),
        c0.new_empty(c0.shape),
        w_ih.new_empty(w_ih.shape),
        w_hh.new_empty(w_hh.shape),
        _bias_grad_fake(x, w_ih.shape[0], has_bias),
        _bias_grad_fake(x, w_ih.shape[0], has_bias),
        w_hr.new_empty(w_hr.shape) if w_hr is not None else x.new_empty((0,)),
    )


def lstm_layer(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
    batch_sizes: Tensor | None = None,
    reverse: bool = False,
    rec_mask: Tensor | None = None,
    zoneout_h: Tensor | None = None,
    zoneout_c: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM layer in one direction. x: [T, B, I], or packed [N, I] with batch_sizes.

    Returns (y, h_n, c_n): y is [T, B, P] (or [N, P]); P is proj_size with w_hr, else H.
    The optional masks are the regularisers of csrc/ops.cpp (recurrent dropout, zoneout).
    """
    train = _needs_grad(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
    y, h_n, c_n, _ = _ops.lstm_layer(
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, train, rec_mask, zoneout_h,
        zoneout_c,
    )
    return y, h_n, c_n


# ---- GRU and RNN layers: the same shape of op without a cell state --------------------------


# GRU and RNN ops end in (relu,) (RNN only), then train or has_bias, then rec_mask, zoneout_h.
_EXTRA_FLAGS = {"gru": 0, "rnn": 1}


def _hidden_layer_fake(cell):
    def fake(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, *rest):
        hidden = w_hh.shape[0] // GATES[cell]
        train = rest[_EXTRA_FLAGS[cell]]
        masks = rest[_EXTRA_FLAGS[cell] + 1:]  # rec_mask, zoneout_h
        zoneout_h = masks[1] if len(masks) > 1 else None
        steps = batch_sizes.shape[0] if batch_sizes is not None else x.shape[0]
        cols = workspace_cols(cell, hidden, x=x, zoneout_h=zoneout_h, steps=steps,
                              masked=any(m is not None for m in masks))
        return (
            x.new_empty((*x.shape[:-1], hidden)),
            h0.new_empty(h0.shape),
            _fake_workspace(x, _layer_rows(x, batch_sizes), cols, train),
        )

    return fake


def _hidden_layer_backward_fake(cell):
    return lambda *args, **kwargs: _hidden_layer_backward_shapes(cell, *args, **kwargs)


def _hidden_layer_backward_shapes(cell, grad_y, grad_h_n, x, h0, w_ih, w_hh, batch_sizes, y,
                                  workspace, reverse, *rest, x_grad=True, b_hh=None):
    has_bias = rest[_EXTRA_FLAGS[cell]]
    return (
        _grad_x_fake(x, x_grad),
        h0.new_empty(h0.shape),
        w_ih.new_empty(w_ih.shape),
        w_hh.new_empty(w_hh.shape),
        _bias_grad_fake(x, w_ih.shape[0], has_bias),
        _bias_grad_fake(x, w_ih.shape[0], has_bias),
    )


for _cell in ("gru", "rnn"):
    register_fake(f"fusedrnn::{_cell}_layer")(_hidden_layer_fake(_cell))
    register_fake(f"fusedrnn::{_cell}_layer_backward")(_hidden_layer_backward_fake(_cell))


def gru_layer(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    batch_sizes: Tensor | None = None,
    reverse: bool = False,
    rec_mask: Tensor | None = None,
    zoneout_h: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One GRU layer in one direction (torch.nn.GRU's formulation). Returns (y, h_n)."""
    train = _needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh)
    y, h_n, _ = _ops.gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, train, rec_mask,
                               zoneout_h)
    return y, h_n


def rnn_layer(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    batch_sizes: Tensor | None = None,
    reverse: bool = False,
    relu: bool = False,
    rec_mask: Tensor | None = None,
    zoneout_h: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One Elman RNN layer (tanh, or relu) in one direction. Returns (y, h_n)."""
    train = _needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh)
    y, h_n, _ = _ops.rnn_layer(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu, train,
                               rec_mask, zoneout_h)
    return y, h_n


# ---- single-step cells ---------------------------------------------------------------------


@register_fake("fusedrnn::lstm_cell")
def _lstm_cell_fake(x, hx, cx, w_ih, w_hh, b_ih, b_hh, train):
    cols = workspace_cols("lstm", hx.shape[1])
    return hx.new_empty(hx.shape), cx.new_empty(cx.shape), _fake_workspace(x, x.shape[0], cols, train)


@register_fake("fusedrnn::lstm_cell_backward")
def _lstm_cell_backward_fake(grad_hy, grad_cy, x, hx, cx, w_ih, w_hh, hy, workspace, has_bias):
    return (
        x.new_empty(x.shape),
        hx.new_empty(hx.shape),
        cx.new_empty(cx.shape),
        w_ih.new_empty(w_ih.shape),
        w_hh.new_empty(w_hh.shape),
        _bias_grad_fake(x, w_ih.shape[0], has_bias),
        _bias_grad_fake(x, w_ih.shape[0], has_bias),
    )


def _hidden_cell_fake(cell):
    def fake(x, hx, w_ih, w_hh, b_ih, b_hh, *flags):
        cols = workspace_cols(cell, hx.shape[1], x=x)
        return hx.new_empty(hx.shape), _fake_workspace(x, x.shape[0], cols, flags[-1])

    return fake


def _hidden_cell_backward_fake(grad_hy, x, hx, w_ih, w_hh, hy, workspace, *flags):
    has_bias = flags[-1]
    return (
        x.new_empty(x.shape),
        hx.new_empty(hx.shape),
        w_ih.new_empty(w_ih.shape),
        w_hh.new_empty(w_hh.shape),
        _bias_grad_fake(x, w_ih.shape[0], has_bias),
        _bias_grad_fake(x, w_ih.shape[0], has_bias),
    )


for _cell in ("gru", "rnn"):
    register_fake(f"fusedrnn::{_cell}_cell")(_hidden_cell_fake(_cell))
    register_fake(f"fusedrnn::{_cell}_cell_backward")(_hidden_cell_backward_fake)


def lstm_cell(x, hx, cx, w_ih, w_hh, b_ih=None, b_hh=None) -> tuple[Tensor, Tensor]:
    """One LSTM step on [B, I] input. Returns (h', c')."""
    train = _needs_grad(x, hx, cx, w_ih, w_hh, b_ih, b_hh)
    hy, cy, _ = _ops.lstm_cell(x, hx, cx, w_ih, w_hh, b_ih, b_hh, train)
    return hy, cy


def gru_cell(x, hx, w_ih, w_hh, b_ih=None, b_hh=None) -> Tensor:
    """One GRU step on [B, I] input. Returns h'."""
    train = _needs_grad(x, hx, w_ih, w_hh, b_ih, b_hh)
    return _ops.gru_cell(x, hx, w_ih, w_hh, b_ih, b_hh, train)[0]


def rnn_cell(x, hx, w_ih, w_hh, b_ih=None, b_hh=None, relu: bool = False) -> Tensor:
    """One Elman RNN step on [B, I] input. Returns h'."""
    train = _needs_grad(x, hx, w_ih, w_hh, b_ih, b_hh)
    return _ops.rnn_cell(x, hx, w_ih, w_hh, b_ih, b_hh, relu, train)[0]
