"""JSB Chorales: the shipped archive (and what the data holds), loading from archives and folders (and
its errors), piano-roll round trips, and writing MIDI files (read back by the minimal reader)."""

import hashlib
import io
import os
import struct
import tarfile

import numpy as np
import pytest
import torch

from fusedrnn.datasets.jsb_chorales import (
    HIGH,
    KEYS,
    LOW,
    TICKS_PER_QUARTER,
    TICKS_PER_STEP,
    default_path,
    from_piano_roll,
    load_jsb_chorales,
    padded_piano_rolls,
    read_midi_notes,
    to_piano_roll,
    write_midi,
)

SHA256 = "e722fbc866fc1ba0bac56a6fcad95d7e3e584da80173e13932e3da441440efd7"
SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def chorales():
    return load_jsb_chorales()


def _all(chorales):
    return [c for split in SPLITS for c in chorales[split]]


# -- the shipped data ----------------------------------------------------------------------------


def test_default_path_is_the_shipped_archive():
    path = default_path()
    assert path.name == "jsb_chorales.tgz" and path.is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256


def test_shipped_archive_splits_shapes_and_keys(chorales):
    assert set(chorales) == set(SPLITS)
    assert [len(chorales[s]) for s in SPLITS] == [229, 76, 77]
    lengths = []
    for c in _all(chorales):
        assert isinstance(c, np.ndarray) and c.dtype == np.int64 and c.ndim == 2 and c.shape[1] == 4
        lengths.append(len(c))
    assert min(lengths) == 100 and max(lengths) == 640 and sum(lengths) == 92536
    every = np.concatenate(_all(chorales))
    sounding = every[every != 0]
    assert ((every == 0) | ((every >= LOW) & (every <= HIGH))).all()
    assert (LOW, HIGH, KEYS) == (36, 81, 46)
    assert sounding.min() == LOW and sounding.max() == HIGH  # the constants are the data's range


def test_loader_matches_an_independent_read_in_file_name_order(chorales):
    """Every member parsed by numpy (header skipped), sorted by name, equals what the loader returns."""
    with tarfile.open(default_path()) as archive:
        members = sorted(m.name for m in archive if m.name.endswith(".csv"))
        for split in SPLITS:
            names = [n for n in members if n.split("/")[1] == split]
            assert len(names) == len(chorales[split])
            for name, chorale in zip(names, chorales[split], strict=True):
                text = archive.extractfile(name).read().decode()
                assert text.splitlines()[0] == "note0,note1,note2,note3"
                expected = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
                np.testing.assert_array_equal(chorale, expected)
    # the split's numbering follows the files: 000-228, 229-304, 305-381
    for split, first, last in (("train", 0, 228), ("valid", 229, 304), ("test", 305, 381)):
        names = [n.rsplit("/", 1)[1] for n in members if n.split("/")[1] == split]
        assert names == [f"chorale_{i:03d}.csv" for i in range(first, last + 1)]
    np.testing.assert_array_equal(chorales["train"][0][0], [74, 70, 65, 58])


def test_voices_are_soprano_alto_tenor_bass_in_midi_numbers(chorales):
    every = np.concatenate(_all(chorales))
    ranges = [(int(v[v > 0].min()), int(v[v > 0].max())) for v in every.T]
    assert ranges == [(60, 81), (52, 74), (46, 69), (36, 66)]  # S, A, T, B with 60 = middle C
    medians = [float(np.median(v[v > 0])) for v in every.T]
    assert medians == sorted(medians, reverse=True)  # note0 is the highest voice


def test_unisons_crossings_and_rests_are_in_the_data(chorales):
    every = np.concatenate(_all(chorales))
    unisons = crossings = 0
    for chord in every:
        notes = chord[chord > 0]
        unisons += len(set(notes.tolist())) < len(notes)
        crossings += bool((np.diff(notes) > 0).any())
    assert unisons == 7375 and crossings == 2224
    assert (every == 0).any(axis=1).sum() == 384 and (every == 0).all(axis=1).sum() == 256


