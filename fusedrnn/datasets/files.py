"""Reading the text files the loaders take, plain or gzip-compressed."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """path as UTF-8 text, decompressed when its name ends in .gz. A damaged gzip or bytes that
    are not UTF-8, met while opening or while reading inside the block, raise a ValueError that
    names the path; a missing file raises FileNotFoundError as open does."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            yield f
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"could not read {path}: file is truncated or not gzip ({e})") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"could not read {path}: not UTF-8 text ({e})") from e
