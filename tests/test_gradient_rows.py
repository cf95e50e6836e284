"""The backward's whole-sequence products split by rows (csrc/cpu/recurrence.h
split_gradient_rows): with two or more threads, each thread runs dX, dW_ih, dW_hh and the biases
over its share of a chunk's rows, into partial sums added afterwards.
FUSEDRNN_SPLIT_GRADIENTS=1 forces that wherever the rows and the cell allow, =0 turns it off (read
per call). Every gradient must match torch.nn either way: in one chunk and in many, padded and
packed, with and without dX and biases, and with more threads than cores."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fusedrnn

from .test_modules import check_parameter_grads, check_stack_parity, make_pair

SWITCH = pytest.mark.parametrize("forced", ["1", "0"], ids=["rows-split", "one-product-each"])


@pytest.fixture(autouse=True)
def blas_products(monkeypatch):
    # the split applies to the BLAS products; where the one-pass kernel applies (float, whole
    # 16-float gradient blocks: the LSTM here) it takes the products instead
    # (test_one_pass_products.py)
    monkeypatch.setenv("FUSEDRNN_ONE_PASS_PRODUCTS", "0")


THREADS = pytest.mark.parametrize("num_threads", [2, 3], indirect=True,
                                  ids=["2-threads", "3-threads"])


@pytest.mark.parametrize("kind", ["lstm", "rnn_tanh", "gru"])
@THREADS
@SWITCH
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("chunk_rows", [None, "200"], ids=["one-chunk", "chunks"])
def test_parity_either_way(kind, forced, packed, chunk_rows, num_threads, monkeypatch):
    # 600 rows: each thread takes at least 64 (kMinRowsPerPart), so 200-row chunks split too.
    # Packed: dW_hh takes the gathered h_{t-1} rows; padded: the rows where they lie (h0, then y).
    monkeypatch.setenv("FUSEDRNN_SPLIT_GRADIENTS", forced)
    if chunk_rows:
        monkeypatch.setenv("FUSEDRNN_BACKWARD_CHUNK_ROWS", chunk_rows)
    torch.manual_seed(5)
    check_stack_parity(kind, 12, 24, T=30, B=20, packed=packed)


@THREADS
@SWITCH
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_parameter_gradients_without_dx(forced, bias, num_threads, monkeypatch):
    # a first layer over data: no dX; without biases the partial sums hold weights alone
    monkeypatch.setenv("FUSEDRNN_SPLIT_GRADIENTS", forced)
    torch.manual_seed(6)
    ref, fused = make_pair("lstm", 16, 32, bias=bias)
    check_parameter_grads(ref, fused, torch.randn(40, 20, 16), atol=1e-4)


@pytest.mark.parametrize("cls", [fusedrnn.LayerNormLSTM, fusedrnn.LayerNormGRU])
@THREADS
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_layer_norm_cells_split_or_not(cls, packed, num_threads, monkeypatch):
    # The LayerNorm cells' own sums (LN parameters, biases) are taken over all rows before the
    # products; split or not, every gradient must agree (test_layer_norm checks the unsplit path
    # against the step-by-step reference).
    torch.manual_seed(7)
    m = cls(12, 24, num_layers=2)
    x = torch.randn(30, 20, 12, requires_grad=True)
    lengths = torch.randint(1, 31, (20,))
    grads = {}
    for forced in ("0", "1"):
        monkeypatch.setenv("FUSEDRNN_SPLIT_GRADIENTS", forced)
        m.zero_grad()
        x.grad = None
        inp = pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x
        y = m(inp)[0]
        (y.data if packed else y).square().sum().backward()
        grads[forced] = [x.grad.clone()] + [p.grad.clone() for p in m.parameters()]
    names = ["x"] + [name for name, _ in m.named_parameters()]
    for name, a, b in zip(names, grads["1"], grads["0"], strict=True):
        scale = max(b.abs().max().item(), 1.0)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * scale, msg=name)
