"""fusedrnn.LSTMCell, GRUCell and RNNCell: torch.nn's cells with the step run by the fused ops."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import ops
from ._fallback import (
    autocast_dtype,
    cast_all,
    cast_state,
    fused_supported,
    refuse_torchscript,
    warn_fallback,
)
from ._params import module_tensor

_WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_CELL_OP = {nn.LSTMCell: "lstm_cell", nn.GRUCell: "gru_cell", nn.RNNCell: "rnn_cell"}


class _FusedCell:
    """Mixin: argument handling as in torch.nn's cells, then one fused op call."""

    @classmethod
    def from_torch(cls, cell: nn.RNNCellBase):
        """A fused copy of a torch.nn cell of the same kind, with its weights."""
        expected = cls._torch_base()
        if not isinstance(cell, expected):
            raise TypeError(f"fusedrnn.{cls.__name__}.from_torch expects a torch.nn.{expected.__name__}, "
                            f"got {type(cell).__module__}.{type(cell).__name__}")
        w = cell.weight_ih
        kwargs = {"nonlinearity": cell.nonlinearity} if isinstance(cell, nn.RNNCell) else {}
        fused = cls(cell.input_size, cell.hidden_size, bias=cell.bias, device=w.device,
                    dtype=w.dtype, **kwargs)
        fused.load_state_dict(cell.state_dict())
        return fused

    def to_torch(self) -> nn.RNNCellBase:
        """The equivalent torch.nn cell, with these weights."""
        base = self._torch_base()
        w = self.weight_ih
        kwargs = {"nonlinearity": self.nonlinearity} if base is nn.RNNCell else {}
        cell = base(self.input_size, self.hidden_size, bias=self.bias, device=w.device,
                    dtype=w.dtype, **kwargs)
        cell.load_state_dict(self.state_dict())
        return cell

    __prepare_scriptable__ = refuse_torchscript

    @classmethod
    def _torch_base(cls):
        return next(c for c in cls.__mro__ if c in _CELL_OP)

    def _weights(self, dtype: torch.dtype | None = None) -> list[Tensor | None]:
        params = self._parameters
        try:  # registered parameters (None for bias=False): four lookups, no call per name
            weights = [params["weight_ih"], params["weight_hh"], params["bias_ih"], params["bias_hh"]]
        except KeyError:  # a parametrization or weight_norm replaced one
            weights = [module_tensor(self, n) for n in _WEIGHT_NAMES]
        return cast_all(weights, dtype)

    def _prepare(self, input: Tensor, states: list[Tensor | None]):
        """Validates like torch.nn; returns (batched input, batched states, unbatched?)."""
        if input.dim() == 2:
            # a decoder's usual call, checked in a few attribute reads: batched, states given
            # (a plain loop: all() over a generator took 0.3 µs more of a 10 µs call)
            batch, width = input.shape
            if width == self.input_size:
                expected = (batch, self.hidden_size)
                for s in states:
                    if s is None or s.shape != expected:
                        break
                else:
                    return input, states, False
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        for s in states:
            if s is not None and s.dim() not in (1, 2):
                raise ValueError(f"{name}: Expected hidden to be 1D or 2D, got {s.dim()}D instead")
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input
        out = []
        for s in states:
            if s is None:
                s = torch.zeros(x.size(0), self.hidden_size, dtype=x.dtype, device=x.device)
            elif unbatched:
                s = s.unsqueeze(0)
            out.append(s)
        if x.size(1) != self.input_size:
            raise RuntimeError(
                f"{name}: input has inconsistent input_size: got {x.size(1)}, expected "
                f"{self.input_size}"
            )
        for s in out:
            if s.shape != (x.size(0), self.hidden_size):
                raise RuntimeError(
                    f"{name}: hidden state must be [{x.size(0)}, {self.hidden_size}] (batch, "
                    f"hidden_size) to match the input, got {list(s.shape)}"
                )
        return x, out, unbatched


class LSTMCell(_FusedCell, nn.LSTMCell):
    """Drop-in torch.nn.LSTMCell running one fused step."""

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None):
        run_in = autocast_dtype(input)  # under torch.autocast: see _fallback.autocast_dtype
        if run_in is not None:
            input, hx = input.to(run_in), cast_state(hx, run_in)
        if not fused_supported("lstm_cell", input):
            warn_fallback("LSTMCell", input)
            return super().forward(input, hx)
        if hx is None:
            states = [None, None]
        elif (isinstance(hx, (tuple, list)) and len(hx) == 2 and isinstance(hx[0], Tensor)
              and isinstance(hx[1], Tensor)):
            states = list(hx)
        else:  # a [2, B, H] tensor or a pair with a None would otherwise be taken apart silently
            got = type(hx).__name__
            if isinstance(hx, (tuple, list)):
                got += f" of {', '.join(type(s).__name__ for s in hx) or 'nothing'}"
            raise TypeError(f"LSTMCell: hx must be None or a pair (h_0, c_0) of tensors, got {got}")
        x, (h, c), unbatched = self._prepare(input, states)
        h, c = ops.lstm_cell(x, h, c, *self._weights(run_in))
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)


class GRUCell(_FusedCell, nn.GRUCell):
    """Drop-in torch.nn.GRUCell running one fused step."""

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        run_in = autocast_dtype(input)
        if run_in is not None:
            input, hx = cast_all([input, hx], run_in)
        if not fused_supported("gru_cell", input):
            warn_fallback("GRUCell", input)
            return super().forward(input, hx)
        x, (h,), unbatched = self._prepare(input, [hx])
        h = ops.gru_cell(x, h, *self._weights(run_in))
        return h.squeeze(0) if unbatched else h


class RNNCell(_FusedCell, nn.RNNCell):
    """Drop-in torch.nn.RNNCell (tanh or relu) running one fused step."""

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        run_in = autocast_dtype(input)
        if run_in is not None:
            input, hx = cast_all([input, hx], run_in)
        if not fused_supported("rnn_cell", input):
            warn_fallback("RNNCell", input)
            return super().forward(input, hx)
        x, (h,), unbatched = self._prepare(input, [hx])
        h = ops.rnn_cell(x, h, *self._weights(run_in), relu=self.nonlinearity == "relu")
        return h.squeeze(0) if unbatched else h
