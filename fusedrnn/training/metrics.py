"""Per-epoch metrics written as JSON lines (appended) and as a CSV table (rewritten)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path


class MetricsLog:
    """Rows of metrics in out_dir/metrics.jsonl (one JSON object a line) and out_dir/metrics.csv.

    The CSV is rewritten on every append so its header always covers every key seen so far.
    Rows already in metrics.jsonl are picked up when the log is opened.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.out_dir / "metrics.jsonl"
        self.csv_path = self.out_dir / "metrics.csv"
        self.rows: list[dict] = []
        if self.jsonl_path.exists():
            with open(self.jsonl_path) as f:
                self.rows = [json.loads(line) for line in f if line.strip()]

    def append(self, row: dict) -> None:
        row = dict(row)
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.rows.append(row)
        self._write_csv()

    def reset(self, rows: list[dict] | tuple = ()) -> None:
        """Replace the log's contents with rows (used when a run starts afresh or resumes)."""
        self.rows = [dict(r) for r in rows]
        tmp = self.jsonl_path.with_suffix(".jsonl.tmp")
        with open(tmp, "w") as f:
            for row in self.rows:
                f.write(json.dumps(row) + "\n")
        os.replace(tmp, self.jsonl_path)
        self._write_csv()

    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns.extend(k for k in row if k not in columns)
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.csv_path)
