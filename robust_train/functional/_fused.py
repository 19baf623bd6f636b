"""Fused kernels through ``torch.compile``: one switch for every corruption's hot elementwise path.

Eager PyTorch runs a corruption's elementwise maths (counter hashes, Box-Muller, colour-space round trips, the final
8-bit truncation) as one pass over memory per operator: 20-40 passes for a noise corruption. A function decorated
with :func:`fused` is a plain, pure tensor function (no Python loops over data, no host synchronisation) that
TorchInductor can compile into a single loop: OpenMP + SIMD C++ on the CPU, Triton on CUDA. The eager function is
the reference; the compiled one computes the same expression, so the two agree exactly on integer (hash) maths and to
within float rounding elsewhere (``tests/functional/test_fused.py`` checks every fused kernel against its eager run).

When compiled code runs:

* mode ``"off"``: never (callers use their eager formulations); ``"on"``: always, on every device; ``"auto"``
  (default): callers use the fused formulations as with ``"on"``, and each kernel is compiled **tiered**, as a JIT
  does. A compile costs seconds per kernel and input signature (shapes, dtypes, constants, device; cached on
  disk by Inductor across processes), so a kernel is compiled only once it is likely to pay for itself: on the CPU
  from the :data:`TIER_CPU_CALLS`-th call of that signature (8: it runs in a loop, such as an evaluation suite or
  an epoch) or once its eager runs have taken :data:`TIER_CPU_SECONDS` in total (2 s: an expensive kernel compiles
  early), on an accelerator from the :data:`TIER_DEVICE_CALLS`-th call (there each eager op is a kernel launch).
  One-off calls never wait for a compiler. Set the mode with ``robust_train.set_fusion``, ``with
  robust_train.fusion(...)`` or ``ROBUST_TRAIN_FUSION`` (read at import); ``ROBUST_TRAIN_FUSION_TIER_CALLS`` and
  ``ROBUST_TRAIN_FUSION_TIER_SECONDS`` override the CPU thresholds.
* never while autograd records (an input requires grad and grad mode is on): the differentiable path is the eager
  reference with its documented gradients;
* never inside an outer ``torch.compile`` (the outer graph inlines the eager function instead).

If compiling fails (no C++ compiler, an Inductor bug), the kernel falls back to eager with one ``RuntimeWarning``
per kernel and device type, and is not compiled again in that process.

Because compiled float maths may round differently in the last bit, an output value that lies within one float
ulp of an 8-bit boundary can land one level apart between fusion on and off (measured: a few pixels per million).
Replay (same seed, same output) holds within ``"on"`` and within ``"off"``; under ``"auto"`` a signature switches
once, from eager to compiled, so a replay across that switch can differ in those rare values. Integer maths (counter
hashes, window sums) is identical in every mode.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import Tensor

__all__ = [
    "FUSION_MODES",
    "TIER_CPU_CALLS",
    "TIER_CPU_SECONDS",
    "TIER_DEVICE_CALLS",
    "fused",
    "fused_runs",
    "fusion",
    "fusion_enabled",
    "get_fusion",
    "set_fusion",
]

F = TypeVar("F", bound=Callable[..., Any])

FUSION_MODES: tuple[str, ...] = ("auto", "on", "off")
_ALIASES = {"1": "on", "true": "on", "yes": "on", "0": "off", "false": "off", "no": "off"}

_LOCK = threading.Lock()
_BROKEN: dict[tuple[str, str], str] = {}


def _normalise(mode: str | bool) -> str:
    if isinstance(mode, bool):
        return "on" if mode else "off"
    if not isinstance(mode, str):
        raise TypeError(f"fusion mode: expected one of {list(FUSION_MODES)} or a bool, got {type(mode).__name__}")
    m = _ALIASES.get(mode.strip().lower(), mode.strip().lower())
    if m not in FUSION_MODES:
        raise ValueError(f"fusion mode: expected one of {list(FUSION_MODES)} (or a bool), got {mode!r}")
    return m


_MODE = _normalise(os.environ.get("ROBUST_TRAIN_FUSION", "auto") or "auto")


def set_fusion(mode: str | bool) -> None:
    """Set the process-wide fusion mode: ``"auto"`` (tiered), ``"on"``, ``"off"`` or a bool.

    Example:
        >>> set_fusion("off"); get_fusion()
        'off'
        >>> set_fusion("auto")
    """
    global _MODE
    _MODE = _normalise(mode)


def get_fusion() -> str:
    """The current fusion mode."""
    return _MODE


@contextlib.contextmanager
def fusion(mode: str | bool) -> Iterator[None]:
    """Context manager that sets the fusion mode and restores the previous one on exit.

    Example:
        >>> with fusion("off"):
        ...     get_fusion()
        'off'
    """
    global _MODE
    new = _normalise(mode)
    old = _MODE
    _MODE = new
    try:
        yield
    finally:
        _MODE = old


def fusion_enabled(device: torch.device | str) -> bool:
    """Whether callers pick the formulation written for compiled kernels, for tensors on ``device``.

    Modes ``"on"`` and ``"auto"``: yes, on every device (under ``"auto"`` each :func:`fused` kernel runs its eager
    body until it has paid for its compile); ``"off"``: never (the eager formulations, tuned for eager execution).
    """
    del device  # the same rule on every device
    return _MODE != "off"


#: ``"auto"`` on the CPU: compile a kernel's signature from this call on (it runs in a loop: a suite, an epoch) ...
TIER_CPU_CALLS = int(os.environ.get("ROBUST_TRAIN_FUSION_TIER_CALLS", "8") or 8)
#: ... or as soon as its eager runs have taken this long in total (seconds), whichever comes first.
TIER_CPU_SECONDS = float(os.environ.get("ROBUST_TRAIN_FUSION_TIER_SECONDS", "2.0") or 2.0)
#: ``"auto"`` on accelerators: compile a kernel's signature from this call on.
TIER_DEVICE_CALLS = 2


class _Tier:
    """Per (kernel, signature) eager time and call count of the ``"auto"`` mode, and the decision to compile."""

    def __init__(self) -> None:
        self.seen: dict[tuple[Any, ...], list[float]] = {}

    def hot(self, key: tuple[Any, ...], device_type: str) -> bool:
        with _LOCK:
            rec = self.seen.get(key)
        if rec is None:
            return False
        if device_type == "cpu":
            return rec[1] + 1 >= TIER_CPU_CALLS or rec[0] >= TIER_CPU_SECONDS
        return rec[1] + 1 >= TIER_DEVICE_CALLS

    def record(self, key: tuple[Any, ...], seconds: float) -> None:
        with _LOCK:
            rec = self.seen.setdefault(key, [0.0, 0])
            rec[0] += seconds
            rec[1] += 1


_TIER = _Tier()


def _signature(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """What a compiled variant is specialised on: shapes, dtypes and devices of tensors, other values as they are."""
    sig: list[Any] = [name, torch.get_num_threads()]
    for a in args:
        if isinstance(a, Tensor):
            sig.append((tuple(a.shape), a.dtype, a.device.type))
        elif isinstance(a, (int, float, bool, str, type(None), tuple)):
            sig.append(a)
        else:
            sig.append(type(a).__name__)
    sig.extend(sorted((k, v if isinstance(v, (int, float, bool, str, tuple)) else repr(v)) for k, v in kwargs.items()))
    return tuple(sig)


def _eligible(tensors: tuple[Tensor, ...]) -> bool:
    """A compiled kernel may run: no outer ``torch.compile`` traces and autograd does not record."""
    if not tensors or torch.compiler.is_compiling():
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def fused_runs(*tensors: Tensor) -> bool:
    """Whether :func:`fused` kernels called with these tensor arguments run the compiled formulation.

    True when :func:`fusion_enabled` for the first tensor's device, no outer ``torch.compile`` is tracing and
    autograd does not record (no tensor requires grad, or grad mode is off). Callers use it to choose between a
    fused kernel and a faster-in-eager formulation of the same maths.
    """
    return bool(tensors) and fusion_enabled(tensors[0].device) and _eligible(tensors)


def _first_tensor(args: tuple[Any, ...]) -> Tensor | None:
    for a in args:
        if isinstance(a, Tensor):
            return a
    return None


#: Compiled variants allowed per fused kernel (Dynamo's default is 8; then it silently runs the eager code).
RECOMPILE_LIMIT = 128


class _RaisedRecompileLimit:
    """Raise ``torch._dynamo.config.recompile_limit`` to :data:`RECOMPILE_LIMIT` while fused kernels run.

    Re-entrant and thread-safe (a depth count under a lock); the user's value is restored when the last fused call
    returns, and never lowered. A few hundred nanoseconds per call (``config.patch`` costs 10-80 microseconds).
    """

    def __init__(self) -> None:
        self.depth = 0
        self.saved = 0

    def __enter__(self) -> None:
        cfg = torch._dynamo.config
        with _LOCK:
            if self.depth == 0:
                self.saved = cfg.recompile_limit
                cfg.recompile_limit = max(self.saved, RECOMPILE_LIMIT)
            self.depth += 1

    def __exit__(self, *exc: object) -> None:
        with _LOCK:
            self.depth -= 1
            if self.depth == 0:
                torch._dynamo.config.recompile_limit = self.saved


_RECOMPILE_LIMIT = _RaisedRecompileLimit()


def fused(fn: F | None = None, *, release_gil: bool = False) -> Any:
    """Decorate a pure tensor function as a fused kernel (compiled when :func:`fusion_enabled`, else eager).

    The device is that of the first tensor argument. Keyword arguments must be Python scalars (they are baked
    into the compiled code as constants; each distinct value compiles once).

    Kernels are compiled with static shapes (``dynamic=False``): one variant per input shape and dtype, with every
    size a constant. Dynamo's default (automatic dynamic shapes) would switch a kernel to size-generic code as soon
    as a second shape is seen (another chunk size, image size or corruption sharing the kernel), measurably slower
    on the CPU (benchmarks/README.md, "Design measurements"). The per-kernel
    variant limit is raised to :data:`RECOMPILE_LIMIT` for these calls only (past it Dynamo runs the eager function).

    ``@fused(release_gil=True)``: on the CPU, compiled with Inductor's C++ wrapper (``cpp_wrapper``), which releases the
    GIL while the kernels run, for kernels that pool threads of our own call concurrently (the JPEG codec threads); the
    default Python wrapper holds the GIL for the whole call, which serialises such threads. Other devices use the
    default wrapper (the option is about host threads). Slower to compile (once per
    variant, cached on disk). A kernel may also mutate an argument (``out.copy_(...)``): Inductor writes in place.
    Compiled variants are also specialised on the calling thread's OpenMP thread count (a Dynamo guard): a pool
    thread with one OpenMP thread runs its own single-threaded variant.
    """
    if fn is None:
        return functools.partial(fused, release_gil=release_gil)
    name = f"{fn.__module__}.{fn.__qualname__}"

    @functools.cache
    def compiled(device_type: str) -> Callable[..., Any]:
        options = {"cpp_wrapper": True} if release_gil and device_type == "cpu" else None
        return torch.compile(fn, fullgraph=True, dynamic=False, options=options)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = _first_tensor(args)
        if t is None or _MODE == "off" or not _eligible(tuple(a for a in args if isinstance(a, Tensor))):
            return fn(*args, **kwargs)
        key = (name, t.device.type)
        if key in _BROKEN:
            return fn(*args, **kwargs)
        if _MODE == "auto":  # tiered: eager until the signature has paid for a compile
            sig = _signature(name, args, kwargs)
            if not _TIER.hot(sig, t.device.type):
                start = time.perf_counter()
                out = fn(*args, **kwargs)
                _TIER.record(sig, time.perf_counter() - start)
                return out
        try:
            with _RECOMPILE_LIMIT:
                return compiled(t.device.type)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a compile failure falls back to the eager reference
            out = fn(*args, **kwargs)  # an error of the function itself is raised here, unchanged
            with _LOCK:
                first = key not in _BROKEN
                _BROKEN[key] = f"{type(exc).__name__}: {exc}"
            if first:
                msg = str(exc).splitlines()[0] if str(exc) else ""
                warnings.warn(
                    f"robust_train: compiling fused kernel {name} on {t.device.type} failed ({type(exc).__name__}: "
                    f"{msg}); using the eager version from now on",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return out

    wrapper.eager = fn  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
