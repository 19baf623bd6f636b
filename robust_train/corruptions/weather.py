"""Weather corruptions (modules): snow, frost, fog, brightness, spatter (spec 2.10-2.13, 2.19).

Numbers in the severity tables are copied from the original generators (``make_imagenet_c.py``,
``make_tinyimagenet_c.py``, ``make_cifar_c.py``). The maths lives in :mod:`robust_train.functional.weather`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..functional import weather as F
from ..functional.rng import draw_uniform
from .base import Corruption, SeverityTable
from .execution import CpuPolicy
from .params import Params
from .suites import register_corruption

__all__ = ["Brightness", "Fog", "Frost", "Snow", "Spatter", "WeatherCorruption"]


class WeatherCorruption(Corruption):
    """Shared behaviour of the weather corruptions: bit-exact 8-bit output.

    When the module quantises its output (``quantize=True``, the default, or a JPEG round trip), the functional op is
    called with ``quantize=True``: it computes in the original's precision (float64 for brightness, fog and frost,
    float32 scenes for snow and spatter) on the 8-bit grid and truncates without tolerance, so that values the
    original's arithmetic puts a hair below an integer are truncated exactly as ``np.uint8`` did. The base class's
    own truncation is skipped (it would be a no-op). With ``quantize=False`` the op runs in the input's dtype.
    """

    @property
    def exact_output(self) -> bool:
        """Whether the op should return the original's exact 8-bit values."""
        return self.quantize or self.jpeg_quality is not None

    def finish(self, out: Tensor) -> Tensor:
        """Output stage: the op already returned exact 8-bit values, so only the optional JPEG round trip remains."""
        if self.jpeg_quality is None:
            return out
        return super().finish(out)


@register_corruption
class Brightness(WeatherCorruption):
    """Brighten: add ``c`` to the HSV value channel (skimage HSV, spec 2.13, H7). Deterministic, exact gradient.

    Severity table (additive change ``c`` of V):

    ===  ========  ============  =====
    s    imagenet  tinyimagenet  cifar
    ===  ========  ============  =====
    1    0.1       0.1           0.05
    2    0.2       0.2           0.1
    3    0.3       0.3           0.15
    4    0.4       0.4           0.2
    5    0.5       0.5           0.3
    ===  ========  ============  =====

    Example:
        >>> Brightness(severity=2)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "brightness"
    cpu = CpuPolicy(unchunked_when_fused=True)
    family = "weather"
    table = SeverityTable(
        ("value",),
        imagenet=[(0.1,), (0.2,), (0.3,), (0.4,), (0.5,)],
        tinyimagenet=[(0.1,), (0.2,), (0.3,), (0.4,), (0.5,)],
        cifar=[(0.05,), (0.1,), (0.15,), (0.2,), (0.3,)],
    )

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Brighten every sample (deterministic in ``(x, params)``)."""
        a = self.args(params, self.resolve_preset(x))
        return F.brightness(x, a["value"], quantize=self.exact_output)


@register_corruption
class Fog(WeatherCorruption):
    """Fog: add a diamond-square plasma fractal, renormalise by the image maximum (spec 2.12, H3).

    The plasma map (side 256 / 64 / 32 at the native sizes, the next power of two >= max(H, W) otherwise, cropped
    top-left) takes one uniform per map point from the sample's seed; given those uniforms the op reproduces the
    original exactly (wibble**2 amplitude, toroidal grid; quirk 7). Exact gradient.

    Severity table (strength ``c``, wibbledecay):

    ===  ==========  ============  ===========
    s    imagenet    tinyimagenet  cifar
    ===  ==========  ============  ===========
    1    (1.5, 2)    (0.4, 3)      (0.2, 3)
    2    (2, 2)      (0.7, 3)      (0.5, 3)
    3    (2.5, 1.7)  (1, 2.5)      (0.75, 2.5)
    4    (2.5, 1.5)  (1.5, 2)      (1, 2)
    5    (3, 1.4)    (2, 1.75)     (1.5, 1.75)
    ===  ==========  ============  ===========

    Example:
        >>> Fog(severity=3)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "fog"
    cpu = CpuPolicy(unchunked_when_fused=True)
    family = "weather"
    table = SeverityTable(
        ("strength", "wibbledecay"),
        imagenet=[(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)],
        tinyimagenet=[(0.4, 3), (0.7, 3), (1.0, 2.5), (1.5, 2), (2.0, 1.75)],
        cifar=[(0.2, 3), (0.5, 3), (0.75, 2.5), (1.0, 2), (1.5, 1.75)],
    )

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Fog every sample; the plasma field comes from ``params["seed"]``."""
        a = self.args(params, self.resolve_preset(x))
        return F.fog(
            x, a["strength"], a["wibbledecay"], params["seed"], stream=self.stream("plasma"), quantize=self.exact_output
        )


