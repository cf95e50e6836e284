"""Sketch formats: stroke-3/-5, sketch-rnn .npz (read without trusting pickles), Quick, Draw! ndjson,
synthetic shapes, and the torch dataset and collate function."""

import gzip
import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch
from numpy.lib import format as npy_format

from fusedrnn.datasets import sketches as sk

from .conftest import write_text

# two strokes: three points, then a single point (a dot)
DRAWING = [[[10, 20, 25], [5, 5, 15]], [[40], [30]]]
DRAWING_STROKE3 = np.array([[10, 5, 0], [10, 0, 0], [5, 10, 1], [15, 15, 1]], dtype=np.float32)


# --- stroke-3 / stroke-5 -----------------------------------------------------------------------

def test_drawing_to_stroke3_rows_and_round_trip():
    stroke3 = sk.drawing_to_stroke3(DRAWING)
    assert stroke3.dtype == np.float32
    np.testing.assert_array_equal(stroke3, DRAWING_STROKE3)
    polylines = sk.stroke3_to_polylines(stroke3)
    assert [p.dtype for p in polylines] == [np.float32, np.float32]
    np.testing.assert_array_equal(polylines[0], [[10, 5], [20, 5], [25, 15]])
    np.testing.assert_array_equal(polylines[1], [[40, 30]])


def test_raw_strokes_ignore_times_and_round_trip_large_coordinates():
    rng = np.random.default_rng(0)
    drawing = []
    for k in (1, 7, 30):
        xs, ys = rng.integers(0, 4000, k), rng.integers(-500, 3000, k)
        drawing.append([xs.tolist(), ys.tolist(), sorted(rng.integers(0, 10_000, k).tolist())])
    stroke3 = sk.drawing_to_stroke3(drawing)
    assert stroke3.shape == (38, 3)
    np.testing.assert_array_equal(stroke3[:, 2], np.isin(np.arange(38), [0, 7, 37]))
    for polyline, stroke in zip(sk.stroke3_to_polylines(stroke3), drawing, strict=True):
        np.testing.assert_array_equal(polyline, np.array(stroke[:2], dtype=np.float32).T)
    # with the times dropped the stroke-3 is the same
    np.testing.assert_array_equal(sk.drawing_to_stroke3([s[:2] for s in drawing]), stroke3)


@pytest.mark.parametrize("drawing, message", [
    ([], "non-empty list of strokes"),
    ([[[1, 2], [3]]], "differ in length"),
    ([[[], []]], "no points"),
    ([[[1, 2]]], "2 \\(x, y\\) or 3"),
    ([[[1, "2"], [3, 4]]], "not a flat list of numbers"),
    ([[[1, 2], [3, 4]], "stroke"], "stroke 1 is str"),
])
def test_drawing_errors(drawing, message):
    with pytest.raises(ValueError, match=message):
        sk.drawing_to_stroke3(drawing)


def test_polylines_keep_points_after_the_last_lift():
    stroke3 = np.array([[1, 1, 1], [2, 0, 0], [0, 3, 0]], dtype=np.float32)
    polylines = sk.stroke3_to_polylines(stroke3)
    assert len(polylines) == 2
    np.testing.assert_array_equal(polylines[1], [[3, 1], [3, 4]])


def test_stroke5_layout_and_padding():
    stroke5 = sk.stroke3_to_stroke5(DRAWING_STROKE3)
    expected = np.array([
        [10, 5, 1, 0, 0],
        [10, 0, 1, 0, 0],
        [5, 10, 0, 1, 0],
        [15, 15, 0, 1, 0],
        [0, 0, 0, 0, 1],
    ], dtype=np.float32)
    assert stroke5.dtype == np.float32
    np.testing.assert_array_equal(stroke5, expected)
    padded = sk.stroke3_to_stroke5(DRAWING_STROKE3, max_len=8)
    assert padded.shape == (8, 5)
    np.testing.assert_array_equal(padded[:5], expected)
    np.testing.assert_array_equal(padded[5:], np.tile([0, 0, 0, 0, 1], (3, 1)))
    # exactly one end row still fits
    np.testing.assert_array_equal(sk.stroke3_to_stroke5(DRAWING_STROKE3, max_len=5), expected)
    with pytest.raises(ValueError, match="longer than max_len - 1 = 3"):
        sk.stroke3_to_stroke5(DRAWING_STROKE3, max_len=4)
    with pytest.raises(ValueError, match="stroke-3 array"):
        sk.stroke3_to_stroke5(np.zeros((4, 5)))


