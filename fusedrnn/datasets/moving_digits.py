"""Moving-digit videos: MNIST digits that drift and bounce inside a larger black frame.

A 5,000-image MNIST subset ships in fusedrnn/datasets/data/mnist_5k/ (with its README: source,
MNIST by LeCun, Cortes and Burges, and licence). The CSV has no header; each row holds 784 pixel
values (28x28, row-major, 0..255) and then the label (0..9). The rows are grouped by class, 500
of each, so anything that splits them shuffles first.

Conventions of the generated videos:

* videos are float32 [n_videos, frames, size, size] with values in [0, 1] (pixel / 255), a
  black background and bright ink, as in MNIST;
* a digit's position is the (row, col) of its 28x28 box's top-left corner; it moves with a
  constant velocity and bounces elastically off the frame edges, so the box is always fully
  inside the frame and no ink is ever clipped;
* positions are continuous and rounded (half up) to whole pixels only for drawing;
* where two digits overlap a pixel takes the brighter of the two (max), so strokes stay sharp;
* labels are int64: the digit's class for one digit, the SUM of the two classes (0..18) for two.

Generation is split in two small steps that the tests (and curious users) can call on their own:
`sample_tracks` draws which images and which paths, `render_videos` draws them; `moving_digits`
does both. `moving_digit_splits` keeps the splits honest: the MNIST images are divided into
disjoint train/valid/test groups first (`split_image_indices`), so no digit image is seen in two
splits, only new motions of it.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from importlib import resources
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch

from .checks import check_int, check_seed
from .splits import split_80_10_10

DIGIT = 28  # MNIST images are 28x28
PIXELS = DIGIT * DIGIT
SPLITS = ("train", "valid", "test")


def default_path() -> Path:
    """The copy of mnist_5k.csv.gz inside the installed package."""
    return Path(str(resources.files("fusedrnn.datasets").joinpath("data/mnist_5k/mnist_5k.csv.gz")))


# -- loading -------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"could not read {path}: file is truncated or not gzip ({e})") from e
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as e:
        raise ValueError(f"could not read {path}: expected ASCII text, comma-separated integers ({e})") from e


def _row_error(path: Path, number: int, line: str) -> ValueError | None:
    """The error for one row that np.loadtxt rejected: found again line by line (slow, error path only)."""
    try:
        np.loadtxt([line], delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as e:
        return ValueError(f"{path} line {number}: expected 785 integers (784 pixels 0..255, then the "
                          f"label 0..9), {e}")
    return None  # this line parses


def load_mnist_5k(path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels int64 [N]) from an MNIST CSV (the shipped subset when None).

    Rows are `784 pixel values (row-major, 0..255),label (0..9)`, no header; blank lines are
    skipped; plain or .gz. A row with another number of fields, a field that is not an integer,
    a pixel outside 0..255 or a label outside 0..9 raises a ValueError naming the path and the
    line number; so does a damaged gzip file or one without a single row.
    """
    path = Path(path) if path is not None else default_path()
    numbered = [(n, line) for n, line in enumerate(_read_text(path).splitlines(), 1) if line.strip()]
    if not numbered:
        raise ValueError(f"no images in {path}: expected rows of 784 pixel values and a label")
    for number, line in numbered:
        fields = line.count(",") + 1
        if fields != PIXELS + 1:
            raise ValueError(f"{path} line {number}: expected {PIXELS + 1} comma-separated integers "
                             f"(784 pixels, then the label), got {fields} fields")
    lines = [line for _, line in numbered]
    try:
        table = np.loadtxt(lines, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as e:
        for number, line in numbered:  # name the file's line, not loadtxt's row among the non-blank ones
            if (error := _row_error(path, number, line)) is not None:
                raise error from e
        raise ValueError(f"could not parse {path}: {e}") from e
    pixels, labels = table[:, :PIXELS], table[:, PIXELS]
    bad_pixel = np.flatnonzero(((pixels < 0) | (pixels > 255)).any(axis=1))
    if bad_pixel.size:
        row = int(bad_pixel[0])
        value = int(pixels[row][(pixels[row] < 0) | (pixels[row] > 255)][0])
        raise ValueError(f"{path} line {numbered[row][0]}: pixel value {value} is outside 0..255")
    bad_label = np.flatnonzero((labels < 0) | (labels > 9))
    if bad_label.size:
        row = int(bad_label[0])
        raise ValueError(f"{path} line {numbered[row][0]}: label {int(labels[row])} is outside 0..9")
    return pixels.astype(np.uint8).reshape(-1, DIGIT, DIGIT), labels.astype(np.int64)


# -- argument checks -----------------------------------------------------------------------------


def _check_images(images, labels) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3 \
            or images.shape[1:] != (DIGIT, DIGIT) or images.shape[0] == 0:
        is_array = isinstance(images, np.ndarray)
        got = f"{images.dtype} {list(images.shape)}" if is_array else type(images).__name__
        raise ValueError(f"images must be a uint8 numpy array [N, 28, 28], N >= 1 (pixels 0..255), got {got}")
    labels = np.asarray(labels)
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers [N] = [{images.shape[0]}] (one per image), "
                         f"got {labels.dtype} {list(labels.shape)}")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"labels must be digit classes 0..9, got values {labels.min()}..{labels.max()}")
    return images, labels.astype(np.int64, copy=False)


