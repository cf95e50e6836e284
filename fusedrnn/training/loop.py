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


# The files fit writes in out_dir, besides those a task names in fit(run_files=...).
_FIT_FILES = ("last.pt", "best.pt", "metrics.jsonl", "metrics.csv")
EARLIER = "earlier"  # out_dir/earlier/<time>/: where a fresh run moves an earlier run's files
# Settings a resumed run may change; any other difference in `config` means another run.
_MAY_CHANGE_ON_RESUME = frozenset({"epochs", "backend"})


class ResumeMismatch(ValueError):
    """--resume found a checkpoint of a run with other settings."""


def _remove_partial_writes(out_dir: Path) -> None:
    """Temporary files of a writer killed mid-write (checkpoint.replace_atomically): incomplete by
    construction, and up to a checkpoint's size each."""
    for name in _FIT_FILES:
        for tmp in out_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _keep_earlier_run(out_dir: Path, names: Iterable[str]) -> Path | None:
    """A fresh run in a folder that holds an earlier run's files moves them aside first, into
    out_dir/earlier/<time>/, so that starting a run (even one that then fails) never destroys
    one. Only the files a run writes move: out_dir may be any folder."""
    present = [out_dir / n for n in dict.fromkeys(names) if (out_dir / n).exists()]
    if not present:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest, k = out_dir / EARLIER / stamp, 1
    while dest.exists():
        dest, k = out_dir / EARLIER / f"{stamp}-{k}", k + 1
    dest.mkdir(parents=True)
    for path in present:
        os.replace(path, dest / path.name)
    return dest


def _check_same_run(saved: dict | None, current: dict | None, path: Path) -> None:
    if saved is None or current is None:
        return
    # a key the checkpoint lacks was not recorded by the version that wrote it: not compared
    keys = sorted((set(saved) & set(current)) - _MAY_CHANGE_ON_RESUME)
    changed = [k for k in keys if saved.get(k) != current.get(k)]
    if changed:
        def short(v) -> str:
            text = repr(v)
            return text if len(text) <= 40 else text[:37] + "..."

        diffs = "; ".join(f"{k}: {short(saved.get(k))} then, {short(current.get(k))} now" for k in changed)
        raise ResumeMismatch(
            f"cannot resume from {path}: it was trained with other settings ({diffs}). Resume with "
            "the same settings, or start afresh without --resume (the earlier run's files then move "
            f"to {path.parent / EARLIER})")


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
        desc: str = "train", config: dict | None = None, run_files: Iterable[str] = ()) -> FitResult:
    """Train model for up to `epochs` epochs, evaluating and checkpointing after each.

    Every epoch: one pass over train_batches() (loss_fn(model, batch) -> scalar loss; zero_grad,
    backward, gradient clipping to clip_norm, optimizer.step), then evaluate(model) in eval mode
    under no_grad. The row {epoch, train_loss, lr, seconds, **metrics} goes to out_dir/metrics.*;
    out_dir/last.pt gets the full state (model, optimizer, scheduler, generator states, history,
    `config`), out_dir/best.pt the same when metrics[monitor] improves (mode "min" or "max").
    scheduler is stepped once an epoch (a ReduceLROnPlateau with the monitored value). Training
    stops early after `patience` epochs without improvement (None: never). With resume=True a
    run continues from out_dir/last.pt exactly as if it had not been interrupted; its `config`
    must then equal the checkpoint's (ResumeMismatch otherwise), but for epochs and backend;
    clip_norm joins it, since it changes the training (patience, a stopping rule like epochs,
    may change). With resume=True and no last.pt a new run starts, and says so.
    Without resume, an earlier run's files in out_dir (fit's own and the task's `run_files`)
    move to out_dir/earlier/<time>/ before the first epoch.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be a positive number of epochs or None, got {patience}")
    if clip_norm is not None and not clip_norm > 0:  # a negative norm flips the gradients' sign
        raise ValueError(f"clip_norm must be positive or None (no clipping), got {clip_norm}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    _remove_partial_writes(out_dir)
    if config is not None:
        config = {**config, "clip_norm": clip_norm}
    if resume and last_path.exists():
        state = load_checkpoint(last_path)
        _check_same_run(state.get("config"), config, last_path)
    else:
        if resume:
            print(f"{desc}: nothing to resume in {out_dir} (no last.pt); starting a new run", flush=True)
        state = None
        earlier = _keep_earlier_run(out_dir, (*_FIT_FILES, *run_files))
        if earlier is not None:
            print(f"{desc}: {out_dir} held an earlier run; its files are now in {earlier}", flush=True)
    log = MetricsLog(out_dir)
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    history: list[dict] = []
    best_value: float | None = None
    best_row: dict = {}
    bad_epochs, start = 0, 1
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        set_rng_states(state["rng"])
        history, best_value = list(state["history"]), state["best_value"]
        best_row, bad_epochs = dict(state["best_row"]), state["bad_epochs"]
        start = state["epoch"] + 1
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
