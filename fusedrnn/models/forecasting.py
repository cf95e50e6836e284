"""Multi-step forecasters for daily series: every output step predicts the next H days.

Three families, each buildable on the fused layers or on torch.nn (backend "fused" | "torch",
same parameter names and shapes, so checkpoints load either way):

- Seq2SeqForecaster: a recurrent stack (LSTM, GRU or LayerNormLSTM) and a linear head that
  predicts horizons 1..H at every time step (trained on every step, used at the last one).
- the same with a strided Conv1D front (conv_channels > 0; kernel 4, stride 2, ReLU) that halves
  the sequence before the recurrent layers.
- WaveNetForecaster: causal dilated Conv1D layers (fusedrnn.WaveNet) and the same head.

Every model maps [B, T, C] inputs to [B, T', H] forecasts; step_index(T) tells which input step
(the forecast origin) each of the T' outputs belongs to, so targets can be aligned with them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .backend import conv1d_layer, recurrent_layer

MODELS = ("seq2seq", "conv", "wavenet")
CELLS = ("lstm", "gru", "lnlstm")


def _recurrent(cell: str, input_size: int, hidden: int, layers: int, dropout: float,
               backend: str) -> nn.Module:
    dropout = dropout if layers > 1 else 0.0
    if cell == "lnlstm":
        import fusedrnn

        if not hasattr(fusedrnn, "LayerNormLSTM"):
            raise ValueError("LayerNormLSTM is not available in this build")
        if backend != "fused":
            raise ValueError("--cell lnlstm has no torch.nn counterpart: use --backend fused")
        return fusedrnn.LayerNormLSTM(input_size, hidden, num_layers=layers, batch_first=True,
                                      dropout=dropout)
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    return recurrent_layer(cell, input_size, hidden, num_layers=layers, batch_first=True,
                           dropout=dropout, backend=backend)


class Seq2SeqForecaster(nn.Module):
    """[optional Conv1D front] -> recurrent stack -> Linear(hidden, horizon) at every step."""

    def __init__(self, n_features: int, horizon: int = 7, hidden: int = 64, layers: int = 1,
                 cell: str = "lstm", dropout: float = 0.0, conv_channels: int = 0,
                 conv_kernel: int = 4, conv_stride: int = 2, backend: str = "fused"):
        super().__init__()
        self.horizon = horizon
        self.conv = None
        width = n_features
        if conv_channels:
            self.conv = conv1d_layer(n_features, conv_channels, conv_kernel, stride=conv_stride,
                                     padding="valid", activation="relu", backend=backend)
            width = conv_channels
        self.rnn = _recurrent(cell, width, hidden, layers, dropout, backend)
        self.head = nn.Linear(hidden, horizon)

    def _crop(self, steps: int) -> int:
        """Leading steps dropped so that the conv's last output ends on the last input step."""
        if self.conv is None:
            return 0
        k, s = self.conv.kernel_size, self.conv.stride
        k, s = (k[0], s[0]) if isinstance(k, tuple) else (k, s)  # nn.Conv1d keeps tuples
        if steps < k:
            raise ValueError(f"the Conv1D front needs at least {k} steps, got {steps}")
        return (steps - k) % s

    def step_index(self, steps: int) -> Tensor:
        """The input step (forecast origin) of each output step, for `steps` input steps."""
        if self.conv is None:
            return torch.arange(steps)
        k, s = self.conv.kernel_size, self.conv.stride
        k, s = (k[0], s[0]) if isinstance(k, tuple) else (k, s)
        crop = self._crop(steps)
        return torch.arange(crop + k - 1, steps, s)

    def forward(self, x: Tensor) -> Tensor:
        if self.conv is not None:
            x = self.conv(x[:, self._crop(x.shape[1]):])
        out, _ = self.rnn(x)
        return self.head(out)