# -- loading from archives and folders -----------------------------------------------------------


SMALL = {
    "train": {"chorale_010.csv": [[72, 67, 64, 48], [72, 67, 64, 48], [0, 0, 0, 0]],
              "chorale_002.csv": [[60, 55, 52, 36]]},
    "valid": {"chorale_020.csv": [[81, 74, 69, 66], [71, 71, 62, 55]]},
    "test": {"chorale_030.csv": [[60, 0, 52, 40]]},
}


def _csv(rows, header=True):
    lines = (["note0,note1,note2,note3"] if header else []) + [",".join(map(str, r)) for r in rows]
    return "\n".join(lines) + "\n"


def _write_folder(root, files=SMALL):
    for split, chorales in files.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for name, rows in chorales.items():
            (root / split / name).write_text(rows if isinstance(rows, str) else _csv(rows))
    return root


def _write_tgz(path, members):
    """A gzipped tar of {member name: text}, members in the given order."""
    with tarfile.open(path, "w:gz") as archive:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _small_members(top="jsb_chorales/", files=SMALL):
    return {f"{top}{split}/{name}": rows if isinstance(rows, str) else _csv(rows)
            for split, chorales in files.items() for name, rows in chorales.items()}


def _expected_small():
    return {split: [np.array(SMALL[split][name], dtype=np.int64) for name in sorted(SMALL[split])]
            for split in SPLITS}


def _assert_same(loaded, expected):
    assert set(loaded) == set(SPLITS)
    for split in SPLITS:
        assert len(loaded[split]) == len(expected[split])
        for got, want in zip(loaded[split], expected[split], strict=True):
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, want)


def test_folder_and_archive_load_the_same(tmp_path):
    folder = _write_folder(tmp_path / "jsb_chorales")
    (folder / "README.txt").write_text("not a chorale")
    (folder / "train" / "notes.txt").write_text("ignored")
    members = {"jsb_chorales/README.md": "ignored", **_small_members()}
    archive = _write_tgz(tmp_path / "small.tgz", members)
    from_folder, from_archive = load_jsb_chorales(folder), load_jsb_chorales(str(archive))
    _assert_same(from_folder, _expected_small())  # chorale_002 before chorale_010: file-name order
    _assert_same(from_archive, _expected_small())


@pytest.mark.parametrize("top", ["", "./"])
def test_archive_without_the_top_folder_loads(tmp_path, top):
    archive = _write_tgz(tmp_path / "flat.tgz", _small_members(top=top))
    _assert_same(load_jsb_chorales(archive), _expected_small())


def test_header_is_optional_and_blank_lines_are_skipped(tmp_path):
    files = {split: dict(chorales) for split, chorales in SMALL.items()}
    files["valid"]["chorale_020.csv"] = "\n81,74,69,66\n\n71, 71, 62, 55\n\n"
    _assert_same(load_jsb_chorales(_write_folder(tmp_path, files)), _expected_small())


BAD_ROWS = [
    ("60,55,52", "got 3 fields"),
    ("60,55,52,48,40", "got 5 fields"),
    ("60,55,x,48", "'x' is not a non-negative integer"),
    ("60,55,52.5,48", "'52.5' is not a non-negative integer"),
    ("60,55,52,-48", "'-48' is not a non-negative integer"),
    ("60,55,52,35", f"key 35 is outside {LOW}..{HIGH}"),
    ("82,55,52,48", f"key 82 is outside {LOW}..{HIGH}"),
    ("note0,note1,note2,note3", "'note0' is not a non-negative integer"),  # a header only comes first
]


