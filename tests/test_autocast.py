"""The fused modules (recurrent layers, cells, Conv1d) under torch.autocast
(fusedrnn/nn/_fallback.py, autocast_dtype): on the CPU they run float32, taking bfloat16 inputs
and states (an autocast Linear's output, a decoder's state from one) up to it instead of refusing
them or falling back to torch.nn; on CUDA they run autocast's dtype. Outside autocast a state in
another dtype than the input stays an error."""

import warnings

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fusedrnn

T, B, I, H = 6, 3, 4, 5
LAYERS = {
    "LSTM": lambda: fusedrnn.LSTM(I, H, num_layers=2, bidirectional=True),
    "GRU": lambda: fusedrnn.GRU(I, H, num_layers=2),
    "RNN": lambda: fusedrnn.RNN(I, H, nonlinearity="relu"),
    "LayerNormLSTM": lambda: fusedrnn.LayerNormLSTM(I, H),
    "LayerNormGRU": lambda: fusedrnn.LayerNormGRU(I, H, bidirectional=True),
}


def _state(module, dtype):
    directions = 2 if module.bidirectional else 1
    h = torch.randn(module.num_layers * directions, B, H).to(dtype)
    return (h, torch.randn_like(h.float()).to(dtype)) if module.mode == "LSTM" else h


def _leaves(hx):
    return list(hx) if isinstance(hx, tuple) else [hx]


def _run(module, x, hx, autocast):
    """Output, final states and the gradients of x, the states and every parameter."""
    module.zero_grad()
    x, hx = x.detach().requires_grad_(), tuple(s.detach().requires_grad_() for s in _leaves(hx))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y, h_n = module(x, hx if module.mode == "LSTM" else hx[0])
    loss = (y.float() ** 2).sum() + sum((s.float() ** 2).sum() for s in _leaves(h_n))
    loss.backward()
    grads = [x.grad, *(s.grad for s in hx), *(p.grad for p in module.parameters())]
    return y, _leaves(h_n), grads


@pytest.mark.parametrize("kind", LAYERS)
def test_layer_runs_bfloat16_inputs_in_float32_under_cpu_autocast(kind):
    module = LAYERS[kind]()
    x, hx = torch.randn(T, B, I).bfloat16(), _state(module, torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to torch.nn's implementation
        y, h_n, grads = _run(module, x, hx, autocast=True)
    assert y.dtype == torch.float32 and all(s.dtype == torch.float32 for s in h_n)
    # the same as the float32 call on the inputs taken up to float32, gradients included
    # (those of the bfloat16 input and states come back in bfloat16)
    up = tuple(s.float() for s in _leaves(hx))
    y_ref, h_ref, grads_ref = _run(module, x.float(), up if kind.endswith("LSTM") else up[0],
                                   autocast=False)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    for a, b in zip(h_n, h_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a.float(), b.to(a.dtype).float(), rtol=0, atol=0)
    assert grads[0].dtype == torch.bfloat16 and grads[-1].dtype == torch.float32


def test_float32_input_with_a_bfloat16_state_from_an_autocast_linear():
    # a seq2seq bridge: under autocast the Linear that makes the decoder's state returns bfloat16
    torch.manual_seed(1)
    bridge, rnn = torch.nn.Linear(H, H), fusedrnn.GRU(I, H, batch_first=True)
    x, code = torch.randn(B, T, I), torch.randn(B, H)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h0 = bridge(code).unsqueeze(0)
        assert h0.dtype == torch.bfloat16
        y, _ = rnn(x, h0)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, rnn(x, h0.float())[0], rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="h0 must have dtype Float like x, got BFloat16"):
        rnn(x, h0)  # outside autocast the dtypes must agree, as in torch.nn


def test_packed_bfloat16_input_under_cpu_autocast():
    rnn = fusedrnn.LSTM(I, H)
    lengths = torch.tensor([6, 2, 5])
    packed = pack_padded_sequence(torch.randn(T, B, I).bfloat16(), lengths, enforce_sorted=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h, c) = rnn(packed)
    assert out.data.dtype == h.dtype == torch.float32
    want, (h_ref, _) = rnn(packed._replace(data=packed.data.float()))
    torch.testing.assert_close(out.data, want.data, rtol=0, atol=0)
    torch.testing.assert_close(h, h_ref, rtol=0, atol=0)


@pytest.mark.parametrize("cell_class", [fusedrnn.LSTMCell, fusedrnn.GRUCell, fusedrnn.RNNCell])
def test_cells_under_cpu_autocast(cell_class):
    cell = cell_class(I, H)
    x, h = torch.randn(B, I).bfloat16(), torch.randn(B, H).bfloat16()
    hx = (h, h) if cell_class is fusedrnn.LSTMCell else h
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cell(x, hx)
    up = (h.float(), h.float()) if cell_class is fusedrnn.LSTMCell else h.float()
    want = cell(x.float(), up)
    for a, b in zip(_leaves(out), _leaves(want), strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_float64_is_left_alone_under_autocast():
    rnn = fusedrnn.GRU(I, H).double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, h = rnn(x)
    assert y.dtype == h.dtype == torch.float64
    torch.testing.assert_close(y, rnn(x)[0], rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_runs_the_kernels_in_autocasts_dtype(dtype):
    rnn = fusedrnn.LSTM(I, H, num_layers=2).cuda()
    x = torch.randn(T, B, I, device="cuda")
    with torch.autocast("cuda", dtype=dtype):
        y, (h, c) = rnn(x)
    assert y.dtype == h.dtype == dtype
    tol = {torch.float16: 5e-3, torch.bfloat16: 3e-2}[dtype]
    torch.testing.assert_close(y.float(), rnn(x)[0], atol=tol, rtol=tol)
    y.float().sum().backward()
    assert rnn.weight_ih_l0.grad.dtype == torch.float32


def test_conv1d_and_wavenet_under_cpu_autocast():
    conv = fusedrnn.Conv1d(I, H, 3, padding="same", activation="relu")
    net = fusedrnn.WaveNet(I, H, dilations=(1, 2))
    x = torch.randn(B, T, I).bfloat16()
    for module in (conv, net):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = module(x)
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, module(x.float()), rtol=0, atol=0)
