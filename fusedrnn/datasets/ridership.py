"""Chicago Transit Authority daily ridership (bus and rail boardings), 2001-01-01..2021-11-30.

The CSV ships in fusedrnn/datasets/data/cta_ridership/ with its README (source and attribution).
load_ridership() parses it with the csv module and NumPy only; Ridership.to_frame() gives a
date-indexed pandas DataFrame for those who have pandas installed.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data" / "cta_ridership"
CSV_NAME = "CTA_-_Ridership_-_Daily_Boarding_Totals.csv"
DAY_TYPES = ("W", "A", "U")  # weekday, Saturday, Sunday or holiday


@dataclass(frozen=True)
class Ridership:
    """One row per calendar day, sorted by date, no duplicates, no gaps."""

    dates: np.ndarray  # datetime64[D]
    day_type: np.ndarray  # 'W' | 'A' | 'U'
    bus: np.ndarray  # float64 boardings
    rail: np.ndarray  # float64 boardings
    total: np.ndarray  # float64 boardings

    def __len__(self) -> int:
        return len(self.dates)

    def index(self, date: str | np.datetime64) -> int:
        """Position of a date (YYYY-MM-DD) in the series."""
        day = np.datetime64(date, "D")
        i = int(np.searchsorted(self.dates, day))
        if i == len(self.dates) or self.dates[i] != day:
            raise KeyError(f"{day} is not in the series ({self.dates[0]}..{self.dates[-1]})")
        return i

    def day_type_onehot(self) -> np.ndarray:
        """[N, 3] float32 one-hot of the day types, columns in DAY_TYPES order."""
        return (self.day_type[:, None] == np.array(DAY_TYPES)[None, :]).astype(np.float32)

    def to_frame(self):
        """A pandas DataFrame indexed by date (needs pandas, which fusedrnn does not require)."""
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("Ridership.to_frame() needs pandas: pip install pandas") from e
        return pd.DataFrame(
            {"day_type": self.day_type, "bus": self.bus, "rail": self.rail, "total": self.total},
            index=pd.DatetimeIndex(self.dates.astype("datetime64[ns]"), name="date"),
        )


def _parse_date(text: str) -> np.datetime64:
    month, day, year = text.split("/")  # MM/DD/YYYY
    return np.datetime64(f"{int(year):04d}-{int(month):02d}-{int(day):02d}", "D")


def load_ridership(path: str | os.PathLike | None = None) -> Ridership:
    """Read the CTA daily boarding totals: dates parsed, duplicate rows dropped, sorted by date.

    A date listed twice with different numbers is an error, and so is a missing day (the
    forecasting windows assume one row per calendar day).
    """
    path = Path(path) if path is not None else DATA_DIR / CSV_NAME
    rows: dict[np.datetime64, tuple[str, float, float, float]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for line in reader:
            date = _parse_date(line["service_date"])
            row = (line["day_type"], float(line["bus"]), float(line["rail_boardings"]),
                   float(line["total_rides"]))
            if row[0] not in DAY_TYPES:
                raise ValueError(f"{path}: unknown day type {row[0]!r} on {date}")
            if date in rows and rows[date] != row:
                raise ValueError(f"{path}: {date} appears twice with different values")
            rows[date] = row
    dates = np.array(sorted(rows), dtype="datetime64[D]")
    if len(dates) > 1 and np.any(np.diff(dates) != np.timedelta64(1, "D")):
        gap = int(np.argmax(np.diff(dates) != np.timedelta64(1, "D")))
        raise ValueError(f"{path}: the series has a gap after {dates[gap]}")
    values = [rows[d] for d in dates]
    return Ridership(
        dates=dates,
        day_type=np.array([v[0] for v in values]),
        bus=np.array([v[1] for v in values]),
        rail=np.array([v[2] for v in values]),
        total=np.array([v[3] for v in values]),
    )
