"""Counter-based random numbers: replayable per sample, independent of batch, device and process count.

Every random quantity of a sample is a pure function of ``(seed, stream, counter)``, where ``seed`` is the
sample's int64 seed, ``stream`` separates independent uses inside one corruption (a name hashed to an int),
and ``counter`` is the element's flat index inside the sample. The hash is 32-bit arithmetic
(``lowbias32`` by C. Wellons, a two-round xorshift-multiply mixer) done on ``int32`` tensors whose
multiplications wrap modulo 2**32, as they do on every PyTorch backend; ``kernels/`` has a Triton twin that uses
``uint32`` and must agree bit for bit (see ``tests/kernels``).

Uniforms carry 24 random bits (``float32`` exact), ``(k + 0.5) / 2**24``, so they never hit 0 or 1.
Small per-sample parameter draws (angles, crop offsets) use :func:`draw_uniform`, which builds 53-bit
``float64`` uniforms on the CPU from two hashes.
"""

from __future__ import annotations

import math
import zlib

import torch
from torch import Tensor

__all__ = [
    "MASK32",
    "combine_seeds",
    "draw_uniform",
    "field_normal",
    "field_uniform",
    "hash32",
    "mix32",
    "stream_id",
]

MASK32 = 0xFFFFFFFF
_M1 = 0x7FEB352D
_M2 = 0x846CA68B
_GOLDEN = 0x9E3779B9


def _i32(v: int) -> int:
    """Python int in [0, 2**32) -> the int32 with the same bits."""
    v &= MASK32
    return v - (1 << 32) if v >= (1 << 31) else v


def _srl(x: Tensor, k: int) -> Tensor:
    """Logical right shift of int32 bit patterns."""
    return (x >> k) & ((1 << (32 - k)) - 1)


def mix32(x: Tensor) -> Tensor:
    """The ``lowbias32`` mixer on int32 bit patterns (wrapping multiply).

    Args:
        x: int32 tensor of any shape.

    Returns:
        int32 tensor of the same shape.

    Example:
        >>> mix32(torch.tensor([0, 1, 2], dtype=torch.int32)).tolist()
        [0, 1753845952, -787275391]
    """
    x = x ^ _srl(x, 16)
    x = x * _i32(_M1)
    x = x ^ _srl(x, 15)
    x = x * _i32(_M2)
    return x ^ _srl(x, 16)


def stream_id(name: str) -> int:
    """Stable 32-bit id of a stream name (CRC32, identical across processes and Python versions).

    Example:
        >>> stream_id("gaussian_noise")
        3703756812
    """
    return zlib.crc32(name.encode()) & MASK32


def _keys(seed: Tensor, stream: int) -> tuple[Tensor, Tensor]:
    """Two int32 keys per sample from an int64 seed and a stream id. Shapes (B,)."""
    seed = seed.to(torch.int64)
    lo = (seed & MASK32).to(torch.int64)
    hi = ((seed >> 32) & MASK32).to(torch.int64)
    lo = torch.where(lo >= 2**31, lo - 2**32, lo).to(torch.int32)
    hi = torch.where(hi >= 2**31, hi - 2**32, hi).to(torch.int32)
    k1 = mix32(lo ^ mix32(hi ^ _i32(stream * _GOLDEN)))
    k2 = mix32(k1 ^ _i32(0x85EBCA6B) ^ _i32(stream))
    return k1, k2


def hash32(seed: Tensor, counter: Tensor, stream: int) -> Tensor:
    """Hash per-sample seeds with per-element counters.

    Args:
        seed: int64 per-sample seeds, shape (B,).
        counter: int32/int64 element counters, shape (B, *S) or broadcastable to it (values < 2**31).
        stream: stream id from :func:`stream_id`.

    Returns:
        int32 bit patterns, shape broadcast of ``seed[:, None...]`` and ``counter``.
    """
    k1, k2 = _keys(seed, stream)
    shape = (-1,) + (1,) * max(counter.dim() - 1, 0)
    k1 = k1.to(counter.device).view(shape)
    k2 = k2.to(counter.device).view(shape)
    return mix32(mix32(counter.to(torch.int32) ^ k1) + k2)


def _counters(batch: int, shape: tuple[int, ...], device: torch.device | str | None) -> Tensor:
    n = math.prod(shape)
    if n >= 2**31:
        raise ValueError(f"a random field of {n} elements per sample exceeds the 2**31 counter range")
    return torch.arange(n, dtype=torch.int32, device=device).view(1, *shape).expand(batch, *shape)


