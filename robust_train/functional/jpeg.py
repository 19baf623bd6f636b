"""Baseline JPEG encode -> decode round trip as batched integer tensor maths (libjpeg-turbo bit for bit).

The lossy part of baseline JPEG is integer arithmetic; the entropy coding is lossless and is skipped. This module
reproduces, on any device, what Pillow's ``Image.save(format="JPEG", quality=q)`` followed by ``Image.open`` gives
with their defaults (libjpeg-turbo: 4:2:0 chroma subsampling for RGB, the accurate integer DCTs, the standard tables
with IJG quality scaling and ``force_baseline``, fancy upsampling). Stages, each following the libjpeg-turbo source
named (operation order, constants and rounding; the code is our own):

1. ``jccolor.c`` ``rgb_ycc_convert``: 16-bit fixed-point RGB -> YCbCr (``Y`` rounds half up, ``Cb``/``Cr`` add
   ``0.5 - 2^-16`` so 255 cannot overflow).
2. ``jcprepct.c`` / ``jcsample.c``: every plane is padded by edge replication, luma to whole 8x8 blocks; chroma at full
   resolution to an even height and to a width of whole 16-pixel MCUs (``expand_right_edge``), then
   ``h2v2_downsample``: the 2x2 sum plus the column-alternating bias 1, 2, 1, 2, ... shifted right by 2; the
   downsampled rows are then padded to whole 8-row blocks by repeating the last row (``expand_bottom_edge``).
3. ``jfdctint.c`` ``jpeg_fdct_islow`` on ``sample - 128``: LL&M butterflies with 13-bit constants, row pass with
   ``PASS1_BITS = 2`` of extra precision, column pass, each output rounded by ``DESCALE`` (add half, arithmetic shift).
4. ``jcdctmgr.c`` quantisation of the 8x-scaled coefficients by ``8 q``: libjpeg-turbo's reciprocal form
   ``sign(c) * (((|c| + corr) * recip) >> shift)`` with ``compute_reciprocal``'s tables for a 16-bit ``DCTELEM``
   (round half away from zero); dequantisation ``k * q``.
5. ``jidctint.c`` ``jpeg_idct_islow``: column pass, row pass, ``DESCALE`` by ``CONST_BITS + PASS1_BITS + 3`` and
   ``+ 128`` with saturation to [0, 255] (the SIMD kernels' saturating packs; the C code's ``range_limit`` table
   agrees for every output within +-512 of the centre, i.e. for all data the forward path can produce except
   contrived coefficient blocks). The zero-AC shortcuts of the C code give the same values as the full butterfly.
   libjpeg-turbo's x86 SIMD IDCT (what Pillow runs) keeps the column-pass results in 16 bits with saturation where
   the C code and this module keep 32; the three agree unless such an intermediate leaves the 16-bit range, which
   none of the tests' inputs reach (0/255 checkerboards and random sign blocks at quality 1 included).
6. ``jdsample.c`` ``h2v2_fancy_upsample`` when the chroma width ``ceil(W / 2)`` exceeds 2 (triangle filter: columns
   ``3 * near + far`` rows, then ``(3 * this + neighbour + 8 or 7) >> 4``; the first/last chroma row and column are
   replicated, ``jdmainct.c`` ``set_bottom_pointers``), else ``h2v2_upsample`` (2x2 replication).
7. ``jdcolor.c`` ``ycc_rgb_convert``: 16-bit fixed-point YCbCr -> RGB with clamping.

Grey images (one channel, Pillow mode ``"L"``): one component, luminance table, no colour conversion or
subsampling.

Everything is elementwise integer maths on ``int32`` tensors (no integer matmul, which CUDA lacks), a fixed number of
ATen ops per call whatever the batch size, no host synchronisation: the quality values shape host-side tables (see
:func:`jpeg_codec_tables`) that are moved to the device once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ._fused import fused

__all__ = ["jpeg_codec_tables", "jpeg_roundtrip_torch", "jpeg_roundtrip_uint8"]

# IJG standard quantisation tables (JPEG spec K.1), natural (row-major) order.
_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
)
_CHROMA = np.full((8, 8), 99, dtype=np.int64)
_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def _fix(value: float, bits: int) -> int:
    """The ``FIX(x)`` of libjpeg: ``(long)(x * 2^bits + 0.5)``."""
    return int(value * (1 << bits) + 0.5)


# jccolor.c / jdcolor.c (SCALEBITS = 16)
_Y_R, _Y_G, _Y_B = _fix(0.299, 16), _fix(0.587, 16), _fix(0.114, 16)
_CB_R, _CB_G, _C_HALF = _fix(0.16874, 16), _fix(0.33126, 16), _fix(0.5, 16)
_CR_G, _CR_B = _fix(0.41869, 16), _fix(0.08131, 16)
_ONE_HALF = 1 << 15
_CBCR_OFFSET = 128 << 16
_R_CR, _B_CB = _fix(1.402, 16), _fix(1.772, 16)
_G_CB, _G_CR = _fix(0.34414, 16), _fix(0.71414, 16)

# jfdctint.c / jidctint.c (CONST_BITS = 13, PASS1_BITS = 2 for 8-bit samples)
_CB, _P1 = 13, 2
_C0298, _C0390, _C0541, _C0765 = 2446, 3196, 4433, 6270
_C0899, _C1175, _C1501, _C1847 = 7373, 9633, 12299, 15137
_C1961, _C2053, _C2562, _C3072 = 16069, 16819, 20995, 25172


def _descale(v: Tensor, n: int) -> Tensor:
    """The ``DESCALE(x, n)`` of libjpeg: ``(x + 2^(n-1)) >> n`` with an arithmetic (flooring) shift."""
    return (v + (1 << (n - 1))) >> n


# ---------------------------------------------------------------------------------------------------- host tables


def _ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """``jpeg_set_quality(q, force_baseline=TRUE)`` for one base table (jcparam.c)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


