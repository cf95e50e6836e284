"""fusedrnn.LSTM, GRU and RNN: torch.nn's modules with the recurrence run by the fused ops.

Each subclasses torch.nn.RNNBase, as torch's own classes do, so the constructor, parameter names
and shapes, initialisation, state_dict, flatten_parameters, all_weights and repr are torch.nn's;
torch.nn.LSTM's argument checks are borrowed as they are. They deliberately do not subclass
nn.LSTM/GRU/RNN themselves: torch.compile refuses to trace instances of those classes.

The argument handling follows torch.nn's forward step for step so that errors and edge cases
match; the stack itself (layers, directions, dropout) lives in _stack below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

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
from .regularizers import (
    LayerMasks,
    Regularization,
    check_generator,
    check_layer_masks,
    check_mask_keys,
    draw_masks,
)

_LAYER_OP = {"LSTM": "lstm_layer", "GRU": "gru_layer", "RNN_TANH": "rnn_layer", "RNN_RELU": "rnn_layer"}
_TORCH_CLASS = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN_TANH": nn.RNN, "RNN_RELU": nn.RNN}


class _FusedStack:
    """Mixin holding the forward shared by LSTM, GRU and RNN."""

    mode: str
    # zoneout / dropconnect / recurrent dropout rates (all off by default) and their RNG
    regularization: Regularization = Regularization()
    generator: torch.Generator | None = None

    def _set_regularization(self, reg: Regularization, generator: torch.Generator | None) -> None:
        check_generator(generator)
        self.regularization = reg
        self.generator = generator

    def extra_repr(self) -> str:
        return super().extra_repr() + self.regularization.extra_repr()

    __prepare_scriptable__ = refuse_torchscript

    @classmethod
    def from_torch(cls, module: nn.RNNBase):
        """A fused copy of a torch.nn module of the same kind, with its weights."""
        pairs = {LSTM: nn.LSTM, GRU: nn.GRU, RNN: nn.RNN}
        fused_kind = next((c for c in cls.__mro__ if c in pairs), None)
        if fused_kind is None:
            raise TypeError(f"fusedrnn.{cls.__name__} has no torch.nn equivalent to copy from")
        expected = pairs[fused_kind]
        if not isinstance(module, expected):
            raise TypeError(f"fusedrnn.{cls.__name__}.from_torch expects a torch.nn.{expected.__name__}, "
                            f"got {type(module).__module__}.{type(module).__name__}")
        fused = cls.__new__(cls)
        kwargs = {}
        if module.mode.startswith("RNN_"):
            kwargs["nonlinearity"] = module.nonlinearity
        if module.mode == "LSTM":
            kwargs["proj_size"] = module.proj_size
        w = module.weight_ih_l0
        cls.__init__(
            fused, module.input_size, module.hidden_size, num_layers=module.num_layers,
            bias=module.bias, batch_first=module.batch_first, dropout=module.dropout,
            bidirectional=module.bidirectional, device=w.device, dtype=w.dtype, **kwargs,
        )
        fused.load_state_dict(module.state_dict())
        fused.train(module.training)
        return fused

    def to_torch(self) -> nn.RNNBase:
        """The equivalent torch.nn module, with these weights."""
        base = _TORCH_CLASS[self.mode]
        w = self.weight_ih_l0
        kwargs = {}
        if self.mode.startswith("RNN_"):
            kwargs["nonlinearity"] = self.nonlinearity
        if self.mode == "LSTM":
            kwargs["proj_size"] = self.proj_size
        module = base(
            self.input_size, self.hidden_size, num_layers=self.num_layers, bias=self.bias,
            batch_first=self.batch_first, dropout=self.dropout, bidirectional=self.bidirectional,
            device=w.device, dtype=w.dtype, **kwargs,
        )
        module.load_state_dict(self.state_dict())
        module.train(self.training)
        return module

    def _layer_op_name(self) -> str:
        return _LAYER_OP[self.mode]

    def _unfused_forward(self, input, hx, data: Tensor):
        """Inputs with no fused kernel run torch.nn's implementation, after a one-time warning."""
        if self.regularization.active():
            raise TypeError(
                f"fusedrnn.{type(self).__name__}: zoneout, dropconnect and recurrent_dropout need the "
                f"fused kernels, which do not run {data.dtype} on {data.device.type}"
            )
        warn_fallback(type(self).__name__, data)
        return _TORCH_CLASS[self.mode].forward(self, input, hx)

    def _layer_weights(self, layer: int, direction: int) -> list[Tensor | None]:
        sfx = f"_l{layer}" + ("_reverse" if direction else "")
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        weights = [module_tensor(self, name + sfx) for name in names]
        wanted = (True, True, self.bias, self.bias, self.proj_size > 0)
        for name, w, want in zip(names, weights, wanted, strict=True):
            if want and w is None:  # set to None after construction: torch.nn refuses it too
                raise TypeError(f"fusedrnn.{type(self).__name__}: {name}{sfx} is None, but the "
                                f"module was built with it")
        return weights

    def _run_layer(self, x, h0, c0, weights, batch_sizes, reverse, layer, direction, masks):
        w_ih, w_hh, b_ih, b_hh, w_hr = weights
        m = masks
        if self.mode == "LSTM":
            return ops.lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse,
                                  m.rec_mask, m.zoneout_h, m.zoneout_c)
        if self.mode == "GRU":
            return (*ops.gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, m.rec_mask,
                                   m.zoneout_h), None)
        relu = self.mode == "RNN_RELU"
        return (*ops.rnn_layer(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu, m.rec_mask,
                               m.zoneout_h), None)

    def _layer_masks(self, explicit, layer, direction, x, batch, w_hh) -> LayerMasks:
        if explicit is not None:
            m = explicit.get((layer, direction), LayerMasks())
            check_layer_masks(m, (layer, direction), self.mode == "LSTM",
                              (*x.shape[:-1], self.hidden_size), batch, w_hh)
            return m
        if not self.regularization.active():
            return LayerMasks()
        y_shape = (*x.shape[:-1], self.hidden_size)
        return draw_masks(self.regularization, self.training, y_shape, batch, self.hidden_size, w_hh,
                          self.generator)

    def _stack(self, x: Tensor, h0: Tensor, c0: Tensor | None, batch_sizes: Tensor | None,
               masks: dict | None = None, run_in: torch.dtype | None = None):
        """All layers and directions on time-major (or packed) x, the weights in `run_in` under
        autocast. Returns (y, h_n, c_n)."""
        directions = 2 if self.bidirectional else 1
        if masks is not None:
            check_mask_keys(masks, self.num_layers, directions)
        h_out, c_out = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                idx = layer * directions + direction
                weights = cast_all(self._layer_weights(layer, direction), run_in)
                m = self._layer_masks(masks, layer, direction, x, h0.shape[1], weights[1])
                if m.dropconnect is not None:  # one W_hh mask for every step of this call
                    weights[1] = weights[1] * m.dropconnect
                y, h, c = self._run_layer(
                    x, h0[idx], c0[idx] if c0 is not None else None, weights, batch_sizes,
                    direction == 1, layer, direction, m,
                )
                outputs.append(y)
                h_out.append(h)
                c_out.append(c)
            x = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        c_n = _stacked(c_out) if c0 is not None else None
        return x, _stacked(h_out), c_n

    def forward(self, input, hx=None, *, masks=None):  # noqa: C901  (mirrors torch.nn's forward)
        """torch.nn's forward; `masks` ({(layer, direction): LayerMasks}) replaces the regularisers'
        random masks, for tests that compare against a reference element for element."""
        data = input.data if isinstance(input, PackedSequence) else input
        run_in = autocast_dtype(data)  # under torch.autocast: see _fallback.autocast_dtype
        if run_in is not None:
            data = data.to(run_in)
            input = input._replace(data=data) if isinstance(input, PackedSequence) else data
            hx = cast_state(hx, run_in)
        if not fused_supported(self._layer_op_name(), data):
            return self._unfused_forward(input, hx, data)
        is_lstm = self.mode == "LSTM"
        directions = 2 if self.bidirectional else 1
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        name = type(self).__name__

        batch_sizes = None
        unbatched = False
        if isinstance(input, PackedSequence):
            x, batch_sizes, sorted_indices, unsorted_indices = input
            max_batch = int(batch_sizes[0])
        else:
            if input.dim() not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead")
            unbatched = input.dim() == 2
            batch_dim = 0 if self.batch_first else 1
            x = input.unsqueeze(batch_dim) if unbatched else input
            max_batch = x.size(batch_dim)
            sorted_indices = unsorted_indices = None

        if hx is None:
            shape = (self.num_layers * directions, max_batch)
            h0 = torch.zeros(*shape, real_hidden, dtype=x.dtype, device=x.device)
            c0 = torch.zeros(*shape, self.hidden_size, dtype=x.dtype, device=x.device)
            hx = (h0, c0) if is_lstm else h0
        else:
            _check_state_kind(name, hx, is_lstm)
            if batch_sizes is None:
                hx = _batched_state(hx, is_lstm, unbatched)
        self.check_forward_args(x, hx, batch_sizes)
        hx = self.permute_hidden(hx, sorted_indices)

        if self.batch_first and batch_sizes is None:
            x = x.transpose(0, 1)
        if x.size(0) == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        h0, c0 = hx if is_lstm else (hx, None)
        y, h_n, c_n = self._stack(x, h0, c0, batch_sizes, masks, run_in)
        if self.batch_first and batch_sizes is None:
            y = y.transpose(0, 1)

        hidden = (h_n, c_n) if is_lstm else h_n
        if batch_sizes is not None:
            return PackedSequence(y, batch_sizes, sorted_indices, unsorted_indices), \
                self.permute_hidden(hidden, unsorted_indices)
        if unbatched:
            y = y.squeeze(batch_dim)
            hidden = (h_n.squeeze(1), c_n.squeeze(1)) if is_lstm else h_n.squeeze(1)
        return y, hidden


