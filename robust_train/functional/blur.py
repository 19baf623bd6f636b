"""Blur corruptions (numerics): motion, zoom, defocus, glass and Gaussian blur (spec 2.5-2.9, helpers H1, H2, H4, H5).

Functional ops take images ``(B, C, H, W)`` in [0, 1] and per-sample arguments ``(B,)``; they never draw random
numbers themselves (glass blur derives its displacement field from a per-sample ``seed`` through the counter-based
hash). They return float output *before* the final 8-bit truncation of the module; where the original truncates
inside the algorithm (glass blur step 1, the ImageMagick motion blur output) the op does it itself with a
straight-through gradient.

Two building blocks are shared with other families (snow uses both):

* :func:`motion_blur` - ImageMagick's ``MagickMotionBlurImage`` (H5) on a batch of layers, per-sample radius, sigma
  and angle, edge clamping and the Q16 -> 8 bit quantisation, bit-exact against ImageMagick 6.9 Q16 in float64.
* :func:`clipped_zoom` - the original's centre zoom (H4) with SciPy's align-corners linear interpolation and the
  top-left trim rule, per-sample zoom factors, generalised to non-square images.

Speed (CPU, issue 3). Fused kernels (``robust_train.functional._fused``; compiled only with fusion on and no
gradient recorded, the eager function is the reference):

* ``_glass_links`` - one glass pass's hash, displacements and pointer set-up in one loop. Integer hash maths and the
  same float32/float64 steps in the same order as ``field_uniform`` + :func:`glass_displacements` +
  :func:`glass_shuffle_index`, so fused, eager and the public functions agree bit for bit (tested).
* ``_q16_to_u8`` (motion blur's Q16 -> 8-bit step) and ``_average_clip`` (zoom blur's final average): elementwise
  chains in one pass; compiled float rounding may differ in the last bit (an 8-bit level at exact ties only).

Other levers: defocus blur and large Gaussians (>= ``_GAUSS_FFT_MIN_TAPS`` taps) correlate through the FFT with
kernel spectra cached per (parameters, FFT size, dtype, device), each sample padded by its own kernel radius (so
its result is independent of the batch), FFT lengths ``2^k * {1, 3, 5, 9, 15}``, an in-place real product and the
inverse as two contiguous 1-D passes; zoom resamples all planes as one image (ATen's kernel then vectorises across
planes); motion blur accumulates straight into its output.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import straight_through, truncate_uint8
from ._fused import fused, fused_runs
from .checks import POSITIVE, check_batch_param, check_shape, per_sample
from .filters import gaussian_filter2d, gaussian_kernel1d, pad2d, separable_filter2d
from .rng import _M1, _M2, MASK32, _i32, _keys, _srl, field_uniform, stream_id

__all__ = [
    "clipped_zoom",
    "defocus_blur",
    "disk_kernel",
    "gaussian_blur",
    "gaussian_nearest",
    "glass_blur",
    "glass_displacements",
    "glass_shuffle_index",
    "motion_blur",
    "motion_blur_taps",
    "zoom_blur",
    "zoom_factors",
]

#: ``MagickSQ2PI`` of ImageMagick (sqrt(2 pi)), used in the motion-blur kernel before normalisation.
_MAGICK_SQ2PI = 2.50662827463100024161235523934010416269302368164062
#: Default hash stream of the glass-blur displacement field (the module's ``stream("displacement")``).
GLASS_STREAM = stream_id("glass_blur/displacement")


# ----------------------------------------------------------------------------------------------- helpers
def _check_layers(x: Tensor, name: str = "x") -> None:
    """(B, C, H, W) floating tensor (any channel count), non-empty."""
    check_shape(x, "B C H W", name)
    if not torch.is_floating_point(x):
        raise TypeError(f"{name}: expected a floating-point tensor in [0, 1], got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty batch, got shape {tuple(x.shape)}")


#: Odd parts of the FFT lengths :func:`_fast_size` picks: pocketfft on x86 runs 2^k lengths fastest and one factor
#: 3 or 5 nearly as fast per element, but repeated odd radices are slow (measured 2-D cost per element, relative to
#: 256: 240 1.02, 288 1.15, 250 1.28, 270 1.32, 243 2.05).
_FFT_ODD_PARTS = (1, 3, 5, 9, 15)


def _fast_size(n: int) -> int:
    """The smallest FFT length ``m >= n`` of the form ``2^k * odd`` with ``odd`` in :data:`_FFT_ODD_PARTS`.

    Example: 240 -> 240, 244 -> 256 (not 250 = 2 * 5^3: 1.25x slower per element), 50 -> 60.
    """
    best = None
    for odd in _FFT_ODD_PARTS:
        m = odd
        while m < n:
            m *= 2
        best = m if best is None else min(best, m)
    return int(best)


#: ``F.pad`` modes equal to a SciPy boundary mode for pads narrower than the image.
_TORCH_PAD = {"mirror": "reflect", "nearest": "replicate"}


def _pad_fast(x: Tensor, pad: int, mode: str) -> Tensor:
    """Pad H and W by ``pad`` with a SciPy boundary mode (``"mirror"`` or ``"nearest"``), one pass if possible.

    ``F.pad`` (``reflect`` = reflect-101 = SciPy ``mirror``; ``replicate`` = ``nearest``) is one fused copy for pads
    narrower than the image; wider pads (repeated reflection) fall back to
    :func:`~robust_train.functional.filters.pad2d`.
    """
    if pad == 0:
        return x
    h, w = x.shape[-2:]
    if pad < h and pad < w:
        return F.pad(x, (pad, pad, pad, pad), mode=_TORCH_PAD[mode])
    return pad2d(x, pad, mode)


#: Real spectra of point-symmetric kernels (disk kernels, 2-D Gaussians), keyed by (kind, parameters, FFT size,
#: dtype, device); a small LRU.
_SPECTRA: OrderedDict[tuple[object, ...], Tensor] = OrderedDict()
_SPECTRA_MAX = 32
_SPECTRA_LOCK = threading.Lock()


def _disk_kernel2d(key: tuple[float, ...]) -> Tensor:
    return disk_kernel(key[0], key[1], batch=1)[0]


def _gaussian_kernel2d(key: tuple[float, ...]) -> Tensor:
    k = gaussian_kernel1d(torch.tensor([key[0]], dtype=torch.float64))[0]
    return torch.outer(k, k)


_KERNELS2D = {"disk": _disk_kernel2d, "gaussian": _gaussian_kernel2d}


def _spectrum(kind: str, key: tuple[float, ...], n1: int, n2: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Spectrum ``(n1, n2 // 2 + 1, 2)`` of a point-symmetric kernel centred at the origin of an ``n1 x n2`` grid.

    ``kind`` ``"disk"``: :func:`disk_kernel` of ``key = (radius, alias_blur)`` (float32, as the original builds it);
    ``"gaussian"``: the outer product of the skimage Gaussian of ``key = (sigma,)`` (float64). The spectrum of a
    point-symmetric kernel is real: only the real part is kept, stored twice so that the product with
    ``view_as_real(image spectrum)`` is a plain contiguous elementwise multiply (a size-2 broadcast is 5x slower).
    Computed in ``dtype`` on ``device`` and cached (LRU) for every later batch with the same parameters.
    """
    ckey = (kind, key, n1, n2, dtype, str(device))
    with _SPECTRA_LOCK:
        hit = _SPECTRA.get(ckey)
        if hit is not None:
            _SPECTRA.move_to_end(ckey)
            return hit
    kern = _KERNELS2D[kind](key).to(device=device, dtype=dtype)
    r = (kern.shape[-1] - 1) // 2
    g = torch.zeros(n1, n2, dtype=dtype, device=device)
    idx_r = torch.remainder(torch.arange(-r, r + 1, device=device), n1)  # rows/cols -r..r wrap around
    idx_c = torch.remainder(torch.arange(-r, r + 1, device=device), n2)
    g[idx_r.view(-1, 1), idx_c.view(1, -1)] = kern
    spec = torch.fft.rfft2(g).real.unsqueeze(-1).expand(n1, n2 // 2 + 1, 2).contiguous()
    with _SPECTRA_LOCK:
        _SPECTRA[ckey] = spec
        while len(_SPECTRA) > _SPECTRA_MAX:
            _SPECTRA.popitem(last=False)
    return spec


def _fft_correlate(x: Tensor, kind: str, keys: list[tuple[float, ...]], pad: int, mode: str) -> Tensor:
    """Correlate every sample of ``x`` with its point-symmetric kernel through the FFT (a view, not clipped).

    ``out[b, c, y, x] = sum_{i, j} k_b[i, j] * xp[b, c, y + i, x + j]`` on the planes padded by ``pad`` (at least
    every kernel's half-size) with boundary ``mode``. The FFT grid is ``Hp x Wp`` rounded up by :func:`_fast_size`;
    circular wrap-around never reaches the kept window because the padded planes already hold every tap. The kernel
    spectra are real (:func:`_spectrum`), so the product is two real multiplications per frequency, done in real
    arithmetic (bitwise independent of the batch composition; ATen's vectorised complex multiply rounds differently
    in its scalar tail). A kernel shared by the whole batch (integer severities) is used once, broadcast.
    """
    _, _, h, w = x.shape
    n1, n2 = _fast_size(h + 2 * pad), _fast_size(w + 2 * pad)
    distinct = sorted(set(keys))
    table = {k: _spectrum(kind, k, n1, n2, x.dtype, x.device) for k in distinct}
    if len(distinct) == 1:
        spec = table[distinct[0]]
    else:
        spec = torch.stack([table[k] for k in keys]).unsqueeze(1)
    img = torch.fft.rfft2(_pad_fast(x, pad, mode), s=(n1, n2))
    if img.requires_grad:
        prod = torch.view_as_complex(torch.view_as_real(img) * spec)
    else:  # no graph: multiply in place (saves an allocation and a pass)
        torch.view_as_real(img).mul_(spec)
        prod = img
    # Inverse as two 1-D passes on contiguous lines: ``irfft2`` copies its input twice internally (measured 1.3x
    # slower); transposing explicitly also lets the row pass skip the padding rows that are cropped anyway.
    cols = torch.fft.ifft(prod.transpose(-1, -2).contiguous(), dim=-1)  # (B, C, n2 // 2 + 1, n1)
    rows = cols[..., pad : pad + h].transpose(-1, -2).contiguous()  # (B, C, h, n2 // 2 + 1)
    out = torch.fft.irfft(rows, n=n2, dim=-1)
    return out[..., pad : pad + w]


def _fft_grouped(x: Tensor, kind: str, keys: list[tuple[float, ...]], pads: list[int], mode: str) -> Tensor:
    """:func:`_fft_correlate` with each sample padded by its own ``pads[b]``: one FFT size per group of samples.

    A sample's result then depends only on its own parameters, never on the rest of the batch.
    """
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(pads):
        groups.setdefault(p, []).append(i)
    if len(groups) == 1:
        return _fft_correlate(x, kind, keys, pads[0], mode)
    out = torch.empty_like(x)
    for p, members in groups.items():
        idx = torch.tensor(members, device=x.device)
        out.index_copy_(0, idx, _fft_correlate(x.index_select(0, idx), kind, [keys[i] for i in members], p, mode))
    return out


# ----------------------------------------------------------------------------------------------- H5 motion blur
def motion_blur_taps(
    radius: Tensor | float, sigma: Tensor | float, angle: Tensor | float, batch: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """ImageMagick's motion-blur taps (``MotionBlurImage``, spec H5), per sample, on the CPU in float64.

    Sample ``b`` has ``W_b = 2 * ceil(radius_b) + 1`` taps ``i = 0 .. W_b - 1`` with weights
    ``exp(-i^2 / (2 sigma^2)) / (sqrt(2 pi) sigma)`` normalised to sum 1 (a one-sided half-Gaussian) at offsets
    ``dx_i = ceil(i * cos(a) - 0.5)``, ``dy_i = ceil(i * sin(a) - 0.5)`` (x = column, y = row pointing down), with
    ``cos``/``sin`` evaluated as ImageMagick does (``W cos a / hypot(W sin a, W cos a)``). Shorter kernels are padded
    with zero-weight taps at offset 0 up to the batch maximum.

    Args:
        radius: (B,) or scalar radius in pixels, > 0 (non-integer radii are allowed, as in ImageMagick).
        sigma: (B,) or scalar standard deviation, >= 0 (values below ImageMagick's epsilon 1e-12 are raised to it).
        angle: (B,) or scalar angle in degrees.
        batch: batch size when every argument is a scalar.

    Returns:
        ``(weight, dy, dx)``: (B, T) float64 weights and (B, T) int64 row / column offsets, on the CPU.

    Raises:
        ValueError: non-positive radius, negative sigma, wrong shapes.

    Example:
        >>> w, dy, dx = motion_blur_taps(torch.tensor([2.0, 1.0]), 1.0, torch.tensor([0.0, 90.0]))
        >>> w.shape, dx[0].tolist(), dy[1].tolist()
        (torch.Size([2, 5]), [0, 1, 2, 3, 4], [0, 1, 2, 0, 0])
    """
    sizes = [t.numel() for t in (radius, sigma, angle) if isinstance(t, Tensor) and t.dim() > 0]
    b = batch if batch is not None else (max(sizes) if sizes else 1)
    r = per_sample(radius, b, "radius", lo=POSITIVE).cpu()  # host values plan the taps
    s = per_sample(sigma, b, "sigma", lo=0.0).cpu()
    a = per_sample(angle, b, "angle").cpu()
    width = 2.0 * torch.ceil(r) + 1.0  # GetOptimalKernelWidth1D for radius > epsilon
    t = int(width.max())
    i = torch.arange(t, dtype=torch.float64).unsqueeze(0)
    sig = s.clamp_min(1e-12).unsqueeze(1)
    k = torch.exp(-(i * i) / (2.0 * sig * sig)) / (_MAGICK_SQ2PI * sig)
    valid = i < width.unsqueeze(1)
    k = torch.where(valid, k, torch.zeros_like(k))
    k = k / k.sum(1, keepdim=True)
    rad = math.pi * a / 180.0
    px = width * torch.sin(rad)
    py = width * torch.cos(rad)
    hyp = torch.hypot(px, py).unsqueeze(1)
    dx = torch.ceil(i * py.unsqueeze(1) / hyp - 0.5).to(torch.int64)
    dy = torch.ceil(i * px.unsqueeze(1) / hyp - 0.5).to(torch.int64)
    zero = torch.zeros_like(dx)
    return k, torch.where(valid, dy, zero), torch.where(valid, dx, zero)


def motion_blur(
    x: Tensor,
    radius: Tensor | float,
    sigma: Tensor | float,
    angle: Tensor | float,
    quantize: bool = True,
    pad: int | None = None,
) -> Tensor:
    """ImageMagick motion blur (``MagickMotionBlurImage(radius, sigma, angle)``, spec H5) of a batch of layers.

    Every channel is blurred independently with the one-sided half-Gaussian line kernel of
    :func:`motion_blur_taps`, reading outside the image with edge replication (ImageMagick's ``edge`` virtual
    pixels): ``out(y, x) = sum_i k_i * in(clamp(y + dy_i), clamp(x + dx_i))``. With ``quantize`` the result is
    converted the way the original's PNG -> ImageMagick Q16 -> PNG round trip does: the input is read as 16-bit
    quantum ``65535 * x`` (``257 * DN`` for 8-bit input), the sum is rounded to a Q16 quantum and written back to
    8 bit by truncation, ``out8 = floor(round(65535 * sum) / 257)``. For 8-bit inputs this is bit-exact against
    ImageMagick 6.9.11 Q16 in float64 (tested); in float32 a few pixels in 10^4 can differ by one level.

    Computed as ImageMagick does, tap by tap in order on the edge-padded planes. The taps' offsets differ per sample
    (per-sample angle); each tap reads every sample's window at its own offset from one strided view of the planes
    (:func:`_motion_taps`), with no loop over samples, and each sample's result is bitwise independent of the rest
    of the batch. Gradient: exact for the linear blur, straight-through for the quantisation.

    Args:
        x: layers, shape (B, C, H, W), float in [0, 1] (any C: 3 for images, 1 for a snow layer). The original
            receives 8-bit images; other inputs are blurred as they are (no input quantisation).
        radius: (B,) or scalar kernel radius, > 0; the kernel has ``2 * ceil(radius) + 1`` taps.
        sigma: (B,) or scalar standard deviation of the half-Gaussian, >= 0.
        angle: (B,) or scalar direction in degrees (0 = kernel reads to the right, 90 = downward).
        quantize: apply the Q16 -> 8 bit output quantisation (values ``k / 255``).
        pad: edge padding width, at least the largest tap offset (default: the number of taps minus one, the reach of
            any angle); it does not change the result.

    Returns:
        Blurred layers, shape (B, C, H, W), same dtype as ``x`` (half precision is computed in float32).

    Raises:
        TypeError: ``x`` is not a floating tensor.
        ValueError: bad shapes or argument values (see :func:`motion_blur_taps`).

    Example:
        >>> motion_blur(torch.rand(2, 3, 16, 16), torch.tensor([3.0, 4.0]), 1.5, torch.tensor([10.0, -30.0])).shape
        torch.Size([2, 3, 16, 16])
    """
    _check_layers(x)
    out_dtype = x.dtype
    xc = x if x.dtype in (torch.float32, torch.float64) else x.float()
    b, _, h, w = xc.shape
    k, dy, dx = motion_blur_taps(radius, sigma, angle, batch=b)
    need = int(torch.maximum(dy.abs().max(), dx.abs().max()))
    if pad is not None and int(pad) < need:
        raise ValueError(f"pad: expected at least the largest tap offset {need}, got {pad}")
    # default: the longest kernel's reach (T - 1), whatever the drawn angles, so the padded shape (and a compiled
    # kernel's signature) is the same on every call with the same radii
    pad = k.shape[1] - 1 if pad is None else int(pad)
    xp = pad2d(xc, pad, "nearest") if pad > 0 else xc
    graph = xp.requires_grad and torch.is_grad_enabled()
    out = _motion_taps(xp, k.to(xp.device), (dy + pad).to(xp.device), (dx + pad).to(xp.device), h=h, w=w)
    if quantize:
        if graph:
            with torch.no_grad():
                q8 = _q16_to_u8(out)
            out = straight_through(out, q8)
        else:
            out = _q16_to_u8(out)
    return out.to(out_dtype)


@fused
def _motion_taps(xp: Tensor, k: Tensor, rows: Tensor, cols: Tensor, *, h: int, w: int) -> Tensor:
    """``sum_i k[b, i] * xp[b, :, rows[b, i] + y, cols[b, i] + x]`` tap by tap in order (ImageMagick's sum).

    Tap ``i`` of sample ``b`` reads the ``(h, w)`` window of the padded planes at ``(rows[b, i], cols[b, i])``: the
    windows are a strided view of ``xp`` (``unfold`` on both axes, no copy) indexed by one row and one column offset
    per sample, so the inner axes stay affine (contiguous loads; a compiled kernel vectorises them and keeps the sum
    in registers, measured 4x faster than an element gather). T is planned on the host (padding taps have weight 0
    and offset 0): the ATen op count does not depend on the batch, and each sample's sum is independent of the others.
    """
    b, c = xp.shape[:2]
    dev = xp.device
    windows = xp.unfold(2, h, 1).unfold(3, w, 1)  # (B, C, rows, cols, h, w) view
    bi = torch.arange(b, device=dev).view(b, 1)
    ci = torch.arange(c, device=dev).view(1, c)
    kw = k.to(device=dev, dtype=xp.dtype)
    out = None
    for i in range(k.shape[1]):
        tap = windows[bi, ci, rows[:, i].view(b, 1), cols[:, i].view(b, 1)]
        wt = kw[:, i].view(b, 1, 1, 1)
        out = tap * wt if out is None else torch.addcmul(out, tap, wt)  # ImageMagick's order; as add_(alpha=)
    return out


@fused
def _q16_to_u8(x: Tensor) -> Tensor:
    """ImageMagick Q16 round trip of a blurred value, in one pass: ``floor(clip(round(65535 x)) / 257) / 255``."""
    q16 = torch.floor(x * 65535.0 + 0.5).clamp(0.0, 65535.0)
    return torch.floor(q16 / 257.0) / 255.0


# ----------------------------------------------------------------------------------------------- H4 clipped zoom
def _zoom_geometry(n: int, z: float) -> tuple[int, int, int, int]:
    """``(top, ch, o, trim)`` of the centre zoom along an axis of length ``n`` (Python floats, as the original).

    ``ch = ceil(n / z)``, ``top = (n - ch) // 2``, ``o = round(ch * z)`` (Python's half-to-even ``round``, as in
    ``scipy.ndimage.zoom``), ``trim = (o - n) // 2``.
    """
    ch = int(math.ceil(n / z))
    top = (n - ch) // 2
    o = int(round(ch * z))
    return top, ch, o, (o - n) // 2


def _zoom_taps(n: int, zoom: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    """Host plan of the centre zoom along an axis of length ``n`` for per-sample factors ``zoom`` (float64 NumPy).

    Output pixel ``j`` of sample ``b`` reads crop position ``p = (j + trim) (ch - 1) / (o - 1)`` (SciPy's
    align-corners linear zoom) at image rows ``top + floor(p)`` and the next one, with weight ``p - floor(p)`` on the
    latter (:func:`_zoom_geometry`, vectorised over the batch). Returns ``(i0, i1, frac)``, each (B, n), int64 /
    int64 / float64, on the CPU.
    """
    ch = np.ceil(n / zoom)
    top = np.floor_divide(n - ch, 2)
    o = np.round(ch * zoom)  # half to even, as Python's round
    trim = np.floor_divide(o - n, 2)
    scale = np.where(o > 1, (ch - 1) / np.maximum(o - 1, 1), 0.0)
    pos = (np.arange(n, dtype=np.float64)[None, :] + trim[:, None]) * scale[:, None]
    pos = np.minimum(pos, (ch - 1)[:, None])
    i0 = np.floor(pos)
    i1 = np.minimum(i0 + 1, (ch - 1)[:, None])
    as_t = torch.from_numpy
    return as_t((i0 + top[:, None]).astype(np.int64)), as_t((i1 + top[:, None]).astype(np.int64)), as_t(pos - i0)


def _lerp_gather(x: Tensor, i0: Tensor, i1: Tensor, frac: Tensor, dim: int) -> Tensor:
    """Linear interpolation of (B, C, H, W) ``x`` along ``dim`` at per-sample taps (B, n): a batched gather."""
    b, c = x.shape[:2]
    shape = [b, 1, 1, 1]
    shape[dim] = i0.shape[1]
    size = list(x.shape)
    size[dim] = i0.shape[1]
    a = x.gather(dim, i0.view(shape).expand(size))
    z = x.gather(dim, i1.view(shape).expand(size))
    f = frac.view(shape)
    return a * (1.0 - f) + z * f


def clipped_zoom(x: Tensor, zoom: Tensor | float) -> Tensor:
    """Centre zoom of the original (``clipped_zoom``, spec H4) with per-sample zoom factors.

    Per axis of length ``n``: crop ``ch = ceil(n / z)`` pixels starting at ``top = (n - ch) // 2``, resize them to
    ``o = round(ch * z)`` pixels with SciPy's ``zoom(order=1)`` semantics (linear, align corners: output ``i`` reads
    crop position ``i * (ch - 1) / (o - 1)``), keep ``n`` pixels starting at ``trim = (o - n) // 2``. As ``o`` is
    ``n`` or ``n + 1`` almost always, the kept window is top-left aligned (quirk 8), reproduced. The resampling is
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=True)`` on the crop, which uses exactly these
    The taps are planned on the host in float64 (SciPy's coordinates) and applied as two batched per-sample gathers
    (rows, then columns): every sample is computed alone, whatever the batch, its size or its layout.

    The original assumes square images and uses the height for both axes; here each axis uses its own length,
    which equals the original on square images (and equals ``imagecorruptions``' per-axis crop whenever trim is 0).

    Args:
        x: layers, shape (B, C, H, W), float.
        zoom: (B,) or scalar zoom factors, >= 1.

    Returns:
        Zoomed layers, shape (B, C, H, W), same dtype. Differentiable in ``x`` (exact gradient).

    Raises:
        ValueError: zoom factor below 1 or not finite, wrong shapes.

    Example:
        >>> clipped_zoom(torch.rand(2, 3, 32, 24), torch.tensor([1.0, 1.75])).shape
        torch.Size([2, 3, 32, 24])
    """
    _check_layers(x)
    r0, r1, fr, c0, c1, fc = _zoom_plan(x, zoom)
    return _lerp_gather(_lerp_gather(x, r0, r1, fr, 2), c0, c1, fc, 3)


def _zoom_plan(x: Tensor, zoom: Tensor | float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Row and column taps ``(r0, r1, fr, c0, c1, fc)`` of :func:`clipped_zoom`, planned on the host, on ``x``'s device.

    Fractions are in ``x``'s dtype (the interpolation's arithmetic).
    """
    z = per_sample(zoom, x.shape[0], "zoom", lo=1.0).cpu()  # host values plan the taps
    h, w = x.shape[-2:]
    zn = z.numpy()
    dev, dt = x.device, x.dtype
    taps = (*_zoom_taps(h, zn), *_zoom_taps(w, zn))
    return tuple(t.to(device=dev, dtype=dt if t.is_floating_point() else t.dtype) for t in taps)  # type: ignore[return-value]


@fused
def _zoom_accumulate(
    acc: Tensor, x: Tensor, r0: Tensor, r1: Tensor, fr: Tensor, c0: Tensor, c1: Tensor, fc: Tensor, wt: Tensor
) -> Tensor:
    """``acc + wt * clipped_zoom(x)`` for one factor column, as one pass over the output when compiled.

    The same arithmetic as :func:`clipped_zoom` (rows lerped, then columns, then ``addcmul``), bit for bit: each
    output pixel reads its four source pixels directly instead of materialising the row pass (compiled: one
    kernel per call; eager it is slower than the two gathers, so :func:`zoom_blur` uses it only when fused kernels
    run).
    """
    b, c = x.shape[:2]
    n, m = r0.shape[1], c0.shape[1]
    bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    ci = torch.arange(c, device=x.device).view(1, c, 1, 1)
    top, bottom = r0.view(b, 1, n, 1), r1.view(b, 1, n, 1)
    left, right = c0.view(b, 1, 1, m), c1.view(b, 1, 1, m)
    f = fr.view(b, 1, n, 1)
    g = fc.view(b, 1, 1, m)
    col0 = x[bi, ci, top, left] * (1.0 - f) + x[bi, ci, bottom, left] * f
    col1 = x[bi, ci, top, right] * (1.0 - f) + x[bi, ci, bottom, right] * f
    return torch.addcmul(acc, wt.view(b, 1, 1, 1), col0 * (1.0 - g) + col1 * g)


# ----------------------------------------------------------------------------------------------- zoom blur
def zoom_factors(step: Tensor | float, count: Tensor | int, batch: int | None = None) -> tuple[Tensor, Tensor]:
    """The zoom factors of ``np.arange(1, stop, step)`` as NumPy computes them, per sample.

    NumPy fills a float ``arange`` as ``start + i * delta`` with ``delta = (start + step) - start``, which is why
    the original's lists hold values such as ``1.1300000000000001`` (spec 2.9); this reproduces those values bit
    for bit. Lists shorter than the batch maximum are padded with factor 1 and a zero mask.

    Args:
        step: (B,) or scalar step of the arange (pass float64 or Python floats: a float32 step is not 0.01).
        count: (B,) or scalar number of factors (the arange's length, e.g. 12 for ``arange(1, 1.11, 0.01)``).
        batch: batch size when both arguments are scalars.

    Returns:
        ``(factors, mask)``: (B, K) float64 factors and (B, K) bool validity, on ``step``'s device.

    Example:
        >>> f, m = zoom_factors(torch.tensor([0.01, 0.03], dtype=torch.float64), torch.tensor([12, 11]))
        >>> f.shape, m.sum(1).tolist()
        (torch.Size([2, 12]), [12, 11])
    """
    sizes = [t.numel() for t in (step, count) if isinstance(t, Tensor) and t.dim() > 0]
    b = batch if batch is not None else (max(sizes) if sizes else 1)
    st = per_sample(step, b, "step")
    n = per_sample(count, b, "count", device=st.device)
    if (n < 1).any() or (n != torch.round(n)).any():
        raise ValueError(f"count: expected positive integers, got {n.tolist()}")
    if (st < 0).any() or not torch.isfinite(st).all():
        raise ValueError(f"step: expected finite values >= 0, got {st.tolist()}")
    k = int(n.max())
    delta = (1.0 + st) - 1.0
    i = torch.arange(k, dtype=torch.float64, device=st.device).unsqueeze(0)
    fac = 1.0 + i * delta.unsqueeze(1)
    mask = i < n.unsqueeze(1)
    return torch.where(mask, fac, torch.ones_like(fac)), mask


def zoom_blur(x: Tensor, factors: Tensor, weights: Tensor | None = None) -> Tensor:
    """Zoom blur (spec 2.9): average of the image and its centre zooms, per-sample factor lists.

    ``out = clip((x + sum_k w_k * clipped_zoom(x, z_k)) / (1 + sum_k w_k), 0, 1)``. With unit weights this is the
    original ``(x + sum_k clipped_zoom(x, z_k)) / (n + 1)``, whose factor lists contain 1.0 so the unzoomed image
    has weight ``2 / (n + 1)`` (quirk 8, reproduced). Zero weights mark padding; a weight pattern other than 0/1
    lets the module blend two severity levels (continuous severities). One :func:`clipped_zoom` per list column.

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        factors: (B, K) zoom factors >= 1 (see :func:`zoom_factors`).
        weights: (B, K) non-negative weights; ``None`` means all ones.

    Returns:
        (B, C, H, W), same dtype as ``x``. Exact gradient (linear in ``x`` up to the clip).

    Raises:
        ValueError: shapes that do not match the batch, negative weights, factors below 1.

    Example:
        >>> f, m = zoom_factors(0.02, 11, batch=2)
        >>> zoom_blur(torch.rand(2, 3, 16, 16), f, m.double()).shape
        torch.Size([2, 3, 16, 16])
    """
    _check_layers(x)
    b = x.shape[0]
    f = torch.as_tensor(factors, dtype=torch.float64).cpu()  # host values plan the zooms
    if f.dim() != 2 or f.shape[0] != b:
        raise ValueError(f"factors: expected shape ({b}, K), got {tuple(f.shape)}")
    wt = torch.ones_like(f) if weights is None else torch.as_tensor(weights, dtype=torch.float64).cpu()
    if wt.shape != f.shape:
        raise ValueError(f"weights: expected shape {tuple(f.shape)} like factors, got {tuple(wt.shape)}")
    if (wt < 0).any() or not torch.isfinite(wt).all():
        raise ValueError("weights: expected finite non-negative values")
    acc = torch.zeros_like(x)
    one_pass = fused_runs(x)  # the fast variant: one fused gather-lerp-accumulate kernel per list column
    for k in range(f.shape[1]):  # one batched zoom per list column (K is planned on the host)
        wk = wt[:, k]
        if not bool((wk != 0).any()):
            continue
        zk = torch.where(wk != 0, f[:, k], torch.ones_like(wk))
        if one_pass:
            acc = _zoom_accumulate(acc, x, *_zoom_plan(x, zk), wk.to(device=x.device, dtype=x.dtype))
            continue
        zoomed = clipped_zoom(x, zk)
        if bool((wk == 1).all()):
            acc.add_(zoomed)
        else:
            acc.addcmul_(wk.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1), zoomed)
    norm = (1.0 + wt.sum(1)).to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    return _average_clip(x, acc, norm)


@fused
def _average_clip(x: Tensor, acc: Tensor, norm: Tensor) -> Tensor:
    """``clip((x + acc) / norm, 0, 1)`` in one pass (zoom blur's final average)."""
    return ((x + acc) / norm).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------- gaussian blur
#: Gaussians with at least this many taps per axis run as one 2-D FFT correlation instead of the separable tap
#: loop (2 x taps passes over the image); the threshold is measured (benchmarks/README.md, "Design measurements").
_GAUSS_FFT_MIN_TAPS = 33
#: The same threshold when the tap loop is fused (fusion on, no autograd): one compiled pass per axis beats the FFT
#: up to the longest fused tap loop (``filters.TAP_LOOP_MAX`` = 65 taps) (benchmarks/README.md, "Design measurements").
_GAUSS_FFT_MIN_TAPS_FUSED = 67


def gaussian_nearest(x: Tensor, sigma: Tensor) -> Tensor:
    """``skimage.filters.gaussian`` defaults (H1: truncate 4, mode ``nearest``) per channel, per-sample sigma.

    Samples whose kernel has at least :data:`_GAUSS_FFT_MIN_TAPS` taps (:data:`_GAUSS_FFT_MIN_TAPS_FUSED` when the
    tap loop is fused) and a radius below the image size are filtered through the FFT with edge-replicate padding
    (the same correlation; float rounding apart), the others with the separable tap loop; which path a sample takes
    depends only on its own sigma.
    """
    sig = sigma.detach().to("cpu", torch.float64).reshape(-1)
    if sig.numel() == 1:
        sig = sig.expand(x.shape[0])
    radii = torch.floor(4.0 * sig + 0.5).to(torch.int64)
    min_taps = _GAUSS_FFT_MIN_TAPS_FUSED if fused_runs(x) else _GAUSS_FFT_MIN_TAPS
    big = (2 * radii + 1 >= min_taps) & (radii < min(x.shape[-2:]))
    if x.dtype not in (torch.float32, torch.float64) or not bool(big.any()):
        return gaussian_filter2d(x, sig, truncate=4.0, mode="nearest")
    keys = [(v,) for v in sig.tolist()]
    if bool(big.all()):
        return _fft_grouped(x, "gaussian", keys, radii.tolist(), "nearest")
    out = torch.empty_like(x)
    fft_idx = torch.nonzero(big).view(-1)
    tap_idx = torch.nonzero(~big).view(-1)
    sel = fft_idx.tolist()
    xf = x.index_select(0, fft_idx.to(x.device))
    yf = _fft_grouped(xf, "gaussian", [keys[i] for i in sel], [int(radii[i]) for i in sel], "nearest")
    out.index_copy_(0, fft_idx.to(x.device), yf)
    xt = x.index_select(0, tap_idx.to(x.device))
    yt = gaussian_filter2d(xt, sig[tap_idx], truncate=4.0, mode="nearest")
    out.index_copy_(0, tap_idx.to(x.device), yt)
    return out


def gaussian_blur(x: Tensor, sigma: Tensor | float) -> Tensor:
    """Gaussian blur (spec 2.5): ``skimage.filters.gaussian`` per channel (H1: edge replicate, truncate 4), clipped.

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        sigma: (B,) or scalar standard deviation in pixels (0 = identity).

    Returns:
        (B, C, H, W), same dtype, in [0, 1]. Exact gradient.

    Example:
        >>> gaussian_blur(torch.rand(2, 3, 16, 16), torch.tensor([1.0, 0.4])).shape
        torch.Size([2, 3, 16, 16])
    """
    _check_layers(x)
    s = per_sample(sigma, x.shape[0], "sigma", lo=0.0)  # host values plan the taps
    return gaussian_nearest(x, s).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------- H2 defocus blur
def _cv2_gaussian_kernel1d(sigma: Tensor, ksize: int) -> Tensor:
    """``cv2.getGaussianKernel(ksize, sigma, CV_32F)`` per sample: (n,) float64 sigmas -> (n, ksize) float32.

    Weights ``exp(-x^2 / (2 sigma^2))`` at ``x = i - (ksize - 1) / 2``, normalised in double and rounded to float32
    (OpenCV 4's bit-exact kernel; OpenCV 3.4 normalised in float, an ulp-level difference). ``sigma <= 0`` uses
    OpenCV's fixed binomial kernels for 3 and 5 taps.
    """
    pos = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2.0
    s = sigma.clamp_min(1e-300).unsqueeze(1)
    t = torch.exp((-0.5 / (s * s)) * pos * pos)
    t = t / t.sum(1, keepdim=True)
    fixed = {3: [0.25, 0.5, 0.25], 5: [0.0625, 0.25, 0.375, 0.25, 0.0625]}[ksize]
    t = torch.where((sigma <= 0).unsqueeze(1), torch.tensor(fixed, dtype=torch.float64).expand_as(t), t)
    return t.to(torch.float32)


def disk_kernel(radius: Tensor | float, alias_blur: Tensor | float, batch: int | None = None) -> Tensor:
    """Anti-aliased disk kernels of the original ``disk(radius, alias_blur)`` (spec H2), per sample, on the CPU.

    1. Grid: ``-8 .. 8`` (17 x 17) with a 3 x 3 anti-alias kernel if ``radius <= 8``, else ``-R .. R`` with
       ``R = ceil(radius)`` and a 5 x 5 anti-alias kernel (the original's ``arange(-radius, radius + 1)``, equal for
       the integer radius 10 it uses; the ceiling keeps the grid integer for interpolated radii).
    2. Binary disk ``x^2 + y^2 <= radius^2`` in float32, divided by its pixel count.
    3. ``cv2.GaussianBlur`` of that array with ``sigmaX = sigmaY = alias_blur`` and OpenCV's default border
       (reflect-101), in float32, rows then columns. The result is **not** renormalised: kernels whose disk touches
       the grid border fold mass back in and sum to more than 1 (1.013 at radius 8, 1.011 at radius 10; quirk 6,
       reproduced).

    Kernels smaller than the batch maximum are zero-padded around the centre.

    Args:
        radius: (B,) or scalar disk radius in pixels, >= 0.
        alias_blur: (B,) or scalar anti-alias sigma, >= 0 (0 = OpenCV's fixed binomial kernel).
        batch: batch size when both arguments are scalars.

    Returns:
        (B, K, K) float32 correlation kernels (symmetric), ``K`` the largest grid of the batch.

    Raises:
        ValueError: negative or non-finite arguments.

    Example:
        >>> disk_kernel(torch.tensor([3.0, 10.0], dtype=torch.float64), 0.5).shape
        torch.Size([2, 21, 21])
    """
    sizes = [t.numel() for t in (radius, alias_blur) if isinstance(t, Tensor) and t.dim() > 0]
    b = batch if batch is not None else (max(sizes) if sizes else 1)
    r = per_sample(radius, b, "radius", lo=0.0).cpu()  # host values plan the kernels
    a = per_sample(alias_blur, b, "alias_blur", lo=0.0).cpu()
    half = torch.where(r <= 8, torch.full_like(r, 8.0), torch.ceil(r)).to(torch.int64)
    k_max = 2 * int(half.max()) + 1
    out = torch.zeros(b, k_max, k_max, dtype=torch.float32)
    for hv in torch.unique(half).tolist():
        sel = torch.nonzero(half == hv).view(-1)
        g = 2 * hv + 1
        lin = torch.arange(-hv, hv + 1, dtype=torch.float64)
        rr = r[sel].view(-1, 1, 1)
        disk = ((lin.view(1, 1, -1) ** 2 + lin.view(1, -1, 1) ** 2) <= rr * rr).to(torch.float32)
        disk = disk / disk.sum((1, 2), keepdim=True)
        ksize = 3 if hv == 8 else 5
        k1 = _cv2_gaussian_kernel1d(a[sel], ksize)
        # OpenCV filters rows (along x) first: filter the transposed array along H, then along W, transpose back.
        blurred = separable_filter2d(disk.transpose(1, 2).unsqueeze(1), k1, k1, mode="mirror")
        blurred = blurred.squeeze(1).transpose(1, 2)
        off = (k_max - g) // 2
        out[sel, off : off + g, off : off + g] = blurred
    return out


def defocus_blur(x: Tensor, radius: Tensor | float, alias_blur: Tensor | float, pad: int | None = None) -> Tensor:
    """Defocus blur (spec 2.7): correlate each channel with the H2 disk kernel, reflect-101 border, clip.

    Equivalent to the original's ``cv2.filter2D(x, -1, disk(radius, alias_blur))`` per channel (default border
    ``BORDER_REFLECT_101``, repeated reflection when the kernel is larger than the image). Runs as FFT correlations
    on the padded planes: one per distinct padding, with the per-sample kernel spectra (cached per parameter pair
    and FFT size). The kernel is built in float32 as the original does and cast to ``x``'s dtype.

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        radius: (B,) or scalar disk radius, >= 0.
        alias_blur: (B,) or scalar anti-alias sigma, >= 0.
        pad: reflect-101 padding of the FFT planes, at least every kernel's half-size. By default each sample is
            padded by its own kernel's half-size (8 up to radius 8, else ``ceil(radius)``), which is the cheapest FFT
            and keeps a sample's output bitwise independent of the rest of the batch.

    Returns:
        (B, C, H, W), same dtype, in [0, 1]. Exact gradient (linear up to the clip).

    Raises:
        ValueError: negative or non-finite arguments, ``pad`` below a kernel half-size.

    Example:
        >>> defocus_blur(torch.rand(2, 3, 16, 16), torch.tensor([0.3, 1.5]), torch.tensor([0.4, 0.1])).shape
        torch.Size([2, 3, 16, 16])
    """
    _check_layers(x)
    out_dtype = x.dtype
    xc = x if x.dtype in (torch.float32, torch.float64) else x.float()
    b = xc.shape[0]
    r = per_sample(radius, b, "radius", lo=0.0).cpu()  # host values plan the kernels
    a = per_sample(alias_blur, b, "alias_blur", lo=0.0).cpu()
    half = torch.where(r <= 8, torch.full_like(r, 8.0), torch.ceil(r)).to(torch.int64).tolist()
    if pad is not None and int(pad) < max(half):
        raise ValueError(f"pad: expected at least the kernel half-size {max(half)}, got {pad}")
    pads = [int(pad)] * b if pad is not None else half
    keys = list(zip(r.tolist(), a.tolist(), strict=True))
    return _fft_grouped(xc, "disk", keys, pads, "mirror").clamp(0.0, 1.0).to(out_dtype)


# ----------------------------------------------------------------------------------------------- glass blur
def glass_displacements(
    seed: Tensor,
    max_delta: Tensor | int,
    height: int,
    width: int,
    pass_index: int = 0,
    stream: int = GLASS_STREAM,
) -> tuple[Tensor, Tensor]:
    """Per-pixel glass-blur displacements of one pass, uniform on ``[-d, d - 1]`` (the original's exclusive bound).

    ``dx = floor(2 d u_0) - d`` and ``dy = floor(2 d u_1) - d`` with ``u`` the counter-based uniform field of shape
    (2, H, W) of the sample's seed in the pass's own stream, so a displacement depends only on (seed, pass, pixel).

    Args:
        seed: (B,) int64 per-sample seeds.
        max_delta: (B,) or scalar integer ``d >= 1``.
        height: H.
        width: W.
        pass_index: which pass (0-based); each pass has an independent field.
        stream: base stream id (the module passes ``stream("displacement")``).

    Returns:
        ``(dx, dy)``: (B, H, W) int64 column and row displacements on ``seed``'s device.

    Example:
        >>> dx, dy = glass_displacements(torch.tensor([1, 2]), 2, 8, 8)
        >>> dx.shape, int(dx.min()) >= -2, int(dy.max()) <= 1
        (torch.Size([2, 8, 8]), True, True)
    """
    check_shape(seed, "B", "seed")
    d = per_sample(max_delta, seed.shape[0], "max_delta", device=seed.device)
    if (d < 1).any() or (d != torch.round(d)).any():
        raise ValueError(f"max_delta: expected integers >= 1, got {d.tolist()}")
    s = (int(stream) + int(pass_index) * 0x9E3779B9) & MASK32
    u = field_uniform(seed, (2, height, width), s, dtype=torch.float32, device=seed.device)
    span = (2.0 * d).view(-1, 1, 1)
    k = torch.minimum(torch.floor(u.to(torch.float64) * span.unsqueeze(1)), span.unsqueeze(1) - 1)
    v = (k - d.view(-1, 1, 1, 1)).to(torch.int64)
    return v[:, 0], v[:, 1]


def glass_shuffle_index(dx: Tensor, dy: Tensor, max_delta: Tensor | int) -> Tensor:
    """Gather index of one pass of the original's sequential pixel "swap" loop, computed in parallel.

    The original visits rows ``h = H - d, ..., d + 1`` and inside each row columns ``w = W - d, ..., d + 1``
    (reverse raster order; the hard-coded side 224/64/32 of the original is generalised to H and W, which is equal
    at native sizes) and executes ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with ``(h', w') = (h + dy, w + dx)``.
    Because NumPy pixel indexing returns views, this is a **copy**, not a swap (quirk 2, reproduced): ``x[h, w]``
    takes the *current* value of ``x[h', w']``, and ``x[h', w']`` keeps it. The current value is the one written
    when ``(h', w')`` was visited earlier in the scan (it lies inside the scanned region and after ``(h, w)`` in
    raster order), otherwise the value at the start of the pass. Each visited pixel therefore points at its source;
    pointers into already visited pixels are followed by pointer doubling (``log2`` of the longest chain steps)
    until every pixel points at the pass-start pixel whose value it ends with. Rows/columns ``0 .. d`` and the last
    ``d - 1`` are never written.

    Args:
        dx: (B, H, W) integer column displacements in ``[-d, d - 1]`` (only read inside the scanned region).
        dy: (B, H, W) integer row displacements in ``[-d, d - 1]``.
        max_delta: (B,) or scalar integer ``d >= 1``.

    Returns:
        (B, H * W) int64: output pixel ``p`` of the pass equals input pixel ``index[p]`` (flat ``h * W + w``).

    Raises:
        ValueError: shapes differ, ``d < 1``, or a displacement inside the scanned region is out of range.

    Example:
        >>> dx = torch.zeros(1, 6, 6, dtype=torch.long); dy = torch.full((1, 6, 6), -1)
        >>> glass_shuffle_index(dx, dy, 1).view(6, 6)[3].tolist()
        [18, 19, 14, 15, 16, 17]
    """
    check_shape(dx, "B H W", "dx")
    if dy.shape != dx.shape:
        raise ValueError(f"dy: expected shape {tuple(dx.shape)} like dx, got {tuple(dy.shape)}")
    b, h, w = dx.shape
    dev = dx.device
    d = per_sample(max_delta, b, "max_delta", device=dev)
    if (d < 1).any() or (d != torch.round(d)).any():
        raise ValueError(f"max_delta: expected integers >= 1, got {d.tolist()}")
    d = d.to(torch.int64).view(-1, 1, 1)
    hh = torch.arange(h, device=dev).view(1, h, 1)
    ww = torch.arange(w, device=dev).view(1, 1, w)
    region = (hh >= d + 1) & (hh <= h - d) & (ww >= d + 1) & (ww <= w - d)
    dx = dx.to(dev, torch.int64)
    dy = dy.to(dev, torch.int64)
    bad = region & ((dx < -d) | (dx > d - 1) | (dy < -d) | (dy > d - 1))
    if bool(bad.any()):
        raise ValueError("dx/dy: displacements inside the scanned region must lie in [-max_delta, max_delta - 1]")
    p = (hh * w + ww).expand(b, h, w)
    q = torch.where(region, (hh + dy) * w + (ww + dx), p).reshape(b, h * w)
    p = p.reshape(b, h * w)
    reg = region.reshape(b, h * w)
    earlier = reg & reg.gather(1, q) & (q > p)
    root = torch.where(earlier, q, p)
    for _ in range(max(1, math.ceil(math.log2(h * w))) + 1):
        nxt = root.gather(1, root)
        if torch.equal(nxt, root):
            break
        root = nxt
    return q.gather(1, root)


def _mix32_pure(x: Tensor) -> Tensor:
    """``rng.mix32`` (lowbias32 on int32 bit patterns, wrapping multiply) as a pure expression for fused kernels."""
    x = x ^ _srl(x, 16)
    x = x * _i32(_M1)
    x = x ^ _srl(x, 15)
    x = x * _i32(_M2)
    return x ^ _srl(x, 16)


@fused
def _glass_links(k1: Tensor, k2: Tensor, d: Tensor, *, height: int, width: int) -> tuple[Tensor, Tensor]:
    """One glass pass's source pointers, fused: hash -> displacements -> ``(q, root)`` of :func:`glass_shuffle_index`.

    Exactly :func:`glass_displacements` followed by the set-up of :func:`glass_shuffle_index` (before pointer
    doubling) in one loop over the pixels: the uniform of counter ``p`` (``dx``) and ``H * W + p`` (``dy``) is
    ``field_uniform``'s float32 value of ``mix32(mix32(c ^ k1) + k2)``; ``region[q]`` is evaluated from ``q``'s
    coordinates instead of a gather. Integer maths is exact and the float steps are the same operations in the same
    order, so compiled and eager agree bit for bit (tested).

    Args:
        k1: (B, 1) int32 first hash key of the pass's stream (``rng._keys``).
        k2: (B, 1) int32 second key.
        d: (B, 1) int64 maximum displacement (>= 1).
        height: H.
        width: W.

    Returns:
        ``(q, root)``: (B, H * W) int64 source pixel of each visited pixel (itself elsewhere) and the initial
        pointer (``q`` where the source is visited earlier in the scan, else the pixel itself).
    """
    n = height * width
    p = torch.arange(n, device=k1.device).view(1, n)
    us = []
    for off in (0, n):  # dx then dy: counters p and n + p of the (2, H, W) field
        hsh = _mix32_pure(_mix32_pure((p + off).to(torch.int32) ^ k1) + k2)
        u = (_srl(hsh, 8).to(torch.float32) + 0.5) * (1.0 / 16777216.0)
        us.append(u.clamp(max=1.0 - 2.0**-24))
    span = (2 * d).to(torch.float64)
    dx = torch.minimum(torch.floor(us[0].to(torch.float64) * span), span - 1).to(torch.int64) - d
    dy = torch.minimum(torch.floor(us[1].to(torch.float64) * span), span - 1).to(torch.int64) - d
    hh = torch.div(p, width, rounding_mode="floor")
    ww = p - hh * width
    region = (hh >= d + 1) & (hh <= height - d) & (ww >= d + 1) & (ww <= width - d)
    qh = hh + dy
    qw = ww + dx
    q = torch.where(region, qh * width + qw, p)
    q_region = (qh >= d + 1) & (qh <= height - d) & (qw >= d + 1) & (qw <= width - d)
    root = torch.where(region & q_region & (q > p), q, p)
    return q, root


def _follow_pointers(root: Tensor) -> Tensor:
    """Pointer doubling: ``root <- root[root]`` until it stops changing (at most log2(n) + 1 steps).

    On a device all the steps run (steps after convergence are identities; no host read); on the host the loop stops
    as soon as a step changes nothing (reading a host tensor costs no synchronisation).
    """
    for _ in range(max(1, math.ceil(math.log2(max(2, root.shape[-1])))) + 1):
        nxt = root.gather(1, root)
        if root.device.type == "cpu" and torch.equal(nxt, root):
            break
        root = nxt
    return root


def glass_blur(
    x: Tensor,
    sigma: Tensor | float,
    max_delta: Tensor | int,
    iterations: Tensor | int,
    seed: Tensor,
    stream: int = GLASS_STREAM,
) -> Tensor:
    """Glass blur (spec 2.6): Gaussian blur, 8-bit truncation, local pixel copying passes, Gaussian blur.

    1. ``truncate_uint8(gaussian(x, sigma))`` (H1, edge replicate; straight-through gradient for the truncation).
    2. ``iterations`` passes of :func:`glass_shuffle_index` with displacements from :func:`glass_displacements`
       (exact sequential semantics: copy-not-swap, ``[-d, d - 1]`` range, reverse raster order, untouched borders).
       The passes compose into one gather of the step-1 image. Each pass's hash, displacements and pointer set-up
       run as one fused kernel (:func:`_glass_links`, bit-identical to the two public functions), then pointer
       doubling (a few gathers).
    3. ``clip(gaussian(., sigma), 0, 1)``.

    Gradient: exact through the Gaussians; the pixel copying is a gather, whose own gradient (scatter-add to the
    source pixels) is used; straight-through for the truncation.

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        sigma: (B,) or scalar Gaussian sigma, >= 0.
        max_delta: (B,) or scalar integer maximum displacement ``d >= 1``.
        iterations: (B,) or scalar integer number of passes, >= 0.
        seed: (B,) int64 per-sample seeds of the displacement fields.
        stream: base hash stream of the displacements.

    Returns:
        (B, C, H, W), same dtype, in [0, 1].

    Example:
        >>> glass_blur(torch.rand(2, 3, 16, 16), 0.7, torch.tensor([1, 2]), 2, torch.tensor([3, 4])).shape
        torch.Size([2, 3, 16, 16])
    """
    _check_layers(x)
    b, c, h, w = x.shape
    check_shape(seed, "B", "seed")
    check_batch_param(seed, b, "seed")
    sig = per_sample(sigma, b, "sigma", lo=0.0)  # host values plan the taps
    d = per_sample(max_delta, b, "max_delta", lo=1.0)
    it = per_sample(iterations, b, "iterations", lo=0.0)  # host values plan the loop over iterations
    for name, t in (("iterations", it), ("max_delta", d)):
        if t.device.type == "cpu" and not torch.equal(t, torch.round(t)):
            raise ValueError(f"{name}: expected integers, got {t.tolist()}")
    if seed.is_floating_point() or seed.is_complex():
        raise TypeError(f"seed: expected an integer tensor, got dtype {seed.dtype}")
    y = truncate_uint8(gaussian_nearest(x, sig))
    seed_cpu = seed.detach().to("cpu", torch.int64)
    d_long = d.to(device=x.device, dtype=torch.int64).view(-1, 1)
    it_cpu = it.cpu()  # host values (a device tensor is read back once)
    index: Tensor | None = None
    for k in range(int(it_cpu.max()) if it_cpu.numel() else 0):
        k1, k2 = _keys(seed_cpu, (int(stream) + k * 0x9E3779B9) & MASK32)  # the stream of glass_displacements(k)
        q, root = _glass_links(k1.to(x.device).view(-1, 1), k2.to(x.device).view(-1, 1), d_long, height=h, width=w)
        step = q.gather(1, _follow_pointers(root))
        active = it_cpu > k
        if not bool(active.all()):
            ident = torch.arange(h * w, device=x.device).view(1, -1)
            step = torch.where(active.to(x.device).view(-1, 1), step, ident)
        index = step if index is None else index.gather(1, step)
    if index is not None:
        y = y.reshape(b, c, h * w).gather(2, index.unsqueeze(1).expand(b, c, h * w)).view(b, c, h, w)
    return gaussian_nearest(y, sig).clamp(0.0, 1.0)
