"""The piano-roll model: fused against torch backend, padding, the frame NLL, generation."""

import math

import pytest
import torch

from fusedrnn.models.music import PianoRollModel, frame_nll

from .conftest import adam_losses

KEYS = 12


def _rolls(batch, frames, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, frames, KEYS, generator=gen) < 0.3).float()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_matches_torch_backend_with_lengths(cell):
    torch.manual_seed(0)
    fused = PianoRollModel(KEYS, hidden_size=10, num_layers=2, cell=cell)
    ref = PianoRollModel(KEYS, hidden_size=10, num_layers=2, cell=cell, backend="torch")
    ref.load_state_dict(fused.state_dict())
    roll, lengths = _rolls(3, 9), torch.tensor([9, 4, 6])
    loss = frame_nll(fused(roll[:, :-1], lengths - 1)[0], roll[:, 1:], lengths - 1)
    loss_ref = frame_nll(ref(roll[:, :-1], lengths - 1)[0], roll[:, 1:], lengths - 1)
    torch.testing.assert_close(loss, loss_ref, atol=1e-5, rtol=1e-5)
    loss.backward()
    loss_ref.backward()
    grads = dict(ref.named_parameters())
    for name, p in fused.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, atol=1e-5, rtol=1e-4, msg=name)


def test_frame_nll_counts_only_valid_frames():
    logits, target = torch.randn(2, 5, KEYS), _rolls(2, 5)
    lengths = torch.tensor([5, 2])
    per_frame = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(2)
    expected = (per_frame[0].sum() + per_frame[1, :2].sum()) / 7
    torch.testing.assert_close(frame_nll(logits, target, lengths), expected)
    scrambled = logits.clone()
    scrambled[1, 2:] = 1e3  # whatever lies past a sequence's end
    torch.testing.assert_close(frame_nll(scrambled, target, lengths), expected)
    torch.testing.assert_close(frame_nll(logits, target), per_frame.mean())
    # an untrained model that predicts 1/2 everywhere scores keys * log 2 a frame
    assert frame_nll(torch.zeros(1, 3, KEYS), target[:1, :3]).item() == pytest.approx(KEYS * math.log(2))


def test_padding_does_not_change_valid_logits():
    torch.manual_seed(0)
    model = PianoRollModel(KEYS, hidden_size=8).eval()
    roll, lengths = _rolls(2, 7), torch.tensor([7, 3])
    with torch.no_grad():
        logits, _ = model(roll, lengths)
        alone, _ = model(roll[1:, :3])
        torch.testing.assert_close(logits[1:, :3], alone, atol=1e-6, rtol=1e-5)
        assert torch.equal(logits[1, 3:], torch.zeros(4, KEYS).add(model.head.bias))


def test_generation_carries_the_state_and_is_reproducible():
    torch.manual_seed(0)
    model = PianoRollModel(KEYS, hidden_size=8)
    with torch.no_grad():  # larger weights: probabilities far from 1/2 that hang on the state
        for p in model.parameters():
            p.mul_(4)
    primer = _rolls(1, 4)[0]
    out = model.generate(primer, 6, generator=torch.Generator().manual_seed(5))
    assert out.shape == (10, KEYS) and torch.equal(out[:4], primer)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    again = model.generate(primer, 6, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out, again)
    # the frame-by-frame state gives the logits that one call over the whole sequence gives
    with torch.no_grad():
        whole, _ = model(out.unsqueeze(0))
        logits, state = model(out[:4].unsqueeze(0))
        steps = [logits[0, -1]]
        for t in range(4, 10):
            logits, state = model(out[t:t + 1].unsqueeze(0), state=state)
            steps.append(logits[0, -1])
    torch.testing.assert_close(torch.stack(steps), whole[0, 3:], atol=1e-5, rtol=1e-4)
    # generate drew each frame from those logits: the same draws from the same generator
    gen = torch.Generator().manual_seed(5)
    for t in range(4, 10):
        assert torch.equal(torch.bernoulli(torch.sigmoid(whole[0, t - 1]), generator=gen), out[t])
    capped = model.generate(primer, 20, max_voices=2, generator=torch.Generator().manual_seed(1))
    assert capped[4:].sum(1).max() <= 2


def test_learns_a_repeating_pattern():
    torch.manual_seed(0)
    model = PianoRollModel(KEYS, hidden_size=16)
    pattern = torch.zeros(4, KEYS)
    for t, keys in enumerate(([0, 4, 7], [2, 5, 9], [4, 7, 11], [5, 9, 0])):
        pattern[t, keys] = 1
    roll = pattern.repeat(6, 1).unsqueeze(0)
    losses = adam_losses(model, lambda: frame_nll(model(roll[:, :-1])[0], roll[:, 1:]), steps=60, lr=2e-2)
    assert losses[-1] < 0.2 * losses[0]


def test_errors():
    model = PianoRollModel(KEYS, hidden_size=8)
    with pytest.raises(ValueError, match=r"roll must be \[batch, time, 12\]"):
        model(torch.zeros(1, 3, 5))
    with pytest.raises(ValueError, match=r"lengths must be \[1\]"):
        model(torch.zeros(1, 3, KEYS), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 3\]"):
        model(torch.zeros(1, 3, KEYS), torch.tensor([4]))
    with pytest.raises(ValueError, match="primer must be"):
        model.generate(torch.zeros(0, KEYS), 2)
    with pytest.raises(ValueError, match="temperature must be positive"):
        model.generate(torch.zeros(1, KEYS), 2, temperature=0.0)
    with pytest.raises(ValueError, match="max_voices"):
        model.generate(torch.zeros(1, KEYS), 2, max_voices=0)
    with pytest.raises(ValueError, match="cell must be one of"):
        PianoRollModel(KEYS, cell="rnn")
