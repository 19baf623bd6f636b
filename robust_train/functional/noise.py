"""Noise corruptions (numerics): Gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise (spec 2.1-2.4).

Every op takes images ``(B, C, H, W)`` in [0, 1], per-sample arguments ``(B,)`` and per-sample int64 ``seed`` s;
the noise of element ``e`` (flat index ``c * H * W + y * W + x`` inside the sample) is a pure function of
``(seed, stream, e)`` through the counter-based hash of :mod:`robust_train.functional.rng`, so a sample's noise
never depends on the batch it is in, on the device or on the backend. The ops return the float output *before*
the 8-bit truncation that the corruption modules apply.

Algorithms (the original, ``imagenet_c.corruptions``, works on float64 ``x = img / 255``):

=============  ==================================================  ==========================================
op             original                                            here
=============  ==================================================  ==========================================
gaussian       ``clip(x + N(0, c^2), 0, 1)``                       ``clip(x + c z, 0, 1)``, ``z`` =
                                                                   :func:`~robust_train.functional.rng.field_normal`
shot           ``clip(Poisson(c x) / c, 0, 1)``                    :func:`poisson_table_sample` (``c`` up to
                                                                   1024) or :func:`poisson` (exact samplers)
impulse        skimage ``random_noise('s&p', amount=c)``: every    one uniform ``u`` per element:
               element flips with prob. ``c``, to 1 or 0 with      ``u < c/2`` -> 0, ``c/2 <= u < c`` -> 1
               prob. 1/2 each (channels independent)               (same joint distribution)
speckle        ``clip(x + x N(0, c^2), 0, 1)``                     ``clip(x + x (c z), 0, 1)``
=============  ==================================================  ==========================================

Gradients: Gaussian and speckle are exact given the field (``1`` resp. ``1 + c z`` inside the clip, 0 where it
clips, as ``torch.clamp``). Shot noise uses a reparameterised surrogate: ``d out / d x = 1`` where ``k / c <= 1``
(``E[k / c] = x``), 0 where clipped. Impulse noise: identity on untouched elements, 0 on replaced ones (the exact
derivative given the random field).

With fusion on (:mod:`robust_train.functional._fused`), Gaussian, speckle, impulse and shot noise each run as one
compiled loop (hash, transform, blend, clip); the eager code is the reference they are tested against.

Gaussian and speckle noise run through the dispatch point :func:`robust_train.functional._dispatch.hash_noise`
(``backend="auto" | "torch" | "kernel"``; Triton twin in ``kernels/hash_noise.py``). On the CPU the torch reference
generates and applies the noise in cache-sized blocks (one read of ``x``, one write of the output).
"""

from __future__ import annotations

import math
import threading
import zlib

import torch
from torch import Tensor

from . import _dispatch
from ._common import snap8
from ._fused import fused
from .checks import check_batch_param, check_image, per_sample
from .rng import (
    MASK32,
    _blocks,
    _hash_keys,
    _keys,
    _keys_many,
    hash_expr,
    stream_id,
    unit_expr,
)

__all__ = [
    "GAUSSIAN_STREAM",
    "IMPULSE_STREAM",
    "POISSON_CPU_BLOCK",
    "POISSON_INVERSION_MAX",
    "POISSON_ROUNDS",
    "SHOT_STREAM",
    "SPECKLE_STREAM",
    "gaussian_noise",
    "impulse_noise",
    "poisson",
    "shot_noise",
    "speckle_noise",
]

#: Default stream ids (equal to ``Corruption.stream("noise")`` of the modules).
GAUSSIAN_STREAM = stream_id("gaussian_noise/noise")
SHOT_STREAM = stream_id("shot_noise/noise")
IMPULSE_STREAM = stream_id("impulse_noise/noise")
SPECKLE_STREAM = stream_id("speckle_noise/noise")

#: Means below this use inversion, the others Hörmann's PTRS.
POISSON_INVERSION_MAX = 10.0
#: Rounds of PTRS proposals (each with its own pair of uniform streams) before the fallback.
POISSON_ROUNDS = 32
_INVERSION_MAX_STEPS = 256
#: Elements per CPU block of the Poisson sampler (its float64 temporaries then stay in cache).
POISSON_CPU_BLOCK = 1 << 18


