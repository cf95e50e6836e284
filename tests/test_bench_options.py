"""`fusedrnn bench` refuses bad options before measuring, and writes strict, whole JSON."""

import dataclasses
import json

import pytest

from fusedrnn import bench
from fusedrnn.bench import Budget, Case

TINY = Budget(warmup=1, seconds=0.0, min_reps=2, max_reps=2)


@pytest.mark.parametrize("threads", ["0", "-2", "two"])
def test_threads_must_be_positive(threads, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--threads", threads, "--list"])
    assert exit_info.value.code == 2
    assert "--threads" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_an_unwritable_output_fails_before_measuring(option, tmp_path, monkeypatch, capsys):
    measured = []
    monkeypatch.setattr(bench, "measure", lambda *a: measured.append(a))
    missing = tmp_path / "no-such-dir" / "out.file"
    assert bench.main(["--filter", "GRU infer B=16 ", option, str(missing)]) == 2
    err = capsys.readouterr().err
    assert option in err and "does not exist" in err
    assert bench.main(["--filter", "GRU infer B=16 ", option, str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert measured == []


def test_json_is_strict_and_replaces_the_file_whole(tmp_path):
    result = bench.measure(Case("GRU", "infer", 2, 5, 3, 4), TINY, cpus=1)
    broken = dataclasses.replace(result, max_abs_diff=float("nan"), foreign_cpu=float("inf"))
    out = tmp_path / "run.json"
    out.write_text("earlier run")
    bench.write_json(str(out), {"threads": 1}, [result, broken])
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    rows = json.loads(text)["results"]  # strict parsers accept it too
    assert rows[0]["max_abs_diff"] == result.max_abs_diff
    assert rows[1]["max_abs_diff"] is None and rows[1]["foreign_cpu"] is None
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary left behind


def test_tick_rounding_alone_is_not_foreign_use():
    tick = 1 / bench._CLK_TCK
    # a 50 ms window on 2 CPUs where the machine's counter moved 2 ticks more than our own
    before, after = (0.0, 10.0, 5.0), (0.05, 10.0 + 6 * tick, 5.0 + 4 * tick)
    assert bench.foreign_share(before, after, cpus=2) == 0.0
    # a full second where another process held one of the two CPUs
    busy = (1.0, 10.0 + 1.0 + 4 * tick, 5.0 + 4 * tick)
    assert 0.45 < bench.foreign_share(before, busy, cpus=2) < 0.5
