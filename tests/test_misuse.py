"""Misuse that used to pass silently: double backward through the fused ops, cells with no input
features, a meta-device state beside CPU input, malformed LSTMCell states, empty Conv1d shapes."""

import pytest
import torch
from torch import nn

import fusedrnn

LAYERS = [
    lambda: fusedrnn.LSTM(3, 4),
    lambda: fusedrnn.GRU(3, 4),
    lambda: fusedrnn.RNN(3, 4, nonlinearity="relu"),
    lambda: fusedrnn.LayerNormLSTM(3, 4),
    lambda: fusedrnn.LayerNormGRU(3, 4),
]
CELLS = [lambda: fusedrnn.LSTMCell(3, 4), lambda: fusedrnn.GRUCell(3, 4), lambda: fusedrnn.RNNCell(3, 4)]


@pytest.mark.parametrize("make", LAYERS + CELLS + [lambda: fusedrnn.Conv1d(3, 4, 2)])
def test_double_backward_is_refused(make):
    # a gradient penalty: second-order terms through the op would be silently zero
    module = make()
    x = torch.randn(5, 2, 3, requires_grad=True) if not isinstance(module, nn.RNNCellBase) \
        else torch.randn(2, 3, requires_grad=True)
    out = module(x)
    y = out[0] if isinstance(out, tuple) else out
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        torch.autograd.grad(y.sum(), x, create_graph=True)
    # first-order gradients are untouched
    (g,) = torch.autograd.grad(module(x)[0].sum() if isinstance(out, tuple) else module(x).sum(), x)
    assert g.shape == x.shape and torch.isfinite(g).all()


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells_without_input_features_match_torch(kind):
    torch.manual_seed(0)
    ref = getattr(nn, kind)(0, 4)
    fused = getattr(fusedrnn, kind)(0, 4)
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(2, 0)
    h = torch.randn(2, 4)
    hx = (h, torch.randn(2, 4)) if kind == "LSTMCell" else h
    for _ in range(3):  # the output used to depend on stale memory
        torch.testing.assert_close(fused(x, hx), ref(x, hx))


@pytest.mark.parametrize("make", LAYERS)
def test_a_meta_state_beside_cpu_input_is_refused(make):
    module = make()
    hx = torch.zeros(1, 2, 4, device="meta")
    if isinstance(module, (fusedrnn.LSTM, fusedrnn.LayerNormLSTM)):
        hx = (hx, torch.zeros(1, 2, 4))
    with pytest.raises(RuntimeError, match="h0 is on meta but x is on cpu"):
        module(torch.randn(5, 2, 3), hx)


def test_a_meta_state_beside_cpu_input_is_refused_by_cells():
    with pytest.raises(RuntimeError, match="is on meta but x is on cpu"):
        fusedrnn.GRUCell(3, 4)(torch.randn(2, 3), torch.zeros(2, 4, device="meta"))


def test_all_meta_still_traces_shapes():
    # meta tensors alone are what shape propagation uses: the fake kernel answers them
    meta = lambda *shape: torch.empty(*shape, device="meta")  # noqa: E731
    y, h, ws = torch.ops.fusedrnn.gru_layer(meta(5, 2, 3), meta(2, 4), meta(12, 3), meta(12, 4),
                                            meta(12), meta(12), None, False, True)
    assert y.shape == (5, 2, 4) and y.device.type == "meta" and h.shape == (2, 4)


@pytest.mark.parametrize("hx", [
    (torch.zeros(2, 4), None), (None, None), (torch.zeros(2, 4),),
    (torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 4)), torch.zeros(2, 2, 4),
])
def test_lstm_cell_wants_a_pair_of_tensors(hx):
    with pytest.raises(TypeError, match=r"hx must be None or a pair \(h_0, c_0\) of tensors"):
        fusedrnn.LSTMCell(3, 4)(torch.randn(2, 3), hx)


@pytest.mark.parametrize("args,name", [((0, 4, 3), "in_channels"), ((3, 0, 3), "out_channels"),
                                       ((3, 4, 0), "kernel_size")])
def test_conv1d_wants_positive_sizes(args, name):
    with pytest.raises(ValueError, match=f"{name} must be positive"):
        fusedrnn.Conv1d(*args)


def _lstm_case():
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    x, h0, c0, w_ih, w_hh = r(3, 2, 4), r(2, 5), r(2, 5), r(20, 4), r(20, 5)
    y, h_n, c_n, ws = torch.ops.fusedrnn.lstm_layer(x, h0, c0, w_ih, w_hh, None, None, None, None,
                                                    False, True)
    return x, h0, c0, w_ih, w_hh, y, ws


@pytest.mark.parametrize("grad_c_n", [torch.zeros(0), torch.zeros(1, 1), torch.zeros(5, 8)])
def test_backward_op_checks_grad_c_n(grad_c_n):
    # these wrote B·H values into a smaller buffer (a crash) or returned a wrongly shaped grad_c0
    x, h0, c0, w_ih, w_hh, y, ws = _lstm_case()
    with pytest.raises(RuntimeError, match=r"grad_c_n must have shape \[2, 5\] \(like c0\)"):
        torch.ops.fusedrnn.lstm_layer_backward(torch.randn(3, 2, 5), torch.randn(2, 5), grad_c_n, x,
                                               h0, c0, w_ih, w_hh, None, None, y, ws, False, False)


