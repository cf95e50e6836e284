"""Small training utilities shared by the tasks: seeding, devices, atomic checkpoints, metrics
logs, curve plots and a resumable training loop (`fit`)."""

from .checkpoint import load_checkpoint, save_checkpoint
from .loop import FitResult, ResumeMismatch, fit
from .metrics import MetricsLog
from .plotting import plot_curves
from .runtime import float32_matmul_precision, resolve_device, seed_everything

__all__ = [
    "FitResult", "MetricsLog", "ResumeMismatch", "fit", "float32_matmul_precision", "load_checkpoint",
    "plot_curves", "resolve_device", "save_checkpoint", "seed_everything",
]
