"""fusedrnn: fused LSTM, GRU and RNN kernels for PyTorch, as drop-in torch.nn replacements."""

from ._loader import load_library

load_library()

from . import conv_ops, ops  # noqa: E402  (registers fake kernels and autograd for the ops)
from .nn import GRU, LSTM, RNN, Conv1d, GRUCell, LSTMCell, RNNCell, WaveNet  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell", "Conv1d", "WaveNet", "ops", "conv_ops",
]
