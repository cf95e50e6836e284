"""`fusedrnn train sketch`: classify pen-stroke sketches (seq2vec over pen points).

Data, in stroke-3 (fusedrnn.datasets.sketches), with dx and dy divided by the training split's
offset scale:
* by default, synthetic hand-drawn-looking shapes (circle, square, triangle, zigzag, spiral),
  made on the spot: the run needs no download;
* `--data FILE [FILE ...]`: one file per class, in a public format: QuickDraw's per-category
  `.ndjson` (or `.ndjson.gz`; simplified or raw drawings; the class is the records' word), split
  80/10/10 after a seeded shuffle, or sketch-rnn's `.npz` (the class is the file's stem), whose
  own train/valid/test splits are kept.

The model (fusedrnn.models.sketch.SketchClassifier): a fused Conv1D front, a bidirectional fused
LSTM or GRU packed by length, the outputs averaged over each sketch's steps, a linear layer.

Outputs in --out: best.pt, last.pt (resumable), metrics.jsonl/.csv, results.json (valid and test
accuracy, per class, confusion matrices, timings) and curves.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import argtypes
from .classification import Split, train_classifier
from .common import add_common_arguments, with_threads

DEFAULT_OUT = "runs/sketch"


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out=DEFAULT_OUT, epochs=10, lr=3e-3, batch_size=64, hidden=96)
    parser.add_argument("--data", nargs="+", metavar="FILE",
                        help="one QuickDraw .ndjson[.gz] or sketch-rnn .npz file per class "
                             "(default: synthetic shapes)")
    parser.add_argument("--synthetic", type=argtypes.positive_int, default=5000,
                        help="synthetic sketches in all (without --data)")
    parser.add_argument("--per-class", type=argtypes.positive_int, default=5000,
                        help="at most this many sketches of each .ndjson file")
    parser.add_argument("--max-points", type=argtypes.positive_int, default=200,
                        help="longer sketches are cut to their first points")
    parser.add_argument("--conv-stride", type=argtypes.positive_int, default=1,
                        help="stride of the first Conv1D layer (fewer steps for the RNN)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the data and splits")


SPLITS = ("train", "valid", "test")


def _split(count: int, seed: int, what: str):
    """{split: indices}, 80/10/10 after a seeded shuffle."""
    from ..datasets.splits import split_80_10_10

    return dict(zip(SPLITS, split_80_10_10(count, seed, what), strict=True))


def load_splits(files: list[str] | None, synthetic: int, per_class: int,
                seed: int) -> tuple[dict[str, tuple[list, list]], list[str]]:
    """{split: (stroke-3 sketches, labels)} and the class names."""
    from ..datasets.sketches import load_quickdraw_ndjson, load_sketch_rnn_npz, synthetic_sketches

    splits: dict[str, tuple[list, list]] = {name: ([], []) for name in SPLITS}
    if not files:
        sketches, labels, names = synthetic_sketches(synthetic, seed=seed)
        for name, index in _split(len(sketches), seed, "sketches").items():
            splits[name] = ([sketches[i] for i in index], [int(labels[i]) for i in index])
        return splits, list(names)
    names = []
    for label, file in enumerate(files):
        path = Path(file)
        if path.suffix == ".npz":
            names.append(path.stem)
            loaded = load_sketch_rnn_npz(path)
            missing = [name for name in splits if name not in loaded]
            if missing:
                raise ValueError(f"{path} has no {', '.join(missing)} split (sketch-rnn files hold "
                                 "train, valid and test)")
            for name, (sketches, labels) in splits.items():
                sketches += loaded[name]
                labels += [label] * len(loaded[name])
        elif path.name.endswith((".ndjson", ".ndjson.gz")):
            records = load_quickdraw_ndjson(path, limit=per_class)
            names.append(records[0].word)
            for name, index in _split(len(records), seed + label, f"drawings in {path}").items():
                splits[name][0].extend(records[i].stroke3() for i in index)
                splits[name][1].extend([label] * len(index))
        else:
            raise ValueError(f"{path}: expected a QuickDraw .ndjson / .ndjson.gz or a sketch-rnn "
                             ".npz file")
    if len(names) < 2:
        raise ValueError("--data needs at least two files: one per class")
    return splits, names


def _train(args: argparse.Namespace) -> int:
    from ..datasets.sketches import SketchDataset, collate_sketches, offset_scale
    from ..models.sketch import SketchClassifier
    from ..training import resolve_device, seed_everything

    try:
        raw, names = load_splits(args.data, args.synthetic, args.per_class, args.data_seed)
        empty = [name for name, (sketches, _) in raw.items() if not sketches]
        if empty:
            raise ValueError(f"no sketches in the {', '.join(empty)} split")
        scale = offset_scale(raw["train"][0])  # the training split's: valid and test are unseen
        splits = {}
        for name, (sketches, labels) in raw.items():
            dataset = SketchDataset(sketches, labels, scale=scale, max_len=args.max_points)
            x, lengths, y = collate_sketches([dataset[i] for i in range(len(dataset))])
            splits[name] = Split(x, y, lengths)
    except (OSError, ValueError) as e:  # unreadable files, or sketches that cannot be trained on
        print(f"fusedrnn train sketch: {e}")
        return 2
    seed_everything(args.seed)
    device = resolve_device(args.device)
    config = {"task": "sketch", "data": [str(Path(f).resolve()) for f in args.data or []],
              "synthetic": args.synthetic, "per_class": args.per_class, "classes": names,
              "max_points": args.max_points, "scale": scale, "data_seed": args.data_seed,
              "cell": args.cell, "hidden": args.hidden, "layers": args.layers,
              "dropout": args.dropout, "conv_stride": args.conv_stride, "backend": args.backend,
              "lr": args.lr, "lr_decay": args.lr_decay, "batch_size": args.batch_size,
              "seed": args.seed, "epochs": args.epochs}
    model = SketchClassifier(len(names), hidden_size=args.hidden, num_layers=args.layers,
                             cell=args.cell, dropout=args.dropout, conv_stride=args.conv_stride,
                             backend=args.backend).to(device)
    return train_classifier(args, task="sketch", model=model, splits=splits, class_names=names,
                            config=config)


train = with_threads(_train)