@pytest.mark.parametrize("row, message", BAD_ROWS)
def test_malformed_csv_names_member_and_line(tmp_path, row, message):
    files = {split: dict(chorales) for split, chorales in SMALL.items()}
    files["valid"]["chorale_020.csv"] = "note0,note1,note2,note3\n81,74,69,66\n" + row + "\n"
    archive = _write_tgz(tmp_path / "bad.tgz", _small_members(files=files))
    with pytest.raises(ValueError, match=r"member 'jsb_chorales/valid/chorale_020\.csv' line 3") as error:
        load_jsb_chorales(archive)
    assert message in str(error.value)
    folder = _write_folder(tmp_path / "folder", files)
    with pytest.raises(ValueError, match=r"chorale_020\.csv line 3") as error:
        load_jsb_chorales(folder)
    assert message in str(error.value) and "valid" in str(error.value)


def test_csv_without_chords_raises(tmp_path):
    members = _small_members()
    members["jsb_chorales/test/chorale_031.csv"] = "note0,note1,note2,note3\n"
    with pytest.raises(ValueError, match=r"chorale_031\.csv'?: no chords"):
        load_jsb_chorales(_write_tgz(tmp_path / "a.tgz", members))


@pytest.mark.parametrize("name", ["jsb_chorales/extra/chorale_000.csv",
                                  "jsb_chorales/train/sub/chorale_000.csv", "../train/chorale_000.csv",
                                  "/train/chorale_000.csv", "chorale_000.csv", "other/train/chorale_000.csv"])
def test_csv_outside_the_layout_is_refused(tmp_path, name):
    members = {**_small_members(), name: _csv([[60, 55, 52, 48]])}
    with pytest.raises(ValueError, match="outside the expected layout") as error:
        load_jsb_chorales(_write_tgz(tmp_path / "a.tgz", members))
    assert repr(name) in str(error.value) or name.lstrip("/") in str(error.value)


def test_links_and_duplicate_members_are_refused(tmp_path):
    with tarfile.open(tmp_path / "link.tar", "w") as archive:
        for name, text in _small_members().items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            archive.addfile(info, io.BytesIO(text.encode()))
        link = tarfile.TarInfo("jsb_chorales/test/chorale_099.csv")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    with pytest.raises(ValueError, match=r"chorale_099\.csv'.*not a regular file"):
        load_jsb_chorales(tmp_path / "link.tar")  # plain (not gzipped) tar is read too
    members = _small_members()
    twice = tmp_path / "twice.tar"
    with tarfile.open(twice, "w") as archive:
        for name in [*members, "jsb_chorales/test/chorale_030.csv"]:
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            archive.addfile(info, io.BytesIO(members[name].encode()))
    with pytest.raises(ValueError, match="appears twice"):
        load_jsb_chorales(twice)


def test_missing_split_and_damaged_archive_raise(tmp_path):
    members = {k: v for k, v in _small_members().items() if "/test/" not in k}
    with pytest.raises(ValueError, match="no chorales in split 'test'"):
        load_jsb_chorales(_write_tgz(tmp_path / "a.tgz", members))
    folder = _write_folder(tmp_path / "folder", {"train": SMALL["train"], "valid": SMALL["valid"]})
    with pytest.raises(ValueError, match="no folder 'test'"):
        load_jsb_chorales(folder)
    data = (tmp_path / "a.tgz").read_bytes()
    (tmp_path / "cut.tgz").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r"could not read .*cut\.tgz"):
        load_jsb_chorales(tmp_path / "cut.tgz")
    (tmp_path / "text.tgz").write_text("hello")
    with pytest.raises(ValueError, match=r"could not read .*text\.tgz"):
        load_jsb_chorales(tmp_path / "text.tgz")
    with pytest.raises(FileNotFoundError):
        load_jsb_chorales(tmp_path / "missing.tgz")


def test_non_ascii_csv_raises(tmp_path):
    members = _small_members()
    members["jsb_chorales/test/chorale_030.csv"] = "note0,note1,note2,note3\n60,55,52,4\u00e9\n"
    with pytest.raises(ValueError, match=r"chorale_030\.csv'.*ASCII"):
        load_jsb_chorales(_write_tgz(tmp_path / "a.tgz", members))


# -- piano rolls ---------------------------------------------------------------------------------


