"""Digital corruptions: contrast, saturate, jpeg_compression, pixelate, elastic_transform (spec sections 2.14-2.18).

Numerics live in :mod:`robust_train.functional.digital`; the classes hold the severity tables, draw the per-sample
random quantities (only the elastic transform has any) and call the functional ops.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..functional import digital as F
from ..functional.rng import draw_uniform, field_uniform
from .base import Corruption, SeverityTable
from .execution import CpuPolicy
from .params import Params
from .suites import register_corruption

__all__ = ["Contrast", "ElasticTransform", "JpegCompression", "Pixelate", "Saturate"]


@register_corruption
class Contrast(Corruption):
    """Reduce contrast around each channel's spatial mean (deterministic, exact gradient).

    Severity table (contrast factor c; spec 2.14):

    ===  ========  ============  =====
    s    imagenet  tinyimagenet  cifar
    ===  ========  ============  =====
    1    0.4       0.4           0.75
    2    0.3       0.3           0.5
    3    0.2       0.2           0.4
    4    0.1       0.1           0.3
    5    0.05      0.05          0.15
    ===  ========  ============  =====

    Example:
        >>> import torch
        >>> Contrast(severity=2)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "contrast"
    cpu = CpuPolicy(unchunked_when_fused=True)
    family = "digital"
    table = SeverityTable(
        ("factor",),
        imagenet=[(0.4,), (0.3,), (0.2,), (0.1,), (0.05,)],
        tinyimagenet=[(0.4,), (0.3,), (0.2,), (0.1,), (0.05,)],
        cifar=[(0.75,), (0.5,), (0.4,), (0.3,), (0.15,)],
    )

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Apply the table arguments of each sample's severity (see the class docstring)."""
        a = self.args(params, self.resolve_preset(x))
        return F.contrast(x, a["factor"])


@register_corruption
class Saturate(Corruption):
    """Scale and shift the HSV saturation (extra corruption; deterministic, exact gradient almost everywhere).

    ``S <- clip(S * multiplier + offset, 0, 1)`` with scikit-image's HSV conversion (spec 2.15, H7). Severities 1-2
    desaturate and 3-5 oversaturate, so the size of the change is not monotone in the severity (quirk 5; the
    original's s3 is milder than s1 for AlexNet); a positive offset tints grey pixels red (hue 0), as in the original.

    Severity table ((multiplier, offset); spec 2.15):

    ===  =========  ============  ==========
    s    imagenet   tinyimagenet  cifar
    ===  =========  ============  ==========
    1    (0.3, 0)   (0.3, 0)      (0.3, 0)
    2    (0.1, 0)   (0.1, 0)      (0.1, 0)
    3    (2, 0)     (2, 0)        (1.5, 0)
    4    (5, 0.1)   (5, 0.1)      (2, 0.1)
    5    (20, 0.2)  (30, 0.2)     (2.5, 0.2)
    ===  =========  ============  ==========

    Fractional severities interpolate both columns linearly (s = 2.5 mixes a desaturation and an oversaturation
    factor: 1.05).

    Example:
        >>> import torch
        >>> Saturate(severity=4)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "saturate"
    family = "digital"
    table = SeverityTable(
        ("multiplier", "offset"),
        imagenet=[(0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)],
        tinyimagenet=[(0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (30.0, 0.2)],
        cifar=[(0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)],
    )

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Apply the table arguments of each sample's severity (see the class docstring)."""
        a = self.args(params, self.resolve_preset(x))
        return F.saturate(x, a["multiplier"], a["offset"])