@functools.lru_cache(maxsize=1)
def _reciprocals() -> np.ndarray:
    """``compute_reciprocal`` (jcdctmgr.c, 16-bit ``DCTELEM``) for every divisor ``8 q``, q in 0..255: (256, 3)."""
    out = np.zeros((256, 3), dtype=np.int64)  # recip, corr, total right shift
    for q in range(1, 256):
        d = q << 3
        b = d.bit_length() - 1
        r = 16 + b
        fq, fr = divmod(1 << r, d)
        c = d // 2
        if fr == 0:  # power of two: the reciprocal would need 17 bits
            fq >>= 1
            r -= 1
        elif fr <= d // 2:
            c += 1
        else:
            fq += 1
        out[q] = (fq, c, r)
    return out


@functools.lru_cache(maxsize=256)
def _tables_one(quality: int) -> np.ndarray:
    """(2, 4, 8, 8) int32 for one quality: [luma, chroma] x [qtable, recip, corr, shift]."""
    rec = _reciprocals()
    out = np.empty((2, 4, 8, 8), dtype=np.int32)
    for i, base in enumerate((_LUMA, _CHROMA)):
        t = _ijg_table(base, quality)
        out[i, 0] = t
        out[i, 1:] = np.moveaxis(rec[t], -1, 0)
    out.setflags(write=False)
    return out


def _host_qualities(quality: Tensor | Sequence[int] | int, batch: int) -> list[int]:
    """Validated host-side integer qualities, one per sample."""
    if isinstance(quality, Tensor):
        if quality.device.type != "cpu":
            raise ValueError(
                f"quality: expected host (CPU) values (they shape host-side tables), got a tensor on {quality.device}"
            )
        if quality.is_floating_point():
            quality = torch.round(quality.to(torch.float64))
        values = [int(v) for v in quality.reshape(-1).tolist()]
    elif isinstance(quality, (int, np.integer)):
        values = [int(quality)]
    else:
        values = [int(v) for v in quality]
    if len(values) == 1:
        values = values * batch
    if len(values) != batch:
        raise ValueError(f"quality: expected a scalar or {batch} values (one per sample), got {len(values)}")
    bad = [v for v in values if not 1 <= v <= 100]
    if bad:
        raise ValueError(f"quality: expected JPEG qualities in [1, 100], got {bad}")
    return values