def _keys_highest_first(chorale, voices=4):
    """Independent reference: each chord's distinct sounding keys, descending, padded with 0."""
    out = np.zeros((len(chorale), voices), dtype=np.int64)
    for t, chord in enumerate(chorale):
        keys = sorted({int(k) for k in chord if k != 0}, reverse=True)
        out[t, :len(keys)] = keys
    return out


@pytest.mark.parametrize("split", SPLITS)
def test_piano_roll_round_trip_on_the_data(chorales, split):
    for chorale in chorales[split]:
        roll = to_piano_roll(chorale)
        assert roll.dtype == np.float32 and roll.shape == (len(chorale), KEYS)
        assert set(np.unique(roll).tolist()) <= {0.0, 1.0}
        back = from_piano_roll(roll)
        assert back.dtype == np.int64 and back.shape == chorale.shape
        np.testing.assert_array_equal(back, _keys_highest_first(chorale))
        np.testing.assert_array_equal(to_piano_roll(back), roll)  # the roll itself survives exactly
        # where no voices cross, share a key or rest, the voices come back as they were
        plain = np.array([(np.diff(c) < 0).all() and (c > 0).all() for c in chorale])
        np.testing.assert_array_equal(back[plain], chorale[plain])
    assert any(not np.array_equal(from_piano_roll(to_piano_roll(c)), c) for c in chorales[split])


def test_to_piano_roll_cells():
    chorale = np.array([[72, 64, 64, 0], [0, 0, 0, 0], [LOW, HIGH, 60, 48]])
    roll = to_piano_roll(chorale)
    assert roll[0].sum() == 2 and roll[0, 72 - LOW] == 1 and roll[0, 64 - LOW] == 1  # unison: one cell
    assert roll[1].sum() == 0
    assert roll[2, 0] == 1 and roll[2, KEYS - 1] == 1 and roll[2].sum() == 4
    small = to_piano_roll([[62, 60], [61, 0]], low=60, keys=3)
    np.testing.assert_array_equal(small, [[1, 0, 1], [0, 1, 0]])


@pytest.mark.parametrize("chorale, low, keys, match", [
    ([[60, 55, 52, 35]], LOW, KEYS, "frame 0 voice 3 holds note 35"),
    ([[60, 55, 52, 48], [82, 0, 0, 0]], LOW, KEYS, "frame 1 voice 0 holds note 82"),
    ([[63]], 60, 3, "frame 0 voice 0 holds note 63, outside the roll's keys 60..62"),
    ([[60, -1]], LOW, KEYS, "frame 0 voice 1 holds note -1"),
    ([60, 55, 52, 48], LOW, KEYS, "integer array"),
    ([[60.0, 55.0]], LOW, KEYS, "integer array"),
    ([[True, False]], LOW, KEYS, "integer array"),
    ([[60]], 0, KEYS, "low must be"),
    ([[60]], LOW, 0, "keys must be"),
    ([[60]], LOW, 2.0, "keys must be"),
])
def test_to_piano_roll_errors(chorale, low, keys, match):
    with pytest.raises(ValueError, match=match):
        to_piano_roll(chorale, low=low, keys=keys)


def test_from_piano_roll_orders_pads_and_thresholds():
    roll = np.zeros((4, KEYS), dtype=np.float32)
    roll[0, [0, 10, 45]] = 1.0
    roll[1, 5] = 0.5  # exactly 0.5 does not sound
    roll[2, 5] = 0.51
    roll[3, [1, 2, 3, 4]] = 0.9
    expected = [[HIGH, LOW + 10, LOW, 0], [0, 0, 0, 0], [LOW + 5, 0, 0, 0],
                [LOW + 4, LOW + 3, LOW + 2, LOW + 1]]
    np.testing.assert_array_equal(from_piano_roll(roll), expected)
    np.testing.assert_array_equal(from_piano_roll(roll > 0.5, low=10, voices=5)[0], [55, 20, 10, 0, 0])
    np.testing.assert_array_equal(from_piano_roll(np.ones((2, 2)), low=60), [[61, 60, 0, 0]] * 2)
    assert from_piano_roll(np.zeros((0, KEYS))).shape == (0, 4)


