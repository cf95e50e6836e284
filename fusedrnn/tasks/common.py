"""What the tasks share: the common training options, --threads for the length of a command,
and `fit_task`, one `fusedrnn.training.fit` run with the commands' error handling."""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from .. import argtypes


def add_common_arguments(parser: argparse.ArgumentParser, *, out: str, epochs: int, lr: float,
                         batch_size: int, hidden: int, metric: str = "valid accuracy",
                         lr_decay: float = 0.9, patience: int = 5) -> None:
    """The options every task of this kind takes; `metric` names what early stopping watches."""
    parser.add_argument("--epochs", type=argtypes.positive_int, default=epochs,
                        help="maximum number of epochs")
    parser.add_argument("--backend", choices=("fused", "torch"), default="fused",
                        help="fusedrnn layers or the same model on torch.nn layers")
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm", help="recurrent cell")
    parser.add_argument("--hidden", type=argtypes.positive_int, default=hidden,
                        help="recurrent hidden size")
    parser.add_argument("--layers", type=argtypes.positive_int, default=1, help="recurrent layers")
    parser.add_argument("--dropout", type=argtypes.probability, default=0.0)
    parser.add_argument("--out", default=out, help="output directory")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--device", type=argtypes.device, default="auto",
                        help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training run")
    parser.add_argument("--lr", type=argtypes.positive_float, default=lr, help="Adam learning rate")
    parser.add_argument("--lr-decay", type=argtypes.decay_factor, default=lr_decay,
                        help="lr factor per epoch")
    parser.add_argument("--clip", type=argtypes.non_negative_float, default=1.0,
                        help="gradient norm clip (0: off)")
    parser.add_argument("--patience", type=argtypes.non_negative_int, default=patience,
                        help=f"stop after this many epochs without a better {metric} (0: never)")
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=batch_size)
    parser.add_argument("--threads", type=argtypes.non_negative_int, default=0,
                        help="torch CPU threads (0: torch's default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def with_threads(run):
    """train(args) that runs `run(args)` on --threads torch threads (0: torch's count) and gives
    torch its count back after, so that --threads does not outlive the command (tests, notebooks)."""

    def train(args: argparse.Namespace) -> int:
        threads = torch.get_num_threads()
        try:
            if args.threads:
                torch.set_num_threads(args.threads)
            return run(args)
        finally:
            torch.set_num_threads(threads)

    return train


class ShuffledBatches:
    """make(index) for each slice of batch_size indices of a random order of range(count), drawn
    afresh by each iteration from torch's global generator: a resumed run, whose generator state
    the checkpoint restores, draws the order an uninterrupted one would."""

    def __init__(self, count: int, batch_size: int, make):
        self.count, self.batch_size, self.make = count, batch_size, make

    def __len__(self) -> int:  # gives the progress bar its length
        return -(-self.count // self.batch_size)

    def __iter__(self):
        order = torch.randperm(self.count)
        for i in range(0, self.count, self.batch_size):
            yield self.make(order[i:i + self.batch_size])


def fit_task(args: argparse.Namespace, task: str, model: nn.Module, optimizer, scheduler, *,
             train_batches, loss_fn, evaluate, monitor: str, mode: str, config: dict,
             run_files):
    """fit() with the options every task takes (--epochs, --out, --clip, --patience, --resume,
    --no-progress); the FitResult, or the command's exit status when there is nothing to score:
    2 for a checkpoint of other settings, 1 for a loss that stopped being finite or no epoch
    with a finite monitored value (each said in a line)."""
    from ..training import ResumeMismatch, fit

    try:
        result = fit(model, optimizer, train_batches=train_batches, loss_fn=loss_fn,
                     evaluate=evaluate, monitor=monitor, mode=mode, epochs=args.epochs,
                     out_dir=args.out, scheduler=scheduler, clip_norm=args.clip or None,
                     patience=args.patience or None, resume=args.resume,
                     progress=not args.no_progress, desc=task, config=config, run_files=run_files)
    except ResumeMismatch as e:
        print(f"fusedrnn train {task}: {e}")
        return 2
    except FloatingPointError as e:
        print(f"fusedrnn train {task}: {e}")
        return 1
    if result.best_path is None:
        print(f"fusedrnn train {task}: no epoch reached a finite {monitor}; nothing to score")
        return 1
    return result


def run_report(result, config: dict) -> dict:
    """What every task's results.json says of the run: its settings, the best epoch, and times."""
    return {"config": config, "best_epoch": result.best["epoch"], "epochs_run": len(result.history),
            "wall_seconds": result.seconds,
            "epoch_seconds": [row["seconds"] for row in result.history]}


def timing_line(result, backend: str, out) -> str:
    """The run's wall time and median epoch, as the tasks print it last."""
    median = statistics.median(row["seconds"] for row in result.history)
    return (f"wall time {result.seconds:.1f}s; median epoch {median:.2f}s ({backend} backend); "
            f"outputs in {out}/")
