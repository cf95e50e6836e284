"""benchmarks/bench_table.py: the README's speed table from one or two `fusedrnn bench --json`
runs, with the speed issue's targets judged on every run given."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _row(case, kind, mode, shape, ratio, noisy=False):
    B, T, I, H = shape
    return {"case": case, "kind": kind, "mode": mode, "variant": "", "batch": B, "seq": T,
            "input_size": I, "hidden": H, "torch_ms": 2.0 * ratio, "fused_ms": 2.0,
            "ratio": ratio, "fused_gflops": 100.0, "gemm_pct": 50.0, "noisy": noisy}


def _table(tmp_path, first, second=None):
    paths = []
    for name, rows in (("a.json", first), ("b.json", second)):
        if rows is None:
            continue
        path = tmp_path / name
        path.write_text(json.dumps({"results": rows}))
        paths.append(str(path))
    args = [sys.executable, os.path.join(ROOT, "benchmarks", "bench_table.py"), paths[0]]
    if len(paths) == 2:
        args += ["--also", paths[1]]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.startswith("| LSTM")]


def test_one_run_marks_missed_targets(tmp_path):
    rows = [_row("LSTM infer B=16", "LSTM", "infer", (16, 200, 32, 64), 1.2),
            _row("LSTM train B=16", "LSTM", "train", (16, 200, 32, 64), 1.7, noisy=True)]
    infer, train = _table(tmp_path, rows)
    assert "| 1.20× | ≥ 1.5× (missed) |" in infer
    assert train.startswith("| LSTM train B=16 ! |") and "| 1.70× | ≥ 1.6× |" in train


def test_second_run_adds_a_column_and_judges_both(tmp_path):
    shape = (16, 200, 32, 64)
    first = [_row("LSTM infer B=16", "LSTM", "infer", shape, 1.6),
             _row("LSTM train B=16", "LSTM", "train", shape, 1.2)]
    second = [_row("LSTM infer B=16", "LSTM", "infer", shape, 1.4, noisy=True),
              _row("LSTM train B=16", "LSTM", "train", shape, 1.3)]
    infer, train = _table(tmp_path, first, second)
    assert "| 1.60× | 1.40× ! | ≥ 1.5× (missed in 1 of 2) |" in infer
    assert "| 1.20× | 1.30× | ≥ 1.6× (missed) |" in train
