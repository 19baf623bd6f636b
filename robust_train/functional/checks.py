"""Input validation shared by every functional op (compare kornia's ``KORNIA_CHECK_SHAPE``).

Errors say what was expected and what was received.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from ..errors import ArgumentError, ArgumentTypeError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "POSITIVE",
    "check_batch_param",
    "check_image",
    "check_int",
    "check_per_sample",
    "check_range",
    "check_seed",
    "check_shape",
    "check_value_range",
    "check_values_async",
    "check_values_now",
    "host_flag",
    "per_sample",
]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_shape(x: Tensor, spec: str, name: str = "x") -> None:
    """Check that ``x`` has the rank described by ``spec`` and the fixed sizes it names.

    Args:
        x: tensor to check.
        spec: space-separated dimension names; integers are fixed sizes (``"B 3 H W"``).
        name: argument name used in the error message.

    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: rank or a fixed size does not match.

    Example:
        >>> check_shape(torch.zeros(2, 3, 4, 4), "B 3 H W")
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape ({spec}), got {type(x).__name__}")
    dims = spec.split()
    if x.dim() != len(dims):
        raise ValueError(f"{name}: expected shape ({spec}) with {len(dims)} dims, got {tuple(x.shape)}")
    for i, d in enumerate(dims):
        if d.isdigit() and x.shape[i] != int(d):
            raise ValueError(f"{name}: expected size {d} at dim {i} of ({spec}), got shape {tuple(x.shape)}")


def check_image(x: Tensor, name: str = "x", channels: int | None = 3, check_values: bool = True) -> None:
    """Validate a batch of images: float ``(B, C, H, W)`` with values in ``[0, 1]`` and no NaN.

    Args:
        x: images.
        name: argument name used in error messages.
        channels: required channel count, or ``None`` for any.
        check_values: also check range and NaN (one reduction over the batch; skipped when tracing).

    Raises:
        TypeError: not a tensor, or an integer/bool dtype.
        ValueError: wrong rank, channel count, empty batch, values outside ``[0, 1]`` or NaN.
    """
    check_shape(x, "B C H W" if channels is None else f"B {channels} H W", name)
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{name}: expected a floating-point image in [0, 1], got dtype {x.dtype}; "
            "convert uint8 images with x.float() / 255"
        )
    if x.shape[0] == 0 or x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name}: expected a non-empty batch of images, got shape {tuple(x.shape)}")
    if check_values and not torch.compiler.is_compiling():
        check_values_async(x, name) if x.device.type != "cpu" else check_values_now(x, name)


def check_values_now(x: Tensor, name: str = "x") -> None:
    """Host check of an image's values (one ``aminmax`` pass, read back at once): for CPU tensors.

    Raises:
        ValueError: NaN, or values outside ``[0, 1]``.
    """
    with torch.no_grad():
        lo, hi = torch.aminmax(x.detach())
    check_value_range(float(lo), float(hi), name)


def check_values_async(x: Tensor, name: str = "x") -> None:
    """Device check of an image's values that never stalls the stream: for tensors on an accelerator.

    One fused reduction (``all(0 <= x <= 1)``, false for NaN) feeds ``torch._assert_async``: the host does not wait
    for it. A violation is reported by the device at the next synchronisation (on CUDA a device-side assertion,
    which names this message in the error log); reading the flag back instead would cost one host sync per call.
    Use :func:`check_values_now` where an immediate ``ValueError`` matters more than the stall.
    """
    with torch.no_grad():
        xd = x.detach()
        ok = ((xd >= 0.0) & (xd <= 1.0)).all()
    torch._assert_async(ok, f"{name}: expected values in [0, 1] and no NaN")


def check_value_range(lo: float, hi: float, name: str = "x") -> None:
    """The value check of :func:`check_image` from an image's minimum and maximum (NaN when it contains NaN).

    For ops that get ``aminmax`` from a pass over the image they make anyway (the JPEG codec's uint8 conversion).

    Raises:
        ValueError: ``lo`` or ``hi`` is NaN, or the range is not inside ``[0, 1]``.

    Example:
        >>> check_value_range(0.0, 1.0)
    """
    if lo != lo or hi != hi:
        raise ValueError(f"{name}: contains NaN")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name}: expected values in [0, 1], got range [{lo:.4g}, {hi:.4g}]")


