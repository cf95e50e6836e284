"""Small products run MKL on the calling thread (csrc/cpu/gemm.cpp, kMinThreadedBlasWork).

The kernels set MKL's thread-local thread count to 1 around such a product and must put it back:
otherwise every later MKL call of that thread, torch's own matmuls included, would run on one
thread without any error.
"""

import ctypes
import os

import pytest
import torch

import fusedrnn


def _mkl_max_threads():
    lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
    try:
        return lib.MKL_Get_Max_Threads
    except AttributeError:
        return None


MKL_MAX_THREADS = _mkl_max_threads()
needs_mkl = pytest.mark.skipif(MKL_MAX_THREADS is None, reason="torch is not linked with MKL")


@needs_mkl
@pytest.mark.parametrize("train", [False, True])
def test_small_products_leave_mkls_thread_count_as_it_was(train):
    threads = torch.get_num_threads()
    if threads < 2:
        pytest.skip("needs two threads to tell a serial product from a threaded one")
    assert MKL_MAX_THREADS() == threads
    torch.manual_seed(0)
    # batch 2, H 8 (products of 2·24·4 and 2·24·8 multiply-adds, far below the threshold), in a
    # single-step cell and in a short layer, forward and (train) backward
    cell, layer = fusedrnn.GRUCell(4, 8), fusedrnn.LSTM(4, 8)
    x = torch.randn(2, 4, requires_grad=train)
    with torch.set_grad_enabled(train):
        h = cell(x)
        y, _ = layer(x.unsqueeze(0).expand(3, 2, 4).contiguous())
        if train:
            (h.sum() + y.sum()).backward()
    assert MKL_MAX_THREADS() == threads
