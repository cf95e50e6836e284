"""Nothing a user saved is lost and bad settings stop before training: a fresh run moves an
earlier run's files aside, --resume refuses another run's checkpoint, partial writes are cleaned
up or tolerated, and the task commands refuse bad numbers with a usage error."""

import json
import os
import stat

import pytest
import torch
from torch import nn

from fusedrnn import cli
from fusedrnn.training import MetricsLog, ResumeMismatch, fit, save_checkpoint

from .test_g2p import _train_args
from .test_training import _data

FORECAST = ["train", "forecast", "--epochs", "1", "--hidden", "8", "--window", "14",
            "--batch-size", "128", "--no-progress", "--threads", "1"]


def _fit(out, epochs=1, resume=False, config=None, clip_norm=1.0, run_files=()):
    x, y = _data()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(x.shape[1] * x.shape[2], 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return fit(model, opt, train_batches=lambda: [(x, y)],
               loss_fn=lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]),
               evaluate=lambda m: {"mse": float(nn.functional.mse_loss(m(x), y))}, monitor="mse",
               epochs=epochs, out_dir=out, resume=resume, progress=False,
               config=config if config is not None else {"hidden": 8}, clip_norm=clip_norm,
               run_files=run_files)


def test_a_fresh_run_moves_the_earlier_one_aside(tmp_path, capsys):
    out = tmp_path / "run"
    _fit(out, epochs=2, run_files=("results.json",))
    (out / "results.json").write_text('{"mine": 1}')
    (out / "notes.txt").write_text("not a run file")
    before = {name: (out / name).read_bytes() for name in
              ("last.pt", "best.pt", "metrics.jsonl", "metrics.csv", "results.json")}
    _fit(out, epochs=1, run_files=("results.json",))
    assert "held an earlier run" in capsys.readouterr().out
    (earlier,) = (out / "earlier").iterdir()
    assert {name: (earlier / name).read_bytes() for name in before} == before
    assert (out / "notes.txt").read_text() == "not a run file"  # only a run's own files move
    assert not (out / "results.json").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # the new run's epoch


def test_a_run_that_fails_at_once_loses_nothing(tmp_path):
    out = tmp_path / "run"
    _fit(out, epochs=1)
    saved = (out / "best.pt").read_bytes()
    with pytest.raises(ValueError, match="clip_norm must be positive"):
        _fit(out, clip_norm=-1.0)  # a negative norm would flip every gradient
    assert (out / "best.pt").read_bytes() == saved


def test_resume_refuses_a_run_with_other_settings(tmp_path):
    out = tmp_path / "run"
    _fit(out, epochs=1, config={"hidden": 8, "lr": 0.1, "epochs": 1})
    with pytest.raises(ResumeMismatch, match=r"lr: 0\.1 then, 0\.2 now"):
        _fit(out, epochs=2, resume=True, config={"hidden": 8, "lr": 0.2, "epochs": 2})
    result = _fit(out, epochs=2, resume=True, config={"hidden": 8, "lr": 0.1, "epochs": 2})
    assert [row["epoch"] for row in result.history] == [1, 2]  # more epochs: the same run


def test_resume_refuses_another_clip_norm_and_allows_older_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    _fit(out, epochs=1, resume=True, clip_norm=1.0)  # nothing to resume yet: a new run, said so
    assert "nothing to resume" in capsys.readouterr().out
    with pytest.raises(ResumeMismatch, match=r"clip_norm: 1\.0 then, 0\.5 now"):
        _fit(out, epochs=2, resume=True, clip_norm=0.5)  # clipping changes the training
    # a checkpoint written before a setting was recorded resumes: that key is not compared
    state = torch.load(out / "last.pt", weights_only=False)
    del state["config"]["clip_norm"]
    save_checkpoint(out / "last.pt", state)
    result = _fit(out, epochs=2, resume=True, clip_norm=0.5)
    assert [row["epoch"] for row in result.history] == [1, 2]


