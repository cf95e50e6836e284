"""The drop-in modules against torch.nn: outputs, final states, and the gradients of the input,
of hx and of every parameter, over the constructor and input options users combine."""

import copy
import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import fusedrnn

from .conftest import assert_child_prints_ok, assert_close

KINDS = {
    "lstm": (nn.LSTM, fusedrnn.LSTM, {}),
    "gru": (nn.GRU, fusedrnn.GRU, {}),
    "rnn_tanh": (nn.RNN, fusedrnn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNN, fusedrnn.RNN, {"nonlinearity": "relu"}),
}


def make_pair(kind, input_size=5, hidden_size=6, dtype=torch.float32, **kwargs):
    torch_cls, fused_cls, extra = KINDS[kind]
    ref = torch_cls(input_size, hidden_size, dtype=dtype, **extra, **kwargs)
    fused = fused_cls(input_size, hidden_size, dtype=dtype, **extra, **kwargs)
    fused.load_state_dict(ref.state_dict())
    return ref, fused


def initial_state(kind, module, batch, dtype, unbatched=False):
    layers = module.num_layers * (2 if module.bidirectional else 1)
    out = module.proj_size or module.hidden_size if kind == "lstm" else module.hidden_size
    shape = (layers, out) if unbatched else (layers, batch, out)
    h = torch.randn(*shape, dtype=dtype)
    if kind != "lstm":
        return h
    cshape = (layers, module.hidden_size) if unbatched else (layers, batch, module.hidden_size)
    return (h, torch.randn(*cshape, dtype=dtype))


def _flatten(out):
    y, hidden = out
    if isinstance(y, PackedSequence):
        y = y.data
    return [y, *(hidden if isinstance(hidden, tuple) else (hidden,))]


