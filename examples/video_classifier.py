"""Classify moving-digit videos: a small Conv2d encoder per frame, a fused LSTM over the frames.

    python examples/video_classifier.py [--epochs 5] [--backend fused|torch]

The videos are made from the MNIST digits that ship with fusedrnn: one digit drifts and bounces
inside a 40x40 frame for 12 frames. The MNIST images are split before any video is made, so the
test videos show digit images the model never saw.
"""

import argparse

import torch
from torch.utils.data import DataLoader

from fusedrnn import argtypes
from fusedrnn.datasets.moving_digits import MovingDigits, load_mnist_5k, moving_digit_splits
from fusedrnn.models.video import VideoClassifier

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=argtypes.positive_int, default=5)
parser.add_argument("--backend", choices=("fused", "torch"), default="fused")
parser.add_argument("--videos", type=argtypes.positive_int, default=2000, help="training videos")
args = parser.parse_args()
torch.manual_seed(0)

images, labels = load_mnist_5k()  # uint8 [5000, 28, 28], int64 [5000]
splits = moving_digit_splits(images, labels, counts=(args.videos, args.videos // 5, args.videos // 5),
                             frames=12, size=40)
train = DataLoader(MovingDigits(*splits["train"]), batch_size=32, shuffle=True)
test = DataLoader(MovingDigits(*splits["test"]), batch_size=128)

model = VideoClassifier(10, frame_size=40, hidden_size=128, backend=args.backend)
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
for epoch in range(1, args.epochs + 1):
    model.train()
    for video, y in train:  # video: [batch, frames, 1, 40, 40]
        loss = torch.nn.functional.cross_entropy(model(video), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(video).argmax(1) == y).sum()) for video, y in test)
    print(f"epoch {epoch}: last batch loss {loss.item():.3f}, "
          f"test accuracy {correct / len(test.dataset):.1%}")