def test_from_piano_roll_refuses_more_keys_than_voices():
    roll = np.zeros((5, KEYS))
    roll[3, :5] = 1.0
    with pytest.raises(ValueError, match="frame 3 has 5 sounding keys, more than voices=4"):
        from_piano_roll(roll)
    assert from_piano_roll(roll, voices=5)[3].tolist() == [LOW + 4, LOW + 3, LOW + 2, LOW + 1, LOW]


@pytest.mark.parametrize("roll, kwargs, match", [
    (np.zeros(KEYS), {}, "roll must be a numeric array"),
    (np.array([["a"]]), {}, "roll must be a numeric array"),
    (np.full((1, KEYS), np.nan), {}, "NaN or infinite"),
    (np.zeros((1, KEYS)), {"voices": 0}, "voices must be"),
    (np.zeros((1, KEYS)), {"low": 0}, "low must be"),
    (np.zeros((1, KEYS)), {"low": 36.0}, "low must be"),
])
def test_from_piano_roll_errors(roll, kwargs, match):
    with pytest.raises(ValueError, match=match):
        from_piano_roll(roll, **kwargs)


# -- MIDI ----------------------------------------------------------------------------------------


def _expected_notes(chorale):
    """Independent reference: (key, start, end) ticks of each run of frames in which a key sounds."""
    notes = []
    sets = [{int(k) for k in chord if k} for chord in chorale] + [set()]
    for key in sorted(set().union(*sets)):
        start = None
        for t, keys in enumerate(sets):
            if key in keys and start is None:
                start = t
            elif key not in keys and start is not None:
                notes.append((key, start * TICKS_PER_STEP, t * TICKS_PER_STEP))
                start = None
    return sorted(notes)


def test_held_notes_are_single_notes(tmp_path):
    chorale = np.array([[72, 64, 60, 48],
                        [72, 64, 60, 48],
                        [72, 65, 60, 0],
                        [0, 0, 0, 0],  # a rest: nothing sounds
                        [72, 72, 57, 0],  # unison: one note
                        [67, 60, 72, 0]])  # 72 moves from soprano to tenor: still one note
    path = tmp_path / "song.mid"
    write_midi(path, chorale)
    s = TICKS_PER_STEP
    assert read_midi_notes(path) == [(48, 0, 2 * s), (57, 4 * s, 5 * s), (60, 0, 3 * s), (60, 5 * s, 6 * s),
                                     (64, 0, 2 * s), (65, 2 * s, 3 * s), (67, 5 * s, 6 * s),
                                     (72, 0, 3 * s), (72, 4 * s, 6 * s)]
    assert read_midi_notes(path) == _expected_notes(chorale)


def test_midi_bytes_header_tempo_program_and_end(tmp_path):
    path = tmp_path / "a.mid"
    write_midi(path, [[60, 0, 0, 0]], step_seconds=0.5, program=0, velocity=100)
    data = path.read_bytes()
    assert data.startswith(b"MThd")
    assert data[:14] == b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
    assert data[14:18] == b"MTrk" and struct.unpack(">I", data[18:22])[0] == len(data) - 22
    assert b"\xff\x51\x03" + (2_000_000).to_bytes(3, "big") in data  # 4 steps of 0.5 s a quarter note
    assert b"\xc0\x00" in data and b"\x90\x3c\x64" in data  # program 0; key 60 at velocity 100
    assert data.endswith(b"\x00\xff\x2f\x00")
    write_midi(path, [[60]])  # defaults: 0.125 s a step = 120 quarter notes a minute, church organ
    data = path.read_bytes()
    assert b"\xff\x51\x03" + (500_000).to_bytes(3, "big") in data and b"\xc0\x13" in data


