"""Pen-stroke sketches: the Quick, Draw! ndjson files, sketch-rnn's .npz files, and stroke-3/-5.

Formats and conventions
-----------------------
stroke-3
    A sketch is a float32 array [n, 3] with one row (dx, dy, lift) per pen point: (dx, dy) is
    the point's offset from the previous point, and lift = 1 on the last point of each stroke
    (the pen is lifted after it), else 0. The last row of a complete sketch has lift = 1. This
    is the layout of the sketch-rnn dataset. The FIRST row's offset is taken from (0, 0), so it
    holds the absolute position of the first point and a sketch keeps where it was drawn;
    stroke3_to_polylines undoes drawing_to_stroke3 exactly for integer coordinates (the
    simplified and raw Quick, Draw! files hold integers).

stroke-5
    [n + 1, 5] (or [max_len, 5]) rows (dx, dy, p_down, p_up, p_end): p_down = 1 - lift and
    p_up = lift for the n points of the sketch, and every row after them -- at least one, then
    padding up to max_len -- is the end row (0, 0, 0, 0, 1).

Quick, Draw! ndjson (one file per category)
    One JSON object per line: "word" (str), "countrycode" (str), "timestamp" (str), "recognized"
    (bool), "key_id" (str) and "drawing", a list of strokes with absolute coordinates. A stroke
    is [[x0, x1, ...], [y0, y1, ...]] in the "simplified" files, and [[x...], [y...], [t...]]
    (t in milliseconds) in the "raw" files; the times are checked but not used for stroke-3.
    Only "word" and "drawing" are required here: a missing countrycode, timestamp or key_id
    reads as "", a missing recognized as True (a hand-made file need not carry them).

sketch-rnn .npz
    An npz with arrays "train", "valid" and "test" (not necessarily all), each a numpy OBJECT
    array of int16 [n, 3] stroke-3 sketches. An object array is stored as a pickle, which
    np.load refuses with allow_pickle=False and which, with allow_pickle=True, could run any
    code an untrusted file names. load_sketch_rnn_npz therefore reads the zip and each .npy
    header itself and unpickles object arrays with an unpickler that can only rebuild plain
    numpy arrays (see _ArrayUnpickler); a numeric member [count, n, 3] is read without pickle.

offset_scale gives the standard deviation of all dx and dy values, by which sketch-rnn divides
the offsets; SketchDataset applies it (and optionally converts to stroke-5), collate_sketches
pads a batch. synthetic_sketches draws simple labelled shapes: the offline stand-in that
examples and tests train on, as nothing here downloads data.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import pickle
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.lib import format as npy_format

from .files import open_text

_DRAWING_SHAPE = ("a non-empty list of strokes, each [[x0, x1, ...], [y0, y1, ...]] (simplified files) "
                  "or [[x...], [y...], [t...]] (raw files) with at least one point")


# --- stroke-3 and stroke-5 ---------------------------------------------------------------------

def _stroke_coordinates(stroke, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) of one stroke as float64, after checking its shape; ValueError saying what is wrong."""
    if isinstance(stroke, (str, bytes, dict)) or not hasattr(stroke, "__len__"):
        raise ValueError(f"stroke {index} is {type(stroke).__name__}, expected [xs, ys] or [xs, ys, ts]")
    if len(stroke) not in (2, 3):
        raise ValueError(f"stroke {index} has {len(stroke)} coordinate lists, expected 2 (x, y) or "
                         "3 (x, y, t)")
    columns = []
    for name, values in zip("xyt", stroke, strict=False):  # the length was checked above
        # asarray without a dtype, then a kind check: a cast to float would quietly accept "3" or True
        array = np.asarray(values)
        if array.ndim != 1 or array.dtype.kind not in "iuf":
            raise ValueError(f"stroke {index}: the {name} coordinates are not a flat list of numbers")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"stroke {index}: the {name} coordinates are not all finite")
        columns.append(array)
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise ValueError(f"stroke {index}: the coordinate lists differ in length "
                         f"({', '.join(str(len(c)) for c in columns)})")
    if not len(columns[0]):
        raise ValueError(f"stroke {index} has no points")
    return columns[0].astype(np.float64), columns[1].astype(np.float64)