def _check_state_kind(name: str, hx, is_lstm: bool) -> None:
    """hx is a pair (h_0, c_0) of tensors for an LSTM, a tensor otherwise."""
    if is_lstm:
        if isinstance(hx, (tuple, list)) and len(hx) == 2 and all(isinstance(s, Tensor) for s in hx):
            return
        got = type(hx).__name__
        if isinstance(hx, (tuple, list)):
            got += f" of {len(hx)}: {', '.join(type(s).__name__ for s in hx) or 'nothing'}"
        raise RuntimeError(f"{name}: hx must be None or a pair (h_0, c_0) of tensors, got {got}")
    if not isinstance(hx, Tensor):
        raise RuntimeError(f"{name}: hx must be None or a tensor, got {type(hx).__name__}")


def _batched_state(hx, is_lstm: bool, unbatched: bool):
    """hx as the batched 3-D states, checked against the input's rank in torch.nn's words."""
    states = hx if is_lstm else (hx,)
    want = 2 if unbatched else 3
    if any(s.dim() != want for s in states):
        kind = "unbatched 2-D input" if unbatched else "batched 3-D input"
        if is_lstm:
            dims = ", ".join(f"{s.dim()}-D" for s in states)
            raise RuntimeError(f"For {kind}, hx and cx should also be {want}-D but got ({dims}) tensors")
        raise RuntimeError(f"For {kind}, hx should also be {want}-D but got {hx.dim()}-D tensor")
    if not unbatched:
        return hx
    return tuple(s.unsqueeze(1) for s in hx) if is_lstm else hx.unsqueeze(1)


