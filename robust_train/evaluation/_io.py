"""Atomic file writes: write to a temporary name in the target folder, then ``os.replace`` into place."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_text"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], None], mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temporary file next to ``path`` and rename it to ``path`` when it succeeds.

    A reader never sees a partial file; on failure the temporary file is removed and ``path`` is untouched.

    Example:
        >>> import tempfile; d = tempfile.mkdtemp()
        >>> atomic_write(f"{d}/a.txt", lambda f: f.write("hi"), mode="w").read_text()
        'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` of a string."""
    return atomic_write(path, lambda f: f.write(text), mode="w")