def _drawing_points(drawing) -> tuple[np.ndarray, np.ndarray]:
    """All points of a drawing [N, 2] float64 and [N] bool marking each stroke's last point."""
    if isinstance(drawing, (str, bytes, dict)) or not hasattr(drawing, "__len__") or not len(drawing):
        raise ValueError(f"expected a drawing: {_DRAWING_SHAPE}")
    points, ends = [], []
    for index, stroke in enumerate(drawing):
        xs, ys = _stroke_coordinates(stroke, index)
        points.append(np.stack([xs, ys], axis=1))
        end = np.zeros(len(xs), dtype=bool)
        end[-1] = True
        ends.append(end)
    return np.concatenate(points), np.concatenate(ends)


def _points_to_stroke3(points: np.ndarray, ends: np.ndarray) -> np.ndarray:
    stroke3 = np.empty((len(points), 3), dtype=np.float32)
    # offsets in float64 and from (0, 0) for the first point, so the absolute start survives
    stroke3[:, :2] = np.diff(points, axis=0, prepend=np.zeros((1, 2)))
    stroke3[:, 2] = ends
    return stroke3


def drawing_to_stroke3(drawing) -> np.ndarray:
    """A Quick, Draw! drawing (list of strokes, absolute coordinates) as stroke-3 float32 [n, 3].

    A stroke is [xs, ys] or [xs, ys, ts] (the times are ignored); one-point strokes are kept.
    The first row is the first point's offset from (0, 0). An empty drawing, an empty stroke or
    coordinates that are not equally long lists of finite numbers raise a ValueError.
    """
    return _points_to_stroke3(*_drawing_points(drawing))


def _as_stroke3(stroke3, what: str = "sketch") -> np.ndarray:
    """A float32 [n, 3] view of a stroke-3 sketch, or a ValueError naming `what`."""
    array = np.asarray(stroke3)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{what}: expected a stroke-3 array [n, 3] (dx, dy, lift), got shape "
                         f"{tuple(array.shape)}")
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{what}: expected numbers, got dtype {array.dtype}")
    return array.astype(np.float32, copy=False)


def stroke3_to_polylines(stroke3) -> list[np.ndarray]:
    """The absolute polylines of a stroke-3 sketch, each float32 [k, 2] (for plotting and checks).

    Positions are the running sums of the offsets from (0, 0); a stroke ends after a row with
    lift > 0.5 (so sampled, not quite binary lifts also work). Points after the last lift, if
    any, form a final polyline.
    """
    array = _as_stroke3(stroke3)
    positions = np.cumsum(array[:, :2].astype(np.float64), axis=0).astype(np.float32)
    cuts = np.flatnonzero(array[:, 2] > 0.5) + 1
    return [part for part in np.split(positions, cuts) if len(part)]


def stroke3_to_stroke5(stroke3, max_len: int | None = None) -> np.ndarray:
    """stroke-3 [n, 3] -> stroke-5 float32 [n + 1, 5], or [max_len, 5] padded with end rows.

    A sketch of more than max_len - 1 points raises a ValueError: stroke-5 always ends with at
    least one end row (0, 0, 0, 0, 1), which is how a model learns to stop.
    """
    array = _as_stroke3(stroke3)
    n = len(array)
    rows = n + 1 if max_len is None else max_len
    if rows < n + 1:
        raise ValueError(f"the sketch has {n} points, longer than max_len - 1 = {max_len - 1} (stroke-5 "
                         "keeps at least one end row); truncate it or raise max_len")
    stroke5 = np.zeros((rows, 5), dtype=np.float32)
    stroke5[:n, :2] = array[:, :2]
    stroke5[:n, 2] = 1 - array[:, 2]
    stroke5[:n, 3] = array[:, 2]
    stroke5[n:, 4] = 1
    return stroke5