def _stacked(states: list[Tensor]) -> Tensor:
    """torch.stack(states); one layer and direction's state as a view, without stack's copy."""
    return states[0].unsqueeze(0) if len(states) == 1 else torch.stack(states)


class LSTM(_FusedStack, nn.RNNBase):
    """Drop-in torch.nn.LSTM (proj_size included) running fused kernels."""

    def __init__(self, *args, generator: torch.Generator | None = None, **kwargs):
        reg = Regularization.pop_from(kwargs, "LSTM")
        super().__init__("LSTM", *args, **kwargs)
        self._set_regularization(reg, generator)

    # torch.nn.LSTM's own checks and hidden-state permutation (they use only RNNBase state)
    get_expected_cell_size = nn.LSTM.get_expected_cell_size
    check_forward_args = nn.LSTM.check_forward_args
    permute_hidden = nn.LSTM.permute_hidden


class GRU(_FusedStack, nn.RNNBase):
    """Drop-in torch.nn.GRU running fused kernels."""

    def __init__(self, *args, generator: torch.Generator | None = None, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        reg = Regularization.pop_from(kwargs, "GRU")
        super().__init__("GRU", *args, **kwargs)
        self._set_regularization(reg, generator)


class RNN(_FusedStack, nn.RNNBase):
    """Drop-in torch.nn.RNN (tanh or relu) running fused kernels."""

    def __init__(self, *args, generator: torch.Generator | None = None, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        reg = Regularization.pop_from(kwargs, "RNN")
        # nonlinearity is nn.RNN's 4th positional argument, which RNNBase does not take
        if len(args) > 3:
            nonlinearity, args = args[3], args[:3] + args[4:]
        else:
            nonlinearity = kwargs.pop("nonlinearity", "tanh")
        modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
        if nonlinearity not in modes:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(modes[nonlinearity], *args, **kwargs)
        self._set_regularization(reg, generator)
