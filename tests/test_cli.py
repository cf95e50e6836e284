"""`fusedrnn train|predict TASK`: registration and a tiny forecasting run end to end."""

import argparse
import importlib.util
import json
import sys
import types

import pytest
import torch

from fusedrnn import cli
from fusedrnn.training import load_checkpoint

TINY = ["--epochs", "1", "--hidden", "8", "--window", "14", "--batch-size", "128", "--no-progress",
        "--threads", "1"]


def _subparsers(parser):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _subcommands(parser, *path):
    for name in path:
        parser = _subparsers(parser).choices[name]
    return set(_subparsers(parser).choices)


def test_task_commands_are_registered():
    parser = cli.build_parser()
    assert {"bench", "demo", "train", "predict"} <= _subcommands(parser)
    assert _subcommands(parser, "train") == {"forecast", "g2p", "sketch", "video", "music"}
    assert _subcommands(parser, "predict") == {"forecast", "g2p", "music"}  # the classifiers: none


def test_missing_and_broken_tasks_do_not_break_the_cli(monkeypatch, capsys):
    broken = types.ModuleType("fusedrnn.tasks._broken_for_test")
    broken.__spec__ = importlib.util.spec_from_loader(broken.__name__, loader=None)
    monkeypatch.setitem(sys.modules, broken.__name__, broken)  # found, but has no train()
    monkeypatch.setattr(cli, "TASKS", {"forecast": "f", "_no_such_task": "x", "_broken_for_test": "b"})
    parser = cli.build_parser()
    assert _subcommands(parser, "train") == {"forecast", "_broken_for_test"}
    args = parser.parse_args(["train", "_broken_for_test"])
    assert args.func(args) == 1
    assert "not available" in capsys.readouterr().err


def test_train_resume_and_predict_forecast(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "forecast", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "valid model" in printed and "test naive 7-day" in printed
    for name in ("best.pt", "last.pt", "metrics.jsonl", "metrics.csv", "results.json", "curves.png",
                 "forecast_valid.png"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert results["valid"]["naive_mae_mean"] == pytest.approx(64815.36, abs=0.01)
    assert results["test"]["naive_mae_mean"] == pytest.approx(62948.58, abs=0.01)
    assert len(results["valid"]["mae"]) == 7 and results["valid"]["windows"] == 157
    assert 0 < results["valid"]["mae_mean"] < 300_000

    # resume: one more epoch continues from epoch 2 on the same weights
    first = load_checkpoint(out / "last.pt")
    assert first["epoch"] == 1 and first["config"]["hidden"] == 8
    tiny2 = [*TINY]
    tiny2[1] = "2"
    assert cli.main(["train", "forecast", *tiny2, "--out", str(out), "--resume"]) == 0
    capsys.readouterr()
    second = load_checkpoint(out / "last.pt")
    assert second["epoch"] == 2 and [r["epoch"] for r in second["history"]] == [1, 2]
    assert second["history"][0] == first["history"][0]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2

    # predict after the validation split: 7 dated forecasts, shown with the actual values
    assert cli.main(["predict", "forecast", "--checkpoint", str(out / "best.pt"), "--after", "valid"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.strip().startswith("2019-06")]
    assert [r[0] for r in rows] == [f"2019-06-0{d}" for d in range(1, 8)]
    assert all(len(r) == 4 and float(r[2].replace(",", "")) > 0 for r in rows)
    assert rows[0][3] == "379,044"  # the actual boardings on 2019-06-01

    # the same checkpoint on the other backend gives the same forecast
    assert cli.main(["predict", "forecast", "--checkpoint", str(out / "best.pt"), "--after", "valid",
                     "--backend", "torch"]) == 0
    torch_rows = [line.split() for line in capsys.readouterr().out.splitlines()
                  if line.strip().startswith("2019-06")]
    for a, b in zip(rows, torch_rows, strict=True):
        assert abs(float(a[2].replace(",", "")) - float(b[2].replace(",", ""))) <= 2

    # after the end of the data: dates past the CSV, no actual values
    assert cli.main(["predict", "forecast", "--checkpoint", str(out / "best.pt")]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()[:4] == "2021"]
    assert [r[0] for r in rows] == [f"2021-12-0{d}" for d in range(1, 8)] and len(rows[0]) == 3


def test_train_forecast_models_on_the_torch_backend(tmp_path, capsys):
    for model in ("conv", "wavenet"):
        out = tmp_path / model
        args = ["train", "forecast", *TINY, "--out", str(out), "--model", model, "--backend", "torch",
                "--channels", "4", "--conv-channels", "4"]
        assert cli.main(args) == 0
        assert load_checkpoint(out / "best.pt")["config"]["model"] == model
    capsys.readouterr()


def test_predict_without_checkpoint(tmp_path, capsys):
    assert cli.main(["predict", "forecast", "--checkpoint", str(tmp_path / "none.pt")]) == 1
    assert "no checkpoint" in capsys.readouterr().out


def test_lnlstm_error_is_clear(tmp_path, capsys):
    import fusedrnn

    if hasattr(fusedrnn, "LayerNormLSTM"):
        pytest.skip("this build has LayerNormLSTM")
    assert cli.main(["train", "forecast", *TINY, "--out", str(tmp_path), "--cell", "lnlstm"]) == 2
    assert "LayerNormLSTM is not available in this build" in capsys.readouterr().out


@pytest.mark.skipif(importlib.util.find_spec("fusedrnn.tasks.g2p") is None, reason="no g2p task")
@pytest.mark.parametrize("content", [None, b"HELLO  HH AH0 L OW1\nbad line, no phones\n", b"\x1f\x8b\x08"],
                         ids=["missing", "malformed", "truncated-gzip"])
def test_g2p_bad_data_file_is_a_usage_error_without_traceback(tmp_path, capsys, content):
    path = tmp_path / ("d.dict.gz" if content == b"\x1f\x8b\x08" else "d.dict")
    if content is not None:
        path.write_bytes(content)
    threads = torch.get_num_threads()
    try:
        code = cli.main(["train", "g2p", "--data", str(path), "--out", str(tmp_path / "run"), "--epochs",
                         "1", "--no-progress", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)  # train sets the process's threads, as a command may
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("fusedrnn train g2p: ") and str(path) in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing was started


def test_ctrl_c_prints_where_to_resume(tmp_path, monkeypatch, capsys):
    from fusedrnn.tasks import forecast

    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(forecast, "train", interrupted)
    assert cli.main(["train", "forecast", "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert err.startswith("fusedrnn train forecast: interrupted") and "--resume continues" in err