def check_range(value: float, lo: float, hi: float, name: str) -> None:
    """Raise ``ValueError`` unless ``lo <= value <= hi``.

    Example:
        >>> check_range(0.5, 0.0, 1.0, "p")
    """
    if not (lo <= value <= hi):
        raise ValueError(f"{name}: expected a value in [{lo}, {hi}], got {value}")


def check_batch_param(t: Tensor, batch: int, name: str) -> None:
    """Check that a per-sample parameter has leading dimension ``batch``."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: expected a tensor with leading dim {batch}, got {type(t).__name__}")
    if t.dim() == 0 or t.shape[0] != batch:
        raise ValueError(f"{name}: expected leading dim {batch} (one value per sample), got shape {tuple(t.shape)}")


_FINITE = float(torch.finfo(torch.float64).max)
#: Smallest positive float64: ``per_sample(..., lo=POSITIVE)`` accepts values > 0.
POSITIVE = float(torch.finfo(torch.float64).tiny)


def per_sample(
    v: Tensor | float,
    batch: int,
    name: str,
    *,
    lo: float = -_FINITE,
    hi: float = _FINITE,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """A scalar or ``(B,)`` per-sample argument as a ``(B,)`` tensor, value-checked without a device sync.

    The one helper every functional op uses for its per-sample arguments. Values on the host (Python numbers, CPU
    tensors) are checked at once by :func:`check_per_sample` (the same rules and messages as the module-level
    arguments); values already on an accelerator are checked with :func:`torch._assert_async` (the host never waits
    for them). NaN always fails the range check.

    Args:
        v: a number, a 0-dim tensor or a ``(B,)`` tensor (real, not bool).
        batch: B.
        name: the argument's name, for error messages.
        lo: smallest allowed value (default: any finite value).
        hi: largest allowed value.
        dtype: dtype of the result.
        device: device of the result (default: the argument's own; numbers go to the CPU).

    Returns:
        ``(B,)`` tensor of ``dtype`` on ``device`` (an expanded view for a scalar).

    Raises:
        ArgumentTypeError: not a real number or tensor.
        ArgumentError: wrong shape, or (host values) a value outside ``[lo, hi]``, NaN or infinite.

    Example:
        >>> per_sample(0.5, 3, "sigma", lo=0.0).tolist()
        [0.5, 0.5, 0.5]
    """
    if isinstance(v, Tensor) and v.device.type != "cpu":  # device values: shape checks here, values asynchronously
        t = v.detach()
        if t.is_complex() or t.dtype == torch.bool:
            raise ArgumentTypeError(f"{name}: expected a real-valued tensor, got dtype {t.dtype}")
        if t.dim() > 1:
            raise ArgumentError(f"{name}: expected a scalar or a (B,) tensor, got shape {tuple(t.shape)}")
        if not torch.compiler.is_compiling():
            torch._assert_async(((t >= lo) & (t <= hi)).all(), f"{name}: expected {_range_text(lo, hi)}")
    else:  # host values: checked at once
        t = check_per_sample(v, name, batch=batch, lo=lo, hi=hi)
    t = t.reshape(-1)
    if t.numel() == 1 and batch != 1:
        t = t.expand(batch)
    check_batch_param(t, batch, name)
    return t.to(device=t.device if device is None else device, dtype=dtype)


def _range_text(lo: float | None, hi: float | None) -> str:
    """``"values in [lo, hi]"`` for messages; ``POSITIVE`` reads ``> 0`` and the float64 extremes as unbounded."""
    lo = None if lo is None or lo <= -_FINITE else lo
    hi = None if hi is None or hi >= _FINITE else hi
    low = None if lo is None else ("> 0" if lo == POSITIVE else f">= {lo:g}")
    if low is not None and hi is not None:
        return f"values in (0, {hi:g}]" if lo == POSITIVE else f"values in [{lo:g}, {hi:g}]"
    if low is not None:
        return f"values {low}"
    return f"values <= {hi:g}" if hi is not None else "finite values"


def host_flag(flag: Tensor | bool, what: str) -> bool:
    """Read a boolean device flag on the host: the one audited place where a functional op synchronises.

    Functional ops are pure device maths; the few that need a data-dependent decision (Canny hysteresis convergence)
    read it here, at a bounded rate documented by the caller. ``what`` names the read (tests count reads per op).
    """
    return bool(flag)


def check_int(value: object, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """Validate an integer argument (a Python int, an integral float or a 0-d integer tensor) and return it.

    Raises:
        ArgumentTypeError: not a number (or a bool / complex number).
        ArgumentError: NaN, infinite, fractional or outside ``[lo, hi]``.

    Example:
        >>> check_int(85.0, "jpeg_quality", 1, 100)
        85
    """
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.is_complex() or value.dtype == torch.bool:
            raise ArgumentTypeError(
                f"{name}: expected an int, got a {value.dtype} tensor of shape {tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if isinstance(value, float) or not isinstance(value, numbers.Integral):
        v = float(value)
        if not math.isfinite(v) or v != int(v):
            raise ArgumentError(f"{name}: expected an int, got {value!r}")
        value = int(v)
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ArgumentError(f"{name}: expected an int in [{lo}, {hi}], got {value}")
    return value


def check_seed(seed: object, name: str = "seed") -> int:
    """Validate a seed: an int that fits in int64 (``-2**63 <= seed < 2**63``).

    Example:
        >>> check_seed(2**62)
        4611686018427387904
    """
    return check_int(seed, name, INT64_MIN, INT64_MAX)


def check_per_sample(
    value: object,
    name: str,
    *,
    batch: int | None = None,
    lo: float | None = None,
    hi: float | None = None,
    integer: bool = False,
) -> Tensor:
    """Validate a per-sample argument (severity, seed, quality...): a real number, or a scalar / (B,) tensor.

    One helper for every per-sample argument, so errors name the *user's* argument (``severity``, not an internal
    table value) and say what was expected and what came.

    Args:
        value: a Python number or a real tensor of shape () or (B,).
        name: the argument's name, used in every message.
        batch: required number of values for a (B,) tensor (``None``: any).
        lo: smallest allowed value (inclusive), or ``None``.
        hi: largest allowed value (inclusive), or ``None``.
        integer: require integral values that fit in int64 (seeds); the result is then int64, else float64.

    Returns:
        A CPU tensor of shape () or (B,), float64 (int64 when ``integer``).

    Raises:
        ArgumentTypeError: not a real number or tensor (bool, complex, str...), or a float tensor when ``integer``.
        ArgumentError: more than one dimension, wrong length, NaN / infinite, fractional (``integer``) or out of range.

    Example:
        >>> check_per_sample(torch.tensor([1.0, 5.0]), "severity", batch=2, lo=1, hi=5).tolist()
        [1.0, 5.0]
    """
    if isinstance(value, Tensor):
        t = value.detach()
        if t.is_complex() or t.dtype == torch.bool:
            raise ArgumentTypeError(f"{name}: expected a real-valued tensor, got dtype {t.dtype}")
        if integer and t.is_floating_point():
            raise ArgumentTypeError(f"{name}: expected an integer tensor (int64), got dtype {t.dtype}")
        if t.dim() > 1:
            raise ArgumentError(f"{name}: expected a scalar or a (B,) tensor, got shape {tuple(t.shape)}")
        if batch is not None and t.dim() == 1 and t.shape[0] != batch:
            raise ArgumentError(f"{name}: expected one {name} per sample ({batch} values), got shape {tuple(t.shape)}")
        t = t.to("cpu", torch.int64 if integer else torch.float64)
    else:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ArgumentTypeError(f"{name}: expected a number or a (B,) tensor, got {type(value).__name__} {value!r}")
        if integer:
            return torch.tensor(
                check_int(value, name, INT64_MIN if lo is None else int(lo), INT64_MAX if hi is None else int(hi))
            )
        t = torch.tensor(float(value), dtype=torch.float64)
    if t.numel() == 0:
        return t
    if not integer:
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            what = "NaN" if bool(torch.isnan(t).any()) else "an infinite value"
            raise ArgumentError(f"{name}: contains {what} (got {t.tolist() if t.numel() <= 8 else tuple(t.shape)})")
    mn, mx = t.min().item(), t.max().item()
    if (lo is not None and mn < lo) or (hi is not None and mx > hi):
        raise ArgumentError(f"{name}: expected {_range_text(lo, hi)}, got values in [{mn:.6g}, {mx:.6g}]")
    return t
