"""The J.S. Bach chorales (JSB Chorales) as four-voice key numbers, piano rolls and MIDI files.

The 382 chorales ship in fusedrnn/datasets/data/jsb_chorales/jsb_chorales.tgz (with a README:
source, split and licence). The archive holds `jsb_chorales/{train,valid,test}/chorale_NNN.csv`:
229 train, 76 valid and 77 test chorales in the split of Boulanger-Lewandowski, Bengio and
Vincent (ICML 2012), numbered 000-228, 229-304 and 305-381. Each file starts with the header row
`note0,note1,note2,note3`; every further row is one chord of a 1/16-note grid (100 to 640 chords a
chorale), four integers, one a voice, 0 where that voice is silent.

What the data shows (checked on all 92,536 chords):

* the numbers are MIDI note numbers (60 = middle C), not 88-key piano indices: the columns span
  60-81, 52-74, 46-69 and 36-66 with medians 71 (B4), 65 (F4), 59 (B3) and 51 (E-flat 3), the
  soprano, alto, tenor and bass ranges. Read as piano keys (middle C = 40) the soprano would sit
  around G6, far above any choir. They span 36 (C2) to 81 (A5): LOW and HIGH below;
* note0..note3 are soprano, alto, tenor, bass: highest voice first. The voices do cross, though:
  in 2,224 chords the sounding notes are not in descending order (an alto below the tenor, ...);
* two voices often sing the same key (a unison, 7,375 chords). A piano roll has one cell per
  key, so a unison becomes a single 1 and the roll holds at most four keys a frame;
* 384 chords have a silent voice, 256 of them all four (rests inside 21 chorales);
* a key held for several 1/16 steps is repeated on every row: the format cannot tell a held note
  from a repeated one, so `write_midi` plays a key that continues as one long note.

`to_piano_roll` and `from_piano_roll` convert between the voices [T, 4] and multi-hot frames
[T, KEYS] (column k is key LOW + k). The way back cannot restore voice order, unisons or which
voice rested, only the set of sounding keys: it lists them highest first and pads with 0, so
`to_piano_roll(from_piano_roll(roll)) == roll` for every roll of the data, and
`from_piano_roll(to_piano_roll(c))` is `c` with each chord's distinct keys sorted downwards.

`write_midi` writes a chorale (or any [T, voices] array of MIDI keys) as a Standard MIDI File
that a player or notation program opens; `read_midi_notes` reads back the notes of such a file.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import struct
import tarfile
import zlib
from importlib import resources
from numbers import Real
from pathlib import Path, PurePosixPath

import numpy as np

from ..training.checkpoint import replace_atomically
from .checks import check_int

SPLITS = ("train", "valid", "test")
VOICES = 4  # soprano, alto, tenor, bass
HEADER = "note0,note1,note2,note3"
TOP_FOLDER = "jsb_chorales"  # the archive's one top-level folder

# The key range of the data (MIDI note numbers, C2..A5), 0 meaning a silent voice; see above.
LOW, HIGH = 36, 81
KEYS = HIGH - LOW + 1  # 46 piano-roll columns

# MIDI time: a quarter note is 4 steps of the 1/16 grid, so bars and beats come out right in a
# notation program; a step is a whole number of ticks whatever step_seconds is, because the tempo
# (microseconds a quarter) is set from step_seconds rather than the ticks from a fixed tempo.
STEPS_PER_QUARTER = 4
TICKS_PER_STEP = 24
TICKS_PER_QUARTER = STEPS_PER_QUARTER * TICKS_PER_STEP
_MAX_TEMPO = 0xFFFFFF  # the tempo meta event holds 3 bytes of microseconds a quarter note

_ROW = re.compile(r"\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*", re.ASCII)
_INTEGER = re.compile(r"\s*\d+\s*", re.ASCII)


def default_path() -> Path:
    """The copy of jsb_chorales.tgz inside the installed package."""
    return Path(str(resources.files("fusedrnn.datasets").joinpath("data/jsb_chorales/jsb_chorales.tgz")))


# -- loading -------------------------------------------------------------------------------------


def parse_chorale(text: str, source: str = "chorale") -> np.ndarray:
    """int64 [T, 4] key numbers from one chorale's CSV text; `source` names it in errors.

    The first non-blank line may be the header `note0,note1,note2,note3`; blank lines are
    skipped. Every other line must be four comma-separated integers, each 0 (silent) or a key
    in LOW..HIGH; anything else, or a file without a chord, raises a ValueError naming `source`
    and the line number.
    """
    rows = []
    seen_line = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        first, seen_line = not seen_line, True
        if first and line.strip().replace(" ", "") == HEADER:
            continue
        match = _ROW.fullmatch(line)
        if match is None:
            fields = line.split(",")
            if len(fields) != VOICES:
                what = f"got {len(fields)} field{'s' if len(fields) != 1 else ''}"
            else:
                bad = next(f for f in fields if not _INTEGER.fullmatch(f))
                what = f"{bad.strip()!r} is not a non-negative integer"
            raise ValueError(f"{source} line {number}: expected 4 comma-separated integers "
                             f"(note0..note3), {what}: {line.strip()!r}")
        chord = [int(g) for g in match.groups()]
        bad_keys = [k for k in chord if k != 0 and not LOW <= k <= HIGH]
        if bad_keys:
            raise ValueError(f"{source} line {number}: key {bad_keys[0]} is outside {LOW}..{HIGH} "
                             f"(0 = silent voice): {line.strip()!r}")
        rows.append(chord)
    if not rows:
        raise ValueError(f"{source}: no chords, expected rows of 4 key numbers after the header")
    return np.array(rows, dtype=np.int64)


def _split_of(parts: tuple[str, ...]) -> str | None:
    """The split of a member path `[jsb_chorales/]<split>/<name>.csv`, None if it is not one."""
    if len(parts) == 3 and parts[0] == TOP_FOLDER:
        parts = parts[1:]
    if len(parts) == 2 and parts[0] in SPLITS and parts[1] not in ("", ".csv"):
        return parts[0]
    return None


def _decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as e:
        raise ValueError(f"could not read {source}: expected ASCII text, comma-separated integers "
                         f"({e})") from e


def _read_archive(path: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    found: dict[str, list[tuple[str, np.ndarray]]] = {split: [] for split in SPLITS}
    names: set[str] = set()
    try:
        # members are read into memory one by one, never extracted, so no member can write anywhere
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if not member.name.endswith(".csv"):
                    continue  # folders, READMEs, ...
                where = f"{path} member {member.name!r}"
                parts = PurePosixPath(member.name).parts
                split = None if ".." in parts or member.name.startswith("/") else _split_of(parts)
                if split is None:
                    raise ValueError(f"{where}: a csv outside the expected layout "
                                     f"{TOP_FOLDER}/{{{','.join(SPLITS)}}}/<name>.csv")
                if not member.isfile():
                    raise ValueError(f"{where}: not a regular file (a link or device)")
                if member.name in names:
                    raise ValueError(f"{where}: appears twice in the archive")
                names.add(member.name)
                handle = archive.extractfile(member)
                assert handle is not None  # a regular file always has contents
                found[split].append((parts[-1], parse_chorale(_decode(handle.read(), where), where)))
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"could not read {path}: not a readable (gzipped) tar archive ({e})") from e
    return found


def _read_folder(path: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    found: dict[str, list[tuple[str, np.ndarray]]] = {split: [] for split in SPLITS}
    for split in SPLITS:
        folder = path / split
        if not folder.is_dir():
            raise ValueError(f"{path}: no folder {split!r}; expected {{{','.join(SPLITS)}}}/*.csv")
        for file in folder.glob("*.csv"):
            if file.is_file():
                text = _decode(file.read_bytes(), str(file))
                found[split].append((file.name, parse_chorale(text, str(file))))
    return found


def load_jsb_chorales(path: str | os.PathLike | None = None) -> dict[str, list[np.ndarray]]:
    """{'train': [...], 'valid': [...], 'test': [...]}: each chorale int64 [T, 4] (see parse_chorale).

    `path` is a tar archive (gzipped or not; the shipped jsb_chorales.tgz when None) read in
    place, or a folder holding train/, valid/ and test/ with one .csv a chorale. Within a split
    the chorales come in file-name order. In an archive, members that are not .csv files are
    ignored; a .csv must be `[jsb_chorales/]<split>/<name>.csv` and a regular file. A csv that
    breaks these rules or is not rows of four keys in {0} | LOW..HIGH, a damaged archive, or a
    split without a chorale raises a ValueError naming the file (and member and line).
    """
    path = Path(path) if path is not None else default_path()
    found = _read_folder(path) if path.is_dir() else _read_archive(path)
    chorales = {}
    for split in SPLITS:
        if not found[split]:
            raise ValueError(f"{path}: no chorales in split {split!r}; expected {split}/<name>.csv files")
        chorales[split] = [chorale for _, chorale in sorted(found[split], key=lambda item: item[0])]
    return chorales


# -- piano rolls ---------------------------------------------------------------------------------


def _check_chorale(chorale, caller: str) -> np.ndarray:
    array = np.asarray(chorale)
    if array.ndim != 2 or not (np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_):
        raise ValueError(f"{caller}: chorale must be an integer array [T, voices] of key numbers "
                         f"(0 = silent), got {array.dtype} {list(array.shape)}")
    return array.astype(np.int64, copy=False)


def to_piano_roll(chorale: np.ndarray, low: int = LOW, keys: int = KEYS) -> np.ndarray:
    """float32 [T, keys] multi-hot frames: 1 at (t, note - low) for every voice sounding at t.

    chorale is an integer array [T, voices] (any number of voices); 0 is a silent voice and sets
    nothing, and two voices on one key set one cell. A note outside low..low + keys - 1 raises
    a ValueError naming the frame and voice.
    """
    chorale = _check_chorale(chorale, "to_piano_roll")
    low = check_int(low, "low", 1)  # key 0 would clash with 0 = silent
    keys = check_int(keys, "keys", 1)
    sounding = chorale != 0
    outside = sounding & ((chorale < low) | (chorale >= low + keys))
    if outside.any():
        t, voice = (int(i[0]) for i in np.nonzero(outside))
        raise ValueError(f"to_piano_roll: frame {t} voice {voice} holds note {int(chorale[t, voice])}, "
                         f"outside the roll's keys {low}..{low + keys - 1}")
    roll = np.zeros((chorale.shape[0], keys), dtype=np.float32)
    frames, voices = np.nonzero(sounding)
    roll[frames, chorale[frames, voices] - low] = 1.0
    return roll


def padded_piano_rolls(chorales, low: int = LOW, keys: int = KEYS):
    """The chorales' piano rolls as one zero-padded float32 tensor [N, T_max, keys], and each
    chorale's frame count (int64 [N]): a batch for a model that packs by length."""
    import torch

    rolls = [torch.from_numpy(to_piano_roll(c, low, keys)) for c in chorales]
    lengths = torch.tensor([len(r) for r in rolls], dtype=torch.int64)
    return torch.nn.utils.rnn.pad_sequence(rolls, batch_first=True), lengths


