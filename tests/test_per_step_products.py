"""The CPU driver's per-step products (csrc/cpu/small_gemm.h, gemm.cpp).

The LSTM, GRU and Elman forward's stacked product (csrc/cpu/recurrence.h stacked_input_applies):
where threads split the batch's rows, each step multiplies [x_t | h_{t-1}] by [W_ih | W_hh]ᵀ in
one product, instead of a GEMM projecting every step's input first. FUSEDRNN_STACKED_INPUT=1 forces it at any
batch, =0 turns it off (read per call). Outputs, states and every gradient must match torch.nn
either way.

The fixed operands in 64-column panels (small_gemm_panels): from three rows per product on, with
a last panel narrower than 64 and padding columns past the weight's width; panels of one to three
vectors split each thread's rows into even blocks of up to 8 or 12.
"""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from . import test_regularizers
from .test_modules import check_parity, check_parity_scaled, initial_state, make_pair


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("forced", ["1", "0"], ids=["stacked", "projected"])
@pytest.mark.parametrize("batch", [1, 3, 20])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_parity_either_way(kind, forced, batch, packed, monkeypatch):
    # odd widths (k = 7 + 6) and two bidirectional layers: the second layer's x side is 12 wide.
    # The GRU sums r and z only: its n gate's x side goes to the workspace row, its h side to
    # the recurrent rows, from products of their own. The Elman cell's workspace is y itself.
    monkeypatch.setenv("FUSEDRNN_STACKED_INPUT", forced)
    torch.manual_seed(batch)
    ref, fused = make_pair(kind, 7, 6, num_layers=2, bidirectional=True)
    x = torch.randn(30, batch, 7)
    if packed:
        x = pack_padded_sequence(x, torch.randint(1, 31, (batch,)), enforce_sorted=False)
    check_parity(ref, fused, x, initial_state(kind, ref, batch, torch.float32))


@pytest.mark.parametrize("batch", [2, 20])
def test_projected_lstm_parity_with_the_stacked_product(batch, monkeypatch):
    # h_{t-1} is P = 4 wide: the product's second segment is k = 4, not H
    monkeypatch.setenv("FUSEDRNN_STACKED_INPUT", "1")
    torch.manual_seed(1)
    ref, fused = make_pair("lstm", 5, 9, proj_size=4, bidirectional=True)
    x = torch.randn(25, batch, 5)
    check_parity(ref, fused, x, initial_state("lstm", ref, batch, torch.float32))


def test_float64_keeps_the_projection_and_stays_tight(monkeypatch):
    # the stacked product is float32 only (small_gemm); forced on, float64 runs as before
    monkeypatch.setenv("FUSEDRNN_STACKED_INPUT", "1")
    ref, fused = make_pair("lstm", 5, 6, dtype=torch.float64, num_layers=2)
    x = torch.randn(20, 20, 5, dtype=torch.float64)
    check_parity(ref, fused, x, initial_state("lstm", ref, 20, torch.float64), dtype=torch.float64)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_regularizer_masks_match_the_reference_with_the_stacked_product(kind, packed,
                                                                        monkeypatch):
    # recurrent dropout multiplies h_{t-1} before the product: the second segment is then the
    # masked copy; zoneout blends the cell's outputs after it
    monkeypatch.setenv("FUSEDRNN_STACKED_INPUT", "1")
    test_regularizers.test_explicit_masks_match_reference(kind, packed, torch.float32, 24, 5,
                                                          None, True, monkeypatch)


def _outputs_and_grads(module, x):
    module.zero_grad()
    y, state = module(x)
    states = state if isinstance(state, tuple) else (state,)
    (y.sum() + sum(s.sum() for s in states)).backward()
    return [y, *states] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("batch,default_is", [(20, "1"), (2, "0")])
