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
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import check_batch_param, check_shape
from ._common import straight_through
from ._rng import stream_id
from .filters import boundary_index

__all__ = [
    "clipped_zoom",
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


def _per_sample(v: Tensor | float, batch: int, name: str, device: torch.device | None = None) -> Tensor:
    """A scalar or (B,) argument -> (B,) float64 tensor (on ``device`` or the argument's own device)."""
    t = torch.as_tensor(v, dtype=torch.float64)
    if device is not None:
        t = t.to(device)
    t = t.reshape(-1) if t.dim() <= 1 else t
    if t.dim() == 1 and t.numel() == 1 and batch != 1:
        t = t.expand(batch)
    check_batch_param(t, batch, name)
    if t.dim() != 1:
        raise ValueError(f"{name}: expected a scalar or shape ({batch},), got shape {tuple(t.shape)}")
    if torch.isnan(t).any():
        raise ValueError(f"{name}: contains NaN")
    return t


def _fft_correlate(xp: Tensor, weight: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """Circular correlation of padded planes with per-sample sparse kernels, via the FFT.

    ``out[b, c, y, x] = sum_t weight[b, t] * xp[b, c, (y + dy[b, t]) % H, (x + dx[b, t]) % W]``.
    The caller pads so that the central crop never wraps.

    Args:
        xp: (B, C, H, W) float32/float64 planes.
        weight: (B, T) tap weights (any float dtype; cast to ``xp``'s).
        dy: (B, T) int64 row offsets.
        dx: (B, T) int64 column offsets.

    Returns:
        (B, C, H, W) in ``xp``'s dtype.
    """
    b, _, h, w = xp.shape
    dev = xp.device
    pos = torch.remainder(-dy.to(dev), h) * w + torch.remainder(-dx.to(dev), w)
    g = torch.zeros(b, h * w, dtype=xp.dtype, device=dev)
    g.scatter_add_(1, pos, weight.to(device=dev, dtype=xp.dtype))
    spec = torch.fft.rfft2(g.view(b, 1, h, w))
    return torch.fft.irfft2(torch.fft.rfft2(xp) * spec, s=(h, w))


def _pad_index(x: Tensor, pad: int, mode: str) -> Tensor:
    """Pad H and W by ``pad`` with a SciPy boundary mode through index mapping (any pad width)."""
    h, w = x.shape[-2:]
    iy = boundary_index(torch.arange(-pad, h + pad, device=x.device), h, mode)
    ix = boundary_index(torch.arange(-pad, w + pad, device=x.device), w, mode)
    return x.index_select(-2, iy).index_select(-1, ix)


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
    r = _per_sample(radius, b, "radius").cpu()
    s = _per_sample(sigma, b, "sigma").cpu()
    a = _per_sample(angle, b, "angle").cpu()
    if (r <= 0).any() or not torch.isfinite(r).all():
        raise ValueError(f"radius: expected finite values > 0, got {r.tolist()}")
    if (s < 0).any() or not torch.isfinite(s).all():
        raise ValueError(f"sigma: expected finite values >= 0, got {s.tolist()}")
    if not torch.isfinite(a).all():
        raise ValueError(f"angle: expected finite degrees, got {a.tolist()}")
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
) -> Tensor:
    """ImageMagick motion blur (``MagickMotionBlurImage(radius, sigma, angle)``, spec H5) of a batch of layers.

    Every channel is blurred independently with the one-sided half-Gaussian line kernel of
    :func:`motion_blur_taps`, reading outside the image with edge replication (ImageMagick's ``edge`` virtual
    pixels): ``out(y, x) = sum_i k_i * in(clamp(y + dy_i), clamp(x + dx_i))``. With ``quantize`` the result is
    converted the way the original's PNG -> ImageMagick Q16 -> PNG round trip does: the input is read as 16-bit
    quantum ``65535 * x`` (``257 * DN`` for 8-bit input), the sum is rounded to a Q16 quantum and written back to
    8 bit by truncation, ``out8 = floor(round(65535 * sum) / 257)``. For 8-bit inputs this is bit-exact against
    ImageMagick 6.9.11 Q16 in float64 (tested); in float32 a few pixels in 10^4 can differ by one level.

    The convolution runs as one FFT correlation per batch on the edge-padded planes (per-sample kernels, no loop
    over taps or images). Gradient: exact for the linear blur, straight-through for the quantisation.

    Args:
        x: layers, shape (B, C, H, W), float in [0, 1] (any C: 3 for images, 1 for a snow layer). The original
            receives 8-bit images; other inputs are blurred as they are (no input quantisation).
        radius: (B,) or scalar kernel radius, > 0; the kernel has ``2 * ceil(radius) + 1`` taps.
        sigma: (B,) or scalar standard deviation of the half-Gaussian, >= 0.
        angle: (B,) or scalar direction in degrees (0 = kernel reads to the right, 90 = downward).
        quantize: apply the Q16 -> 8 bit output quantisation (values ``k / 255``).

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
    pad = int(torch.maximum(dy.abs().max(), dx.abs().max()))
    xp = _pad_index(xc, pad, "nearest") if pad > 0 else xc
    out = _fft_correlate(xp, k, dy, dx)[..., pad : pad + h, pad : pad + w]
    if quantize:
        with torch.no_grad():
            q16 = torch.floor(out * 65535.0 + 0.5).clamp(0.0, 65535.0)
            q8 = torch.floor(q16 / 257.0) / 255.0
        out = straight_through(out, q8)
    return out.to(out_dtype)


# ----------------------------------------------------------------------------------------------- H4 clipped zoom
def _zoom_axis(n: int, zoom: Tensor) -> tuple[Tensor, Tensor]:
    """Source rows (B, n) int64 and fractions (B, n) float64 of the centre zoom along one axis of length ``n``.

    ``ch = ceil(n / z)``, ``top = (n - ch) // 2``, ``o = round(ch * z)`` (half to even, as Python's ``round``),
    ``trim = (o - n) // 2``; output ``i`` samples ``top + (i + trim) * (ch - 1) / (o - 1)`` (align corners).
    """
    z = zoom.unsqueeze(1)
    ch = torch.ceil(n / z)
    top = torch.floor((n - ch) / 2)
    o = torch.round(ch * z)
    trim = torch.floor((o - n) / 2)
    scale = torch.where(o > 1, (ch - 1) / (o - 1).clamp_min(1), torch.zeros_like(ch))
    i = torch.arange(n, dtype=torch.float64, device=zoom.device).unsqueeze(0)
    pos = (i + trim) * scale
    base = torch.floor(pos)
    frac = pos - base
    idx = (base + top).to(torch.int64).clamp(0, n - 1)
    return idx, frac


def _lerp_axis(x: Tensor, idx: Tensor, frac: Tensor, dim: int) -> Tensor:
    """Linear interpolation of ``x`` (B, C, H, W) along ``dim`` at per-sample rows ``idx + frac`` ((B, n))."""
    n = x.shape[dim]
    b, c = x.shape[:2]
    shape = [b, 1, 1, 1]
    shape[dim] = idx.shape[1]
    full = list(x.shape)
    full[dim] = idx.shape[1]
    i0 = idx.view(shape).expand(full)
    i1 = (idx + 1).clamp(max=n - 1).view(shape).expand(full)
    f = frac.to(x.dtype).view(shape)
    a = x.gather(dim, i0)
    return a + f * (x.gather(dim, i1) - a)


def clipped_zoom(x: Tensor, zoom: Tensor | float) -> Tensor:
    """Centre zoom of the original (``clipped_zoom``, spec H4) with per-sample zoom factors.

    Per axis of length ``n``: crop ``ch = ceil(n / z)`` pixels starting at ``top = (n - ch) // 2``, resize them to
    ``o = round(ch * z)`` pixels with SciPy's ``zoom(order=1)`` (linear, align corners: output ``i`` reads input
    ``i * (ch - 1) / (o - 1)``), keep ``n`` pixels starting at ``trim = (o - n) // 2``. As ``o`` is ``n`` or
    ``n + 1`` almost always, the kept window is top-left aligned (quirk 8), reproduced. Implemented as one
    separable linear resampling (two gathers per axis), no intermediate crop.

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
    z = _per_sample(zoom, x.shape[0], "zoom", device=x.device)
    if not torch.isfinite(z).all() or (z < 1).any():
        raise ValueError(f"zoom: expected finite factors >= 1, got {z.tolist()}")
    h, w = x.shape[-2:]
    iy, fy = _zoom_axis(h, z)
    ix, fx = _zoom_axis(w, z)
    return _lerp_axis(_lerp_axis(x, iy, fy, 2), ix, fx, 3)


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
    st = _per_sample(step, b, "step")
    n = _per_sample(count, b, "count", device=st.device)
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
    f = torch.as_tensor(factors, dtype=torch.float64).to(x.device)
    if f.dim() != 2 or f.shape[0] != b:
        raise ValueError(f"factors: expected shape ({b}, K), got {tuple(f.shape)}")
    wt = torch.ones_like(f) if weights is None else torch.as_tensor(weights, dtype=torch.float64).to(x.device)
    if wt.shape != f.shape:
        raise ValueError(f"weights: expected shape {tuple(f.shape)} like factors, got {tuple(wt.shape)}")
    if (wt < 0).any() or not torch.isfinite(wt).all():
        raise ValueError("weights: expected finite non-negative values")
    acc = torch.zeros_like(x)
    active = (wt != 0).any(0).tolist()
    for k in range(f.shape[1]):
        if not active[k]:
            continue
        zk = torch.where(wt[:, k] != 0, f[:, k], torch.ones_like(f[:, k]))
        zoomed = clipped_zoom(x, zk)
        wk = wt[:, k]
        if bool((wk == 1).all()):
            acc = acc + zoomed
        else:
            acc = acc + wk.to(x.dtype).view(-1, 1, 1, 1) * zoomed
    norm = (1.0 + wt.sum(1)).to(x.dtype).view(-1, 1, 1, 1)
    return ((x + acc) / norm).clamp(0.0, 1.0)
