"""LayerNormLSTM and LayerNormGRU: layer-normalised recurrent layers on the fused LayerNorm ops.

They take fusedrnn.LSTM's / GRU's constructor and forward (multi-layer, bidirectional,
batch_first, PackedSequence, hx), without proj_size, plus `eps`. Each layer and direction adds
LayerNorm gains (init 1) and biases (init 0) next to torch.nn's weights (and the regularisers of
fusedrnn/nn/regularizers.py, as on every fused layer):
ln_ih_weight_l{k}{sfx}, ln_ih_bias_l{k}{sfx}, ln_hh_weight_l{k}{sfx}, ln_hh_bias_l{k}{sfx}, and for
the LSTM ln_c_weight_l{k}{sfx}, ln_c_bias_l{k}{sfx} (sfx '' or '_reverse').
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import ln_ops
from .regularizers import Regularization
from .rnn import _FusedStack

_LN_BLOCKS = {"LSTM": ("ih", "hh", "c"), "GRU": ("ih", "hh")}


class _LayerNormStack(_FusedStack):
    """The LayerNorm parameters and the ops that use them, shared by both layers."""

    mode: str
    eps: float

    def _init_layer_norm(self, eps: float, factory: dict) -> None:
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.eps = eps
        gates = {"LSTM": 4, "GRU": 3}[self.mode]
        width = {"ih": gates * self.hidden_size, "hh": gates * self.hidden_size, "c": self.hidden_size}
        for layer in range(self.num_layers):
            for sfx in ("", "_reverse")[: 2 if self.bidirectional else 1]:
                for block in _LN_BLOCKS[self.mode]:
                    n = width[block]
                    setattr(self, f"ln_{block}_weight_l{layer}{sfx}", nn.Parameter(torch.ones(n, **factory)))
                    setattr(self, f"ln_{block}_bias_l{layer}{sfx}", nn.Parameter(torch.zeros(n, **factory)))

    def reset_parameters(self) -> None:
        super().reset_parameters()  # torch.nn's uniform init of the weights ... and of every parameter
        for name, param in self.named_parameters():
            if name.startswith("ln_"):
                with torch.no_grad():
                    param.fill_(1.0 if "_weight_" in name else 0.0)

    def _layer_op_name(self) -> str:
        return {"LSTM": "ln_lstm_layer", "GRU": "ln_gru_layer"}[self.mode]

    def _unfused_forward(self, input, hx, data: Tensor):
        raise TypeError(
            f"fusedrnn.{type(self).__name__}: no fused kernel for {data.dtype} on {data.device.type} "
            "(supported: float32/float64 on CPU; float16/bfloat16/float32/float64 on CUDA)"
        )

    def _packed_ln(self, layer: int, direction: int) -> Tensor:
        sfx = f"_l{layer}" + ("_reverse" if direction else "")
        parts = []
        for block in _LN_BLOCKS[self.mode]:
            parts += [getattr(self, f"ln_{block}_weight{sfx}"), getattr(self, f"ln_{block}_bias{sfx}")]
        return torch.cat(parts)

    def _run_layer(self, x, h0, c0, weights, batch_sizes, reverse, layer, direction, masks):
        w_ih, w_hh, b_ih, b_hh, _ = weights
        ln, m = self._packed_ln(layer, direction).to(w_ih.dtype), masks  # w_ih: autocast's dtype
        if self.mode == "LSTM":
            return ln_ops.ln_lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes, reverse,
                                        self.eps, m.rec_mask, m.zoneout_h, m.zoneout_c)
        return (*ln_ops.ln_gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes, reverse, self.eps,
                                     m.rec_mask, m.zoneout_h), None)

    def to_torch(self):
        raise NotImplementedError(f"torch.nn has no equivalent of fusedrnn.{type(self).__name__}")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", eps={self.eps}"

    @staticmethod
    def _regularizers(kwargs: dict, mode: str) -> Regularization:
        unknown = set(kwargs) - {"zoneout_h", "zoneout_c", "dropconnect", "recurrent_dropout"}
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
        return Regularization.pop_from(kwargs, mode)


class LayerNormLSTM(_LayerNormStack, nn.RNNBase):
    """Layer-normalised LSTM (Ba, Kiros & Hinton 2016) with fusedrnn.LSTM's interface."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 eps: float = 1e-5, device=None, dtype=None, generator: torch.Generator | None = None,
                 **regularizers):
        reg = self._regularizers(regularizers, "LSTM")
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype)
        self._init_layer_norm(eps, {"device": device, "dtype": dtype})
        self._set_regularization(reg, generator)

    get_expected_cell_size = nn.LSTM.get_expected_cell_size
    check_forward_args = nn.LSTM.check_forward_args
    permute_hidden = nn.LSTM.permute_hidden


class LayerNormGRU(_LayerNormStack, nn.RNNBase):
    """Layer-normalised GRU (torch.nn.GRU's formulation, LN on each side's pre-activations)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 eps: float = 1e-5, device=None, dtype=None, generator: torch.Generator | None = None,
                 **regularizers):
        reg = self._regularizers(regularizers, "GRU")
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype)
        self._init_layer_norm(eps, {"device": device, "dtype": dtype})
        self._set_regularization(reg, generator)
