"""LayerNormLSTM / LayerNormGRU and their ops against the step-by-step reference of
fusedrnn.reference: outputs, final states and the gradients of everything (LN parameters included),
gradcheck in float64, opcheck, torch.compile, and bad input."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import fusedrnn
from fusedrnn import ln_ops
from fusedrnn.reference import ln_gru_step, ln_lstm_step

from .conftest import TOL, assert_close
from .reference import run_layer

# float32: looser than the plain layers' bounds. A LayerNorm divides by each row's std, which
# amplifies rounding in the pre-activations, and weight gradients sum it over every (step, row).
LN_TOL = {torch.float32: {"atol": 1e-4, "rtol": 1e-3}, torch.float64: TOL[torch.float64]}


def assert_ln_close(actual, expected, dtype=torch.float32, what="", scaled=False):
    tol = dict(LN_TOL[dtype])
    if scaled:  # long float32 sums: the absolute bound grows with the tensor's largest value
        tol["atol"] *= max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual, expected, **tol, msg=lambda m: f"{what}: {m}")

CLASSES = {"lstm": fusedrnn.LayerNormLSTM, "gru": fusedrnn.LayerNormGRU}


def _layer_tensors(m, layer, direction):
    sfx = f"_l{layer}" + ("_reverse" if direction else "")
    get = lambda name: getattr(m, name + sfx, None)  # noqa: E731
    p = {"w_ih": get("weight_ih"), "w_hh": get("weight_hh"), "b_ih": get("bias_ih"),
         "b_hh": get("bias_hh")}
    for block in ("ih", "hh", "c"):
        if hasattr(m, f"ln_{block}_weight{sfx}"):
            p[f"ln_{block}_w"] = get(f"ln_{block}_weight")
            p[f"ln_{block}_b"] = get(f"ln_{block}_bias")
    return p


def reference_stack(m, x, h0, c0=None, batch_sizes=None):
    """The whole module, step by step: time-major (or packed) x, states [L·D, B, H]."""
    lstm = c0 is not None
    D = 2 if m.bidirectional else 1
    hs, cs = [], []
    for layer in range(m.num_layers):
        outs = []
        for d in range(D):
            idx = layer * D + d
            p = _layer_tensors(m, layer, d)
            if lstm:
                step = lambda xt, st, p=p: ln_lstm_step(xt, st[0], st[1], p, m.eps)  # noqa: E731
                states = [h0[idx], c0[idx]]
            else:
                step = lambda xt, st, p=p: (ln_gru_step(xt, st[0], p, m.eps),)  # noqa: E731
                states = [h0[idx]]
            y, final = run_layer(step, x, states, batch_sizes=batch_sizes, reverse=d == 1)
            outs.append(y)
            hs.append(final[0])
            if lstm:
                cs.append(final[1])
        x = torch.cat(outs, -1) if D == 2 else outs[0]
    return x, torch.stack(hs), (torch.stack(cs) if lstm else None)


def _randomise_ln(m, seed=3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("ln_"):
                base = 1.0 if "_weight_" in name else 0.0
                p.copy_(base + 0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _loss_weights(tensors, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(t.shape, generator=gen, dtype=t.dtype) for t in tensors]


def test_parameters_named_and_initialised_as_documented():
    m = fusedrnn.LayerNormLSTM(3, 5, num_layers=2, bidirectional=True)
    names = dict(m.named_parameters())
    for layer in range(2):
        for sfx in ("", "_reverse"):
            assert f"weight_ih_l{layer}{sfx}" in names and f"bias_hh_l{layer}{sfx}" in names
            assert torch.equal(names[f"ln_ih_weight_l{layer}{sfx}"], torch.ones(20))
            assert torch.equal(names[f"ln_hh_bias_l{layer}{sfx}"], torch.zeros(20))
            assert torch.equal(names[f"ln_c_weight_l{layer}{sfx}"], torch.ones(5))
    g = fusedrnn.LayerNormGRU(3, 5)
    assert g.ln_ih_weight_l0.shape == (15,) and not hasattr(g, "ln_c_weight_l0")
    g.reset_parameters()
    assert torch.equal(g.ln_hh_weight_l0, torch.ones(15))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("layers,bidir", [(1, False), (2, True)], ids=["1layer", "2layer-bidir"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_module_matches_reference(kind, layers, bidir, packed, bias, dtype):
    _check_module_against_reference(kind, layers, bidir, packed, bias, dtype, T=6, B=4,
                                     lengths=[6, 5, 3, 2])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_module_matches_reference_when_the_backward_runs_in_chunks(kind, packed, monkeypatch):
    # chunks of about 50 rows (csrc/cpu/recurrence.h BackwardChunks): the CPU backward's
    # LN-parameter and bias sums accumulate over chunks of steps, in both directions
    monkeypatch.setenv("FUSEDRNN_BACKWARD_CHUNK_ROWS", "50")
    _check_module_against_reference(kind, 1, True, packed, True, torch.float64, T=12, B=20,
                                    lengths=_random_lengths(1, 12, 20, seed=2))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_module_matches_reference_with_the_default_gradient_chunks(kind, packed):
    # by default the LayerNorm backwards hold their gradient rows to a quarter of y
    # (csrc/cpu/recurrence.h bounds_gradient_buffer), in chunks of at least 256 rows: 31 steps
    # of 20 rows make two or three chunks, crossed by both directions
    _check_module_against_reference(kind, 1, True, packed, True, torch.float64, T=31, B=20,
                                    lengths=_random_lengths(20, 31, 20, seed=4))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_module_matches_reference_with_the_input_projection_per_step(kind, packed):
    # float32, batch >= 8 and I < 256: each step's input projection is multiplied and normalised
    # by the thread that runs the step's rows (csrc/cpu/recurrence.h input_projection_per_step),
    # in both directions of two layers, with 20 rows split between two threads, over a packed
    # batch whose rows drop out step by step
    _check_module_against_reference(kind, 2, True, packed, True, torch.float32, T=9, B=20,
                                    lengths=_random_lengths(1, 9, 20, seed=5), scaled=True)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_module_matches_reference_in_float32_with_large_gradient_chunks(kind, packed):
    # float32 chunks of 256 or more rows at I = 64, H = 128: each chunk's products are large
    # enough for the threaded BLAS (csrc/cpu/recurrence.h chunk_gradients), on the gradient
    # rows' strided column blocks
    _check_module_against_reference(kind, 1, True, packed, True, torch.float32, T=31, B=20,
                                    lengths=_random_lengths(20, 31, 20, seed=6), scaled=True,
                                    I=64, H=128)


def _random_lengths(shortest, T, B, seed):
    """B sequence lengths in [shortest, T], longest first, the first one T."""
    gen = torch.Generator().manual_seed(seed)
    lengths = sorted(torch.randint(shortest, T + 1, (B,), generator=gen).tolist(), reverse=True)
    lengths[0] = T
    return lengths


def _check_module_against_reference(kind, layers, bidir, packed, bias, dtype, T, B, lengths,
                                     scaled=False, I=5, H=8):
    m = CLASSES[kind](I, H, num_layers=layers, bias=bias, bidirectional=bidir, batch_first=True,
                      dtype=dtype)
    _randomise_ln(m)
    D = 2 if bidir else 1
    x = torch.randn(B, T, I, dtype=dtype, requires_grad=True)
    h0 = torch.randn(layers * D, B, H, dtype=dtype, requires_grad=True)
    c0 = torch.randn(layers * D, B, H, dtype=dtype, requires_grad=True) if kind == "lstm" else None
    hx = (h0, c0) if kind == "lstm" else h0
    if packed:
        lengths = torch.tensor(lengths)
        y, state = m(pack_padded_sequence(x, lengths, batch_first=True), hx)
        y = pad_packed_sequence(y, batch_first=True)[0]
        ref_packed = pack_padded_sequence(x, lengths, batch_first=True)
        y_ref, h_ref, c_ref = reference_stack(m, ref_packed.data, h0, c0, ref_packed.batch_sizes)
        y_ref = pad_packed_sequence(ref_packed._replace(data=y_ref), batch_first=True)[0]
    else:
        y, state = m(x, hx)
        y_ref, h_ref, c_ref = reference_stack(m, x.transpose(0, 1), h0, c0)
        y_ref = y_ref.transpose(0, 1)
    h_n, c_n = state if kind == "lstm" else (state, None)
    assert_ln_close(y, y_ref, dtype, "y")
    assert_ln_close(h_n, h_ref, dtype, "h_n")
    outputs, expected = [y, h_n], [y_ref, h_ref]
    if kind == "lstm":
        assert_ln_close(c_n, c_ref, dtype, "c_n")
        outputs.append(c_n)
        expected.append(c_ref)
    inputs = [x, h0] + ([c0] if c0 is not None else []) + list(m.parameters())
    names = ["x", "h0"] + (["c0"] if c0 is not None else []) + [n for n, _ in m.named_parameters()]
    w = _loss_weights(outputs)
    got = torch.autograd.grad(sum((o * k).sum() for o, k in zip(outputs, w, strict=True)), inputs)
    want = torch.autograd.grad(sum((o * k).sum() for o, k in zip(expected, w, strict=True)), inputs)
    for name, a, b in zip(names, got, want, strict=True):
        assert_ln_close(a, b, dtype, f"grad of {name}", scaled)


def _op_args(kind, packed, reverse, dtype=torch.float64, B=3, T=4, I=3, H=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    G = {"lstm": 4, "gru": 3}[kind]
    rnd = lambda *s: torch.randn(*s, generator=gen, dtype=dtype, requires_grad=True)  # noqa: E731
    batch_sizes = torch.tensor([3, 3, 2, 1]) if packed else None
    x = rnd(int(batch_sizes.sum()), I) if packed else rnd(T, B, I)
    ln = (torch.randn(ln_ops.ln_params(kind, H), generator=gen, dtype=dtype) * 0.3 + 1).requires_grad_()
    tensors = [x, rnd(B, H)] + ([rnd(B, H)] if kind == "lstm" else []) + [
        rnd(G * H, I) * 0.5, rnd(G * H, H) * 0.5, rnd(G * H), rnd(G * H), ln]
    return [t.detach().requires_grad_() for t in tensors], batch_sizes


def _call_op(kind, tensors, batch_sizes, reverse, train=True):
    if kind == "lstm":
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln = tensors
        return torch.ops.fusedrnn.ln_lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes,
                                                reverse, 1e-5, train)
    x, h0, w_ih, w_hh, b_ih, b_hh, ln = tensors
    return torch.ops.fusedrnn.ln_gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes, reverse,
                                           1e-5, train)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("variant", ["padded-fwd", "packed-rev"])
def test_op_gradcheck_float64(kind, variant):
    packed = variant.startswith("packed")
    tensors, batch_sizes = _op_args(kind, packed, reverse=packed)

    def run(*ts):
        out = _call_op(kind, list(ts), batch_sizes, packed)
        return out[:-1]  # without the workspace

    assert torch.autograd.gradcheck(run, tuple(tensors), atol=1e-7)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_opcheck(kind, packed):
    tensors, batch_sizes = _op_args(kind, packed, reverse=False, dtype=torch.float32)
    op = torch.ops.fusedrnn.ln_lstm_layer if kind == "lstm" else torch.ops.fusedrnn.ln_gru_layer
    if kind == "lstm":
        args = (*tensors[:7], tensors[7], batch_sizes, False, 1e-5, True)
    else:
        args = (*tensors[:6], tensors[6], batch_sizes, False, 1e-5, True)
    torch.library.opcheck(op, args)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_compiled_training_step_matches_eager(kind):
    torch.manual_seed(0)
    eager = CLASSES[kind](4, 6, num_layers=2, batch_first=True, bidirectional=True)
    _randomise_ln(eager)
    compiled_model = CLASSES[kind](4, 6, num_layers=2, batch_first=True, bidirectional=True)
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(lambda x: compiled_model(x)[0], fullgraph=True, backend="aot_eager")
    x = torch.randn(3, 5, 4)
    out_eager = eager(x)[0]
    out_eager.square().sum().backward()
    out = compiled(x)
    out.square().sum().backward()
    assert_close(out, out_eager)
    for (name, p), q in zip(eager.named_parameters(), compiled_model.parameters(), strict=True):
        assert_close(q.grad, p.grad, what=name)


def test_layer_norm_keeps_large_inputs_stable():
    # LN makes the gates invariant to the scale of the pre-activations: scaling every weight by
    # 100 leaves the output of a layer with zero biases almost unchanged.
    # (up to eps: a tiny one here, so that the check is tight)
    m = fusedrnn.LayerNormLSTM(4, 6, bias=False, eps=1e-12, dtype=torch.float64)
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    y1 = m(x)[0]
    with torch.no_grad():
        m.weight_ih_l0.mul_(100)
        m.weight_hh_l0.mul_(100)
    y2 = m(x)[0]
    torch.testing.assert_close(y1, y2, atol=1e-9, rtol=1e-8)


def test_bad_input_gets_clear_errors():
    tensors, _ = _op_args("lstm", False, False, dtype=torch.float32)
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln = tensors
    with pytest.raises(RuntimeError, match="ln"):
        torch.ops.fusedrnn.ln_lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln[:-1], None, False,
                                         1e-5, False)
    with pytest.raises(RuntimeError, match="eps"):
        torch.ops.fusedrnn.ln_lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln, None, False, 0.0,
                                         False)
    with pytest.raises(RuntimeError, match="dtype"):
        torch.ops.fusedrnn.ln_lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln.double(), None,
                                         False, 1e-5, False)
    with pytest.raises(ValueError, match="eps"):
        fusedrnn.LayerNormGRU(3, 4, eps=0)
    with pytest.raises(TypeError, match="bfloat16"):
        fusedrnn.LayerNormGRU(3, 4)(torch.randn(2, 1, 3, dtype=torch.bfloat16))
    with pytest.raises(NotImplementedError, match="torch.nn"):
        fusedrnn.LayerNormLSTM(3, 4).to_torch()


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_parameter_grads_do_not_depend_on_whether_the_input_needs_grad(kind):
    # without a grad for x the backward op skips grad_x (x_grad=False); nothing else changes
    torch.manual_seed(0)
    model = CLASSES[kind](4, 6, num_layers=2, batch_first=True, bidirectional=True)
    _randomise_ln(model)
    x = torch.randn(3, 5, 4)
    grads = []
    for needs in (True, False):
        model.zero_grad()
        model(x.clone().requires_grad_(needs))[0].square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for (name, _), a, b in zip(model.named_parameters(), *grads, strict=True):
        assert torch.equal(a, b), name
