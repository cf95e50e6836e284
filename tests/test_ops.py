"""The layer ops against the step-by-step reference: values, final states, every gradient,
gradcheck in float64, and opcheck."""

import pytest
import torch

import fusedrnn
from fusedrnn import ln_ops, ops

from .cases import layer_case
from .conftest import assert_close

CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]


def _grads(outputs, inputs, seed=1):
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.rand(o.shape, generator=gen, dtype=o.dtype) for o in outputs]
    loss = sum((o * w).sum() for o, w in zip(outputs, weights, strict=True))
    return torch.autograd.grad(loss, inputs)


def _assert_matches_reference(case):
    """The fused op's outputs and the gradients of every input against the reference's; returns
    the fused outputs."""
    fused, expected = case.fused(), case.reference()
    for i, (a, b) in enumerate(zip(fused, expected, strict=True)):
        assert_close(a, b, what=f"output {i}")
    inputs = case.inputs()
    for i, (a, b) in enumerate(zip(_grads(fused, inputs), _grads(expected, inputs), strict=True)):
        assert_close(a, b, what=f"grad of input {i}")
    return fused


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_layer_matches_reference(cell, packed, reverse, bias):
    case = layer_case(cell, T=6, B=4, packed=packed, reverse=reverse, bias=bias)
    _assert_matches_reference(case)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_lstm_projection_matches_reference(packed, reverse):
    case = layer_case("lstm", T=5, B=3, H=8, proj=3, packed=packed, reverse=reverse)
    fused = _assert_matches_reference(case)
    assert fused[0].shape[-1] == 3


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("variant", ["padded", "packed-rev", "proj"])
def test_layer_gradcheck_float64(cell, variant):
    if variant == "proj" and cell != "lstm":
        pytest.skip("projection is an LSTM option")
    case = layer_case(cell, T=4, B=3, I=3, H=4, dtype=torch.float64,
                      packed=variant == "packed-rev", reverse=variant == "packed-rev",
                      proj=2 if variant == "proj" else 0)
    inputs = case.inputs()

    def run(*tensors):
        case.x, *rest = tensors
        n = len(case.states)
        case.states = list(rest[:n])
        for key, value in zip([k for k, v in case.weights.items() if v is not None], rest[n:],
                              strict=True):
            case.weights[key] = value
        return case.fused()

    assert torch.autograd.gradcheck(run, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("cell", CELLS)
def test_layer_float64_matches_reference_tightly(cell):
    case = layer_case(cell, T=7, B=3, dtype=torch.float64, packed=True)
    for a, b in zip(case.fused(), case.reference(), strict=True):
        assert_close(a, b, torch.float64)


def _op_args(case, train):
    w = case.weights
    bs, rev = case.batch_sizes, case.reverse
    if case.cell == "lstm":
        return "lstm_layer", (case.x, *case.states, w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"],
                              w.get("w_hr"), bs, rev, train)
    if case.cell == "gru":
        return "gru_layer", (case.x, *case.states, w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"],
                             bs, rev, train)
    return "rnn_layer", (case.x, *case.states, w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"], bs,
                         rev, case.cell == "rnn_relu", train)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
def test_layer_opcheck(cell, packed, train):
    case = layer_case(cell, T=4, B=3, packed=packed, requires_grad=train)
    name, args = _op_args(case, train)
    torch.library.opcheck(getattr(torch.ops.fusedrnn, name).default, args)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("x_grad", [True, False], ids=["x_grad", "no_x_grad"])
def test_backward_op_opcheck(cell, x_grad):
    case = layer_case(cell, T=4, B=3, packed=True, requires_grad=False)
    name, args = _op_args(case, True)
    out = getattr(torch.ops.fusedrnn, name)(*args)
    y, finals, workspace = out[0], out[1:-1], out[-1]
    grads = [torch.rand_like(y)] + [torch.rand_like(s) for s in finals]
    w = case.weights
    if cell == "lstm":
        bw_args = (*grads, case.x, *case.states, w["w_ih"], w["w_hh"], None, case.batch_sizes, y,
                   workspace, False, True)
    else:
        flags = (case.cell == "rnn_relu",) if cell.startswith("rnn") else ()
        bw_args = (*grads, case.x, *case.states, w["w_ih"], w["w_hh"], case.batch_sizes, y,
                   workspace, False, *flags, True)
    op = getattr(torch.ops.fusedrnn, name + "_backward").default
    extra = {"b_hh": w["b_hh"]} if cell == "gru" else {}  # the GRU recomputes b_n with it
    torch.library.opcheck(op, bw_args, {"x_grad": x_grad, **extra})
    if not x_grad:  # grad_x skipped, every other gradient unchanged
        without, full = op(*bw_args, x_grad=False, **extra), op(*bw_args, **extra)
        assert without[0].numel() == 0 and full[0].shape == case.x.shape
        for a, b in zip(without[1:], full[1:], strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_is_deterministic(cell):
    case = layer_case(cell, T=20, B=16, I=32, H=64, packed=True)
    inputs = case.inputs()
    first = _grads(case.fused(), inputs)
    second = _grads(case.fused(), inputs)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_backward_without_workspace_is_a_clear_error():
    case = layer_case("lstm", requires_grad=False)
    name, args = _op_args(case, False)
    args = list(args)
    args[3] = args[3].detach().requires_grad_()  # w_ih requires grad, but train=False
    y = torch.ops.fusedrnn.lstm_layer(*args)[0]
    with pytest.raises(RuntimeError, match="train=False"):
        y.sum().backward()


def test_rnn_layer_uses_y_as_its_workspace_unless_zoneout_blends_y():
    # an Elman layer's workspace row is its output h̃_t: the op keeps no copy of y (no columns),
    # except under zoneout, where y holds the blended state and h̃_t needs its own columns
    T, B, I, H = 4, 3, 5, 6
    x, h0 = torch.randn(T, B, I, requires_grad=True), torch.randn(B, H)
    w_ih, w_hh = torch.randn(H, I), torch.randn(H, H)
    _, _, ws = torch.ops.fusedrnn.rnn_layer(x, h0, w_ih, w_hh, None, None, None, False, False, True)
    assert ws.shape == (T * B, 0)
    zoneout = torch.full((T, B, H), 0.5)
    _, _, ws = torch.ops.fusedrnn.rnn_layer(x, h0, w_ih, w_hh, None, None, None, False, False, True,
                                            None, zoneout)
    assert ws.shape == (T * B, H)
    _, _, ws = torch.ops.fusedrnn.rnn_layer(x, h0, w_ih, w_hh, None, None, None, False, False, False)
    assert ws.shape == (0,)  # train=False keeps none, and backward says so


def test_changing_an_rnn_output_in_place_before_backward_is_caught():
    # y doubles as the Elman layer's workspace: autograd must refuse a y changed in place
    m = fusedrnn.RNN(4, 5)
    y, _ = m(torch.randn(6, 2, 4, requires_grad=True))
    y.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_rnn_backward_twice_with_retain_graph_gives_the_same_grads():
    m = fusedrnn.RNN(4, 5, num_layers=2)
    x = torch.randn(6, 2, 4, requires_grad=True)
    y, _ = m(x)
    first = torch.autograd.grad(y.sum(), [x, *m.parameters()], retain_graph=True)
    second = torch.autograd.grad(y.sum(), [x, *m.parameters()])
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def _kernel_tanh(x):
    """The kernels' own tanh (csrc/cells/activations.h) of each entry of the 1-D x: a one-unit
    RNN layer with no recurrence, x as a batch of one step, outputs tanh(x)."""
    x = x.reshape(1, -1, 1)
    one = torch.ones(1, 1, dtype=x.dtype)
    return torch.ops.fusedrnn.rnn_layer(x, torch.zeros(x.shape[1], 1, dtype=x.dtype), one,
                                        one * 0, None, None, None, False, False, False)[0].flatten()


def _kernel_sigmoid(x):
    """The kernels' own sigmoid of each entry of the 1-D, finite-or-NaN x: an LSTM whose g gate
    is saturated by its bias has c = σ(x)·tanh(30) = σ(x). (The other gates' zero weights would
    turn an infinite x into NaN.)"""
    x = x.reshape(1, -1, 1)
    zeros = torch.zeros(x.shape[1], 1, dtype=x.dtype)
    w_ih = torch.tensor([[1.0], [0.0], [0.0], [0.0]], dtype=x.dtype)
    b_ih = torch.tensor([0.0, 0.0, 30.0, 0.0], dtype=x.dtype)
    return torch.ops.fusedrnn.lstm_layer(x, zeros, zeros, w_ih, torch.zeros(4, 1, dtype=x.dtype),
                                         b_ih, None, None, None, False, False)[2].flatten()


# The polynomial exp is about 1 ulp and the tanh built on it 2 (csrc/cells/activations.h);
# torch's own functions are about 1 ulp off the true values, so the bounds allow a few ulps
# between the two: 3e-7 and 1e-15 are 5 and 9 ulps of values in [0.5, 1).
ACTIVATION_TOL = {torch.float32: {"atol": 3e-7, "rtol": 3e-7},
                  torch.float64: {"atol": 1e-300, "rtol": 1e-15}}


def _activation_inputs(dtype):
    # every regime of the polynomial exp, tanh's small-|x| range and tiny magnitudes included
    grid = torch.linspace(-30, 30, 200001, dtype=dtype)
    tiny = torch.logspace(-30 if dtype == torch.float32 else -300, 1, 2001, dtype=dtype)
    return torch.cat([grid, tiny, -tiny])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_activation_math_matches_torch_over_full_range(dtype):
    x = _activation_inputs(dtype)
    torch.testing.assert_close(_kernel_tanh(x), torch.tanh(x), **ACTIVATION_TOL[dtype])
    torch.testing.assert_close(_kernel_sigmoid(x), torch.sigmoid(x), **ACTIVATION_TOL[dtype])


def test_float64_activations_are_within_a_few_ulps_of_the_true_values():
    # Against 120-bit arithmetic, not torch: the exp is Taylor to degree 13 after an exact
    # reduction, tanh = -t/(2 + t) with t = expm1(-2|x|). A wrong coefficient or reduction
    # constant shows here as hundreds of ulps.
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 120
    generator = torch.Generator().manual_seed(0)
    x = torch.cat([torch.empty(3000, dtype=torch.float64).uniform_(-25, 25, generator=generator),
                   torch.logspace(-300, 1.4, 500, dtype=torch.float64),
                   -torch.logspace(-300, 1.4, 500, dtype=torch.float64)])

    def ulps(actual, true):
        spacing = (torch.nextafter(true, torch.full_like(true, float("inf"))) - true).abs()
        return ((actual - true).abs() / spacing).max().item()

    values = [mpmath.mpf(v) for v in x.tolist()]
    true_tanh = torch.tensor([float(mpmath.tanh(v)) for v in values], dtype=torch.float64)
    true_sigmoid = torch.tensor([float(1 / (1 + mpmath.exp(-v))) for v in values],
                                dtype=torch.float64)
    assert ulps(_kernel_tanh(x), true_tanh) <= 3
    assert ulps(_kernel_sigmoid(x), true_sigmoid) <= 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_activation_math_saturates_and_propagates_nan(dtype):
    # Beyond the polynomial exp's clamps (-87, 88 in float; -708, 709 in double) tanh and sigmoid
    # saturate as torch's do, at infinities too, and a NaN input gives NaN (the clamps are
    # comparisons that a NaN passes).
    x = torch.tensor([-1e30, -float("inf"), -100.0, -88.5, -87.5, 87.5, 88.5, 100.0, 1e30,
                      float("inf"), float("nan")], dtype=dtype)
    if dtype == torch.float64:
        x = torch.cat([x, torch.tensor([-800.0, -709.5, -708.5, -19.5, -20.5, 20.5, 708.5, 709.5,
                                        800.0], dtype=dtype)])
    tol = ACTIVATION_TOL[dtype]
    torch.testing.assert_close(_kernel_tanh(x), torch.tanh(x), **tol, equal_nan=True)
    x = x[~x.isinf()]
    torch.testing.assert_close(_kernel_sigmoid(x), torch.sigmoid(x), **tol, equal_nan=True)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("proj", [0, 5], ids=["noproj", "proj"])
def test_large_batch_split_across_threads(cell, reverse, proj):
    # 40 rows: each thread takes a block of rows and runs the whole time loop on it
    # (csrc/cpu/recurrence.h for_row_blocks, balanced by row length); packed sizes shrink so that
    # the second block's rows end before the first block's.
    if proj and cell != "lstm":
        pytest.skip("projection is an LSTM option")
    lengths = [6] * 20 + [4] * 12 + [1] * 8
    case = layer_case(cell, T=6, B=40, H=12, packed=True, reverse=reverse, proj=proj,
                      lengths=lengths)
    _assert_matches_reference(case)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("proj", [0, 3])
def test_layer_of_no_steps_gives_zero_weight_grads(cell, proj):
    # the op takes T = 0 (the modules refuse it, as torch.nn does): y is empty, the final states
    # are the initial ones, and every weight gradient is exactly zero, never uninitialised memory
    if proj and cell != "lstm":
        pytest.skip("projection is an LSTM option")
    case = layer_case(cell, T=0, B=3, I=4, H=5, proj=proj)
    y, *states = case.fused()
    assert y.shape[0] == 0
    for got, given in zip(states, case.states, strict=True):
        assert torch.equal(got, given)
    loss = sum(s.sum() for s in states) + y.sum()
    grads = torch.autograd.grad(loss, case.inputs(), allow_unused=True)
    for g, w in zip(grads[1 + len(case.states):], case.inputs()[1 + len(case.states):], strict=True):
        assert g is not None and torch.equal(g, torch.zeros_like(w))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_layer_norm_layer_of_no_steps_gives_zero_grads(kind):
    G, B, I, H = {"lstm": 4, "gru": 3}[kind], 2, 3, 4
    x = torch.randn(0, B, I)
    h0 = torch.randn(B, H)
    w = [torch.randn(G * H, I, requires_grad=True), torch.randn(G * H, H, requires_grad=True),
         torch.randn(G * H, requires_grad=True), torch.randn(G * H, requires_grad=True),
         torch.randn(ln_ops.ln_params(kind, H), requires_grad=True)]
    if kind == "lstm":
        out = torch.ops.fusedrnn.ln_lstm_layer(x, h0, torch.randn(B, H), *w, None, False, 1e-5, True)
    else:
        out = torch.ops.fusedrnn.ln_gru_layer(x, h0, *w, None, False, 1e-5, True)
    grads = torch.autograd.grad(out[1].sum(), w, allow_unused=True)
    for g, p in zip(grads, w, strict=True):
        assert g is not None and torch.equal(g, torch.zeros_like(p))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(
    "T, B, packed",
    [(6, 4, False), (6, 40, True), (1, 3, False), (1, 16, False), (1, 32, False), (3, 16, False)],
    ids=["padded", "packed-blocks", "one-step", "one-step-b16", "one-step-b32", "b16"],
)
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_inference_without_workspace_matches_training_forward(cell, T, B, packed, reverse):
    # train=False runs the lean path (csrc/layer_ops.h lean_inference): the workspace holds only
    # the input projection and the cell writes nothing back; y and the final states must equal
    # those of train=True bit for bit (same products, same cell arithmetic), across the driver's
    # paths: row blocks, packed rows and the single step (in the weights' orientation at 16, 32)
    case = layer_case(cell, T=T, B=B, I=5, H=16, packed=packed, reverse=reverse,
                      requires_grad=False)
    w = case.weights
    op = torch.ops.fusedrnn.lstm_layer if cell == "lstm" else torch.ops.fusedrnn.gru_layer
    args = [case.x, *case.states, w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"]]
    if cell == "lstm":
        args.append(None)  # w_hr
    args += [case.batch_sizes, reverse]
    *lean, lean_ws = op(*args, False)
    *full, full_ws = op(*args, True)
    assert lean_ws.numel() == 0 and full_ws.numel() > 0
    for i, (a, b) in enumerate(zip(lean, full, strict=True)):
        assert torch.equal(a, b), f"output {i} differs between train=False and train=True"
    for i, (a, b) in enumerate(zip(lean, case.reference(), strict=True)):
        assert_close(a, b, what=f"output {i}")


@pytest.mark.parametrize("variant", ["lstm", "gru", "rnn_tanh", "lstm_proj", "gru_zoneout"])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("B", [1, 4])  # B = 1 takes the single-row paths
@pytest.mark.parametrize("T", [1, 6])  # one step without projection or masks: the single-step path
def test_backward_reads_strided_upstream_gradients(variant, packed, B, T):
    # the CPU backward reads the upstream gradient by rows through a row stride
    # (csrc/layer_ops.h gradient_rows): a direction's half of a wider gradient, one expanded over
    # the rows, one value everywhere (y.sum()'s), every other row of a taller one and a transposed
    # one (the last two copied) give exactly what their contiguous copies give, through the plain,
    # projected and regularised paths of the driver
    torch.manual_seed(0)
    cell = variant.split("_")[0] if variant != "rnn_tanh" else variant
    case = layer_case(cell, T=T, B=B, I=5, H=7, packed=packed, proj=3 if variant == "lstm_proj" else 0)
    if variant == "gru_zoneout":
        w = case.weights
        zoneout = (torch.rand(*case.x.shape[:-1], 7) < 0.3).float()
        y, _ = ops.gru_layer(case.x, *case.states, w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"],
                             case.batch_sizes, zoneout_h=zoneout)
    else:
        y = case.fused()[0]
    P = y.shape[-1]
    grads = {
        "half of a wider one": torch.randn(*y.shape[:-1], 2 * P)[..., P:],
        "expanded over the rows": torch.randn(P).expand_as(y),
        "one value": torch.randn(()).expand_as(y),
        "every other row": torch.randn(2 * y.shape[0], *y.shape[1:])[::2],
    }
    if not packed and B > 1:
        grads["transposed"] = torch.randn(y.shape[1], y.shape[0], P).transpose(0, 1)
    # with one row some of these layouts come out contiguous: they test nothing new
    grads = {name: g for name, g in grads.items() if not g.is_contiguous()}
    assert "one value" in grads
    for name, g in grads.items():
        got = torch.autograd.grad(y, case.inputs(), g, retain_graph=True)
        want = torch.autograd.grad(y, case.inputs(), g.contiguous(), retain_graph=True)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize(
    "op_name", ["lstm_layer", "gru_layer", "rnn_layer", "lstm_cell", "gru_cell", "rnn_cell"]
)
def test_op_called_without_a_graph_returns_plain_tensors_equal_to_the_recorded_call(op_name):
    # When autograd would record nothing (grad mode off, or no input requiring grad) the autograd
    # kernel calls the op directly (csrc/autograd_glue.h records_nothing): outputs must carry no
    # graph and equal, bit for bit, those of the call that records one.
    gen = torch.Generator().manual_seed(11)
    B, I, H = 3, 5, 4
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[op_name.split("_")[0]]
    layer = op_name.endswith("layer")
    x = torch.randn(*((6, B) if layer else (B,)), I, generator=gen)
    states = [torch.randn(B, H, generator=gen) for _ in range(2 if op_name.startswith("lstm") else 1)]
    weights = [torch.randn(gates * H, n, generator=gen) for n in (I, H)]
    weights += [torch.randn(gates * H, generator=gen) for _ in range(2)]
    op = getattr(torch.ops.fusedrnn, op_name)
    # the arguments between the weights and `train`: w_hr, batch_sizes, reverse, relu
    extra = {"lstm_layer": [None, None, False], "gru_layer": [None, False],
             "rnn_layer": [None, False, False], "lstm_cell": [], "gru_cell": [],
             "rnn_cell": [False]}[op_name]

    def call(train, grad_weights):
        ws = [w.detach().requires_grad_(grad_weights) for w in weights]
        return op(x, *states, *ws, *extra, train)

    recorded = call(True, True)
    assert recorded[0].grad_fn is not None
    for plain in (call(False, False), call(True, False)):
        assert all(t.grad_fn is None and not t.requires_grad for t in plain)
        assert torch.equal(plain[0], recorded[0])
    with torch.no_grad():
        plain = call(True, True)
    assert all(t.grad_fn is None and not t.requires_grad for t in plain)
    for a, b in zip(plain, recorded, strict=True):
        assert torch.equal(a, b.detach())
