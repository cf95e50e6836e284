"""torch.export of models built on the fused layers: the exported program calls the fused ops,
matches eager, survives torch.export.save/load, and takes other batch sizes and lengths when
they are declared dynamic."""

import pytest
import torch
from torch import nn

import fusedrnn

LAYERS = {
    "lstm": lambda: fusedrnn.LSTM(3, 5, num_layers=2, batch_first=True, bidirectional=True),
    "gru": lambda: fusedrnn.GRU(3, 5, batch_first=True),
    "rnn": lambda: fusedrnn.RNN(3, 5, batch_first=True, nonlinearity="relu"),
    "ln_gru": lambda: fusedrnn.LayerNormGRU(3, 5, batch_first=True),
}


class Tagger(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.rnn = LAYERS[kind]()
        self.head = nn.Linear(self.rnn.hidden_size * (2 if self.rnn.bidirectional else 1), 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


@pytest.mark.parametrize("kind", list(LAYERS))
def test_export_save_load_and_dynamic_shapes(kind, tmp_path):
    torch.manual_seed(0)
    model = Tagger(kind).eval()
    x = torch.randn(4, 7, 3)
    program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch"),
                                                                     1: torch.export.Dim("steps")}})
    calls = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert any(c.startswith("fusedrnn.") for c in calls), calls  # the fused op, not a fallback
    torch.export.save(program, tmp_path / "tagger.pt2")
    loaded = torch.export.load(tmp_path / "tagger.pt2").module()
    for shape in ((4, 7, 3), (6, 11, 3), (1, 2, 3)):
        x = torch.randn(*shape)
        torch.testing.assert_close(loaded(x), model(x))
