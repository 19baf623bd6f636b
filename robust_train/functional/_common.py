"""Small numeric helpers shared by the corruption families."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import Tensor

from ._fused import fused

F = TypeVar("F", bound=Callable[..., Any])


def eager_only(fn: F) -> F:
    """Keep ``fn`` out of ``torch.compile`` graphs (it runs eagerly behind a graph break).

    Like ``@torch.compiler.disable``, but the disable wrapper is built on the first call, so importing a module that
    uses it does not import ``torch._dynamo`` (and with it triton): ``import robust_train`` stays light.
    """

    @functools.cache
    def disabled() -> Callable[..., Any]:
        return torch.compiler.disable(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return disabled()(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


__all__ = [
    "eager_only",
    "host_threads",
    "single_omp_thread",
    "snap8",
    "straight_through",
    "to_compute_dtype",
    "truncate_uint8",
]

_HOST_LOCK = threading.RLock()
_HOST_THREADS: list[int] = []


@contextlib.contextmanager
def single_omp_thread() -> Iterator[None]:
    """Run torch ops with one OpenMP thread while host threads of our own (the JPEG codec pool) do the heavy work.

    After a parallel region libgomp's idle worker threads spin-wait for a few milliseconds; on a machine with as many
    codec threads as cores they then compete with the codec (benchmarks/README.md, "Design measurements"). Inside the
    context ``torch.get_num_threads()`` is 1 and :func:`host_threads` is the caller's thread count; on exit it is
    restored. The thread count is process-wide, so the context holds a lock: concurrent users take turns.
    """
    with _HOST_LOCK:
        n = torch.get_num_threads()
        _HOST_THREADS.append(n if not _HOST_THREADS else _HOST_THREADS[-1])
        torch.set_num_threads(1)
        try:
            yield
        finally:
            _HOST_THREADS.pop()
            torch.set_num_threads(n)


def host_threads() -> int:
    """Threads available for host-side work: the caller's torch thread count (also inside :func:`single_omp_thread`)."""
    return _HOST_THREADS[-1] if _HOST_THREADS else torch.get_num_threads()


def straight_through(x: Tensor, y: Tensor) -> Tensor:
    """Value of ``y`` with the gradient of ``x`` (straight-through estimator).

    Example:
        >>> x = torch.tensor([0.3], requires_grad=True)
        >>> straight_through(x, torch.round(x)).sum().backward(); x.grad
        tensor([1.])
    """
    return x + (y - x).detach()


def truncate_uint8(x: Tensor, straight_through_grad: bool = True) -> Tensor:
    """Emulate ``np.uint8(clip(x, 0, 1) * 255) / 255``: clip, scale, **truncate** (floor), rescale.

    The original ImageNet-C code converts to 8 bit by truncation, not rounding (a -0.5 DN bias that a faithful
    port keeps). The gradient is the straight-through identity when ``straight_through_grad``.

    Args:
        x: float tensor, any shape, nominally in [0, 1].
        straight_through_grad: pass gradients through the floor unchanged.

    Returns:
        Tensor of the same shape and dtype with values in {0, 1/255, ..., 1}.

    Example:
        >>> truncate_uint8(torch.tensor([0.0, 0.5, 1.0, 1.2])).mul(255).tolist()
        [0.0, 127.0, 255.0, 255.0]
    """
    # The tiny epsilon protects values that are integers in float64 maths but land 1 ulp below in float32.
    eps = 1e-4 if x.dtype != torch.float64 else 1e-9
    if not (x.requires_grad and torch.is_grad_enabled()):
        # no graph (this runs on every corruption's output): one fused pass when fusion is on
        return _truncate_nograd(x, eps)
    c = x.clamp(0.0, 1.0)
    q = torch.floor(c * 255.0 + eps) / 255.0
    return straight_through(c, q) if straight_through_grad else q


@fused
def _truncate_nograd(x: Tensor, eps: float) -> Tensor:
    """``floor(clip(x, 0, 1) * 255 + eps) / 255`` (one allocation; in-place passes when eager)."""
    return x.clamp(0.0, 1.0).mul_(255.0).add_(eps).floor_().div_(255.0)


def snap8(x: Tensor, scale: float = 1.0) -> Tensor:
    """``scale * x`` in float64 (no gradient), 8-bit values snapped: ``k / 255`` up to rounding -> ``k scale / 255``.

    The one rule every exact-8-bit path uses to read an image as the original's ``img / 255.`` (``scale=1``) or as its
    uint8 levels (``scale=255``, exactly the integer ``k``): entries within 1e-3 / 255 of a level are snapped, other
    values are kept (``scale * x``), so float16, float32 and float64 copies of an 8-bit image give the same float64.

    Example:
        >>> v = torch.tensor([100 / 255, 0.5], dtype=torch.float32)
        >>> snap8(v, 255.0).tolist(), snap8(v)[0].item() == 100 / 255
        ([100.0, 127.5], True)
    """
    x64 = x.detach().to(torch.float64)
    t = x64 * 255.0
    k = torch.round(t)
    levels = k if scale == 255.0 else k * scale / 255.0
    return torch.where((t - k).abs() < 1e-3, levels, t if scale == 255.0 else x64 * scale)


def to_compute_dtype(x: Tensor) -> tuple[Tensor, torch.dtype]:
    """Half-precision inputs are computed in float32; returns the tensor to compute with and the dtype to return."""
    if x.dtype in (torch.float32, torch.float64):
        return x, x.dtype
    return x.float(), x.dtype
