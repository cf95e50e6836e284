"""register_fake with the device check the real kernels make.

A fake kernel runs whenever one argument is a meta tensor. With the rest on the CPU it would
return CPU tensors of uninitialised memory where the real kernels refuse mixed devices: each
fake kernel checks first that its tensors share one device.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch


def check_one_device(op: str, named: Iterable[tuple[str, object]]) -> None:
    """Every tensor on one device; batch_sizes on the CPU (PackedSequence keeps it there, also
    for CUDA data), or on meta beside meta data."""
    first = None
    batch_sizes = None
    for name, value in named:
        if not isinstance(value, torch.Tensor):
            continue
        if name == "batch_sizes":
            batch_sizes = value
        elif first is None:
            first = (name, value.device)
        elif value.device != first[1]:
            raise RuntimeError(f"{op}: {name} is on {value.device} but {first[0]} is on "
                               f"{first[1]}; all tensors must be on one device")
    if batch_sizes is not None and batch_sizes.device.type != "cpu" and not (
            batch_sizes.device.type == "meta" and first is not None and first[1].type == "meta"):
        raise RuntimeError(f"{op}: batch_sizes must be a CPU tensor (as PackedSequence keeps it), "
                           f"got one on {batch_sizes.device}")


def register_fake(op: str):
    """torch.library.register_fake(op), the kernel preceded by check_one_device over the op's
    arguments as its schema names them."""
    namespace, name = op.split("::")

    def register(fake):
        names: list[str] = []

        @functools.wraps(fake)
        def checked(*args, **kwargs):
            if not names:
                schema = getattr(getattr(torch.ops, namespace), name).default._schema
                names.extend(a.name for a in schema.arguments)
            check_one_device(op, [*zip(names, args, strict=False), *kwargs.items()])
            return fake(*args, **kwargs)

        return torch.library.register_fake(op)(checked)

    return register
