"""Triton kernels: counter-based hash RNG and fused Gaussian / speckle noise.

Twin of the torch reference in ``robust_train/functional/rng.py`` (``hash32``, ``field_uniform``, ``field_normal``)
and ``robust_train/functional/noise.py`` (``_hash_noise_reference``): the integer hash agrees bit for bit, the
floats to rounding (``log``/``sqrt``/``cos``/``sin`` come from the GPU math library instead of Sleef).

Per sample ``b`` and element ``e`` (flat index inside the sample)::

    h(e)  = mix32(mix32(e ^ k1[b]) + k2[b])           # uint32 arithmetic, lowbias32 mixer
    u(e)  = ((h >> 8) + 0.5) / 2**24                  # float32 clamped to 1 - 2**-24, or float64
    z(e)  = sqrt(-2 ln u_A(e // 2)) * (cos if e even else sin)(2 pi u_B(e // 2))
    out   = clip(x + sigma z, 0, 1)        (mode 0)   or   clip(x + x * (sigma z), 0, 1)   (mode 1)

The per-sample keys ``(k1, k2)`` of the two uniform streams (A, B) are derived from the int64 seed on the host by the
reference (``rng._normal_keys``; B values, exact) and passed as a (B, 4) int32 tensor, so the kernel sees only
32-bit arithmetic. This file imports triton at module level; ``robust_train.functional._dispatch`` loads it lazily
by path and falls back to the reference when that fails.

Launch grid: ``(cdiv(n, BLOCK), B)``; every output element is written by exactly one program (no atomics), so the
kernels are deterministic.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["BLOCK", "hash_bits", "hash_noise_backward", "hash_noise_forward", "normal", "uniform"]

BLOCK = 1024
_TWO_PI = 6.283185307179586


@triton.jit
def _mix32(x):
    # lowbias32 (C. Wellons) on uint32: logical shifts, multiplications wrap modulo 2**32.
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    x = x ^ (x >> 16)
    return x


@triton.jit
def _hash(counter, k1, k2):
    return _mix32(_mix32(counter ^ k1) + k2)


@triton.jit
def _unit(h, F64: tl.constexpr):
    k = h >> 8
    if F64:
        u = (k.to(tl.float64) + 0.5) * (1.0 / 16777216.0)
    else:
        u = (k.to(tl.float32) + 0.5) * (1.0 / 16777216.0)
        u = tl.minimum(u, 0.99999994039535522)  # 1 - 2**-24: float32 would round the top value to 1.0
    return u


@triton.jit
def _load_key(keys_ptr, b, j: tl.constexpr, NK: tl.constexpr):
    return tl.load(keys_ptr + b * NK + j).to(tl.uint32, bitcast=True)


@triton.jit
def _normal(e, keys_ptr, b, F64: tl.constexpr):
    a1 = _load_key(keys_ptr, b, 0, 4)
    a2 = _load_key(keys_ptr, b, 1, 4)
    c1 = _load_key(keys_ptr, b, 2, 4)
    c2 = _load_key(keys_ptr, b, 3, 4)
    j = (e >> 1).to(tl.uint32)
    u1 = _unit(_hash(j, a1, a2), F64)
    u2 = _unit(_hash(j, c1, c2), F64)
    if F64:
        r = tl.sqrt(-2.0 * tl.log(u1))  # float64 sqrt is IEEE-rounded
    else:
        r = tl.sqrt_rn(-2.0 * tl.log(u1))  # tl.sqrt is the approximate one for float32
    t = u2 * _TWO_PI
    return tl.where((e & 1) == 0, r * tl.cos(t), r * tl.sin(t))


@triton.jit
def _hash_bits_kernel(out_ptr, keys_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    b = tl.program_id(1)
    e = pid * BLOCK + tl.arange(0, BLOCK)
    mask = e < n
    h = _hash(e.to(tl.uint32), _load_key(keys_ptr, b, 0, 2), _load_key(keys_ptr, b, 1, 2))
    tl.store(out_ptr + b.to(tl.int64) * n + e, h.to(tl.int32, bitcast=True), mask=mask)


@triton.jit
def _uniform_kernel(out_ptr, keys_ptr, n, F64: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    b = tl.program_id(1)
    e = pid * BLOCK + tl.arange(0, BLOCK)
    mask = e < n
    u = _unit(_hash(e.to(tl.uint32), _load_key(keys_ptr, b, 0, 2), _load_key(keys_ptr, b, 1, 2)), F64)
    tl.store(out_ptr + b.to(tl.int64) * n + e, u, mask=mask)


@triton.jit
def _normal_kernel(out_ptr, keys_ptr, n, F64: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    b = tl.program_id(1)
    e = pid * BLOCK + tl.arange(0, BLOCK)
    mask = e < n
    z = _normal(e, keys_ptr, b, F64)
    tl.store(out_ptr + b.to(tl.int64) * n + e, z, mask=mask)


@triton.jit
def _noise_fwd_kernel(
    x_ptr, out_ptr, keys_ptr, sigma_ptr, n, MODE: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr
):
    pid = tl.program_id(0)
    b = tl.program_id(1)
    e = pid * BLOCK + tl.arange(0, BLOCK)
    mask = e < n
    offs = b.to(tl.int64) * n + e
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    zs = tl.load(sigma_ptr + b) * _normal(e, keys_ptr, b, F64)
    if MODE == 0:
        pre = x + zs
    else:
        pre = x + x * zs
    out = tl.minimum(tl.maximum(pre, 0.0), 1.0)
    tl.store(out_ptr + offs, out, mask=mask)


@triton.jit
def _noise_bwd_kernel(
    g_ptr, x_ptr, gx_ptr, keys_ptr, sigma_ptr, n, MODE: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr
):
    pid = tl.program_id(0)
    b = tl.program_id(1)
    e = pid * BLOCK + tl.arange(0, BLOCK)
    mask = e < n
    offs = b.to(tl.int64) * n + e
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    zs = tl.load(sigma_ptr + b) * _normal(e, keys_ptr, b, F64)
    if MODE == 0:
        pre = x + zs
        gx = g
    else:
        pre = x + x * zs
        gx = g * (1.0 + zs)
    inside = (pre >= 0.0) & (pre <= 1.0)  # torch.clamp passes the gradient on the closed interval
    tl.store(gx_ptr + offs, tl.where(inside, gx, 0.0), mask=mask)


# ------------------------------------------------------------------------------------------------------ launchers
def _check_keys(keys: Tensor, cols: int) -> None:
    if keys.dtype != torch.int32 or keys.dim() != 2 or keys.shape[1] != cols:
        raise ValueError(f"keys: expected a (B, {cols}) int32 tensor, got {tuple(keys.shape)} {keys.dtype}")


def _float_flag(dtype: torch.dtype) -> bool:
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"expected float32 or float64, got {dtype}")
    return dtype == torch.float64


def _grid(n: int, batch: int) -> tuple[int, int]:
    return (triton.cdiv(max(n, 1), BLOCK), batch)


def hash_bits(keys: Tensor, n: int) -> Tensor:
    """Raw int32 hash bits ``mix32(mix32(e ^ k1) + k2)`` for ``e < n``: (B, n), from (B, 2) int32 keys."""
    _check_keys(keys, 2)
    keys = keys.contiguous()
    out = torch.empty((keys.shape[0], n), dtype=torch.int32, device=keys.device)
    if out.numel():
        _hash_bits_kernel[_grid(n, keys.shape[0])](out, keys, n, BLOCK=BLOCK)
    return out


def uniform(keys: Tensor, n: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniforms in (0, 1) from (B, 2) int32 keys: (B, n) in ``dtype`` (float32 or float64)."""
    _check_keys(keys, 2)
    f64 = _float_flag(dtype)
    keys = keys.contiguous()
    out = torch.empty((keys.shape[0], n), dtype=dtype, device=keys.device)
    if out.numel():
        _uniform_kernel[_grid(n, keys.shape[0])](out, keys, n, F64=f64, BLOCK=BLOCK)
    return out