def test_offset_scale_pools_dx_and_dy():
    rng = np.random.default_rng(1)
    sketches = [rng.normal(0, 3, (n, 3)).astype(np.float32) for n in (5, 17, 1)]
    for s in sketches:
        s[:, 2] = 0
    expected = np.std(np.concatenate([s[:, :2].astype(np.float64).ravel() for s in sketches]))
    assert sk.offset_scale(sketches) == pytest.approx(expected, rel=1e-12)
    # the lift column plays no part; a single array is one sketch
    assert sk.offset_scale(DRAWING_STROKE3) == pytest.approx(np.std(DRAWING_STROKE3[:, :2]), rel=1e-6)
    with pytest.raises(ValueError, match="at least one point"):
        sk.offset_scale([])
    with pytest.raises(ValueError, match="at least one point"):
        sk.offset_scale([np.zeros((0, 3))])


# --- sketch-rnn .npz ---------------------------------------------------------------------------

def _object_array(items):
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        array[i] = item
    return array


def _int16_sketches(rng, count):
    out = []
    for _ in range(count):
        s = rng.integers(-50, 50, (int(rng.integers(1, 12)), 3)).astype(np.int16)
        s[:, 2] = rng.random(len(s)) < 0.3
        s[-1, 2] = 1
        out.append(s)
    return out


def test_sketch_rnn_npz_object_arrays(tmp_path):
    rng = np.random.default_rng(2)
    data = {name: _int16_sketches(rng, count) for name, count in (("train", 6), ("valid", 2), ("test", 3))}
    path = tmp_path / "cat.npz"
    np.savez_compressed(path, **{name: _object_array(items) for name, items in data.items()})
    # the file really is the kind np.load refuses without pickles
    with np.load(path, allow_pickle=False) as f, pytest.raises(ValueError):
        f["train"]
    splits = sk.load_sketch_rnn_npz(path)
    assert list(splits) == ["train", "valid", "test"]
    for name, items in data.items():
        assert len(splits[name]) == len(items)
        for got, want in zip(splits[name], items, strict=True):
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want.astype(np.float32))


def test_sketch_rnn_npz_numeric_member_and_partial_splits(tmp_path):
    block = np.arange(4 * 6 * 3, dtype=np.int16).reshape(4, 6, 3)
    path = tmp_path / "block.npz"
    np.savez(path, train=block)
    splits = sk.load_sketch_rnn_npz(path)
    assert list(splits) == ["train"]
    assert len(splits["train"]) == 4
    for got, want in zip(splits["train"], block, strict=True):
        np.testing.assert_array_equal(got, want.astype(np.float32))
    np.savez(path, train=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="numeric \\[count, n, 3\\]"):
        sk.load_sketch_rnn_npz(path)


def test_sketch_rnn_npz_bad_sketch_names_split_and_index(tmp_path):
    good = np.zeros((3, 3), dtype=np.int16)
    path = tmp_path / "bad.npz"
    np.savez_compressed(path, train=_object_array([good, good]),
                        valid=_object_array([good, good, np.zeros((4, 2), dtype=np.int16)]))
    with pytest.raises(ValueError, match="split 'valid' sketch 2: expected a stroke-3 array") as info:
        sk.load_sketch_rnn_npz(path)
    assert "(4, 2)" in str(info.value)
    block = tmp_path / "block.npz"
    np.savez(block, test=np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="split 'test' sketch 0"):
        sk.load_sketch_rnn_npz(block)