@register_corruption
class Frost(WeatherCorruption):
    """Frost: blend with a random crop of one of the original frost photographs (spec 2.11). Exact gradient.

    ``out = clip(a x + b frost)``. The textures are the original files, read lazily from the installed
    ``imagecorruptions`` package (``pip install imagecorruptions``; only its data files are used) and decoded like
    ``cv2.imread`` (alpha dropped). Tiny-ImageNet / CIFAR presets first resize them by 0.3 / 0.2 with OpenCV's
    bilinear rule (bit-exact). Per sample: texture ``idx = floor(5 u)`` -- ``frost6.jpg`` is never used (quirk 3,
    reproduced; ``include_frost6=True`` draws from all six), crop offsets ``floor(u (H_f - H))`` and
    ``floor(u (W_f - W))`` (NumPy's exclusive upper bound, reproduced). Images larger than a texture use a texture
    upscaled until it covers them (see :func:`robust_train.functional.weather.frost`).

    Severity table (image weight ``a``, frost weight ``b``):

    ===  ===========  ============  ===========
    s    imagenet     tinyimagenet  cifar
    ===  ===========  ============  ===========
    1    (1, 0.4)     (1, 0.3)      (1, 0.2)
    2    (0.8, 0.6)   (0.9, 0.4)    (1, 0.3)
    3    (0.7, 0.7)   (0.8, 0.45)   (0.9, 0.4)
    4    (0.65, 0.7)  (0.75, 0.5)   (0.85, 0.4)
    5    (0.6, 0.75)  (0.7, 0.55)   (0.75, 0.45)
    ===  ===========  ============  ===========

    Args:
        include_frost6: draw the texture from all six files instead of the original's first five.
        **kwargs: the :class:`~robust_train.corruptions.base.Corruption` arguments.

    Example:
        >>> Frost(severity=3)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "frost"
    cpu = CpuPolicy(unchunked_when_fused=True)
    family = "weather"
    table = SeverityTable(
        ("image_weight", "frost_weight"),
        imagenet=[(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
        tinyimagenet=[(1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)],
        cifar=[(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
    )

    def __init__(self, *args: Any, include_frost6: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.include_frost6 = bool(include_frost6)

    def draw(self, seeds: Tensor, severity: Tensor) -> dict[str, Tensor]:
        """Texture index (B,) int64 and crop uniforms (B, 2) float64 (offsets depend on the image size)."""
        u = draw_uniform(seeds, 3, self.stream("crop"))
        n = 6 if self.include_frost6 else 5
        return {"texture": torch.floor(u[:, 0] * n).to(torch.int64), "crop_u": u[:, 1:]}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Blend every sample with its texture crop."""
        preset = self.resolve_preset(x)
        a = self.args(params, preset)
        scale = F.FROST_SCALE[preset]
        h, w = int(x.shape[-2]), int(x.shape[-1])
        idx = params["texture"].cpu()
        cu = params["crop_u"].cpu()
        top, left = F.frost_offsets(idx, cu[:, 0], cu[:, 1], scale, h, w)
        return F.frost(x, a["image_weight"], a["frost_weight"], idx, top, left, scale=scale, quantize=self.exact_output)

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return super().extra_repr() + f", include_frost6={self.include_frost6}"