def test_backward_op_checks_y_against_the_layer():
    x, h0, c0, w_ih, w_hh, y, ws = _lstm_case()
    short = y[:1].clone()  # with a grad_y of the same shape it read past y's end
    with pytest.raises(RuntimeError, match=r"y must have shape \[3, 2, 5\] \(the forward op's output\)"):
        torch.ops.fusedrnn.lstm_layer_backward(torch.randn(1, 2, 5), torch.randn(2, 5),
                                               torch.randn(2, 5), x, h0, c0, w_ih, w_hh, None, None,
                                               short, ws, False, False)
    with pytest.raises(RuntimeError, match="grad_y must have dtype Float like x, got Double"):
        torch.ops.fusedrnn.lstm_layer_backward(torch.randn(3, 2, 5, dtype=torch.float64),
                                               torch.randn(2, 5), torch.randn(2, 5), x, h0, c0, w_ih,
                                               w_hh, None, None, y, ws, False, False)
    with pytest.raises(RuntimeError, match=r"hy must have shape \[2, 5\] \(like hx\)"):
        torch.ops.fusedrnn.gru_cell_backward(torch.randn(3), torch.randn(2, 4), torch.randn(2, 5),
                                             torch.randn(15, 4), torch.randn(15, 5), torch.randn(3),
                                             torch.empty(2, 20), False)


def test_meta_batch_sizes_or_backward_arguments_are_refused():
    x, h0, c0, w_ih, w_hh, y, ws = _lstm_case()
    with pytest.raises(RuntimeError, match="batch_sizes must be a CPU tensor"):
        torch.ops.fusedrnn.lstm_layer(torch.randn(5, 4), h0, c0, w_ih, w_hh, None, None, None,
                                      torch.tensor([2, 2, 1], device="meta"), False, False)
    g = torch.Generator().manual_seed(0)
    x, h0, w_ih, w_hh = (torch.randn(*s, generator=g) for s in ((3, 2, 4), (2, 5), (15, 4), (15, 5)))
    y, _, ws = torch.ops.fusedrnn.gru_layer(x, h0, w_ih, w_hh, None, None, None, False, True)
    with pytest.raises(RuntimeError, match="grad_h_n is on cpu but grad_y is on meta"):
        torch.ops.fusedrnn.gru_layer_backward(torch.empty(3, 2, 5, device="meta"), torch.randn(2, 5),
                                              x, h0, w_ih, w_hh, None, y, ws, False, False)


def test_conv1d_backward_checks_its_inputs():
    x, w = torch.randn(2, 6, 3), torch.randn(4, 3, 2)
    y, pre = torch.ops.fusedrnn.conv1d(x, w, None, 1, 1, 0, 0, 2, True, True)
    grad = torch.randn_like(y)
    with pytest.raises(RuntimeError, match="activation must be 0..4, got 7"):
        torch.ops.fusedrnn.conv1d_backward(grad, x, w, y, pre, 1, 1, 0, 0, 7, True, False, True)
    with pytest.raises(RuntimeError, match=r"y must have shape \[2, 5, 4\]"):
        torch.ops.fusedrnn.conv1d_backward(grad, x, w, torch.randn(1), pre, 1, 1, 0, 0, 2, True,
                                           False, True)
    with pytest.raises(RuntimeError, match="padding and dilation must be below 2"):
        torch.ops.fusedrnn.conv1d(x, w, None, 1, 1, 2**63 - 1, 2**63 - 1, 0, True, False)


@pytest.mark.parametrize("make", [lambda: fusedrnn.GRU(3, 4), lambda: fusedrnn.RNN(3, 4),
                                  lambda: fusedrnn.LSTM(3, 4)])
def test_an_output_changed_in_place_is_an_error_not_a_wrong_gradient(make):
    # the backward reads the saved outputs: autograd's version check must catch the change
    y, _ = make()(torch.randn(5, 2, 3, requires_grad=True))
    torch.relu_(y)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


@pytest.mark.parametrize("reentrant", [True, False])
def test_activation_checkpointing_passes_the_double_backward_guard(reentrant):
    # reentrant checkpointing runs the recomputed layer's backward inside the outer backward;
    # that is not create_graph, and must not trip reject_double_backward
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(0)
    module, x = fusedrnn.GRU(3, 5, num_layers=2), torch.randn(6, 2, 3, requires_grad=True)
    module(x)[0].square().sum().backward()
    expected = [x.grad.clone()] + [p.grad.clone() for p in module.parameters()]
    x.grad = None
    module.zero_grad()
    checkpoint(lambda t: module(t)[0], x, use_reentrant=reentrant).square().sum().backward()
    for got, want in zip([x.grad] + [p.grad for p in module.parameters()], expected, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("kwargs", [{"dilations": ()}, {"repeats": 0}])
def test_wavenet_wants_a_layer(kwargs):
    with pytest.raises(ValueError, match="WaveNet needs at least one layer"):  # it returned None
        fusedrnn.WaveNet(3, 4, **kwargs)
