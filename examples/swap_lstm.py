"""A sentence classifier written for torch.nn, run with fusedrnn by changing one name."""

import torch
from torch import nn

import fusedrnn


class Classifier(nn.Module):
    def __init__(self, rnn_cls, vocab=1000, classes=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, 64)
        self.rnn = rnn_cls(64, 128, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(256, classes)

    def forward(self, tokens):
        _, (h, _) = self.rnn(self.embed(tokens))
        return self.head(torch.cat([h[-2], h[-1]], dim=1))


if __name__ == "__main__":
    tokens = torch.randint(0, 1000, (32, 40))
    torch.manual_seed(0)
    reference = Classifier(nn.LSTM)
    torch.manual_seed(0)
    fused = Classifier(fusedrnn.LSTM)  # the only change
    diff = (fused(tokens) - reference(tokens)).abs().max().item()
    print(f"max |logit difference| between torch.nn and fusedrnn: {diff:.2e}")
