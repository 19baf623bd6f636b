"""The AugMix operations as PIL computes them on 8-bit images, batched on the device (layer 1).

The AugMix reference code (``augmentations.py`` of google-research/augmix) applies PIL operations to ``uint8``
images, so every chain step is rounded to 8 bits. The functions here reproduce Pillow's arithmetic (its C code in
``libImaging``, its Python code in ``ImageOps`` / ``ImageEnhance`` / ``Image.rotate``) on *levels*: float32 tensors
holding integers in ``[0, 255]`` (exact in float32), shape (B, C, H, W), one argument per sample:

==============  =========================================================================================
op              Pillow's rule, reproduced
==============  =========================================================================================
autocontrast    per channel ``lo``/``hi`` = lowest/highest level present; ``int(v * s + o)`` with
                ``s = 255.0 / (hi - lo)``, ``o = -lo * s`` in float64, clipped; identity when ``hi <= lo``
equalize        per channel histogram ``h``; ``step = (N - h[hi]) // 255``; ``lut[i] = (step // 2 +
                sum(h[:i])) // step`` (clipped to 255); identity for one level or ``step == 0``
posterize       ``v & ~(2 ** (8 - bits) - 1)``
solarize        ``v`` if ``v < threshold`` else ``255 - v``
affine ops      ``Image.transform(AFFINE, BILINEAR)``: output pixel ``(x, y)`` reads the input at
                ``(a0 (x+.5) + a1 (y+.5) + a2, a3 (x+.5) + a4 (y+.5) + a5)`` (float64); outside
                ``[0, W) x [0, H)`` black; inside bilinear on the pixel centres with the edge pixel repeated
                (one pixel ring) and the result truncated to an integer
rotate          the matrix of ``Image.rotate`` (angle taken ``% 360``, cos/sin rounded to 15 decimals)
blend ops       ``ImageEnhance``: ``Image.blend(degenerate, v, f)``: ``int(d + f (v - d))`` in float32
                (``f`` cast to float32), clipped to [0, 255]
color           degenerate = luma ``(19595 R + 38470 G + 7471 B + 32768) >> 16`` (``convert("L")``)
contrast        degenerate = ``int(mean(L) + 0.5)``, one grey level per image
brightness      degenerate = 0
sharpness       degenerate = 3x3 ``SMOOTH`` filter (1 1 1 / 1 5 1 / 1 1 1, / 13) in float32, ``+ 0.5``,
                truncated; outermost rows and columns copied (images under 3x3 copied whole)
==============  =========================================================================================

No host reads: the arguments come from host parameters; images stay on their device. Per-sample arguments are
broadcast, so every op issues the same ATen ops at any batch size (including an empty one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import check_batch_param, check_shape

__all__ = [
    "affine8",
    "autocontrast8",
    "blend8",
    "brightness8",
    "color8",
    "contrast8",
    "equalize8",
    "from_levels",
    "pil_rotate_matrix",
    "posterize8",
    "sharpness8",
    "solarize8",
    "to_levels",
]


def to_levels(x: Tensor) -> Tensor:
    """``[0, 1]`` images to 8-bit levels ``round(255 x)`` as float32 (what ``ToPILImage`` of the batch would hold).

    Example:
        >>> to_levels(torch.tensor([[[[0.0, 0.5, 1.0]]]])).tolist()
        [[[[0.0, 128.0, 255.0]]]]
    """
    return torch.round(x.to(torch.float32).clamp(0.0, 1.0) * 255.0)


def from_levels(v: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """8-bit levels back to ``[0, 1]`` images (``ToTensor``: ``v / 255``) in ``dtype``.

    Example:
        >>> from_levels(torch.tensor([0.0, 255.0])).tolist()
        [0.0, 1.0]
    """
    return (v / 255.0).to(dtype)


def _sample_arg(v: Tensor | float, x: Tensor, name: str, dtype: torch.dtype) -> Tensor:
    """A scalar or (B,) argument as a (B, 1, 1, 1) tensor on ``x``'s device."""
    t = torch.as_tensor(v)
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    check_batch_param(t, x.shape[0], name)
    return t.to(device=x.device, dtype=dtype).view(-1, 1, 1, 1)


def _check_levels(v: Tensor, name: str = "v") -> None:
    """Levels are a float (B, C, H, W) tensor; an empty batch is allowed (a host-planned subset may be empty)."""
    check_shape(v, "B C H W", name)
    if not torch.is_floating_point(v):
        raise TypeError(f"{name}: expected float levels in [0, 255] (see to_levels), got dtype {v.dtype}")