def run_and_grads(module, x, hx):
    """Outputs, then gradients of x, of every hx tensor and of every parameter."""
    if isinstance(x, PackedSequence):
        leaf = x.data.detach().requires_grad_()
        x_in = PackedSequence(leaf, x.batch_sizes, x.sorted_indices, x.unsorted_indices)
    else:
        leaf = x_in = x.detach().requires_grad_()
    hx_leaves = None
    if hx is not None:
        hx_leaves = tuple(h.detach().requires_grad_() for h in hx) if isinstance(hx, tuple) \
            else hx.detach().requires_grad_()
    module.zero_grad()
    outs = _flatten(module(x_in, hx_leaves))
    gen = torch.Generator().manual_seed(7)
    loss = sum((o * torch.rand(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
    loss.backward()
    hx_grads = [] if hx is None else [h.grad for h in (hx_leaves if isinstance(hx, tuple) else (hx_leaves,))]
    return outs, [leaf.grad, *hx_grads] + [p.grad for p in module.parameters()]


def check_parity(ref, fused, x, hx=None, dtype=torch.float32):
    ref_out, ref_grads = run_and_grads(ref, x, hx)
    fused_out, fused_grads = run_and_grads(fused, x, hx)
    for i, (a, b) in enumerate(zip(fused_out, ref_out, strict=True)):
        assert_close(a, b, dtype, what=f"output {i}")
    for i, (a, b) in enumerate(zip(fused_grads, ref_grads, strict=True)):
        assert_close(a, b, dtype, what=f"grad {i}")


def check_parity_scaled(ref, fused, x):
    """Parity at sizes where float32 sums run long: bounds relative to each tensor's largest value."""
    ref_out, ref_grads = run_and_grads(ref, x, None)
    fused_out, fused_grads = run_and_grads(fused, x, None)
    for i, (a, b) in enumerate(zip(fused_out + fused_grads, ref_out + ref_grads, strict=True)):
        scale = b.abs().max().item()
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5 * max(scale, 1.0),
                                   msg=lambda m, i=i: f"output/grad {i}: {m}")


def check_stack_parity(kind, input_size, hidden_size, T, B, packed, **kwargs):
    """A 2-layer bidirectional stack against torch.nn over [T, B, I], padded or packed with
    random lengths (check_parity_scaled)."""
    ref, fused = make_pair(kind, input_size, hidden_size, num_layers=2, bidirectional=True,
                           **kwargs)
    x = torch.randn(T, B, input_size)
    if packed:
        x = pack_padded_sequence(x, torch.randint(1, T + 1, (B,)), enforce_sorted=False)
    check_parity_scaled(ref, fused, x)


def check_parameter_grads(ref, fused, x, atol=None):
    """Parameter gradients only, the input needing none (a first layer over data: no dX), within
    rtol 1e-4 and `atol`, or where atol is None, 2e-5 times each gradient's largest value (at
    least 1)."""
    for module in (ref, fused):
        module.zero_grad()
        module(x)[0].square().sum().backward()
    for (name, a), b in zip(fused.named_parameters(), ref.parameters(), strict=True):
        bound = atol if atol is not None else 2e-5 * max(b.grad.abs().max().item(), 1.0)
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=bound, msg=name)


GRID = list(itertools.product(KINDS, [1, 2, 3], [False, True], [False, True], [True, False],
                              [False, True]))


@pytest.mark.parametrize("kind,layers,bidirectional,batch_first,bias,with_hx", GRID)
def test_parity_grid(kind, layers, bidirectional, batch_first, bias, with_hx):
    ref, fused = make_pair(kind, num_layers=layers, bidirectional=bidirectional,
                           batch_first=batch_first, bias=bias)
    T, B = 4, 3
    x = torch.randn(B, T, 5) if batch_first else torch.randn(T, B, 5)
    hx = initial_state(kind, ref, B, torch.float32) if with_hx else None
    check_parity(ref, fused, x, hx)


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True), (3, False)])
@pytest.mark.parametrize("with_hx", [False, True])
def test_lstm_proj_size(layers, bidirectional, with_hx):
    ref, fused = make_pair("lstm", hidden_size=8, proj_size=3, num_layers=layers,
                           bidirectional=bidirectional)
    x = torch.randn(5, 2, 5)
    hx = initial_state("lstm", ref, 2, torch.float32) if with_hx else None
    check_parity(ref, fused, x, hx)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_input(kind, batch_first):
    ref, fused = make_pair(kind, num_layers=2, bidirectional=True, batch_first=batch_first)
    x = torch.randn(4, 5)
    check_parity(ref, fused, x, None)
    check_parity(ref, fused, x, initial_state(kind, ref, 1, torch.float32, unbatched=True))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_hx", [False, True])
def test_packed_unsorted(kind, bidirectional, with_hx):
    ref, fused = make_pair(kind, num_layers=2, bidirectional=bidirectional, batch_first=True)
    lengths = torch.tensor([3, 7, 1, 5, 7])
    x = torch.randn(5, 7, 5)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    hx = initial_state(kind, ref, 5, torch.float32) if with_hx else None
    check_parity(ref, fused, packed, hx)
    y, _ = fused(packed, hx)
    padded, out_lengths = pad_packed_sequence(y, batch_first=True)
    assert torch.equal(out_lengths, lengths)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T,B", [(1, 3), (5, 1), (1, 1)])
def test_single_step_and_single_sequence(kind, T, B):
    ref, fused = make_pair(kind, num_layers=2, bidirectional=True)
    check_parity(ref, fused, torch.randn(T, B, 5), initial_state(kind, ref, B, torch.float32))


@pytest.mark.parametrize("kind", KINDS)
def test_single_step_of_a_batch_split_across_threads(kind):
    # T = 1 at a size where the single-step path gives each thread a block of rows
    ref, fused = make_pair(kind, 24, 48, num_layers=2, bidirectional=True)
    check_parity(ref, fused, torch.randn(1, 37, 24), initial_state(kind, ref, 37, torch.float32))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("packed", [False, True])
