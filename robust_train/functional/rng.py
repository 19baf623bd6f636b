"""Counter-based random numbers: replayable per sample, independent of batch, device and process count.

Every random quantity of a sample is a pure function of ``(seed, stream, counter)``, where ``seed`` is the
sample's int64 seed, ``stream`` separates independent uses inside one corruption (a name hashed to an int),
and ``counter`` is the element's flat index inside the sample. The hash is 32-bit arithmetic
(``lowbias32`` by C. Wellons, a two-round xorshift-multiply mixer) done on ``int32`` tensors whose
multiplications wrap modulo 2**32, as they do on every PyTorch backend; ``kernels/`` has a Triton twin that uses
``uint32`` and must agree bit for bit (see ``tests/kernels``).

Uniforms carry 24 random bits, ``(k + 0.5) / 2**24``, and never hit 0 or 1 (float32 rounds the upper half to an
even grid and the top value is clamped below 1; see :func:`_unit_`). Normals use Box-Muller on pairs of counters.
On the CPU, fields are produced in cache-sized blocks with in-place integer arithmetic (``_execution.CPU_BLOCK``); the
values do not depend on the blocking.
Small per-sample parameter draws (angles, crop offsets) use :func:`draw_uniform`, which builds 53-bit
``float64`` uniforms on the CPU from two hashes.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch
from torch import Tensor

from ._execution import blocks
from ._fused import fused, fusion_enabled

__all__ = [
    "MASK32",
    "hash_expr",
    "mix32_expr",
    "normal_expr",
    "unit_expr",
    "combine_seeds",
    "op_seeds",
    "severity_seeds",
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


def _xorshift_(x: Tensor, k: int, tmp: Tensor) -> None:
    """``x ^= x >>> k`` in place (logical shift of int32 bit patterns), using ``tmp`` as scratch."""
    torch.bitwise_right_shift(x, k, out=tmp)
    tmp.bitwise_and_((1 << (32 - k)) - 1)
    x.bitwise_xor_(tmp)


def _mix32_(x: Tensor, tmp: Tensor) -> Tensor:
    """In-place ``lowbias32`` on a tensor the caller owns (``tmp``: scratch of the same shape)."""
    _xorshift_(x, 16, tmp)
    x.mul_(_i32(_M1))
    _xorshift_(x, 15, tmp)
    x.mul_(_i32(_M2))
    _xorshift_(x, 16, tmp)
    return x


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
    y = x.to(torch.int32, copy=True).contiguous()
    return _mix32_(y, torch.empty_like(y))


def stream_id(name: str) -> int:
    """Stable 32-bit id of a stream name (CRC32, identical across processes and Python versions).

    Example:
        >>> stream_id("gaussian_noise")
        3703756812
    """
    return zlib.crc32(name.encode()) & MASK32


def _mix32_np(x: np.ndarray) -> np.ndarray:
    """:func:`mix32` on a uint32 NumPy array (wrapping uint32 arithmetic; same bits as the int32 torch version)."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(_M1)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(_M2)
    return x ^ (x >> np.uint32(16))


