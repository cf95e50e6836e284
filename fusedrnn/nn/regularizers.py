"""Zoneout, DropConnect and variational recurrent dropout for the fused recurrent layers.

Every rate defaults to 0 (off), so the defaults match torch.nn exactly. The masks are drawn here,
from torch's RNG (or `generator`), and handed to the fused ops, which apply them inside the
recurrence (csrc/driver_common.h, Regularizers):
- zoneout_h / zoneout_c (Krueger et al. 2016): h_t = m·h_{t-1} + (1 − m)·h̃_t with m ~ Bernoulli(p)
  fresh per step and element in training, and m = p (the expectation) in evaluation; c likewise.
- dropconnect (Wan et al. 2013, as in AWD-LSTM): dropout on W_hh, scaled by 1/(1 − p), one mask per
  forward call shared by every step. Training only.
- recurrent_dropout (Gal & Ghahramani 2016): a dropout mask on h_{t-1} before the recurrent matmul,
  the same for every step of a sequence. Training only.

Tests pass masks explicitly through forward(..., masks=...), keyed by (layer, direction), with the
keys of LayerMasks, so the fused path can be compared element for element with a reference.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, fields

import torch
from torch import Tensor

NAMES = ("zoneout_h", "zoneout_c", "dropconnect", "recurrent_dropout")


@dataclass(frozen=True)
class Regularization:
    zoneout_h: float = 0.0
    zoneout_c: float = 0.0
    dropconnect: float = 0.0
    recurrent_dropout: float = 0.0

    @classmethod
    def pop_from(cls, kwargs: dict, mode: str) -> Regularization:
        """Takes the regulariser keyword arguments out of a constructor's kwargs and checks them."""
        rates = {name: kwargs.pop(name, 0.0) for name in NAMES}
        for name, p in rates.items():
            # float() would take True or "0.5" as a rate without a word
            if isinstance(p, bool) or not isinstance(p, numbers.Real):
                raise TypeError(f"{name} must be a number, got {type(p).__name__} {p!r}")
            p = rates[name] = float(p)
            upper_ok = p <= 1.0 if name.startswith("zoneout") else p < 1.0
            if not (p >= 0.0 and upper_ok):
                bound = "[0, 1]" if name.startswith("zoneout") else "[0, 1)"
                raise ValueError(f"{name} must be in {bound}, got {p}")
        if rates["zoneout_c"] and mode != "LSTM":
            raise ValueError("zoneout_c applies to an LSTM's cell state; this layer has none")
        if any(rates.values()) and kwargs.get("proj_size", 0):
            raise ValueError("zoneout, dropconnect and recurrent_dropout do not support proj_size")
        return cls(**rates)

    def active(self) -> bool:
        return any(getattr(self, name) for name in NAMES)

    def extra_repr(self) -> str:
        return "".join(f", {name}={getattr(self, name)}" for name in NAMES if getattr(self, name))


@dataclass
class LayerMasks:
    """What one layer and direction applies; None where off."""

    rec_mask: Tensor | None = None     # [B, H], already scaled by 1/(1 − p)
    zoneout_h: Tensor | None = None    # like the layer's output y
    zoneout_c: Tensor | None = None    # like y, H columns
    dropconnect: Tensor | None = None  # like W_hh, already scaled by 1/(1 − p)


def check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def check_mask_keys(masks: dict, layers: int, directions: int) -> None:
    """Explicit masks are keyed (layer, direction); a key the stack does not have would be ignored."""
    valid = {(layer, d) for layer in range(layers) for d in range(directions)}
    unknown = [key for key in masks if key not in valid]
    if unknown:
        raise ValueError(f"masks has keys {unknown} that match no (layer, direction) of this "
                         f"{layers}-layer, {directions}-direction stack; expected keys among "
                         f"{sorted(valid)}")


def check_layer_masks(masks: LayerMasks, key: tuple[int, int], has_cell: bool,
                      y_shape: tuple[int, ...], batch: int, w_hh: Tensor) -> None:
    """Explicit masks for one layer and direction: the shapes, dtype and device the ops apply them
    with. Zoneout masks are laid out like the layer op's output, which is time-major ([T, B, H])
    also for batch_first layers, or packed ([N, H])."""
    hidden = w_hh.shape[1]
    want = {"rec_mask": (batch, hidden), "zoneout_h": (*y_shape[:-1], hidden),
            "zoneout_c": (*y_shape[:-1], hidden), "dropconnect": tuple(w_hh.shape)}
    layout = {"rec_mask": "[B, H]", "zoneout_h": "time-major like the layer's output",
              "zoneout_c": "time-major like the layer's output", "dropconnect": "like W_hh"}
    for field in fields(masks):
        name, mask = field.name, getattr(masks, field.name)
        if mask is None:
            continue
        where = f"masks[{key}].{name}"
        if not isinstance(mask, Tensor):
            raise TypeError(f"{where} must be a Tensor, got {type(mask).__name__}")
        if name == "zoneout_c" and not has_cell:
            raise ValueError(f"{where}: zoneout_c applies to an LSTM's cell state; this layer has none")
        if tuple(mask.shape) != want[name]:
            raise ValueError(f"{where} must have shape {list(want[name])} ({layout[name]}), "
                             f"got {list(mask.shape)}")
        if mask.dtype != w_hh.dtype or mask.device != w_hh.device:
            raise ValueError(f"{where} must be {w_hh.dtype} on {w_hh.device} like the layer's "
                             f"weights, got {mask.dtype} on {mask.device}")
        if mask.requires_grad:
            raise ValueError(f"{where} requires grad; masks are constants (detach it)")


def _bernoulli(shape, p: float, like: Tensor, generator) -> Tensor:
    return torch.bernoulli(torch.full(shape, p, dtype=like.dtype, device=like.device), generator=generator)


def draw_masks(reg: Regularization, training: bool, y_shape: tuple[int, ...], batch: int, hidden: int,
               w_hh: Tensor, generator: torch.Generator | None) -> LayerMasks:
    """Masks for one layer and direction; y_shape is its output's shape ([T, B, H] or [N, H])."""
    masks = LayerMasks()
    for name in ("zoneout_h", "zoneout_c"):
        p = getattr(reg, name)
        if p:
            shape = (*y_shape[:-1], hidden)
            m = _bernoulli(shape, p, w_hh, generator) if training else w_hh.new_full(shape, p)
            setattr(masks, name, m)
    if training and reg.recurrent_dropout:
        keep = 1.0 - reg.recurrent_dropout
        masks.rec_mask = _bernoulli((batch, hidden), keep, w_hh, generator) / keep
    if training and reg.dropconnect:
        keep = 1.0 - reg.dropconnect
        masks.dropconnect = _bernoulli(tuple(w_hh.shape), keep, w_hh, generator) / keep
    return masks
