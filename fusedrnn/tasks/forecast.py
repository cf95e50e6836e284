"""`fusedrnn train forecast` / `fusedrnn predict forecast`: CTA rail boardings, next 7 days.

Training: windows of `--window` days (inputs: rail and bus boardings, the day types and holiday
flags of the coming days), a forecaster that predicts the next 7 days at every step (trained on
every step whose targets lie in the training split, evaluated at the last step), early stopping
on the validation MAE, the best checkpoint scored on the test split. Splits and windowing:
fusedrnn.datasets.ridership.SPLITS and fusedrnn.datasets.windows.

Outputs in --out: best.pt, last.pt (resumable), metrics.jsonl/.csv, results.json (MAE per
horizon on valid and test, the seasonal-naive baseline, timings), curves.png (loss and validation
MAE per epoch), forecast_valid.png (forecasts 1 and 7 days ahead against the actual boardings).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import argtypes
from .common import ShuffledBatches, fit_task, run_report, timing_line, with_threads

HORIZON = 7
DEFAULT_OUT = "runs/forecast"
RUN_FILES = ("results.json", "curves.png", "forecast_valid.png")  # besides fit's own


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=argtypes.positive_int, default=40, help="maximum number of epochs")
    parser.add_argument("--backend", choices=("fused", "torch"), default="fused",
                        help="fusedrnn layers or the same model on torch.nn layers")
    parser.add_argument("--model", choices=("seq2seq", "conv", "wavenet"), default="seq2seq",
                        help="recurrent seq2seq, the same behind a strided Conv1D front, or WaveNet")
    parser.add_argument("--cell", choices=("lstm", "gru", "lnlstm"), default="gru",
                        help="recurrent cell of the seq2seq and conv models")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--device", type=argtypes.device, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=argtypes.positive_float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--lr-decay", type=argtypes.decay_factor, default=0.95, help="lr factor per epoch")
    parser.add_argument("--clip", type=argtypes.non_negative_float, default=1.0,
                        help="gradient norm clip (0: off)")
    parser.add_argument("--patience", type=argtypes.non_negative_int, default=10,
                        help="stop after this many epochs without a better valid MAE (0: never)")
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=32)
    parser.add_argument("--window", type=argtypes.positive_int, default=56, help="input days per window")
    parser.add_argument("--hidden", type=argtypes.positive_int, default=64, help="recurrent hidden size")
    parser.add_argument("--layers", type=argtypes.positive_int, default=1, help="recurrent layers")
    parser.add_argument("--dropout", type=argtypes.probability, default=0.0, help="dropout between layers")
    parser.add_argument("--conv-channels", type=argtypes.positive_int, default=32,
                        help="Conv1D front (--model conv)")
    parser.add_argument("--channels", type=argtypes.positive_int, default=32, help="WaveNet channels")
    parser.add_argument("--augment", type=argtypes.non_negative_float, default=0.05,
                        help="probability per input day of a simulated ridership dip (0: off)")
    parser.add_argument("--univariate", action="store_true", help="rail boardings only as input")
    parser.add_argument("--no-holidays", action="store_true",
                        help="leave the holiday flags out of the calendar inputs")
    parser.add_argument("--threads", type=argtypes.non_negative_int, default=1,
                        help="torch CPU threads; this model is too small to gain from more, and "
                             "loses a lot on a busy machine (0: torch's default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=f"{DEFAULT_OUT}/best.pt")
    parser.add_argument("--after", choices=("end", "train", "valid", "test"), default="end",
                        help="forecast the 7 days after the last day of the data or of a split")
    parser.add_argument("--backend", choices=("fused", "torch"), default=None,
                        help="rebuild the model on this backend (default: the one it trained on)")
    parser.add_argument("--device", type=argtypes.device, default="cpu")


def _model_config(args: argparse.Namespace, n_features: int) -> dict:
    return {
        "model": args.model, "cell": args.cell, "backend": args.backend, "n_features": n_features,
        "horizon": HORIZON, "hidden": args.hidden, "layers": args.layers, "dropout": args.dropout,
        "conv_channels": args.conv_channels, "channels": args.channels,
    }


def evaluate_windows(model, windows, scaling, device, batch_size: int = 1024):
    """[n, H] forecasts in boardings at the last step of each window, and the [H] MAE per
    horizon over the targets that lie in the split."""
    import numpy as np
    import torch

    from ..datasets.windows import masked_mae

    was_training = model.training
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(windows), batch_size):
            x = torch.from_numpy(windows.x[i:i + batch_size]).to(device)
            preds.append(model(x)[:, -1].double().cpu().numpy())
    model.train(was_training)
    pred = scaling.rail_to_boardings(np.concatenate(preds))
    return pred, masked_mae(pred, windows.last_target, windows.mask[:, -1])


def _train(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..datasets.ridership import Scaling, forecast_features, forecast_windows, load_ridership
    from ..datasets.windows import masked_mae, seasonal_naive
    from ..models.forecasting import build_forecaster, dip_augment, masked_sequence_loss
    from ..training import load_checkpoint, plot_curves, resolve_device, seed_everything

    seed_everything(args.seed)
    device = resolve_device(args.device)
    out = Path(args.out)
    data = load_ridership()
    scaling = Scaling.fit(data, "train")
    multivariate, holidays = not args.univariate, not args.no_holidays
    features = forecast_features(data, scaling, HORIZON, multivariate, holidays)
    windows = {split: forecast_windows(data, split, scaling, args.window, HORIZON, features=features)
               for split in ("train", "valid", "test")}
    config = {
        **_model_config(args, features.shape[1]), "window": args.window,
        "multivariate": multivariate, "holidays": holidays, "scaling": vars(scaling),
        "lr": args.lr, "lr_decay": args.lr_decay, "batch_size": args.batch_size,
        "augment": args.augment, "seed": args.seed, "epochs": args.epochs,
    }
    try:
        model = build_forecaster(config).to(device)
    except ValueError as e:
        print(f"fusedrnn train forecast: {e}")
        return 2
    try:  # one window through the model in eval mode (no RNG drawn): a window too short for it
        model.eval()  # fails here, before any file in --out is touched
        with torch.no_grad():
            model(torch.from_numpy(windows["train"].x[:1]).to(device))
    except ValueError as e:
        print(f"fusedrnn train forecast: {e} (--window {args.window})")
        return 2
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)

    train_w = windows["train"]
    x_all = torch.from_numpy(train_w.x).to(device)
    y_all = torch.from_numpy(train_w.y).to(device)
    m_all = torch.from_numpy(train_w.mask).to(device)
    counts = 2 if multivariate else 1
    mean = torch.tensor([scaling.rail_mean, scaling.bus_mean][:counts], device=device)
    std = torch.tensor([scaling.rail_std, scaling.bus_std][:counts], device=device)

    def batch(index):
        idx = index.to(device)
        x = dip_augment(x_all[idx], args.augment, mean, std, counts)
        return x, y_all[idx], m_all[idx]

    def batches():
        return ShuffledBatches(len(x_all), args.batch_size, batch)

    def loss_fn(m, batch):
        return masked_sequence_loss(m, *batch, kind="l1")

    def evaluate(m):
        _, mae = evaluate_windows(m, windows["valid"], scaling, device)
        return {"valid_mae": float(mae.mean())}

    print(f"forecast: {args.model} ({args.cell if args.model != 'wavenet' else 'conv'}) on the "
          f"{args.backend} backend, {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{len(train_w)} training windows of {args.window} days, device {device}", flush=True)
    result = fit_task(args, "forecast", model, optimizer, scheduler, train_batches=batches,
                      loss_fn=loss_fn, evaluate=evaluate, monitor="valid_mae", mode="min",
                      config=config, run_files=RUN_FILES)
    if isinstance(result, int):
        return result

    best = load_checkpoint(result.best_path, map_location=device)
    model.load_state_dict(best["model"])
    report = run_report(result, config)
    preds = {}
    for split in ("valid", "test"):
        w = windows[split]
        preds[split], mae = evaluate_windows(model, w, scaling, device)
        naive = masked_mae(seasonal_naive(data.rail, w.origins, HORIZON), w.last_target, w.mask[:, -1])
        report[split] = {"mae": mae.tolist(), "mae_mean": float(mae.mean()),
                         "naive_mae": naive.tolist(), "naive_mae_mean": float(naive.mean()),
                         "windows": len(w), **_worst_days(data, w, preds[split])}
    (out / "results.json").write_text(json.dumps(report, indent=2))
    plot_curves(result.history, ["train_loss", "valid_mae", "lr"], out / "curves.png",
                title=f"forecast: {args.model}/{args.cell}, {args.backend} backend")
    plot_forecasts(data, windows["valid"], preds["valid"], out / "forecast_valid.png")

    print(f"\nbest epoch {report['best_epoch']} of {report['epochs_run']}; MAE in rail boardings "
          "per horizon (days ahead)")
    print(f"{'':>17}" + "".join(f"{h:>9}" for h in range(1, HORIZON + 1)) + f"{'mean':>9}")
    for split in ("valid", "test"):
        for name, key in (("model", "mae"), ("naive 7-day", "naive_mae")):
            row = report[split][key]
            print(f"{split + ' ' + name:>17}" + "".join(f"{v:>9,.0f}" for v in row)
                  + f"{np.mean(row):>9,.0f}")
    print(timing_line(result, args.backend, out))
    return 0


train = with_threads(_train)


def _worst_days(data, windows, pred, count: int = 5) -> dict:
    """The target days with the largest error (averaged over horizons), and the mean MAE over
    horizons without them: how much of the MAE a handful of disruptions account for."""
    import numpy as np

    scored = windows.mask[:, -1]
    days = windows.origins[:, None] + np.arange(1, pred.shape[1] + 1)[None, :]
    err = np.abs(pred - np.nan_to_num(windows.last_target))
    total = np.bincount(days[scored], err[scored], minlength=len(data))
    hits = np.bincount(days[scored], minlength=len(data))
    per_day = np.divide(total, hits, out=np.zeros_like(total), where=hits > 0)
    worst = np.argsort(per_day)[::-1][:count]
    rest = (hits > 0) & ~np.isin(np.arange(len(data)), worst)
    return {"worst_days": {str(data.dates[d]): float(per_day[d]) for d in worst},
            "mae_mean_without_worst_days": float(per_day[rest].mean())}


def plot_forecasts(data, windows, pred, path, days: int = 91) -> None:
    """Actual rail boardings over the first `days` of the split, and the forecasts made 1 and 7
    days ahead for each of those days."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    first = windows.origins[0] + HORIZON  # the split's first day (see forecast_origins)
    span = np.arange(first, min(first + days, windows.origins[-1] + 2))
    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    dates = data.dates[span].astype("datetime64[D]").astype(object)
    ax.plot(dates, data.rail[span], color="black", linewidth=1.6, label="actual")
    position = {int(t): i for i, t in enumerate(windows.origins)}
    for h, style in ((1, "-"), (HORIZON, "--")):
        values = [pred[position[int(day) - h], h - 1] for day in span]
        ax.plot(dates, values, style, linewidth=1.1, label=f"forecast {h} day{'s' if h > 1 else ''} ahead")
    ax.set_ylabel("rail boardings")
    ax.set_title(f"CTA rail boardings, validation period from {data.dates[first]}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.autofmt_xdate()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def predict(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..datasets.ridership import SPLITS, Scaling, forecast_features, load_ridership
    from ..datasets.windows import gather_windows
    from ..models.forecasting import build_forecaster
    from ..training import load_checkpoint, resolve_device

    device = resolve_device(args.device)
    try:
        checkpoint = load_checkpoint(args.checkpoint, map_location=device)
    except FileNotFoundError as e:
        print(f"fusedrnn predict forecast: {e} (train one with `fusedrnn train forecast`)")
        return 1
    config = dict(checkpoint.get("config") or {})
    if config.get("task", "forecast") != "forecast" or "n_features" not in config:
        print(f"fusedrnn predict forecast: {args.checkpoint} is not a forecast checkpoint")
        return 1
    if args.backend:
        config["backend"] = args.backend
    try:
        model = build_forecaster(config).to(device)
    except ValueError as e:
        print(f"fusedrnn predict forecast: {e}")
        return 2
    model.load_state_dict(checkpoint["model"])
    model.eval()
    data = load_ridership()
    scaling = Scaling(**config["scaling"])
    features = forecast_features(data, scaling, config["horizon"], config["multivariate"],
                                 config["holidays"])
    origin = len(data) - 1 if args.after == "end" else data.index(SPLITS[args.after][1])
    x = torch.from_numpy(gather_windows(features, np.array([origin]), config["window"])).to(device)
    with torch.no_grad():
        pred = scaling.rail_to_boardings(model(x)[0, -1].double().cpu().numpy())
    print(f"rail boardings forecast after {data.dates[origin]} ({config['model']}, epoch "
          f"{checkpoint['epoch']}):")
    for h, value in enumerate(pred, start=1):
        day = data.dates[origin] + np.timedelta64(h, "D")
        known = origin + h < len(data)
        actual = f"{data.rail[origin + h]:>11,.0f}" if known else ""
        print(f"  {day} {'+' + str(h):>3} {value:>11,.0f}{actual}")
    if origin + 1 < len(data):
        print("  (columns: date, days ahead, forecast, actual)")
    return 0
