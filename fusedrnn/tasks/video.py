"""`fusedrnn train video`: classify moving-digit videos (seq2vec over frames).

The videos are made on the spot from the MNIST digits that ship with fusedrnn
(fusedrnn.datasets.moving_digits): each shows one digit (or two, `--digits 2`, labelled with
their sum) bouncing around a `--size` square for `--frames` frames; the MNIST images are split
three ways first, so no digit image appears in two splits. The model
(fusedrnn.models.video.VideoClassifier) encodes every frame with a small Conv2d stack and runs a
fused LSTM or GRU over the frames.

Outputs in --out: best.pt, last.pt (resumable), metrics.jsonl/.csv, results.json (valid and test
accuracy, per class, confusion matrices, timings) and curves.png.
"""

from __future__ import annotations

import argparse

from .. import argtypes
from .classification import Split, train_classifier
from .common import add_common_arguments, with_threads

DEFAULT_OUT = "runs/video"


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out=DEFAULT_OUT, epochs=8, lr=2e-3, batch_size=32, hidden=128)
    parser.add_argument("--videos", type=argtypes.positive_int, default=3000,
                        help="training videos (valid and test get a fifth as many each)")
    parser.add_argument("--frames", type=argtypes.positive_int, default=12, help="frames per video")
    parser.add_argument("--size", type=argtypes.positive_int, default=40, help="frame side in pixels")
    parser.add_argument("--digits", type=int, choices=(1, 2), default=1,
                        help="digits per video (2: the label is their sum)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the videos and splits")


def _train(args: argparse.Namespace) -> int:
    import torch

    from ..datasets.moving_digits import load_mnist_5k, moving_digit_splits
    from ..models.video import VideoClassifier
    from ..training import resolve_device, seed_everything

    if args.size < 28:
        print(f"fusedrnn train video: --size must be at least 28 (an MNIST digit), got {args.size}")
        return 2
    images, labels = load_mnist_5k()
    held_out = max(1, args.videos // 5)
    made = moving_digit_splits(images, labels, counts=(args.videos, held_out, held_out),
                               seed=args.data_seed, frames=args.frames, size=args.size,
                               digits=args.digits)
    splits = {name: Split(torch.from_numpy(videos).unsqueeze(2), torch.from_numpy(y))
              for name, (videos, y) in made.items()}
    classes = 10 if args.digits == 1 else 19
    seed_everything(args.seed)
    device = resolve_device(args.device)
    config = {"task": "video", "videos": args.videos, "frames": args.frames, "size": args.size,
              "digits": args.digits, "data_seed": args.data_seed, "cell": args.cell,
              "hidden": args.hidden, "layers": args.layers, "dropout": args.dropout,
              "backend": args.backend, "lr": args.lr, "lr_decay": args.lr_decay,
              "batch_size": args.batch_size, "seed": args.seed, "epochs": args.epochs}
    model = VideoClassifier(classes, frame_size=args.size, hidden_size=args.hidden,
                            num_layers=args.layers, cell=args.cell, dropout=args.dropout,
                            backend=args.backend).to(device)
    names = [str(c) for c in range(classes)]
    return train_classifier(args, task="video", model=model, splits=splits, class_names=names,
                            config=config)


train = with_threads(_train)