def _touch(path):
    """What a malicious pickle would run: leaves a file behind, so a test can see it ran."""
    with open(path, "w") as f:
        f.write("ran")
    return 0


class _Payload:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _write_object_npz(path, name, array, protocol=None):
    buffer = io.BytesIO()
    if protocol is None:
        npy_format.write_array(buffer, array, allow_pickle=True)
    else:
        npy_format.write_array_header_1_0(buffer, npy_format.header_data_from_array_1_0(array))
        pickle.dump(array, buffer, protocol=protocol)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}.npy", buffer.getvalue())


@pytest.mark.parametrize("use_os_system", [False, True])
def test_sketch_rnn_npz_refuses_other_globals(tmp_path, use_os_system):
    marker = tmp_path / "marker"
    func, arg = (os.system, f"touch {marker}") if use_os_system else (_touch, str(marker))
    # the payload does run when unpickled without restriction (on a copy that writes elsewhere)
    check = tmp_path / "check"
    pickle.loads(pickle.dumps(_Payload(func, f"touch {check}" if use_os_system else str(check))))
    assert check.exists()

    evil = _object_array([np.zeros((2, 3), dtype=np.int16), _Payload(func, arg)])
    path = tmp_path / "evil.npz"
    _write_object_npz(path, "train", evil)
    with pytest.raises(pickle.UnpicklingError, match=f"{func.__module__}.{func.__name__}") as info:
        sk.load_sketch_rnn_npz(path)
    assert "train" in str(info.value)
    assert not marker.exists()


