"""pytest-benchmark suite: fusedrnn against torch.nn on the cases of `fusedrnn bench`.

Run (from the checkout; the project's testpaths hold only tests/, so name the folder):

    pytest benchmarks/ --benchmark-group-by=group --benchmark-columns=median,iqr,rounds

Every case is one benchmark group holding two tests, `...-torch` and `...-fused`, so each pair
is printed side by side. Select cases with -k (e.g. `-k "LSTM and train"`), set threads with
`--torch-threads N`, and compare runs with `--benchmark-autosave` / `--benchmark-compare`.

Cases (B, T, I, H): LSTM, GRU and RNN (tanh) on (1,1000,32,32), (16,200,32,64),
(32,100,64,128), (64,50,256,256) and (128,25,512,512); a packed batch of 64 sequences with
lengths uniform in [T/4, T]; a 2-layer bidirectional stack; LSTMCell and GRUCell stepped 100
times from a Python loop. Each in two modes: `infer` (forward under torch.no_grad) and `train`
(forward, output.sum().backward(); grads are zeroed in the untimed setup of each round).

There are no assertions about timing. The fused tests check once, before timing, that the
fused forward matches torch.nn's.
"""

import functools

import pytest

from fusedrnn.bench import MISMATCH_TOL, Case, Workload, all_cases, prepare

TARGET_S = 2.0  # rough time per benchmark, assuming ~20 GFLOP/s; rounds stay in [5, 50]


@functools.lru_cache(maxsize=1)  # the torch and fused tests of a case run one after the other
def _workload(case: Case) -> Workload:
    return prepare(case)


def _rounds(work: Workload) -> int:
    return int(min(50, max(5, TARGET_S * 20e9 / work.flops)))


PARAMS = [pytest.param(case, lib, id=f"{case.slug}-{lib}")
          for case in all_cases() for lib in ("torch", "fused")]


@pytest.mark.parametrize(("case", "lib"), PARAMS)
def test_rnn(benchmark, case: Case, lib: str):
    work = _workload(case)
    if lib == "fused":
        assert work.max_abs_diff <= MISMATCH_TOL, f"fused output differs: {work.max_abs_diff}"
    step = work.torch_step if lib == "torch" else work.fused_step
    benchmark.group = case.name
    benchmark.extra_info.update(case=case.name, lib=lib, gflop=work.flops / 1e9)
    benchmark.pedantic(step.call, setup=step.reset, rounds=_rounds(work), warmup_rounds=1)