def offset_scale(sketches) -> float:
    """The standard deviation (ddof 0) of every dx and dy value of the sketches, pooled.

    sketch-rnn divides the offsets by it (computed on the training split). A single [n, 3] array
    counts as one sketch. No points at all raise a ValueError.
    """
    if isinstance(sketches, np.ndarray) and sketches.ndim == 2:
        sketches = [sketches]
    offsets = [_as_stroke3(s, f"sketch {i}")[:, :2] for i, s in enumerate(sketches)]
    values = np.concatenate([o.ravel() for o in offsets]) if offsets else np.empty(0)
    if not values.size:
        raise ValueError("offset_scale needs at least one point, got no sketches or only empty ones")
    return float(np.std(values.astype(np.float64)))


# --- sketch-rnn .npz ---------------------------------------------------------------------------

def _numpy_globals() -> dict[tuple[str, str], object]:
    """The globals a pickled plain ndarray may name, under numpy 2's module names and numpy 1's.

    The functions are taken from numpy's own reductions rather than imported by name, which
    would touch the deprecated numpy.core alias (or the private numpy._core).
    """
    reconstruct = np.empty(0).__reduce__()[0]  # ndarray pickles as _reconstruct(...) + state
    scalar = np.float64(0).__reduce__()[0]  # numpy scalars as scalar(dtype, bytes)
    frombuffer = np.arange(2).__reduce_ex__(5)[0]  # protocol 5 rebuilds arrays from a buffer
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays, dtypes and scalars and nothing else.

    Any other global (a function, a class, a module) raises pickle.UnpicklingError before it is
    looked up, so a crafted file cannot run code while it is read.
    """

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load the global {module}.{name}: a sketch file may only hold plain numpy "
                "arrays") from None


def _read_npy(data: bytes, where: str) -> np.ndarray:
    """One .npy member: object arrays through _ArrayUnpickler, the rest without pickle."""
    fp = io.BytesIO(data)
    try:
        version = npy_format.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = npy_format.read_array_header_2_0(fp)
        else:  # 3.0 only differs for structured dtypes with non-latin-1 field names, never sketches
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except ValueError as e:
        raise ValueError(f"{where}: not a readable .npy array ({e})") from None
    if not dtype.hasobject:
        fp.seek(0)
        return npy_format.read_array(fp, allow_pickle=False)
    if dtype != np.dtype(object):
        raise ValueError(f"{where}: expected an object array of sketches, got dtype {dtype}")
    try:
        # latin1: sketch-rnn's files were pickled under Python 2, whose byte strings hold the data
        array = _ArrayUnpickler(fp, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(f"{where}: {e}") from None
    except (EOFError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{where}: damaged object array ({type(e).__name__}: {e})") from None
    if not isinstance(array, np.ndarray) or array.dtype != object or array.shape != tuple(shape):
        raise ValueError(f"{where}: the pickled data is not the object array {tuple(shape)} of its header")
    return array


def _split_sketches(array: np.ndarray, where: str) -> list[np.ndarray]:
    """An npz member as a list of float32 stroke-3 sketches, each checked."""
    if array.dtype == object:
        if array.ndim != 1:
            raise ValueError(f"{where}: expected a 1-D object array of sketches, got shape {array.shape}")
        items = list(array)
    elif array.ndim == 3:  # a numeric [count, n, 3] block of equally long sketches
        items = list(array)
    else:
        raise ValueError(f"{where}: expected an object array of [n, 3] sketches or a numeric [count, n, 3] "
                         f"array, got {array.dtype} {array.shape}")
    sketches = []
    for index, item in enumerate(items):
        if not isinstance(item, np.ndarray):
            raise ValueError(f"{where} sketch {index}: expected a numpy array, got {type(item).__name__}")
        sketches.append(_as_stroke3(item, f"{where} sketch {index}").copy())
    return sketches


def load_sketch_rnn_npz(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """{split: [float32 stroke-3 sketch, ...]} for every array in a sketch-rnn .npz, in file order.

    Object arrays are unpickled with a restricted unpickler: a file that names anything but
    numpy's array-building globals raises pickle.UnpicklingError naming the global, without
    calling it. A sketch that is not [n, 3] numbers raises a ValueError naming the split and
    its index; a file that is not a zip, or has no .npy members, raises a ValueError.
    """
    path = Path(path)
    splits: dict[str, list[np.ndarray]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):  # np.savez writes only NAME.npy members
                    continue
                name = member[:-len(".npy")]
                where = f"{path}: split {name!r}"
                splits[name] = _split_sketches(_read_npy(archive.read(member), where), where)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise ValueError(f"could not read {path}: not an .npz (zip) file or damaged ({e})") from e
    if not splits:
        raise ValueError(f"no arrays in {path}: expected .npy members such as train, valid, test")
    return splits


# --- Quick, Draw! ndjson -----------------------------------------------------------------------

@dataclass(frozen=True)
class QuickDrawRecord:
    """One Quick, Draw! drawing; `drawing` is the list of strokes as the file gives it."""

    word: str
    drawing: list
    countrycode: str = ""
    recognized: bool = True
    key_id: str = ""
    timestamp: str = ""

    def stroke3(self) -> np.ndarray:
        """The drawing as stroke-3 float32 [n, 3] (see drawing_to_stroke3)."""
        return drawing_to_stroke3(self.drawing)


def _record(obj, where: str) -> QuickDrawRecord:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object with 'word' and 'drawing', got "
                         f"{type(obj).__name__}")
    if not isinstance(obj.get("word"), str):
        raise ValueError(f"{where}: expected 'word' to be a string, got {obj.get('word')!r}")
    if "drawing" not in obj:
        raise ValueError(f"{where}: no 'drawing'; expected {_DRAWING_SHAPE}")
    try:
        _drawing_points(obj["drawing"])
    except ValueError as e:
        raise ValueError(f"{where}: bad 'drawing' ({e}); expected {_DRAWING_SHAPE}") from None
    recognized = obj.get("recognized", True)
    if not isinstance(recognized, bool):
        raise ValueError(f"{where}: expected 'recognized' to be true or false, got {recognized!r}")
    text = {}
    for key in ("countrycode", "key_id", "timestamp"):
        value = obj.get(key, "")
        if not isinstance(value, (str, int)) or isinstance(value, bool):  # key_id may come as a number
            raise ValueError(f"{where}: expected {key!r} to be a string, got {value!r}")
        text[key] = str(value)
    return QuickDrawRecord(word=obj["word"], drawing=obj["drawing"], recognized=recognized, **text)


def _iter_records(lines: Iterable[str], source: str) -> Iterator[QuickDrawRecord]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: malformed JSON ({e.msg} at column {e.colno}); expected one "
                             "JSON object per line") from None
        yield _record(obj, where)


def parse_quickdraw_ndjson(lines: Iterable[str], source: str = "<ndjson>") -> list[QuickDrawRecord]:
    """QuickDrawRecords from ndjson lines, in order; blank lines are skipped.

    A line that is not JSON, not an object, lacks 'word' or 'drawing', or whose drawing is not
    a list of [xs, ys] / [xs, ys, ts] strokes raises a ValueError naming `source`, the line
    number and what was expected.
    """
    return list(_iter_records(lines, source))


def load_quickdraw_ndjson(path: str | os.PathLike, recognized_only: bool = False,
                          limit: int | None = None) -> list[QuickDrawRecord]:
    """Read a Quick, Draw! ndjson file (plain or .gz), e.g. full_simplified_cat.ndjson.

    recognized_only keeps the drawings the game's classifier recognised; limit stops after that
    many kept records (the category files hold over 100,000). A file without a single record,
    a damaged gzip or a file that is not UTF-8 raises a ValueError naming the path.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or >= 0, got {limit}")
    path = Path(path)
    if limit == 0:
        return []
    with open_text(path) as f:
        records = _iter_records(f, str(path))
        first = next(records, None)
        if first is None:
            raise ValueError(f"no drawings in {path}: expected one JSON object per line")
        kept = (r for r in itertools.chain([first], records) if r.recognized or not recognized_only)
        return list(itertools.islice(kept, limit))