def _to_unit(h: Tensor, dtype: torch.dtype) -> Tensor:
    """Top 24 bits of a hash -> uniform in (0, 1), exactly representable in float32."""
    k = _srl(h, 8)
    return (k.to(dtype) + 0.5) * (1.0 / 16777216.0)


def field_uniform(
    seed: Tensor,
    shape: tuple[int, ...],
    stream: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Per-sample uniform (0, 1) random field computed on ``device``.

    Args:
        seed: int64 per-sample seeds, shape (B,).
        shape: per-sample field shape ``S``.
        stream: stream id.
        dtype: floating dtype of the result.
        device: where to compute; defaults to ``seed.device``.

    Returns:
        Tensor of shape (B, *S).

    Example:
        >>> field_uniform(torch.tensor([1, 2]), (3, 4), stream_id("demo")).shape
        torch.Size([2, 3, 4])
    """
    device = seed.device if device is None else device
    return _to_unit(hash32(seed, _counters(seed.shape[0], shape, device), stream), dtype)


def field_normal(
    seed: Tensor,
    shape: tuple[int, ...],
    stream: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Per-sample standard normal field (Box-Muller on two independent uniform streams).

    Returns:
        Tensor of shape (B, *S); computed in float32 at least, then cast to ``dtype``.
    """
    work = torch.float64 if dtype == torch.float64 else torch.float32
    u1 = field_uniform(seed, shape, stream, dtype=work, device=device)
    u2 = field_uniform(seed, shape, (stream ^ 0x5BD1E995) & MASK32, dtype=work, device=device)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)
    return z.to(dtype)


def draw_uniform(seed: Tensor, n: int, stream: int) -> Tensor:
    """``n`` float64 uniforms in (0, 1) per sample with 53 random bits, on the CPU.

    Args:
        seed: int64 per-sample seeds, shape (B,).
        n: number of draws per sample.
        stream: stream id.

    Returns:
        float64 tensor of shape (B, n).

    Example:
        >>> u = draw_uniform(torch.tensor([7, 7, 8]), 2, stream_id("demo"))
        >>> bool((u[0] == u[1]).all()), bool((u[0] != u[2]).any()), u.shape
        (True, True, torch.Size([3, 2]))
    """
    seed = seed.to("cpu", torch.int64)
    c = torch.arange(2 * n, dtype=torch.int32).view(1, 2 * n).expand(seed.shape[0], 2 * n)
    h = hash32(seed, c, stream).to(torch.int64) & MASK32
    hi = (h[:, 0::2] >> 5).to(torch.float64)  # 27 bits
    lo = (h[:, 1::2] >> 6).to(torch.float64)  # 26 bits
    return (hi * 67108864.0 + lo + 0.5) / 9007199254740992.0


def combine_seeds(*parts: Tensor | int) -> Tensor:
    """Hash several ints / int64 tensors (broadcast together) into new int64 seeds.

    Used to derive per-sample seeds from ``(eval_seed, corruption, severity, sample_index)``.

    Example:
        >>> s = combine_seeds(0, stream_id("fog"), torch.arange(3))
        >>> s.dtype, s.shape, bool((s[0] != s[1]))
        (torch.int64, torch.Size([3]), True)
    """
    tensors = [p.to("cpu", torch.int64) if isinstance(p, Tensor) else torch.tensor(int(p), dtype=torch.int64)
               for p in parts]
    tensors = torch.broadcast_tensors(*tensors)
    acc = torch.full(tensors[0].shape, 0x2545F491, dtype=torch.int64)
    acc_hi = torch.full(tensors[0].shape, 0x1B873593, dtype=torch.int64)
    for i, t in enumerate(tensors):
        lo = t & MASK32
        hi = (t >> 32) & MASK32
        for word in (lo, hi):
            w = torch.where(word >= 2**31, word - 2**32, word).to(torch.int32)
            a = torch.where(acc >= 2**31, acc - 2**32, acc).to(torch.int32)
            b = torch.where(acc_hi >= 2**31, acc_hi - 2**32, acc_hi).to(torch.int32)
            a = mix32(a ^ mix32(w + _i32(i * _GOLDEN)))
            b = mix32(b + a ^ w)
            acc = a.to(torch.int64) & MASK32
            acc_hi = b.to(torch.int64) & MASK32
    out = (acc_hi << 32) | acc
    return out
