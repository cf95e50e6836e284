"""Atomic checkpoint files: a crash while writing never leaves a truncated checkpoint behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import torch


def _fsync_dir(directory: Path) -> None:
    try:  # make the rename itself durable; not every platform lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def replace_atomically(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = True) -> None:
    """write(file) to path atomically.

    The content goes to a temporary file beside path (named .NAME.*.tmp), flushed and fsynced,
    then renamed over path with os.replace: readers see either the old file or the complete new
    one. On any error the temporary file is removed and the old file is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make the file private
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """path's new text, written as replace_atomically writes."""
    replace_atomically(path, lambda f: f.write(text), binary=False)


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """torch.save(payload) to path atomically (replace_atomically)."""
    replace_atomically(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by save_checkpoint.

    Checkpoints hold more than tensors (generator states, history), so this unpickles them in
    full (weights_only=False): load only checkpoints you or your own runs wrote.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=False)
