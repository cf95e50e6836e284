"""Chicago Transit Authority daily ridership (bus and rail boardings), 2001-01-01..2021-11-30.

The CSV ships in fusedrnn/datasets/data/cta_ridership/ with its README (source and attribution).
load_ridership() parses it with the csv module and NumPy only; Ridership.to_frame() gives a
date-indexed pandas DataFrame for those who have pandas installed.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
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


COLUMNS = ("service_date", "day_type", "bus", "rail_boardings", "total_rides")
_US_DATE = re.compile(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*")  # MM/DD/YYYY, as the CTA file writes it
_ISO_DATE = re.compile(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*")  # YYYY-MM-DD


def _parse_date(text: str) -> np.datetime64:
    """MM/DD/YYYY (the shipped file's format) or YYYY-MM-DD; ValueError for anything else."""
    if match := _US_DATE.fullmatch(text):
        month, day, year = match.groups()
    elif match := _ISO_DATE.fullmatch(text):
        year, month, day = match.groups()
    else:
        raise ValueError(f"expected a date as MM/DD/YYYY (or YYYY-MM-DD), got {text!r}")
    try:
        return np.datetime64(f"{int(year):04d}-{int(month):02d}-{int(day):02d}", "D")
    except ValueError:
        raise ValueError(f"{text!r} is not a calendar date") from None


def _parse_count(text: str, column: str) -> float:
    """A boarding count: a finite, non-negative number."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number in column {column!r}, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"expected a finite non-negative count in column {column!r}, got {text!r}")
    return value


def _read_text(path: Path) -> str:
    """The file as UTF-8 text, a leading byte-order mark dropped (a spreadsheet's "CSV UTF-8"
    export writes one, which would otherwise hide inside the first column's name)."""
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"{path}: line {line}: not UTF-8 text (byte {raw[e.start]:#04x}); save the "
                         "file as UTF-8 CSV") from None


def load_ridership(path: str | os.PathLike | None = None) -> Ridership:
    """Read the CTA daily boarding totals: dates parsed, duplicate rows dropped, sorted by date.

    A date listed twice with different numbers is an error, and so is a missing day (the
    forecasting windows assume one row per calendar day). Malformed input -- a missing column,
    a short or long row, a bad date, a count that is not a finite non-negative number, or no
    rows at all -- raises a ValueError naming the file and the line.
    """
    path = Path(path) if path is not None else DATA_DIR / CSV_NAME
    rows: dict[np.datetime64, tuple[str, float, float, float]] = {}
    first_line: dict[np.datetime64, int] = {}
    with io.StringIO(_read_text(path), newline="") as f:
        reader = csv.DictReader(f)
        try:
            header = reader.fieldnames
            if header is None:
                raise ValueError(f"{path}: the file is empty (expected the header {','.join(COLUMNS)} "
                                 "and one row per day)")
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise ValueError(f"{path}: line 1: missing column(s) {', '.join(map(repr, missing))}; "
                                 f"expected the header {','.join(COLUMNS)}, got {','.join(header)}")
            for line in reader:
                number = reader.line_num
                if None in line or None in line.values():
                    n_fields = len(header) + len(line.get(None, ())) - sum(v is None for v in line.values())
                    raise ValueError(f"{path}: line {number}: expected {len(header)} fields "
                                     f"({','.join(header)}), got {n_fields}")
                try:
                    date = _parse_date(line["service_date"])
                    row = (line["day_type"], _parse_count(line["bus"], "bus"),
                           _parse_count(line["rail_boardings"], "rail_boardings"),
                           _parse_count(line["total_rides"], "total_rides"))
                except ValueError as e:
                    raise ValueError(f"{path}: line {number}: {e}") from None
                if row[0] not in DAY_TYPES:
                    raise ValueError(f"{path}: line {number}: unknown day type {row[0]!r} on {date} "
                                     f"(expected one of {', '.join(DAY_TYPES)})")
                if date in rows and rows[date] != row:
                    raise ValueError(f"{path}: line {number}: {date} appears twice with different values "
                                     f"(first on line {first_line[date]})")
                rows[date] = row
                first_line.setdefault(date, number)
        except csv.Error as e:
            raise ValueError(f"{path}: line {reader.line_num}: malformed CSV: {e}") from None
    if not rows:
        raise ValueError(f"{path}: no data rows after the header (expected one row per day)")
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


# --- forecasting -------------------------------------------------------------------------------

SPLITS = {  # inclusive date ranges; a split's targets lie inside it, its inputs may reach back
    "train": ("2016-01-01", "2018-12-31"),
    "valid": ("2019-01-01", "2019-05-31"),
    "test": ("2019-06-01", "2019-12-31"),
}


def calendar_day_types(dates: np.ndarray) -> np.ndarray:
    """Day types from the weekday alone (W Mon-Fri, A Saturday, U Sunday); no holidays."""
    weekday = (dates.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    return np.where(weekday < 5, "W", np.where(weekday == 5, "A", "U"))


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> np.datetime64:
    """The n-th given weekday (Monday = 0) of a month."""
    first = np.datetime64(f"{year:04d}-{month:02d}-01", "D")
    first_weekday = (first.astype(np.int64) + 3) % 7
    return first + np.timedelta64(int((weekday - first_weekday) % 7 + 7 * (n - 1)), "D")


def _easter(year: int) -> np.datetime64:
    """Gregorian Easter Sunday (the anonymous Gregorian computus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    r = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * r) // 451
    month = (h + r - 7 * m + 114) // 31
    day = (h + r - 7 * m + 114) % 31 + 1
    return np.datetime64(f"{year:04d}-{month:02d}-{day:02d}", "D")


def holiday_flags(dates: np.ndarray) -> np.ndarray:
    """[N] float32: 1 on days of reduced ridership that the day types do not mark (the CTA runs
    its weekday service on them): Martin Luther King Jr. Day, Presidents' Day, Good Friday,
    Columbus Day, Veterans Day, the day after Thanksgiving, and Dec 24 - Jan 2. Known in advance,
    like the day types."""
    dates = dates.astype("datetime64[D]")
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    special: set[np.datetime64] = set()
    for y in range(int(years.min()) - 1, int(years.max()) + 1):
        special.update([
            _nth_weekday(y, 1, 0, 3), _nth_weekday(y, 2, 0, 3), _easter(y) - np.timedelta64(2, "D"),
            _nth_weekday(y, 10, 0, 2), np.datetime64(f"{y:04d}-11-11", "D"),
            _nth_weekday(y, 11, 3, 4) + np.timedelta64(1, "D"),
        ])
        special.update(np.datetime64(f"{y:04d}-12-24", "D") + np.arange(10).astype("timedelta64[D]"))
    return np.fromiter((day in special for day in dates), dtype=np.float32, count=len(dates))


@dataclass(frozen=True)
class Scaling:
    """Standardisation of the boardings by the training split's mean and standard deviation."""

    rail_mean: float
    rail_std: float
    bus_mean: float
    bus_std: float

    @classmethod
    def fit(cls, data: Ridership, split: str = "train") -> Scaling:
        lo, hi = _split_range(data, split)
        return cls(float(data.rail[lo:hi].mean()), float(data.rail[lo:hi].std()),
                   float(data.bus[lo:hi].mean()), float(data.bus[lo:hi].std()))

    def rail_to_boardings(self, z):
        return z * self.rail_std + self.rail_mean


def _split_range(data: Ridership, split: str) -> tuple[int, int]:
    from .windows import date_range

    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    return date_range(data.dates, *SPLITS[split])


def forecast_features(data: Ridership, scaling: Scaling, horizon: int = 7,
                      multivariate: bool = True, holidays: bool = True) -> np.ndarray:
    """[N, C] float32 inputs, one row per day t, all known at the end of day t.

    Univariate: the standardised rail boardings (C = 1). Multivariate: standardised rail and bus
    boardings, then the one-hot day types (W, A, U) of days t, t+1, ..., t+horizon -- the calendar
    is known in advance -- and with holidays=True the holiday_flags of the same days
    (C = 2 + 3 * (horizon + 1) [+ horizon + 1]). Past the end of the data the day types come
    from the weekday (calendar_day_types), which knows no holidays.
    """
    rail = (data.rail - scaling.rail_mean) / scaling.rail_std
    if not multivariate:
        return rail[:, None].astype(np.float32)
    bus = (data.bus - scaling.bus_mean) / scaling.bus_std
    n = len(data)
    future = data.dates[-1] + np.arange(1, horizon + 1).astype("timedelta64[D]")
    types = np.concatenate([data.day_type, calendar_day_types(future)])
    onehot = (types[:, None] == np.array(DAY_TYPES)[None, :]).astype(np.float32)
    if holidays:
        flags = holiday_flags(np.concatenate([data.dates, future]))[:, None]
        onehot = np.concatenate([onehot, flags], axis=1)
    ahead = np.concatenate([onehot[k:k + n] for k in range(horizon + 1)], axis=1)
    return np.concatenate([rail[:, None], bus[:, None], ahead], axis=1).astype(np.float32)


def n_forecast_features(horizon: int = 7, multivariate: bool = True, holidays: bool = True) -> int:
    return (2 + (3 + holidays) * (horizon + 1)) if multivariate else 1


@dataclass
class ForecastWindows:
    """The windows of one split, as arrays (see fusedrnn.datasets.windows for the vocabulary).

    x: [n, length, C] inputs; y: [n, length, H] standardised rail targets at every step (0 where
    masked); mask: [n, length, H] True where the step's target day lies in the split;
    origins: [n] day positions of the last step; last_target: [n, H] rail boardings of the last
    step's targets (NaN outside the split); dates: the origins' dates.
    """

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    origins: np.ndarray
    last_target: np.ndarray
    dates: np.ndarray

    def __len__(self) -> int:
        return len(self.origins)


def forecast_windows(data: Ridership, split: str, scaling: Scaling, length: int = 56,
                     horizon: int = 7, multivariate: bool = True, holidays: bool = True,
                     features: np.ndarray | None = None) -> ForecastWindows:
    """Every window whose last step has a target in the split (forecast_origins), with targets
    at every step for sequence-to-sequence training, masked to the split."""
    from .windows import forecast_origins, gather_windows, horizon_targets, target_mask

    lo, hi = _split_range(data, split)
    if features is None:
        features = forecast_features(data, scaling, horizon, multivariate, holidays)
    origins = forecast_origins(lo, hi, horizon, length)
    targets = horizon_targets(data.rail, horizon)
    mask = target_mask(len(data), horizon, lo, hi) & np.isfinite(targets)
    z = np.where(mask, (np.nan_to_num(targets) - scaling.rail_mean) / scaling.rail_std, 0.0)
    last = np.where(mask[origins], targets[origins], np.nan)
    return ForecastWindows(
        x=gather_windows(features, origins, length), y=gather_windows(z, origins, length).astype(np.float32),
        mask=gather_windows(mask, origins, length), origins=origins, last_target=last,
        dates=data.dates[origins],
    )
