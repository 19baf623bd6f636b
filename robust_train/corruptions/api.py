"""One-call functional API: ``corrupt(x, name, severity)``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import ArgumentError, ArgumentTypeError
from ..functional.checks import check_image, check_per_sample, check_seed
from ..functional.rng import op_seeds
from .base import Corruption, Severity
from .execution import as_batch
from .suites import CORRUPTIONS

__all__ = ["corrupt", "create_corruption"]


def create_corruption(name: str, **kwargs: Any) -> Corruption:
    """Build a registered corruption module by name (``None`` keyword arguments are dropped).

    Raises:
        ValueError: unknown name (the message suggests close matches).
    """
    return CORRUPTIONS.create(name, **kwargs)


def corrupt(
    x: Tensor,
    name: str,
    severity: Severity = 3,
    *,
    preset: str = "auto",
    seed: int | Tensor = 0,
    **options: Any,
) -> Tensor:
    """Apply one ImageNet-C corruption to a batch.

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1], any device.
        name: registry key (``list_corruptions("c19")``).
        severity: int 1-5, float in [1, 5], or a (B,) tensor of per-sample severities.
        preset: ``"auto"`` (from the image size), ``"imagenet"``, ``"tinyimagenet"`` or ``"cifar"``.
        seed: an int (sample ``i`` of the batch then depends only on ``(seed, name, severity, i)``) or a (B,) int64
            tensor of per-sample seeds (sample ``i`` depends only on ``(seed[i], name, severity[i])``).
        **options: constructor options of the corruption (``quantize``, ``jpeg_quality``, ...).

    Returns:
        Corrupted images, same shape, dtype and device, values in [0, 1].

    Raises:
        ValueError: bad image, unknown name, severity out of range, preset far from the image size.
        TypeError: integer images or a wrongly typed argument.

    Example:
        >>> corrupt(torch.rand(2, 3, 32, 32), "contrast", 3).shape
        torch.Size([2, 3, 32, 32])
    """
    batch, _ = as_batch(x)  # any accepted form; values (range, NaN) are checked once, by the module's forward
    check_image(batch, check_values=False)
    op = create_corruption(name, severity=severity, preset=preset, **options)
    b = batch.shape[0]
    if isinstance(seed, Tensor):
        seeds = check_per_sample(seed, "seed", batch=b, integer=True).reshape(-1)
        if seeds.numel() != b:
            raise ArgumentError(f"seed: expected one seed per sample ({b}), got shape {tuple(seed.shape)}")
        if isinstance(severity, Tensor):
            severity = check_per_sample(severity, "severity", batch=b, lo=1.0, hi=5.0)
        params = op.params_for_seeds(op_seeds(seeds, name, 0), severity=severity)
    elif isinstance(seed, int) and not isinstance(seed, bool):
        check_seed(seed)
        if isinstance(severity, Tensor) and severity.dim() == 1 and severity.numel() != b:
            raise ArgumentError(f"severity: expected {b} values (one per sample), got shape {tuple(severity.shape)}")
        params = op.params_for_indices(torch.arange(b), seed)
    else:
        raise ArgumentTypeError(f"seed: expected an int or a (B,) int64 tensor, got {type(seed).__name__}")
    return op(x, params)
