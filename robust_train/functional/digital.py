"""Digital corruptions (numerics): contrast, ... (spec sections 2.14-2.17).

Functional ops take images ``(B, 3, H, W)`` in [0, 1] and per-sample arguments ``(B,)``; they never draw random
numbers. They return float output *before* the 8-bit truncation that the module applies (``quantize``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_batch_param, check_image

__all__ = ["contrast"]


def _per_sample(v: Tensor | float, x: Tensor, name: str) -> Tensor:
    t = torch.as_tensor(v, device=x.device, dtype=x.dtype).reshape(-1)
    if t.numel() == 1:
        t = t.expand(x.shape[0])
    check_batch_param(t, x.shape[0], name)
    return t.view(-1, 1, 1, 1)


def contrast(x: Tensor, factor: Tensor | float) -> Tensor:
    """Scale each channel's deviation from its own spatial mean (spec 2.14; per-channel means, quirk 12).

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        factor: contrast factor per sample, shape (B,) or scalar (1 = identity).

    Returns:
        ``clip((x - mean_c) * factor + mean_c, 0, 1)``, shape (B, 3, H, W), same dtype.

    Example:
        >>> contrast(torch.rand(2, 3, 8, 8), torch.tensor([0.4, 0.1])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, check_values=False)
    c = _per_sample(factor, x, "factor")
    means = x.mean(dim=(-2, -1), keepdim=True)
    return ((x - means) * c + means).clamp(0.0, 1.0)