def jpeg_codec_tables(quality: Tensor | Sequence[int] | int, batch: int) -> np.ndarray:
    """Host-side quantisation plan for ``batch`` images: (B, 2, 4, 8, 8) int32.

    Axis 1 is the component class (luminance, chrominance), axis 2 the table: the quantisation table of
    ``jpeg_set_quality(q, force_baseline=TRUE)`` and libjpeg-turbo's reciprocal, correction and shift for the
    divisor ``8 q`` (jcdctmgr.c ``compute_reciprocal`` with a 16-bit ``DCTELEM``).

    Args:
        quality: a host-side scalar, sequence or CPU tensor of qualities in [1, 100] (floats are rounded).
        batch: the batch size B.

    Returns:
        (B, 2, 4, 8, 8) int32 NumPy array.

    Example:
        >>> jpeg_codec_tables([50, 100], 2)[:, 0, 0, 0, 0].tolist()
        [16, 1]
    """
    return np.stack([_tables_one(q) for q in _host_qualities(quality, batch)])


# ---------------------------------------------------------------------------------------------------- stages


def _pad_edge(v: Tensor, dim: int, size: int) -> Tensor:
    """Extend ``v`` along ``dim`` to ``size`` by repeating its last slice (libjpeg's edge replication)."""
    n = v.shape[dim]
    if size == n:
        return v
    last = v.narrow(dim, n - 1, 1)
    shape = list(v.shape)
    shape[dim] = size - n
    return torch.cat((v, last.expand(shape)), dim)


