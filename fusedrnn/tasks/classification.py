"""What the classification tasks (`fusedrnn train sketch`, `fusedrnn train video`) share:
batches cut from tensors held in memory, accuracy, and one training run with its report
(results.json, curves.png and a printed summary).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .common import ShuffledBatches, fit_task, run_report, timing_line

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
    from ..training import load_checkpoint, plot_curves

    device = next(model.parameters()).device
    out = Path(args.out)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)
    train = splits["train"]

    def batches():
        return ShuffledBatches(len(train), args.batch_size, lambda index: train.batch(index, device))

    def loss_fn(m, batch):
        inputs, labels = batch
        return nn.functional.cross_entropy(m(*inputs), labels)

    def evaluate(m):
        valid = splits["valid"]
        return {"valid_accuracy": float((predictions(m, valid, device) == valid.labels).float().mean())}

    print(f"{task}: {sum(p.numel() for p in model.parameters()):,} parameters on the "
          f"{args.backend} backend, {len(train)} training items, {len(class_names)} classes, "
          f"device {device}", flush=True)
    result = fit_task(args, task, model, optimizer, scheduler, train_batches=batches,
                      loss_fn=loss_fn, evaluate=evaluate, monitor="valid_accuracy", mode="max",
                      config=config, run_files=RUN_FILES)
    if isinstance(result, int):
        return result
    model.load_state_dict(load_checkpoint(result.best_path, map_location=device)["model"])
    report = {**run_report(result, config), "classes": class_names}
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
    print(f"\nbest epoch {report['best_epoch']} of {report['epochs_run']}: valid accuracy "
          f"{report['valid']['accuracy']:.2%}, test accuracy {report['test']['accuracy']:.2%} "
          f"({report['test']['items']} items)")
    print(timing_line(result, args.backend, out))
    return 0