@register_corruption
class JpegCompression(Corruption):
    """JPEG encode/decode at a per-severity quality (deterministic; surrogate gradient).

    Exactly PIL's ``Image.save(format="JPEG", quality=q)`` (libjpeg standard tables scaled by ``q``, baseline, 4:2:0
    chroma subsampling, islow DCT) decoded with libjpeg-turbo (islow IDCT, fancy upsampling), i.e. the original's
    in-memory round trip (spec 2.16), bit for bit with either codec: ``"cpu"`` (libjpeg-turbo on the host) or
    ``"torch"`` (integer tensor maths on the input's device); ``codec="auto"`` uses the torch codec off the CPU and
    libjpeg on it (faster there). Fractional severities interpolate the quality and round it to the nearest integer.

    Gradient: ``"surrogate"``: the forward value is the codec output, the backward pass is the gradient of a
    differentiable JPEG model (:func:`~robust_train.functional.digital.jpeg_surrogate`: DCT and quantisation with the
    same tables and a smooth rounding).

    Severity table (JPEG quality; spec 2.16):

    ===  ========  ============  =====
    s    imagenet  tinyimagenet  cifar
    ===  ========  ============  =====
    1    25        65            80
    2    18        58            65
    3    15        50            58
    4    10        40            50
    5    7         25            40
    ===  ========  ============  =====

    For the released ImageNet-C / Tiny-ImageNet-C files, which were JPEG-compressed twice, also pass
    ``jpeg_quality=85``.

    Args:
        codec: ``"auto"``, ``"cpu"`` or ``"torch"`` (see above); other arguments as
            :class:`~robust_train.corruptions.Corruption`.

    Example:
        >>> import torch
        >>> JpegCompression(severity=5)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "jpeg_compression"
    family = "digital"
    gradient = "surrogate"
    output_on_grid = True  # decoded 8-bit pixels
    # the codec threads do the work (the torch ops around them use one OpenMP thread); no cache blocking: the codec
    # works per image, split over the torch threads
    cpu = CpuPolicy(chunk_bytes=None, host_threads=True)
    checks_values_in_apply = True  # the codec's uint8 conversion computes the range
    table = SeverityTable(
        ("quality",),
        imagenet=[(25,), (18,), (15,), (10,), (7,)],
        tinyimagenet=[(65,), (58,), (50,), (40,), (25,)],
        cifar=[(80,), (65,), (58,), (50,), (40,)],
    )

    def __init__(self, *args: Any, codec: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if codec not in ("auto", "cpu", "torch"):
            raise ValueError(f"codec: expected 'auto', 'cpu' or 'torch', got {codec!r}")
        self.codec = codec

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Apply the table arguments of each sample's severity (see the class docstring)."""
        a = self.args(params, self.resolve_preset(x))
        return F.jpeg_compression(x, torch.round(a["quality"]), codec=self.codec, check_values=True)

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return f"{super().extra_repr()}, codec={self.codec!r}"


@register_corruption
class Pixelate(Corruption):
    """Downscale with PIL ``BOX`` to ``int(S * c)`` and upscale back (deterministic; straight-through gradient).

    Bit-exact model of Pillow's two-pass 8-bit box resampling (spec 2.17, H6). Non-square images use per-axis sizes
    ``int(H * c)``, ``int(W * c)`` (equal to the original's ``int(224 * c)`` at its native size). Fractional
    severities interpolate ``c``, so samples of one batch can have different intermediate sizes.

    Gradient: ``"straight-through"``: the forward value is the exact 8-bit result; the backward pass is the gradient
    of the unrounded box average followed by the same nearest-neighbour upscale.

    Severity table (downscale factor c, intermediate side in brackets; spec 2.17):

    ===  ==========  ============  ==========
    s    imagenet    tinyimagenet  cifar
    ===  ==========  ============  ==========
    1    0.6 (134)   0.9 (57)      0.95 (30)
    2    0.5 (112)   0.8 (51)      0.9 (28)
    3    0.4 (89)    0.7 (44)      0.85 (27)
    4    0.3 (67)    0.6 (38)      0.75 (24)
    5    0.25 (56)   0.5 (32)      0.65 (20)
    ===  ==========  ============  ==========

    Example:
        >>> import torch
        >>> Pixelate(severity=3)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "pixelate"
    family = "digital"
    gradient = "straight-through"
    output_on_grid = True  # Pillow's 8-bit resampling model
    cpu = CpuPolicy(chunk_bytes=None)  # no cache blocking: per-call overhead outweighs it (benchmarks/README.md)
    checks_values_in_apply = True  # the fused width pass computes the range on the way
    table = SeverityTable(
        ("factor",),
        imagenet=[(0.6,), (0.5,), (0.4,), (0.3,), (0.25,)],
        tinyimagenet=[(0.9,), (0.8,), (0.7,), (0.6,), (0.5,)],
        cifar=[(0.95,), (0.9,), (0.85,), (0.75,), (0.65,)],
    )

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Apply the table arguments of each sample's severity (see the class docstring)."""
        a = self.args(params, self.resolve_preset(x))
        return F.pixelate(x, a["factor"], check_values=True)


