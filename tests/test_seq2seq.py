"""The attention encoder-decoder (fusedrnn.models.seq2seq) and its decoders (greedy, beam)."""

import itertools

import pytest
import torch

import fusedrnn
from fusedrnn.models.decoding import beam_search, greedy_decode
from fusedrnn.models.seq2seq import Seq2Seq, sequence_loss

from .conftest import assert_close

PAD, BOS, EOS = 0, 1, 2
# "luong-nofeed": Luong attention without input feeding (the decoder is a layer in training)
COMBOS = list(itertools.product(["lstm", "gru"], ["luong", "luong-nofeed", "bahdanau"]))


def _model(cell="gru", attention="luong", backend="fused", src_vocab=13, tgt_vocab=11, seed=0, **kw):
    torch.manual_seed(seed)
    sizes = {"emb": 8, "enc_hidden": 10, "dec_hidden": 12, "dropout": 0.0, **kw}
    if attention == "luong-nofeed":
        attention, sizes["input_feeding"] = "luong", False
    return Seq2Seq(src_vocab, tgt_vocab, cell=cell, attention=attention, backend=backend, **sizes)


def _batch(B=5, S=7, T=6, src_vocab=13, tgt_vocab=11, seed=1):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, S + 1, (B,), generator=g)
    lengths[0] = S  # at least one full-length source
    src = torch.randint(4, src_vocab, (B, S), generator=g)
    src[torch.arange(S)[None, :] >= lengths[:, None]] = PAD
    tgt = torch.randint(4, tgt_vocab, (B, T), generator=g)
    tgt_in = torch.cat([torch.full((B, 1), BOS), tgt[:, :-1]], dim=1)
    return src, lengths, tgt_in, tgt