# --- synthetic shapes --------------------------------------------------------------------------

SYNTHETIC_CLASSES = ("circle", "square", "triangle", "zigzag", "spiral")


def _path(vertices: np.ndarray, rng: np.random.Generator, lo: int = 1, hi: int = 4) -> np.ndarray:
    """Points along the edges between consecutive vertices, lo..hi points per edge (a pen samples
    straight lines at an uneven rate), the last vertex included."""
    parts = []
    for a, b in itertools.pairwise(vertices):
        m = int(rng.integers(lo, hi + 1))
        parts.append(a + np.linspace(0, 1, m, endpoint=False)[:, None] * (b - a))
    parts.append(vertices[-1:])
    return np.concatenate(parts)


def _circle(rng: np.random.Generator) -> list[np.ndarray]:
    k = int(rng.integers(16, 41))
    # a hand-drawn circle overshoots its start a little and is rarely round
    sweep = rng.choice([-1, 1]) * 2 * np.pi * rng.uniform(1.0, 1.1)
    t = rng.uniform(0, 2 * np.pi) + sweep * np.linspace(0, 1, k)
    r = 1 + rng.normal(0, 0.03, k)
    points = np.stack([r * np.cos(t) * rng.uniform(0.8, 1.2), r * np.sin(t)], axis=1)
    if rng.random() < 0.25:  # two arcs
        cut = int(rng.integers(4, k - 3))
        return [points[:cut], points[cut:]]
    return [points]