def from_piano_roll(roll: np.ndarray, low: int = LOW, voices: int = VOICES) -> np.ndarray:
    """int64 [T, voices]: each frame's sounding keys (roll > 0.5) as key numbers, highest first.

    Highest first matches the files' soprano-first order wherever the voices do not cross;
    frames with fewer keys are padded with 0 (silent) at the end. A frame with more than
    `voices` sounding keys raises a ValueError naming it rather than silently dropping notes:
    to keep a model's most likely keys, choose them first (PianoRollModel.generate's max_voices).
    """
    array = np.asarray(roll)
    if array.ndim != 2 or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"from_piano_roll: roll must be a numeric array [T, keys], "
                         f"got {array.dtype} {list(array.shape)}")
    low = check_int(low, "low", 1)
    voices = check_int(voices, "voices", 1)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError("from_piano_roll: roll holds NaN or infinite values")
    active = array > 0.5
    counts = active.sum(axis=1)
    if counts.size and counts.max() > voices:
        t = int(np.argmax(counts > voices))
        raise ValueError(f"from_piano_roll: frame {t} has {int(counts[t])} sounding keys, more than "
                         f"voices={voices}")
    columns = np.where(active, np.arange(array.shape[1]), -1)
    highest = -np.sort(-columns, axis=1)[:, :voices]  # descending; silent cells (-1) sink to the end
    out = np.zeros((array.shape[0], voices), dtype=np.int64)
    out[:, :highest.shape[1]] = np.where(highest >= 0, highest + low, 0)
    return out


