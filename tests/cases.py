"""Builders of op arguments shared by the op tests."""

from dataclasses import dataclass, field

import torch

from fusedrnn import ops

from . import reference

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


@dataclass
class LayerCase:
    cell: str
    x: torch.Tensor
    states: list  # [h0] or [h0, c0]
    weights: dict  # w_ih, w_hh, b_ih, b_hh (+ w_hr)
    batch_sizes: torch.Tensor | None = None
    reverse: bool = False
    extra: dict = field(default_factory=dict)

    def inputs(self):
        """Every differentiable tensor, in a fixed order."""
        return [self.x, *self.states] + [w for w in self.weights.values() if w is not None]

    def fused(self):
        """(y, *final states) from the fused op."""
        w = self.weights
        common = dict(batch_sizes=self.batch_sizes, reverse=self.reverse)
        if self.cell == "lstm":
            return ops.lstm_layer(self.x, *self.states, w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"],
                                  w.get("w_hr"), **common)
        if self.cell == "gru":
            return ops.gru_layer(self.x, *self.states, w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"],
                                 **common)
        return ops.rnn_layer(self.x, *self.states, w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"],
                             relu=self.cell == "rnn_relu", **common)

    def reference(self):
        step = {"lstm": reference.lstm_step, "gru": reference.gru_step}.get(
            self.cell, reference.rnn_step
        )
        kwargs = dict(self.weights)
        if self.cell.startswith("rnn"):
            kwargs["relu"] = self.cell == "rnn_relu"
        y, states = reference.run_layer(step, self.x, self.states, self.batch_sizes, self.reverse,
                                        **kwargs)
        return (y, *states)


def batch_sizes_for(lengths):
    lengths = torch.as_tensor(sorted(lengths, reverse=True))
    return torch.tensor([int((lengths > t).sum()) for t in range(int(lengths[0]))])


def layer_case(cell, T=5, B=3, I=4, H=6, *, packed=False, reverse=False, bias=True, proj=0,
               dtype=torch.float32, requires_grad=True, lengths=None):
    g = GATES[cell]
    scale = H**-0.5
    rand = lambda *shape: (torch.rand(*shape, dtype=dtype) * 2 - 1)  # noqa: E731
    batch_sizes = None
    if packed:
        lengths = lengths or torch.randint(1, T + 1, (B,)).tolist()
        lengths[0] = T  # the longest sequence sets T
        batch_sizes = batch_sizes_for(lengths)
        x = rand(int(batch_sizes.sum()), I)
    else:
        x = rand(T, B, I)
    out = proj or H
    states = [rand(B, out) * 0.5] + ([rand(B, H) * 0.5] if cell == "lstm" else [])
    weights = {
        "w_ih": rand(g * H, I) * scale,
        "w_hh": rand(g * H, out) * scale,
        "b_ih": rand(g * H) * scale if bias else None,
        "b_hh": rand(g * H) * scale if bias else None,
    }
    if proj:
        weights["w_hr"] = rand(proj, H) * scale
    case = LayerCase(cell, x, states, weights, batch_sizes, reverse)
    for t in case.inputs():
        t.requires_grad_(requires_grad)
    return case
