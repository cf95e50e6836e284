"""Drop-in replacements for torch.nn recurrent modules."""

from .cells import GRUCell, LSTMCell, RNNCell
from .conv import Conv1d, WaveNet
from .layer_norm import LayerNormGRU, LayerNormLSTM
from .rnn import GRU, LSTM, RNN

__all__ = [
    "GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell", "Conv1d", "WaveNet", "LayerNormLSTM",
    "LayerNormGRU",
]
