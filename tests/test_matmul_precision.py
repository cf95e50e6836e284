"""The CPU kernels follow torch.set_float32_matmul_precision, as torch.nn's own matmuls do.

"highest" (torch's default) keeps every GEMM in fp32. "medium" lets large enough GEMMs run in
bf16 with fp32 accumulation through ATen's oneDNN path; the results then move by bf16 rounding
only, and "highest" afterwards gives back the exact fp32 numbers.
"""

import pytest
import torch

import fusedrnn

from .conftest import assert_close

# large enough that the per-step GEMMs (B/threads rows x 3H x H) pass the kernel's
# reduced-precision threshold of 2^22 multiply-adds
B, T, I, H = 64, 6, 96, 256


@pytest.fixture
def restore_precision():
    yield
    torch.set_float32_matmul_precision("highest")


def _torch_rounds_to_bf16(a, w):
    """Whether torch's own a·wᵀ changes under 'medium': ATen's oneDNN path uses bf16 only where
    the CPU has bf16 units and only for shapes it picks (on a CPU without AMX, not at k = 96)."""
    with torch.no_grad():
        torch.set_float32_matmul_precision("highest")
        exact = torch.nn.functional.linear(a, w)
        torch.set_float32_matmul_precision("medium")
        rounded = torch.nn.functional.linear(a, w)
    return not torch.equal(exact, rounded)


def _run(layer, x):
    x = x.detach().requires_grad_()
    y, _ = layer(x)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    grads = [x.grad] + [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    return y.detach(), grads


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_medium_precision_stays_within_bf16_rounding_and_highest_is_exact(kind, restore_precision):
    torch.manual_seed(0)
    ref_layer = getattr(torch.nn, kind)(I, H, batch_first=True)
    layer = getattr(fusedrnn, kind)(I, H, batch_first=True)
    layer.load_state_dict(ref_layer.state_dict())
    x = torch.randn(B, T, I)

    torch.set_float32_matmul_precision("highest")
    y_ref, g_ref = _run(ref_layer, x)
    y_fp32, g_fp32 = _run(layer, x)
    assert_close(y_fp32, y_ref, what="fp32 output")

    torch.set_float32_matmul_precision("medium")
    y_bf16, g_bf16 = _run(layer, x)
    # bf16 keeps 8 significant bits: products carry ~0.4% relative error, summed in fp32
    torch.testing.assert_close(y_bf16, y_ref, atol=2e-2, rtol=2e-2)
    for got, want in zip(g_bf16, g_ref, strict=True):
        scale = want.abs().max().item()
        torch.testing.assert_close(got, want, atol=3e-2 * scale, rtol=5e-2)
    if _torch_rounds_to_bf16(x.reshape(-1, I), layer.weight_ih_l0):
        # where torch's own matmul of this shape rounds, ours must too: the setting reached them
        assert (y_bf16 - y_fp32).abs().max() > 1e-5

    torch.set_float32_matmul_precision("highest")
    y_again, g_again = _run(layer, x)
    assert torch.equal(y_again, y_fp32)
    for got, want in zip(g_again, g_fp32, strict=True):
        assert torch.equal(got, want)


def test_small_gemms_and_float64_ignore_the_setting(restore_precision):
    """Below the threshold the conversion costs more than it saves; float64 is never reduced."""
    torch.manual_seed(0)
    # batch 20: the rows are split over two threads and each step's product is stacked
    # (test_per_step_products.py), batch 4: one thread runs the steps
    for dtype, size, batch in ((torch.float32, 16, 4), (torch.float32, 16, 20),
                               (torch.float64, 256, 64)):
        layer = fusedrnn.GRU(8, size, batch_first=True, dtype=dtype)
        x = torch.randn(batch, 5, 8, dtype=dtype)
        torch.set_float32_matmul_precision("highest")
        with torch.no_grad():
            exact = layer(x)[0]
        torch.set_float32_matmul_precision("medium")
        with torch.no_grad():
            assert torch.equal(layer(x)[0], exact), dtype
