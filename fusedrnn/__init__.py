"""fusedrnn: fused LSTM, GRU and RNN kernels for PyTorch, as drop-in torch.nn replacements."""

from ._loader import load_library

load_library()

from . import conv_ops, ln_ops, ops  # noqa: E402  (registers fake kernels and autograd for the ops)
from .nn import (  # noqa: E402
    GRU,
    LSTM,
    RNN,
    Conv1d,
    GRUCell,
    LayerNormGRU,
    LayerNormLSTM,
    LSTMCell,
    RNNCell,
    WaveNet,
)

__version__ = "0.1.0"
__all__ = [
    "GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell", "Conv1d", "WaveNet", "LayerNormLSTM",
    "LayerNormGRU", "ops", "conv_ops", "ln_ops",
]
