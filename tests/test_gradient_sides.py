"""The backward's whole-sequence products side by side (csrc/cpu/recurrence.h
split_gradient_sides): with two threads, an LSTM or Elman chunk's x-side products (dX, dW_ih,
b_ih) run on one thread while its h-side ones (dW_hh, b_hh) run on the other.
FUSEDRNN_SPLIT_GRADIENTS=1 forces that wherever the cell allows, =0 turns it off (read per call).
Every gradient must match torch.nn either way, in one chunk and in many."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from .test_modules import check_parity_scaled, make_pair


@pytest.mark.parametrize("kind", ["lstm", "rnn_tanh", "gru"])
@pytest.mark.parametrize("forced", ["1", "0"], ids=["side-by-side", "one-after-the-other"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("chunk_rows", [None, "64"], ids=["one-chunk", "chunks"])
def test_parity_either_way(kind, forced, packed, chunk_rows, monkeypatch):
    # the GRU's gradient rows are wider than its gates (shared scratch): it never splits, and
    # must be unaffected by the switch. Packed: dW_hh takes the gathered h_{t-1} rows.
    monkeypatch.setenv("FUSEDRNN_SPLIT_GRADIENTS", forced)
    if chunk_rows:
        monkeypatch.setenv("FUSEDRNN_BACKWARD_CHUNK_ROWS", chunk_rows)
    torch.manual_seed(5)
    ref, fused = make_pair(kind, 12, 24, num_layers=2, bidirectional=True)
    x = torch.randn(30, 20, 12)
    if packed:
        x = pack_padded_sequence(x, torch.randint(1, 31, (20,)), enforce_sorted=False)
    check_parity_scaled(ref, fused, x)


@pytest.mark.parametrize("forced", ["1", "0"], ids=["side-by-side", "one-after-the-other"])
def test_parameter_gradients_without_dx(forced, monkeypatch):
    # a first layer over data: no dX, so the x side is dW_ih and b_ih alone
    monkeypatch.setenv("FUSEDRNN_SPLIT_GRADIENTS", forced)
    torch.manual_seed(6)
    ref, fused = make_pair("lstm", 16, 32)
    x = torch.randn(40, 20, 16)
    for module in (ref, fused):
        module.zero_grad()
        module(x)[0].square().sum().backward()
    for (name, a), b in zip(fused.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-4, msg=name)
