"""Argument checks of Seq2Seq.encode and of the decoders (greedy_decode, beam_search)."""

import numpy as np
import pytest
import torch

from fusedrnn.models.decoding import beam_search, greedy_decode
from fusedrnn.models.seq2seq import Seq2Seq

PAD, BOS, EOS = 0, 1, 2
SRC_VOCAB, TGT_VOCAB = 13, 11


def _model(cell="gru", attention="luong"):
    torch.manual_seed(0)
    return Seq2Seq(SRC_VOCAB, TGT_VOCAB, emb=8, enc_hidden=10, dec_hidden=12, dropout=0.0,
                   cell=cell, attention=attention).eval()


def _batch(B=2, S=5):
    src = torch.randint(4, SRC_VOCAB, (B, S), generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([S, 3][:B] + [2] * max(0, B - 2))
    src[torch.arange(S)[None, :] >= lengths[:, None]] = PAD
    return src, lengths


DECODERS = {
    "greedy": lambda model, src, lengths, **kw: greedy_decode(model, src, lengths, **kw),
    "beam": lambda model, src, lengths, **kw: beam_search(model, src, lengths, beam=3, **kw),
}


# -- encode ------------------------------------------------------------------------------------

@pytest.mark.parametrize("lengths,match", [
    ([5, 7], r"src_lengths must lie in \[1, 5\].*\[5, 7\]"),  # longer than src's width
    ([5, 0], r"src_lengths must lie in \[1, 5\].*\[0, 5\]"),  # an empty source
    ([5, -1], r"src_lengths must lie in \[1, 5\]"),
])
def test_encode_rejects_lengths_out_of_range(lengths, match):
    src, _ = _batch()
    with pytest.raises(ValueError, match=match):
        _model().encode(src, torch.tensor(lengths))


@pytest.mark.parametrize("lengths", [[5], [5, 3, 2], [[5, 3]], 5])
def test_encode_rejects_lengths_of_the_wrong_shape(lengths):
    src, _ = _batch()
    with pytest.raises(ValueError, match=r"src_lengths must be 1-D with one entry per source \(B=2\)"):
        _model().encode(src, torch.tensor(lengths))


def test_encode_rejects_non_integer_or_non_tensor_lengths():
    src, _ = _batch()
    with pytest.raises(TypeError, match="src_lengths must be an integer tensor, got dtype torch.float32"):
        _model().encode(src, torch.tensor([5.0, 3.0]))
    with pytest.raises(TypeError, match="src_lengths must be a tensor"):
        _model().encode(src, [5, 3])


@pytest.mark.parametrize("bad_id,got", [(SRC_VOCAB, rf"\[0, {SRC_VOCAB}\]"), (-1, r"\[-1, ")])
def test_encode_rejects_token_ids_outside_the_vocabulary(bad_id, got):
    src, lengths = _batch()
    src[1, 0] = bad_id
    with pytest.raises(ValueError, match=rf"src token ids must lie in \[0, {SRC_VOCAB}\).*{got}"):
        _model().encode(src, lengths)
    # padded positions go through the embedding too, so they are checked as well
    src, lengths = _batch()
    src[1, 4] = bad_id
    with pytest.raises(ValueError, match="src token ids must lie in"):
        _model().encode(src, lengths)


def test_encode_rejects_src_of_the_wrong_shape_or_dtype():
    src, lengths = _batch()
    model = _model()
    with pytest.raises(ValueError, match=r"src must be 2-D \(B, S\) batch-first token ids, got shape \(5,\)"):
        model.encode(src[0], lengths[:1])
    with pytest.raises(ValueError, match=r"src must be 2-D \(B, S\).*got shape \(2, 5, 1\)"):
        model.encode(src.unsqueeze(2), lengths)
    with pytest.raises(TypeError, match="src must hold integer token ids, got dtype torch.float32"):
        model.encode(src.float(), lengths)
    with pytest.raises(ValueError, match=r"src must have at least one row and one column.*shape \(2, 0\)"):
        model.encode(src[:, :0], lengths)
    with pytest.raises(ValueError, match=r"src must have at least one row and one column.*shape \(0, 5\)"):
        model.encode(src[:0], lengths[:0])


def test_time_major_src_is_caught_by_the_lengths_check():
    """A (S, B) src (time-major) has the wrong number of rows for the lengths."""
    src, lengths = _batch(B=2, S=5)
    with pytest.raises(ValueError, match=r"src_lengths must be 1-D with one entry per source \(B=5\)"):
        _model().encode(src.t().contiguous(), lengths)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_encode_accepts_valid_edge_cases(cell):
    """Lengths of exactly 1 and exactly S, the largest id, int32 tensors: all fine."""
    model = _model(cell)
    src = torch.full((3, 4), PAD, dtype=torch.int32)
    src[0] = SRC_VOCAB - 1
    src[1, 0] = 4
    src[2, :2] = 5
    lengths = torch.tensor([4, 1, 2], dtype=torch.int32)
    enc = model.encode(src, lengths)
    assert enc.memory.shape == (3, 4, 20)
    assert enc.mask.sum(1).tolist() == [4, 1, 2]


@pytest.mark.parametrize("decoder", DECODERS)
def test_decoders_report_bad_encoder_inputs(decoder):
    src, _ = _batch()
    with pytest.raises(ValueError, match=r"src_lengths must lie in \[1, 5\]"):
        DECODERS[decoder](_model(), src, torch.tensor([5, 7]))
    with pytest.raises(ValueError, match="src_lengths must be 1-D"):
        DECODERS[decoder](_model(), src, torch.tensor([5]))


# -- decoders ----------------------------------------------------------------------------------

@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("max_len", [0, -1])
def test_decoders_reject_non_positive_max_len(decoder, max_len):
    src, lengths = _batch()
    with pytest.raises(ValueError, match=rf"max_len must be at least 1, got {max_len}"):
        DECODERS[decoder](_model(), src, lengths, max_len=max_len)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("max_len", [2.0, True, "3"])
def test_decoders_reject_non_int_max_len(decoder, max_len):
    src, lengths = _batch()
    with pytest.raises(TypeError, match="max_len must be a positive int"):
        DECODERS[decoder](_model(), src, lengths, max_len=max_len)


@pytest.mark.parametrize("decoder", DECODERS)
def test_decoders_honour_small_max_len_and_default(decoder):
    src, lengths = _batch()
    model = _model()
    for max_len in (1, np.int64(2), 3):
        out = DECODERS[decoder](model, src, lengths, max_len=max_len)
        assert len(out.tokens) == 2
        assert all(len(seq) <= int(max_len) for seq in out.tokens)
    # None is the default (2 * longest source + 5), the same as passing it explicitly
    default = DECODERS[decoder](model, src, lengths, max_len=None)
    explicit = DECODERS[decoder](model, src, lengths, max_len=2 * 5 + 5)
    assert default.tokens == explicit.tokens


@pytest.mark.parametrize("beam", [0, -2])
def test_beam_search_rejects_non_positive_beam(beam):
    src, lengths = _batch()
    with pytest.raises(ValueError, match=rf"beam must be at least 1, got {beam}"):
        beam_search(_model(), src, lengths, beam=beam)


@pytest.mark.parametrize("beam", [2.0, None, True])
def test_beam_search_rejects_non_int_beam(beam):
    src, lengths = _batch()
    with pytest.raises(TypeError, match="beam must be a positive int"):
        beam_search(_model(), src, lengths, beam=beam)


@pytest.mark.parametrize("cell,attention", [("gru", "luong"), ("lstm", "bahdanau")])
@pytest.mark.parametrize("max_len", [None, 1, 4])
def test_beam_one_equals_greedy_with_max_len(cell, attention, max_len):
    """beam=1 is greedy decoding, also when max_len cuts the hypotheses short."""
    src, lengths = _batch(B=4, S=6)
    model = _model(cell, attention)
    greedy = greedy_decode(model, src, lengths, max_len=max_len)
    beam = beam_search(model, src, lengths, beam=1, max_len=max_len)
    assert beam.tokens == greedy.tokens
    assert beam.scores == pytest.approx(greedy.scores, abs=1e-5)
