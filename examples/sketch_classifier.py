"""Classify pen-stroke sketches with a Conv1D front and a bidirectional fused LSTM.

    python examples/sketch_classifier.py [--epochs 6] [--backend fused|torch] [--ndjson A.ndjson B.ndjson ...]

Offline by default: synthetic shapes (circle, square, triangle, zigzag, spiral) in stroke-3.
With --ndjson, one Quick, Draw! file per class (https://quickdraw.withgoogle.com/data: the
simplified .ndjson of each category) instead. Sketches of different lengths are padded, and the
model packs them, so no step of padding is computed.
"""

import argparse

import numpy as np
import torch
from torch.utils.data import DataLoader

from fusedrnn import argtypes
from fusedrnn.datasets.sketches import (
    SketchDataset,
    collate_sketches,
    load_quickdraw_ndjson,
    offset_scale,
    synthetic_sketches,
)
from fusedrnn.models.sketch import SketchClassifier

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=argtypes.positive_int, default=6)
parser.add_argument("--backend", choices=("fused", "torch"), default="fused")
parser.add_argument("--ndjson", nargs="+", help="one Quick, Draw! .ndjson file per class")
parser.add_argument("--count", type=argtypes.positive_int, default=3000,
                    help="sketches in all (synthetic), or per class (--ndjson)")
args = parser.parse_args()
torch.manual_seed(0)

if args.ndjson:
    sketches, labels, names = [], [], []
    for label, path in enumerate(args.ndjson):
        records = load_quickdraw_ndjson(path, recognized_only=True, limit=args.count)
        names.append(records[0].word)
        sketches += [r.stroke3() for r in records]
        labels += [label] * len(records)
    labels = np.array(labels)
else:
    sketches, labels, names = synthetic_sketches(args.count, seed=0)
order = np.random.default_rng(0).permutation(len(sketches))
cut = int(0.9 * len(order))
train_idx, test_idx = order[:cut], order[cut:]
scale = offset_scale([sketches[i] for i in train_idx])  # offsets in units of the training spread


def loader(index, shuffle):
    data = SketchDataset([sketches[i] for i in index], labels[index], scale=scale, max_len=200)
    return DataLoader(data, batch_size=64, shuffle=shuffle, collate_fn=collate_sketches)


train, test = loader(train_idx, True), loader(test_idx, False)
model = SketchClassifier(len(names), hidden_size=96, num_layers=1, backend=args.backend)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
for epoch in range(1, args.epochs + 1):
    model.train()
    for x, lengths, y in train:
        loss = torch.nn.functional.cross_entropy(model(x, lengths), y)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x, lengths).argmax(1) == y).sum()) for x, lengths, y in test)
    print(f"epoch {epoch}: last batch loss {loss.item():.3f}, test accuracy {correct / len(test_idx):.1%}")
print(f"classes: {', '.join(names)}")
