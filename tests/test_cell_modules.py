"""fusedrnn.LSTMCell/GRUCell/RNNCell against torch.nn's cells, including a decoder-style loop."""

import pytest
import torch
from torch import nn

import fusedrnn

from .conftest import assert_close

PAIRS = {
    "lstm": (nn.LSTMCell, fusedrnn.LSTMCell, {}),
    "gru": (nn.GRUCell, fusedrnn.GRUCell, {}),
    "rnn_tanh": (nn.RNNCell, fusedrnn.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNNCell, fusedrnn.RNNCell, {"nonlinearity": "relu"}),
}


def _pair(kind, bias=True):
    torch_cls, fused_cls, extra = PAIRS[kind]
    ref = torch_cls(5, 7, bias=bias, **extra)
    return ref, fused_cls.from_torch(ref)


def _unroll(cell, xs, state):
    """Drives a cell step by step from Python, as a decoder does; returns every output."""
    outs = []
    for x in xs:
        state = cell(x, state)
        outs.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(outs)


@pytest.mark.parametrize("kind", PAIRS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_cell_loop_parity_with_gradients(kind, bias, with_state):
    ref, fused = _pair(kind, bias)
    xs = torch.randn(6, 3, 5, requires_grad=True)
    state = None
    if with_state:
        state = torch.randn(3, 7, requires_grad=True)
        if kind == "lstm":
            state = (state, torch.randn(3, 7, requires_grad=True))
    leaves = [xs] + ([] if state is None else list(state) if isinstance(state, tuple) else [state])
    out_ref = _unroll(ref, xs, state)
    out_fused = _unroll(fused, xs, state)
    assert_close(out_fused, out_ref)
    probe = torch.rand_like(out_ref)
    g_ref = torch.autograd.grad((out_ref * probe).sum(), leaves + list(ref.parameters()))
    g_fused = torch.autograd.grad((out_fused * probe).sum(), leaves + list(fused.parameters()))
    for i, (a, b) in enumerate(zip(g_fused, g_ref, strict=True)):
        assert_close(a, b, what=f"grad {i}")


@pytest.mark.parametrize("kind", PAIRS)
def test_unbatched_cell_input(kind):
    ref, fused = _pair(kind)
    x = torch.randn(5)
    a, b = fused(x), ref(x)
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,),
                    strict=True):
        assert u.shape == v.shape == (7,)
        assert_close(u, v)


@pytest.mark.parametrize("kind", PAIRS)
def test_cell_to_torch_round_trip(kind):
    ref, fused = _pair(kind)
    back = fused.to_torch()
    assert type(back) is PAIRS[kind][0]
    assert isinstance(fused, PAIRS[kind][0])
    for (n1, p1), (n2, p2) in zip(ref.named_parameters(), back.named_parameters(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)


def test_cell_wrong_input_size_is_a_clear_error():
    cell = fusedrnn.GRUCell(5, 7)
    with pytest.raises(RuntimeError, match="inconsistent input_size: got 4, expected 5"):
        cell(torch.randn(3, 4))
    with pytest.raises(RuntimeError, match=r"hidden state must be \[3, 7\]"):
        cell(torch.randn(3, 5), torch.randn(2, 7))
    with pytest.raises(ValueError, match="Expected input to be 1D or 2D, got 3D"):
        cell(torch.randn(1, 3, 5))


class _Scale(nn.Module):
    def forward(self, w):
        return 0.5 * w


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cell_uses_parametrized_weights(kind):
    # The cells read their weights from _parameters for speed (fusedrnn/nn/_params.py); a weight
    # that a parametrization replaced must still be read through it, as torch.nn's cells do.
    from torch.nn.utils import parametrize

    ref, fused = _pair(kind)
    x, h = torch.randn(3, 5), torch.randn(3, 7)
    state = (h, torch.randn(3, 7)) if kind == "lstm" else h
    first = lambda out: out[0] if isinstance(out, tuple) else out  # noqa: E731
    before = first(fused(x, state))
    for cell in (ref, fused):
        parametrize.register_parametrization(cell, "weight_hh", _Scale())
    after = first(fused(x, state))
    assert_close(after, first(ref(x, state)))
    assert not torch.allclose(after, before)  # the halved weight_hh was used
