"""Atomic file writes: write to a temporary name in the target folder, then ``os.replace`` into place."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_text", "default_file_mode", "remove_orphaned_temporaries"]


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` minus the process umask (``mkstemp`` would give ``0o600``).

    Example:
        >>> default_file_mode() & 0o400
        256
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def remove_orphaned_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the ``.<name>.<random>.tmp`` files that :func:`atomic_write` leaves behind when a run is killed.

    Only call this on a folder that no other process is writing to (an export resuming in its own output folder).

    Returns:
        The removed paths.
    """
    removed = []
    for p in Path(folder).rglob(".*.tmp"):
        if p.is_file() and p.name.count(".") >= 3:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], None], mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temporary file next to ``path`` and rename it to ``path`` when it succeeds.

    A reader never sees a partial file; on failure the temporary file is removed and ``path`` is untouched. The file
    gets the usual umask-respecting mode (:func:`default_file_mode`).

    Example:
        >>> import tempfile; d = tempfile.mkdtemp()
        >>> atomic_write(f"{d}/a.txt", lambda f: f.write("hi"), mode="w").read_text()
        'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())  # readable by the group/others as the umask allows (mkstemp: 0600)
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
