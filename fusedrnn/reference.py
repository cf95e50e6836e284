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
    H = h.shape[1]
    a = F.layer_norm(x @ p["w_ih"].t(), (3 * H,), p["ln_ih_w"], p["ln_ih_b"], eps)
    b = F.layer_norm(h @ p["w_hh"].t(), (3 * H,), p["ln_hh_w"], p["ln_hh_b"], eps)
    if p.get("b_ih") is not None:
        a = a + p["b_ih"]
    if p.get("b_hh") is not None:
        b = b + p["b_hh"]
    a_r, a_z, a_n = a.chunk(3, dim=1)
    b_r, b_z, b_n = b.chunk(3, dim=1)
    r = torch.sigmoid(a_r + b_r)
    z = torch.sigmoid(a_z + b_z)
    n = torch.tanh(a_n + r * b_n)
    return (1 - z) * n + z * h
