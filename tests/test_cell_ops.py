"""The single-step cell ops: values and gradients against the reference step, gradcheck, opcheck."""

import pytest
import torch

from fusedrnn import ops

from . import reference
from .conftest import assert_close

CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]


def _cell_case(cell, B=3, I=5, H=4, dtype=torch.float32, bias=True):
    g = {"lstm": 4, "gru": 3}.get(cell, 1)
    rand = lambda *s: (torch.rand(*s, dtype=dtype) * 2 - 1).requires_grad_()  # noqa: E731
    x = rand(B, I)
    states = [rand(B, H)] + ([rand(B, H)] if cell == "lstm" else [])
    weights = [rand(g * H, I), rand(g * H, H)] + ([rand(g * H), rand(g * H)] if bias else [None, None])
    return x, states, weights


def _fused(cell, x, states, weights):
    if cell == "lstm":
        return ops.lstm_cell(x, *states, *weights)
    if cell == "gru":
        return (ops.gru_cell(x, *states, *weights),)
    return (ops.rnn_cell(x, *states, *weights, relu=cell == "rnn_relu"),)


def _reference(cell, x, states, weights):
    w = dict(zip(["w_ih", "w_hh", "b_ih", "b_hh"], weights, strict=True))
    if cell == "lstm":
        return reference.lstm_step(x, states, **w)
    if cell == "gru":
        return reference.gru_step(x, states, **w)
    return reference.rnn_step(x, states, **w, relu=cell == "rnn_relu")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_reference(cell, bias):
    x, states, weights = _cell_case(cell, bias=bias)
    fused, expected = _fused(cell, x, states, weights), _reference(cell, x, states, weights)
    inputs = [x, *states] + [w for w in weights if w is not None]
    for a, b in zip(fused, expected, strict=True):
        assert_close(a, b)
    gen = torch.Generator().manual_seed(3)
    probes = [torch.rand(o.shape, generator=gen) for o in fused]
    ga = torch.autograd.grad(sum((o * p).sum() for o, p in zip(fused, probes, strict=True)), inputs)
    gb = torch.autograd.grad(sum((o * p).sum() for o, p in zip(expected, probes, strict=True)), inputs)
    for i, (a, b) in enumerate(zip(ga, gb, strict=True)):
        assert_close(a, b, what=f"grad {i}")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("B,I,H,bias", [(33, 40, 72, True), (16, 32, 48, True), (32, 48, 80, True),
                                        (32, 40, 64, True), (32, 48, 80, False)])
def test_cell_matches_reference_when_threads_split_the_batch(cell, threads, B, I, H, bias):
    # big enough for the single-step path (csrc/cpu/single_step.h) to give each thread a block of
    # rows (33 do not split evenly), or at batch 16 and 32 a block of hidden units in the
    # weights' own orientation (80 units split unevenly); widths that are multiples of 16 take
    # small_gemm against the weights as they are in backward (dx, dh, and the weight gradients'
    # blocks of rows), I = 40 and H = 72 the BLAS
    x, states, weights = _cell_case(cell, B=B, I=I, H=H, bias=bias)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fused = _fused(cell, x, states, weights)
        inputs = [x, *states, *(w for w in weights if w is not None)]
        probes = [torch.rand(o.shape, generator=torch.Generator().manual_seed(5)) for o in fused]
        ga = torch.autograd.grad(sum((o * p).sum() for o, p in zip(fused, probes, strict=True)), inputs)
    finally:
        torch.set_num_threads(saved)
    expected = _reference(cell, x, states, weights)
    gb = torch.autograd.grad(sum((o * p).sum() for o, p in zip(expected, probes, strict=True)), inputs)
    for a, b in zip(fused, expected, strict=True):
        assert_close(a, b)
    for i, (a, b) in enumerate(zip(ga, gb, strict=True)):
        assert_close(a, b, what=f"grad {i}")


@pytest.mark.parametrize("cell", CELLS)
def test_cell_gradcheck_float64(cell):
    x, states, weights = _cell_case(cell, dtype=torch.float64)
    n = len(states)
    inputs = [x, *states, *weights]
    assert torch.autograd.gradcheck(
        lambda x, *rest: _fused(cell, x, list(rest[:n]), list(rest[n:])), inputs
    )


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("train", [True, False])
def test_cell_opcheck(cell, train):
    x, states, weights = _cell_case(cell)
    if not train:
        x, states, weights = x.detach(), [s.detach() for s in states], [w.detach() for w in weights]
    if cell == "lstm":
        op, args = torch.ops.fusedrnn.lstm_cell.default, (x, *states, *weights, train)
    elif cell == "gru":
        op, args = torch.ops.fusedrnn.gru_cell.default, (x, *states, *weights, train)
    else:
        op = torch.ops.fusedrnn.rnn_cell.default
        args = (x, *states, *weights, cell == "rnn_relu", train)
    torch.library.opcheck(op, args)