def test_parameter_grads_when_the_input_needs_no_grad(kind, packed):
    # the first layer's backward then skips grad_x (x_grad=False); the second layer's input
    # still needs it, so both paths run
    ref, fused = make_pair(kind, num_layers=2, bidirectional=True)
    x = torch.randn(6, 4, 5)
    if packed:
        x = pack_padded_sequence(x, torch.tensor([6, 3, 5, 2]), enforce_sorted=False)
    grads = []
    for module in (ref, fused):
        module.zero_grad()
        out = module(x)[0]
        (out.data if packed else out).square().sum().backward()
        grads.append([p.grad for p in module.parameters()])
    for (name, _), a, b in zip(ref.named_parameters(), grads[1], grads[0], strict=True):
        assert_close(a, b, what=name)


@pytest.mark.parametrize("kind", KINDS)
def test_float64_is_tight(kind):
    ref, fused = make_pair(kind, num_layers=2, bidirectional=True, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4])
    packed = pack_padded_sequence(torch.randn(6, 3, 5, dtype=torch.float64), lengths,
                                  enforce_sorted=False)
    check_parity(ref, fused, packed, initial_state(kind, ref, 3, torch.float64), torch.float64)
    check_parity(ref, fused, torch.randn(6, 3, 5, dtype=torch.float64), None, torch.float64)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_between_layers_only_in_training(kind):
    _, fused = make_pair(kind, num_layers=3, dropout=0.5)
    x = torch.randn(4, 2, 5)
    fused.eval()
    ref = fused.to_torch().eval()
    check_parity(ref, fused, x)  # eval: no dropout, exact parity
    fused.train()
    a, _ = fused(x)
    b, _ = fused(x)
    assert not torch.allclose(a, b), "training mode must apply dropout between layers"
    torch.manual_seed(1)
    c, _ = fused(x)
    torch.manual_seed(1)
    d, _ = fused(x)
    assert torch.equal(c, d), "dropout masks come from torch's RNG"


