"""Execution policy of the functional ops, in one place: CPU cache blocking of large generated fields.

The maths of a functional op is the same on every device; how its work is cut up on the CPU is policy. Random fields
(counter hashes, Poisson draws) are produced in cache-sized blocks on the CPU (:func:`blocks`); on accelerators, and
when blocking is switched off (:func:`cache_blocking`), in one piece. Blocking changes how many ATen ops a call
issues, never its values (each element's value depends only on its sample's seed and its index).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

__all__ = ["CPU_BLOCK", "blocks", "cache_blocking", "cache_blocking_enabled"]

#: Elements per block when a field is generated on the CPU: the ~30 passes of the hash then run in cache instead
#: of streaming whole batches through memory (a 64 x 3 x 224 x 224 field is 38 MB per temporary).
CPU_BLOCK = 1 << 18

_STATE = threading.local()


def cache_blocking_enabled() -> bool:
    """Whether CPU cache blocking is on in this thread (default: on)."""
    return getattr(_STATE, "enabled", True)


@contextlib.contextmanager
def cache_blocking(enabled: bool) -> Iterator[None]:
    """Switch CPU cache blocking on or off in this thread (values are identical either way).

    Example:
        >>> with cache_blocking(False):
        ...     blocks(64, 1 << 20, torch.device("cpu"))
        [(0, 64, 0, 1048576)]
    """
    old = cache_blocking_enabled()
    _STATE.enabled = bool(enabled)
    try:
        yield
    finally:
        _STATE.enabled = old


def blocks(
    batch: int, n: int, device: torch.device, align: int = 1, block: int | None = None
) -> list[tuple[int, int, int, int]]:
    """Cache blocks ``(b0, b1, c0, c1)`` covering a (batch, n) field: samples ``b0:b1``, elements ``c0:c1``.

    One block on accelerators and with blocking off. On the CPU about ``block`` (default :data:`CPU_BLOCK`) elements
    per block: whole samples grouped when they are small, otherwise each sample split into near-equal element ranges
    (multiples of ``align``).
    """
    block = CPU_BLOCK if block is None else max(1, int(block))
    if device.type != "cpu" or batch * n <= block or not cache_blocking_enabled():
        return [(0, batch, 0, n)]
    if n >= block:
        parts = -(-n // block)
        step = -(-n // parts)
        step = -(-step // align) * align
        return [(b, b + 1, c, min(n, c + step)) for b in range(batch) for c in range(0, n, step)]
    g = max(1, block // n)
    return [(b, min(batch, b + g), 0, n) for b in range(0, batch, g)]