def _rgb_to_ycc(r: Tensor, g: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """jccolor.c ``rgb_ycc_convert`` on int32 planes (all sums non-negative: the shift floors)."""
    y = (_Y_R * r + _Y_G * g + _Y_B * b + _ONE_HALF) >> 16
    cb = (_C_HALF * b - _CB_R * r - _CB_G * g + (_CBCR_OFFSET + _ONE_HALF - 1)) >> 16
    cr = (_C_HALF * r - _CR_G * g - _CR_B * b + (_CBCR_OFFSET + _ONE_HALF - 1)) >> 16
    return y, cb, cr


def _downsample_h2v2(c: Tensor, h_out: int, w_out: int) -> Tensor:
    """jcsample.c ``h2v2_downsample`` of (B, H, W) to (B, h_out, w_out) with libjpeg's padding around it.

    The full-resolution plane is edge-extended to ``2 * ceil(H / 2)`` rows and ``2 * w_out`` columns, each output is
    ``(2x2 sum + bias) >> 2`` with bias 1, 2, 1, 2, ... along a row, and the result is extended to ``h_out`` rows.
    """
    bsz, h, _ = c.shape
    h_even = 2 * ((h + 1) // 2)
    c = _pad_edge(_pad_edge(c, 1, h_even), 2, 2 * w_out)
    s = c[:, 0::2, 0::2] + c[:, 0::2, 1::2] + c[:, 1::2, 0::2] + c[:, 1::2, 1::2]
    bias = (torch.arange(w_out, device=c.device, dtype=torch.int32) & 1) + 1
    return _pad_edge((s + bias) >> 2, 1, h_out)


def _fdct_1d(x: list[Tensor], first: bool) -> list[Tensor]:
    """One jfdctint.c pass over 8 samples (pass 1 keeps ``PASS1_BITS`` extra bits, pass 2 removes them)."""
    shift = _CB - _P1 if first else _CB + _P1
    tmp0, tmp7 = x[0] + x[7], x[0] - x[7]
    tmp1, tmp6 = x[1] + x[6], x[1] - x[6]
    tmp2, tmp5 = x[2] + x[5], x[2] - x[5]
    tmp3, tmp4 = x[3] + x[4], x[3] - x[4]
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    out: list[Tensor] = [tmp0] * 8
    if first:
        out[0] = (tmp10 + tmp11) * (1 << _P1)
        out[4] = (tmp10 - tmp11) * (1 << _P1)
    else:
        out[0] = _descale(tmp10 + tmp11, _P1)
        out[4] = _descale(tmp10 - tmp11, _P1)
    z1 = (tmp12 + tmp13) * _C0541
    out[2] = _descale(z1 + tmp13 * _C0765, shift)
    out[6] = _descale(z1 - tmp12 * _C1847, shift)
    z1 = tmp4 + tmp7
    z2 = tmp5 + tmp6
    z3 = tmp4 + tmp6
    z4 = tmp5 + tmp7
    z5 = (z3 + z4) * _C1175
    z1 = z1 * -_C0899
    z2 = z2 * -_C2562
    z3 = z3 * -_C1961 + z5
    z4 = z4 * -_C0390 + z5
    out[7] = _descale(tmp4 * _C0298 + z1 + z3, shift)
    out[5] = _descale(tmp5 * _C2053 + z2 + z4, shift)
    out[3] = _descale(tmp6 * _C3072 + z2 + z3, shift)
    out[1] = _descale(tmp7 * _C1501 + z1 + z4, shift)
    return out


def _idct_1d(x: list[Tensor], shift: int) -> list[Tensor]:
    """One jidctint.c pass over 8 (dequantised) coefficients, outputs ``DESCALE``-d by ``shift``."""
    z2, z3 = x[2], x[6]
    z1 = (z2 + z3) * _C0541
    tmp2 = z1 - z3 * _C1847
    tmp3 = z1 + z2 * _C0765
    tmp0 = (x[0] + x[4]) * (1 << _CB)
    tmp1 = (x[0] - x[4]) * (1 << _CB)
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    tmp0, tmp1, tmp2, tmp3 = x[7], x[5], x[3], x[1]
    z1 = tmp0 + tmp3
    z2 = tmp1 + tmp2
    z3 = tmp0 + tmp2
    z4 = tmp1 + tmp3
    z5 = (z3 + z4) * _C1175
    z1 = z1 * -_C0899
    z2 = z2 * -_C2562
    z3 = z3 * -_C1961 + z5
    z4 = z4 * -_C0390 + z5
    tmp0 = tmp0 * _C0298 + z1 + z3
    tmp1 = tmp1 * _C2053 + z2 + z4
    tmp2 = tmp2 * _C3072 + z2 + z3
    tmp3 = tmp3 * _C1501 + z1 + z4
    return [
        _descale(tmp10 + tmp3, shift),
        _descale(tmp11 + tmp2, shift),
        _descale(tmp12 + tmp1, shift),
        _descale(tmp13 + tmp0, shift),
        _descale(tmp13 - tmp0, shift),
        _descale(tmp12 - tmp1, shift),
        _descale(tmp11 - tmp2, shift),
        _descale(tmp10 - tmp3, shift),
    ]


def _to_blocks(plane: Tensor) -> Tensor:
    """(B, 8 Hb, 8 Wb) -> (8 rows, 8 cols, B, Hb * Wb) block layout (each coefficient a contiguous run)."""
    b, h, w = plane.shape
    blocks = plane.view(b, h // 8, 8, w // 8, 8).permute(2, 4, 0, 1, 3)
    return blocks.reshape(8, 8, b, (h // 8) * (w // 8))


def _from_blocks(blocks: Tensor, h: int, w: int) -> Tensor:
    """Inverse of :func:`_to_blocks` for a (B, h, w) plane."""
    b = blocks.shape[2]
    return blocks.view(8, 8, b, h // 8, w // 8).permute(2, 3, 0, 4, 1).reshape(b, h, w)


def _quantise_roundtrip(coef: Tensor, tables: Tensor) -> Tensor:
    """jcdctmgr.c quantisation and the decoder's dequantisation. coef (8, 8, B, N); tables (4, 8, 8, B, 1)."""
    qtab, recip, corr, shift = tables.unbind(0)
    return (((coef.abs() + corr) * recip) >> shift) * qtab * coef.sign()


def _block_codec(blocks: Tensor, tables: list[tuple[int, Tensor]]) -> Tensor:
    """Forward DCT, quantisation, dequantisation and inverse DCT of every block; 8-bit samples out.

    Args:
        blocks: (8, 8, B, N) int32 samples in [0, 255].
        tables: ``(n, table)`` runs: the next ``n`` blocks of each image use ``table`` (4, 8, 8, B, 1).
    """
    x = blocks - 128
    rows = _fdct_1d(list(x.unbind(1)), first=True)  # along each block row: 8 tensors (8 rows, B, N)
    cols = _fdct_1d(list(torch.stack(rows, 1).unbind(0)), first=False)  # along each column
    coef = torch.stack(cols, 0)  # (8 rows = vertical frequency, 8 cols = horizontal frequency, B, N)
    parts, start = [], 0
    for n, tab in tables:
        parts.append(_quantise_roundtrip(coef[..., start : start + n], tab))
        start += n
    deq = parts[0] if len(parts) == 1 else torch.cat(parts, -1)
    ws = _idct_1d(list(deq.unbind(0)), _CB - _P1)  # columns first, as jidctint.c
    out = _idct_1d(list(torch.stack(ws, 0).unbind(1)), _CB + _P1 + 3)
    # + CENTERJSAMPLE with saturation (the SIMD kernels' saturating packs; range_limit agrees within +-512)
    return (torch.stack(out, 1) + 128).clamp_(0, 255)


def _upsample_h2v2(c: Tensor, h: int, w: int) -> Tensor:
    """jdsample.c upsampling of the (B, ceil(H/2), ceil(W/2)) chroma plane to (B, H, W)."""
    bsz, h2, w2 = c.shape
    if w2 <= 2:  # jinit_upsampler: fancy upsampling needs a downsampled width > 2, else plain replication
        out = c.view(bsz, h2, 1, w2, 1).expand(bsz, h2, 2, w2, 2)
        return out.reshape(bsz, 2 * h2, 2 * w2)[:, :h, :w]
    above = torch.cat((c[:, :1], c[:, :-1]), 1)
    below = torch.cat((c[:, 1:], c[:, -1:]), 1)
    three = 3 * c
    cs = torch.stack((three + above, three + below), 2)  # (B, h2, 2, w2): output rows 2i, 2i+1
    left = torch.cat((cs[..., :1], cs[..., :-1]), -1)
    right = torch.cat((cs[..., 1:], cs[..., -1:]), -1)
    three = 3 * cs
    out = torch.stack(((three + left + 8) >> 4, (three + right + 7) >> 4), -1)  # (B, h2, 2, w2, 2)
    return out.reshape(bsz, 2 * h2, 2 * w2)[:, :h, :w]


def _ycc_to_rgb(y: Tensor, cb: Tensor, cr: Tensor) -> Tensor:
    """jdcolor.c ``ycc_rgb_convert``: (B, 3, H, W) int32 in [0, 255]."""
    cb = cb - 128
    cr = cr - 128
    r = y + ((_R_CR * cr + _ONE_HALF) >> 16)
    g = y + ((_ONE_HALF - _G_CB * cb - _G_CR * cr) >> 16)
    b = y + ((_B_CB * cb + _ONE_HALF) >> 16)
    return torch.stack((r, g, b), 1).clamp_(0, 255)


@fused
def jpeg_roundtrip_uint8(x: Tensor, tables: Tensor) -> Tensor:
    """JPEG encode -> decode of uint8 images with a device-side plan (the maths of :func:`jpeg_roundtrip_torch`).

    A :func:`~._fused.fused` kernel: compiled when fusion is on for ``x.device`` (by default on CUDA: a few Triton
    kernels instead of ~400 ATen ops; one compile per input shape), otherwise run eagerly. Integer maths only, so the
    compiled and eager results are identical.

    Args:
        x: (B, C, H, W) uint8, C = 1 (grey) or 3 (RGB), any device.
        tables: (B, 2, 4, 8, 8) int32 on ``x.device`` (:func:`jpeg_codec_tables`).

    Returns:
        (B, C, H, W) uint8 decoded images.
    """
    bsz, ch, h, w = x.shape
    tabs = tables.permute(1, 2, 3, 4, 0).unsqueeze(-1)  # (2, 4, 8, 8, B, 1)
    hb, wb = -(-h // 8) * 8, -(-w // 8) * 8
    xi = x.to(torch.int32)
    if ch == 1:
        luma = _pad_edge(_pad_edge(xi[:, 0], 1, hb), 2, wb)
        dec = _block_codec(_to_blocks(luma), [(luma.numel() // (64 * bsz), tabs[0])])
        return _from_blocks(dec, hb, wb)[:, None, :h, :w].to(torch.uint8)
    y, cb, cr = _rgb_to_ycc(xi[:, 0], xi[:, 1], xi[:, 2])
    hc, wc = -(-h // 16) * 8, -(-w // 16) * 8  # chroma blocks: one per 16x16 MCU
    luma = _pad_edge(_pad_edge(y, 1, hb), 2, wb)
    chroma = _downsample_h2v2(torch.stack((cb, cr), 1).view(bsz * 2, h, w), hc, wc).view(bsz, 2 * hc, wc)
    nl, nc = (hb // 8) * (wb // 8), 2 * (hc // 8) * (wc // 8)
    blocks = torch.cat((_to_blocks(luma), _to_blocks(chroma)), -1)
    dec = _block_codec(blocks, [(nl, tabs[0]), (nc, tabs[1])])
    y_dec = _from_blocks(dec[..., :nl], hb, wb)[:, :h, :w]
    c_dec = _from_blocks(dec[..., nl:], 2 * hc, wc).view(bsz * 2, hc, wc)[:, : (h + 1) // 2, : (w + 1) // 2]
    c_up = _upsample_h2v2(c_dec, h, w).view(bsz, 2, h, w)
    return _ycc_to_rgb(y_dec, c_up[:, 0], c_up[:, 1]).to(torch.uint8)


def jpeg_roundtrip_torch(x: Tensor, quality: Tensor | Sequence[int] | int) -> Tensor:
    """JPEG encode -> decode each image at its own quality, bit-exact with Pillow/libjpeg-turbo, on any device.

    Equal to ``Image.open(buf)`` after ``Image.save(buf, format="JPEG", quality=q)`` (RGB: 4:2:0, islow DCT, standard
    tables; grey: one component) for every image size and quality; see the module docstring for the stages.

    Args:
        x: (B, C, H, W) with C = 1 or 3: uint8, or float in [0, 1] (rounded to the 8-bit grid after clipping).
        quality: host-side qualities in [1, 100]: scalar, sequence or CPU tensor of shape (B,) (floats are rounded).

    Returns:
        Same shape, dtype and device as ``x``: uint8, or float values ``k / 255``.

    Raises:
        ValueError: wrong shape or channel count, empty images, quality outside [1, 100] or on a device.

    Example:
        >>> jpeg_roundtrip_torch(torch.zeros(2, 3, 5, 7, dtype=torch.uint8), [10, 90]).shape
        torch.Size([2, 3, 5, 7])
    """
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x: expected images of shape (B, 1 or 3, H, W), got {got}")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"x: expected a non-empty batch of images, got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise ValueError(f"x: expected uint8 or floating-point images, got dtype {x.dtype}")
    tables = torch.as_tensor(jpeg_codec_tables(quality, x.shape[0])).to(x.device, non_blocking=True)
    if x.dtype == torch.uint8:
        return jpeg_roundtrip_uint8(x, tables)
    u8 = torch.round(x.detach().clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    return jpeg_roundtrip_uint8(u8, tables).to(x.dtype) / 255.0