def test_default_choice(kind, batch, default_is, monkeypatch):
    # with two threads, 20 rows are split between them (the stacked product); 2 rows run on one
    # thread while the other projects the next chunk's inputs (the whole-sequence path)
    if torch.get_num_threads() < 2:
        pytest.skip("the choice depends on two threads")
    torch.manual_seed(3)
    _, fused = make_pair(kind, 7, 24)
    x = torch.randn(40, batch, 7)
    monkeypatch.delenv("FUSEDRNN_STACKED_INPUT", raising=False)
    default = _outputs_and_grads(fused, x)
    monkeypatch.setenv("FUSEDRNN_STACKED_INPUT", default_is)
    forced = _outputs_and_grads(fused, x)
    for a, b in zip(default, forced, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("batch", [3, 20])
def test_parity_where_the_last_panel_is_ragged(kind, batch):
    # H = 37: the LSTM's 148 gate columns are panels of 64, 64 and 32 (20 of them real), the
    # GRU's 111 are 64 and 48, the backward's 37 columns of W_hh one panel of 48; the stacked
    # product's k is 70 + 37
    torch.manual_seed(4)
    ref, fused = make_pair(kind, 70, 37, num_layers=2)
    check_parity_scaled(ref, fused, torch.randn(12, batch, 70))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("batch", [1, 3, 8, 13, 20, 33, 50])
@pytest.mark.parametrize("num_threads", [1, 2], indirect=True)
def test_parity_over_row_counts_and_ragged_panels(kind, batch, num_threads, monkeypatch):
    # I = 100, H = 45, the stacked product forced on: k = 145. The LSTM's 180 gate columns are
    # panels of 64, 64 and 52 real columns (4 vectors), the GRU's summed r and z (90) 64 and 26
    # (2 vectors); the backward's product with W_hh has k = G·H (180 for the LSTM) and 45
    # columns, one panel of 3 vectors. Batches of 1 to 50 on one or two threads give each
    # thread 1 to 50 rows: blocks of every row count that the 6-row and the even splits make.
    monkeypatch.setenv("FUSEDRNN_STACKED_INPUT", "1")
    torch.manual_seed(batch)
    ref, fused = make_pair(kind, 100, 45)
    check_parity_scaled(ref, fused, torch.randn(9, batch, 100))


# Where the stacked product does not apply (large weights on Intel, float64), each step adds
# h_{t-1}·W_hhᵀ onto the input side's products in the workspace row for the gates that the cell
# sums (the LSTM's four, the GRU's r and z, the Elman cell's one; the GRU's n goes to rows of its
# own): csrc/cpu/recurrence.h recurrent_product_onto_input_side. FUSEDRNN_ONTO_INPUT_SIDE=0 gives
# the whole product its own rows again; both must match torch.nn.
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("onto", ["1", "0"], ids=["onto-input-side", "own-rows"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_parity_with_the_recurrent_product_onto_the_input_side(kind, onto, packed, monkeypatch):
    # 20 rows: two threads split them (the path is for row-parallel steps only)
    monkeypatch.setenv("FUSEDRNN_STACKED_INPUT", "0")
    monkeypatch.setenv("FUSEDRNN_ONTO_INPUT_SIDE", onto)
    torch.manual_seed(5)
    ref, fused = make_pair(kind, 7, 24, num_layers=2, bidirectional=True)
    x = torch.randn(30, 20, 7)
    if packed:
        x = pack_padded_sequence(x, torch.randint(1, 31, (20,)), enforce_sorted=False)
    check_parity(ref, fused, x, initial_state(kind, ref, 20, torch.float32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_projected_lstm_onto_the_input_side(dtype, monkeypatch):
    # the product's k is P = 4; float64 never takes the stacked product, so it always runs here
    monkeypatch.setenv("FUSEDRNN_STACKED_INPUT", "0")
    torch.manual_seed(6)
    ref, fused = make_pair("lstm", 5, 9, proj_size=4, bidirectional=True, dtype=dtype)
    x = torch.randn(25, 20, 5, dtype=dtype)
    check_parity(ref, fused, x, initial_state("lstm", ref, 20, dtype), dtype=dtype)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_regularizer_masks_match_the_reference_onto_the_input_side(kind, monkeypatch):
    # recurrent dropout multiplies h_{t-1} before the product; zoneout blends after the cell
    monkeypatch.setenv("FUSEDRNN_STACKED_INPUT", "0")
    test_regularizers.test_explicit_masks_match_reference(kind, False, torch.float32, 24, 5,
                                                          None, True, monkeypatch)


@pytest.mark.parametrize("kind", ["lstm", "rnn_tanh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_onto_the_input_side_gives_the_same_bits(kind, dtype, monkeypatch):
    # small_gemm adds C after its sum over k, so (x·W_ihᵀ + h·W_hhᵀ) + biases rounds as the
    # LSTM's and Elman cell's own sum of the two rows did: both ways agree bit for bit (a wrong
    # beta, row or stride would not). The GRU adds each side's bias first when they are apart.
    if torch.get_num_threads() < 2:
        pytest.skip("the path is for row-parallel steps")
    monkeypatch.setenv("FUSEDRNN_STACKED_INPUT", "0")
    torch.manual_seed(7)
    _, fused = make_pair(kind, 7, 24, dtype=dtype)
    x = torch.randn(40, 20, 7, dtype=dtype)
    monkeypatch.setenv("FUSEDRNN_ONTO_INPUT_SIDE", "0")
    own_rows = _outputs_and_grads(fused, x)
    monkeypatch.setenv("FUSEDRNN_ONTO_INPUT_SIDE", "1")
    onto = _outputs_and_grads(fused, x)
    for a, b in zip(own_rows, onto, strict=True):
        assert torch.equal(a, b)
