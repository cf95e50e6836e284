"""pytest-benchmark on a GPU: fusedrnn's CUDA kernels against torch.nn (cuDNN). Skipped without CUDA.

    pytest benchmarks/test_bench_cuda.py --benchmark-group-by=group --benchmark-columns=median,iqr,rounds

LSTM and GRU on the shapes (B, T, I, H) of the speed issue, float32 and bfloat16, `infer` (forward
under torch.no_grad) and `train` (forward, output.sum().backward()). Each step ends with
torch.cuda.synchronize(), so the time is the GPU's, not the launch queue's. The fused side checks
once, before timing, that its forward matches cuDNN's.
"""

import functools

import pytest
import torch

import fusedrnn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

SHAPES = ((1, 1000, 32, 32), (16, 200, 32, 64), (32, 100, 64, 128), (64, 50, 256, 256),
          (128, 25, 512, 512))
TOL = {torch.float32: 1e-4, torch.bfloat16: 5e-2}


@functools.lru_cache(maxsize=1)  # the torch and fused tests of a case run one after the other
def _pair(kind: str, shape: tuple[int, int, int, int], dtype: torch.dtype):
    B, T, I, H = shape
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(I, H).cuda().to(dtype)
    fused = getattr(fusedrnn, kind).from_torch(ref)
    x = torch.randn(T, B, I, device="cuda", dtype=dtype)
    with torch.no_grad():
        diff = (ref(x)[0].float() - fused(x)[0].float()).abs().max().item()
    return ref, fused, x, diff


PARAMS = [pytest.param(kind, shape, dtype, mode, lib,
                       id=f"{kind}-{'x'.join(map(str, shape))}-{str(dtype)[6:]}-{mode}-{lib}")
          for kind in ("LSTM", "GRU") for shape in SHAPES for dtype in (torch.float32, torch.bfloat16)
          for mode in ("infer", "train") for lib in ("cudnn", "fused")]


@pytest.mark.parametrize(("kind", "shape", "dtype", "mode", "lib"), PARAMS)
def test_cuda_rnn(benchmark, kind, shape, dtype, mode, lib):
    ref, fused, x, diff = _pair(kind, shape, dtype)
    if lib == "fused":
        assert diff <= TOL[dtype], f"fused output differs from cuDNN by {diff}"
    module = ref if lib == "cudnn" else fused

    def step():
        if mode == "infer":
            with torch.no_grad():
                module(x)
        else:
            module(x)[0].float().sum().backward()
        torch.cuda.synchronize()

    def reset():
        for p in module.parameters():
            p.grad = None

    benchmark.group = f"{kind} {mode} {shape} {str(dtype)[6:]} on {torch.cuda.get_device_name()}"
    benchmark.pedantic(step, setup=reset, rounds=20, warmup_rounds=2)
