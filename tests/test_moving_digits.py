"""Moving-digit videos from the shipped MNIST subset: loading (and its errors), the motion and drawing
of the digits, labels, disjoint splits, argument checks and the Dataset wrapper."""

import gzip
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import fusedrnn.datasets
from fusedrnn.datasets.moving_digits import (
    MovingDigits,
    default_path,
    load_mnist_5k,
    moving_digit_splits,
    moving_digits,
    render_videos,
    sample_tracks,
    split_image_indices,
)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist_5k()


def _tagged_images(n):
    """n images, image i a solid 28x28 block of value 5 * (i + 1): a frame's max pixel names its source."""
    assert n <= 51
    values = 5 * (np.arange(n) + 1)
    return np.broadcast_to(values[:, None, None], (n, 28, 28)).astype(np.uint8), np.arange(n) % 10


def _source_of(videos):
    """The tagged image shown in each one-digit video (from its brightest pixel)."""
    return np.rint(videos.reshape(len(videos), -1).max(axis=1) * 255).astype(int) // 5 - 1


# -- the shipped file ----------------------------------------------------------------------------


def test_packaged_file_loads(mnist):
    path = default_path()
    assert path.is_file() and path.name == "mnist_5k.csv.gz"
    package_dir = Path(fusedrnn.datasets.__file__).resolve().parent
    assert package_dir in path.resolve().parents
    assert (path.parent / "README.md").is_file()
    images, labels = mnist
    assert images.dtype == np.uint8 and images.shape == (5000, 28, 28)
    assert labels.dtype == np.int64 and labels.shape == (5000,)
    assert labels.min() >= 0 and labels.max() <= 9
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10  # all ten classes, 500 each
    # real digits: dark background, bright strokes, every image with some ink
    assert images[:, 0, :].max() < 128 and images.max() == 255
    assert (images.reshape(5000, -1).max(axis=1) > 100).all()


def _write_csv(tmp_path, rows, name="digits.csv"):
    path = tmp_path / name
    text = "".join(",".join(map(str, row)) + "\n" if row is not None else "\n" for row in rows)
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def _row(label=3, fill=7):
    return [fill] * 784 + [label]


@pytest.mark.parametrize("name", ["digits.csv", "digits.csv.gz"])
def test_small_well_formed_file_loads(tmp_path, name):
    first = list(range(256)) + [0] * 528 + [9]
    path = _write_csv(tmp_path, [first, None, _row(label=4)], name)  # a blank line is skipped
    images, labels = load_mnist_5k(path)
    assert images.shape == (2, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [9, 4] and labels.dtype == np.int64
    assert images[0].reshape(-1)[:256].tolist() == list(range(256))  # row-major
    assert images[0, 0, :5].tolist() == [0, 1, 2, 3, 4] and images[0, 1, 0] == 28
    assert (images[1] == 7).all()


def _raises(path, *parts):
    return pytest.raises(ValueError, match=re.escape(str(path)) + "".join(".*" + p for p in parts))


def test_wrong_field_count_names_the_line(tmp_path):
    path = _write_csv(tmp_path, [_row(), _row()[:-1]])
    with _raises(path, "line 2", "785", "got 784 fields"):
        load_mnist_5k(path)
    path = _write_csv(tmp_path, [_row(), None, _row() + [1]])  # the blank line still counts
    with _raises(path, "line 3", "got 786 fields"):
        load_mnist_5k(path)


def test_out_of_range_values_name_the_line(tmp_path):
    row = _row()
    row[100] = 300
    path = _write_csv(tmp_path, [_row(), _row(), row])
    with _raises(path, "line 3", "300", "0..255"):
        load_mnist_5k(path)
    row = _row()
    row[0] = -1
    path = _write_csv(tmp_path, [row])
    with _raises(path, "line 1", "-1", "0..255"):
        load_mnist_5k(path)
    path = _write_csv(tmp_path, [_row(), _row(label=10)])
    with _raises(path, "line 2", "label 10", "0..9"):
        load_mnist_5k(path)


def test_non_integer_field_names_the_line(tmp_path):
    row = _row()
    row[5] = "1.5"
    path = _write_csv(tmp_path, [_row(), None, _row(), row])
    with _raises(path, "line 4", "1.5"):
        load_mnist_5k(path)


def test_damaged_or_empty_files(tmp_path):
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(gzip.compress(("1," * 784 + "1\n").encode() * 50)[:-20])
    with _raises(path, "truncated or not gzip"):
        load_mnist_5k(path)
    path = _write_csv(tmp_path, [None, None])
    with pytest.raises(ValueError, match="no images in " + re.escape(str(path))):
        load_mnist_5k(path)


# -- the videos ----------------------------------------------------------------------------------


def test_shapes_dtypes_and_range(mnist):
    images, labels = mnist
    videos, video_labels = moving_digits(images, labels, 12, frames=5, size=40)
    assert videos.shape == (12, 5, 40, 40) and videos.dtype == np.float32
    assert video_labels.shape == (12,) and video_labels.dtype == np.int64
    assert videos.min() == 0.0 and 0.5 < videos.max() <= 1.0
    two, two_labels = moving_digits(images, labels, 7, frames=3, size=64, digits=2)
    assert two.shape == (7, 3, 64, 64) and two.dtype == np.float32 and two_labels.shape == (7,)
    assert 0 <= two.min() and two.max() <= 1


def test_seed_decides_everything(mnist):
    images, labels = mnist
    a, la = moving_digits(images, labels, 20, frames=4, seed=3)
    b, lb = moving_digits(images, labels, 20, frames=4, seed=3)
    c, lc = moving_digits(images, labels, 20, frames=4, seed=4)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)
    # and the result is exactly the drawing of the sampled tracks
    tracks = sample_tracks(20, len(images), frames=4, seed=3)
    assert np.array_equal(a, render_videos(images, *tracks, size=48))
    assert np.array_equal(la, labels[tracks[0][:, 0]])


