"""pytest-benchmark: LayerNormLSTM / LayerNormGRU training steps against the per-step loop people
write today (nn.Linear + nn.LayerNorm in a Python loop, benchmarks/layer_norm_speed.py), eager
and under torch.compile.

    pytest benchmarks/test_bench_layer_norm.py --benchmark-group-by=group

Each group holds `fused`, `eager` and `compiled` (the loop with a torch.compile'd step) for one
(layer, shape). The fused
side checks once, before timing, that it matches the loop on the same weights.
"""

import functools

import pytest
from layer_norm_speed import SHAPES, make_pair  # benchmarks/ is on sys.path (rootdir)


@functools.lru_cache(maxsize=2)
def _models(kind: str, shape: tuple[int, int, int, int]):
    return make_pair(kind, shape)


PARAMS = [pytest.param(kind, shape, side, id=f"{kind}-{'x'.join(map(str, shape))}-{side}")
          for kind in ("lstm", "gru") for shape in SHAPES for side in ("fused", "eager", "compiled")]


@pytest.mark.parametrize(("kind", "shape", "side"), PARAMS)
def test_layer_norm_train_step(benchmark, kind, shape, side):
    fused, loop, x = _models(kind, shape)
    module = {"fused": fused, "eager": loop, "compiled": loop.compile_cell()}[side]

    def step():
        out = module(x)
        (out[0] if isinstance(out, tuple) else out).sum().backward()

    def reset():
        for p in list(fused.parameters()) + list(loop.parameters()):
            p.grad = None

    step()  # compiles when compiled; warms up otherwise
    benchmark.group = f"LayerNorm{kind.upper()} train {shape}"
    benchmark.pedantic(step, setup=reset, rounds=5, warmup_rounds=1)
