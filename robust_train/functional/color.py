"""Colour-space helpers with the exact semantics the original ImageNet-C code relied on.

* :func:`rgb_to_hsv` / :func:`hsv_to_rgb` follow scikit-image's ``rgb2hsv`` / ``hsv2rgb`` (spec H7), including the
  tie rule for the hue: when several channels hold the maximum, the *last* assignment in skimage's code wins
  (blue over green over red), and hue and saturation are 0 where ``max == min``.
* :func:`rgb_to_grey` is OpenCV's ``cvtColor(..., COLOR_RGB2GRAY)`` on float32 images (spec H8):
  ``0.299 R + 0.587 G + 0.114 B``.

All functions are batched, device-agnostic and differentiable almost everywhere (the hue is piecewise smooth; at
``max == min`` the gradient of hue and saturation is 0, no NaN is produced).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import check_shape

__all__ = ["GREY_WEIGHTS", "hsv_to_rgb", "hsv_to_rgb_planes", "rgb_to_grey", "rgb_to_hsv", "rgb_to_hsv_planes"]

#: OpenCV's RGB -> grey coefficients (R, G, B).
GREY_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)

# hsv2rgb sextant table: for sector k (0..5) the (R, G, B) outputs pick from the stack (v, p, q, t).
_V, _P, _Q, _T = 0, 1, 2, 3
_SEXTANT = (
    (_V, _T, _P),
    (_Q, _V, _P),
    (_P, _V, _T),
    (_P, _Q, _V),
    (_T, _P, _V),
    (_V, _P, _Q),
)


def _check_float_image(x: Tensor, name: str) -> None:
    check_shape(x, "B 3 H W", name)
    if not torch.is_floating_point(x):
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")


def rgb_to_hsv_planes(r: Tensor, g: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`rgb_to_hsv` on separate channel planes (same arithmetic), avoiding stacking.

    Args:
        r: red, any shape, float.
        g: green, same shape.
        b: blue, same shape.

    Returns:
        ``(h, s, v)`` tensors of the same shape and dtype.
    """
    # Selections are written as exact arithmetic (a * m + b * (1 - m) with m in {0, 1}) instead of torch.where,
    # which is an order of magnitude slower than arithmetic on CPU builds of torch 2.x.
    v = torch.maximum(torch.maximum(r, g), b)
    delta = v - torch.minimum(torch.minimum(r, g), b)
    flat = (delta == 0).to(r.dtype)
    safe_delta = delta + flat  # 1 where max == min, else delta (exact)
    s = delta / (v + flat)  # 0 / 1 where max == min (then also V may be 0), else delta / V (exact)
    in_b = (b == v).to(r.dtype)
    in_g = (g == v).to(r.dtype) * (1.0 - in_b)
    in_r = 1.0 - in_b - in_g
    h = ((4.0 + (r - g) / safe_delta) * in_b + (2.0 + (b - r) / safe_delta) * in_g) + ((g - b) / safe_delta) * in_r
    h = h / 6.0
    # (h / 6) mod 1 with h / 6 in [-1/6, 5/6]: NumPy's float remainder gives fl(a + 1) for a < 0, else a
    h = h + (h < 0).to(h.dtype)
    h = h * (1.0 - flat)
    return h, s, v


def rgb_to_hsv(x: Tensor) -> Tensor:
    """RGB -> HSV exactly as ``skimage.color.rgb2hsv`` (spec H7).

    ``V = max(R, G, B)``, ``S = (max - min) / V`` (0 where ``max == min``), hue from the channel holding the max
    (ties: blue wins over green over red, as the last assignment in skimage), ``H = (h / 6) mod 1`` and 0 where
    ``max == min``.

    Args:
        x: RGB images, shape (B, 3, H, W), float in [0, 1].

    Returns:
        HSV images, shape (B, 3, H, W), same dtype, every channel in [0, 1].

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` does not have shape (B, 3, H, W).

    Example:
        >>> rgb_to_hsv(torch.rand(2, 3, 4, 4)).shape
        torch.Size([2, 3, 4, 4])
        >>> rgb_to_hsv(torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)).flatten().tolist()
        [0.0833333358168602, 1.0, 1.0]
    """
    _check_float_image(x, "x")
    return torch.stack(rgb_to_hsv_planes(*x.unbind(1)), dim=1)


def hsv_to_rgb_planes(h: Tensor, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`hsv_to_rgb` on separate planes (same arithmetic).

    Args:
        h: hue, any shape, float.
        s: saturation, same shape.
        v: value, same shape.

    Returns:
        ``(r, g, b)`` tensors of the same shape and dtype.
    """
    h6 = h * 6.0
    hi = torch.floor(h6)
    f = h6 - hi
    p = v * (1.0 - s)
    q = v * (1.0 - f * s)
    t = v * (1.0 - (1.0 - f) * s)
    sector = hi.detach().to(torch.int64)
    sector = sector - 6 * (sector >= 6).to(torch.int64)  # i mod 6 for i in [0, 6] (hue in [0, 1])
    table = torch.tensor(_SEXTANT, dtype=torch.int64, device=h.device).t()  # (3, 6)
    pick = table[:, sector.clamp(0, 5)]  # (3, *S) indices into (v, p, q, t)
    out = torch.gather(torch.stack((v, p, q, t), dim=0), 0, pick)
    return out[0], out[1], out[2]


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """HSV -> RGB exactly as ``skimage.color.hsv2rgb`` (the standard sextant formula, spec H7).

    ``i = floor(6 H)``, ``f = 6 H - i``, ``p = V (1 - S)``, ``q = V (1 - f S)``, ``t = V (1 - (1 - f) S)``; sector
    ``i mod 6`` selects ``(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)``.

    Args:
        hsv: HSV images, shape (B, 3, H, W), float; hue in [0, 1], saturation and value in [0, 1].

    Returns:
        RGB images, shape (B, 3, H, W), same dtype.

    Raises:
        TypeError: ``hsv`` is not a floating-point tensor.
        ValueError: ``hsv`` does not have shape (B, 3, H, W).

    Example:
        >>> x = torch.rand(2, 3, 4, 4)
        >>> bool(torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-6))
        True
    """
    _check_float_image(hsv, "hsv")
    return torch.stack(hsv_to_rgb_planes(*hsv.unbind(1)), dim=1)


def rgb_to_grey(x: Tensor) -> Tensor:
    """Grey level as OpenCV ``cvtColor(x, COLOR_RGB2GRAY)`` on float images (spec H8).

    The sum is evaluated as OpenCV 5 does with fused multiply-adds, ``fma(B, wb, fma(R, wr, G * wg))``, emulated
    with float64 products and one rounding to the input dtype per step; for float32 images this equals
    ``cv2.cvtColor`` bit for bit (checked on random images). OpenCV 3.4, which the original used, evaluated the sum
    without FMA, which differs by at most 1 ulp.

    Args:
        x: RGB images, shape (B, 3, H, W), float.

    Returns:
        Grey images, shape (B, 1, H, W), same dtype.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` does not have shape (B, 3, H, W).

    Example:
        >>> rgb_to_grey(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 1, 4, 4])
    """
    _check_float_image(x, "x")
    wr, wg, wb = (float(v) for v in torch.tensor(GREY_WEIGHTS, dtype=torch.float32))  # OpenCV's float32 weights
    xd = x.to(torch.float64)
    acc = (xd[:, 1:2] * wg).to(x.dtype).to(torch.float64)
    acc = (xd[:, 0:1] * wr + acc).to(x.dtype).to(torch.float64)
    return (xd[:, 2:3] * wb + acc).to(x.dtype)
