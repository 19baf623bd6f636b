"""Adaptive instance normalisation (Huang and Belongie, ICCV 2017), pure tensor maths.

``AdaIN(c, s) = sigma(s) * (c - mu(c)) / sigma(c) + mu(s)`` per sample and channel, with ``mu`` / ``sigma`` the
spatial mean and standard deviation of the feature maps (``sigma = sqrt(var + eps)`` with the unbiased variance, as
the reference PyTorch AdaIN code computes it). Style transfer then decodes ``alpha * AdaIN(c, s) + (1 - alpha) c``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import check_batch_param, check_shape

__all__ = ["adain", "adain_blend", "channel_mean_std"]


def channel_mean_std(feat: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-sample, per-channel spatial mean and standard deviation.

    Args:
        feat: feature maps, shape (B, C, H, W), H * W >= 2.
        eps: added to the (unbiased) variance before the square root.

    Returns:
        ``(mean, std)``, each of shape (B, C).

    Example:
        >>> m, s = channel_mean_std(torch.rand(2, 8, 4, 4))
        >>> m.shape, s.shape
        (torch.Size([2, 8]), torch.Size([2, 8]))
    """
    check_shape(feat, "B C H W", "feat")
    if feat.shape[-1] * feat.shape[-2] < 2:
        raise ValueError(f"feat: need at least 2 spatial positions for a variance, got shape {tuple(feat.shape)}")
    flat = feat.flatten(2)
    return flat.mean(-1), (flat.var(-1, unbiased=True) + eps).sqrt()


def adain(content: Tensor, style_mean: Tensor, style_std: Tensor, eps: float = 1e-5) -> Tensor:
    """Give every content feature map the style's channel mean and standard deviation.

    Args:
        content: content features, shape (B, C, H, W).
        style_mean: target channel means, shape (B, C).
        style_std: target channel standard deviations, shape (B, C).
        eps: variance epsilon of the content statistics.

    Returns:
        Features of shape (B, C, H, W) whose per-channel mean is ``style_mean`` and whose standard deviation is
        ``style_std`` (up to ``eps``).

    Example:
        >>> adain(torch.rand(2, 8, 4, 4), torch.zeros(2, 8), torch.ones(2, 8)).shape
        torch.Size([2, 8, 4, 4])
    """
    check_shape(content, "B C H W", "content")
    b, c = content.shape[:2]
    for t, n in ((style_mean, "style_mean"), (style_std, "style_std")):
        check_batch_param(t, b, n)
        if t.shape != (b, c):
            raise ValueError(f"{n}: expected shape ({b}, {c}), got {tuple(t.shape)}")
    mean, std = channel_mean_std(content, eps)
    normed = (content - mean[..., None, None]) / std[..., None, None]
    return normed * style_std.to(content.dtype)[..., None, None] + style_mean.to(content.dtype)[..., None, None]


def adain_blend(content: Tensor, stylized: Tensor, alpha: Tensor | float) -> Tensor:
    """Interpolate features: ``alpha * stylized + (1 - alpha) * content`` with a per-sample ``alpha``.

    Args:
        content: (B, C, H, W).
        stylized: (B, C, H, W), the :func:`adain` output.
        alpha: stylisation strength in [0, 1], a float or shape (B,).

    Returns:
        (B, C, H, W).

    Example:
        >>> adain_blend(torch.zeros(2, 3, 2, 2), torch.ones(2, 3, 2, 2), torch.tensor([0.0, 1.0])).shape
        torch.Size([2, 3, 2, 2])
    """
    a = torch.as_tensor(alpha, dtype=content.dtype, device=content.device)
    if a.dim() == 1:
        check_batch_param(a, content.shape[0], "alpha")
        a = a.view(-1, 1, 1, 1)
    return a * stylized + (1.0 - a) * content