# -- MIDI ----------------------------------------------------------------------------------------


def _varlen(value: int) -> bytes:
    """A MIDI variable-length quantity: 7 bits a byte, most significant first, high bit = more."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _notes(chorale: np.ndarray) -> list[tuple[int, int, int]]:
    """(key, start_step, end_step): a key sounds from the frame it appears until it stops."""
    notes = []
    for key in np.unique(chorale[chorale != 0]):
        sounding = (chorale == key).any(axis=1).astype(np.int8)  # unisons count once
        edges = np.diff(np.concatenate(([0], sounding, [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        notes.extend((int(key), int(s), int(e)) for s, e in zip(starts, ends, strict=True))
    return notes


def write_midi(path: str | os.PathLike, chorale: np.ndarray, step_seconds: float = 0.125,
               program: int = 19, velocity: int = 80) -> None:
    """Write a chorale as a Standard MIDI File (format 0, one track, channel 1).

    chorale is an integer array [T, voices] of MIDI keys 1..127, 0 = silent (any voice count).
    Each frame lasts step_seconds (0.125 s: a quarter note at 120 bpm is 4 frames); a key that
    sounds in consecutive frames is one note, whichever voices hold it. The track holds the
    tempo, a program change (19: church organ; 0..127) and the notes at `velocity` (1..127),
    then end-of-track; TICKS_PER_QUARTER ticks a quarter note, TICKS_PER_STEP a frame. The tempo
    is whole microseconds a quarter note, so step_seconds is rounded to 1/4 microsecond.
    The file is written to a temporary file in the same folder and then moved into place, so
    a reader never sees half a file. Bad arguments raise a ValueError naming them.
    """
    chorale = _check_chorale(chorale, "write_midi")
    if chorale.size and (chorale.min() < 0 or chorale.max() > 127):
        raise ValueError(f"write_midi: chorale keys must be MIDI keys 1..127 or 0 (silent), "
                         f"got values {int(chorale.min())}..{int(chorale.max())}")
    if isinstance(step_seconds, bool) or not isinstance(step_seconds, Real) \
            or not math.isfinite(step_seconds) or step_seconds <= 0:
        raise ValueError(f"step_seconds must be a finite number > 0, got {step_seconds!r}")
    exact = step_seconds * STEPS_PER_QUARTER * 1e6  # microseconds a quarter note
    if not 1 <= exact <= _MAX_TEMPO:
        raise ValueError(f"step_seconds must lie in [{1e-6 / STEPS_PER_QUARTER:g}, "
                         f"{_MAX_TEMPO * 1e-6 / STEPS_PER_QUARTER:g}] s (what a MIDI tempo can hold), "
                         f"got {step_seconds!r}")
    tempo = round(exact)
    program = check_int(program, "program", 0, 127)
    velocity = check_int(velocity, "velocity", 1, 127)  # a note on at velocity 0 means note off
    path = Path(path)

    events = []  # (tick, order, bytes): note offs (0) before note ons (1) at the same tick
    for key, start, end in _notes(chorale):
        events.append((start * TICKS_PER_STEP, 1, bytes((0x90, key, velocity))))
        events.append((end * TICKS_PER_STEP, 0, bytes((0x80, key, 0))))
    events.sort()
    track = bytearray()
    track += b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big")
    track += bytes((0x00, 0xC0, program))
    tick = 0
    for when, _, message in events:
        track += _varlen(when - tick) + message
        tick = when
    track += b"\x00\xff\x2f\x00"
    data = (b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
            + b"MTrk" + struct.pack(">I", len(track)) + bytes(track))

    # the training checkpoints' writer: a temporary file renamed over path, permissions as umask says
    replace_atomically(path, lambda f: f.write(data))


class _Reader:
    """Bytes with a position, each read checked against the end (a truncated file raises)."""

    def __init__(self, data: bytes, source: str):
        self.data, self.pos, self.source = data, 0, source

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"{self.source}: truncated at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def varlen(self) -> int:
        value = 0
        for _ in range(4):  # MIDI caps a variable-length quantity at 4 bytes
            b = self.byte()
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                return value
        raise ValueError(f"{self.source}: variable-length number longer than 4 bytes at byte {self.pos}")


_DATA_BYTES = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}


def _track_notes(track: _Reader) -> list[tuple[int, int, int]]:
    notes, sounding = [], {}  # sounding: (channel, key) -> start tick
    tick, status = 0, None
    while True:
        tick += track.varlen()
        first = track.byte()
        if first == 0xFF:  # meta event: type, length, data
            kind = track.byte()
            length = track.varlen()
            track.take(length)
            status = None  # meta events cancel running status
            if kind == 0x2F:
                break
            continue
        if first >= 0xF0:
            raise ValueError(f"{track.source}: system event 0x{first:02X} at byte {track.pos - 1} "
                             "is not supported")
        if first & 0x80:
            status, data = first, []
        elif status is None:
            raise ValueError(f"{track.source}: data byte 0x{first:02X} at byte {track.pos - 1} "
                             "without a status (running status with nothing to run on)")
        else:
            data = [first]  # running status: the status byte was left out
        while len(data) < _DATA_BYTES[status & 0xF0]:
            data.append(track.byte())
        if any(d & 0x80 for d in data):
            raise ValueError(f"{track.source}: bad data byte in event 0x{status:02X} at byte {track.pos}")
        kind, channel = status & 0xF0, status & 0x0F
        if kind not in (0x80, 0x90):
            continue  # program change, controllers, ...: no effect on which notes sound when
        key = data[0]
        if kind == 0x90 and data[1] > 0:
            if (channel, key) in sounding:
                raise ValueError(f"{track.source}: note on for key {key} at tick {tick} while it "
                                 "already sounds")
            sounding[(channel, key)] = tick
        else:  # note off, or note on at velocity 0
            if (channel, key) not in sounding:
                raise ValueError(f"{track.source}: note off for key {key} at tick {tick} while it is "
                                 "not sounding")
            notes.append((key, sounding.pop((channel, key)), tick))
    if track.pos != len(track.data):
        raise ValueError(f"{track.source}: {len(track.data) - track.pos} bytes after end-of-track")
    if sounding:
        key = min(sounding)[1]
        raise ValueError(f"{track.source}: key {key} still sounds at end-of-track")
    return notes


def read_midi_notes(path: str | os.PathLike) -> list[tuple[int, int, int]]:
    """Sorted (key, start_tick, end_tick) of every note in a MIDI file written by write_midi.

    This is NOT a general MIDI parser: it reads Standard MIDI Files of format 0 or 1 with ticks
    a quarter note, note on/off (velocity 0 = off) with or without running status, skipping other
    channel messages and meta events. Anything else (another chunk, SMPTE time, sysex, a note
    off without its note on, a note still sounding at end-of-track, a truncated file) raises a
    ValueError naming the file.
    """
    path = Path(path)
    reader = _Reader(path.read_bytes(), str(path))
    if reader.take(4) != b"MThd":
        raise ValueError(f"{path}: not a Standard MIDI File (does not start with 'MThd')")
    length = struct.unpack(">I", reader.take(4))[0]
    if length < 6:
        raise ValueError(f"{path}: header chunk of {length} bytes, expected 6")
    form, tracks, division = struct.unpack(">HHH", reader.take(6))
    reader.take(length - 6)
    if form not in (0, 1):
        raise ValueError(f"{path}: MIDI format {form} is not supported (only 0 and 1)")
    if form == 0 and tracks != 1:
        raise ValueError(f"{path}: format 0 must have exactly one track, has {tracks}")
    if division & 0x8000:
        raise ValueError(f"{path}: SMPTE time division is not supported (only ticks a quarter note)")
    notes = []
    for number in range(tracks):
        if reader.take(4) != b"MTrk":
            raise ValueError(f"{path}: expected track chunk {number} ('MTrk') at byte {reader.pos - 4}")
        size = struct.unpack(">I", reader.take(4))[0]
        notes += _track_notes(_Reader(reader.take(size), f"{path} track {number}"))
    if reader.pos != len(reader.data):
        raise ValueError(f"{path}: {len(reader.data) - reader.pos} bytes after the last track")
    return sorted(notes)
