"""Inputs far outside the training range: gates saturate, outputs and gradients stay finite and
match torch.nn; a NaN spreads through the same outputs as in torch.nn."""

import pytest
import torch

import fusedrnn


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_saturated_layers_match_torch(kind, scale):
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(4, 8)
    fused = getattr(fusedrnn, kind)(4, 8)
    fused.load_state_dict(ref.state_dict())
    x = (torch.randn(20, 3, 4) * scale).requires_grad_()
    y_ref, y = ref(x)[0], fused(x)[0]
    torch.testing.assert_close(y, y_ref, atol=1e-6, rtol=0)
    (g_ref,) = torch.autograd.grad(y_ref.sum(), x)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    torch.testing.assert_close(g, g_ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_nan_reaches_the_same_outputs(kind):
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(4, 8)
    fused = getattr(fusedrnn, kind)(4, 8)
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, 4)
    x[2, 0, 1] = float("nan")  # sequence 0 from step 2 on, sequence 1 untouched
    y_ref, y = ref(x)[0], fused(x)[0]
    assert torch.equal(torch.isnan(y), torch.isnan(y_ref)) and torch.isnan(y[2:, 0]).all()
    torch.testing.assert_close(y[:, 1], y_ref[:, 1], atol=2e-5, rtol=1e-4)
