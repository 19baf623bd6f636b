"""Norm-ball projections and the image box constraint for adversarial perturbations (pure functions).

Budgets ``eps`` may be a float or a per-sample (B,) tensor.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["clamp_to_image", "lp_norm", "project", "project_l2", "project_linf"]


def _eps(eps: float | Tensor, delta: Tensor) -> Tensor:
    e = torch.as_tensor(eps, dtype=delta.dtype, device=delta.device)
    if e.dim() == 0:
        return e
    if e.shape != (delta.shape[0],):
        raise ValueError(f"eps: expected a float or a ({delta.shape[0]},) tensor, got shape {tuple(e.shape)}")
    return e.view(-1, *([1] * (delta.dim() - 1)))


def lp_norm(delta: Tensor, norm: str) -> Tensor:
    """Per-sample norm of ``delta`` (B, ...) -> (B,), ``norm`` in {"linf", "l2"}.

    Example:
        >>> import torch
        >>> lp_norm(torch.zeros(2, 3, 4, 4), "l2").shape
        torch.Size([2])
    """
    flat = delta.reshape(delta.shape[0], -1)
    if norm == "linf":
        return flat.abs().amax(dim=1)
    if norm == "l2":
        return flat.norm(p=2, dim=1)
    raise ValueError(f"norm: expected 'linf' or 'l2', got {norm!r}")


def project_linf(delta: Tensor, eps: float | Tensor) -> Tensor:
    """Project onto the L-inf ball of radius ``eps`` (element-wise clamp).

    Example:
        >>> import torch
        >>> bool(project_linf(torch.randn(2, 3, 4, 4), 0.03).abs().max() <= 0.03)
        True
    """
    e = _eps(eps, delta)
    return torch.maximum(torch.minimum(delta, e), -e)


def project_l2(delta: Tensor, eps: float | Tensor) -> Tensor:
    """Project onto the L2 ball of radius ``eps`` (rescale samples whose norm exceeds it).

    Example:
        >>> import torch
        >>> bool(lp_norm(project_l2(torch.randn(2, 3, 4, 4), 1.0), "l2").max() <= 1.0 + 1e-6)
        True
    """
    n = lp_norm(delta, "l2").view(-1, *([1] * (delta.dim() - 1)))
    e = _eps(eps, delta)
    scale = torch.where(n > e, e / n.clamp_min(1e-12), torch.ones_like(n))
    return delta * scale


def project(delta: Tensor, eps: float | Tensor, norm: str) -> Tensor:
    """Dispatch to :func:`project_linf` / :func:`project_l2`."""
    if norm == "linf":
        return project_linf(delta, eps)
    if norm == "l2":
        return project_l2(delta, eps)
    raise ValueError(f"norm: expected 'linf' or 'l2', got {norm!r}")


def clamp_to_image(x: Tensor, delta: Tensor) -> Tensor:
    """Adjust ``delta`` so that ``x + delta`` stays in [0, 1].

    Example:
        >>> import torch
        >>> x = torch.rand(2, 3, 4, 4)
        >>> bool(((x + clamp_to_image(x, torch.randn(2, 3, 4, 4))) <= 1).all())
        True
    """
    return (x + delta).clamp(0.0, 1.0) - x
