"""Loss and metric curves as a PNG, drawn on matplotlib's Agg canvas (no display needed)."""

from __future__ import annotations

import os
from pathlib import Path


def plot_curves(history: list[dict], keys: list[str], path: str | os.PathLike,
                title: str | None = None) -> None:
    """One panel per key in keys, the key's value against the epoch, saved to path as a PNG.

    Keys absent from every row are skipped; an epoch without a key leaves a gap.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = [k for k in keys if any(k in row for row in history)]
    if not keys:
        raise ValueError("plot_curves: none of the keys appear in the history")
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    fig = Figure(figsize=(4.2 * len(keys), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        values = [row.get(key, float("nan")) for row in history]
        ax.plot(epochs, values, marker="o", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
