"""Per-epoch metrics written as JSON lines (appended) and as a CSV table (rewritten)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from .checkpoint import replace_atomically, write_text_atomically


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
            self.rows = self._read(self.jsonl_path)

    @staticmethod
    def _read(path: Path) -> list[dict]:
        """The rows of a metrics.jsonl. An append cut off by a killed process leaves a partial last
        line: that row is dropped (resume rewrites the log from the checkpoint's history anyway);
        a bad line elsewhere means the file is not a metrics log, and is an error."""
        lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
        rows = []
        for k, (n, line) in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                if k == len(lines) - 1:
                    break
                raise ValueError(f"{path}, line {n}: not a JSON metrics row ({e})") from None
        return rows

    def append(self, row: dict) -> None:
        row = dict(row)
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.rows.append(row)
        self._write_csv()

    def reset(self, rows: list[dict] | tuple = ()) -> None:
        """Replace the log's contents with rows (used when a run starts afresh or resumes)."""
        self.rows = [dict(r) for r in rows]
        write_text_atomically(self.jsonl_path, "".join(json.dumps(row) + "\n" for row in self.rows))
        self._write_csv()

    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns.extend(k for k in row if k not in columns)
        def write(f) -> None:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)

        replace_atomically(self.csv_path, write, binary=False)