def _square(rng: np.random.Generator) -> list[np.ndarray]:
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    corners += rng.normal(0, 0.05, corners.shape)
    closed = np.concatenate([corners, corners[:1]])
    strokes = int(rng.choice([1, 2, 4], p=[0.5, 0.3, 0.2]))
    if strokes == 1:
        return [_path(closed, rng)]
    if strokes == 2:  # two L shapes
        return [_path(closed[0:3], rng), _path(closed[2:5], rng)]
    return [_path(closed[i:i + 2], rng) for i in range(4)]


def _triangle(rng: np.random.Generator) -> list[np.ndarray]:
    angles = np.pi / 2 + np.array([0, 2, 4]) * np.pi / 3 + rng.normal(0, 0.08, 3)
    corners = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    closed = np.concatenate([corners, corners[:1]])
    if rng.random() < 0.3:  # one stroke per side
        return [_path(closed[i:i + 2], rng) for i in range(3)]
    return [_path(closed, rng)]


def _zigzag(rng: np.random.Generator) -> list[np.ndarray]:
    teeth = int(rng.integers(3, 8))
    xs = np.linspace(-1, 1, teeth + 1)
    ys = rng.uniform(0.3, 0.7) * np.where(np.arange(teeth + 1) % 2 == 0, -1.0, 1.0)
    vertices = np.stack([xs, ys], axis=1) + rng.normal(0, 0.04, (teeth + 1, 2))
    if rng.random() < 0.25:  # the pen lifted at a middle vertex
        cut = int(rng.integers(1, teeth))
        return [_path(vertices[:cut + 1], rng, 1, 3), _path(vertices[cut:], rng, 1, 3)]
    return [_path(vertices, rng, 1, 3)]


def _spiral(rng: np.random.Generator) -> list[np.ndarray]:
    k = int(rng.integers(30, 81))
    s = np.linspace(0, 1, k)
    t = rng.uniform(0, 2 * np.pi) + rng.choice([-1, 1]) * 2 * np.pi * rng.uniform(1.5, 3.0) * s
    r = 0.1 + 0.9 * s
    return [np.stack([r * np.cos(t), r * np.sin(t)], axis=1)]


_SHAPES = (_circle, _square, _triangle, _zigzag, _spiral)