def _scaled(scale: float, rows: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """Table rows written as in the original source: ``scale * k`` for every factor ``k``."""
    return [tuple(scale * k for k in row) for row in rows]  # type: ignore[misc]


@register_corruption
class ElasticTransform(Corruption):
    """The original ImageNet-C elastic transform: random affine warp, then smooth random displacements.

    Algorithm (spec 2.18, :func:`~robust_train.functional.digital.elastic_transform`): OpenCV ``warpAffine`` mapping
    the triangle around the centre (half-size ``min(H, W) // 3``) to a copy perturbed by ``U(-r, r)`` per coordinate
    (bilinear, reflect-101, OpenCV's 1/32-pixel fixed-point positions unless ``opencv_fixed_point=False``); then
    displacements ``alpha * G_sigma(U(-1, 1))`` per axis (scikit-image Gaussian, mode 'reflect', truncate 3, kernels
    larger than the image handled exactly) and SciPy ``map_coordinates(order=1, mode='reflect')``; clip.

    Randomness: six affine draws per sample (:meth:`draw`, stored as ``params["affine"]`` (B, 6) uniforms in (0, 1),
    order ``x0, y0, x1, y1, x2, y2`` as the original's (3, 2) draw) and two (H, W) uniform fields hashed from the
    sample's seed on the image's device (dx field first, as drawn).

    Quirks reproduced: the ImageNet constants are written ``244 * k`` (the source comment says 244 should have been
    224); Tiny-ImageNet/CIFAR severity 1 has ``alpha = sigma = 0`` (affine only); severities are not monotone in the
    size of the change (ImageNet s2 is much stronger than s3, quirk 4). Non-square images: the triangle is centred at
    ``(W // 2, H // 2)`` as ``(x, y)`` (the original's ``(H // 2, W // 2)``; equal for its square images).

    Gradient: ``"exact"``; the sampling positions do not depend on the image, the output is linear in it.

    Severity table ((alpha, sigma, affine range r); spec 2.18):

    ===  =====================  ====================  ==================
    s    imagenet (244 k)       tinyimagenet (64 k)   cifar (32 k)
    ===  =====================  ====================  ==================
    1    (488, 170.8, 24.4)     (0, 0, 5.12)          (0, 0, 2.56)
    2    (488, 19.52, 48.8)     (3.2, 19.2, 3.84)     (1.6, 6.4, 2.24)
    3    (12.2, 2.44, 4.88)     (6.4, 5.12, 3.84)     (2.56, 1.92, 1.92)
    4    (17.08, 2.44, 4.88)    (6.4, 1.92, 1.92)     (3.2, 1.28, 1.6)
    5    (29.28, 2.44, 4.88)    (10.24, 1.92, 1.28)   (3.2, 0.96, 0.96)
    ===  =====================  ====================  ==================

    Args:
        opencv_fixed_point: quantise the affine source positions to 1/32 px as OpenCV <= 4.10 does (the original
            pinned 3.4.2); ``False`` gives exact float positions (OpenCV >= 4.11).
        reflect_rule: ``map_coordinates``' ``reflect`` border: ``"scipy_1.0"`` (default, the released data's
            SciPy; positions just outside the grid interpolate towards the second pixel) or ``"scipy_1.6"``
            (today's half-sample symmetric rule). Other arguments as :class:`~robust_train.corruptions.Corruption`.

    Example:
        >>> import torch
        >>> ElasticTransform(severity=2)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "elastic_transform"
    family = "digital"
    table = SeverityTable(
        ("alpha", "sigma", "affine_range"),
        imagenet=_scaled(
            244, [(2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02)]
        ),
        tinyimagenet=_scaled(
            64, [(0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02)]
        ),
        cifar=_scaled(32, [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)]),
    )

    def __init__(
        self, *args: Any, opencv_fixed_point: bool = True, reflect_rule: str = "scipy_1.0", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if reflect_rule not in F.REFLECT_RULES:
            raise ValueError(f"reflect_rule: expected one of {F.REFLECT_RULES}, got {reflect_rule!r}")
        self.opencv_fixed_point = bool(opencv_fixed_point)
        self.reflect_rule = reflect_rule

    def draw(self, seeds: Tensor, severity: Tensor) -> dict[str, Tensor]:
        """Six uniforms per sample for the affine control-point perturbations, (B, 6) float64 in (0, 1)."""
        return {"affine": draw_uniform(seeds, 6, self.stream("affine"))}

    def offsets(self, params: Params, preset: str) -> Tensor:
        """Affine perturbations ``(2 u - 1) * r`` in pixels, (B, 3, 2) float64 on the params' device."""
        r = self.args(params, preset)["affine_range"]
        return ((2.0 * params["affine"] - 1.0) * r.view(-1, 1)).view(-1, 3, 2)

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Warp with the drawn affine offsets and the seed-hashed displacement fields."""
        preset = self.resolve_preset(x)
        a = self.args(params, preset)
        h, w = x.shape[-2:]
        noise = field_uniform(params["seed"], (2, h, w), self.stream("field"), dtype=torch.float64, device=x.device)
        return F.elastic_transform(
            x,
            a["alpha"],
            a["sigma"],
            self.offsets(params, preset),
            noise=noise * 2.0 - 1.0,
            opencv_fixed_point=self.opencv_fixed_point,
            reflect_rule=self.reflect_rule,
        )

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return f"{super().extra_repr()}, opencv_fixed_point={self.opencv_fixed_point}"