def _trunc8(t: Tensor) -> Tensor:
    """C's cast of a float to ``UINT8`` after Pillow's clipping: truncate, then clip to [0, 255]."""
    return torch.trunc(t).clamp(0.0, 255.0).to(torch.float32)


# ---------------------------------------------------------------------------------------------- lookup ops
def autocontrast8(v: Tensor) -> Tensor:
    """``ImageOps.autocontrast(img)`` (no cutoff) on levels, per image and channel.

    Args:
        v: levels, shape (B, C, H, W), float32 integers in [0, 255].

    Returns:
        Levels, same shape.

    Example:
        >>> autocontrast8(torch.tensor([[[[10.0, 20.0, 30.0]]]])).tolist()
        [[[[0.0, 127.0, 255.0]]]]
    """
    _check_levels(v)
    lo = v.amin(dim=(-2, -1), keepdim=True).to(torch.float64)
    hi = v.amax(dim=(-2, -1), keepdim=True).to(torch.float64)
    flat = hi <= lo
    # a tensor / tensor division: ``255.0 / tensor`` multiplies by a reciprocal, one ulp off Python's ``255.0 / n``
    scale = torch.full_like(hi, 255.0) / torch.where(flat, torch.ones_like(hi), hi - lo)
    offset = -lo * scale
    out = _trunc8(v.to(torch.float64) * scale + offset)
    return torch.where(flat, v, out)