@pytest.mark.parametrize("size, max_speed", [(48, 3.0), (32, 3.0), (30, 7.5), (28, 2.0)])
def test_each_frame_is_the_whole_digit_moved(mnist, size, max_speed):
    """One digit: every frame is the source image shifted inside the frame, never clipped, even where
    it bounces (small frames and fast digits bounce often)."""
    images, labels = mnist
    n, frames = 40, 12
    videos, video_labels = moving_digits(images, labels, n, frames=frames, size=size, max_speed=max_speed,
                                         seed=11)
    sources, positions = sample_tracks(n, len(images), frames=frames, size=size, max_speed=max_speed, seed=11)
    ink = images[sources[:, 0]].astype(np.float64) / 255
    np.testing.assert_allclose(videos.sum(axis=(2, 3)), np.repeat(ink.sum(axis=(1, 2))[:, None], frames, 1),
                               rtol=1e-5)
    assert positions.min() >= 0 and positions.max() <= size - 28
    for i in range(0, n, 7):
        for t in range(frames):
            y, x = positions[i, t, 0]
            expected = np.zeros((size, size))
            expected[y:y + 28, x:x + 28] = ink[i]
            np.testing.assert_allclose(videos[i, t], expected, atol=1e-7)
    assert np.array_equal(video_labels, labels[sources[:, 0]])


def _centre_of_mass(videos):
    mass = videos.sum(axis=(-2, -1))
    grid = np.arange(videos.shape[-1])
    rows = (videos.sum(axis=-1) * grid).sum(axis=-1) / mass
    cols = (videos.sum(axis=-2) * grid).sum(axis=-1) / mass
    return np.stack([rows, cols], axis=-1)


@pytest.mark.parametrize("size", [48, 34])
def test_digits_move_at_bounded_speed(mnist, size):
    images, labels = mnist
    max_speed = 3.0
    videos, _ = moving_digits(images, labels, 200, frames=16, size=size, max_speed=max_speed, seed=5)
    moved = (videos[:, 0] != videos[:, 1]).any(axis=(1, 2))
    assert moved.mean() > 0.9
    steps = np.linalg.norm(np.diff(_centre_of_mass(videos), axis=1), axis=-1)
    assert steps.max() <= max_speed * math.sqrt(2) + 1 + 1e-4
    assert steps.mean() > 1.0  # speeds are at least 1 px/frame; bounces and rounding barely lower that
    _, positions = sample_tracks(200, len(images), frames=16, size=size, max_speed=max_speed, seed=5)
    assert np.abs(np.diff(positions, axis=1)).max() <= math.ceil(max_speed)
    # the digits bounce: coordinates that went one way come back (not stuck at a wall), walls are reached
    steps = np.diff(positions, axis=1)
    reversed_ = (steps > 0).any(axis=1) & (steps < 0).any(axis=1)
    assert reversed_.mean() > (0.5 if size == 34 else 0.1)
    assert (positions == 0).any() and (positions == size - 28).any()


