"""Torch reference of the fused counter-hash noise op (Gaussian and speckle noise).

Imported by the dispatch point (:mod:`robust_train.functional._dispatch`) and by :mod:`robust_train.functional.noise`,
which calls the dispatch point: the reference lives apart from both, so neither imports the other in a circle.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._fused import fused, fusion_enabled
from .rng import _blocks, _normal_block, _normal_keys, normal_expr

__all__ = ["_hash_noise_grad_reference", "_hash_noise_reference"]


@fused
def _hash_noise_fused(x: Tensor, keys: Tensor, sigma: Tensor, mode: int) -> Tensor:
    """The whole noise op as one expression (compiled into a single loop when fusion is on).

    ``keys``: (B, 4) int32 Box-Muller keys; ``sigma``: (B,) in ``x``'s dtype. Same values as the blocked reference
    below (the hash bits are identical; floats may differ by rounding when compiled).
    """
    batch, n = x.shape[0], x[0].numel()
    xf = x.reshape(batch, n)
    z = normal_expr(keys, n, x.dtype) * sigma.view(-1, 1)
    if mode == 1:
        z = z * xf
    return (xf + z).clamp(0.0, 1.0).view(x.shape)


def _hash_noise_reference(x: Tensor, seed: Tensor, sigma: Tensor, mode: int, stream: int) -> Tensor:
    """Torch reference of the fused noise op (no autograd; see :func:`robust_train.functional._dispatch.hash_noise`).

    With fusion on (:mod:`robust_train.functional._fused`) one compiled kernel computes everything. Otherwise the
    normal field is generated block by block (:func:`robust_train.functional.rng._blocks`) and
    ``clip(x + sigma z)`` (mode 0) or ``clip(x + x (sigma z))`` (mode 1) is written straight into the output.
    """
    batch = x.shape[0]
    n = x[0].numel() if batch else 0
    if n and fusion_enabled(x.device):
        keys = torch.cat(_normal_keys(seed, stream, x.device), dim=1).contiguous()
        return _hash_noise_fused(x.contiguous(), keys, sigma.to(device=x.device, dtype=x.dtype), mode)
    xf = x.reshape(batch, n)
    out = torch.empty((batch, n), dtype=x.dtype, device=x.device)
    keys = _normal_keys(seed, stream, x.device)
    sig = sigma.to(device=x.device, dtype=x.dtype).view(-1, 1)
    for b0, b1, e0, e1 in _blocks(batch, n, x.device, align=2):
        zs = _normal_block(keys, b0, b1, e0, e1, x.dtype, x.device).mul_(sig[b0:b1])
        xb = xf[b0:b1, e0:e1]
        if mode == 1:
            zs.mul_(xb)
        ob = out[b0:b1, e0:e1]
        torch.add(xb, zs, out=ob)
        ob.clamp_(0.0, 1.0)
    return out.view(x.shape)


def _hash_noise_grad_reference(grad: Tensor, x: Tensor, seed: Tensor, sigma: Tensor, mode: int, stream: int) -> Tensor:
    """Gradient of :func:`_hash_noise_reference` in ``x`` (recomputes the field block by block)."""
    batch = x.shape[0]
    n = x[0].numel() if batch else 0
    xf = x.reshape(batch, n)
    gf = grad.to(x.dtype).reshape(batch, n)
    out = torch.empty((batch, n), dtype=x.dtype, device=x.device)
    keys = _normal_keys(seed, stream, x.device)
    sig = sigma.to(device=x.device, dtype=x.dtype).view(-1, 1)
    for b0, b1, e0, e1 in _blocks(batch, n, x.device, align=2):
        zs = _normal_block(keys, b0, b1, e0, e1, x.dtype, x.device).mul_(sig[b0:b1])
        xb, gb = xf[b0:b1, e0:e1], gf[b0:b1, e0:e1]
        if mode == 1:
            pre = xb + xb * zs
            g = gb * zs.add_(1.0)
        else:
            pre = xb + zs
            g = gb
        inside = (pre >= 0.0) & (pre <= 1.0)
        torch.where(inside, g, torch.zeros((), dtype=x.dtype, device=x.device), out=out[b0:b1, e0:e1])
    return out.view(x.shape)


# -------------------------------------------------------------------------------------------------------- ops
