"""pytest-benchmark: a training step of the task models on the fused layers against the same
models on torch.nn (benchmarks/model_speed.py's configurations).

    pytest benchmarks/test_bench_models.py --benchmark-group-by=group

Each group holds `torch` and `fused` for one model: the forecaster (GRU 64, batch 32 × 56 days),
the sketch classifier (Conv1D front and a bidirectional LSTM, 64 padded sketches), the video
classifier (a Conv2d encoder and an LSTM, 32 videos of 12 frames) and the music model (an LSTM
over 16 chorales, packed). One round is one step: forward, loss, backward, clipping, Adam, on
batches cycled in the same order on both sides, which start from the same weights. No timing is
asserted.
"""

import functools

import pytest
from model_speed import (  # benchmarks/ is on sys.path (rootdir)
    _forecast_side,
    _music_batches,
    _music_side,
    _sketch_batches,
    _sketch_side,
    _video_batches,
    _video_side,
)

MODELS = {
    "forecast": (lambda: None, lambda backend, _: _forecast_side(backend), 30),
    "sketch": (lambda: _sketch_batches(4), _sketch_side, 20),
    "video": (lambda: _video_batches(2), _video_side, 10),
    "music": (_music_batches, _music_side, 5),
}


@functools.lru_cache(maxsize=1)  # a model's torch and fused tests run one after the other
def _sides(model: str):
    make_batches, make_side, _ = MODELS[model]
    batches = make_batches()
    sides = {backend: make_side(backend, batches) for backend in ("torch", "fused")}
    sides["fused"][0].load_state_dict(sides["torch"][0].state_dict())  # same names and shapes
    return sides


@pytest.mark.parametrize(("model", "side"), [pytest.param(m, s, id=f"{m}-{s}")
                                             for m in MODELS for s in ("torch", "fused")])
def test_model_training_step(benchmark, model, side):
    sides = _sides(model)
    _, step = sides[side]
    benchmark.group = f"model-{model}"
    counter = iter(range(10**9))
    benchmark.pedantic(lambda: step(next(counter)), rounds=MODELS[model][2], warmup_rounds=1)