class _Py2StylePickler(pickle._Pickler):
    """Writes byte strings as Python 2's str opcodes (SHORT_BINSTRING / BINSTRING), as the
    sketch-rnn files written under Python 2 hold them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def test_sketch_rnn_npz_numpy1_python2_pickles(tmp_path):
    rng = np.random.default_rng(3)
    items = _int16_sketches(rng, 4)
    items.append(np.zeros((200, 3), dtype=np.int16))  # 1200 bytes: the long BINSTRING form
    array = _object_array(items)
    buffer = io.BytesIO()
    _Py2StylePickler(buffer, protocol=2).dump(array)
    payload = buffer.getvalue()
    # numpy 1.x named the module numpy.core.multiarray; protocol 2 writes it as plain text
    assert b"numpy._core.multiarray\n" in payload
    payload = payload.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, npy_format.header_data_from_array_1_0(array))
    path = tmp_path / "old.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("test.npy", header.getvalue() + payload)
    splits = sk.load_sketch_rnn_npz(path)
    for got, want in zip(splits["test"], items, strict=True):
        np.testing.assert_array_equal(got, want.astype(np.float32))


def test_sketch_rnn_npz_protocol5_pickles(tmp_path):
    items = _int16_sketches(np.random.default_rng(4), 3)
    path = tmp_path / "p5.npz"
    _write_object_npz(path, "valid", _object_array(items), protocol=5)
    for got, want in zip(sk.load_sketch_rnn_npz(path)["valid"], items, strict=True):
        np.testing.assert_array_equal(got, want.astype(np.float32))


def test_sketch_rnn_npz_not_a_zip(tmp_path):
    path = tmp_path / "nope.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not an .npz"):
        sk.load_sketch_rnn_npz(path)


# --- Quick, Draw! ndjson -----------------------------------------------------------------------

def _record(word, drawing, recognized=True, key_id="5152802093400064"):
    return {"word": word, "countrycode": "US", "timestamp": "2017-03-08 21:12:07.26604 UTC",
            "recognized": recognized, "key_id": key_id, "drawing": drawing}


RAW_DRAWING = [[[10, 20, 25], [5, 5, 15], [0, 16, 40]], [[40], [30], [700]]]
RECORDS = [
    _record("cat", DRAWING, key_id="1"),
    _record("cat", [[[0, 255], [0, 255]]], recognized=False, key_id="2"),
    _record("cat", RAW_DRAWING, key_id="3"),
    _record("cat", [[[3], [4]]], key_id="4"),
]


def _write_ndjson(path, records, blank_lines=True):
    text = "\n".join(json.dumps(r) for r in records) + "\n"
    if blank_lines:
        text = "\n" + text.replace("\n", "\n\n", 1)
    return write_text(path, text)


@pytest.mark.parametrize("name", ["cat.ndjson", "cat.ndjson.gz"])
def test_load_quickdraw_ndjson(tmp_path, name):
    records = sk.load_quickdraw_ndjson(_write_ndjson(tmp_path / name, RECORDS))
    assert [r.key_id for r in records] == ["1", "2", "3", "4"]
    first = records[0]
    assert isinstance(first, sk.QuickDrawRecord)
    assert (first.word, first.countrycode, first.recognized) == ("cat", "US", True)
    assert first.timestamp == "2017-03-08 21:12:07.26604 UTC"
    assert first.drawing == DRAWING
    np.testing.assert_array_equal(first.stroke3(), DRAWING_STROKE3)
    # the raw file's times are dropped: the same stroke-3 as the simplified drawing
    assert records[2].drawing == RAW_DRAWING
    np.testing.assert_array_equal(records[2].stroke3(), DRAWING_STROKE3)
    assert not records[1].recognized


def test_quickdraw_recognized_only_and_limit(tmp_path):
    path = _write_ndjson(tmp_path / "cat.ndjson", RECORDS)
    assert [r.key_id for r in sk.load_quickdraw_ndjson(path, recognized_only=True)] == ["1", "3", "4"]
    assert [r.key_id for r in sk.load_quickdraw_ndjson(path, limit=2)] == ["1", "2"]
    assert [r.key_id for r in sk.load_quickdraw_ndjson(path, recognized_only=True, limit=2)] == ["1", "3"]
    assert sk.load_quickdraw_ndjson(path, limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        sk.load_quickdraw_ndjson(path, limit=-1)


def test_quickdraw_limit_stops_before_a_later_bad_line(tmp_path):
    path = tmp_path / "cat.ndjson"
    path.write_text(json.dumps(RECORDS[0]) + "\n{broken\n")
    assert len(sk.load_quickdraw_ndjson(path, limit=1)) == 1
    with pytest.raises(ValueError, match="line 2"):
        sk.load_quickdraw_ndjson(path)


def test_parse_quickdraw_errors_name_source_and_line():
    lines = [json.dumps(RECORDS[0]), "", '{"word": "cat", "drawing": [[[1, 2]']
    with pytest.raises(ValueError, match="cats.ndjson line 3: malformed JSON"):
        sk.parse_quickdraw_ndjson(lines, source="cats.ndjson")
    bad_shape = json.dumps(_record("cat", [[[1, 2], [3, 4], [5, 6], [7, 8]]]))
    with pytest.raises(ValueError, match=r"<ndjson> line 2: bad 'drawing'.*expected a non-empty list"):
        sk.parse_quickdraw_ndjson([json.dumps(RECORDS[0]), bad_shape])
    with pytest.raises(ValueError, match="line 1: .*'word'"):
        sk.parse_quickdraw_ndjson([json.dumps({"drawing": DRAWING})])
    with pytest.raises(ValueError, match="line 1: bad 'drawing'"):
        sk.parse_quickdraw_ndjson([json.dumps(_record("cat", []))])
    with pytest.raises(ValueError, match="line 1: expected a JSON object"):
        sk.parse_quickdraw_ndjson(["[1, 2]"])
    with pytest.raises(ValueError, match="'recognized'"):
        sk.parse_quickdraw_ndjson([json.dumps({**RECORDS[0], "recognized": "yes"})])


def test_parse_quickdraw_minimal_records():
    (record,) = sk.parse_quickdraw_ndjson([json.dumps({"word": "dot", "drawing": [[[1], [2]]], "key_id": 7})])
    assert record == sk.QuickDrawRecord(word="dot", drawing=[[[1], [2]]], key_id="7")
    assert record.recognized and record.countrycode == ""


def test_load_quickdraw_empty_and_damaged_files(tmp_path):
    empty = tmp_path / "empty.ndjson"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="no drawings"):
        sk.load_quickdraw_ndjson(empty)
    not_gzip = tmp_path / "plain.ndjson.gz"
    not_gzip.write_text(json.dumps(RECORDS[0]) + "\n")
    with pytest.raises(ValueError, match="truncated or not gzip"):
        sk.load_quickdraw_ndjson(not_gzip)
    truncated = tmp_path / "cut.ndjson.gz"
    compressed = gzip.compress(("\n".join(json.dumps(r) for r in RECORDS * 200) + "\n").encode())
    truncated.write_bytes(compressed[:len(compressed) // 2])
    with pytest.raises(ValueError, match="truncated or not gzip"):
        sk.load_quickdraw_ndjson(truncated)
    latin1 = tmp_path / "latin1.ndjson"
    latin1.write_bytes(json.dumps({**RECORDS[0], "word": "caf\u00e9"}, ensure_ascii=False).encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        sk.load_quickdraw_ndjson(latin1)


# --- synthetic sketches ------------------------------------------------------------------------

def test_synthetic_sketches_deterministic_and_valid():
    sketches, labels, classes = sk.synthetic_sketches(60, seed=5)
    assert classes == ("circle", "square", "triangle", "zigzag", "spiral")
    assert labels.dtype == np.int64 and labels.shape == (60,)
    assert set(labels.tolist()) == set(range(5))
    assert np.bincount(labels).tolist() == [12] * 5
    again, labels_again, _ = sk.synthetic_sketches(60, seed=5)
    np.testing.assert_array_equal(labels, labels_again)
    for a, b in zip(sketches, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other, other_labels, _ = sk.synthetic_sketches(60, seed=6)
    assert not np.array_equal(labels, other_labels) or any(
        a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(sketches, other, strict=True))
    strokes_per_class = {c: set() for c in range(5)}
    for s, label in zip(sketches, labels, strict=True):
        assert s.dtype == np.float32 and s.ndim == 2 and s.shape[1] == 3 and len(s) >= 2
        assert set(np.unique(s[:, 2]).tolist()) <= {0.0, 1.0}
        assert s[-1, 2] == 1
        n_strokes = int(s[:, 2].sum())
        assert 1 <= n_strokes <= 4
        strokes_per_class[int(label)].add(n_strokes)
        points = np.concatenate(sk.stroke3_to_polylines(s))
        assert points.min() >= 0 and points.max() <= 255  # on the 256 x 256 canvas
        assert np.ptp(points, axis=0).max() >= 10  # not a dot
    assert strokes_per_class[4] == {1}  # a spiral is one stroke
    assert strokes_per_class[1] > {1}  # squares come in one and in several strokes


# --- dataset and collate -----------------------------------------------------------------------

def _toy():
    a = np.array([[2, 4, 0], [6, -2, 1]], dtype=np.float32)
    b = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [1, 1, 0], [3, 3, 1]], dtype=np.float32)
    c = np.array([[0, 8, 1]], dtype=np.float32)
    return [a, b, c], np.array([2, 0, 1])


def test_dataset_scaling_and_items():
    sketches, labels = _toy()
    data = sk.SketchDataset(sketches, labels, scale=2.0)
    assert len(data) == 3
    x, y = data[0]
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and int(y) == 2
    torch.testing.assert_close(x, torch.tensor([[1.0, 2.0, 0.0], [3.0, -1.0, 1.0]]))
    np.testing.assert_array_equal(sketches[0][0], [2, 4, 0])  # the caller's array is untouched
    auto = sk.SketchDataset(sketches, labels)
    assert auto.scale == pytest.approx(sk.offset_scale(sketches))
    torch.testing.assert_close(auto[1][0][:, :2], torch.from_numpy(sketches[1][:, :2]) / auto.scale)
    x5, _ = sk.SketchDataset(sketches, labels, scale=2.0, stroke5=True)[0]
    torch.testing.assert_close(x5, torch.tensor([[1.0, 2.0, 1, 0, 0], [3.0, -1.0, 0, 1, 0], [0, 0, 0, 0, 1]]))


def test_dataset_truncation_keeps_the_final_lift():
    sketches, labels = _toy()
    data = sk.SketchDataset(sketches, labels, scale=1.0, max_len=3)
    x, _ = data[1]
    assert x.shape == (3, 3)
    torch.testing.assert_close(x, torch.tensor([[1.0, 1, 0], [1, 1, 0], [1, 1, 1]]))
    assert data[0][0].shape == (2, 3) and data[2][0].shape == (1, 3)  # short ones unchanged
    x5, _ = sk.SketchDataset(sketches, labels, scale=1.0, stroke5=True, max_len=3)[1]
    assert x5.shape == (4, 5)
    torch.testing.assert_close(x5[2:], torch.tensor([[1.0, 1, 0, 1, 0], [0, 0, 0, 0, 1]]))


def test_dataset_errors():
    sketches, labels = _toy()
    with pytest.raises(ValueError, match="3 sketches but 2 labels"):
        sk.SketchDataset(sketches, labels[:2])
    with pytest.raises(ValueError, match="sketch 1: expected a stroke-3"):
        sk.SketchDataset([sketches[0], np.zeros((3, 2))], [0, 1])
    with pytest.raises(ValueError, match="positive"):
        sk.SketchDataset([np.array([[0, 0, 1]], dtype=np.float32)], [0])
    with pytest.raises(ValueError, match="max_len"):
        sk.SketchDataset(sketches, labels, max_len=0)


@pytest.mark.parametrize("stroke5", [False, True])
def test_dataloader_with_collate(stroke5):
    sketches, labels = _toy()
    data = sk.SketchDataset(sketches, labels, scale=2.0, stroke5=stroke5)
    loader = torch.utils.data.DataLoader(data, batch_size=3, shuffle=False, collate_fn=sk.collate_sketches)
    (x, lengths, y), = list(loader)
    channels = 5 if stroke5 else 3
    extra = 1 if stroke5 else 0
    assert x.dtype == torch.float32 and lengths.dtype == torch.int64 and y.dtype == torch.int64
    assert x.shape == (3, 5 + extra, channels)
    assert lengths.tolist() == [2 + extra, 5 + extra, 1 + extra]
    assert y.tolist() == [2, 0, 1]
    for b, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(x[b, :length], data[b][0])
        assert torch.count_nonzero(x[b, length:]) == 0
    with pytest.raises(ValueError, match="empty batch"):
        sk.collate_sketches([])
    with pytest.raises(ValueError, match="same C"):
        sk.collate_sketches([(torch.zeros(2, 3), 0), (torch.zeros(2, 5), 1)])


def test_synthetic_sketches_through_the_loader():
    sketches, labels, _ = sk.synthetic_sketches(12, seed=0)
    data = sk.SketchDataset(sketches, labels, stroke5=True, max_len=20)
    loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=sk.collate_sketches)
    batches = list(loader)
    assert len(batches) == 3
    for x, lengths, _ in batches:
        assert x.shape[0] == 4 and x.shape[2] == 5 and int(lengths.max()) == x.shape[1] <= 21
        # every sketch ends in an end row; the row before it lifts the pen
        for b, length in enumerate(lengths.tolist()):
            assert x[b, length - 1].tolist() == [0, 0, 0, 0, 1]
            assert x[b, length - 2, 3] == 1
