"""torch.compile(fullgraph=True) traces the fused modules forward and backward."""

import pytest
import torch
from torch import nn

import fusedrnn

from .conftest import assert_close


class Classifier(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(2 * rnn.hidden_size, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


@pytest.mark.parametrize("kind,backend", [("lstm", "inductor"), ("gru", "aot_eager"),
                                          ("rnn", "aot_eager")])
def test_compiled_training_step_matches_eager(kind, backend):
    cls = {"lstm": fusedrnn.LSTM, "gru": fusedrnn.GRU, "rnn": fusedrnn.RNN}[kind]
    torch.manual_seed(0)
    eager = Classifier(cls(4, 8, num_layers=2, batch_first=True, bidirectional=True))
    torch.manual_seed(0)
    compiled_model = Classifier(cls(4, 8, num_layers=2, batch_first=True, bidirectional=True))
    compiled = torch.compile(compiled_model, fullgraph=True, backend=backend)
    x = torch.randn(3, 5, 4)
    eager(x).square().sum().backward()
    out = compiled(x)
    out.square().sum().backward()
    assert_close(out, eager(x))
    for (name, p), q in zip(eager.named_parameters(), compiled_model.parameters(), strict=True):
        assert_close(q.grad, p.grad, what=name)


def test_compiled_cell_loop():
    cell = fusedrnn.LSTMCell(4, 6)

    def decode(x, h, c):
        for t in range(x.shape[0]):
            h, c = cell(x[t], (h, c))
        return h

    compiled = torch.compile(decode, fullgraph=True, backend="aot_eager")
    x, h, c = torch.randn(5, 2, 4), torch.zeros(2, 6), torch.zeros(2, 6)
    assert_close(compiled(x, h, c), decode(x, h, c))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_compiled_cell_training_matches_eager(kind):
    # the cells' autograd is C++ (csrc/cell_autograd.cpp): AOTAutograd traces it into the
    # forward and backward ops
    cls = {"lstm": fusedrnn.LSTMCell, "gru": fusedrnn.GRUCell, "rnn": fusedrnn.RNNCell}[kind]
    torch.manual_seed(0)
    cell = cls(4, 6)

    def decode(x, h):
        for t in range(x.shape[0]):
            out = cell(x[t], (h, torch.zeros_like(h)) if kind == "lstm" else h)
            h = out[0] if kind == "lstm" else out
        return h

    x, h = torch.randn(5, 2, 4, requires_grad=True), torch.randn(2, 6, requires_grad=True)
    eager_out = decode(x, h)
    expected = torch.autograd.grad(eager_out.square().sum(), [x, h, *cell.parameters()])
    compiled = torch.compile(decode, fullgraph=True, backend="aot_eager")
    out = compiled(x, h)
    assert_close(out, eager_out)
    got = torch.autograd.grad(out.square().sum(), [x, h, *cell.parameters()])
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert_close(a, b, what=f"grad {i}")