@register_corruption
class Spatter(WeatherCorruption):
    """Spatter: water drops (severities 1-3) or mud (4-5) from a thresholded, blurred noise layer (spec 2.19).

    The water branch reproduces OpenCV's Canny, 5x5 chamfer distance transform, box blurs, ``equalizeHist`` and the
    saturating emboss filter exactly (batched torch re-implementations, see
    :mod:`robust_train.functional.weather`). Quirk 11: ``uint8(255 L)`` wraps modulo 256 like the original (this
    happens at Tiny-ImageNet / CIFAR severity 3); an empty water map leaves the image unchanged (the original
    returns NaN). Exact gradient (the output is linear in the image for a given layer).

    Continuous severities: table entries are interpolated linearly, except between severities 3 and 4 where the
    branch changes: there every entry snaps to the nearer integer severity (3.5 and above -> mud), because the
    fifth column means different things in the two branches.

    Severity table (loc, scale, sigma, threshold, p4, mud); ``p4`` is the water intensity, or the mask-blur sigma
    for mud:

    ===  ==============================  ==============================  ==============================
    s    imagenet                        tinyimagenet                    cifar
    ===  ==============================  ==============================  ==============================
    1    (0.65, 0.3, 4, 0.69, 0.6, 0)    (0.62, 0.1, 0.7, 0.7, 0.6, 0)   (0.62, 0.1, 0.7, 0.7, 0.5, 0)
    2    (0.65, 0.3, 3, 0.68, 0.6, 0)    (0.65, 0.1, 0.8, 0.7, 0.6, 0)   (0.65, 0.1, 0.8, 0.7, 0.5, 0)
    3    (0.65, 0.3, 2, 0.68, 0.5, 0)    (0.65, 0.3, 1, 0.69, 0.6, 0)    (0.65, 0.3, 1, 0.69, 0.5, 0)
    4    (0.65, 0.3, 1, 0.65, 1.5, 1)    (0.65, 0.1, 0.7, 0.68, 0.6, 1)  (0.65, 0.1, 0.7, 0.69, 0.6, 1)
    5    (0.67, 0.4, 1, 0.65, 1.5, 1)    (0.65, 0.1, 0.5, 0.67, 0.6, 1)  (0.65, 0.1, 0.5, 0.68, 0.6, 1)
    ===  ==============================  ==============================  ==============================

    Example:
        >>> Spatter(severity=2)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "spatter"
    family = "weather"
    # chunks of 16 MB (27 images at 224 px): the water map's ~100 ops per chunk (Canny, chamfer steps) cost less
    # per image than with 4 MB chunks, and the 3x3 stencils still stay in cache (benchmarks/README.md)
    cpu = CpuPolicy(chunk_bytes=16 * 2**20)
    table = SeverityTable(
        ("loc", "scale", "sigma", "threshold", "intensity", "mud"),
        imagenet=[
            (0.65, 0.3, 4, 0.69, 0.6, 0),
            (0.65, 0.3, 3, 0.68, 0.6, 0),
            (0.65, 0.3, 2, 0.68, 0.5, 0),
            (0.65, 0.3, 1, 0.65, 1.5, 1),
            (0.67, 0.4, 1, 0.65, 1.5, 1),
        ],
        tinyimagenet=[
            (0.62, 0.1, 0.7, 0.7, 0.6, 0),
            (0.65, 0.1, 0.8, 0.7, 0.6, 0),
            (0.65, 0.3, 1, 0.69, 0.6, 0),
            (0.65, 0.1, 0.7, 0.68, 0.6, 1),
            (0.65, 0.1, 0.5, 0.67, 0.6, 1),
        ],
        cifar=[
            (0.62, 0.1, 0.7, 0.7, 0.5, 0),
            (0.65, 0.1, 0.8, 0.7, 0.5, 0),
            (0.65, 0.3, 1, 0.69, 0.5, 0),
            (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.1, 0.5, 0.68, 0.6, 1),
        ],
    )

    def args(self, params: Params, preset: str) -> dict[str, Tensor]:
        """Table arguments; fractional severities between 3 and 4 snap to the nearer level (branch switch)."""
        sev = params["severity"].to(torch.float64)
        table = self.table.values(preset).to(sev.device)  # type: ignore[union-attr]
        lo = (sev.clamp(1, 5).floor() - 1).long().clamp(0, 4)
        hi = (sev.clamp(1, 5).ceil() - 1).long().clamp(0, 4)
        crosses = table[lo, 5] != table[hi, 5]
        snapped = torch.where(crosses, torch.floor(sev + 0.5), sev)
        return self.table.lookup(snapped, preset)  # type: ignore[union-attr]

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Spatter every sample; the liquid layer comes from ``params["seed"]``."""
        a = self.args(params, self.resolve_preset(x))
        return F.spatter(
            x,
            a["loc"],
            a["scale"],
            a["sigma"],
            a["threshold"],
            a["intensity"],
            a["mud"] > 0.5,
            params["seed"],
            stream=self.stream("liquid"),
            quantize=self.exact_output,
        )


