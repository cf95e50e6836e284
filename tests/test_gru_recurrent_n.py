"""The CPU GRU layer's workspace row keeps three columns per hidden unit instead of four
(csrc/cpu/recurrence.h, gru_row): r, z and b_n = h_{t-1}·W_hnᵀ + b_hn, its backward rebuilding n
from the outputs (h_{t-1} − h_t = (1 − z)(h_{t-1} − n)); with zoneout on h, whose outputs are not
the cell's, r, z and n, its backward recomputing b_n chunk by chunk. One step without
regularisers (the cell ops) keeps all four. Checked here: the workspace widths and their fake
mirror, what the third column holds, the gradients of every batch layout against the float64
reference over several chunks, saturated update gates (z = 1 in float32), and the b_hh argument
of the backward op."""

import pytest
import torch

from fusedrnn import GRU, ops
from fusedrnn import reference as masked_reference

from . import reference
from .cases import batch_sizes_for
from .conftest import assert_close

T, B, I, H = 9, 5, 4, 6


def _gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes=None, rec_mask=None, zoneout_h=None):
    return torch.ops.fusedrnn.gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, False, True,
                                        rec_mask, zoneout_h)


def _weights(dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    rand = lambda *s: (torch.rand(*s, generator=gen, dtype=dtype) * 2 - 1) * H**-0.5  # noqa: E731
    return rand(3 * H, I), rand(3 * H, H), rand(3 * H), rand(3 * H)


@pytest.mark.parametrize(
    "steps, masked, cols",
    [(T, False, 3 * H), (1, False, 4 * H), (1, True, 3 * H), (0, False, 3 * H)],
    ids=["sequence", "one-step", "one-step-masked", "no-steps"],
)
def test_workspace_leaves_out_b_n_except_one_plain_step(steps, masked, cols):
    w_ih, w_hh, b_ih, b_hh = _weights()
    x, h0 = torch.randn(steps, B, I), torch.randn(B, H)
    rec_mask = torch.full((B, H), 1.25) if masked else None
    args = (x, h0, w_ih, w_hh, b_ih, b_hh, None, False, True, rec_mask)
    _, _, ws = torch.ops.fusedrnn.gru_layer(*args)
    assert ws.shape == (steps * B, cols)
    # the fake kernel (torch.compile's shapes) says the same
    torch.library.opcheck(torch.ops.fusedrnn.gru_layer.default, args)


def test_packed_batch_of_one_step_keeps_b_n():
    w_ih, w_hh, b_ih, b_hh = _weights()
    x, h0, bs = torch.randn(B, I), torch.randn(B, H), torch.tensor([B])
    _, _, ws = torch.ops.fusedrnn.gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh, bs, False, True)
    assert ws.shape == (B, 4 * H)


def _reference_grads(x, h0, weights, batch_sizes, reverse, rec_mask, zoneout_h, dy, dh):
    p = dict(zip(["w_ih", "w_hh", "b_ih", "b_hh"], weights, strict=True))
    y, h_n, _ = masked_reference.run_layer("gru", x, h0, None, p, batch_sizes=batch_sizes,
                                           reverse=reverse, rec_mask=rec_mask, zoneout_h=zoneout_h)
    return torch.autograd.grad((y * dy).sum() + (h_n * dh).sum(), [x, h0, *weights])


def _third_column(x, h0, weights, y, zoneout_h):
    """What the workspace's third block should hold: b_n, or n where zoneout_h recomputes b_n."""
    w_ih, w_hh, b_ih, b_hh = weights
    h_prev = torch.cat([h0[None], y[:-1]])
    b_n = h_prev @ w_hh[2 * H:].t() + b_hh[2 * H:]
    if zoneout_h is None:
        return b_n
    a = x @ w_ih.t() + b_ih
    r = torch.sigmoid(a[..., :H] + h_prev @ w_hh[:H].t() + b_hh[:H])
    return torch.tanh(a[..., 2 * H:] + r * b_n)


