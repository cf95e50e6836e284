"""The per-step products through MKL's packed GEMM (csrc/cpu/gemm.cpp mkl_packed_applies):
FixedRightOperand packs the recurrent weight (and W_hr, and a LayerNorm cell's per-step W_ih)
with cblas_sgemm_pack and multiplies each step with cblas_sgemm_compute. By default only on
Intel CPUs with weights of at least 1 MB; FUSEDRNN_MKL_PACKED=1 forces it wherever torch's MKL
has the symbols, so that these tests run it on any CPU, at small sizes, with one row and many,
from one thread and several, forward and backward. Every output and gradient must match
torch.nn (or the LayerNorm reference) as on the small_gemm path."""

import pytest
import torch

from .test_layer_norm import _check_module_against_reference, _random_lengths
from .test_modules import check_stack_parity

pytestmark = pytest.mark.skipif(not torch.backends.mkl.is_available(),
                                reason="torch without MKL: no packed GEMM to test")

THREADS = pytest.mark.parametrize("num_threads", [1, 2], indirect=True,
                                  ids=["1-thread", "2-threads"])


@pytest.fixture
def mkl_packed(monkeypatch):
    monkeypatch.setenv("FUSEDRNN_MKL_PACKED", "1")
    # the recurrent weight alone, not stacked with W_ih, so that its product is the packed one
    monkeypatch.setenv("FUSEDRNN_STACKED_INPUT", "0")


# B = 3: one thread's rows, one at a time as packed batches shrink; B = 24: rows split between
# threads; a projection of 5 (W_hr packed too); a GRU, whose backward multiplies 3H columns
CASES = [
    ("lstm", 3, {}),
    ("lstm", 24, {}),
    ("lstm", 24, {"proj_size": 5}),
    ("gru", 24, {}),
    ("rnn_tanh", 24, {"bias": False}),
]


@pytest.mark.parametrize("kind,batch,extra", CASES,
                         ids=[f"{k}-B{b}{'-' + '-'.join(e) if e else ''}" for k, b, e in CASES])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@THREADS
def test_parity_with_torch(kind, batch, extra, packed, num_threads, mkl_packed):
    torch.manual_seed(21)
    check_stack_parity(kind, 13, 20, T=17, B=batch, packed=packed, **extra)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@THREADS
def test_layer_norm_cells_match_the_reference(kind, num_threads, mkl_packed):
    # from batch 8 with I < 256 a LayerNorm cell multiplies each step's inputs itself
    # (input_projection_per_step): that weight is packed too
    torch.manual_seed(22)
    lengths = _random_lengths(3, 12, 9, seed=5)
    _check_module_against_reference(kind, 2, True, True, True, torch.float32, 12, 9, lengths)