@pytest.mark.parametrize("max_speed", [1.0, 3.0])
def test_speed_is_at_least_one_pixel_per_frame(max_speed):
    """In a huge frame most tracks never come near a wall; those move in a straight line, so 10
    frames cover 10 x the speed, give or take the rounding (< 1 px per coordinate)."""
    room, frames = 400, 11
    _, positions = sample_tracks(500, 10, frames=frames, size=28 + room, max_speed=max_speed, seed=8)
    margin = max_speed + 1  # a bounce between two frames leaves one of them this close to the wall
    free = ((positions > margin) & (positions < room - margin)).all(axis=(1, 2, 3))
    assert free.mean() > 0.8
    travelled = np.linalg.norm(positions[free, -1, 0] - positions[free, 0, 0], axis=-1)
    assert travelled.min() >= (frames - 1) * 1.0 - math.sqrt(2)
    assert travelled.max() <= (frames - 1) * max_speed * math.sqrt(2) + math.sqrt(2)


def test_labels_track_the_source_images():
    images, labels = _tagged_images(30)
    videos, video_labels = moving_digits(images, labels, 100, frames=3, size=36, seed=2)
    shown = _source_of(videos)
    assert np.array_equal(video_labels, labels[shown])
    assert len(set(shown.tolist())) > 20  # images are drawn from the whole set


def test_two_digits_label_is_the_sum(mnist):
    images, labels = mnist
    videos, video_labels = moving_digits(images, labels, 300, frames=4, size=56, digits=2, seed=9)
    sources, positions = sample_tracks(300, len(images), frames=4, size=56, digits=2, seed=9)
    assert sources.shape == (300, 2) and positions.shape == (300, 4, 2, 2)
    assert np.array_equal(video_labels, labels[sources].sum(axis=1))
    assert video_labels.min() >= 0 and video_labels.max() <= 18 and video_labels.max() > 9
    # overlap combines by max: the frame is the pixelwise max of the two digits drawn alone
    for i in range(0, 300, 50):
        for t in range(4):
            layers = np.zeros((2, 56, 56))
            for d in range(2):
                y, x = positions[i, t, d]
                layers[d, y:y + 28, x:x + 28] = images[sources[i, d]] / 255
            np.testing.assert_allclose(videos[i, t], layers.max(axis=0), atol=1e-7)


def test_edge_cases(mnist):
    images, labels = mnist
    videos, video_labels = moving_digits(images, labels, 0, frames=3, size=30)
    assert videos.shape == (0, 3, 30, 30) and video_labels.shape == (0,)
    still, _ = moving_digits(images, labels, 5, frames=4, size=28)  # no room: digits stay put
    assert (still == still[:, :1]).all()
    one, _ = moving_digits(images, labels, 5, frames=1)
    assert one.shape == (5, 1, 48, 48)


@pytest.mark.parametrize("change, message", [
    ({"images": "float"}, "images must be a uint8"),
    ({"images": "shape"}, "images must be a uint8 .*\\[N, 28, 28\\]"),
    ({"images": "empty"}, "images must be .*N >= 1"),
    ({"images": "list"}, "images must be a uint8 numpy array"),
    ({"labels": "short"}, "labels must be integers \\[N\\]"),
    ({"labels": "float"}, "labels must be integers"),
    ({"labels": 10}, "labels must be digit classes 0..9"),
    ({"labels": -1}, "labels must be digit classes 0..9"),
    ({"n_videos": -1}, "n_videos must be an integer >= 0"),
    ({"n_videos": 2.5}, "n_videos must be an integer >= 0"),
    ({"frames": 0}, "frames must be an integer >= 1"),
    ({"size": 27}, "size must be an integer >= 28"),
    ({"digits": 0}, "digits must be 1 or 2"),
    ({"digits": 3}, "digits must be 1 or 2"),
    ({"digits": 1.0}, "digits must be 1 or 2"),
    ({"max_speed": 0.5}, "max_speed must be a finite number >= 1"),
    ({"max_speed": float("nan")}, "max_speed must be a finite number >= 1"),
    ({"seed": -1}, "seed must be a non-negative integer"),
])
def test_argument_errors(change, message):
    images, labels = _tagged_images(12)
    kwargs = {"n_videos": 2, "frames": 3, "size": 32, "digits": 1, "max_speed": 2.0, "seed": 0}
    bad_images = {"float": images.astype(np.float32), "shape": images[:, :27], "empty": images[:0],
                  "list": images.tolist()}
    bad_labels = {"short": labels[:-1], "float": labels.astype(np.float64)}
    if "images" in change:
        images = bad_images[change.pop("images")]
    if "labels" in change:
        what = change.pop("labels")
        if isinstance(what, str):
            labels = bad_labels[what]
        else:
            labels = labels.copy()
            labels[4] = what
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        moving_digits(images, labels, **kwargs)


