"""The backward's dW_ih, dW_hh and bias terms from one kernel (csrc/cpu/weight_gradient_products.h):
float layers whose gradient column blocks are multiples of 16 wide (an LSTM's and Elman cell's
G·H, a GRU's 2H and H, a LayerNorm cell's G·H) and whose I and P are at most 128.
FUSEDRNN_ONE_PASS_PRODUCTS=0 turns it off (read per call). Every gradient must match torch.nn
either way, over the kernel's edges: output rows in 32-row tiles with a 16-row tail, column
tiles of 1 to 12, more rows than one row block (1,024), beta 1 over several chunks, the h_{t-1}
rows in place (h0, then y) and gathered (packed), projections, no bias, one thread and several."""

import pytest
import torch

from .test_layer_norm import _check_module_against_reference, _random_lengths
from .test_modules import (
    check_parameter_grads,
    check_parity_scaled,
    check_stack_parity,
    make_pair,
)

SWITCH = pytest.mark.parametrize("one_pass", ["1", "0"], ids=["one-pass", "blas"])


THREADS = pytest.mark.parametrize("num_threads", [1, 2, 3], indirect=True,
                                  ids=["1-thread", "2-threads", "3-threads"])


# (kind, I, H, extra): G·H of 48 (a 32-row tile and a 16-row tail), 80, 32 and 256; I of 1
# (one-column tiles), 13 and 100 (nine tiles of 11-12); a projection of 7; GRUs, whose x side
# takes two blocks of the gradient row (r and z, then n from its own column) and whose b_hh has
# its own sums
SHAPES = [
    ("lstm", 13, 12, {}),
    ("lstm", 1, 20, {}),
    ("lstm", 100, 64, {}),
    ("lstm", 13, 20, {"proj_size": 7}),
    ("rnn_tanh", 13, 48, {}),
    ("rnn_relu", 5, 32, {"bias": False}),
    ("gru", 13, 16, {}),
    ("gru", 40, 32, {"bias": False}),
]


@pytest.mark.parametrize("kind,input_size,hidden,extra", SHAPES,
                         ids=[f"{k}-I{i}-H{h}{'-' + '-'.join(e) if e else ''}"
                              for k, i, h, e in SHAPES])
@SWITCH
@THREADS
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("chunk_rows", [None, "150"], ids=["one-chunk", "chunks"])
def test_parity_with_torch(kind, input_size, hidden, extra, one_pass, packed, chunk_rows,
                           num_threads, monkeypatch):
    monkeypatch.setenv("FUSEDRNN_ONE_PASS_PRODUCTS", one_pass)
    if chunk_rows:
        monkeypatch.setenv("FUSEDRNN_BACKWARD_CHUNK_ROWS", chunk_rows)
    torch.manual_seed(11)
    check_stack_parity(kind, input_size, hidden, T=25, B=24, packed=packed, **extra)


@SWITCH
@THREADS
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_long_chunk_without_dx(one_pass, bias, num_threads, monkeypatch):
    # 2,600 rows in one chunk: on one thread the kernel walks them in three row blocks, the
    # second and third added to the first; the input needs no gradient, so no dX
    monkeypatch.setenv("FUSEDRNN_ONE_PASS_PRODUCTS", one_pass)
    torch.manual_seed(12)
    ref, fused = make_pair("lstm", 24, 16, bias=bias)
    check_parameter_grads(ref, fused, torch.randn(130, 20, 24))


def test_both_paths_agree_with_each_other(monkeypatch):
    # the kernel and the BLAS sum the same terms in other orders: equal to float32 rounding
    torch.manual_seed(13)
    _, fused = make_pair("lstm", 32, 64)
    x = torch.randn(50, 16, 32)
    grads = {}
    for one_pass in ("1", "0"):
        monkeypatch.setenv("FUSEDRNN_ONE_PASS_PRODUCTS", one_pass)
        fused.zero_grad()
        fused(x)[0].square().sum().backward()
        grads[one_pass] = [p.grad.clone() for p in fused.parameters()]
    for (name, _), a, b in zip(fused.named_parameters(), grads["1"], grads["0"], strict=True):
        assert not torch.equal(a, torch.zeros_like(a)), name
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item(), msg=name)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@SWITCH
@THREADS
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("chunk_rows", [None, "40"], ids=["default-chunks", "small-chunks"])
def test_layer_norm_cells_against_reference(kind, one_pass, packed, chunk_rows, num_threads,
                                            monkeypatch):
    # H 16: G·H of 64 and 48 (the x side's pre-LN gradient has its own G·H columns); the
    # biases and LN parameters come from the cell's own row sums, the weights from the kernel
    monkeypatch.setenv("FUSEDRNN_ONE_PASS_PRODUCTS", one_pass)
    if chunk_rows:
        monkeypatch.setenv("FUSEDRNN_BACKWARD_CHUNK_ROWS", chunk_rows)
    torch.manual_seed(14)
    _check_module_against_reference(kind, 2, True, packed, True, torch.float32, T=12, B=20,
                                    lengths=_random_lengths(3, 12, 20, seed=4), scaled=True,
                                    I=7, H=16)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_forced_on_at_a_wide_input(kind, monkeypatch):
    # I = 256 is past the default's narrow widths; forced on, a GRU's dX still takes its x side's
    # two column blocks copied out plain for oneDNN (120-row chunks of 256 x 192 products)
    monkeypatch.setenv("FUSEDRNN_ONE_PASS_PRODUCTS", "1")
    torch.manual_seed(15)
    ref, fused = make_pair(kind, 256, 64)
    check_parity_scaled(ref, fused, torch.randn(60, 32, 256))
