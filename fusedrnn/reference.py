"""Plain PyTorch, step-by-step references of the LayerNorm cells, written the way people write them
today: a Python loop over nn.Linear and nn.LayerNorm modules.

They restate the formulas of csrc/cells/ln_lstm.h and ln_gru.h independently, for the tests to
compare against, and they are the eager (and torch.compile'd) baselines of the benchmarks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def ln_lstm_step(x: Tensor, h: Tensor, c: Tensor, p: dict, eps: float = 1e-5):
    """One step of a layer-normalised LSTM; p holds one layer/direction's tensors by short name."""
    H = h.shape[1]
    gx = F.layer_norm(x @ p["w_ih"].t(), (4 * H,), p["ln_ih_w"], p["ln_ih_b"], eps)
    gh = F.layer_norm(h @ p["w_hh"].t(), (4 * H,), p["ln_hh_w"], p["ln_hh_b"], eps)
    gates = gx + gh
    if p.get("b_ih") is not None:
        gates = gates + p["b_ih"]
    if p.get("b_hh") is not None:
        gates = gates + p["b_hh"]
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(F.layer_norm(c, (H,), p["ln_c_w"], p["ln_c_b"], eps))
    return h, c


def ln_gru_step(x: Tensor, h: Tensor, p: dict, eps: float = 1e-5):
    """One step of a layer-normalised GRU (torch.nn.GRU's reset-after formulation)."""
    return _ln_gru_masked(x, h, h, p, eps)


# ---- every fused layer with its regularisers, step by step ---------------------------------

KINDS = ("lstm", "gru", "rnn_tanh", "rnn_relu", "ln_lstm", "ln_gru")


def _affine(v: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    return v @ w.t() if b is None else v @ w.t() + b


def cell_step(kind: str, x: Tensor, h: Tensor, c: Tensor | None, p: dict, eps: float = 1e-5,
              rec_mask: Tensor | None = None):
    """One step of any fused cell: returns (h̃, c̃) (c̃ None without a cell state).

    rec_mask scales h_{t-1} where it enters the recurrent matmul only (variational recurrent
    dropout); the GRU's z·h_{t-1} term sees the unmasked state.
    """
    hm = h if rec_mask is None else h * rec_mask
    if kind == "ln_lstm":  # h_{t-1} enters an LSTM only through W_hh
        return ln_lstm_step(x, hm, c, p, eps)
    if kind == "ln_gru":
        return _ln_gru_masked(x, h, hm, p, eps), None
    gx, gh = _affine(x, p["w_ih"], p.get("b_ih")), _affine(hm, p["w_hh"], p.get("b_hh"))
    if kind == "lstm":
        i, f, g, o = (gx + gh).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    if kind == "gru":
        a_r, a_z, a_n = gx.chunk(3, 1)
        b_r, b_z, b_n = gh.chunk(3, 1)
        r, z = torch.sigmoid(a_r + b_r), torch.sigmoid(a_z + b_z)
        n = torch.tanh(a_n + r * b_n)
        return (1 - z) * n + z * h, None
    pre = gx + gh
    return (torch.relu(pre) if kind == "rnn_relu" else torch.tanh(pre)), None


def _ln_gru_masked(x, h, hm, p, eps):
    # hm (h_{t-1}, masked for recurrent dropout) feeds W_hh; z·h_{t-1} uses the unmasked h
    H = h.shape[1]
    a = F.layer_norm(x @ p["w_ih"].t(), (3 * H,), p["ln_ih_w"], p["ln_ih_b"], eps)
    b = F.layer_norm(hm @ p["w_hh"].t(), (3 * H,), p["ln_hh_w"], p["ln_hh_b"], eps)
    if p.get("b_ih") is not None:
        a = a + p["b_ih"]
    if p.get("b_hh") is not None:
        b = b + p["b_hh"]
    a_r, a_z, a_n = a.chunk(3, dim=1)
    b_r, b_z, b_n = b.chunk(3, dim=1)
    r, z = torch.sigmoid(a_r + b_r), torch.sigmoid(a_z + b_z)
    n = torch.tanh(a_n + r * b_n)
    return (1 - z) * n + z * h


def run_layer(kind: str, x: Tensor, h0: Tensor, c0: Tensor | None, p: dict, *,
              batch_sizes: Tensor | None = None, reverse: bool = False, eps: float = 1e-5,
              rec_mask: Tensor | None = None, zoneout_h: Tensor | None = None,
              zoneout_c: Tensor | None = None):
    """One layer in one direction over x ([T, B, I], or packed [N, I] with batch_sizes), with
    zoneout h_t = h̃_t + m·(h_{t-1} − h̃_t) (and likewise c). p's w_hh already carries any
    DropConnect mask. Returns (y, h_n, c_n)."""
    if batch_sizes is None:  # x and the zoneout masks are [T, B, ·]
        sizes, offsets = [x.shape[1]] * x.shape[0], None
        row = lambda m, t, n: m[t][:n]  # noqa: E731
    else:  # packed: [N, ·], step t's rows start at offsets[t]
        sizes = [int(s) for s in batch_sizes]
        offsets = [sum(sizes[:t]) for t in range(len(sizes))]
        row = lambda m, t, n: m[offsets[t]:offsets[t] + n]  # noqa: E731
    x_at = (lambda t: x[t]) if offsets is None else (lambda t: x[offsets[t]:offsets[t] + sizes[t]])
    zh, zc = zoneout_h, zoneout_c
    h, c = h0, c0
    outputs = [None] * len(sizes)
    for t in (range(len(sizes) - 1, -1, -1) if reverse else range(len(sizes))):
        n = sizes[t]
        h_prev, c_prev = h[:n], (c[:n] if c is not None else None)
        d = rec_mask[:n] if rec_mask is not None else None
        h_new, c_new = cell_step(kind, x_at(t), h_prev, c_prev, p, eps, d)
        if zh is not None:
            h_new = h_new + row(zh, t, n) * (h_prev - h_new)
        if zc is not None:
            c_new = c_new + row(zc, t, n) * (c_prev - c_new)
        h = torch.cat([h_new, h[n:]])
        if c is not None:
            c = torch.cat([c_new, c[n:]])
        outputs[t] = h_new
    y = torch.stack(outputs) if offsets is None else torch.cat(outputs)
    return y, h, c