# -- splits --------------------------------------------------------------------------------------


def test_split_image_indices_are_disjoint_and_cover():
    train, valid, test = split_image_indices(5000, seed=0)
    assert (len(train), len(valid), len(test)) == (4000, 500, 500)
    assert all(g.dtype == np.int64 for g in (train, valid, test))
    everything = np.concatenate([train, valid, test])
    assert np.array_equal(np.sort(everything), np.arange(5000))  # disjoint and complete
    again = split_image_indices(5000, seed=0)
    other = split_image_indices(5000, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, valid, test), strict=True))
    assert not np.array_equal(other[1], valid)
    # shuffled, not cut from the class-sorted file: every class reaches the held-out groups
    labels = np.repeat(np.arange(10), 500)
    assert set(labels[valid].tolist()) == set(range(10)) == set(labels[test].tolist())
    small = split_image_indices(3, seed=0)
    assert sorted(len(g) for g in small) == [1, 1, 1]
    with pytest.raises(ValueError, match="n \\(number of images\\) must be an integer >= 3"):
        split_image_indices(2)


def test_splits_use_disjoint_images_and_honour_counts():
    images, labels = _tagged_images(50)
    splits = moving_digit_splits(images, labels, counts=(60, 15, 10), seed=4, frames=3, size=32)
    assert list(splits) == ["train", "valid", "test"]
    groups = dict(zip(("train", "valid", "test"), split_image_indices(50, seed=4), strict=True))
    used = {}
    for name, count in (("train", 60), ("valid", 15), ("test", 10)):
        videos, video_labels = splits[name]
        assert videos.shape == (count, 3, 32, 32) and video_labels.shape == (count,)  # kwargs reached it
        shown = _source_of(videos)
        assert set(shown.tolist()) <= set(groups[name].tolist())
        assert np.array_equal(video_labels, labels[shown])
        used[name] = set(shown.tolist())
    assert not (used["train"] & used["valid"]) and not (used["train"] & used["test"])
    assert not (used["valid"] & used["test"])
    again = moving_digit_splits(images, labels, counts=(60, 15, 10), seed=4, frames=3, size=32)
    assert all(np.array_equal(again[k][0], splits[k][0]) for k in splits)


def test_splits_of_the_shipped_digits(mnist):
    images, labels = mnist
    splits = moving_digit_splits(images, labels, counts=(8, 3, 0), frames=2, digits=2)
    assert [len(splits[k][0]) for k in ("train", "valid", "test")] == [8, 3, 0]
    assert splits["train"][0].shape == (8, 2, 48, 48)
    assert all(splits[k][1].max(initial=0) <= 18 for k in splits)
    with pytest.raises(ValueError, match="counts must be three integers >= 0"):
        moving_digit_splits(images, labels, counts=(1, 2))
    with pytest.raises(ValueError, match="counts must be three integers >= 0"):
        moving_digit_splits(images, labels, counts=(5, -1, 0))
    with pytest.raises(ValueError, match="images must be a uint8"):
        moving_digit_splits(images.astype(np.int16), labels)


# -- the Dataset ---------------------------------------------------------------------------------


def test_dataset_items_and_batches(mnist):
    images, labels = mnist
    videos, video_labels = moving_digits(images, labels, 10, frames=6, size=40, seed=1)
    data = MovingDigits(videos, video_labels)
    assert len(data) == 10
    clip, label = data[3]
    assert clip.shape == (6, 1, 40, 40) and clip.dtype == torch.float32
    assert label.dtype == torch.int64 and label.shape == () and label.item() == video_labels[3]
    assert np.array_equal(clip[:, 0].numpy(), videos[3])
    loader = torch.utils.data.DataLoader(data, batch_size=4, shuffle=False)
    batches = list(loader)
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    clips, batch_labels = batches[0]
    assert clips.shape == (4, 6, 1, 40, 40) and clips.dtype == torch.float32
    assert batch_labels.dtype == torch.int64 and batch_labels.tolist() == video_labels[:4].tolist()


def test_dataset_rejects_bad_arrays():
    with pytest.raises(ValueError, match="videos must be float32 \\[n_videos, frames, size, size\\]"):
        MovingDigits(np.zeros((2, 3, 4), np.float32), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="videos must be float32"):
        MovingDigits(np.zeros((2, 3, 4, 4), np.float64), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="labels must be integers \\[n_videos\\]"):
        MovingDigits(np.zeros((2, 3, 4, 4), np.float32), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="labels must be integers"):
        MovingDigits(np.zeros((2, 3, 4, 4), np.float32), np.zeros(2, np.float32))
