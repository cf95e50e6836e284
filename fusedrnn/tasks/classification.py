"""What the classification tasks (`fusedrnn train sketch`, `fusedrnn train video`) share: the
common options, batches cut from tensors held in memory, accuracy, and one training run through
`fusedrnn.training.fit` with its report (results.json, curves.png and a printed summary).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import argtypes

RUN_FILES = ("results.json", "curves.png")  # besides fit's own


@dataclass
class Split:
    """A split held in memory: inputs x [N, T, ...], labels [N] and, for sequences of different
    lengths, lengths [N] (x zero-padded past each). A batch is cut to its longest sequence, so
    no batch carries more padding than it needs."""

    x: Tensor
    labels: Tensor
    lengths: Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: Tensor, device: torch.device) -> tuple[tuple[Tensor, ...], Tensor]:
        labels = self.labels[index].to(device)
        if self.lengths is None:
            return (self.x[index].to(device),), labels
        lengths = self.lengths[index]
        return (self.x[index, :int(lengths.max())].to(device), lengths), labels


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


def predictions(model: nn.Module, split: Split, device: torch.device,
                batch_size: int = 256) -> Tensor:
    """The model's class for every item of the split, in eval mode, in order."""
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(split), batch_size):
            inputs, _ = split.batch(torch.arange(i, min(i + batch_size, len(split))), device)
            out.append(model(*inputs).argmax(1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def confusion(pred: Tensor, labels: Tensor, classes: int) -> Tensor:
    """[classes, classes] counts: row = true class, column = predicted class."""
    return torch.bincount(labels * classes + pred, minlength=classes * classes).reshape(classes, classes)


def train_classifier(args: argparse.Namespace, *, task: str, model: nn.Module,
                     splits: dict[str, Split], class_names: list[str], config: dict) -> int:
    """Train with Adam and a per-epoch decay, keep the best valid accuracy, then score test."""
    from ..training import ResumeMismatch, fit, load_checkpoint, plot_curves

    device = next(model.parameters()).device
    out = Path(args.out)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)
    train = splits["train"]

    class _Batches:  # a fresh order each epoch, from torch's global generator: resumable
        def __len__(self):
            return -(-len(train) // args.batch_size)

        def __iter__(self):
            order = torch.randperm(len(train))
            for i in range(0, len(order), args.batch_size):
                yield train.batch(order[i:i + args.batch_size], device)

    def loss_fn(m, batch):
        inputs, labels = batch
        return nn.functional.cross_entropy(m(*inputs), labels)

    def evaluate(m):
        valid = splits["valid"]
        return {"valid_accuracy": float((predictions(m, valid, device) == valid.labels).float().mean())}

    print(f"{task}: {sum(p.numel() for p in model.parameters()):,} parameters on the "
          f"{args.backend} backend, {len(train)} training items, {len(class_names)} classes, "
          f"device {device}", flush=True)
    try:
        result = fit(model, optimizer, train_batches=_Batches, loss_fn=loss_fn, evaluate=evaluate,
                     monitor="valid_accuracy", mode="max", epochs=args.epochs, out_dir=out,
                     scheduler=scheduler, clip_norm=args.clip or None,
                     patience=args.patience or None, resume=args.resume,
                     progress=not args.no_progress, desc=task, config=config, run_files=RUN_FILES)
    except ResumeMismatch as e:
        print(f"fusedrnn train {task}: {e}")
        return 2
    except FloatingPointError as e:
        print(f"fusedrnn train {task}: {e}")
        return 1
    if result.best_path is None:
        print(f"fusedrnn train {task}: no epoch reached a finite validation accuracy")
        return 1
    model.load_state_dict(load_checkpoint(result.best_path, map_location=device)["model"])
    report = {"config": config, "classes": class_names, "best_epoch": result.best["epoch"],
              "epochs_run": len(result.history), "wall_seconds": result.seconds,
              "epoch_seconds": [row["seconds"] for row in result.history]}
    for name in ("valid", "test"):
        split = splits[name]
        pred = predictions(model, split, device)
        counts = confusion(pred, split.labels, len(class_names))
        per_class = counts.diag().double() / counts.sum(1).clamp(min=1).double()
        report[name] = {"accuracy": float((pred == split.labels).float().mean()),
                        "items": len(split), "per_class_accuracy": per_class.tolist(),
                        "confusion": counts.tolist()}
    (out / "results.json").write_text(json.dumps(report, indent=2))
    plot_curves(result.history, ["train_loss", "valid_accuracy", "lr"], out / "curves.png",
                title=f"{task}: {args.cell}, {args.backend} backend")
    seconds = sorted(report["epoch_seconds"])
    print(f"\nbest epoch {report['best_epoch']} of {report['epochs_run']}: valid accuracy "
          f"{report['valid']['accuracy']:.2%}, test accuracy {report['test']['accuracy']:.2%} "
          f"({report['test']['items']} items)")
    print(f"wall time {result.seconds:.1f}s; median epoch {seconds[len(seconds) // 2]:.2f}s "
          f"({args.backend} backend); outputs in {out}/")
    return 0
