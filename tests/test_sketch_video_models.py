"""The sketch and video classifiers: shapes, fused against torch backend, padding invariance,
training, and argument errors."""

import pytest
import torch

from fusedrnn.models.lengths import length_mask
from fusedrnn.models.sketch import SketchClassifier
from fusedrnn.models.video import VideoClassifier

from .conftest import adam_losses


def _sketch_batch(lengths, channels=3, seed=0):
    """Zero-padded random sketches [B, max(lengths), channels]."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), int(lengths.max()), channels, generator=gen)
    return x * length_mask(lengths, x.size(1)).unsqueeze(2), lengths


def _pair(cls, **kwargs):
    torch.manual_seed(0)
    fused = cls(backend="fused", **kwargs).eval()
    ref = cls(backend="torch", **kwargs).eval()
    ref.load_state_dict(fused.state_dict())
    return fused, ref


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("conv_stride", [1, 2])
def test_sketch_classifier_matches_torch_backend(cell, conv_stride):
    fused, ref = _pair(SketchClassifier, num_classes=5, hidden_size=16, conv_channels=(8, 12),
                       cell=cell, conv_stride=conv_stride)
    x, lengths = _sketch_batch([9, 4, 13, 7])
    x.requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, out_ref = fused(x, lengths), ref(x_ref, lengths)
    assert out.shape == (4, 5)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-4)
    out.square().sum().backward()
    out_ref.square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-5, rtol=1e-4)
    grads = dict(ref.named_parameters())
    for name, p in fused.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("conv_stride", [1, 2])
def test_sketch_scores_ignore_padding_and_batch_company(conv_stride):
    torch.manual_seed(0)
    model = SketchClassifier(4, hidden_size=16, conv_channels=(8, 8), conv_stride=conv_stride).eval()
    x, lengths = _sketch_batch([11, 5, 8])
    with torch.no_grad():
        scores = model(x, lengths)
        padded = torch.nn.functional.pad(x, (0, 0, 0, 9))  # 9 more zero steps
        torch.testing.assert_close(model(padded, lengths), scores, atol=1e-6, rtol=1e-5)
        alone = model(x[1:2, :5], lengths[1:2])  # the short sketch without its longer neighbours
        torch.testing.assert_close(alone, scores[1:2], atol=1e-6, rtol=1e-5)


def test_sketch_classifier_without_conv_front_and_stroke5():
    torch.manual_seed(0)
    model = SketchClassifier(3, input_size=5, conv_channels=(), hidden_size=8, num_layers=1,
                             bidirectional=False)
    x, lengths = _sketch_batch([6, 2], channels=5)
    assert model(x, lengths).shape == (2, 3)


def test_sketch_classifier_learns_a_small_batch():
    torch.manual_seed(0)
    model = SketchClassifier(2, hidden_size=16, conv_channels=(8,), dropout=0.0)
    x, lengths = _sketch_batch([10, 7, 12, 9, 6, 11], seed=3)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    x[labels == 1, :, 0] += 1.0 * length_mask(lengths, x.size(1))[labels == 1]  # class 1 drifts right
    losses = adam_losses(model, lambda: torch.nn.functional.cross_entropy(model(x, lengths), labels),
                         steps=30, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]


def test_sketch_classifier_errors():
    model = SketchClassifier(3, hidden_size=8, conv_channels=(4,), conv_stride=4)
    x, lengths = _sketch_batch([6, 5])
    with pytest.raises(ValueError, match=r"x must be \[batch, time, 3\]"):
        model(x[..., :2], lengths)
    with pytest.raises(ValueError, match=r"lengths must be \[2\]"):
        model(x, lengths[:1])
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 6\]"):
        model(x, torch.tensor([7, 5]))
    one_point, ones = _sketch_batch([1, 1])  # a stride of 4 still leaves one step
    assert model(one_point, ones).shape == (2, 3)
    with pytest.raises(ValueError, match="kernel_size must be a positive odd number"):
        SketchClassifier(3, kernel_size=4)
    with pytest.raises(ValueError, match="cell must be one of"):
        SketchClassifier(3, cell="rnn")
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        SketchClassifier(1)


def _videos(batch, frames, side=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, frames, 1, side, side, generator=gen)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_video_classifier_matches_torch_backend(cell, bidirectional):
    fused, ref = _pair(VideoClassifier, num_classes=4, frame_size=16, channels=(4, 8),
                       feature_size=24, hidden_size=12, num_layers=2, cell=cell,
                       bidirectional=bidirectional)
    video = _videos(3, 5)
    out, out_ref = fused(video), ref(video)
    assert out.shape == (3, 4)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-4)
    out.square().sum().backward()
    out_ref.square().sum().backward()
    grads = dict(ref.named_parameters())
    for name, p in fused.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_video_lengths_ignore_padding_frames(bidirectional):
    torch.manual_seed(0)
    model = VideoClassifier(3, frame_size=16, channels=(4,), feature_size=8, hidden_size=8,
                            bidirectional=bidirectional).eval()
    video = _videos(2, 7)
    with torch.no_grad():
        scores = model(video, torch.tensor([7, 4]))
        torch.testing.assert_close(model(video[1:, :4]), scores[1:], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(model(video[:1]), scores[:1], atol=1e-6, rtol=1e-5)
        noisy = video.clone()
        noisy[1, 4:] = torch.rand(3, 1, 16, 16)  # whatever fills the padding frames
        torch.testing.assert_close(model(noisy, torch.tensor([7, 4])), scores, atol=0, rtol=0)


def test_video_classifier_learns_a_small_batch():
    torch.manual_seed(0)
    model = VideoClassifier(2, frame_size=16, channels=(4,), feature_size=16, hidden_size=16)
    video = _videos(6, 4, seed=1)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    video[labels == 1, -1] += 0.5  # class 1 brightens in its last frame: order matters
    losses = adam_losses(model, lambda: torch.nn.functional.cross_entropy(model(video), labels),
                         steps=30, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]


def test_video_classifier_errors():
    model = VideoClassifier(3, frame_size=16, channels=(4,))
    video = _videos(2, 3)
    with pytest.raises(ValueError, match=r"video must be \[batch, time, 1, 16, 16\]"):
        model(video[..., :8])
    with pytest.raises(ValueError, match=r"lengths must be \[2\]"):
        model(video, torch.tensor([3]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 3\]"):
        model(video, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="too small"):
        VideoClassifier(3, frame_size=2, channels=(4, 4))
    with pytest.raises(ValueError, match="cell must be one of"):
        VideoClassifier(3, frame_size=16, cell="rnn")