# ------------------------------------------------------------------------------------------------------ helpers
def _seeds(seed: Tensor | int, batch: int) -> Tensor:
    if isinstance(seed, bool) or not isinstance(seed, (int, Tensor)):
        raise TypeError(f"seed: expected a (B,) int64 tensor or an int, got {type(seed).__name__}")
    t = torch.as_tensor(seed).reshape(-1)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"seed: expected an integer tensor, got dtype {t.dtype}")
    if t.numel() == 1:
        t = t.expand(batch)
    check_batch_param(t, batch, "seed")
    return t.to(torch.int64)


def _compute(x: Tensor) -> Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _substream(stream: int, tag: str) -> int:
    """An independent stream id derived from ``stream`` and a tag."""
    return zlib.crc32(f"{int(stream) & MASK32}/{tag}".encode()) & MASK32


# ------------------------------------------------------------------------------------------ hash noise reference
from ._hash_noise import _hash_noise_grad_reference, _hash_noise_reference  # noqa: E402,F401  (re-exported)


def gaussian_noise(
    x: Tensor, sigma: Tensor | float, seed: Tensor | int, *, stream: int = GAUSSIAN_STREAM, backend: str = "auto"
) -> Tensor:
    """Add independent Gaussian noise to every pixel and channel, then clip (spec 2.1).

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        sigma: noise standard deviation in [0, 1] units per sample, shape (B,) or scalar (>= 0).
        seed: per-sample int64 seeds, shape (B,) (or one int for the whole batch).
        stream: stream id of the noise field.
        backend: ``"auto"``, ``"torch"`` or ``"kernel"`` (:mod:`robust_train.functional._dispatch`).

    Returns:
        ``clip(x + sigma z, 0, 1)``, shape (B, C, H, W), same dtype as ``x`` (half precision is computed in float32).

    Raises:
        ValueError: bad shapes, negative ``sigma``, unknown backend.
        TypeError: non-float images or non-integer seeds.

    Example:
        >>> gaussian_noise(torch.rand(2, 3, 8, 8), torch.tensor([0.08, 0.38]), torch.tensor([0, 1])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    _dispatch.check_backend(backend)
    sig = per_sample(sigma, x.shape[0], "sigma", lo=0.0)
    xc = _compute(x)
    return _dispatch.hash_noise(xc, _seeds(seed, x.shape[0]), sig, 0, stream, backend).to(x.dtype)


def speckle_noise(
    x: Tensor, sigma: Tensor | float, seed: Tensor | int, *, stream: int = SPECKLE_STREAM, backend: str = "auto"
) -> Tensor:
    """Multiplicative Gaussian noise ``x + x n``, ``n ~ N(0, sigma^2)`` per element, then clip (spec 2.4).

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        sigma: standard deviation of the multiplicative noise per sample, shape (B,) or scalar (>= 0).
        seed: per-sample int64 seeds, shape (B,).
        stream: stream id of the noise field.
        backend: ``"auto"``, ``"torch"`` or ``"kernel"``.

    Returns:
        ``clip(x + x (sigma z), 0, 1)``, shape (B, C, H, W), same dtype as ``x``.

    Raises:
        ValueError: bad shapes, negative ``sigma``, unknown backend.

    Example:
        >>> speckle_noise(torch.rand(2, 3, 8, 8), 0.2, torch.tensor([0, 1])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    _dispatch.check_backend(backend)
    sig = per_sample(sigma, x.shape[0], "sigma", lo=0.0)
    xc = _compute(x)
    return _dispatch.hash_noise(xc, _seeds(seed, x.shape[0]), sig, 1, stream, backend).to(x.dtype)


def _uniform32(k1: Tensor, k2: Tensor, counter: Tensor) -> Tensor:
    """float64 uniforms from all 32 bits of the hash: ``(h + 2**31 + 0.5) / 2**32`` for the int32 pattern ``h``.

    Keys broadcast against ``counter``; values lie in ``[2**-33, 1 - 2**-33]`` and are exact in float64.
    """
    return _hash_keys(k1, k2, counter).to(torch.float64).mul_(2.0**-32).add_(0.5 + 2.0**-33)


class _Elements:
    """Where a set of elements of a (g, w) block lives: all of it (``idx is None``) or flat positions ``idx``."""

    def __init__(self, g: int, w: int, c0: int, idx: Tensor | None, device: torch.device) -> None:
        self.g, self.w, self.c0, self.idx, self.device = g, w, c0, idx, device

    def subset(self, i: Tensor) -> _Elements:
        """Elements ``i`` (positions into this set)."""
        return _Elements(self.g, self.w, self.c0, i if self.idx is None else self.idx[i], self.device)

    def uniforms(self, k1: Tensor, k2: Tensor) -> Tensor:
        """(S, M) uniforms of S streams with keys (S, g) for the M elements of the set."""
        if self.idx is None:
            counters = torch.arange(self.c0, self.c0 + self.w, dtype=torch.int32, device=self.device)
            u = _uniform32(k1.unsqueeze(-1), k2.unsqueeze(-1), counters.view(1, 1, -1))
            return u.view(k1.shape[0], -1)
        rows = torch.div(self.idx, self.w, rounding_mode="floor")
        counters = (self.idx - rows * self.w + self.c0).to(torch.int32)
        return _uniform32(k1[:, rows], k2[:, rows], counters.view(1, -1))


class _KeyTable:
    """Keys of every sub-stream the Poisson sampler may use, for a batch of seeds: rows ``inv``, ``u{r}``, ``v{r}``."""

    def __init__(self, seed: Tensor, stream: int, device: torch.device) -> None:
        tags = ["inv"] + [f"ptrs/{w}/{r}" for w in ("u", "v") for r in range(POISSON_ROUNDS)]
        self.row = {t: i for i, t in enumerate(tags)}
        k1, k2 = _keys_many(seed, [_substream(stream, t) for t in tags])
        self.k1, self.k2 = k1.to(device), k2.to(device)

    def get(self, tags: list[str]) -> tuple[Tensor, Tensor]:
        """(S, B) keys of the given tags."""
        rows = [self.row[t] for t in tags]
        if rows == list(range(rows[0], rows[0] + len(rows))):
            return self.k1[rows[0] : rows[0] + len(rows)], self.k2[rows[0] : rows[0] + len(rows)]
        idx = torch.tensor(rows, device=self.k1.device)
        return self.k1[idx], self.k2[idx]

    def columns(self, b0: int, b1: int) -> _KeyTable:
        """The table restricted to samples ``b0:b1``."""
        new = object.__new__(_KeyTable)
        new.row, new.k1, new.k2 = self.row, self.k1[:, b0:b1], self.k2[:, b0:b1]
        return new


def _poisson_inversion(lam: Tensor, u: Tensor) -> Tensor:
    """Smallest ``k`` with ``F(k; lam) >= u``: sequential search from 0 (1-D float64; ``lam`` below ~10).

    All elements take steps together; once fewer than a quarter are unresolved the survivors are compacted.
    """
    k = torch.zeros_like(lam)
    p = torch.exp(-lam)
    cdf = p.clone()
    idx: Tensor | None = None  # positions of the working set in ``k`` (None: everything)
    for step in range(1, _INVERSION_MAX_STEPS + 1):
        need = torch.gt(u, cdf)
        if step % 2 == 1 or idx is not None:
            alive = need & torch.gt(p, 0.0)  # p == 0: the cdf cannot grow any more (u within rounding of 1)
            count = int(alive.sum())
            if count == 0:
                break
            if count * 4 < need.numel():
                keep = torch.nonzero(alive).squeeze(1)
                idx = keep if idx is None else idx[keep]
                lam, u, p, cdf = lam[keep], u[keep], p[keep], cdf[keep]
                need = torch.ones_like(u, dtype=torch.bool)
        p.mul_(lam).mul_(1.0 / step)
        cdf.add_(p)
        if idx is None:
            k.add_(need.to(k.dtype))
        else:
            k.index_add_(0, idx, need.to(k.dtype))
    return k


class _Ptrs:
    """Hörmann's PTRS for means ``lam >= 10`` (1-D float64): the constants and the tests of one proposal."""

    def __init__(self, lam: Tensor) -> None:
        self.lam = lam
        self.b = lam.sqrt().mul_(2.53).add_(0.931)
        self.a = self.b * 0.02483 - 0.059
        self.vr = (self.b - 2.0).reciprocal_().mul_(-3.6224).add_(0.9277)

    def index(self, i: Tensor) -> _Ptrs:
        new = object.__new__(_Ptrs)
        new.lam, new.b, new.a, new.vr = self.lam[i], self.b[i], self.a[i], self.vr[i]
        return new

    def propose(self, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Proposal ``k``, ``us = 0.5 - |u - 0.5|`` and the quick-accept mask (u, v broadcast against ``lam``)."""
        u = u - 0.5
        us = u.abs().neg_().add_(0.5)
        k = torch.div(self.a, us).mul_(2.0).add_(self.b).mul_(u).add_(self.lam).add_(0.43).floor_()
        quick = torch.ge(us, 0.07) & torch.le(v, self.vr)
        return k, us, quick

    def accept(self, k: Tensor, v: Tensor, us: Tensor) -> Tensor:
        """The squeeze-rejection and the exact acceptance test for proposals that were not accepted quickly."""
        hopeless = torch.lt(k, 0.0) | (torch.lt(us, 0.013) & torch.gt(v, us))
        log_inv_alpha = torch.log((self.b - 3.4).reciprocal_().mul_(1.1328).add_(1.1239))
        lhs = v.log().add_(log_inv_alpha).sub_(torch.log(self.a / (us * us) + self.b))
        rhs = k * self.lam.log() - self.lam - torch.lgamma(k + 1.0)
        return ~hopeless & torch.le(lhs, rhs)


def _poisson_ptrs(lam: Tensor, where: _Elements, valid: Tensor | None, keys: _KeyTable) -> Tensor:
    """PTRS samples for the 1-D means ``lam`` of the elements ``where`` (``valid``: the entries that count)."""
    p = _Ptrs(lam)
    result = torch.floor(lam)  # fallback for elements that reject every round
    k1 = torch.stack([keys.k1[keys.row["ptrs/u/0"]], keys.k1[keys.row["ptrs/v/0"]]])
    k2 = torch.stack([keys.k2[keys.row["ptrs/u/0"]], keys.k2[keys.row["ptrs/v/0"]]])
    u, v = where.uniforms(k1, k2)
    k, us, quick = p.propose(u, v)
    result = torch.where(quick, k, result)
    rest = ~quick if valid is None else ~quick & valid
    ridx = torch.nonzero(rest).squeeze(1)
    if ridx.numel():
        sub = p.index(ridx)
        kk = k[ridx]
        acc = sub.accept(kk, v[ridx], us[ridx])
        result[ridx[acc]] = kk[acc]
        rej = torch.nonzero(~acc).squeeze(1)
        if rej.numel():
            result[ridx[rej]] = _ptrs_rounds(sub.index(rej), where.subset(ridx[rej]), keys)
    return result


#: Rounds after round 0 are evaluated in groups (one vectorised pass per group, first accepting round wins).
_ROUND_GROUPS: tuple[tuple[int, int], ...] = ((1, 2), (2, 6), (6, 1 << 30))


def _ptrs_rounds(p: _Ptrs, where: _Elements, keys: _KeyTable) -> Tensor:
    """PTRS rounds 1 .. POISSON_ROUNDS - 1 for the elements rejected in round 0.

    Rounds are evaluated a group at a time for all elements still rejecting; an element takes the proposal of its
    first accepting round, exactly as if the rounds ran one after the other.
    """
    out = torch.floor(p.lam)
    pos = torch.arange(out.numel(), device=out.device)
    for r0, r1 in _ROUND_GROUPS:
        r1 = min(r1, POISSON_ROUNDS)
        if r0 >= r1 or not pos.numel():
            break
        sub = p if r0 == 1 else p.index(pos)
        k1, k2 = keys.get([f"ptrs/{w}/{r}" for w in ("u", "v") for r in range(r0, r1)])
        uv = (where if r0 == 1 else where.subset(pos)).uniforms(k1, k2)  # (2 * rounds, M)
        u, v = uv[: r1 - r0], uv[r1 - r0 :]
        k, us, quick = sub.propose(u, v)
        accept = quick | sub.accept(k, v, us)
        first = torch.argmax(accept.to(torch.uint8), dim=0)  # first accepting round (0 if none)
        hit = accept.any(dim=0)
        value = k.gather(0, first.view(1, -1))[0]
        out[pos[hit]] = value[hit]
        pos = pos[~hit]
    return out


def _poisson_block(mu: Tensor, keys: _KeyTable, c0: int) -> Tensor:
    """Poisson samples for a (g, w) block of means: sample keys ``keys`` (g columns), counters ``c0 .. c0 + w - 1``.

    Each branch runs on the whole block (masked) when most elements need it, else on the gathered subset; both give
    the same values because every uniform is a function of the element's (sample, counter) only.
    """
    g, w = mu.shape
    flat = mu.reshape(-1)
    out = torch.zeros_like(flat)
    full = _Elements(g, w, c0, None, mu.device)
    for branch in ("inversion", "ptrs"):
        mask = (flat > 0) & (flat < POISSON_INVERSION_MAX) if branch == "inversion" else flat >= POISSON_INVERSION_MAX
        count = int(mask.sum())
        if count == 0:
            continue
        if 2 * count >= flat.numel():
            where, valid = full, mask
            lam = torch.where(mask, flat, 0.0 if branch == "inversion" else POISSON_INVERSION_MAX)
        else:
            idx = torch.nonzero(mask).squeeze(1)
            where, valid, lam = full.subset(idx), None, flat[idx]
        if branch == "inversion":
            k = _poisson_inversion(lam, where.uniforms(*keys.get(["inv"]))[0])
        else:
            k = _poisson_ptrs(lam, where, valid, keys)
        if where.idx is None:
            out = torch.where(mask, k, out)
        else:
            out[where.idx] = k
    return out.view(g, w)


def poisson(rate: Tensor, seed: Tensor | int, stream: int = SHOT_STREAM) -> Tensor:
    """Exact-in-distribution Poisson samples from the counter-based hash (replayable, batch independent).

    Element ``e`` of sample ``b`` (flat index inside the sample) draws ``k ~ Poisson(rate[b, e])``:

    * ``rate == 0``: ``k = 0``.
    * ``0 < rate < 10``: inversion, the smallest ``k`` with ``F(k) >= u`` for one 32-bit uniform ``u`` (sub-stream
      ``inv``), cdf summed in float64.
    * ``rate >= 10``: Hörmann's PTRS (W. Hörmann, "The transformed rejection method for generating Poisson random
      variables", Insurance: Mathematics and Economics 12, 1993): up to :data:`POISSON_ROUNDS` = 32 proposal
      rounds, round ``r`` with its own pair of uniform sub-streams ``ptrs/u/r``, ``ptrs/v/r`` at the element's
      counter. A round rejects with probability about 0.25 at ``rate = 10`` (0.248 measured), 0.18 at 30, 0.15 at
      100 and 0.12 at 700, so all 32 rounds reject with probability below 0.25**32 ~ 5e-20 per element; such an
      element gets ``floor(rate)`` (the mode) instead of a sample.

    The only other departures from the exact law are float64 rounding and the 2**-32 granularity of the
    uniforms. A round is evaluated only for the elements still rejecting, which gives the same values as evaluating
    every round for every element, so the result does not depend on the batch or on the CPU blocking.

    Args:
        rate: non-negative means, shape (B, *S), float.
        seed: per-sample int64 seeds, shape (B,).
        stream: stream id.

    Returns:
        float64 counts, shape (B, *S).

    Raises:
        ValueError: negative, infinite or NaN rates, or bad shapes.

    Example:
        >>> poisson(torch.full((2, 3, 4), 25.0), torch.tensor([0, 1])).shape
        torch.Size([2, 3, 4])
    """
    if not isinstance(rate, Tensor) or not rate.is_floating_point() or rate.dim() < 1:
        raise TypeError(f"rate: expected a float tensor of shape (B, ...), got {rate!r:.80}")
    batch = rate.shape[0]
    seeds = _seeds(seed, batch)
    mu = rate.detach().to(torch.float64).reshape(batch, -1)
    if mu.numel() and not torch.compiler.is_compiling():
        lo, hi = float(mu.min()), float(mu.max())
        if not (lo >= 0.0 and hi < math.inf):
            raise ValueError(f"rate: expected finite non-negative means, got range [{lo:.4g}, {hi:.4g}]")
    out = torch.empty_like(mu)
    keys = _KeyTable(seeds, stream, mu.device)
    for b0, b1, c0, c1 in _blocks(batch, mu.shape[1], mu.device, block=POISSON_CPU_BLOCK):
        out[b0:b1, c0:c1] = _poisson_block(mu[b0:b1, c0:c1], keys.columns(b0, b1), c0)
    return out.view(rate.shape)


# ------------------------------------------------------------------------------- table Poisson sampler (shot noise)
#: Per-sample means ``lam`` (photon scales) up to this use :func:`poisson_table_sample`; larger ones :func:`poisson`.
POISSON_TABLE_MAX = 1024
#: Rows of the alias table built together (they share one column count).
_TABLE_GROUP = 64
#: Unrolled inversion steps for the fractional part ``delta`` in [0, 1): ``P(Poisson(delta) >= 12) < 2.1e-9``,
#: below the 2**-24 granularity of the uniform that drives the inversion, so no reachable value is cut off.
_RESIDUAL_STEPS = 12
_TABLE_LOCK = threading.Lock()
_TABLES: dict[tuple[str, int | None], tuple[Tensor, Tensor, Tensor, Tensor]] = {}


def _table_columns(row_max: int) -> int:
    """Columns of the alias rows of a group whose largest integer mean is ``row_max``: mean + 10 sd + 24."""
    return int(row_max + math.ceil(10.0 * math.sqrt(row_max)) + 24)


def _alias_group(means: Tensor, columns: int) -> tuple[Tensor, Tensor]:
    """Walker alias tables of Poisson(mean) truncated to ``columns`` values (Robin Hood construction, float64).

    The truncated tail has probability below 1e-20 (10 standard deviations plus 24) and is renormalised away.
    Returns ``(threshold, alias)`` of shape (R, columns): column ``j`` yields ``j`` when a uniform is below
    ``threshold[j]``, else ``alias[j]``. Exact: every column carries mass 1/columns, split between itself and
    one donor, which is Walker's method; each step settles the column furthest below the mean from the one furthest
    above.
    """
    k = torch.arange(columns, dtype=torch.float64)
    lam = means.to(torch.float64).view(-1, 1)
    logp = torch.xlogy(k.view(1, -1), lam) - lam - torch.lgamma(k + 1.0).view(1, -1)
    p = torch.exp(logp)
    p = p / p.sum(dim=1, keepdim=True)
    q = p * columns
    rows = q.shape[0]
    thr = torch.ones(rows, columns, dtype=torch.float64)
    alias = torch.arange(columns, dtype=torch.int64).view(1, -1).repeat(rows, 1)
    done = torch.zeros(rows, columns, dtype=torch.bool)
    ar = torch.arange(rows)
    for _ in range(columns - 1):
        i = q.masked_fill(done, math.inf).argmin(dim=1)
        j = q.masked_fill(done, -math.inf).argmax(dim=1)
        qi = q[ar, i]
        thr[ar, i] = qi.clamp(max=1.0)
        alias[ar, i] = j
        done[ar, i] = True
        q[ar, j] -= 1.0 - qi
    return thr, alias


def _poisson_tables(rows_needed: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Alias tables of Poisson(m) for integer means ``m = 0 .. >= rows_needed - 1``, cached per device.

    Returns flat ``threshold`` (float32) and ``alias`` (int32) arrays and per-row ``offset`` / ``columns`` (int64).
    Built once per process and device, growing by groups of :data:`_TABLE_GROUP` rows when larger means appear
    (ImageNet-224 needs one group, about 30 ms; the CIFAR table up to mean 500 about a second).
    """
    key = (device.type, device.index)
    with _TABLE_LOCK:
        cached = _TABLES.get(key)
        if cached is not None and cached[2].numel() >= rows_needed:
            return cached
        groups = -(-max(rows_needed, 1) // _TABLE_GROUP)
        thr_parts, alias_parts, offsets, cols = [], [], [], []
        start = 0
        for g in range(groups):
            means = torch.arange(g * _TABLE_GROUP, (g + 1) * _TABLE_GROUP, dtype=torch.float64)
            c = _table_columns((g + 1) * _TABLE_GROUP - 1)
            thr, alias = _alias_group(means, c)
            thr_parts.append(thr.reshape(-1))
            alias_parts.append(alias.reshape(-1))
            offsets.append(start + c * torch.arange(_TABLE_GROUP, dtype=torch.int64))
            cols.append(torch.full((_TABLE_GROUP,), c, dtype=torch.int64))
            start += c * _TABLE_GROUP
        tables = (
            torch.cat(thr_parts).to(device=device, dtype=torch.float32),
            torch.cat(alias_parts).to(device=device, dtype=torch.int32),
            torch.cat(offsets).to(device),
            torch.cat(cols).to(device),
        )
        _TABLES[key] = tables
        return tables


@fused
def _poisson_table_apply(
    x: Tensor, lam: Tensor, keys: Tensor, thr: Tensor, alias: Tensor, offset: Tensor, columns: Tensor, clip: bool
) -> Tensor:
    """``clip(Poisson(lam x) / lam, 0, 1)`` for (B, N) ``x`` with the table sampler (one loop when fused).

    ``lam``: (B, 1) float64; ``keys``: (B, 6) int32 keys of the column, threshold and residual streams. 8-bit
    values are snapped to ``k / 255.`` in float64 first (``_common.snap8``), so float16/32/64 copies of an 8-bit image
    get the same means, hence the same draws.
    """
    n = x.shape[1]
    counters = torch.arange(n, dtype=torch.int32, device=x.device).view(1, n)
    mu = snap8(x) * lam  # 8-bit values exactly k / 255.
    base = torch.floor(mu)
    delta = (mu - base).to(torch.float32)
    row = base.to(torch.int64)
    h = hash_expr(keys[:, 0:1], keys[:, 1:2], counters).to(torch.int64) & MASK32
    col = (h * columns[row]) >> 32
    idx = offset[row] + col
    u = unit_expr(hash_expr(keys[:, 2:3], keys[:, 3:4], counters), torch.float32)
    k = torch.where(u < thr[idx], col, alias[idx].to(torch.int64)).to(torch.float64)
    v = unit_expr(hash_expr(keys[:, 4:5], keys[:, 5:6], counters), torch.float32)
    p = torch.exp(-delta)
    cdf = p
    for j in range(1, _RESIDUAL_STEPS + 1):
        k = k + (v > cdf).to(torch.float64)
        p = p * delta * (1.0 / j)
        cdf = cdf + p
    y = k / lam
    return (y.clamp(0.0, 1.0) if clip else y).to(x.dtype)


def poisson_table_sample(
    x: Tensor, lam: Tensor, seed: Tensor, stream: int = SHOT_STREAM, *, clip: bool = True
) -> Tensor:
    """Shot noise ``clip(Poisson(lam x) / lam, 0, 1)`` with the table sampler (no autograd, no checks).

    ``Poisson(mu) = Poisson(floor(mu)) + Poisson(mu - floor(mu))`` (independent parts; Poisson laws add): the
    integer part is drawn with Walker's alias method from a per-process table of every integer mean up to the
    largest needed (two hashes, two table reads per element), the fractional part by inversion unrolled
    :data:`_RESIDUAL_STEPS` times (a third hash). Exact in distribution up to float32 thresholds (2**-24), 32-bit
    column selection (bias below 2**-22) and a truncated tail of probability below 1e-20. Every quantity is a
    function of the element's ``(seed, stream, counter)`` and mean only.

    Args:
        x: (B, C, H, W) float32/float64 in [0, 1].
        lam: (B,) photon scales, each in (0, :data:`POISSON_TABLE_MAX`].
        seed: (B,) int64.
        stream: stream id (three sub-streams are derived from it).
        clip: clip to [0, 1] (``False`` returns ``k / lam``).

    Returns:
        Tensor like ``x``.
    """
    batch = x.shape[0]
    lam64 = lam.to(device=x.device, dtype=torch.float64).view(-1, 1)
    rows = int(math.floor(float(lam.max()))) + 1 if batch else 1
    thr, alias, offset, columns = _poisson_tables(rows, x.device)
    k1, k2 = _keys_many(seed, [_substream(stream, t) for t in ("table/column", "table/threshold", "table/residual")])
    keys = torch.stack([k1[0], k2[0], k1[1], k2[1], k1[2], k2[2]], dim=1).to(x.device).contiguous()
    xf = x.reshape(batch, -1).clamp(0.0, 1.0)
    return _poisson_table_apply(xf, lam64, keys, thr, alias, offset, columns, clip).view(x.shape)


def shot_noise(x: Tensor, lam: Tensor | float, seed: Tensor | int, *, stream: int = SHOT_STREAM) -> Tensor:
    """Poisson (photon) noise: ``k ~ Poisson(lam x)`` per pixel and channel, output ``clip(k / lam, 0, 1)`` (spec 2.2).

    8-bit-valued inputs are snapped to exactly ``k / 255.`` in float64 first, so the means (and the draws) are those
    of the original for float16, float32 and float64 images alike.

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        lam: photon scale per sample, shape (B,) or scalar (> 0; larger = less noise).
        seed: per-sample int64 seeds, shape (B,).
        stream: stream id (sub-streams of it feed :func:`poisson`).

    Returns:
        shape (B, C, H, W), same dtype as ``x``. Gradient: the surrogate ``d out / d x = 1`` where ``k / lam <= 1``.

    Raises:
        ValueError: bad shapes or ``lam <= 0``.

    Example:
        >>> shot_noise(torch.rand(2, 3, 8, 8), torch.tensor([60.0, 3.0]), torch.tensor([0, 1])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    batch = x.shape[0]
    lam_t = per_sample(lam, batch, "lam", lo=1e-12)
    seeds = _seeds(seed, batch)
    xc = _compute(x)
    table = lam_t.to("cpu") <= POISSON_TABLE_MAX
    grad = torch.is_grad_enabled() and xc.requires_grad  # keep k / lam unclipped so the clip masks the gradient
    if bool(table.all()) and x[0].numel() < 2**31:
        y = poisson_table_sample(xc.detach(), lam_t, seeds, stream, clip=not grad)
    else:  # per sample: table sampler up to POISSON_TABLE_MAX, the general sampler above
        y = torch.empty_like(xc)
        lam_dev = lam_t.to(x.device)
        for use_table, idx in ((True, torch.nonzero(table).squeeze(1)), (False, torch.nonzero(~table).squeeze(1))):
            if not idx.numel():
                continue
            xs, ls, ss = xc.detach()[idx.to(x.device)], lam_dev[idx.to(x.device)], seeds[idx.to(seeds.device)]
            if use_table:
                y[idx.to(x.device)] = poisson_table_sample(xs, ls, ss, stream, clip=False)
            else:
                l64 = ls.to(torch.float64).view(-1, 1, 1, 1)
                y[idx.to(x.device)] = poisson(snap8(xs).mul_(l64), ss, stream).div_(l64).to(xc.dtype)
    if grad:
        y = y + (xc - xc.detach())  # surrogate gradient 1; the value stays exactly k / lam
    return y.clamp(0.0, 1.0).to(x.dtype)


def impulse_noise(x: Tensor, amount: Tensor | float, seed: Tensor | int, *, stream: int = IMPULSE_STREAM) -> Tensor:
    """Salt-and-pepper noise on every channel independently (skimage ``random_noise('s&p')``, spec 2.3).

    Element ``e`` with uniform ``u`` (stream ``stream``): ``u < amount / 2`` -> 0 (pepper),
    ``amount / 2 <= u < amount`` -> 1 (salt), otherwise unchanged. That is the original's "flip with probability
    ``amount``, salt or pepper with probability 1/2" from a single uniform.

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        amount: fraction of replaced elements per sample, shape (B,) or scalar, in [0, 1].
        seed: per-sample int64 seeds, shape (B,).
        stream: stream id.

    Returns:
        shape (B, C, H, W), same dtype. Gradient 1 on untouched elements, 0 on replaced ones.

    Raises:
        ValueError: bad shapes or ``amount`` outside [0, 1].

    Example:
        >>> impulse_noise(torch.rand(2, 3, 8, 8), 0.09, torch.tensor([0, 1])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    batch = x.shape[0]
    amt = per_sample(amount, batch, "amount", lo=0.0, hi=1.0).to(device=x.device, dtype=torch.float32)
    if batch == 0 or x[0].numel() == 0:
        return x.clone()
    if x[0].numel() >= 2**31:
        raise ValueError(f"a random field of {x[0].numel()} elements per sample exceeds the 2**31 counter range")
    k1, k2 = (k.to(x.device).view(-1, 1) for k in _keys(_seeds(seed, batch), stream))
    return _impulse_apply(x, k1, k2, amt.view(-1, 1))


@fused
def _impulse_apply(x: Tensor, k1: Tensor, k2: Tensor, amount: Tensor) -> Tensor:
    """Salt and pepper from the uniform field of ``(k1, k2)`` (one compiled loop when fusion is on).

    ``u`` is exactly :func:`~robust_train.functional.rng.field_uniform` (float32) of the sample's keys.
    """
    batch, n = x.shape[0], x[0].numel()
    xf = x.reshape(batch, n)
    counters = torch.arange(n, dtype=torch.int32, device=x.device).view(1, n)
    u = unit_expr(hash_expr(k1, k2, counters), torch.float32)
    pepper = u < amount * 0.5
    salt = (u < amount) & ~pepper
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    one = torch.ones((), dtype=x.dtype, device=x.device)
    return torch.where(pepper, zero, torch.where(salt, one, xf)).view(x.shape)
