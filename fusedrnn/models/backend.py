"""Choose between the fused layers and torch.nn's, so every model can run on either.

`--backend torch` builds the same model on torch.nn layers: the same run then shows both the speed
difference and that accuracy does not depend on the backend.
"""

from __future__ import annotations

from torch import nn

BACKENDS = ("fused", "torch")


def _check(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def recurrent_layer(kind: str, *args, backend: str = "fused", **kwargs) -> nn.Module:
    """An LSTM, GRU or RNN layer (kind 'lstm' | 'gru' | 'rnn') from the chosen backend."""
    _check(backend)
    names = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
    if kind.lower() not in names:
        raise ValueError(f"kind must be one of {tuple(names)}, got {kind!r}")
    name = names[kind.lower()]
    if backend == "torch":
        return getattr(nn, name)(*args, **kwargs)
    import fusedrnn

    return getattr(fusedrnn, name)(*args, **kwargs)


def recurrent_cell(kind: str, *args, backend: str = "fused", **kwargs) -> nn.Module:
    """An LSTMCell, GRUCell or RNNCell (kind 'lstm' | 'gru' | 'rnn') from the chosen backend."""
    _check(backend)
    names = {"lstm": "LSTMCell", "gru": "GRUCell", "rnn": "RNNCell"}
    if kind.lower() not in names:
        raise ValueError(f"kind must be one of {tuple(names)}, got {kind!r}")
    name = names[kind.lower()]
    if backend == "torch":
        return getattr(nn, name)(*args, **kwargs)
    import fusedrnn

    return getattr(fusedrnn, name)(*args, **kwargs)
