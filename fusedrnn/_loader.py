"""Loads the compiled kernels, with errors that say what is wrong and how to fix it."""

import json
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).parent
REBUILD = "Rebuild it with: pip install --no-build-isolation -e .  (from the fusedrnn checkout)"


def build_info() -> dict:
    path = PACKAGE_DIR / "_build_info.json"
    return json.loads(path.read_text()) if path.exists() else {}


def load_library() -> Path:
    libraries = sorted(PACKAGE_DIR.glob("_C*.so")) + sorted(PACKAGE_DIR.glob("_C*.pyd"))
    if not libraries:
        raise ImportError(
            f"fusedrnn's compiled kernels (fusedrnn/_C*.so) are missing from {PACKAGE_DIR}: "
            f"the package was never built. {REBUILD}"
        )
    built_for = build_info().get("torch_version")
    if built_for is not None and built_for != torch.__version__:
        raise ImportError(
            f"fusedrnn's kernels were built against torch {built_for}, but torch "
            f"{torch.__version__} is installed; a C++ extension only loads into the torch it was "
            f"built with. {REBUILD}"
        )
    try:
        torch.ops.load_library(str(libraries[0]))
    except OSError as err:
        raise ImportError(
            f"fusedrnn's kernels at {libraries[0]} failed to load ({err}). This usually means "
            f"they were built against another torch. {REBUILD}"
        ) from err
    return libraries[0]


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether `fusedrnn::<op>` has a kernel for a dispatch key such as "CPU" or "CUDA"."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"fusedrnn::{op}", dispatch_key)