def equalize8(v: Tensor) -> Tensor:
    """``ImageOps.equalize(img)`` on levels, per image and channel (Pillow's lookup table, integer arithmetic).

    Args:
        v: levels, shape (B, C, H, W), float32 integers in [0, 255].

    Returns:
        Levels, same shape.

    Example:
        >>> equalize8((torch.arange(1024) // 256 * 10.0).view(1, 1, 4, 256)).unique().tolist()
        [0.0, 85.0, 171.0, 255.0]
    """
    _check_levels(v)
    b, c, h, w = v.shape
    idx = v.reshape(b * c, h * w).to(torch.int64).clamp(0, 255)
    hist = torch.zeros(b * c, 256, dtype=torch.int64, device=v.device)
    hist.scatter_add_(1, idx, torch.ones_like(idx))
    levels = (hist > 0).sum(dim=1, keepdim=True)
    top = hist.gather(1, idx.amax(dim=1, keepdim=True))  # count of the highest level present
    step = (h * w - top) // 255
    keep = (levels <= 1) | (step == 0)
    safe = torch.where(keep, torch.ones_like(step), step)
    lut = ((step // 2 + hist.cumsum(dim=1) - hist) // safe).clamp(max=255)
    out = torch.where(keep, idx, lut.gather(1, idx))
    return out.to(torch.float32).view(b, c, h, w)


def posterize8(v: Tensor, bits: Tensor | int) -> Tensor:
    """``ImageOps.posterize(img, bits)``: keep the top ``bits`` bits of every level.

    Args:
        v: levels, shape (B, C, H, W).
        bits: per-sample bits kept, shape (B,) integers in [0, 8] (or one int).

    Returns:
        Levels, same shape.

    Example:
        >>> posterize8(torch.tensor([[[[255.0, 77.0]]]]), torch.tensor([2])).tolist()
        [[[[192.0, 64.0]]]]
    """
    _check_levels(v)
    bt = torch.as_tensor(bits)
    if bt.dim() == 0:
        bt = bt.expand(v.shape[0])
    check_batch_param(bt, v.shape[0], "bits")
    bt = torch.round(bt.to(torch.float64)).to(torch.int64).clamp(0, 8)
    mask = (256 - torch.pow(2, 8 - bt)).to(device=v.device).view(-1, 1, 1, 1)
    return torch.bitwise_and(v.to(torch.int64), mask).to(torch.float32)


def solarize8(v: Tensor, threshold: Tensor | float) -> Tensor:
    """``ImageOps.solarize(img, threshold)``: invert every level at or above ``threshold``.

    Args:
        v: levels, shape (B, C, H, W).
        threshold: per-sample threshold, shape (B,), in levels (256 inverts nothing).

    Returns:
        Levels, same shape.

    Example:
        >>> solarize8(torch.tensor([[[[100.0, 200.0]]]]), torch.tensor([128.0])).tolist()
        [[[[100.0, 55.0]]]]
    """
    _check_levels(v)
    t = _sample_arg(threshold, v, "threshold", torch.float32)
    return torch.where(v < t, v, 255.0 - v)


# ---------------------------------------------------------------------------------------------- blends
def blend8(degenerate: Tensor, v: Tensor, factor: Tensor | float) -> Tensor:
    """``Image.blend(degenerate, v, factor)`` as Pillow computes it on 8-bit bands (float32, truncated, clipped).

    Args:
        degenerate: levels broadcastable to ``v``.
        v: levels, shape (B, C, H, W).
        factor: per-sample factor, shape (B,) (cast to float32 as Pillow does).

    Returns:
        Levels, same shape as ``v``.

    Example:
        >>> blend8(torch.zeros(1, 1, 1, 2), torch.tensor([[[[100.0, 255.0]]]]), torch.tensor([1.5])).tolist()
        [[[[150.0, 255.0]]]]
    """
    f = _sample_arg(factor, v, "factor", torch.float32)
    d = degenerate.to(torch.float32)
    return _trunc8(d + f * (v - d))


def _luma8(v: Tensor) -> Tensor:
    """``convert("L")`` of RGB levels: ``(19595 R + 38470 G + 7471 B + 0x8000) >> 16`` (Pillow's integer luma)."""
    if v.shape[1] == 1:
        return v
    if v.shape[1] != 3:
        raise ValueError(f"v: expected 1 or 3 channels for a luma blend, got shape {tuple(v.shape)}")
    r, g, b = v.to(torch.int64).unbind(dim=1)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).unsqueeze(1).to(torch.float32)


def color8(v: Tensor, factor: Tensor | float) -> Tensor:
    """``ImageEnhance.Color(img).enhance(factor)``: blend with the 8-bit luma image (identity for one channel).

    Example:
        >>> color8(torch.tensor([[[[200.0]], [[100.0]], [[0.0]]]]), torch.tensor([0.0])).view(-1).tolist()
        [118.0, 118.0, 118.0]
    """
    _check_levels(v)
    return blend8(_luma8(v), v, factor)


def contrast8(v: Tensor, factor: Tensor | float) -> Tensor:
    """``ImageEnhance.Contrast(img).enhance(factor)``: blend with the grey level ``int(mean(L) + 0.5)``.

    The mean is taken with integers, ``(2 sum + N) // (2 N)``, which equals Pillow's float64 ``int(sum / N + 0.5)``
    (neighbouring fractions differ by ``1 / N``, far above float64's rounding).

    Example:
        >>> contrast8(torch.tensor([[[[0.0, 101.0]]]]), torch.tensor([0.0])).tolist()
        [[[[51.0, 51.0]]]]
    """
    _check_levels(v)
    n = v.shape[-2] * v.shape[-1]
    total = _luma8(v).to(torch.int64).sum(dim=(1, 2, 3), keepdim=True)
    mean = ((2 * total + n) // (2 * n)).to(torch.float32)
    return blend8(mean, v, factor)


def brightness8(v: Tensor, factor: Tensor | float) -> Tensor:
    """``ImageEnhance.Brightness(img).enhance(factor)``: blend with black.

    Example:
        >>> brightness8(torch.tensor([[[[100.0, 3.0]]]]), torch.tensor([0.5])).tolist()
        [[[[50.0, 1.0]]]]
    """
    _check_levels(v)
    return blend8(torch.zeros((), dtype=torch.float32, device=v.device), v, factor)


_SMOOTH_SIDE = 1.0 / 13.0
_SMOOTH_CENTRE = 5.0 / 13.0


def _smooth8(v: Tensor) -> Tensor:
    """``img.filter(ImageFilter.SMOOTH)`` on levels: Pillow's float32 3x3 sum, in its order, borders copied."""
    h, w = v.shape[-2], v.shape[-1]
    if h < 3 or w < 3:
        return v
    side = torch.tensor(_SMOOTH_SIDE, dtype=torch.float32, device=v.device)
    centre = torch.tensor(_SMOOTH_CENTRE, dtype=torch.float32, device=v.device)

    def row(r: Tensor, mid: Tensor) -> Tensor:  # left * k0 + centre * k1 + right * k2, left to right
        return (r[..., :-2] * side + r[..., 1:-1] * mid) + r[..., 2:] * side

    acc = torch.full_like(v[..., 1:-1, 1:-1], 0.5)
    acc = acc + row(v[..., 2:, :], side)  # the row below is summed first, then the row itself, then the one above
    acc = acc + row(v[..., 1:-1, :], centre)
    acc = acc + row(v[..., :-2, :], side)
    inner = _trunc8(acc)
    return F.pad(inner, (1, 1, 1, 1)) + v - F.pad(v[..., 1:-1, 1:-1], (1, 1, 1, 1))


def sharpness8(v: Tensor, factor: Tensor | float) -> Tensor:
    """``ImageEnhance.Sharpness(img).enhance(factor)``: blend with the ``SMOOTH``-filtered image.

    Example:
        >>> sharpness8(torch.full((1, 1, 4, 4), 7.0), torch.tensor([2.0])).unique().tolist()
        [7.0]
    """
    _check_levels(v)
    return blend8(_smooth8(v), v, factor)


# ---------------------------------------------------------------------------------------------- geometry
def pil_rotate_matrix(degrees: Tensor | float, height: int, width: int) -> Tensor:
    """The output->input matrix ``Image.rotate(degrees)`` passes to ``Image.transform`` (host, float64, (B, 2, 3)).

    Pillow takes the angle ``% 360``, rounds ``cos``/``sin`` of its negated radians to 15 decimals and centres the
    rotation at ``(W / 2, H / 2)``. The matrix is built with Python's ``math`` for every distinct angle (one
    ``unique`` call, so the number of tensor ops does not depend on the batch).

    Example:
        >>> pil_rotate_matrix(torch.tensor([0.0, 90.0]), 4, 4)[:, :, 2].tolist()
        [[0.0, 0.0], [4.0, 0.0]]
    """
    deg = torch.as_tensor(degrees, dtype=torch.float64).reshape(-1).cpu()
    values, inverse = torch.unique(deg, return_inverse=True)
    rows = []
    cx, cy = width / 2.0, height / 2.0
    for angle in values.tolist():  # distinct host angles, not samples
        a = -math.radians(angle % 360.0)
        m = [round(math.cos(a), 15), round(math.sin(a), 15), 0.0, round(-math.sin(a), 15), round(math.cos(a), 15)]
        c = m[0] * -cx + m[1] * -cy + 0.0 + cx
        f = m[3] * -cx + m[4] * -cy + 0.0 + cy
        rows.append([m[0], m[1], c, m[3], m[4], f])
    table = torch.tensor(rows, dtype=torch.float64).view(-1, 2, 3)
    return table[inverse]


def affine8(v: Tensor, matrix: Tensor) -> Tensor:
    """``Image.transform(size, AFFINE, matrix, BILINEAR)`` on levels, one output->input matrix per sample.

    Args:
        v: levels, shape (B, C, H, W).
        matrix: output->input pixel matrices, shape (B, 2, 3) (PIL ``AFFINE`` data order), float64.

    Returns:
        Levels, same shape; pixels mapped outside the input are black.

    Example:
        >>> affine8(torch.arange(4.0).view(1, 1, 1, 4), torch.tensor([[[1.0, 0, 1], [0, 1, 0]]])).tolist()
        [[[[1.0, 2.0, 3.0, 0.0]]]]
    """
    _check_levels(v)
    b, c, h, w = v.shape
    if matrix.dim() != 3 or matrix.shape[1:] != (2, 3) or matrix.shape[0] != b:
        raise ValueError(f"matrix: expected shape ({b}, 2, 3), got {tuple(matrix.shape)}")
    a = matrix.to(device=v.device, dtype=torch.float64).reshape(b, 6, 1, 1).unbind(dim=1)
    xs = (torch.arange(w, dtype=torch.float64, device=v.device) + 0.5).view(1, 1, w)
    ys = (torch.arange(h, dtype=torch.float64, device=v.device) + 0.5).view(1, h, 1)
    xin = a[0] * xs + a[1] * ys + a[2]  # (B, H, W), in Pillow's order: (a0 x + a1 y) + a2
    yin = a[3] * xs + a[4] * ys + a[5]
    inside = (xin >= 0.0) & (xin < w) & (yin >= 0.0) & (yin < h)
    xin = torch.where(inside, xin, torch.zeros_like(xin)) - 0.5
    yin = torch.where(inside, yin, torch.zeros_like(yin)) - 0.5
    x0 = torch.floor(xin)
    y0 = torch.floor(yin)
    dx = (xin - x0).unsqueeze(1)
    dy = (yin - y0).unsqueeze(1)
    x0i, y0i = x0.to(torch.int64), y0.to(torch.int64)
    xa, xb = x0i.clamp(0, w - 1), (x0i + 1).clamp(0, w - 1)
    ya, yb = y0i.clamp(0, h - 1), (y0i + 1).clamp(0, h - 1)
    flat = v.to(torch.float64).reshape(b, c, h * w)

    def tap(yy: Tensor, xx: Tensor) -> Tensor:
        idx = (yy * w + xx).view(b, 1, h * w).expand(b, c, h * w)
        return flat.gather(2, idx).view(b, c, h, w)

    top_l, top_r = tap(ya, xa), tap(ya, xb)
    bot_l, bot_r = tap(yb, xa), tap(yb, xb)
    v1 = top_l + (top_r - top_l) * dx
    v2 = bot_l + (bot_r - bot_l) * dx
    out = torch.trunc(v1 + (v2 - v1) * dy).to(torch.float32)
    return torch.where(inside.unsqueeze(1), out, torch.zeros_like(out))
