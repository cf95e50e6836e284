"""Bad input: the modules raise what torch.nn raises, and the ops name the argument and the
expected shape, dtype or device."""

import warnings

import pytest
import torch
from torch import nn

import fusedrnn
from fusedrnn import ops
from fusedrnn.nn import _fallback


def _both(kind="lstm", **kwargs):
    torch_cls, fused_cls = {"lstm": (nn.LSTM, fusedrnn.LSTM), "gru": (nn.GRU, fusedrnn.GRU),
                            "rnn": (nn.RNN, fusedrnn.RNN)}[kind]
    ref = torch_cls(5, 6, **kwargs)
    return ref, fused_cls.from_torch(ref)


def _same_error(ref, fused, *args, match):
    with pytest.raises(Exception, match=match) as expected:
        ref(*args)
    with pytest.raises(type(expected.value), match=match):
        fused(*args)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_wrong_rank(kind):
    ref, fused = _both(kind)
    _same_error(ref, fused, torch.randn(2, 3, 4, 5), match="Expected input to be 2D or 3D, got 4D")


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_wrong_feature_size(kind):
    ref, fused = _both(kind)
    _same_error(ref, fused, torch.randn(4, 2, 3), match="input.size\\(-1\\) must be equal to input_size")


def test_hx_wrong_shape():
    ref, fused = _both("gru", num_layers=2)
    _same_error(ref, fused, torch.randn(4, 3, 5), torch.randn(1, 3, 6), match="Expected hidden size")
    ref, fused = _both("lstm")
    h, c = torch.randn(1, 3, 6), torch.randn(1, 2, 6)
    _same_error(ref, fused, torch.randn(4, 3, 5), (h, c), match="Expected hidden\\[1\\] size")


def test_hx_wrong_rank_for_batched_input():
    ref, fused = _both("lstm")
    h = torch.randn(3, 6)
    _same_error(ref, fused, torch.randn(4, 3, 5), (h, h), match="hx and cx should also be 3-D")


def test_dtype_mismatch_between_input_and_weights():
    ref, fused = _both("gru")
    _same_error(ref, fused, torch.randn(4, 3, 5, dtype=torch.float64),
                match=r"input dtype \(torch.float64\) does not match weight dtype")


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_empty_sequence_like_torch(kind):
    ref, fused = _both(kind)
    _same_error(ref, fused, torch.randn(0, 3, 5), match="sequence length to be larger than 0")


# ---- op-level checks, reached by callers of fusedrnn.ops directly ---------------------------


def _lstm_args(T=4, B=3, I=5, H=6):
    return dict(x=torch.randn(T, B, I), h0=torch.zeros(B, H), c0=torch.zeros(B, H),
                w_ih=torch.randn(4 * H, I), w_hh=torch.randn(4 * H, H))


@pytest.mark.parametrize("change,match", [
    ({"x": torch.randn(4, 5)}, r"x must be \[seq_len, batch, input_size=5\], got \[4, 5\]"),
    ({"x": torch.randn(4, 3, 7)}, r"x must be \[seq_len, batch, input_size=5\]"),
    ({"h0": torch.zeros(2, 6)}, r"h0 must have shape \[3, 6\]"),
    ({"c0": torch.zeros(3, 5)}, r"c0 must have shape \[3, 6\]"),
    ({"w_ih": torch.randn(23, 5)}, r"w_ih must be \[4\*hidden_size, input_size\]"),
    ({"w_hh": torch.randn(24, 5)}, r"w_hh must have shape \[24, 6\]"),
    ({"h0": torch.zeros(3, 6, dtype=torch.float64)}, "h0 must have dtype Float like x, got Double"),
    ({"x": torch.randn(4, 3, 5).half(), "h0": torch.zeros(3, 6).half(),
      "c0": torch.zeros(3, 6).half(), "w_ih": torch.randn(24, 5).half(),
      "w_hh": torch.randn(24, 6).half()}, "x must be float32 or float64"),
])
def test_op_argument_errors(change, match):
    args = _lstm_args()
    args.update(change)
    with pytest.raises(RuntimeError, match=match):
        ops.lstm_layer(**args)


@pytest.mark.parametrize("sizes,match", [
    (torch.tensor([3, 4]), "positive and non-increasing"),
    (torch.tensor([3, 3]), "batch_sizes sum to 6 but packed x has 7 rows"),
    (torch.tensor([4, 3], dtype=torch.int32), "1-D int64 CPU tensor"),
])
def test_op_batch_sizes_errors(sizes, match):
    x = torch.randn(7, 5)
    with pytest.raises(RuntimeError, match=match):
        ops.gru_layer(x, torch.zeros(int(sizes[0]), 6), torch.randn(18, 5), torch.randn(18, 6),
                      batch_sizes=sizes)


def test_bias_shape_error():
    with pytest.raises(RuntimeError, match=r"b_hh must have shape \[6\]"):
        ops.rnn_layer(torch.randn(2, 1, 5), torch.zeros(1, 6), torch.randn(6, 5),
                      torch.randn(6, 6), torch.zeros(6), torch.zeros(5))


