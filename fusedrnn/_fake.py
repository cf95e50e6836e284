"""register_fake with the device check the real kernels make.

A fake kernel runs whenever one argument is a meta tensor. With the rest on the CPU it would
return CPU tensors of uninitialised memory where the real kernels refuse mixed devices: each
fake kernel checks first that its tensors share one device.
"""

from __future__ import annotations

import functools
import inspect

import torch

# Arguments that legitimately live elsewhere: PackedSequence keeps batch_sizes on the CPU.
_ANY_DEVICE = frozenset({"batch_sizes"})


def check_one_device(op: str, bound: inspect.BoundArguments) -> None:
    first = None
    for name, value in bound.arguments.items():
        if not isinstance(value, torch.Tensor) or name in _ANY_DEVICE:
            continue
        if first is None:
            first = (name, value.device)
        elif value.device != first[1]:
            raise RuntimeError(f"{op}: {name} is on {value.device} but {first[0]} is on "
                               f"{first[1]}; all tensors must be on one device")


def register_fake(op: str):
    """torch.library.register_fake(op), the kernel preceded by check_one_device."""

    def register(fake):
        signature = inspect.signature(fake)

        @functools.wraps(fake)
        def checked(*args, **kwargs):
            check_one_device(op, signature.bind(*args, **kwargs))
            return fake(*args, **kwargs)

        return torch.library.register_fake(op)(checked)

    return register
