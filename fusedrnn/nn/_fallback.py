"""Decides whether the fused kernels can run an input (and in which dtype under autocast), and
warns once when they cannot."""

import warnings

import torch

from .._loader import has_kernel

_warned: set[tuple[str, str, str]] = set()
_CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_CPU_DTYPES = (torch.float32, torch.float64)
_AUTOCAST_FROM = (torch.float32, torch.float16, torch.bfloat16)


def fused_supported(op: str, tensor: torch.Tensor) -> bool:
    if tensor.is_cpu:  # cheaper than reading device.type, for a cell's call per step
        return tensor.dtype in _CPU_DTYPES
    device = tensor.device.type
    if device == "cuda":
        return tensor.dtype in _CUDA_DTYPES and has_kernel(op, "CUDA")
    return False


def autocast_dtype(tensor: torch.Tensor) -> torch.dtype | None:
    """The dtype a fused module runs `tensor` in under torch.autocast on its device; None outside
    autocast or where autocast leaves the dtype alone (float64, as autocast does).

    CUDA: autocast's dtype, which the kernels take with an fp32 workspace, as torch.nn's layers
    run there. CPU: float32, where torch.nn's would run bfloat16: the CPU kernels have no
    bfloat16 path (their products follow torch.set_float32_matmul_precision instead), so a
    bfloat16 input or state, such as an autocast Linear's output, is taken up to float32 rather
    than refused or sent to torch.nn's slower loop.
    """
    if tensor.dtype not in _AUTOCAST_FROM:
        return None
    if tensor.is_cpu:
        return torch.float32 if torch.is_autocast_enabled("cpu") else None
    if tensor.device.type == "cuda" and torch.is_autocast_enabled("cuda"):
        return torch.get_autocast_dtype("cuda")
    return None


def cast_all(tensors, dtype: torch.dtype | None):
    """Each tensor in `dtype` (anything else kept as it is); the same sequence when dtype is None."""
    if dtype is None:
        return tensors
    return [t.to(dtype) if isinstance(t, torch.Tensor) and t.dtype != dtype else t for t in tensors]


def cast_state(hx, dtype: torch.dtype | None):
    """A recurrent state (a tensor, None, or a tuple or list of them) with its tensors in `dtype`;
    as given when dtype is None."""
    if isinstance(hx, (tuple, list)):
        return type(hx)(cast_all(hx, dtype))
    return cast_all([hx], dtype)[0]


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


def refuse_torchscript(module) -> None:
    """torch.jit.script calls a module's __prepare_scriptable__ first: the fused modules say why
    they cannot be scripted instead of failing deep inside the compiler."""
    raise RuntimeError(
        f"fusedrnn.{type(module).__name__} does not support torch.jit.script (its forward is Python "
        "that TorchScript cannot compile); torch.compile and torch.export run its fused ops, and "
        "TorchScript is deprecated in torch"
    )