def _halves_np(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The low and high 32-bit words (uint32) of int64 values (any shape; two's-complement bits)."""
    u = a.astype(np.int64).astype(np.uint64)
    return (u & np.uint64(MASK32)).astype(np.uint32), (u >> np.uint64(32)).astype(np.uint32)


def _keys_np(seed: np.ndarray, streams: list[int] | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_keys_many` on the host: uint32 arrays of shape (len(streams), B) for int64 seeds (B,)."""
    lo, hi = (h.reshape(1, -1) for h in _halves_np(seed))
    st = np.array([int(v) & MASK32 for v in streams], dtype=np.uint64).reshape(-1, 1)
    golden = ((st * np.uint64(_GOLDEN)) & np.uint64(MASK32)).astype(np.uint32)
    salt = (st ^ np.uint64(0x85EBCA6B)).astype(np.uint32)
    with np.errstate(over="ignore"):
        k1 = _mix32_np(lo ^ _mix32_np(hi ^ golden))
        return k1, _mix32_np(k1 ^ salt)


def _keys_many(seed: Tensor, streams: list[int] | tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Keys of several streams at once: two int32 tensors of shape (len(streams), B) (see :func:`_keys`).

    Computed with NumPy uint32 arithmetic on the host (seeds are small (B,) tensors; a few microseconds instead of
    dozens of tiny tensor ops), returned on ``seed``'s device.
    """
    k1, k2 = _keys_np(seed.detach().to("cpu", torch.int64).numpy(), streams)
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a).view(np.int32)).to(seed.device)  # noqa: E731
    return to(k1), to(k2)


def _keys(seed: Tensor, stream: int) -> tuple[Tensor, Tensor]:
    """Two int32 keys per sample from an int64 seed and a stream id. Shapes (B,).

    ``k1 = mix32(lo ^ mix32(hi ^ (stream * 0x9E3779B9)))``, ``k2 = mix32(k1 ^ 0x85EBCA6B ^ stream)`` with ``lo`` /
    ``hi`` the 32-bit halves of the seed (all 32-bit wrapping arithmetic).
    """
    k1, k2 = _keys_many(seed, [stream])
    return k1[0], k2[0]


def _hash_keys(k1: Tensor, k2: Tensor, counter: Tensor) -> Tensor:
    """``mix32(mix32(counter ^ k1) + k2)`` as a fresh int32 tensor (keys broadcast against ``counter``)."""
    x = torch.bitwise_xor(counter.to(torch.int32), k1)
    tmp = torch.empty_like(x)
    _mix32_(x, tmp)
    x.add_(k2)
    return _mix32_(x, tmp)


def hash32(seed: Tensor, counter: Tensor, stream: int) -> Tensor:
    """Hash per-sample seeds with per-element counters.

    ``hash32(seed, c, stream) = mix32(mix32(c ^ k1) + k2)`` with per-sample keys ``(k1, k2)`` derived from the
    seed and the stream id (:func:`_keys`).

    Args:
        seed: int64 per-sample seeds, shape (B,).
        counter: int32/int64 element counters, shape (B, *S) or broadcastable to it (values < 2**31).
        stream: stream id from :func:`stream_id`.

    Returns:
        int32 bit patterns, shape broadcast of ``seed[:, None...]`` and ``counter``.

    Example:
        >>> hash32(torch.tensor([3, 4]), torch.arange(5).view(1, 5), stream_id("demo")).shape
        torch.Size([2, 5])
    """
    k1, k2 = _keys(seed, stream)
    shape = (-1,) + (1,) * max(counter.dim() - 1, 0)
    return _hash_keys(k1.to(counter.device).view(shape), k2.to(counter.device).view(shape), counter)


# ------------------------------------------------------------------------- pure forms (for fused kernels)
# The functions below compute the same bits as the in-place block versions above, as pure expressions without
# Python loops, so that a ``@fused`` kernel (robust_train.functional._fused) can inline them into one loop.


def mix32_expr(x: Tensor) -> Tensor:
    """:func:`mix32` as a pure expression (int32 in, int32 out; wrapping multiply)."""
    x = x ^ _srl(x, 16)
    x = x * _i32(_M1)
    x = x ^ _srl(x, 15)
    x = x * _i32(_M2)
    return x ^ _srl(x, 16)


def hash_expr(k1: Tensor, k2: Tensor, counter: Tensor) -> Tensor:
    """``mix32(mix32(counter ^ k1) + k2)`` as a pure expression (int32; keys broadcast against ``counter``)."""
    return mix32_expr(mix32_expr(counter ^ k1) + k2)


def unit_expr(h: Tensor, dtype: torch.dtype) -> Tensor:
    """:func:`_unit_` as a pure expression for float32/float64: ``(top 24 bits + 0.5) / 2**24`` in (0, 1)."""
    u = (_srl(h, 8).to(dtype) + 0.5) * (1.0 / 16777216.0)
    return u.clamp(max=1.0 - 2.0**-24) if dtype == torch.float32 else u


def normal_expr(keys: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """The first ``n`` values of :func:`field_normal` per sample as a pure expression, shape (B, n).

    Args:
        keys: (B, 4) int32 keys ``(a1, a2, b1, b2)`` of the two Box-Muller streams (:func:`_normal_keys`).
        n: field elements per sample.
        dtype: float32 or float64 (the working dtype of :func:`field_normal`).
    """
    pairs = (n + 1) // 2
    j = torch.arange(pairs, dtype=torch.int32, device=keys.device).view(1, pairs)
    u1 = unit_expr(hash_expr(keys[:, 0:1], keys[:, 1:2], j), dtype)
    u2 = unit_expr(hash_expr(keys[:, 2:3], keys[:, 3:4], j), dtype)
    r = torch.sqrt(torch.log(u1) * -2.0)
    theta = u2 * (2.0 * math.pi)
    z = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1).view(keys.shape[0], 2 * pairs)
    return z[:, :n]


_blocks = blocks  # CPU cache blocking: execution policy, in :mod:`robust_train.functional._execution`


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    if not dtype.is_floating_point:
        raise TypeError(f"random fields must have a floating dtype, got {dtype}")
    return torch.float64 if dtype == torch.float64 else torch.float32


def _unit_(h: Tensor, dtype: torch.dtype) -> Tensor:
    """Top 24 bits of a hash (consumed in place) -> uniforms in the open interval (0, 1).

    ``u = (k + 0.5) / 2**24`` for the 24-bit integer ``k``, computed in float64 for float64 and in float32
    otherwise. float32 cannot hold every such value above 0.5 (it rounds to the even neighbour), and the top value
    would round to exactly 1.0, so float32 results are clamped to ``1 - 2**-24``; float16/bfloat16 results are
    clamped into ``[tiny, 1 - eps / 2]`` of their dtype. The result is never 0 or 1.
    """
    work = _work_dtype(dtype)
    h.bitwise_right_shift_(8)
    h.bitwise_and_(0xFFFFFF)
    u = h.to(work).add_(0.5).mul_(1.0 / 16777216.0)
    if work == torch.float32:
        u.clamp_(max=1.0 - 2.0**-24)
    if dtype != work:
        fi = torch.finfo(dtype)
        u = u.to(dtype).clamp_(min=fi.tiny, max=1.0 - fi.eps / 2)
    return u


def _to_unit(h: Tensor, dtype: torch.dtype) -> Tensor:
    """Top 24 bits of a hash -> uniform in (0, 1) (see :func:`_unit_`; ``h`` is not modified)."""
    return _unit_(h.clone(), dtype)


def _counters(batch: int, shape: tuple[int, ...], device: torch.device | str | None) -> Tensor:
    n = math.prod(shape)
    if n >= 2**31:
        raise ValueError(f"a random field of {n} elements per sample exceeds the 2**31 counter range")
    return torch.arange(n, dtype=torch.int32, device=device).view(1, *shape).expand(batch, *shape)


def _check_field_args(seed: Tensor, shape: tuple[int, ...]) -> int:
    if not isinstance(seed, Tensor) or seed.dim() != 1:
        got = tuple(seed.shape) if isinstance(seed, Tensor) else type(seed).__name__
        raise ValueError(f"seed: expected a (B,) int64 tensor of per-sample seeds, got {got}")
    if seed.is_floating_point() or seed.is_complex():
        raise TypeError(f"seed: expected an integer tensor, got dtype {seed.dtype}")
    n = math.prod(shape)
    if any(int(s) < 0 for s in shape):
        raise ValueError(f"shape: expected non-negative sizes, got {tuple(shape)}")
    if n >= 2**31:
        raise ValueError(f"a random field of {n} elements per sample exceeds the 2**31 counter range")
    return n


def field_uniform(
    seed: Tensor,
    shape: tuple[int, ...],
    stream: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Per-sample uniform (0, 1) random field computed on ``device``.

    Element ``e`` (flat index inside the sample) of sample ``b`` is ``(k + 0.5) / 2**24`` with ``k`` the top 24 bits
    of ``hash32(seed[b], e, stream)`` (see :func:`_unit_` for the float32 rounding at the top end).

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
    n = _check_field_args(seed, shape)
    device = torch.device(seed.device if device is None else device)
    batch = seed.shape[0]
    k1, k2 = (k.to(device).view(-1, 1) for k in _keys(seed, stream))
    if dtype in (torch.float32, torch.float64) and fusion_enabled(device):
        counters = torch.arange(n, dtype=torch.int32, device=device).view(1, n)
        return _uniform_fused(k1, k2, counters, double=dtype == torch.float64).view(batch, *shape)
    out = torch.empty((batch, n), dtype=dtype, device=device)
    counters = torch.arange(n, dtype=torch.int32, device=device).view(1, n)
    for b0, b1, c0, c1 in _blocks(batch, n, device):
        out[b0:b1, c0:c1] = _unit_(_hash_keys(k1[b0:b1], k2[b0:b1], counters[:, c0:c1]), dtype)
    return out.view(batch, *shape)


@fused
def _uniform_fused(k1: Tensor, k2: Tensor, counters: Tensor, *, double: bool) -> Tensor:
    """:func:`field_uniform` (float32 / float64) as one fused loop: the same bits (integer hash, exact unit)."""
    return unit_expr(hash_expr(k1, k2, counters), torch.float64 if double else torch.float32)


@fused
def _normal_fused(keys: Tensor, n: int, work: torch.dtype) -> Tensor:
    """:func:`field_normal` as one fused loop (:func:`normal_expr`).

    The same hash bits as the blocked version; Inductor's ``log``/``cos``/``sin`` may round differently in the last
    bits (a third of float32 values differ, by <= 1e-6).
    """
    return normal_expr(keys, n, work)


#: XOR applied to a stream id to get the stream of the second Box-Muller uniform.
NORMAL_STREAM_XOR = 0x5BD1E995


def _normal_keys(seed: Tensor, stream: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Keys (k1, k2) of the two Box-Muller uniform streams, each (B, 1) int32 on ``device``."""
    k1, k2 = _keys_many(seed, [stream & MASK32, (stream ^ NORMAL_STREAM_XOR) & MASK32])
    return tuple(k.to(device).view(-1, 1) for k in (k1[0], k2[0], k1[1], k2[1]))  # type: ignore[return-value]


def _normal_block(
    keys: tuple[Tensor, Tensor, Tensor, Tensor],
    b0: int,
    b1: int,
    e0: int,
    e1: int,
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    """Normal variates for samples ``b0:b1`` and elements ``e0:e1`` (``e0`` even), shape (b1-b0, e1-e0)."""
    j0, j1 = e0 // 2, (e1 + 1) // 2
    pairs = torch.arange(j0, j1, dtype=torch.int32, device=device).view(1, -1)
    a1, a2, c1, c2 = keys
    r = _unit_(_hash_keys(a1[b0:b1], a2[b0:b1], pairs), dtype).log_().mul_(-2.0).sqrt_()
    theta = _unit_(_hash_keys(c1[b0:b1], c2[b0:b1], pairs), dtype).mul_(2.0 * math.pi)
    z = torch.empty((b1 - b0, j1 - j0, 2), dtype=dtype, device=device)
    torch.cos(theta, out=z[..., 0])
    torch.sin(theta, out=z[..., 1])
    z.mul_(r.unsqueeze(-1))
    z = z.view(b1 - b0, 2 * (j1 - j0))
    return z if 2 * (j1 - j0) == e1 - e0 else z[:, : e1 - e0]


def field_normal(
    seed: Tensor,
    shape: tuple[int, ...],
    stream: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Per-sample standard normal field (Box-Muller, both outputs of each uniform pair used).

    Elements ``2j`` and ``2j + 1`` (flat indices inside the sample) are ``r cos(t)`` and ``r sin(t)`` with
    ``r = sqrt(-2 ln u1)``, ``t = 2 pi u2``, where ``u1`` / ``u2`` are the uniforms of counter ``j`` on the
    streams ``stream`` and ``stream ^ NORMAL_STREAM_XOR``. The pair shares its radius, yet the two values are
    independent standard normals (the polar form of a 2-D Gaussian), so the field is i.i.d. N(0, 1); the tails are
    cut at ``sqrt(2 ln 2**25) ~ 5.9`` by the 24-bit uniforms. Half as many hashes as one uniform pair per value.
    With fusion on (:mod:`._fused`) the field is one compiled loop: the same hash bits, with
    ``log``/``cos``/``sin`` that may round differently in the last bits (float32: <= 1e-6 absolute).

    Args:
        seed: int64 per-sample seeds, shape (B,).
        shape: per-sample field shape ``S``.
        stream: stream id.
        dtype: floating dtype of the result (computed in float64 for float64, float32 otherwise).
        device: where to compute; defaults to ``seed.device``.

    Returns:
        Tensor of shape (B, *S).

    Example:
        >>> field_normal(torch.tensor([1, 2]), (3, 5), stream_id("demo")).shape
        torch.Size([2, 3, 5])
    """
    n = _check_field_args(seed, shape)
    device = torch.device(seed.device if device is None else device)
    work = _work_dtype(dtype)
    batch = seed.shape[0]
    keys = _normal_keys(seed, stream, device)
    if fusion_enabled(device):
        return _normal_fused(torch.cat(keys, dim=1), n, work).to(dtype).view(batch, *shape)
    out = torch.empty((batch, n), dtype=dtype, device=device)
    for b0, b1, e0, e1 in _blocks(batch, n, device, align=2):
        out[b0:b1, e0:e1] = _normal_block(keys, b0, b1, e0, e1, work, device)
    return out.view(batch, *shape)


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
    k1, k2 = (k.reshape(-1, 1) for k in _keys_np(seed.detach().to("cpu", torch.int64).numpy(), [stream]))
    c = np.arange(2 * n, dtype=np.uint32).reshape(1, -1)
    with np.errstate(over="ignore"):
        h = _mix32_np(_mix32_np(c ^ k1) + k2)  # hash32(seed, c, stream) on the host
    hi = (h[:, 0::2] >> np.uint32(5)).astype(np.float64)  # 27 bits
    lo = (h[:, 1::2] >> np.uint32(6)).astype(np.float64)  # 26 bits
    return torch.from_numpy((hi * 67108864.0 + lo + 0.5) / 9007199254740992.0)


def combine_seeds(*parts: Tensor | int) -> Tensor:
    """Hash several ints / int64 tensors (broadcast together) into new int64 seeds.

    Used to derive per-sample seeds from ``(eval_seed, corruption, severity, sample_index)``.

    Example:
        >>> s = combine_seeds(0, stream_id("fog"), torch.arange(3))
        >>> s.dtype, s.shape, bool((s[0] != s[1]))
        (torch.int64, torch.Size([3]), True)
    """
    arrays = [
        p.detach().to("cpu", torch.int64).numpy() if isinstance(p, Tensor) else np.array(int(p), dtype=np.int64)
        for p in parts
    ]
    arrays = np.broadcast_arrays(*arrays)
    acc = np.full(arrays[0].shape, 0x2545F491, dtype=np.uint32)
    acc_hi = np.full(arrays[0].shape, 0x1B873593, dtype=np.uint32)
    with np.errstate(over="ignore"):
        for i, t in enumerate(arrays):
            golden = np.uint32((i * _GOLDEN) & MASK32)
            for word in _halves_np(t):
                acc = _mix32_np(acc ^ _mix32_np(word + golden))
                acc_hi = _mix32_np((acc_hi + acc) ^ word)
    out = (acc_hi.astype(np.uint64) << np.uint64(32)) | acc.astype(np.uint64)
    return torch.from_numpy(np.asarray(out, dtype=np.uint64).reshape(arrays[0].shape).view(np.int64))


def op_seeds(seed: Tensor | int, op: str, index: Tensor | int | None = None) -> Tensor:
    """The one recipe for replayable per-sample seeds of an op: ``combine_seeds(seed, stream_id(op)[, index])``.

    ``seed`` is an evaluation seed (with ``index`` the dataset indices: evaluation, export, the callbacks) or one seed
    per sample (the ``corrupt`` / ``perturb_sequence`` APIs); ``op`` names the op (``"fog"``, ``"sequence/rotate"``),
    so two ops never share random numbers. Corruptions derive their final seeds with :func:`severity_seeds`.

    Example:
        >>> bool((op_seeds(0, "fog", torch.arange(2)) == combine_seeds(0, stream_id("fog"), torch.arange(2))).all())
        True
    """
    parts = (seed, stream_id(op)) if index is None else (seed, stream_id(op), index)
    return combine_seeds(*parts)


def severity_seeds(base: Tensor, severity: Tensor) -> Tensor:
    """A corruption's per-sample seeds at a (B,) float64 severity: ``combine_seeds(base, round(1000 severity))``.

    The same sample at another severity (or a fractional one) gets independent random numbers; equal severities
    give equal seeds whatever the batch.
    """
    return combine_seeds(base, torch.round(severity * 1000).to(torch.int64))