def test_unsupported_dtype_falls_back_to_torch_with_one_warning():
    _fallback._warned.clear()
    ref, fused = _both("gru")
    ref, fused = ref.to(torch.bfloat16), fused.to(torch.bfloat16)
    x = torch.randn(4, 2, 5, dtype=torch.bfloat16)
    with pytest.warns(UserWarning, match="no fused kernel for torch.bfloat16 on cpu"):
        y, h = fused(x)
    torch.testing.assert_close(y, ref(x)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fused(x)  # warned once only


def test_unsupported_dtype_cell_falls_back():
    _fallback._warned.clear()
    cell = fusedrnn.LSTMCell(5, 6).to(torch.bfloat16)
    x = torch.randn(2, 5, dtype=torch.bfloat16)
    with pytest.warns(UserWarning, match="LSTMCell: no fused kernel"):
        h, c = cell(x)
    torch.testing.assert_close(h, nn.LSTMCell.forward(cell, x)[0])


@pytest.mark.parametrize("module", [
    lambda: fusedrnn.LSTM(4, 8), lambda: fusedrnn.GRU(4, 8, bidirectional=True),
    lambda: fusedrnn.LayerNormLSTM(4, 8), lambda: fusedrnn.LSTMCell(4, 8),
    lambda: fusedrnn.GRUCell(4, 8), lambda: fusedrnn.Conv1d(4, 8, 3, activation="relu"),
], ids=["lstm", "gru-bidir", "ln-lstm", "lstm-cell", "gru-cell", "conv1d"])
@pytest.mark.parametrize("grad", [False, True], ids=["no-grad", "grad"])
def test_forward_mode_ad_is_a_clear_error(module, grad):
    # The ops have no forward-mode formula: a dual input must raise, not return outputs that
    # silently carry no tangent (csrc/autograd_glue.h reject_forward_ad).
    import torch.autograd.forward_ad as fwAD

    m = module()
    m.requires_grad_(grad)
    shape = (2, 4) if isinstance(m, nn.RNNCellBase) else (2, 5, 4)
    x = torch.randn(shape)
    with fwAD.dual_level():
        dual = fwAD.make_dual(x, torch.randn_like(x))
        with pytest.raises(RuntimeError, match="forward-mode AD .* is not supported"):
            m(dual)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("unbatched", [True, False], ids=["unbatched", "batched"])
def test_hx_of_the_wrong_rank_gives_torch_nn_message(kind, unbatched):
    ref, fused = _both(kind)
    x = torch.randn(4, 5) if unbatched else torch.randn(4, 3, 5)
    h = torch.randn(1, 3, 6) if unbatched else torch.randn(3, 6)
    hx = (h, h) if kind == "lstm" else h
    with pytest.raises(RuntimeError) as want:
        ref(x, hx)
    with pytest.raises(RuntimeError) as got:
        fused(x, hx)
    assert str(got.value) == str(want.value)


_STATE = torch.zeros(1, 3, 6)


@pytest.mark.parametrize("hx", [(_STATE,) * 3, _STATE, [_STATE, None]], ids=["three", "tensor", "with-None"])
def test_lstm_hx_must_be_a_pair_of_tensors(hx):
    # torch.nn raises RuntimeError for three states, and IndexError or AttributeError deep inside
    # for the others; fusedrnn says what it expects, with torch.nn's exception type for the first
    _, fused = _both("lstm")
    with pytest.raises(RuntimeError, match=r"LSTM: hx must be None or a pair \(h_0, c_0\) of tensors"):
        fused(torch.randn(4, 3, 5), hx)


def test_from_torch_checks_the_kind_of_module():
    with pytest.raises(TypeError, match="GRU.from_torch expects a torch.nn.GRU, got torch.nn.modules"):
        fusedrnn.GRU.from_torch(nn.LSTM(5, 6))
    with pytest.raises(TypeError, match="LSTMCell.from_torch expects a torch.nn.LSTMCell"):
        fusedrnn.LSTMCell.from_torch(nn.GRUCell(5, 6))
    with pytest.raises(TypeError, match="LayerNormLSTM has no torch.nn equivalent"):
        fusedrnn.LayerNormLSTM.from_torch(nn.LSTM(5, 6))


@pytest.mark.parametrize("module", [fusedrnn.LSTM(5, 6), fusedrnn.GRUCell(5, 6), fusedrnn.LayerNormGRU(5, 6)],
                         ids=["LSTM", "GRUCell", "LayerNormGRU"])
def test_torchscript_is_refused_with_the_reason(module):
    model = nn.Sequential(nn.Linear(5, 5), module)  # also inside a model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch's own, for jit.script
        with pytest.raises(RuntimeError, match="does not support torch.jit.script"):
            torch.jit.script(model)


def test_a_layer_bias_set_to_none_is_refused_as_in_torch_nn():
    ref, fused = _both("lstm", bias=True)
    for m in (ref, fused):
        m.bias_ih_l0 = None
    with pytest.raises(TypeError):
        ref(torch.randn(4, 3, 5))
    with pytest.raises(TypeError, match="LSTM: bias_ih_l0 is None, but the module was built with it"):
        fused(torch.randn(4, 3, 5))
