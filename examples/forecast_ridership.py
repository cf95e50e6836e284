"""Forecast the next 7 days of Chicago rail ridership with a fused GRU, using the library API.

    python examples/forecast_ridership.py [--epochs 20] [--backend fused|torch] [--out DIR]

The same recipe as `fusedrnn train forecast`, spelled out: windows of 56 days, a GRU that
predicts the next 7 days at every step, trained on every step, scored at the last one.
"""

import argparse
import contextlib
import tempfile

import numpy as np
import torch

from fusedrnn import argtypes
from fusedrnn.datasets.ridership import SPLITS, Scaling, forecast_windows, load_ridership
from fusedrnn.datasets.windows import masked_mae, seasonal_naive
from fusedrnn.models.forecasting import Seq2SeqForecaster, masked_sequence_loss
from fusedrnn.training import fit, load_checkpoint, seed_everything

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=argtypes.positive_int, default=20)
parser.add_argument("--backend", choices=("fused", "torch"), default="fused")
parser.add_argument("--out", default=None,
                    help="keep the checkpoints and metrics here (default: a temporary folder, removed)")
args = parser.parse_args()

torch.set_num_threads(1)  # a model this small only loses from more threads
seed_everything(0)
data = load_ridership()  # one row per day, 2001-01-01 .. 2021-11-30
scaling = Scaling.fit(data, "train")  # standardise by the 2016-2018 mean and deviation
windows = {split: forecast_windows(data, split, scaling, length=56) for split in SPLITS}
train = windows["train"]
x, y, mask = (torch.from_numpy(a) for a in (train.x, train.y, train.mask))
print(f"{len(train)} training windows of {x.shape[1]} days x {x.shape[2]} inputs")

model = Seq2SeqForecaster(n_features=x.shape[2], horizon=7, hidden=64, cell="gru", backend=args.backend)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.95)


def forecast(model, split):
    """Boardings forecast at the last step of each window of the split: [windows, 7]."""
    z = model(torch.from_numpy(windows[split].x))[:, -1].double().numpy()
    return scaling.rail_to_boardings(z)


def mae(split, pred):
    w = windows[split]
    return masked_mae(pred, w.last_target, w.mask[:, -1])  # per horizon, days inside the split


def batches():
    order = torch.randperm(len(x))
    return [(x[i], y[i], mask[i]) for i in order.split(32)]


out = contextlib.nullcontext(args.out) if args.out else tempfile.TemporaryDirectory(prefix="forecast_")
with out as out_dir:
    result = fit(
        model, optimizer, train_batches=batches,
        loss_fn=lambda m, batch: masked_sequence_loss(m, *batch),
        evaluate=lambda m: {"valid_mae": float(mae("valid", forecast(m, "valid")).mean())},
        monitor="valid_mae", epochs=args.epochs, out_dir=out_dir, scheduler=scheduler, patience=8,
        progress=False,
    )
    model.load_state_dict(load_checkpoint(result.best_path)["model"])
model.eval()
with torch.no_grad():
    for split in ("valid", "test"):
        w = windows[split]
        naive = mae(split, seasonal_naive(data.rail, w.origins, 7))
        print(f"{split}: MAE {mae(split, forecast(model, split)).mean():,.0f} boardings "
              f"(7-day naive {naive.mean():,.0f}), per horizon "
              + " ".join(f"{v:,.0f}" for v in mae(split, forecast(model, split))))
print(f"best epoch {result.best['epoch']}, {result.seconds:.1f}s, "
      f"{np.median([r['seconds'] for r in result.history]):.2f}s per epoch"
      + (f"; checkpoints in {args.out}" if args.out else ""))
