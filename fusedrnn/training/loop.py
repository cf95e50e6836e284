"""`fit`: a resumable epoch loop with best-checkpointing, early stopping and a metrics log."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .metrics import MetricsLog
from .runtime import rng_states, set_rng_states


@dataclass
class FitResult:
    history: list[dict]  # one row per epoch: epoch, train_loss, lr, seconds, **metrics
    best: dict  # the row of the best epoch by the monitored metric
    best_path: Path | None  # out_dir/best.pt (None if no epoch had a finite monitored value)
    last_path: Path  # out_dir/last.pt, the state to resume from
    seconds: float  # wall time of this call


def _improved(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def _train_epoch(model: nn.Module, optimizer, batches: Iterable, loss_fn, clip_norm, progress: bool,
                 desc: str) -> float:
    from tqdm.auto import tqdm

    model.train()
    total, steps = 0.0, 0
    try:
        total_steps = len(batches)  # type: ignore[arg-type]
    except TypeError:
        total_steps = None
    bar = tqdm(batches, total=total_steps, desc=desc, unit="step", disable=not progress,
               leave=False, dynamic_ncols=True)
    try:
        for batch in bar:
            loss = loss_fn(model, batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"{desc}: training loss is {value} at step {steps + 1}; stopping. The last "
                    "finite epoch is in last.pt -- try a lower learning rate or clipping."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
            total += value
            steps += 1
            bar.set_postfix(loss=f"{total / steps:.4g}", refresh=False)
    finally:
        bar.close()
    if steps == 0:
        raise ValueError(f"{desc}: train_batches() yielded no batches")
    return total / steps


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, *, train_batches: Callable[[], Iterable],
        loss_fn: Callable[[nn.Module, object], torch.Tensor],
        evaluate: Callable[[nn.Module], dict[str, float]], monitor: str, mode: str = "min",
        epochs: int, out_dir: str | os.PathLike, scheduler=None, clip_norm: float | None = 1.0,
        patience: int | None = None, resume: bool = False, progress: bool = True,
        desc: str = "train", config: dict | None = None) -> FitResult:
    """Train model for up to `epochs` epochs, evaluating and checkpointing after each.

    Every epoch: one pass over train_batches() (loss_fn(model, batch) -> scalar loss; zero_grad,
    backward, gradient clipping to clip_norm, optimizer.step), then evaluate(model) in eval mode
    under no_grad. The row {epoch, train_loss, lr, seconds, **metrics} goes to out_dir/metrics.*;
    out_dir/last.pt gets the full state (model, optimizer, scheduler, generator states, history,
    `config`), out_dir/best.pt the same when metrics[monitor] improves (mode "min" or "max").
    scheduler is stepped once an epoch (a ReduceLROnPlateau with the monitored value). Training
    stops early after `patience` epochs without improvement (None: never). With resume=True a
    run continues from out_dir/last.pt exactly as if it had not been interrupted.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be a positive number of epochs or None, got {patience}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    log = MetricsLog(out_dir)
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    history: list[dict] = []
    best_value: float | None = None
    best_row: dict = {}
    bad_epochs, start = 0, 1
    if resume and last_path.exists():
        state = load_checkpoint(last_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        set_rng_states(state["rng"])
        history, best_value = list(state["history"]), state["best_value"]
        best_row, bad_epochs = dict(state["best_row"]), state["bad_epochs"]
        start = state["epoch"] + 1
    else:
        if best_path.exists():  # a fresh run must not leave a stale best.pt from an older run
            best_path.unlink()
    log.reset(history)  # drops rows logged after the checkpoint we resumed from

    for epoch in range(start, epochs + 1):
        if patience is not None and bad_epochs >= patience:
            break
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss = _train_epoch(model, optimizer, train_batches(), loss_fn, clip_norm, progress,
                                  f"{desc} {epoch}/{epochs}")
        model.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in evaluate(model).items()}
        if monitor not in metrics:
            raise KeyError(f"evaluate() returned {sorted(metrics)}, without the monitored {monitor!r}")
        value = metrics[monitor]
        row = {"epoch": epoch, "train_loss": train_loss, "lr": lr,
               "seconds": time.perf_counter() - t0, **metrics}
        history.append(row)
        improved = _improved(value, best_value, mode)
        if improved:
            best_value, best_row, bad_epochs = value, row, 0
        else:
            bad_epochs += 1
        if plateau:
            scheduler.step(value)
        elif scheduler is not None:
            scheduler.step()
        payload = {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "epoch": epoch, "rng": rng_states(), "history": history, "best_value": best_value,
            "best_row": best_row, "bad_epochs": bad_epochs, "monitor": monitor, "mode": mode,
            "config": config,
        }
        if improved:
            save_checkpoint(best_path, payload)
        save_checkpoint(last_path, payload)
        log.append(row)
        if progress:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            print(f"{desc} epoch {epoch}/{epochs}: loss {train_loss:.4g}, {shown}, "
                  f"{row['seconds']:.1f}s{' *' if improved else ''}", flush=True)

    return FitResult(history=history, best=best_row,
                     best_path=best_path if best_path.exists() else None,
                     last_path=last_path, seconds=time.perf_counter() - started)