@pytest.mark.parametrize("split", SPLITS)
def test_real_chorales_round_trip_through_midi(chorales, tmp_path, split):
    for i, chorale in enumerate(chorales[split][::8]):
        path = tmp_path / f"{split}_{i}.mid"
        write_midi(path, chorale)
        assert read_midi_notes(path) == _expected_notes(chorale)


def test_empty_chorale_writes_a_valid_file(tmp_path):
    write_midi(tmp_path / "empty.mid", np.zeros((0, 4), dtype=np.int64))
    write_midi(tmp_path / "rests.mid", np.zeros((8, 4), dtype=np.int64))
    assert read_midi_notes(tmp_path / "empty.mid") == [] == read_midi_notes(tmp_path / "rests.mid")


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path, chorales):
    path = tmp_path / "out.mid"
    write_midi(path, chorales["test"][0])
    write_midi(str(path), chorales["test"][1])  # replaces the file
    assert [p.name for p in tmp_path.iterdir()] == ["out.mid"]
    assert read_midi_notes(path) == _expected_notes(chorales["test"][1])
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_midi(path, [[200]])
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.mid"]
    write_midi(tmp_path / "new" / "x.mid", [[60]])  # a missing folder is made, as for checkpoints
    assert read_midi_notes(tmp_path / "new" / "x.mid") == [(60, 0, 24)]
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not the temporary file's private 0600
    (tmp_path / "sub").mkdir()
    with pytest.raises(OSError):  # the target is a folder: os.replace fails, the temporary goes
        write_midi(tmp_path / "sub", [[60]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "out.mid", "sub"]


@pytest.mark.parametrize("kwargs, match", [
    ({"chorale": [60, 64]}, "chorale must be an integer array"),
    ({"chorale": [[60.0]]}, "chorale must be an integer array"),
    ({"chorale": [[128]]}, "MIDI keys 1..127"),
    ({"chorale": [[-1]]}, "MIDI keys 1..127"),
    ({"step_seconds": 0}, "step_seconds must be a finite number > 0"),
    ({"step_seconds": -0.1}, "step_seconds must be a finite number > 0"),
    ({"step_seconds": float("nan")}, "step_seconds must be a finite number > 0"),
    ({"step_seconds": float("inf")}, "step_seconds must be a finite number > 0"),
    ({"step_seconds": True}, "step_seconds must be a finite number > 0"),
    ({"step_seconds": "0.1"}, "step_seconds must be a finite number > 0"),
    ({"step_seconds": 5.0}, "step_seconds must lie in"),
    ({"step_seconds": 1e-8}, "step_seconds must lie in"),
    ({"program": -1}, "program must be an integer in 0..127"),
    ({"program": 128}, "program must be an integer in 0..127"),
    ({"program": 19.0}, "program must be an integer in 0..127"),
    ({"velocity": 0}, "velocity must be an integer in 1..127"),
    ({"velocity": 128}, "velocity must be an integer in 1..127"),
    ({"velocity": True}, "velocity must be an integer in 1..127"),
])
def test_write_midi_argument_errors(tmp_path, kwargs, match):
    args = {"chorale": [[60, 64, 67, 48]], **kwargs}
    with pytest.raises(ValueError, match=match):
        write_midi(tmp_path / "x.mid", **args)
    assert list(tmp_path.iterdir()) == []


def test_step_seconds_keeps_whole_ticks(tmp_path):
    """Any step length gives the same ticks; only the tempo changes."""
    chorale = [[60], [60], [0], [62]]
    for step in (0.1, 0.125, 1 / 3, 2.0):
        write_midi(tmp_path / "x.mid", chorale, step_seconds=step)
        assert read_midi_notes(tmp_path / "x.mid") == [(60, 0, 2 * TICKS_PER_STEP),
                                                       (62, 3 * TICKS_PER_STEP, 4 * TICKS_PER_STEP)]
        tempo = round(step * 4e6)
        assert b"\xff\x51\x03" + tempo.to_bytes(3, "big") in (tmp_path / "x.mid").read_bytes()


# -- the minimal MIDI reader on hand-made files --------------------------------------------------


def _smf(tracks, form=None, division=96):
    form = (0 if len(tracks) == 1 else 1) if form is None else form
    out = b"MThd" + struct.pack(">IHHH", 6, form, len(tracks), division)
    for track in tracks:
        out += b"MTrk" + struct.pack(">I", len(track)) + track
    return out


END = b"\x00\xff\x2f\x00"


def test_reader_running_status_velocity_zero_and_format_1(tmp_path):
    # note on 60, running status note on 64 (delta 0), a controller (skipped), then note-on
    # velocity 0 as note off after a delta of 200 ticks (two bytes: 0x81 0x48), a pitch bend
    # (skipped) and a note off
    track = (b"\x00\x90\x3c\x50" b"\x00\x40\x50" b"\x10\xb0\x07\x64" b"\x81\x48\x90\x3c\x00"
             b"\x00\xe0\x00\x40" b"\x08\x80\x40\x00" + END)
    path = tmp_path / "a.mid"
    path.write_bytes(_smf([track]))
    assert read_midi_notes(path) == [(60, 0, 216), (64, 0, 224)]
    tempo_track = b"\x00\xff\x51\x03\x07\xa1\x20" + END
    other = b"\x05\x91\x30\x40\x05\x81\x30\x40" + END
    path.write_bytes(_smf([tempo_track, track, other]))
    assert read_midi_notes(path) == [(48, 5, 10), (60, 0, 216), (64, 0, 224)]


@pytest.mark.parametrize("data, match", [
    (b"RIFF" + bytes(10), "does not start with 'MThd'"),
    (_smf([END], form=2), "format 2 is not supported"),
    (_smf([END, END], form=0), "format 0 must have exactly one track"),
    (_smf([END], division=0xE728), "SMPTE"),
    (_smf([END])[:-2], "truncated"),
    (_smf([END])[:10], "truncated"),
    (_smf([b"\x00\x90\x3c\x50"]), "truncated"),  # no end-of-track
    (_smf([b"\x00\x80\x3c\x00" + END]), "note off for key 60 at tick 0 while it is not sounding"),
    (_smf([b"\x00\x90\x3c\x50" + END]), "key 60 still sounds at end-of-track"),
    (_smf([b"\x00\x90\x3c\x50\x00\x90\x3c\x50" + END]), "already sounds"),
    (_smf([b"\x00\x3c\x50" + END]), "without a status"),
    (_smf([b"\x00\xf0\x01\xf7" + END]), "system event 0xF0"),
    (_smf([b"\x00\x90\x3c\x90" + END]), "bad data byte"),
    (_smf([b"\xff\xff\xff\xff\x00" + END]), "longer than 4 bytes"),
    (_smf([END + b"\x00"]), "1 bytes after end-of-track"),
    (_smf([END]) + b"junk", "4 bytes after the last track"),
    (_smf([END]).replace(b"MTrk", b"XFIH"), "expected track chunk 0"),
    # a meta event ends running status
    (_smf([b"\x00\xff\x51\x03\x07\xa1\x20\x00\x3c\x50" + END]), "without a status"),
])
def test_reader_refuses_what_it_does_not_understand(tmp_path, data, match):
    path = tmp_path / "bad.mid"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=match) as error:
        read_midi_notes(path)
    assert "bad.mid" in str(error.value)


def test_padded_piano_rolls(chorales):
    some = chorales["valid"][:5]
    rolls, lengths = padded_piano_rolls(some)
    assert rolls.dtype == torch.float32 and lengths.dtype == torch.int64
    assert lengths.tolist() == [len(c) for c in some]
    assert rolls.shape == (5, max(len(c) for c in some), KEYS)
    for roll, n, chorale in zip(rolls, lengths, some, strict=True):
        assert np.array_equal(roll[:n].numpy(), to_piano_roll(chorale))
        assert not roll[n:].any()  # zero padding past each chorale