def normal(keys: Tensor, n: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normals (Box-Muller pairs) from (B, 4) int32 keys: (B, n) in ``dtype``."""
    _check_keys(keys, 4)
    f64 = _float_flag(dtype)
    keys = keys.contiguous()
    out = torch.empty((keys.shape[0], n), dtype=dtype, device=keys.device)
    if out.numel():
        _normal_kernel[_grid(n, keys.shape[0])](out, keys, n, F64=f64, BLOCK=BLOCK)
    return out


def hash_noise_forward(x: Tensor, keys: Tensor, sigma: Tensor, mode: int) -> Tensor:
    """Fused noise: ``clip(x + sigma z)`` (mode 0) or ``clip(x + x sigma z)`` (mode 1); x (B, ...) float32/64."""
    _check_keys(keys, 4)
    f64 = _float_flag(x.dtype)
    x = x.contiguous()
    batch, n = x.shape[0], x[0].numel() if x.shape[0] else 0
    out = torch.empty_like(x)
    if out.numel():
        sigma = sigma.to(device=x.device, dtype=x.dtype).contiguous()
        _noise_fwd_kernel[_grid(n, batch)](x, out, keys.contiguous(), sigma, n, MODE=int(mode), F64=f64, BLOCK=BLOCK)
    return out


def hash_noise_backward(grad: Tensor, x: Tensor, keys: Tensor, sigma: Tensor, mode: int) -> Tensor:
    """Gradient of :func:`hash_noise_forward` with respect to ``x`` (recomputes the noise; nothing saved)."""
    _check_keys(keys, 4)
    f64 = _float_flag(x.dtype)
    x = x.contiguous()
    grad = grad.to(x.dtype).contiguous()
    batch, n = x.shape[0], x[0].numel() if x.shape[0] else 0
    gx = torch.empty_like(x)
    if gx.numel():
        sigma = sigma.to(device=x.device, dtype=x.dtype).contiguous()
        _noise_bwd_kernel[_grid(n, batch)](
            grad, x, gx, keys.contiguous(), sigma, n, MODE=int(mode), F64=f64, BLOCK=BLOCK
        )
    return gx
