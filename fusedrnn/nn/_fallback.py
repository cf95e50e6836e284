"""Decides whether the fused kernels can run an input, and warns once when they cannot."""

import warnings

import torch

from .._loader import has_kernel

_warned: set[tuple[str, str, str]] = set()
_CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_CPU_DTYPES = (torch.float32, torch.float64)


def fused_supported(op: str, tensor: torch.Tensor) -> bool:
    if tensor.is_cpu:  # cheaper than reading device.type, for a cell's call per step
        return tensor.dtype in _CPU_DTYPES
    device = tensor.device.type
    if device == "cuda":
        return tensor.dtype in _CUDA_DTYPES and has_kernel(op, "CUDA")
    return False


def warn_fallback(module: str, tensor: torch.Tensor) -> None:
    """One warning per (module, device, dtype): the torch.nn path runs instead."""
    key = (module, tensor.device.type, str(tensor.dtype))
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(
        f"fusedrnn.{module}: no fused kernel for {tensor.dtype} on {tensor.device.type}; "
        f"running torch.nn.{module}'s implementation instead",
        stacklevel=3,
    )
