"""Progress of long evaluations and exports: a rich bar on an interactive terminal, log lines everywhere.

The bar is drawn only when stderr is a terminal (never in a file log, a pipe or a batch job) and when no other rich
live display is active (Lightning's progress bar): it never breaks a run. Independently, every finished corruption
or perturbation gets one ``INFO`` line on the ``robust_train.evaluation`` logger, which Hydra's job logging writes to
the run's log file, so a file log shows the progress of a long evaluation too.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

__all__ = ["ProgressReporter", "format_seconds", "interactive"]

log = logging.getLogger("robust_train.evaluation")


def interactive() -> bool:
    """Whether to draw progress bars: stderr is a terminal and ``ROBUST_TRAIN_PROGRESS`` is not ``0``."""
    if os.environ.get("ROBUST_TRAIN_PROGRESS", "").strip() in ("0", "false", "off", "no"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def format_seconds(seconds: float) -> str:
    """``"4.2 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``.

    Example:
        >>> format_seconds(4.21), format_seconds(185), format_seconds(3720)
        ('4.2 s', '3 min 05 s', '1 h 02 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressReporter:
    """A progress bar (when :func:`interactive`) plus one log line per finished item.

    Args:
        total: units of work (e.g. images x cells).
        description: label of the bar and prefix of the log lines (the suite name).
        bar: allow a bar (``False``: log lines only).
        log_items: emit the per-item log lines (``False`` on non-zero ranks).
    """

    def __init__(self, total: int, description: str, bar: bool = True, log_items: bool = True) -> None:
        self.description = description
        self.log_items = log_items
        self.start = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None
        if bar and total > 0 and interactive():
            try:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

                self._bar = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    transient=True,
                )
                self._bar.start()
                self._task = self._bar.add_task(description, total=total)
            except Exception:  # noqa: BLE001 - another live display (Lightning's bar) or no console: log only
                self._bar = None

    def advance(self, n: int, description: str | None = None) -> None:
        """Add ``n`` done units (and optionally relabel the bar)."""
        if self._bar is not None:
            self._bar.update(self._task, advance=n, description=description)

    def item_done(self, message: str) -> None:
        """Log one finished item: ``"<description>: <message> (elapsed ...)"``."""
        if self.log_items:
            log.info(f"{self.description}: {message} (elapsed {format_seconds(time.perf_counter() - self.start)})")

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
