"""Zoneout, DropConnect and variational recurrent dropout on every fused layer: with explicit masks
the fused layers match the step-by-step reference of fusedrnn.reference element for element
(outputs, states, all gradients); eval-mode zoneout is the expectation formula; masks come from
torch's RNG or a generator; the ops pass gradcheck and opcheck with masks; bad input is refused."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fusedrnn
from fusedrnn import reference
from fusedrnn.nn.regularizers import LayerMasks, Regularization, draw_masks

from .conftest import TOL

# the same float32 bounds as the LayerNorm tests (LN amplifies rounding); float64 as everywhere
TOLS = {torch.float32: {"atol": 1e-4, "rtol": 1e-3}, torch.float64: TOL[torch.float64]}

MODULES = {
    "lstm": lambda *a, **k: fusedrnn.LSTM(*a, **k),
    "gru": lambda *a, **k: fusedrnn.GRU(*a, **k),
    "rnn_tanh": lambda *a, **k: fusedrnn.RNN(*a, **k),
    "ln_lstm": lambda *a, **k: fusedrnn.LayerNormLSTM(*a, **k),
    "ln_gru": lambda *a, **k: fusedrnn.LayerNormGRU(*a, **k),
}
HAS_C = {"lstm", "ln_lstm"}


def _params(m, layer, direction):
    sfx = f"_l{layer}" + ("_reverse" if direction else "")
    p = {"w_ih": getattr(m, "weight_ih" + sfx), "w_hh": getattr(m, "weight_hh" + sfx),
         "b_ih": getattr(m, "bias_ih" + sfx, None), "b_hh": getattr(m, "bias_hh" + sfx, None)}
    for block in ("ih", "hh", "c"):
        if hasattr(m, f"ln_{block}_weight{sfx}"):
            p[f"ln_{block}_w"] = getattr(m, f"ln_{block}_weight{sfx}")
            p[f"ln_{block}_b"] = getattr(m, f"ln_{block}_bias{sfx}")
    return p


def reference_stack(kind, m, x, h0, c0, batch_sizes, masks):
    D = 2 if m.bidirectional else 1
    hs, cs = [], []
    for layer in range(m.num_layers):
        outs = []
        for d in range(D):
            idx, mk = layer * D + d, masks[(layer, d)]
            p = _params(m, layer, d)
            if mk.dropconnect is not None:
                p["w_hh"] = p["w_hh"] * mk.dropconnect
            y, h, c = reference.run_layer(
                kind, x, h0[idx], c0[idx] if c0 is not None else None, p, batch_sizes=batch_sizes,
                reverse=d == 1, eps=getattr(m, "eps", 1e-5), rec_mask=mk.rec_mask,
                zoneout_h=mk.zoneout_h, zoneout_c=mk.zoneout_c)
            outs.append(y)
            hs.append(h)
            cs.append(c)
        x = torch.cat(outs, -1) if D == 2 else outs[0]
    return x, torch.stack(hs), (torch.stack(cs) if c0 is not None else None)


def _explicit_masks(kind, m, rows_shape, B, dtype, seed=5, rec_mask=True):
    gen = torch.Generator().manual_seed(seed)
    H = m.hidden_size
    bern = lambda shape, p: torch.bernoulli(torch.full(shape, p, dtype=dtype), generator=gen)  # noqa: E731
    masks = {}
    for layer in range(m.num_layers):
        for d in range(2 if m.bidirectional else 1):
            G = m.weight_hh_l0.shape[0]
            masks[(layer, d)] = LayerMasks(
                rec_mask=bern((B, H), 0.7) / 0.7 if rec_mask else None,
                zoneout_h=bern((*rows_shape, H), 0.3),
                zoneout_c=bern((*rows_shape, H), 0.4) if kind in HAS_C else None,
                dropconnect=bern((G, H), 0.8) / 0.8,
            )
    return masks


@pytest.mark.parametrize("kind", list(MODULES))
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize(
    "dtype,B,T,chunk_rows,rec_mask",
    [(torch.float64, 4, 5, None, True), (torch.float32, 4, 5, None, True),
     (torch.float64, 24, 5, None, True), (torch.float32, 24, 5, None, True),
     (torch.float64, 24, 5, 30, True), (torch.float64, 2, 90, None, True),
     (torch.float64, 2, 90, None, False)],
    ids=["f64-B4", "f32-B4", "f64-B24", "f32-B24", "f64-B24-chunked", "f64-B2-T90",
         "f64-B2-T90-no-rec-mask"],
)
def test_explicit_masks_match_reference(kind, packed, dtype, B, T, chunk_rows, rec_mask,
                                        monkeypatch):
    # B=24: with 2+ threads the CPU driver runs row blocks on separate threads
    # (csrc/cpu/recurrence.h for_row_blocks), each with its own rows of every mask; chunk_rows:
    # the backward takes the whole-sequence gradients in chunks of steps of about that many rows.
    # B=2, T=90: one thread runs the steps while a second multiplies the forward's inputs chunk
    # by chunk ahead of them, and without recurrent dropout (h_{t-1} rows in place) takes the
    # backward's GEMMs chunk by chunk behind them (csrc/cpu/pipeline.h). Float64 only: over 40+
    # steps float32 LayerNormLSTM drifts past TOLS with or without the pipelines
    if chunk_rows:
        monkeypatch.setenv("FUSEDRNN_BACKWARD_CHUNK_ROWS", str(chunk_rows))
    I, H = 3, 6
    m = MODULES[kind](I, H, num_layers=2, bidirectional=True, dtype=dtype)
    x = torch.randn(T, B, I, dtype=dtype, requires_grad=True)
    h0 = torch.randn(4, B, H, dtype=dtype, requires_grad=True)
    c0 = torch.randn(4, B, H, dtype=dtype, requires_grad=True) if kind in HAS_C else None
    hx = (h0, c0) if c0 is not None else h0
    if packed:
        lengths = torch.tensor([5] * 8 + [4] * 6 + [2] * 6 + [1] * 4) if B == 24 \
            else torch.linspace(T, 1, B).round().long()  # T first, 1 last
        inp = pack_padded_sequence(x, lengths)
        data, batch_sizes = inp.data, inp.batch_sizes
        masks = _explicit_masks(kind, m, (data.shape[0],), B, dtype, rec_mask=rec_mask)
    else:
        inp, data, batch_sizes = x, x, None
        masks = _explicit_masks(kind, m, (T, B), B, dtype, rec_mask=rec_mask)
    y, state = m(inp, hx, masks=masks)
    y = y.data if packed else y
    h_n, c_n = state if c0 is not None else (state, None)
    y_ref, h_ref, c_ref = reference_stack(kind, m, data, h0, c0, batch_sizes, masks)
    outs = [y, h_n] + ([c_n] if c0 is not None else [])
    refs = [y_ref, h_ref] + ([c_ref] if c0 is not None else [])
    for name, a, b in zip(("y", "h_n", "c_n"), outs, refs, strict=False):
        torch.testing.assert_close(a, b, **TOLS[dtype], msg=lambda s, n=name: f"{n}: {s}")
    inputs = [x, h0] + ([c0] if c0 is not None else []) + list(m.parameters())
    names = ["x", "h0"] + (["c0"] if c0 is not None else []) + [n for n, _ in m.named_parameters()]
    weights = [torch.rand_like(o) for o in outs]
    loss = lambda ts: sum((o * w).sum() for o, w in zip(ts, weights, strict=True))  # noqa: E731
    got = torch.autograd.grad(loss(outs), inputs, retain_graph=True)  # packing is shared by both
    want = torch.autograd.grad(loss(refs), inputs)
    for name, a, b in zip(names, got, want, strict=True):
        torch.testing.assert_close(a, b, **TOLS[dtype], msg=lambda s, n=name: f"grad of {n}: {s}")


@pytest.mark.parametrize("kind", list(MODULES))
def test_eval_zoneout_is_the_expectation(kind):
    rates = {"zoneout_h": 0.3, **({"zoneout_c": 0.2} if kind in HAS_C else {})}
    m = MODULES[kind](3, 5, dtype=torch.float64, dropconnect=0.5, recurrent_dropout=0.5, **rates).eval()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    y = m(x)[0]
    full = lambda p: torch.full((6, 2, 5), p, dtype=torch.float64)  # noqa: E731
    expected = {(0, 0): LayerMasks(zoneout_h=full(0.3),
                                   zoneout_c=full(0.2) if kind in HAS_C else None)}
    h0 = torch.zeros(1, 2, 5, dtype=torch.float64)
    y_ref = reference_stack(kind, m, x, h0, h0.clone() if kind in HAS_C else None, None, expected)[0]
    # dropconnect and recurrent dropout are off in evaluation: only the zoneout expectation remains
    torch.testing.assert_close(y, y_ref)


def test_training_zoneout_one_keeps_the_initial_state():
    m = fusedrnn.LSTM(3, 4, zoneout_h=1.0, zoneout_c=1.0)
    h0, c0 = torch.randn(1, 2, 4), torch.randn(1, 2, 4)
    y, (h, c) = m(torch.randn(5, 2, 3), (h0, c0))
    torch.testing.assert_close(y, h0.expand(5, 2, 4))
    torch.testing.assert_close(c, c0)


def test_masks_follow_the_seed_and_the_generator():
    m = fusedrnn.GRU(3, 8, zoneout_h=0.3, dropconnect=0.3, recurrent_dropout=0.3)
    x = torch.randn(7, 4, 3)
    torch.manual_seed(1)
    a = m(x)[0]
    torch.manual_seed(1)
    b = m(x)[0]
    torch.manual_seed(2)
    c = m(x)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = fusedrnn.GRU(3, 8, zoneout_h=0.3, generator=torch.Generator().manual_seed(9))
    g.load_state_dict(m.state_dict())
    first = g(x)[0]
    g.generator.manual_seed(9)
    assert torch.equal(first, g(x)[0])
    m.eval()
    assert torch.equal(m(x)[0], m(x)[0])  # evaluation draws nothing


def test_defaults_are_off_and_match_torch_nn():
    m = fusedrnn.LSTM(3, 4)
    assert not m.regularization.active()
    ref = m.to_torch()
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(m(x)[0], ref(x)[0], atol=2e-5, rtol=1e-4)


def _masked_op_inputs(kind, dtype=torch.float64, T=4, B=3, I=3, H=4):
    gen = torch.Generator().manual_seed(0)
    G = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    rnd = lambda *s: torch.randn(*s, generator=gen, dtype=dtype).requires_grad_()  # noqa: E731
    bern = lambda *s: torch.bernoulli(torch.full(s, 0.4, dtype=dtype), generator=gen)  # noqa: E731
    tensors = [rnd(T, B, I), rnd(B, H)] + ([rnd(B, H)] if kind == "lstm" else []) + [
        rnd(G * H, I), rnd(G * H, H), rnd(G * H), rnd(G * H)]
    masks = [bern(B, H) / 0.6, bern(T, B, H)] + ([bern(T, B, H)] if kind == "lstm" else [])
    return tensors, masks


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_ops_with_masks_gradcheck_and_opcheck(kind):
    tensors, masks = _masked_op_inputs(kind)
    op = getattr(torch.ops.fusedrnn, f"{kind}_layer")

    def call(*ts, train=True):
        if kind == "lstm":
            return op(*ts[:7], None, None, False, train, *masks)
        flags = (False, train) if kind == "rnn" else (train,)
        return op(*ts[:6], None, False, *flags, *masks)

    assert torch.autograd.gradcheck(lambda *ts: call(*ts)[:-1], tuple(tensors))
    f32 = [t.detach().float().requires_grad_() for t in tensors]
    masks[:] = [m.float() for m in masks]
    args = (*f32[:7], None, None, False, True, *masks) if kind == "lstm" else (
        (*f32[:6], None, False, *((False, True) if kind == "rnn" else (True,)), *masks))
    torch.library.opcheck(op, args)


def test_compiled_regularized_training_step():
    m = fusedrnn.LayerNormLSTM(3, 5, zoneout_h=0.2, zoneout_c=0.1, dropconnect=0.2, recurrent_dropout=0.2)
    compiled = torch.compile(lambda x, masks: m(x, masks=masks)[0], fullgraph=True, backend="aot_eager")
    masks = {(0, 0): LayerMasks(rec_mask=torch.ones(2, 5) * 1.25, zoneout_h=torch.full((4, 2, 5), 0.2),
                                zoneout_c=torch.zeros(4, 2, 5), dropconnect=torch.ones(20, 5))}
    x = torch.randn(4, 2, 3)
    eager = m(x, masks=masks)[0]
    out = compiled(x, masks)
    torch.testing.assert_close(out, eager)
    out.sum().backward()
    assert m.weight_hh_l0.grad is not None and torch.isfinite(m.weight_hh_l0.grad).all()


def test_bad_regularizer_arguments():
    with pytest.raises(ValueError, match="zoneout_c"):
        fusedrnn.GRU(3, 4, zoneout_c=0.1)
    with pytest.raises(ValueError, match="dropconnect must be in"):
        fusedrnn.LSTM(3, 4, dropconnect=1.0)
    with pytest.raises(ValueError, match="zoneout_h must be in"):
        fusedrnn.LayerNormGRU(3, 4, zoneout_h=-0.1)
    with pytest.raises(ValueError, match="proj_size"):
        fusedrnn.LSTM(3, 4, proj_size=2, zoneout_h=0.1)
    with pytest.raises(TypeError, match="unexpected"):
        fusedrnn.LayerNormLSTM(3, 4, zonout_h=0.1)
    tensors, masks = _masked_op_inputs("lstm", torch.float32)
    with pytest.raises(RuntimeError, match="zoneout_h"):
        torch.ops.fusedrnn.lstm_layer(*tensors, None, None, False, False, masks[0], masks[1][:2], None)
    with pytest.raises(RuntimeError, match="rec_mask"):
        torch.ops.fusedrnn.lstm_layer(*tensors, None, None, False, False, masks[0][:1], None, None)


def test_drawn_masks_have_the_rates_and_scales():
    # zoneout: m = 1 keeps the previous state with probability p; dropout masks: 0 with
    # probability p, else 1 / (1 - p), so that their mean is 1
    reg = Regularization(zoneout_h=0.3, zoneout_c=0.6, dropconnect=0.2, recurrent_dropout=0.45)
    w_hh = torch.empty(4 * 400, 400)
    masks = draw_masks(reg, True, (50, 40, 400), 500, 400, w_hh, torch.Generator().manual_seed(0))
    for name, mask, p in (("zoneout_h", masks.zoneout_h, 0.3), ("zoneout_c", masks.zoneout_c, 0.6)):
        assert set(mask.unique().tolist()) == {0.0, 1.0}, name
        assert abs(mask.mean().item() - p) < 0.005, name  # 800,000 draws: 5 std is about 0.003
    for name, mask, p, shape in (("recurrent_dropout", masks.rec_mask, 0.45, (500, 400)),
                                 ("dropconnect", masks.dropconnect, 0.2, (1600, 400))):
        assert mask.shape == shape, name
        values = mask.unique()
        assert len(values) == 2 and values[0] == 0, name
        torch.testing.assert_close(values[1], torch.tensor(1 / (1 - p)), msg=name)
        assert abs((mask == 0).float().mean().item() - p) < 0.01, name
        assert abs(mask.mean().item() - 1) < 0.02, name
    evaluation = draw_masks(reg, False, (5, 4, 400), 4, 400, w_hh, None)
    assert evaluation.rec_mask is None and evaluation.dropconnect is None
    assert torch.equal(evaluation.zoneout_h, torch.full((5, 4, 400), 0.3))


@pytest.mark.parametrize("kind", ["ln_lstm", "ln_gru"])
@pytest.mark.parametrize("variant", ["padded-fwd", "packed-rev"])
def test_layer_norm_ops_with_masks_gradcheck_and_opcheck(kind, variant):
    packed = variant.startswith("packed")
    gen = torch.Generator().manual_seed(3)
    lstm, T, B, I, H = kind == "ln_lstm", 4, 3, 3, 4
    G = 4 if lstm else 3
    batch_sizes = torch.tensor([3, 3, 2, 1]) if packed else None
    rows = (int(batch_sizes.sum()),) if packed else (T, B)
    rnd = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    bern = lambda *s: torch.bernoulli(torch.full(s, 0.4, dtype=torch.float64), generator=gen)  # noqa: E731
    ln = rnd(G * H * 4 + (2 * H if lstm else 0)) * 0.3 + 1
    tensors = [rnd(*rows, I), rnd(B, H)] + ([rnd(B, H)] if lstm else []) + [
        rnd(G * H, I) * 0.5, rnd(G * H, H) * 0.5, rnd(G * H), rnd(G * H), ln]
    tensors = [t.requires_grad_() for t in tensors]
    masks = [bern(B, H) / 0.6, bern(*rows, H)] + ([bern(*rows, H)] if lstm else [])
    op = torch.ops.fusedrnn.ln_lstm_layer if lstm else torch.ops.fusedrnn.ln_gru_layer

    def call(*ts, masks=masks):
        return op(*ts, batch_sizes, packed, 1e-5, True, *masks)

    assert torch.autograd.gradcheck(lambda *ts: call(*ts)[:-1], tuple(tensors), atol=1e-7)
    f32 = [t.detach().float().requires_grad_() for t in tensors]
    torch.library.opcheck(op, (*f32, batch_sizes, packed, 1e-5, True, *[m.float() for m in masks]))


@pytest.mark.parametrize("kind", list(MODULES))
def test_compiled_step_with_masks_matches_eager(kind):
    torch.manual_seed(0)
    m = MODULES[kind](3, 5, num_layers=2, batch_first=True, zoneout_h=0.2, dropconnect=0.3,
                      recurrent_dropout=0.2, **({"zoneout_c": 0.1} if kind in HAS_C else {}))
    masks = _explicit_masks(kind, m, (4, 2), 2, torch.float32)  # time-major, as the ops see them
    x = torch.randn(2, 4, 3)
    eager = m(x, masks=masks)[0]
    eager_grads = torch.autograd.grad(eager.square().sum(), list(m.parameters()))
    compiled = torch.compile(lambda x, masks: m(x, masks=masks)[0], fullgraph=True,
                             backend="aot_eager")
    out = compiled(x, masks)
    torch.testing.assert_close(out, eager)
    grads = torch.autograd.grad(out.square().sum(), list(m.parameters()))
    for (name, _), a, b in zip(m.named_parameters(), grads, eager_grads, strict=True):
        torch.testing.assert_close(a, b, msg=lambda s, n=name: f"grad of {n}: {s}")


def _bad_masks_cases():
    good = lambda: LayerMasks(rec_mask=torch.ones(2, 5), zoneout_h=torch.zeros(4, 2, 5))  # noqa: E731
    return [
        ("gru", {(0, 0): LayerMasks(zoneout_c=torch.zeros(4, 2, 5))}, ValueError, "has none"),
        ("ln_gru", {(0, 0): LayerMasks(zoneout_c=torch.zeros(4, 2, 5))}, ValueError, "has none"),
        ("lstm", {(0, 1): good()}, ValueError, r"keys \[\(0, 1\)\]"),
        ("lstm", {(0, 0): good(), (1, 0): good()}, ValueError, "match no"),
        ("lstm", {(0, 0): LayerMasks(dropconnect=torch.ones(5))}, ValueError,
         r"dropconnect must have shape \[20, 5\]"),
        ("ln_gru", {(0, 0): LayerMasks(dropconnect=torch.ones(()))}, ValueError, "dropconnect"),
        ("gru", {(0, 0): LayerMasks(dropconnect=torch.ones(15, 5, dtype=torch.float64))},
         ValueError, "dropconnect must be torch.float32"),
        ("rnn_tanh", {(0, 0): LayerMasks(zoneout_h=torch.zeros(2, 4, 5))}, ValueError,
         r"zoneout_h must have shape \[4, 2, 5\] \(time-major"),
        ("lstm", {(0, 0): LayerMasks(zoneout_h=torch.zeros(4, 2, 5, requires_grad=True))},
         ValueError, "requires grad"),
        ("lstm", {(0, 0): LayerMasks(rec_mask=[[1.0] * 5] * 2)}, TypeError, "must be a Tensor"),
    ]


@pytest.mark.parametrize("kind,masks,error,match", _bad_masks_cases())
def test_explicit_masks_are_checked(kind, masks, error, match):
    m = MODULES[kind](3, 5, batch_first=True)
    with pytest.raises(error, match=match):
        m(torch.randn(2, 4, 3), masks=masks)


def test_rates_and_generator_must_have_their_types():
    for bad in (True, "0.5", None):
        with pytest.raises(TypeError, match="zoneout_h must be a number"):
            fusedrnn.GRU(3, 4, zoneout_h=bad)
    with pytest.raises(TypeError, match="dropconnect must be a number"):
        fusedrnn.LayerNormLSTM(3, 4, dropconnect="0.1")
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        fusedrnn.LSTM(3, 4, zoneout_h=0.1, generator=123)
    assert fusedrnn.GRU(3, 4, zoneout_h=1).regularization.zoneout_h == 1.0  # an int rate is fine
