"""Malformed ridership CSVs and CMUdict files raise a ValueError naming the file, line and what was
expected; well-formed small files (and the shipped ones, see test_forecasting / test_g2p) still load."""

import re

import numpy as np
import pytest

from fusedrnn.datasets import cmudict
from fusedrnn.datasets.ridership import load_ridership

from .conftest import write_text

HEADER = "service_date,day_type,bus,rail_boardings,total_rides\n"


def _csv(tmp_path, body, header=HEADER):
    path = tmp_path / "ridership.csv"
    path.write_text(header + body)
    return path


def _raises(path, *parts):
    """pytest.raises(ValueError) matching the path and then each part, in order."""
    return pytest.raises(ValueError, match=re.escape(str(path)) + "".join(".*" + p for p in parts))


# -- ridership ---------------------------------------------------------------------------------


def test_ridership_well_formed_file_loads(tmp_path):
    # the shipped file's MM/DD/YYYY, an ISO date, a blank line and an extra column are all fine
    path = _csv(tmp_path, "01/01/2020,U,1,10,11,x\n\n2020-01-02,W,2.5,20,22.5,y\n",
                header="service_date,day_type,bus,rail_boardings,total_rides,note\n")
    d = load_ridership(path)
    assert d.dates.tolist() == [np.datetime64("2020-01-01"), np.datetime64("2020-01-02")]
    assert d.bus.tolist() == [1.0, 2.5] and d.rail.tolist() == [10.0, 20.0]
    assert d.day_type.tolist() == ["U", "W"]


def test_ridership_truncated_row(tmp_path):
    path = _csv(tmp_path, "01/01/2020,U,1,10,11\n01/02/2020,W,2\n")
    with _raises(path, "line 3", "expected 5 fields", "got 3"):
        load_ridership(path)


def test_ridership_row_with_extra_fields(tmp_path):
    path = _csv(tmp_path, "01/01/2020,U,1,10,11,99\n")
    with _raises(path, "line 2", "expected 5 fields", "got 6"):
        load_ridership(path)


def test_ridership_missing_column(tmp_path):
    path = _csv(tmp_path, "01/01/2020,U,1,10,11\n", header="date,day_type,bus,rail_boardings,total_rides\n")
    with _raises(path, "missing column", "'service_date'", "expected the header"):
        load_ridership(path)


def test_ridership_utf8_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "ridership.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "01/01/2020,U,1,10,11\n").encode())  # Excel's CSV UTF-8
    assert load_ridership(path).rail.tolist() == [10.0]


def test_ridership_not_utf8(tmp_path):
    path = tmp_path / "ridership.csv"
    path.write_bytes((HEADER + "01/01/2020,U,1,10,11\n").encode() + b"01/02/2020,W,2,2\xff0,22\n")
    with _raises(path, "line 3", "not UTF-8 text", "0xff"):
        load_ridership(path)


@pytest.mark.parametrize("date", ["2020.01.01", "01-01-2020", "1/1/20", "01/01/2020/1", "Jan 1 2020"])
def test_ridership_bad_date_format(tmp_path, date):
    path = _csv(tmp_path, f"{date},U,1,10,11\n")
    with _raises(path, "line 2", "MM/DD/YYYY", re.escape(repr(date))):
        load_ridership(path)


def test_ridership_impossible_date(tmp_path):
    path = _csv(tmp_path, "01/01/2020,U,1,10,11\n02/30/2020,W,1,10,11\n")
    with _raises(path, "line 3", "not a calendar date"):
        load_ridership(path)


@pytest.mark.parametrize("body", ["", "\n\n"])
def test_ridership_header_only(tmp_path, body):
    path = _csv(tmp_path, body)
    with _raises(path, "no data rows"):
        load_ridership(path)


def test_ridership_empty_file(tmp_path):
    path = _csv(tmp_path, "", header="")
    with _raises(path, "empty", "expected the header"):
        load_ridership(path)


