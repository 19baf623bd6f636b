"""Input validation shared by every functional op (compare kornia's ``KORNIA_CHECK_SHAPE``).

Errors say what was expected and what was received.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_image", "check_batch_param", "check_range", "check_shape", "check_value_range"]


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
        with torch.no_grad():
            lo, hi = torch.aminmax(x.detach())
        check_value_range(float(lo), float(hi), name)


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
