"""The Conv1D cases of `fusedrnn bench` run, check their results and report, on tiny shapes."""

import json

import pytest

from fusedrnn import bench
from fusedrnn.bench import Budget, ConvCase

TINY = Budget(warmup=1, seconds=0.0, min_reps=2, max_reps=2)
CASES = [
    ConvCase("Conv1d", "infer", 2, 40, 3, 4, 3, 1),
    ConvCase("Conv1d", "train", 2, 40, 3, 4, 4, 1),  # even K: 'same' pads one more on the right
    ConvCase("Conv1d", "train", 3, 41, 1, 5, 5, 2),
    ConvCase("ConvWaveNet", "train", 2, 50, 4, 4, 2, layers=8),
    ConvCase("Conv+GRU", "infer", 3, 20, 4, 4, 3, 2, hidden=5),
    ConvCase("Conv+GRU", "train", 3, 20, 4, 4, 3, 2, hidden=5),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.slug)
def test_case_measures_and_agrees(case):
    result = bench.measure(case, TINY, cpus=1)
    assert not result.mismatch, result
    assert result.torch_ms > 0 and result.fused_ms > 0 and result.ratio > 0
    assert result.group == case.group
    if case.mode == "train":
        assert result.max_grad_diff is not None and result.max_grad_diff_f64 is not None
    assert case.name in bench.format_row(result)


def test_out_steps_match_torch():
    for case in CASES:
        if case.kind == "ConvWaveNet":
            continue
        work = bench.prepare(case)
        assert work.gemm_shape[0] == case.batch * case.out_steps


def test_a_wrong_kernel_is_flagged(monkeypatch):
    case = ConvCase("Conv1d", "train", 2, 30, 2, 3, 3, 1)
    real = bench.conv_modules

    def broken(c):
        ref, fused = real(c)
        fused.weight.data[0, 0, 0] += 0.5  # the fused module no longer computes the same conv
        return ref, fused

    monkeypatch.setattr(bench, "conv_modules", broken)
    assert bench.measure(case, TINY, cpus=1).mismatch


def test_selection_and_summary():
    conv = bench.select_cases(False, ["conv"])
    assert conv == bench.conv_cases()
    grid = [c for c in conv if c.kind == "Conv1d"]
    assert len(grid) == 2 * 48 and len({(c.in_channels, c.out_channels, c.kernel, c.stride)
                                        for c in grid}) == 48
    assert {c.kind for c in conv} == {"Conv1d", "ConvWaveNet", "Conv+GRU"}
    assert all(c in conv for c in bench.select_cases(True, ["conv"]))
    assert not any(isinstance(c, ConvCase) for c in bench.select_cases(False, ["LSTM"]))
    results = [bench.measure(c, TINY, cpus=1) for c in CASES[:3]]
    lines = bench.summarize(results)
    assert lines[0].startswith("Conv1d grid infer") and "target" in lines[0]
    assert lines[1].startswith("Conv1d grid train")


def test_run_lists_and_writes_json(tmp_path, monkeypatch, capsys):
    assert bench.main(["--filter", "conv", "--list"]) == 0
    assert "ConvWaveNet train" in capsys.readouterr().out
    monkeypatch.setattr(bench, "conv_cases", lambda: CASES[:2])
    monkeypatch.setattr(bench, "all_cases", lambda: [])
    monkeypatch.setattr(bench, "FULL", TINY)
    out = tmp_path / "conv.json"
    assert bench.main(["--filter", "conv", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["group"] for r in data["results"]] == ["Conv1d grid", "Conv1d grid"]
    assert data["environment"]["references"]["mm_1024_gflops"] > 0
    assert "Conv1d grid train" in capsys.readouterr().out
