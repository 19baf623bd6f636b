"""A multi-GPU-friendly logger: messages are emitted on rank zero only, unless asked otherwise."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.utilities import rank_zero_only

__all__ = ["RankedLogger"]


class RankedLogger(logging.LoggerAdapter):
    """``logging.LoggerAdapter`` that prefixes the rank and logs on rank zero only by default.

    Args:
        name: logger name.
        rank_zero_only: log on rank zero only (``log(..., rank=k)`` targets one rank instead).
        extra: extra context for the adapter.
    """

    def __init__(self, name: str = __name__, rank_zero_only: bool = True, extra: Mapping[str, Any] | None = None):
        super().__init__(logging.getLogger(name), extra=extra or {})
        self.rank_zero_only = rank_zero_only

    def log(self, level: int, msg: object, *args: Any, rank: int | None = None, **kwargs: Any) -> None:
        """Log ``msg`` at ``level`` on rank zero (or on ``rank`` when given)."""
        if not self.isEnabledFor(level):
            return
        current = getattr(rank_zero_only, "rank", 0) or 0
        msg, kwargs = self.process(msg, kwargs)
        if self.rank_zero_only and current != 0:
            return
        if rank is not None and current != rank:
            return
        prefix = f"[rank: {current}] " if current else ""
        self.logger.log(level, f"{prefix}{msg}", *args, **kwargs)