@pytest.mark.parametrize("cell", CELLS)
def test_cell_backward_opcheck(cell):
    x, states, weights = _cell_case(cell)
    x, states, weights = x.detach(), [s.detach() for s in states], [w.detach() for w in weights]
    if cell == "lstm":
        hy, cy, ws = torch.ops.fusedrnn.lstm_cell(x, *states, *weights, True)
        op = torch.ops.fusedrnn.lstm_cell_backward.default
        args = (torch.rand_like(hy), torch.rand_like(cy), x, *states, *weights[:2], hy, ws, True)
    else:
        flags = (cell == "rnn_relu",) if cell.startswith("rnn") else ()
        name = "gru" if cell == "gru" else "rnn"
        hy, ws = getattr(torch.ops.fusedrnn, f"{name}_cell")(x, *states, *weights, *flags, True)
        op = getattr(torch.ops.fusedrnn, f"{name}_cell_backward").default
        args = (torch.rand_like(hy), x, *states, *weights[:2], hy, ws, *flags, True)
    torch.library.opcheck(op, args)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cell_gradient_of_one_output_and_one_bias(cell):
    # the LSTM's c' unused (its gradient arrives undefined), and only b_ih given
    x, states, weights = _cell_case(cell)
    weights[3] = None
    inputs = [x, *states, *weights[:3]]
    fused, expected = _fused(cell, x, states, weights), _reference(cell, x, states, weights)
    ga = torch.autograd.grad(fused[0].square().sum(), inputs)
    gb = torch.autograd.grad(expected[0].square().sum(), inputs)
    for i, (a, b) in enumerate(zip(ga, gb, strict=True)):
        assert_close(a, b, what=f"grad {i}")


@pytest.mark.parametrize("cell", CELLS)
def test_cell_backward_without_workspace_names_the_fix(cell):
    # called directly with train=False, the graph still records the op, but backward cannot run
    x, states, weights = _cell_case(cell)
    if cell == "lstm":
        out = torch.ops.fusedrnn.lstm_cell(x, *states, *weights, False)[0]
    elif cell == "gru":
        out = torch.ops.fusedrnn.gru_cell(x, *states, *weights, False)[0]
    else:
        out = torch.ops.fusedrnn.rnn_cell(x, *states, *weights, cell == "rnn_relu", False)[0]
    with pytest.raises(RuntimeError, match="call it with train=True"):
        out.sum().backward()


def test_cell_rejects_wrong_rank():
    x = torch.rand(2, 3, 5)
    with pytest.raises(RuntimeError, match=r"x must be \[batch, input_size\]"):
        ops.gru_cell(x, torch.zeros(2, 4), torch.rand(12, 5), torch.rand(12, 4))


def _inference_training_reference(cell, threads, x, states, weights):
    """The cell op's outputs with train=False and train=True on `threads` threads, and the
    reference's."""
    op = torch.ops.fusedrnn.lstm_cell if cell == "lstm" else torch.ops.fusedrnn.gru_cell
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            lean = op(x, *states, *weights, False)[:-1]
            full = op(x, *states, *weights, True)[:-1]
    finally:
        torch.set_num_threads(saved)
    with torch.no_grad():
        return lean, full, _reference(cell, x, states, weights)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("B,I,H,bias", [(16, 32, 48, True), (32, 48, 80, True), (32, 40, 64, False)])
def test_cell_inference_equals_the_training_forward_bit_for_bit(cell, threads, B, I, H, bias):
    # At batch 16 and 32 inference runs the cell on the products' transposed layout, the biases
    # broadcast along the batch lanes (csrc/cpu/single_step.h lean_forward_weight_major); training
    # runs it on rows. Same arithmetic term for term: the same bits, however the threads split
    # the hidden units (80 split unevenly), and the reference's values.
    x, states, weights = _cell_case(cell, B=B, I=I, H=H, bias=bias)
    lean, full, expected = _inference_training_reference(cell, threads, x, states, weights)
    for i, (a, b) in enumerate(zip(lean, full, strict=True)):
        assert torch.equal(a, b), f"output {i} differs between train=False and train=True"
    for a, b in zip(lean, expected, strict=True):
        assert_close(a, b)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("B,I,H", [(8, 32, 48), (48, 40, 80), (64, 48, 64), (128, 16, 32)])
def test_cell_inference_in_the_weights_orientation_matches_reference(cell, threads, B, I, H):
    # At batch 8 and 48-128 inference takes the weights' orientation (lean_weight_major_applies)
    # while training multiplies rows, so the two may differ in the last bits: both against the
    # reference, over 1-3 threads; batch 8 fills half of each 16-lane vector, 80 units split
    # unevenly.
    x, states, weights = _cell_case(cell, B=B, I=I, H=H)
    lean, full, expected = _inference_training_reference(cell, threads, x, states, weights)
    for a, b, c in zip(lean, full, expected, strict=True):
        assert_close(a, c)
        assert_close(b, c)