class WaveNetForecaster(nn.Module):
    """Causal dilated Conv1D stack (residual and skip connections) -> Linear(channels, horizon)."""

    def __init__(self, n_features: int, horizon: int = 7, channels: int = 32, kernel_size: int = 2,
                 dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32), repeats: int = 1,
                 backend: str = "fused"):
        super().__init__()
        import fusedrnn

        self.horizon = horizon
        self.wavenet = fusedrnn.WaveNet(n_features, channels, kernel_size, tuple(dilations), repeats,
                                        activation="relu")
        if backend == "torch":  # the same stack on torch.nn convolutions, same parameter names
            self.wavenet.layers = nn.ModuleList(
                conv1d_layer(c.in_channels, c.out_channels, c.kernel_size, padding="causal",
                             dilation=c.dilation, activation=c.activation, backend="torch")
                for c in self.wavenet.layers
            )
        elif backend != "fused":
            raise ValueError(f"backend must be 'fused' or 'torch', got {backend!r}")
        self.head = nn.Linear(channels, horizon)

    @property
    def receptive_field(self) -> int:
        """How many input steps each output sees (the window should be at least this long)."""
        return 1 + sum(_dilation(c) * (_kernel(c) - 1) for c in self.wavenet.layers)

    def step_index(self, steps: int) -> Tensor:
        return torch.arange(steps)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.wavenet(x))


def _kernel(conv: nn.Module) -> int:
    k = conv.kernel_size
    return k[0] if isinstance(k, tuple) else k


def _dilation(conv: nn.Module) -> int:
    d = conv.dilation
    return d[0] if isinstance(d, tuple) else d


def build_forecaster(config: dict) -> nn.Module:
    """A forecaster from a config dict: model, n_features, horizon, backend and the model's sizes
    (seq2seq/conv: cell, hidden, layers, dropout, conv_channels; wavenet: channels, dilations,
    repeats). The tasks store this dict in their checkpoints."""
    model = config.get("model", "seq2seq")
    common = {"n_features": config["n_features"], "horizon": config.get("horizon", 7),
              "backend": config.get("backend", "fused")}
    if model in ("seq2seq", "conv"):
        return Seq2SeqForecaster(
            **common, hidden=config.get("hidden", 64), layers=config.get("layers", 1),
            cell=config.get("cell", "lstm"), dropout=config.get("dropout", 0.0),
            conv_channels=config.get("conv_channels", 32) if model == "conv" else 0,
        )
    if model == "wavenet":
        return WaveNetForecaster(**common, channels=config.get("channels", 32),
                                 dilations=tuple(config.get("dilations", (1, 2, 4, 8, 16, 32))),
                                 repeats=config.get("repeats", 1))
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


def masked_sequence_loss(model: nn.Module, x: Tensor, y: Tensor, mask: Tensor,
                         kind: str = "l1") -> Tensor:
    """Mean error over every output step and horizon whose target is in the split.

    x [B, T, C]; y, mask [B, T, H] at every input step; outputs are aligned with step_index.
    """
    pred = model(x)
    index = model.step_index(x.shape[1]).to(x.device)
    y, mask = y[:, index], mask[:, index]
    if kind == "l1":
        err = (pred - y).abs()
    elif kind == "huber":
        err = nn.functional.huber_loss(pred, y, reduction="none", delta=0.1)
    elif kind == "mse":
        err = (pred - y).square()
    else:
        raise ValueError(f"loss must be 'l1', 'huber' or 'mse', got {kind!r}")
    weight = mask.to(err.dtype)
    return (err * weight).sum() / weight.sum().clamp(min=1.0)


def dip_augment(x: Tensor, prob: float, mean: Tensor, std: Tensor, channels: int) -> Tensor:
    """Training-time augmentation for count series with one-off disruptions (storms, outages).

    With probability prob per step, the first `channels` input features (standardised counts,
    un-standardised with mean and std) are scaled down by a factor drawn from U(0.2, 1). Targets
    are left alone, so the model learns not to carry an isolated dip in its inputs forward.
    Draws from torch's global generator.
    """
    if prob <= 0:
        return x
    B, T, _ = x.shape
    hit = torch.rand(B, T, 1, device=x.device) < prob
    factor = torch.where(hit, torch.rand(B, T, 1, device=x.device) * 0.8 + 0.2, 1.0)
    counts = x[..., :channels] * std + mean
    scaled = (counts * factor - mean) / std
    return torch.cat([scaled.to(x.dtype), x[..., channels:]], dim=-1)