@register_corruption
class Snow(WeatherCorruption):
    """Snow: two motion-blurred flake layers over a brightened scene (spec 2.10; H4 zoom, H5 motion blur, H8 grey).

    The flake layer (normal field from the seed) is zoomed, thresholded, truncated to 8 bit *before* the blur
    (quirk 10, reproduced), blurred with ImageMagick's one-sided motion blur at angle ``U(-135, -45)`` degrees per
    sample, and added together with its 180-degree rotation. Severities are not monotone in difficulty (quirk 5).
    Gradient: exact w.r.t. the image (the flake layer does not depend on it). Continuous severities interpolate every
    entry; the motion-blur radius may be fractional (ImageMagick uses ``2 ceil(radius) + 1`` taps).

    Severity table (loc, scale, zoom, threshold, mb_radius, mb_sigma, blend):

    ===  ===================================  ===================================  ===================================
    s    imagenet                             tinyimagenet                         cifar
    ===  ===================================  ===================================  ===================================
    1    (0.1, 0.3, 3, 0.5, 10, 4, 0.8)       (0.1, 0.2, 1, 0.6, 8, 3, 0.8)        (0.1, 0.2, 1, 0.6, 8, 3, 0.95)
    2    (0.2, 0.3, 2, 0.5, 12, 4, 0.7)       (0.1, 0.2, 1, 0.5, 10, 4, 0.8)       (0.1, 0.2, 1, 0.5, 10, 4, 0.9)
    3    (0.55, 0.3, 4, 0.9, 12, 8, 0.7)      (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7)  (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9)
    4    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65)  (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65)  (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85)
    5    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55) (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6)  (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)
    ===  ===================================  ===================================  ===================================

    Example:
        >>> Snow(severity=3)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "snow"
    family = "weather"
    table = SeverityTable(
        ("loc", "scale", "zoom", "threshold", "radius", "sigma", "blend"),
        imagenet=[
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        ],
        tinyimagenet=[
            (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
        ],
        cifar=[
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        ],
    )

    def draw(self, seeds: Tensor, severity: Tensor) -> dict[str, Tensor]:
        """Motion-blur angle per sample, U(-135, -45) degrees, float64 (B,)."""
        u = draw_uniform(seeds, 1, self.stream("angle"))[:, 0]
        return {"angle": -135.0 + 90.0 * u}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Snow on every sample; the flake layer comes from ``params["seed"]``."""
        a = self.args(params, self.resolve_preset(x))
        return F.snow(
            x,
            a["loc"],
            a["scale"],
            a["zoom"],
            a["threshold"],
            a["radius"],
            a["sigma"],
            a["blend"],
            params["angle"],
            params["seed"],
            stream=self.stream("layer"),
            quantize=self.exact_output,
        )