@pytest.mark.parametrize("kind", KINDS)
def test_non_contiguous_inputs(kind):
    ref, fused = make_pair(kind, num_layers=2)
    x = torch.randn(3, 6, 10)[:, ::2, ::2].transpose(0, 1)  # [3, 3, 5], strided
    assert not x.is_contiguous()
    hx = initial_state(kind, ref, 3, torch.float32)
    hx = tuple(h.transpose(1, 2).contiguous().transpose(1, 2) for h in hx) if isinstance(hx, tuple) \
        else hx.transpose(1, 2).contiguous().transpose(1, 2)
    check_parity(ref, fused, x, hx)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_and_backward_bit_identical_across_runs(kind):
    _, fused = make_pair(kind, input_size=16, hidden_size=32, num_layers=2, bidirectional=True)
    x = torch.randn(20, 8, 16)
    out1, grads1 = run_and_grads(fused, x, None)
    out2, grads2 = run_and_grads(fused, x, None)
    for a, b in zip(out1 + grads1, out2 + grads2, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip(kind):
    ref, _ = make_pair(kind, num_layers=2, bidirectional=True)
    torch_cls, fused_cls, extra = KINDS[kind]
    fused = fused_cls(5, 6, num_layers=2, bidirectional=True, **extra)
    fused.load_state_dict(ref.state_dict())
    back = torch_cls(5, 6, num_layers=2, bidirectional=True, **extra)
    back.load_state_dict(fused.state_dict())
    for (n1, p1), (n2, p2) in zip(ref.named_parameters(), back.named_parameters(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)
    assert list(fused.state_dict()) == list(ref.state_dict())


@pytest.mark.parametrize("kind", KINDS)
def test_from_torch_and_to_torch(kind):
    torch_cls, fused_cls, extra = KINDS[kind]
    ref = torch_cls(5, 6, num_layers=2, batch_first=True, bidirectional=True, dropout=0.25,
                    bias=False, **extra)
    fused = fused_cls.from_torch(ref)
    # an RNNBase like torch's classes, but not an nn.LSTM instance: Dynamo refuses to trace those
    assert isinstance(fused, fused_cls) and isinstance(fused, nn.RNNBase)
    assert repr(fused).split("(", 1)[1] == repr(ref).split("(", 1)[1]
    back = fused.to_torch()
    assert type(back) is torch_cls
    x = torch.randn(2, 4, 5)
    ref.eval(), fused.eval(), back.eval()
    assert_close(fused(x)[0], ref(x)[0])
    assert torch.equal(back(x)[0], ref(x)[0])


def test_parameters_match_torch_names_shapes_and_init():
    torch.manual_seed(5)
    ref = nn.LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=3)
    torch.manual_seed(5)
    fused = fusedrnn.LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=3)
    for (n1, p1), (n2, p2) in zip(ref.named_parameters(), fused.named_parameters(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)
    assert len(fused.all_weights) == len(ref.all_weights)
    fused.flatten_parameters()  # a no-op on the CPU, but must exist and not break forward
    assert fused(torch.randn(3, 2, 5))[0].shape == (3, 2, 6)


def test_model_written_for_torch_runs_unchanged_after_swap():
    class Tagger(nn.Module):
        def __init__(self, rnn_cls):
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.rnn = rnn_cls(8, 16, num_layers=2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(32, 4)

        def forward(self, tokens):
            y, _ = self.rnn(self.embed(tokens))
            return self.head(y)

    torch.manual_seed(0)
    ref = Tagger(nn.LSTM)
    torch.manual_seed(0)
    fused = Tagger(fusedrnn.LSTM)
    tokens = torch.randint(0, 20, (4, 9))
    assert_close(fused(tokens), ref(tokens))


@pytest.mark.parametrize("kind", KINDS)
def test_empty_batch_like_torch(kind):
    ref, fused = make_pair(kind)
    x = torch.randn(4, 0, 5)
    try:
        expected = ref(x)
    except RuntimeError as err:
        with pytest.raises(RuntimeError):
            fused(x)
        pytest.skip(f"torch.nn rejects an empty batch too: {err}")
    got = fused(x)
    assert _flatten(got)[0].shape == _flatten(expected)[0].shape
    for a, b in zip(_flatten(got), _flatten(expected), strict=True):
        assert a.shape == b.shape


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("packed", [False, True])
def test_parity_at_sizes_that_use_onednn_gemms(kind, packed):
    # products of at least 2^22 multiply-adds go to oneDNN's matmul instead of the BLAS (input
    # projections, weight gradients, and here the per-step products too), including ones that
    # write strided slices of the output; they must agree with torch.nn like the small ones
    B, T, I, H = 64, 6, 128, 256
    ref, fused = make_pair(kind, I, H, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I)
    if packed:
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        x = pack_padded_sequence(x, lengths, enforce_sorted=False)
    check_parity_scaled(ref, fused, x)


@pytest.mark.parametrize("T, B, I, H", [(33, 250, 8, 512), (9, 100, 64, 200)])
def test_parity_when_the_input_projection_is_staged_in_blocks_of_rows(T, B, I, H):
    # the input projection into the LSTM workspace's gate columns goes to oneDNN through a plain
    # staging block of about 2^18 floats, rows at a time: 8250 rows of 4·512 gates take 33 blocks
    # of 256 rows, the last one partial; 900 rows of 4·200 take blocks of 327, 327 and 246
    # (a training forward: inference keeps no workspace, so its projection is plain)
    ref, fused = make_pair("lstm", I, H)
    check_parity_scaled(ref, fused, torch.randn(T, B, I))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_relu"])
@pytest.mark.parametrize("batch", [1, 3, 7, 8, 11, 16, 29, 45])
def test_parity_small_batches_with_odd_widths(kind, batch):
    # the per-step products run small_gemm (a transposed weight in 16-float rows) on each thread's
    # rows: blocks of 6, 5, 4, 3 rows and the 4 + 3 / 4 + 4 splits of 7 and 8 rows all occur
    # here; widths 3·21 and 4·21 leave partial vectors, bidirectional runs two of them
    ref, fused = make_pair(kind, 7, 21, num_layers=2, bidirectional=True, batch_first=True)
    check_parity(ref, fused, torch.randn(batch, 9, 7), initial_state(kind, ref, batch, torch.float32))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("batch", [1, 2])
def test_parity_one_or_two_rows_per_step(kind, batch):
    # one or two rows per step take small_gemm's few-rows path: gate panels of up to 128 columns
    # (4·40 = 128 + 32, 3·40 = 120 in one), and blocks of one or two vectors that sum odd and
    # even steps of k apart (dh's product of k = 4·40 or 3·40, x's of k = 13 with an odd last)
    ref, fused = make_pair(kind, 13, 40, num_layers=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the whole batch on one thread, as at batch 1
    try:
        check_parity(ref, fused, torch.randn(17, batch, 13), initial_state(kind, ref, batch, torch.float32))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_parity_when_threads_split_a_steps_columns(kind):
    # a batch too small for a block of rows per thread: with 2+ threads the per-step product of
    # 12 × 4·64 × 64 splits its columns between threads instead
    ref, fused = make_pair(kind, 16, 64, batch_first=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        check_parity(ref, fused, torch.randn(12, 7, 16), initial_state(kind, ref, 12, torch.float32))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("batch", [1, 6])
def test_parity_small_batches_with_projection(batch):
    ref, fused = make_pair("lstm", 5, 19, proj_size=7, num_layers=2)
    check_parity(ref, fused, torch.randn(11, batch, 5), initial_state("lstm", ref, batch, torch.float32))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_parity_when_the_backward_runs_in_chunks_of_steps(kind, packed, dtype, monkeypatch):
    # the CPU backward takes the whole-sequence gradients chunk by chunk (csrc/cpu/recurrence.h
    # BackwardChunks), each chunk adding to dW_ih, dW_hh and the biases; chunks of about 100
    # rows here: 21 steps of 24 rows make five or six, both directions cross the chunks' edges
    # from their own ends, and packed rows make chunks of uneven rows
    monkeypatch.setenv("FUSEDRNN_BACKWARD_CHUNK_ROWS", "100")
    B, T = 24, 21
    ref, fused = make_pair(kind, 5, 6, dtype=dtype, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, 5, dtype=dtype)
    if packed:
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        x = pack_padded_sequence(x, lengths, enforce_sorted=False)
    check_parity(ref, fused, x, initial_state(kind, ref, B, dtype), dtype=dtype)


def test_parity_when_a_projected_lstm_backward_runs_in_chunks_of_steps(monkeypatch):
    monkeypatch.setenv("FUSEDRNN_BACKWARD_CHUNK_ROWS", "64")
    ref, fused = make_pair("lstm", 5, 9, proj_size=4, bidirectional=True)
    check_parity(ref, fused, torch.randn(13, 30, 5), initial_state("lstm", ref, 30, torch.float32))


def test_parity_when_the_gradient_buffer_is_chunked_by_default():
    # 2100 rows × 4·256 gradient columns exceed the default 2M-element buffer: two chunks
    ref, fused = make_pair("gru", 8, 256)
    x = torch.randn(21, 100, 8)
    check_parity_scaled(ref, fused, x)


@pytest.mark.parametrize("packed", [False, True])
def test_parity_where_an_lstm_chunks_its_gradient_rows_to_fit_the_cache(packed):
    # 2240 rows × 4·128 gradient columns: 2.3 MB a thread on two, past a 2 MB L2, so that on
    # Intel CPUs the LSTM's backward takes chunks of about 512 rows (csrc/cpu/recurrence.h
    # lstm_chunk_rows); elsewhere one chunk, as before
    torch.manual_seed(8)
    ref, fused = make_pair("lstm", 16, 128)
    x = torch.randn(70, 32, 16)
    if packed:
        lengths = torch.randint(35, 71, (32,))
        lengths[0] = 70
        x = pack_padded_sequence(x, lengths, enforce_sorted=False)
    check_parity_scaled(ref, fused, x)


@pytest.mark.parametrize("kind", ["gru", "rnn_relu"])
@pytest.mark.parametrize("packed", [False, True])
def test_parity_when_the_gradient_buffer_is_held_to_a_quarter_of_y(kind, packed):
    # GRU and Elman backwards hold their gradient rows to a quarter of y (csrc/cpu/recurrence.h
    # bounds_gradient_buffer) in chunks of at least 256 rows: 53 steps of 23 rows (1219) make
    # four chunks of about 305 rows, whose edges fall inside steps' rows for neither direction
    B, T = 23, 53
    ref, fused = make_pair(kind, 5, 12, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, 5)
    if packed:
        lengths = torch.randint(T // 2, T + 1, (B,))
        lengths[0] = T
        x = pack_padded_sequence(x, lengths, enforce_sorted=False)
    check_parity(ref, fused, x, initial_state(kind, ref, B, torch.float32))


@pytest.mark.parametrize("cls", [fusedrnn.GRU, fusedrnn.LayerNormGRU, fusedrnn.LayerNormLSTM])
@pytest.mark.parametrize("I,H", [(256, 24), (8, 256)], ids=["x_side", "h_side"])
def test_plain_copies_of_gradient_columns_match_float64(cls, I, H):
    # float32 backwards copy the x side's (I >= 256) or h side's (P >= 256) gradient columns into
    # a plain matrix for oneDNN when the products are large (csrc/cpu/recurrence.h
    # kPlainCopyMinWidth); float64 multiplies the strided columns where they lie. Both must agree.
    torch.manual_seed(0)
    m32 = cls(I, H)
    m64 = copy.deepcopy(m32).double()
    x = torch.randn(20, 16, I)
    probe = torch.randn(20, 16, H)
    grads = []
    for module, dtype in ((m32, torch.float32), (m64, torch.float64)):
        xd = x.to(dtype).detach().clone().requires_grad_()
        (module(xd)[0] * probe.to(dtype)).sum().backward()
        grads.append([xd.grad] + [p.grad for p in module.parameters()])
    for (name, _), a, b in zip(m32.named_parameters(), grads[0][1:], grads[1][1:], strict=True):
        err = ((a.double() - b).norm() / b.norm().clamp(min=1e-12)).item()
        assert err < 1e-4, f"{name}: relative error {err:.2e}"
    err = ((grads[0][0].double() - grads[1][0]).norm() / grads[1][0].norm()).item()
    assert err < 1e-4, f"x: relative error {err:.2e}"


INPUT_PER_STEP_CHILD = """
import torch
from torch.nn.utils.rnn import pack_padded_sequence
from tests.test_modules import check_parity_scaled, make_pair
torch.manual_seed(0)
for kind in ("lstm", "gru", "rnn_tanh"):
    for packed in (False, True):
        ref, fused = make_pair(kind, 7, 24, num_layers=2, bidirectional=True)
        x = torch.randn(9, 20, 7)
        if packed:
            x = pack_padded_sequence(x, torch.randint(1, 10, (20,)).sort(descending=True)[0],
                                     enforce_sorted=True)
        check_parity_scaled(ref, fused, x)
print("ok")
"""


def test_parity_with_the_input_projection_forced_per_step():
    # FUSEDRNN_INPUT_PER_STEP=1 (comparisons) runs the plain cells' input projection step by
    # step too, on each thread's rows (csrc/cpu/recurrence.h input_projection_per_step); read
    # once per process, hence the child
    assert_child_prints_ok(INPUT_PER_STEP_CHILD, FUSEDRNN_INPUT_PER_STEP="1")
