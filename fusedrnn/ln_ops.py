"""Typed wrappers and fake kernels for the LayerNorm layer ops (ln_lstm_layer, ln_gru_layer); their
autograd is registered in C++ (csrc/layer_autograd.cpp).

`ln` packs a layer's LayerNorm gains and biases in one vector, in the order of the cell headers
(csrc/cells/ln_lstm.h, ln_gru.h): LSTM γ_ih, β_ih, γ_hh, β_hh (4H each), γ_c, β_c (H each); GRU
γ_ih, β_ih, γ_hh, β_hh (3H each). The modules build it with torch.cat, so autograd splits its
gradient back onto their separate parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._fake import register_fake
from .ops import (
    _bias_grad_fake,
    _fake_workspace,
    _grad_x_fake,
    _layer_rows,
    _needs_grad,
)

_ops = torch.ops.fusedrnn


def ln_params(cell: str, hidden: int) -> int:
    """Length of the packed LN vector, mirroring Cell::ln_params."""
    return {"lstm": 18, "gru": 12}[cell] * hidden


def ln_workspace_cols(cell: str, hidden: int) -> int:
    """Workspace columns, mirroring Cell::workspace_cols of the LayerNorm cells."""
    return {"lstm": 14 * hidden + 3, "gru": 10 * hidden + 2}[cell]


# ---- LayerNorm LSTM ------------------------------------------------------------------------


@register_fake("fusedrnn::ln_lstm_layer")
def _ln_lstm_fake(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes, reverse, eps, train,
                  rec_mask=None, zoneout_h=None, zoneout_c=None):
    hidden = w_hh.shape[0] // 4
    cols = ln_workspace_cols("lstm", hidden) + (hidden if zoneout_c is not None else 0)
    return (
        x.new_empty((*x.shape[:-1], hidden)),
        h0.new_empty(h0.shape),
        c0.new_empty(c0.shape),
        _fake_workspace(x, _layer_rows(x, batch_sizes), cols, train),
    )


@register_fake("fusedrnn::ln_lstm_layer_backward")
def _ln_lstm_backward_fake(grad_y, grad_h_n, grad_c_n, x, h0, c0, w_ih, w_hh, ln, batch_sizes, y,
                           workspace, reverse, has_bias, rec_mask=None, zoneout_h=None,
                           zoneout_c=None, *, x_grad=True):
    return (
        _grad_x_fake(x, x_grad), h0.new_empty(h0.shape), c0.new_empty(c0.shape),
        w_ih.new_empty(w_ih.shape), w_hh.new_empty(w_hh.shape),
        _bias_grad_fake(x, w_ih.shape[0], has_bias), _bias_grad_fake(x, w_ih.shape[0], has_bias),
        ln.new_empty(ln.shape),
    )


def ln_lstm_layer(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
                  b_hh: Tensor | None, ln: Tensor, batch_sizes: Tensor | None = None,
                  reverse: bool = False, eps: float = 1e-5, rec_mask: Tensor | None = None,
                  zoneout_h: Tensor | None = None, zoneout_c: Tensor | None = None,
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """One layer-normalised LSTM layer in one direction. x: [T, B, I] or packed [N, I].

    Returns (y, h_n, c_n).
    """
    train = _needs_grad(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln)
    y, h_n, c_n, _ = _ops.ln_lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes, reverse,
                                        eps, train, rec_mask, zoneout_h, zoneout_c)
    return y, h_n, c_n


# ---- LayerNorm GRU -------------------------------------------------------------------------


@register_fake("fusedrnn::ln_gru_layer")
def _ln_gru_fake(x, h0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes, reverse, eps, train,
                 rec_mask=None, zoneout_h=None):
    hidden = w_hh.shape[0] // 3
    return (
        x.new_empty((*x.shape[:-1], hidden)),
        h0.new_empty(h0.shape),
        _fake_workspace(x, _layer_rows(x, batch_sizes), ln_workspace_cols("gru", hidden), train),
    )


@register_fake("fusedrnn::ln_gru_layer_backward")
def _ln_gru_backward_fake(grad_y, grad_h_n, x, h0, w_ih, w_hh, ln, batch_sizes, y, workspace,
                          reverse, has_bias, rec_mask=None, zoneout_h=None, *, x_grad=True):
    return (
        _grad_x_fake(x, x_grad), h0.new_empty(h0.shape),
        w_ih.new_empty(w_ih.shape), w_hh.new_empty(w_hh.shape),
        _bias_grad_fake(x, w_ih.shape[0], has_bias), _bias_grad_fake(x, w_ih.shape[0], has_bias),
        ln.new_empty(ln.shape),
    )


def ln_gru_layer(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
                 b_hh: Tensor | None, ln: Tensor, batch_sizes: Tensor | None = None,
                 reverse: bool = False, eps: float = 1e-5, rec_mask: Tensor | None = None,
                 zoneout_h: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One layer-normalised GRU layer in one direction. Returns (y, h_n)."""
    train = _needs_grad(x, h0, w_ih, w_hh, b_ih, b_hh, ln)
    y, h_n, _ = _ops.ln_gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes, reverse, eps, train,
                                  rec_mask, zoneout_h)
    return y, h_n
