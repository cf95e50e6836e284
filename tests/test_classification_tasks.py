"""`fusedrnn train sketch` and `fusedrnn train video`: tiny runs end to end, data files in the
public formats written here, resuming, and the shared classification helpers."""

import gzip
import json

import numpy as np
import pytest
import torch

from fusedrnn import cli
from fusedrnn.tasks.classification import Split, confusion
from fusedrnn.training import load_checkpoint

FAST = ["--epochs", "1", "--hidden", "8", "--no-progress", "--threads", "1"]


def _results(out):
    for name in ("best.pt", "last.pt", "metrics.jsonl", "metrics.csv", "results.json", "curves.png"):
        assert (out / name).is_file(), name
    return json.loads((out / "results.json").read_text())


def _check_report(results, classes):
    assert len(results["classes"]) == classes
    for split in ("valid", "test"):
        report = results[split]
        counts = np.array(report["confusion"])
        assert counts.shape == (classes, classes) and counts.sum() == report["items"]
        assert report["accuracy"] == pytest.approx(np.trace(counts) / counts.sum())


def test_confusion_and_split_batches():
    pred, labels = torch.tensor([0, 1, 1, 2, 0]), torch.tensor([0, 1, 2, 2, 1])
    assert confusion(pred, labels, 3).tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    split = Split(torch.arange(24.0).reshape(4, 6, 1), torch.arange(4), torch.tensor([2, 6, 3, 1]))
    (x, lengths), y = split.batch(torch.tensor([0, 2]), torch.device("cpu"))
    assert x.shape == (2, 3, 1) and lengths.tolist() == [2, 3] and y.tolist() == [0, 2]


def test_train_video_tiny(tmp_path, capsys):
    out = tmp_path / "video"
    args = ["train", "video", *FAST, "--videos", "40", "--frames", "3", "--size", "28", "--out", str(out)]
    assert cli.main(args) == 0
    assert "test accuracy" in capsys.readouterr().out
    results = _results(out)
    _check_report(results, 10)
    assert results["valid"]["items"] == 8 and results["config"]["frames"] == 3
    assert cli.main(["train", "video", *FAST, "--size", "20", "--out", str(tmp_path / "x")]) == 2
    assert "--size must be at least 28" in capsys.readouterr().out


def test_train_sketch_synthetic_resumes_exactly(tmp_path):
    common = ["train", "sketch", "--hidden", "8", "--no-progress", "--threads", "1",
              "--synthetic", "60", "--batch-size", "16"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert cli.main([*common, "--epochs", "2", "--out", str(straight)]) == 0
    assert cli.main([*common, "--epochs", "1", "--out", str(resumed)]) == 0
    assert cli.main([*common, "--epochs", "2", "--out", str(resumed), "--resume"]) == 0
    _check_report(_results(straight), 5)
    a = load_checkpoint(straight / "last.pt")["model"]
    b = load_checkpoint(resumed / "last.pt")["model"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _ndjson_line(word, strokes):
    drawing = [[[float(x) for x in xs], [float(y) for y in ys]] for xs, ys in strokes]
    return json.dumps({"word": word, "countrycode": "US", "timestamp": "2017-01-01",
                       "recognized": True, "key_id": "1", "drawing": drawing})


def test_train_sketch_on_quickdraw_and_sketch_rnn_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = tmp_path / "line.ndjson"
    lines.write_text("\n".join(_ndjson_line("line", [([0, 50 + i], [0, 60])]) for i in range(12)))
    boxes = tmp_path / "box.ndjson.gz"
    with gzip.open(boxes, "wt") as f:
        f.write("\n".join(_ndjson_line("box", [([0, 40, 40, 0, 0], [0, 0, 40 + i, 40, 0])])
                          for i in range(12)))
    out = tmp_path / "quickdraw"
    assert cli.main(["train", "sketch", *FAST, "--data", str(lines), str(boxes), "--out", str(out)]) == 0
    results = _results(out)
    assert results["classes"] == ["line", "box"]
    _check_report(results, 2)

    def strokes(count):
        items = np.empty(count, dtype=object)
        for i in range(count):
            items[i] = np.concatenate([rng.integers(-20, 20, (5, 2)), np.eye(5, 1, -4)], 1).astype(np.int16)
        return items

    files = []
    for name in ("cat", "dog"):
        path = tmp_path / f"{name}.npz"
        np.savez_compressed(path, train=strokes(10), valid=strokes(3), test=strokes(4))
        files.append(str(path))
    out = tmp_path / "sketchrnn"
    assert cli.main(["train", "sketch", *FAST, "--data", *files, "--out", str(out)]) == 0
    results = _results(out)
    assert results["classes"] == ["cat", "dog"]
    assert results["valid"]["items"] == 6 and results["test"]["items"] == 8

    capsys.readouterr()
    two = tmp_path / "two.ndjson"
    two.write_text("\n".join(_ndjson_line("two", [([0, 9], [0, 9])]) for _ in range(2)))
    assert cli.main(["train", "sketch", *FAST, "--data", str(lines), str(two),
                     "--out", str(tmp_path / "g")]) == 2
    assert f"n (number of drawings in {two}) must be an integer >= 3, got 2" in capsys.readouterr().out
    assert cli.main(["train", "sketch", *FAST, "--data", files[0], "--out", str(tmp_path / "a")]) == 2
    assert "at least two files" in capsys.readouterr().out
    other = tmp_path / "cat.txt"
    other.write_text("")
    assert cli.main(["train", "sketch", *FAST, "--data", files[0], str(other),
                     "--out", str(tmp_path / "b")]) == 2
    assert "expected a QuickDraw .ndjson" in capsys.readouterr().out
    partial = tmp_path / "bird.npz"
    np.savez_compressed(partial, train=strokes(4))
    assert cli.main(["train", "sketch", *FAST, "--data", files[0], str(partial),
                     "--out", str(tmp_path / "c")]) == 2
    assert "has no valid, test split" in capsys.readouterr().out
    empty = tmp_path / "fish.npz"
    np.savez_compressed(empty, train=strokes(4), valid=strokes(0), test=strokes(2))
    assert cli.main(["train", "sketch", *FAST, "--data", files[0], str(empty),
                     "--out", str(tmp_path / "d")]) == 0  # a class may lack valid sketches
    assert cli.main(["train", "sketch", *FAST, "--data", str(empty), str(empty),
                     "--out", str(tmp_path / "f")]) == 2
    assert "no sketches in the valid split" in capsys.readouterr().out
    still = tmp_path / "dot.npz"
    dot = np.empty(1, dtype=object)
    dot[0] = np.array([[0, 0, 1]], dtype=np.int16)  # no offsets anywhere: no scale to divide by
    np.savez_compressed(still, train=dot, valid=dot, test=dot)
    assert cli.main(["train", "sketch", *FAST, "--data", str(still), str(still),
                     "--out", str(tmp_path / "e")]) == 2
    assert "scale must be a positive number" in capsys.readouterr().out
