"""pytest-benchmark suite: the fused Conv1D against torch.nn, on the conv cases of `fusedrnn bench`.

Run (from the checkout; the project's testpaths hold only tests/, so name the file):

    pytest benchmarks/test_bench_conv.py --benchmark-group-by=group \
        --benchmark-columns=median,iqr,rounds

Every case is one benchmark group holding two tests, `...-torch` and `...-fused`, so each pair
is printed side by side (`--benchmark-group-by=param:case` groups the same way). Select with -k,
e.g. `-k "Conv1d and train and Ci1"`, `-k WaveNet`, `-k ConvGRU`.

Cases (see `python -m fusedrnn.bench --help`):
  Conv1d       fusedrnn.Conv1d(activation="relu") against permute -> nn.Conv1d -> relu ->
               permute(.contiguous()); B=32, T=1000, C_in in {1, 5, 64}, C_out in {32, 128},
               K in {2, 3, 4, 5}, stride in {1, 2}; padding 'same' (stride 1) or (K-1)//2 on both
               sides (stride 2).
  ConvWaveNet  fusedrnn.WaveNet(32, 32, kernel_size=2, dilations=(1, 2, 4, 8), repeats=2) against
               the same 8-layer causal stack written with nn.Conv1d and F.pad, same weights.
  Conv+GRU     conv (I -> I, K=3, stride 2) + relu + GRU(I, H), time-major, on the RNN shapes,
               fusedrnn.Conv1d + fusedrnn.GRU against the torch.nn sequence.
Each in two modes: `infer` (under torch.no_grad) and `train` (forward, output.sum().backward()
to the input and every parameter; gradients are cleared in the untimed setup of each round).

There are no assertions about timing. The fused tests check once, before timing, that the
outputs agree and (train) that the gradients agree, in float32 and on float64 copies; so
`pytest benchmarks/test_bench_conv.py --benchmark-disable -q` is a correctness pass that runs
each side once.
"""

import functools

import pytest

from fusedrnn.bench import ConvCase, Workload, conv_cases, prepare

TARGET_S = 1.0  # rough time per benchmark, assuming ~20 GFLOP/s; rounds stay in [5, 30]


@functools.lru_cache(maxsize=1)  # the torch and fused tests of a case run one after the other
def _workload(case: ConvCase) -> Workload:
    return prepare(case)


def _rounds(work: Workload) -> int:
    return int(min(30, max(5, TARGET_S * 20e9 / work.flops)))


PARAMS = [pytest.param(case, lib, id=f"{case.slug}-{lib}")
          for case in conv_cases() for lib in ("torch", "fused")]


@pytest.mark.parametrize(("case", "lib"), PARAMS)
def test_conv(benchmark, case: ConvCase, lib: str):
    work = _workload(case)
    if lib == "fused":
        assert not work.mismatch, (
            f"fused differs from torch.nn: output {work.max_abs_diff:.2e}, gradients "
            f"{work.max_grad_diff} (float32, in norm), {work.max_grad_diff_f64} (float64)")
    step = work.torch_step if lib == "torch" else work.fused_step
    benchmark.group = case.name
    benchmark.extra_info.update(case=case.name, lib=lib, gflop=work.flops / 1e9)
    benchmark.pedantic(step.call, setup=step.reset, rounds=_rounds(work), warmup_rounds=1)