@pytest.mark.parametrize("cell,attention", COMBOS)
def test_forward_backward_both_backends_agree(cell, attention):
    src, lengths, tgt_in, tgt = _batch()
    outs, grads = {}, {}
    for backend in ("fused", "torch"):
        model = _model(cell, attention, backend)
        logits = model(src, lengths, tgt_in)
        assert logits.shape == (5, 6, 11)
        assert torch.isfinite(logits).all()
        sequence_loss(logits, tgt).backward()
        for name, p in model.named_parameters():
            assert p.grad is not None, f"{backend}: no gradient for {name}"
            assert torch.isfinite(p.grad).all(), name
        outs[backend] = logits.detach()
        grads[backend] = {n: p.grad for n, p in model.named_parameters()}
    # same seed -> same initial weights (the fused modules subclass torch.nn's): same numbers
    assert_close(outs["fused"], outs["torch"], what="logits")
    for name, g in grads["fused"].items():
        torch.testing.assert_close(g, grads["torch"][name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("cell,attention", COMBOS)
def test_teacher_forcing_equals_stepping_the_decoder(cell, attention):
    """forward's teacher-forced logits are what step() gives symbol by symbol (the decoders'
    path); without input feeding forward runs the decoder as a layer, so this ties the two."""
    src, lengths, tgt_in, _ = _batch()
    for backend in ("fused", "torch"):
        model = _model(cell, attention, backend).eval()
        with torch.no_grad():
            forced = model(src, lengths, tgt_in)
            enc = model.encode(src, lengths)
            state, stepped = enc.state, []
            for t in range(tgt_in.size(1)):
                logits, state = model.step(tgt_in[:, t], state, enc)
                stepped.append(logits)
        assert_close(torch.stack(stepped, dim=1), forced, what=f"{backend}: stepped vs forced")


def test_input_feeding_off_needs_luong_and_drops_the_feed():
    with pytest.raises(ValueError, match="input_feeding=False needs attention='luong'"):
        _model(attention="bahdanau", input_feeding=False)
    fed, plain = _model("lstm", "luong"), _model("lstm", "luong-nofeed")
    assert fed.input_feeding and not plain.input_feeding
    assert len(fed.encode(*_batch()[:2]).state) == 3  # h, c and the fed-back vector
    assert len(plain.encode(*_batch()[:2]).state) == 2


def test_uses_fused_modules_unless_torch_backend():
    fused, ref = _model("lstm", backend="fused"), _model("lstm", backend="torch")
    assert isinstance(fused.encoder, fusedrnn.LSTM) and isinstance(fused.cell, fusedrnn.LSTMCell)
    assert not isinstance(ref.encoder, fusedrnn.LSTM) and not isinstance(ref.cell, fusedrnn.LSTMCell)
    assert fused.encoder.bidirectional


def test_rejects_unknown_cell_and_attention():
    with pytest.raises(ValueError, match="cell"):
        _model(cell="rnn")
    with pytest.raises(ValueError, match="attention"):
        _model(attention="dot-product-ish")


@pytest.mark.parametrize("cell,attention", COMBOS)
def test_optimisation_lowers_the_loss(cell, attention):
    src, lengths, tgt_in, tgt = _batch(B=8)
    model = _model(cell, attention)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(40):
        loss = sequence_loss(model(src, lengths, tgt_in), tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.4 * losses[0], losses


@pytest.mark.parametrize("cell,attention", COMBOS)
def test_padding_is_masked(cell, attention):
    """Extra padding columns, or garbage in padded positions, change nothing."""
    src, lengths, tgt_in, _ = _batch()
    model = _model(cell, attention).eval()
    with torch.no_grad():
        ref = model(src, lengths, tgt_in)
        wider = torch.cat([src, torch.full((5, 4), PAD)], dim=1)
        assert_close(model(wider, lengths, tgt_in), ref, what="extra padding")
        garbage = wider.clone()
        pad_pos = torch.arange(wider.size(1))[None, :] >= lengths[:, None]
        garbage[pad_pos] = 5  # a real symbol: only the mask keeps it out
        assert_close(model(garbage, lengths, tgt_in), ref, what="garbage in padded positions")
        enc = model.encode(wider, lengths)
        _, weights = model.attention(enc.state[0], enc.keys, enc.memory, enc.mask)
        assert (weights[pad_pos] == 0).all()
        assert_close(weights.sum(1), torch.ones(5), what="weights sum")
    assert greedy_decode(model, wider, lengths).tokens == greedy_decode(model, src, lengths).tokens
    assert beam_search(model, garbage, lengths, beam=3).tokens == beam_search(model, src, lengths,
                                                                             beam=3).tokens


def test_each_source_is_independent_of_its_batch():
    src, lengths, tgt_in, _ = _batch(B=6)
    model = _model().eval()
    with torch.no_grad():
        full = model(src, lengths, tgt_in)
        alone = model(src[2:3, : int(lengths[2])], lengths[2:3], tgt_in[2:3])
    assert_close(alone[0], full[2], what="row 2 alone vs in the batch")


def test_sequence_loss_ignores_padding():
    logits = torch.randn(2, 4, 7)
    target = torch.tensor([[4, 5, EOS, PAD], [6, EOS, PAD, PAD]])
    expected = torch.nn.functional.cross_entropy(
        torch.cat([logits[0, :3], logits[1, :2]]), torch.tensor([4, 5, EOS, 6, EOS]))
    assert_close(sequence_loss(logits, target), expected, what="masked loss")
    smoothed = sequence_loss(logits, target, label_smoothing=0.1)
    assert torch.isfinite(smoothed) and not torch.allclose(smoothed, expected)


@pytest.mark.parametrize("cell,attention", COMBOS)
def test_beam_one_is_greedy(cell, attention):
    src, lengths, _, _ = _batch(B=8)
    for seed in range(3):
        model = _model(cell, attention, seed=seed).eval()
        greedy = greedy_decode(model, src, lengths)
        beam = beam_search(model, src, lengths, beam=1)
        assert beam.tokens == greedy.tokens
        assert beam.scores == pytest.approx(greedy.scores, abs=1e-5)


def _sequence_logprob(model, src, lengths, seqs):
    """Teacher-forced log-probability of each full sequence (+ </s>), independent of the decoders."""
    total = []
    with torch.no_grad():
        for i, seq in enumerate(seqs):
            tgt_in = torch.tensor([[BOS, *seq]])
            tgt_out = torch.tensor([[*seq, EOS]])
            logp = torch.log_softmax(model(src[i:i + 1], lengths[i:i + 1], tgt_in), -1)
            total.append(float(logp.gather(2, tgt_out.unsqueeze(2)).sum()))
    return total


def _reverse_data(n, g, vocab=10, max_len=6):
    lengths = torch.randint(2, max_len + 1, (n,), generator=g)
    src = torch.randint(4, vocab, (n, max_len), generator=g)
    src[torch.arange(max_len)[None, :] >= lengths[:, None]] = PAD
    tgt = torch.full((n, max_len + 1), PAD)
    for i, L in enumerate(lengths.tolist()):
        tgt[i, :L + 1] = torch.tensor([*src[i, :L].flip(0).tolist(), EOS])
    tgt_in = torch.cat([torch.full((n, 1), BOS), tgt[:, :-1]], dim=1)
    tgt_in[tgt_in == EOS] = PAD
    return src, lengths, tgt_in, tgt


def test_beam_never_scores_below_greedy_on_a_toy_reverse_task():
    """Train a tiny model a little on sequence reversal (decisions stay uncertain), then compare."""
    g = torch.Generator().manual_seed(0)
    model = _model("gru", "luong", src_vocab=10, tgt_vocab=10, emb=16, enc_hidden=16, dec_hidden=24)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        src, lengths, tgt_in, tgt = _reverse_data(64, g)
        loss = sequence_loss(model(src, lengths, tgt_in), tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    src, lengths, _, _ = _reverse_data(48, g)
    greedy = greedy_decode(model, src, lengths)
    beam = beam_search(model, src, lengths, beam=5, length_penalty=0.0)
    assert all(b >= gr - 1e-4 for b, gr in zip(beam.scores, greedy.scores, strict=True))
    assert sum(b > gr + 1e-3 for b, gr in zip(beam.scores, greedy.scores, strict=True)) > 0, \
        "the toy model is too sure of itself for the comparison to mean anything"
    # the decoders' scores are the model's log-probabilities of what they return
    assert beam.scores == pytest.approx(_sequence_logprob(model, src, lengths, beam.tokens), abs=1e-3)
    assert greedy.scores == pytest.approx(_sequence_logprob(model, src, lengths, greedy.tokens), abs=1e-3)


def test_beam_search_length_normalisation_and_limits():
    src, lengths, _, _ = _batch(B=4)
    model = _model("lstm", "bahdanau").eval()
    for lp in (0.0, 0.6, 1.0):
        out = beam_search(model, src, lengths, beam=4, length_penalty=lp, max_len=5)
        assert len(out.tokens) == 4
        assert all(len(seq) <= 5 and EOS not in seq and PAD not in seq and BOS not in seq
                   for seq in out.tokens)
    with pytest.raises(ValueError, match="beam"):
        beam_search(model, src, lengths, beam=0)


@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_backend_builds_each_recurrent_module_and_rejects_unknown_names(backend):
    from fusedrnn.models.backend import recurrent_cell, recurrent_layer

    owner = fusedrnn if backend == "fused" else torch.nn
    for kind, name in (("lstm", "LSTM"), ("GRU", "GRU"), ("rnn", "RNN")):
        assert type(recurrent_layer(kind, 4, 8, backend=backend)) is getattr(owner, name)
        assert type(recurrent_cell(kind, 4, 8, backend=backend)) is getattr(owner, name + "Cell")
    with pytest.raises(ValueError, match="kind must be one of"):
        recurrent_cell("lstmcell", 4, 8, backend=backend)
    with pytest.raises(ValueError, match="backend must be one of"):
        recurrent_layer("lstm", 4, 8, backend="jax")