# -- generation ----------------------------------------------------------------------------------


def _bounce(start: np.ndarray, velocity: np.ndarray, steps: np.ndarray, room: int) -> np.ndarray:
    """Positions start + velocity * t folded into [0, room] by elastic reflection at both walls.

    Reflecting the velocity at each wall is the same as letting the point run free and folding
    its path with period 2 * room (a triangle wave), so all frames come out at once.
    """
    free = start[:, None] + velocity[:, None] * steps[None, :, None, None]
    if room == 0:  # frame as small as the digit: nowhere to go
        return np.zeros_like(free)
    folded = np.mod(free, 2 * room)
    return np.where(folded > room, 2 * room - folded, folded)


def sample_tracks(n_videos: int, n_images: int, frames: int = 16, size: int = 48, digits: int = 1,
                  max_speed: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Which images and which paths: (sources int64 [n_videos, digits], positions int64
    [n_videos, frames, digits, 2]).

    sources index the image set (uniformly, independently). positions are the (row, col) of each
    digit box's top-left corner, whole pixels in [0, size - 28]. Each digit starts uniformly in
    that range with a velocity whose components are uniform in [-max_speed, max_speed], drawn
    again until the speed is at least 1 px/frame, and bounces off the edges. Between consecutive
    frames each coordinate moves by at most ceil(max_speed) pixels (rounding included). With
    size == 28 the digits cannot move. The arguments are checked as in moving_digits.
    """
    n_videos = check_int(n_videos, "n_videos", 0)
    n_images = check_int(n_images, "n_images", 1)
    frames = check_int(frames, "frames", 1)
    size = check_int(size, "size", DIGIT)
    if isinstance(digits, bool) or not isinstance(digits, Integral) or digits not in (1, 2):
        raise ValueError(f"digits must be 1 or 2, got {digits!r}")
    if isinstance(max_speed, bool) or not isinstance(max_speed, Real) or not math.isfinite(max_speed) \
            or max_speed < 1:
        # below 1 the required speed of 1 px/frame could (almost) never be drawn
        raise ValueError(f"max_speed must be a finite number >= 1 (px/frame), got {max_speed!r}")
    rng = np.random.default_rng(check_seed(seed))

    room = size - DIGIT
    sources = rng.integers(0, n_images, size=(n_videos, digits))
    start = rng.uniform(0.0, room, size=(n_videos, digits, 2))
    velocity = rng.uniform(-max_speed, max_speed, size=(n_videos, digits, 2))
    slow = np.hypot(velocity[..., 0], velocity[..., 1]) < 1.0
    while slow.any():  # redraw only the too-slow ones (at max_speed >= 1 at least 21% pass per round)
        velocity[slow] = rng.uniform(-max_speed, max_speed, size=(int(slow.sum()), 2))
        slow = np.hypot(velocity[..., 0], velocity[..., 1]) < 1.0
    exact = _bounce(start, velocity, np.arange(frames, dtype=np.float64), room)
    # half up, not numpy's half-to-even, so a move of d px never draws as more than ceil(d) px
    positions = np.clip(np.floor(exact + 0.5), 0, room).astype(np.int64)
    return sources.astype(np.int64), positions


def render_videos(images: np.ndarray, sources: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """Draw the tracks: float32 [n_videos, frames, size, size] in [0, 1], overlapping digits combined by max.

    images uint8 [N, 28, 28]; sources [n_videos, digits] indices into images; positions
    [n_videos, frames, digits, 2] top-left corners in [0, size - 28] (as from sample_tracks).
    """
    size = check_int(size, "size", DIGIT)
    sources, positions = np.asarray(sources), np.asarray(positions)
    if sources.ndim != 2 or positions.shape[:1] + positions.shape[2:] != sources.shape + (2,) \
            or positions.ndim != 4:
        raise ValueError(f"sources must be [n_videos, digits] and positions [n_videos, frames, digits, 2], "
                         f"got {list(sources.shape)} and {list(positions.shape)}")
    if sources.size and (sources.min() < 0 or sources.max() >= len(images)):
        raise ValueError(f"sources must index images (0..{len(images) - 1}), "
                         f"got {sources.min()}..{sources.max()}")
    if positions.size and (positions.min() < 0 or positions.max() > size - DIGIT):
        raise ValueError(f"positions must lie in 0..{size - DIGIT} (size - 28), "
                         f"got {positions.min()}..{positions.max()}")
    n_videos, frames, digits, _ = positions.shape
    # uint8 while drawing: max() is exact and the canvas a quarter of the float32 size
    canvas = np.zeros((n_videos * frames, size * size), dtype=np.uint8)
    flat = canvas.reshape(-1)
    # pixel (r, c) of a digit whose box starts at (y, x) lands at (y + r) * size + (x + c)
    box = (np.arange(DIGIT)[:, None] * size + np.arange(DIGIT)[None, :]).reshape(-1)
    rows = np.arange(n_videos * frames).reshape(n_videos, frames) * (size * size)
    for d in range(digits):
        ink = images[sources[:, d]].reshape(n_videos, PIXELS)
        for t in range(frames):  # one frame at a time keeps the index arrays small
            corner = rows[:, t] + positions[:, t, d, 0] * size + positions[:, t, d, 1]
            where = corner[:, None] + box[None, :]
            # within one digit the pixels are distinct, so gather-max-scatter is exact
            flat[where] = ink if d == 0 else np.maximum(flat[where], ink)
    videos = canvas.reshape(n_videos, frames, size, size).astype(np.float32)
    videos *= np.float32(1 / 255)
    return videos


def moving_digits(images: np.ndarray, labels: np.ndarray, n_videos: int, frames: int = 16, size: int = 48,
                  digits: int = 1, max_speed: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(videos float32 [n_videos, frames, size, size] in [0, 1], labels int64 [n_videos]).

    Each video draws `digits` images at random from `images` (a numpy Generator seeded with
    `seed`, so the same seed gives the same videos) and moves them through `frames` frames of
    size x size pixels, bouncing off the edges (see sample_tracks for the motion). Overlapping
    digits combine with max(). The label is the digit's class when digits == 1; when
    digits == 2 it is the SUM of the two classes, 0..18.

    images must be uint8 [N, 28, 28] (N >= 1), labels integers [N] in 0..9, size >= 28,
    frames >= 1, digits 1 or 2, n_videos >= 0, max_speed >= 1, seed >= 0; otherwise a ValueError
    names the argument.
    """
    images, labels = _check_images(images, labels)
    sources, positions = sample_tracks(n_videos, len(images), frames=frames, size=size, digits=digits,
                                       max_speed=max_speed, seed=seed)
    return render_videos(images, sources, positions, size), labels[sources].sum(axis=1)


def split_image_indices(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint (train, valid, test) image indices, 80/10/10 (datasets.splits.split_80_10_10)."""
    return split_80_10_10(n, seed, what="images")


def _derived_seed(seed: int, stream: int) -> int:
    """A seed for one split, independent of the others' and of the image shuffle."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def moving_digit_splits(images: np.ndarray, labels: np.ndarray,
                        counts: tuple[int, int, int] = (2000, 400, 400), seed: int = 0,
                        **kwargs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (videos, labels), "valid": ..., "test": ...}, counts[i] videos in split i.

    The images are first divided into three disjoint groups by split_image_indices(len(images),
    seed) (80/10/10), and each split's videos use only its own group, so no digit image appears
    in two splits. Each split gets its own seed derived from `seed`. kwargs (frames, size,
    digits, max_speed) go to moving_digits.
    """
    images, labels = _check_images(images, labels)
    if len(counts) != 3 or any(isinstance(c, bool) or not isinstance(c, Integral) or c < 0 for c in counts):
        raise ValueError(f"counts must be three integers >= 0 (train, valid, test videos), got {counts!r}")
    seed = check_seed(seed)
    groups = split_image_indices(len(images), seed)
    splits = {}
    for stream, (name, group, count) in enumerate(zip(SPLITS, groups, counts, strict=True), 1):
        splits[name] = moving_digits(images[group], labels[group], count,
                                     seed=_derived_seed(seed, stream), **kwargs)
    return splits


class MovingDigits(torch.utils.data.Dataset):
    """(videos, labels) as a Dataset: item i -> (float32 tensor [frames, 1, size, size], int64 label).

    The channel axis of 1 is what convolutional front ends expect. The arrays are shared with
    the tensors, not copied.
    """

    def __init__(self, videos: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor):
        videos = torch.as_tensor(videos)
        labels = torch.as_tensor(labels)
        if videos.dtype != torch.float32 or videos.dim() != 4:
            raise ValueError(f"videos must be float32 [n_videos, frames, size, size], "
                             f"got {videos.dtype} {list(videos.shape)}")
        if labels.shape != (videos.shape[0],) or labels.dtype.is_floating_point or labels.is_complex():
            raise ValueError(f"labels must be integers [n_videos] = [{videos.shape[0]}], "
                             f"got {labels.dtype} {list(labels.shape)}")
        self.videos = videos
        self.labels = labels.to(torch.int64)

    def __len__(self) -> int:
        return self.videos.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.videos[index].unsqueeze(1), self.labels[index]
