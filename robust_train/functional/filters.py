"""Separable filtering with SciPy/scikit-image boundary semantics and per-sample kernels.

The original corruptions call ``skimage.filters.gaussian`` (spec H1): a sampled Gaussian of radius
``int(truncate * sigma + 0.5)`` normalised to sum 1, applied separably with a SciPy boundary mode. Kernels can be far
larger than the image (elastic transform: radius 512 on 32 px images), where SciPy keeps reflecting; this module
builds padded rows by *index mapping*, so any pad width is exact for every mode.

Modes (SciPy names): ``"nearest"`` edge replicate; ``"reflect"`` half-sample symmetric (``c b a | a b c``);
``"mirror"`` whole-sample symmetric (``c b | a b c``, OpenCV's reflect-101); ``"wrap"``; ``"constant"`` (zeros).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._fused import fused
from .checks import check_shape, per_sample

__all__ = [
    "MODES",
    "TAP_LOOP_MAX",
    "boundary_index",
    "gaussian_filter2d",
    "gaussian_kernel1d",
    "pad2d",
    "pad_axis",
    "separable_filter2d",
]

MODES = ("nearest", "reflect", "mirror", "wrap", "constant")


def boundary_index(idx: Tensor, n: int, mode: str) -> Tensor:
    """Map (possibly out-of-range) integer positions onto ``[0, n)`` with a SciPy boundary mode.

    For ``"constant"`` out-of-range positions map to ``-1``.

    Args:
        idx: int64 positions, any shape.
        n: axis length (>= 1).
        mode: one of :data:`MODES`.

    Example:
        >>> boundary_index(torch.arange(-3, 6), 3, "reflect").tolist()
        [2, 1, 0, 0, 1, 2, 2, 1, 0]
        >>> boundary_index(torch.arange(-3, 6), 3, "mirror").tolist()
        [1, 2, 1, 0, 1, 2, 1, 0, 1]
    """
    if mode == "nearest":
        return idx.clamp(0, n - 1)
    if mode == "reflect":
        m = torch.remainder(idx, 2 * n)
        return torch.where(m < n, m, 2 * n - 1 - m)
    if mode == "mirror":
        if n == 1:
            return torch.zeros_like(idx)
        m = torch.remainder(idx, 2 * n - 2)
        return torch.where(m < n, m, 2 * n - 2 - m)
    if mode == "wrap":
        return torch.remainder(idx, n)
    if mode == "constant":
        return torch.where((idx >= 0) & (idx < n), idx, torch.full_like(idx, -1))
    raise ValueError(f"unknown boundary mode {mode!r}; expected one of {list(MODES)}")


def gaussian_kernel1d(sigma: Tensor, truncate: float = 4.0, radius: int | None = None) -> Tensor:
    """Per-sample sampled Gaussian kernels, SciPy/skimage style, zero-padded to a common radius.

    Sample ``b`` has radius ``int(truncate * sigma_b + 0.5)`` and weights ``exp(-i^2 / (2 sigma_b^2))`` normalised to
    sum 1; ``sigma_b == 0`` gives the identity kernel ``[1]``.

    The radius is planned from the values of ``sigma``: pass a host (CPU) tensor and move the kernels to the device;
    a device ``sigma`` is read back once (a synchronisation) unless ``radius`` is given.

    Args:
        sigma: (B,) non-negative standard deviations (float64 recommended).
        truncate: radius in units of sigma.
        radius: common radius to pad to; defaults to the largest per-sample radius.

    Returns:
        (B, 2R+1) kernels in ``sigma``'s dtype.

    Example:
        >>> gaussian_kernel1d(torch.tensor([0.0, 1.0], dtype=torch.float64)).shape
        torch.Size([2, 9])
    """
    sigma = per_sample(sigma, sigma.numel(), "sigma", lo=0.0, dtype=sigma.dtype)
    radii = torch.floor(truncate * sigma + 0.5).to(torch.int64)
    r_max = int(radii.max()) if radius is None else int(radius)
    pos = torch.arange(-r_max, r_max + 1, device=sigma.device, dtype=sigma.dtype)
    s = sigma.clamp_min(1e-12).unsqueeze(1)
    w = torch.exp(-0.5 * (pos / s) ** 2)
    w = torch.where(pos.abs().unsqueeze(0) <= radii.unsqueeze(1).to(sigma.dtype), w, torch.zeros_like(w))
    w = w / w.sum(1, keepdim=True)
    identity = (pos == 0).to(sigma.dtype).expand_as(w)
    return torch.where((sigma == 0).unsqueeze(1), identity, w)


def pad_axis(x: Tensor, dim: int, before: int, after: int, mode: str) -> Tensor:
    """Pad one spatial axis of a (B, C, H, W) tensor with a SciPy boundary mode, for any pad width.

    The interior is copied once into a preallocated tensor and only the border rows/columns are gathered by index
    mapping (:func:`boundary_index`, repeated reflection): cheaper on the CPU than ``F.pad(mode="replicate")``, valid
    for pads wider than the image, and differentiable.

    Args:
        x: (B, C, H, W) tensor.
        dim: 2 (H) or 3 (W).
        before: elements added before index 0.
        after: elements added after the last index.
        mode: one of :data:`MODES`.

    Example:
        >>> pad_axis(torch.arange(3.0).view(1, 1, 1, 3), 3, 4, 0, "reflect").flatten().tolist()
        [2.0, 2.0, 1.0, 0.0, 0.0, 1.0, 2.0]
    """
    if dim not in (2, 3) or x.dim() != 4:
        raise ValueError(f"pad_axis: expected a (B, C, H, W) tensor and dim 2 or 3, got {tuple(x.shape)}, dim={dim}")
    if mode not in MODES:
        raise ValueError(f"unknown boundary mode {mode!r}; expected one of {list(MODES)}")
    n = x.shape[dim]
    shape = list(x.shape)
    shape[dim] = n + before + after
    out = x.new_empty(shape)
    out.narrow(dim, before, n).copy_(x)
    for start, count, first in ((0, before, -before), (before + n, after, n)):
        if count <= 0:
            continue
        idx = boundary_index(torch.arange(first, first + count, device=x.device), n, mode)
        if mode == "constant":
            out.narrow(dim, start, count).zero_()
        else:
            out.narrow(dim, start, count).copy_(x.index_select(dim, idx))
    return out


def pad2d(x: Tensor, pad: int, mode: str) -> Tensor:
    """Pad H and W of a (B, C, H, W) tensor by ``pad`` on every side with a SciPy boundary mode (any width)."""
    return pad_axis(pad_axis(x, 2, pad, pad, mode), 3, pad, pad, mode)


#: Kernels up to this many taps are applied as one fused multiply-add per tap over shifted views (much faster on the
#: CPU than a grouped convolution, and the same arithmetic on every device); longer ones use a grouped convolution.
TAP_LOOP_MAX = 65


@fused
def _tap_sum(xp: Tensor, weights: Tensor, *, dim: int, n: int) -> Tensor:
    """``sum_i weights[b, i] * xp[b].narrow(dim, i, n)`` per sample, accumulated in tap order.

    ``weights`` (B, K) holds each sample's kernel (shorter kernels zero-padded: a zero tap adds an exact 0). One
    multiply-add per tap over a shifted view with a per-sample weight, whatever the mix of kernels in the batch: the
    ATen op count depends on K only. Eager ``addcmul`` rounds as the former ``add_(alpha=)`` per kernel group did
    (bit-identical); compiled, the taps are one loop (the fusion contract allows a last-bit difference).
    """
    b = xp.shape[0]
    acc = xp.narrow(dim, 0, n) * weights[:, 0].view(b, 1, 1, 1)
    for i in range(1, weights.shape[1]):
        acc = torch.addcmul(acc, xp.narrow(dim, i, n), weights[:, i].view(b, 1, 1, 1))
    return acc


def _filter_axis(x: Tensor, kernel: Tensor, dim: int, mode: str) -> Tensor:
    """Correlate every (B, C) plane of ``x`` along ``dim`` (2 = H, 3 = W) with its sample's 1-D kernel.

    Kernels up to :data:`TAP_LOOP_MAX` taps run as a tap loop with per-sample weights (:func:`_tap_sum`), longer ones
    as a grouped convolution. ``kernel`` (B, K) may be a host tensor (copied to the device) or a device tensor.
    """
    b, c, h, w = x.shape
    k = kernel.shape[1]
    r = (k - 1) // 2
    n = x.shape[dim]
    xp = pad_axis(x, dim, r, r, mode)
    weight = kernel.detach().to(device=x.device, dtype=x.dtype)
    if k <= TAP_LOOP_MAX:
        return _tap_sum(xp, weight, dim=dim, n=n)
    weight = weight.repeat_interleave(c, dim=0)  # (B*C, K)
    xp = xp.reshape(1, b * c, *xp.shape[2:])
    if dim == 2:
        out = F.conv2d(xp, weight.view(b * c, 1, k, 1), groups=b * c)
    else:
        out = F.conv2d(xp, weight.view(b * c, 1, 1, k), groups=b * c)
    return out.view(b, c, h, w)


def separable_filter2d(x: Tensor, kernel_y: Tensor, kernel_x: Tensor, mode: str = "nearest") -> Tensor:
    """Correlate each sample with its own separable kernel (rows first, then columns, as SciPy does).

    Args:
        x: (B, C, H, W) float.
        kernel_y: (B, Ky) odd-length kernels along H.
        kernel_x: (B, Kx) odd-length kernels along W.
        mode: boundary mode (:data:`MODES`).

    Returns:
        (B, C, H, W), same dtype.
    """
    check_shape(x, "B C H W")
    for name, k in (("kernel_y", kernel_y), ("kernel_x", kernel_x)):
        if k.dim() != 2 or k.shape[0] != x.shape[0] or k.shape[1] % 2 == 0:
            raise ValueError(f"{name}: expected shape (B={x.shape[0]}, odd K), got {tuple(k.shape)}")
    out = _filter_axis(x, kernel_y, 2, mode)
    return _filter_axis(out, kernel_x, 3, mode)


def gaussian_filter2d(x: Tensor, sigma: Tensor | float, truncate: float = 4.0, mode: str = "nearest") -> Tensor:
    """``skimage.filters.gaussian`` on each channel with a per-sample sigma (spec H1).

    Args:
        x: (B, C, H, W) float images.
        sigma: (B,) or scalar standard deviation in pixels (0 = identity).
        truncate: kernel radius ``int(truncate * sigma + 0.5)``.
        mode: SciPy boundary mode; skimage's default is ``"nearest"``.

    Returns:
        (B, C, H, W), same dtype as ``x``. Differentiable in ``x``.

    Example:
        >>> gaussian_filter2d(torch.rand(2, 3, 8, 8), torch.tensor([0.5, 2.0])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_shape(x, "B C H W")
    sig = per_sample(sigma, x.shape[0], "sigma", lo=0.0)  # host values plan the taps
    k = gaussian_kernel1d(sig, truncate)  # host kernels: the tap loop reads its weights on the host
    if k.shape[1] == 1:
        return x.clone()
    return separable_filter2d(x, k, k, mode)
