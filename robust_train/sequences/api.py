"""One-call functional API: ``perturb_sequence(x, name)``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import ArgumentError, ArgumentTypeError
from ..functional.checks import check_image, check_per_sample
from ..functional.rng import op_seeds
from ..registry import suggest
from .base import SEQUENCES, PerturbationSequence

__all__ = ["create_sequence", "list_sequences", "perturb_sequence"]


def create_sequence(name: str, **kwargs: Any) -> PerturbationSequence:
    """Build a registered perturbation-sequence module by name (``None`` keyword arguments are dropped).

    Raises:
        ValueError: unknown name (close matches suggested).
    """
    return SEQUENCES.create(name, **kwargs)


def list_sequences(suite: str | None = None, pattern: str | None = None) -> list[str]:
    """Registered perturbation types: all (sorted), or a named suite (``"p10"``, ``"p14"``) in benchmark order.

    Example:
        >>> list_sequences("p10")[-4:]
        ['translate', 'rotate', 'tilt', 'scale']
    """
    import fnmatch

    from ..metrics.stability import P_SUITES

    if suite is None:
        names = SEQUENCES.list()
    elif suite in P_SUITES:
        names = list(P_SUITES[suite])
    else:
        close = suggest(str(suite), P_SUITES)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ArgumentError(f"unknown perturbation suite {suite!r}.{hint} Expected one of {sorted(P_SUITES)}")
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def perturb_sequence(
    x: Tensor,
    name: str,
    *,
    preset: str = "auto",
    seed: int | Tensor = 0,
    difficulty: int = 1,
    **options: Any,
) -> Tensor:
    """Generate ImageNet-P perturbation sequences for a batch, on the batch's device.

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        name: perturbation type (``list_sequences()``): 10 test types and 4 validation types.
        preset: ``"auto"`` (from the frame size), ``"imagenet"``, ``"tinyimagenet"`` or ``"cifar"``.
        seed: an int (sample ``i`` then depends only on ``(seed, name, i)``) or a (B,) int64 tensor of per-sample
            seeds (sample ``i`` depends only on ``seed[i]`` and ``name``).
        difficulty: 1-3; noise strength of the noise types (the others stride frames at evaluation instead).
        **options: module options (``crop``, ``quantize``, ``h264``: the released videos' H.264 round trip, CPU).

    Returns:
        Frames, shape (B, T, 3, h, w), same dtype and device, in [0, 1]; T = 31 except translate (41 / 31 / 16 for
        ImageNet / Tiny-ImageNet / CIFAR) and CIFAR motion blur (21).

    Raises:
        ValueError: unknown name or preset, bad difficulty, bad image.

    Example:
        >>> perturb_sequence(torch.rand(2, 3, 32, 32), "rotate").shape
        torch.Size([2, 31, 3, 32, 32])
    """
    check_image(x)
    op = create_sequence(name, preset=preset, difficulty=difficulty, **options)
    b = x.shape[0]
    if isinstance(seed, Tensor):
        s = check_per_sample(seed, "seed", batch=b, integer=True).reshape(-1)
        if s.numel() != b:
            raise ArgumentError(f"seed: expected one seed per sample ({b}), got shape {tuple(seed.shape)}")
        params = {"seed": op_seeds(s, f"sequence/{name}")}
        return op(x, params)  # type: ignore[arg-type]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ArgumentTypeError(f"seed: expected an int or a (B,) int64 tensor, got {type(seed).__name__}")
    return op(x, op.params_for_indices(torch.arange(b), seed))