@pytest.mark.parametrize(("row", "column"), [
    ("01/02/2020,W,nan,10,11", "bus"), ("01/02/2020,W,1,-5,11", "rail_boardings"),
    ("01/02/2020,W,1,10,inf", "total_rides"), ("01/02/2020,W,1,lots,11", "rail_boardings"),
    ("01/02/2020,W,,10,11", "bus"),
])
def test_ridership_bad_counts(tmp_path, row, column):
    path = _csv(tmp_path, f"01/01/2020,U,1,10,11\n{row}\n")
    with _raises(path, "line 3", f"column '{column}'"):
        load_ridership(path)


def test_ridership_unknown_day_type_names_the_line(tmp_path):
    path = _csv(tmp_path, "01/01/2020,U,1,10,11\n01/02/2020,X,1,10,11\n")
    with _raises(path, "line 3", "unknown day type 'X'", "W, A, U"):
        load_ridership(path)


# -- cmudict -----------------------------------------------------------------------------------

CMUDICT_07B = """\
;;; # CMUdict  --  Major Version: 0.07
;;; comment lines of cmudict-0.7b
!EXCLAMATION-POINT  EH2 K S K L AH0 M EY1 SH AH0 N P OY2 N T
'BOUT  B AW1 T
TOMATO  T AH0 M EY1 T OW2
TOMATO(1)  T AH0 M AA1 T OW2
hello HH AH0 L OW1 # a trailing comment, lower-case word
hello(2) hh eh0 l ow1
"""


def _dict(tmp_path, text, name="d.dict"):
    return write_text(tmp_path / name, text)


@pytest.mark.parametrize("name", ["d.dict", "d.dict.gz"])
def test_cmudict_well_formed_file_loads(tmp_path, name):
    entries = cmudict.load_cmudict(_dict(tmp_path, CMUDICT_07B, name), stress=True)
    assert list(entries) == ["!exclamation-point", "'bout", "tomato", "hello"]
    assert entries["tomato"] == [("T", "AH0", "M", "EY1", "T", "OW2"), ("T", "AH0", "M", "AA1", "T", "OW2")]
    assert entries["hello"] == [("HH", "AH0", "L", "OW1"), ("HH", "EH0", "L", "OW1")]
    # the phone set checked against is exactly the one the shipped dictionary documents
    data = cmudict.default_path().parent
    assert sorted(cmudict.SYMBOLS) == (data / "cmudict.symbols").read_text().split()
    assert sorted(cmudict.PHONES) == [line.split()[0] for line in (data / "cmudict.phones").open()]


def test_cmudict_truncated_gzip(tmp_path):
    full = _dict(tmp_path, CMUDICT_07B * 50, "full.gz").read_bytes()
    path = tmp_path / "truncated.gz"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match=f"could not read {re.escape(str(path))}.*truncated or not gzip"):
        cmudict.load_cmudict(path)


def test_cmudict_gz_name_but_not_gzip(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_text(CMUDICT_07B)
    with pytest.raises(ValueError, match=f"could not read {re.escape(str(path))}.*truncated or not gzip"):
        cmudict.load_cmudict(path)


def test_cmudict_not_utf8(tmp_path):
    path = tmp_path / "latin1.dict"
    path.write_bytes("caf\xe9 K AE0 F EY1\n".encode("latin-1"))
    with pytest.raises(ValueError, match="could not read " + re.escape(str(path)) + ".*not UTF-8"):
        cmudict.load_cmudict(path)


@pytest.mark.parametrize("bad", ["123 !!", "B1 AH0", "AH3", "HH AH0 L OW1 XX"])
def test_cmudict_junk_phones(tmp_path, bad):
    path = _dict(tmp_path, f";;; header\nok OW1 K\nword {bad}\n")
    with _raises(path, "line 3", "unknown phone", "expected ARPAbet"):
        cmudict.load_cmudict(path)


def test_parse_cmudict_junk_phones_without_a_path():
    with pytest.raises(ValueError, match=r"CMUdict line 2: unknown phone\(s\) '123', '!!'"):
        cmudict.parse_cmudict(["ok OW1 K", "word 123 !!"])


@pytest.mark.parametrize(("text", "name"), [("", "d.dict"), ("", "d.gz"),
                                            (";;; only comments\n# and this\n\n", "d.dict")])
def test_cmudict_no_entries(tmp_path, text, name):
    path = _dict(tmp_path, text, name)
    with pytest.raises(ValueError, match="no entries in " + re.escape(str(path))):
        cmudict.load_cmudict(path)