@pytest.mark.parametrize("zoneout", [False, True], ids=["b_n", "n"])
def test_third_column_holds_b_n_or_with_zoneout_n(zoneout):
    weights = _weights(torch.float64)
    x, h0 = torch.randn(T, B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    zoneout_h = torch.bernoulli(torch.full((T, B, H), 0.3, dtype=torch.float64)) if zoneout else None
    y, _, ws = _gru_layer(x, h0, *weights, zoneout_h=zoneout_h)
    assert ws.shape == (T * B, 3 * H)
    want = _third_column(x, h0, weights, y, zoneout_h)
    assert_close(ws[:, 2 * H:].reshape(T, B, H), want, torch.float64, what="third column")


@pytest.mark.parametrize("layout", ["padded", "packed", "dropout", "masked", "packed-masked"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("chunk_rows", [None, 7], ids=["one-chunk", "chunks"])
def test_gradients_with_three_column_rows_match_the_reference(layout, reverse, chunk_rows,
                                                              monkeypatch):
    # padded, packed, dropout: n rebuilt from y (h_{t-1} from y or h0 by views, or with the
    # dropout mask gathered); masked (zoneout on h): b_n recomputed
    if chunk_rows:
        monkeypatch.setenv("FUSEDRNN_BACKWARD_CHUNK_ROWS", str(chunk_rows))
    torch.manual_seed(3)
    dtype = torch.float64
    weights = [w.requires_grad_() for w in _weights(dtype)]
    batch_sizes = batch_sizes_for([T, 7, 7, 3, 1]) if layout.startswith("packed") else None
    rows = int(batch_sizes.sum()) if batch_sizes is not None else T * B
    x = torch.randn((rows, I) if batch_sizes is not None else (T, B, I), dtype=dtype,
                    requires_grad=True)
    h0 = (torch.randn(B, H, dtype=dtype) * 0.5).requires_grad_()
    rec_mask = zoneout_h = None
    if layout.endswith("masked") or layout == "dropout":
        rec_mask = torch.bernoulli(torch.full((B, H), 0.7, dtype=dtype)) / 0.7
    if layout.endswith("masked"):
        zoneout_h = torch.bernoulli(torch.full((*x.shape[:-1], H), 0.3, dtype=dtype))
    y, h_n, ws = torch.ops.fusedrnn.gru_layer(x, h0, *weights, batch_sizes, reverse, True,
                                              rec_mask, zoneout_h)
    assert ws.shape[1] == 3 * H  # the path under test
    dy, dh = torch.randn_like(y), torch.randn_like(h_n)
    got = torch.autograd.grad((y * dy).sum() + (h_n * dh).sum(), [x, h0, *weights])
    want = _reference_grads(x, h0, weights, batch_sizes, reverse, rec_mask, zoneout_h, dy, dh)
    names = ["x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"]
    for name, a, b in zip(names, got, want, strict=True):
        assert_close(a, b, dtype, what=f"grad of {name}")


def test_rebuilt_n_under_saturated_update_gates():
    # z's bias from 0 to 30 over the hidden units: 1 − z from 0.5 down to 6e-8 and then 0 in
    # float32, where n can no longer be rebuilt from the outputs (nor matters). float32 gradients
    # against the float64 reference, the same tolerances as every other float32 check.
    torch.manual_seed(5)
    w_ih, w_hh, b_ih, b_hh = _weights(torch.float64)
    b_hh[H:2 * H] = torch.linspace(0, 30, H, dtype=torch.float64)
    x, h0 = torch.randn(T, B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    dy = torch.randn(T, B, H, dtype=torch.float64)

    def grads(dtype):
        ws = [w.to(dtype).requires_grad_() for w in (w_ih, w_hh, b_ih, b_hh)]
        xs, hs = x.to(dtype).requires_grad_(), h0.to(dtype).requires_grad_()
        y, _, _ = _gru_layer(xs, hs, *ws)
        return torch.autograd.grad((y * dy.to(dtype)).sum(), [xs, hs, *ws])

    got, want = grads(torch.float32), grads(torch.float64)
    for name, a, b in zip(["x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"], got, want, strict=True):
        assert torch.isfinite(a).all(), name
        assert_close(a, b.float(), what=f"grad of {name}")


def test_backward_op_uses_the_forward_b_hh_only_to_recompute_b_n():
    # with zoneout on h the backward recomputes b_n, so b_hn enters the reset gate's gradient;
    # without it b_n comes from the workspace and b_hh is not read
    w_ih, w_hh, b_ih, b_hh = _weights()
    x, h0 = torch.randn(T, B, I), torch.randn(B, H)
    shifted = b_hh.clone()
    shifted[2 * H:] += 1.0  # only the n block: b_r, b_z do not enter the backward
    for zoneout_h in (torch.bernoulli(torch.full((T, B, H), 0.3)), None):
        y, h_n, ws = _gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh, zoneout_h=zoneout_h)
        args = (torch.randn_like(y), torch.zeros_like(h_n), x, h0, w_ih, w_hh, None, y, ws, False,
                True, None, zoneout_h)
        with_b = torch.ops.fusedrnn.gru_layer_backward(*args, b_hh=b_hh)
        with_shifted = torch.ops.fusedrnn.gru_layer_backward(*args, b_hh=shifted)
        assert torch.equal(with_b[3], with_shifted[3]) == (zoneout_h is None)  # grad of w_hh
        torch.library.opcheck(torch.ops.fusedrnn.gru_layer_backward.default, args, {"b_hh": b_hh})


def test_backward_op_names_a_b_hh_of_the_wrong_shape():
    w_ih, w_hh, b_ih, b_hh = _weights()
    x, h0 = torch.randn(T, B, I), torch.randn(B, H)
    y, h_n, ws = _gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh)
    args = (torch.randn_like(y), torch.zeros_like(h_n), x, h0, w_ih, w_hh, None, y, ws, False, True)
    with pytest.raises(RuntimeError, match="b_hh"):
        torch.ops.fusedrnn.gru_layer_backward(*args, b_hh=b_hh[: 2 * H])
    with pytest.raises(RuntimeError, match="b_hh"):
        torch.ops.fusedrnn.gru_layer_backward(*args, b_hh=b_hh.double())


def test_module_training_step_matches_torch_gru():
    # the module path: ops.gru_layer's autograd hands b_hh to the backward op
    torch.manual_seed(0)
    ref = torch.nn.GRU(I, H, num_layers=2, bidirectional=True)
    fused = GRU.from_torch(ref)
    x = torch.randn(T, B, I)
    (ref(x)[0] ** 2).sum().backward()
    (fused(x)[0] ** 2).sum().backward()
    for (name, a), b in zip(fused.named_parameters(), ref.parameters(), strict=True):
        assert_close(a.grad, b.grad, what=f"grad of {name}")


def test_ops_wrapper_passes_b_hh():
    w_ih, w_hh, b_ih, b_hh = (w.requires_grad_() for w in _weights())
    x, h0 = torch.randn(T, B, I), torch.randn(B, H)
    y, _ = ops.gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh)
    got = torch.autograd.grad(y.sum(), [w_hh, b_hh])
    y_ref, _ = reference.run_layer(reference.gru_step, x, [h0], None, False, w_ih=w_ih,
                                   w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
    want = torch.autograd.grad(y_ref.sum(), [w_hh, b_hh])
    for a, b in zip(got, want, strict=True):
        assert_close(a, b)


def test_update_gates_at_one_give_the_zero_gradients_torch_gives():
    # z = 1 in float32 (bias 30): h_t = h_{t-1} up to rounding, and every gradient through the
    # cell is 0 (z(1 − z) = 0, 1 − z = 0), as torch.nn's float32 GRU returns; the rebuilt
    # difference h_{t-1} − h_t holds only h_t's rounding, which must not leak into dz
    torch.manual_seed(6)
    ref = torch.nn.GRU(I, H)
    with torch.no_grad():
        ref.bias_hh_l0[H:2 * H] = 30.0
    fused = GRU.from_torch(ref)
    x, h0 = torch.randn(T, B, I), torch.randn(1, B, H) * 3
    for m in (ref, fused):
        y, _ = m(x, h0)
        y.sum().backward()
    for (name, a), b in zip(fused.named_parameters(), ref.parameters(), strict=True):
        assert torch.equal(a.grad == 0, b.grad == 0), name
    assert (fused.bias_hh_l0.grad == 0).all() and (fused.weight_hh_l0.grad == 0).all()
