"""fusedrnn.training: seeding, atomic checkpoints, metrics logs, plots and the resumable fit loop."""

import json
import random

import numpy as np
import pytest
import torch
from torch import nn

import fusedrnn
from fusedrnn.training import (
    FitResult,
    MetricsLog,
    fit,
    load_checkpoint,
    plot_curves,
    resolve_device,
    save_checkpoint,
    seed_everything,
)


class Tiny(nn.Module):
    """A fused LSTM with dropout on its output: exercises the op, the RNG and the optimizer."""

    def __init__(self):
        super().__init__()
        self.rnn = fusedrnn.LSTM(3, 8, batch_first=True)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(self.drop(out[:, -1]))


def _data(n=48, T=6):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, T, 3, generator=g)
    y = x[:, :, 0].sum(1, keepdim=True) * 0.5
    return x, y


def _run(tmp_path, epochs, resume=False, patience=None, scheduler="step", evaluate=None, lr=0.02):
    x, y = _data()
    seed_everything(0)
    model = Tiny()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if scheduler == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    elif scheduler == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    else:
        sched = None

    def batches():  # shuffled with torch's global generator, as the tasks do
        order = torch.randperm(len(x))
        return [(x[order[i:i + 16]], y[order[i:i + 16]]) for i in range(0, len(x), 16)]

    def loss_fn(m, batch):
        return nn.functional.mse_loss(m(batch[0]), batch[1])

    def default_eval(m):
        return {"mse": float(nn.functional.mse_loss(m(x), y))}

    result = fit(model, opt, train_batches=batches, loss_fn=loss_fn, evaluate=evaluate or default_eval,
                 monitor="mse", epochs=epochs, out_dir=tmp_path, scheduler=sched, patience=patience,
                 resume=resume, progress=False, config={"hidden": 8})
    return model, opt, result


def test_seed_everything_repeats_every_generator():
    seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(123)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_resolve_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_checkpoint_roundtrip(tmp_path):
    path = tmp_path / "sub" / "ck.pt"
    save_checkpoint(path, {"w": torch.arange(4.0), "meta": {"epoch": 3}})
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["w"], torch.arange(4.0)) and loaded["meta"] == {"epoch": 3}
    assert sorted(p.name for p in path.parent.iterdir()) == ["ck.pt"]  # no temporary left over
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_write_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"version": 1})
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial garbage")  # a crash halfway through writing
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"version": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_metrics_log_jsonl_and_csv(tmp_path):
    log = MetricsLog(tmp_path)
    log.append({"epoch": 1, "loss": 0.5})
    log.append({"epoch": 2, "loss": 0.25, "mae": 3.0})  # a new key widens the CSV
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25, "mae": 3.0}]
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines == ["epoch,loss,mae", "1,0.5,", "2,0.25,3.0"]
    assert MetricsLog(tmp_path).rows == rows  # reopening picks the rows up


def test_plot_curves_writes_png(tmp_path):
    history = [{"epoch": e, "train_loss": 1 / e, "valid_mae": 2 / e} for e in range(1, 5)]
    path = tmp_path / "curves.png"
    plot_curves(history, ["train_loss", "valid_mae", "absent"], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        plot_curves(history, ["absent"], tmp_path / "none.png")


def test_fit_trains_logs_and_checkpoints(tmp_path):
    model, _, result = _run(tmp_path, epochs=4)
    assert isinstance(result, FitResult)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert result.history[-1]["mse"] < result.history[0]["mse"]
    assert [r["lr"] for r in result.history] == pytest.approx([0.02 * 0.7**k for k in range(4)])
    assert result.best == min(result.history, key=lambda r: r["mse"])
    assert result.best_path == tmp_path / "best.pt" and result.last_path == tmp_path / "last.pt"
    last, best = load_checkpoint(result.last_path), load_checkpoint(result.best_path)
    assert last["epoch"] == 4 and last["config"] == {"hidden": 8, "clip_norm": 1.0}  # fit adds its clipping
    assert best["epoch"] == result.best["epoch"]
    for k, v in model.state_dict().items():
        assert torch.equal(last["model"][k], v)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4
    assert {"epoch", "train_loss", "lr", "seconds", "mse"} <= set(result.history[0])


def test_resume_equals_uninterrupted_run(tmp_path):
    straight, _, full = _run(tmp_path / "a", epochs=4)
    _run(tmp_path / "b", epochs=2)
    resumed, _, rest = _run(tmp_path / "b", epochs=4, resume=True)  # fresh init, then loads last.pt
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert [r["epoch"] for r in rest.history] == [1, 2, 3, 4]
    assert [r["mse"] for r in rest.history] == [r["mse"] for r in full.history]
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 4


def test_early_stopping_and_plateau_scheduler(tmp_path):
    scores = iter([3.0, 2.0, 2.5, 2.1, 2.2, 1.0, 0.5])
    _, opt, result = _run(tmp_path, epochs=7, patience=3, scheduler="plateau",
                          evaluate=lambda m: {"mse": next(scores)})
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5]  # 3 epochs without a better 2.0
    assert result.best["epoch"] == 2 and result.best["mse"] == 2.0
    # ReduceLROnPlateau(patience=0) halves the lr after each epoch that did not improve
    assert [r["lr"] for r in result.history] == pytest.approx([0.02, 0.02, 0.02, 0.01, 0.005])
    assert load_checkpoint(result.best_path)["epoch"] == 2


def test_non_finite_loss_stops_with_clear_error(tmp_path):
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def loss_fn(m, batch):
        calls.append(1)
        loss = m(batch).pow(2).mean()
        return loss * float("inf") if len(calls) > 2 else loss  # blows up in the second epoch

    with pytest.raises(FloatingPointError, match="training loss is nan|training loss is inf"):
        fit(model, opt, train_batches=lambda: [torch.ones(4, 2)] * 2, loss_fn=loss_fn,
            evaluate=lambda m: {"loss": 1.0}, monitor="loss", epochs=3, out_dir=tmp_path,
            progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1  # the last finite epoch is kept