def test_partial_writes_are_removed_or_skipped(tmp_path):
    out = tmp_path / "run"
    _fit(out, epochs=1)
    leftover = out / ".last.pt.abc123.tmp"  # what a writer killed mid-save leaves
    leftover.write_bytes(b"\0" * 100)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "mse": 0.')  # an append cut off by a kill
    assert [r["epoch"] for r in MetricsLog(out).rows] == [1]
    result = _fit(out, epochs=2, resume=True)
    assert not leftover.exists()
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] \
        == [r["epoch"] for r in result.history] == [1, 2]
    (out / "metrics.jsonl").write_text('not json\n{"epoch": 1}\n')
    with pytest.raises(ValueError, match="metrics.jsonl, line 1: not a JSON metrics row"):
        MetricsLog(out)


def test_checkpoints_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "c.pt", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.pt").stat().st_mode) == 0o644


@pytest.mark.parametrize("args,option", [
    (["--batch-size", "0"], "--batch-size"), (["--clip", "-1"], "--clip"),
    (["--epochs", "0"], "--epochs"), (["--window", "0"], "--window"),
    (["--patience", "-1"], "--patience"), (["--threads", "-2"], "--threads"),
    (["--lr-decay", "-1"], "--lr-decay"), (["--lr", "nan"], "--lr"), (["--dropout", "1"], "--dropout"),
])
def test_forecast_refuses_bad_numbers_before_touching_out(tmp_path, capsys, args, option):
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.pt").write_text("an earlier run")
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*FORECAST, "--out", str(out), *args])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["best.pt"]


def test_forecast_refuses_a_window_too_short_for_the_model(tmp_path, capsys):
    args = [*FORECAST, "--out", str(tmp_path / "run"), "--model", "conv", "--window", "3"]
    assert cli.main(args) == 2
    assert "needs at least" in capsys.readouterr().out


def test_forecast_resume_with_other_settings_and_foreign_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*FORECAST, "--out", str(out)]) == 0
    assert cli.main([*FORECAST, "--out", str(out), "--resume", "--lr", "0.1"]) == 2
    assert "cannot resume" in capsys.readouterr().out
    save_checkpoint(tmp_path / "g2p.pt", {"config": {"task": "g2p"}, "model": {}, "epoch": 1})
    assert cli.main(["predict", "forecast", "--checkpoint", str(tmp_path / "g2p.pt")]) == 1
    assert "not a forecast checkpoint" in capsys.readouterr().out


@pytest.mark.parametrize("args,option", [(["--beam", "0"], "--beam"), (["--clip-norm", "-1"], "--clip-norm"),
                                         (["--threads", "abc"], "--threads")])
def test_g2p_refuses_bad_numbers(tmp_path, capsys, args, option):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "g2p", "--out", str(tmp_path / "run"), *args])
    assert exit_info.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["predict", "g2p", "hello", "--beam", "0"])


def test_g2p_budget_spent_before_the_first_epoch_reports_nothing_old(tmp_path, capsys):
    from fusedrnn.tasks import g2p

    threads = torch.get_num_threads()
    try:
        assert g2p.train(_train_args(tmp_path)) == 0
        earlier = (tmp_path / "run" / "results.json").read_text()
        assert g2p.train(_train_args(tmp_path, "--time-budget", "1e-9", "--seed", "5")) == 1
    finally:
        torch.set_num_threads(threads)
    assert "before the first epoch finished" in capsys.readouterr().out
    assert not (tmp_path / "run" / "results.json").exists()
    (kept,) = (tmp_path / "run" / "earlier").iterdir()
    assert (kept / "results.json").read_text() == earlier and (kept / "best.pt").is_file()


@pytest.mark.parametrize("command", [["train", "forecast"], ["predict", "forecast"], ["train", "g2p"],
                                     ["predict", "g2p", "hello"]])
def test_a_device_this_machine_lacks_is_a_usage_error(command, capsys):
    bad = "cuda:99" if torch.cuda.is_available() else "cuda"
    for device, expected in ((bad, "CUDA device(s)"), ("cdua", "expected 'auto', 'cpu'")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*command, "--device", device])
        assert exit_info.value.code == 2
        assert expected in capsys.readouterr().err


def test_g2p_with_too_few_words_stops_before_training(tmp_path, capsys):
    from fusedrnn.tasks import g2p

    threads = torch.get_num_threads()
    try:
        assert g2p.train(_train_args(tmp_path, "--max-words", "10")) == 2
    finally:
        torch.set_num_threads(threads)
    assert "no valid words in the split" in capsys.readouterr().out
    assert not (tmp_path / "run" / "last.pt").exists()