def synthetic_sketches(n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, tuple[str, ...]]:
    """n stroke-3 sketches of hand-drawn-looking shapes, their int64 labels, and the class names.

    The classes are SYNTHETIC_CLASSES (circle, square, triangle, zigzag, spiral), drawn with 1 to
    4 strokes as fits the shape (a square as one closed stroke, two L shapes or four sides),
    with a random point count, size, rotation and position on a 256 x 256 canvas, jittered and
    rounded to integer coordinates like the simplified Quick, Draw! files. The labels are
    balanced (every class once in each run of 5, shuffled), so n >= 5 covers all classes. The
    same n and seed give the same sketches (a numpy Generator).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(SYNTHETIC_CLASSES)).astype(np.int64)
    sketches = []
    for label in labels:
        strokes = _SHAPES[label](rng)
        size = rng.uniform(20, 70)  # half the width, in canvas units
        angle = rng.uniform(0, 2 * np.pi)
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        center = rng.uniform(1.5 * size + 2, 253 - 1.5 * size, 2)  # a rotated square's corner stays inside
        points, ends = [], []
        for stroke in strokes:
            placed = center + size * stroke @ rotation.T + rng.normal(0, 0.015 * size, stroke.shape)
            points.append(np.clip(np.round(placed), 0, 255))
            end = np.zeros(len(stroke), dtype=bool)
            end[-1] = True
            ends.append(end)
        sketches.append(_points_to_stroke3(np.concatenate(points), np.concatenate(ends)))
    return sketches, labels, SYNTHETIC_CLASSES


# --- torch dataset -----------------------------------------------------------------------------

def _truncate(sketch: np.ndarray, max_len: int) -> np.ndarray:
    """The first max_len points; the last kept point lifts the pen, so the sketch still ends."""
    if len(sketch) <= max_len:
        return sketch
    cut = sketch[:max_len].copy()
    cut[-1, 2] = 1
    return cut


class SketchDataset(torch.utils.data.Dataset):
    """(sketch, label) pairs for training: item i is (float32 tensor, int64 scalar tensor).

    The sketch is [n_i, 3] stroke-3, or [n_i + 1, 5] stroke-5 with stroke5=True, with dx and dy
    divided by `scale` (None: offset_scale of the sketches given; pass the training split's
    scale to the validation and test sets). Sketches longer than max_len are cut to their first
    max_len points, the last kept point with lift = 1.
    """

    def __init__(self, sketches: Sequence, labels, scale: float | None = None, stroke5: bool = False,
                 max_len: int | None = None):
        labels = np.asarray(labels)
        if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
            raise ValueError(f"labels must be a 1-D array of integers, got {labels.dtype} {labels.shape}")
        if len(labels) != len(sketches):
            raise ValueError(f"{len(sketches)} sketches but {len(labels)} labels")
        if max_len is not None and max_len < 1:
            raise ValueError(f"max_len must be None or >= 1, got {max_len}")
        arrays = [_as_stroke3(s, f"sketch {i}") for i, s in enumerate(sketches)]
        empty = [i for i, a in enumerate(arrays) if not len(a)]
        if empty:
            raise ValueError(f"sketch {empty[0]} has no points")
        if scale is None:
            scale = offset_scale(arrays)
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive number, got {scale} (do the sketches all have "
                             "zero offsets?)")
        self.scale = float(scale)
        self.stroke5 = stroke5
        self.max_len = max_len
        self.sketches = arrays if max_len is None else [_truncate(a, max_len) for a in arrays]
        self.labels = labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.sketches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        sketch = self.sketches[i]
        x = stroke3_to_stroke5(sketch) if self.stroke5 else sketch.copy()
        x[:, :2] /= self.scale
        return torch.from_numpy(x), torch.tensor(self.labels[i], dtype=torch.int64)


def collate_sketches(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[(sketch [n_i, C], label), ...] -> (x [B, T_max, C] float32, lengths [B], labels [B]).

    Rows past a sketch's length are zeros (for stroke-5 the lengths include its end row, so a
    model that needs end rows in the padding can set x[b, lengths[b]:, 4] = 1). Use it as a
    DataLoader's collate_fn.
    """
    if not batch:
        raise ValueError("collate_sketches got an empty batch")
    sketches = [torch.as_tensor(s, dtype=torch.float32) for s, _ in batch]
    channels = {tuple(s.shape[1:]) for s in sketches}
    if any(s.dim() != 2 for s in sketches) or len(channels) != 1:
        shapes = [tuple(s.shape) for s in sketches]
        raise ValueError(f"expected sketches [n, C] with the same C, got shapes {shapes}")
    lengths = torch.tensor([len(s) for s in sketches], dtype=torch.int64)
    x = torch.zeros(len(sketches), int(lengths.max()), sketches[0].shape[1], dtype=torch.float32)
    for b, s in enumerate(sketches):
        x[b, :len(s)] = s
    labels = torch.tensor([int(label) for _, label in batch], dtype=torch.int64)
    return x, lengths, labels
