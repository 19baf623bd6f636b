"""The 14 ImageNet-P perturbation types with their per-preset parameter tables (spec 6.3).

Frame ``i`` runs from 0 to ``T - 1``. Tables (ImageNet 224 / Tiny-ImageNet 64 / CIFAR 32):

=================  ========================================  ==========================  ==========================
type               ImageNet                                  Tiny-ImageNet               CIFAR
=================  ========================================  ==========================  ==========================
gaussian_noise     sigma .03 / .05 / .08 (difficulty 1-3)    .025 / .05 / .075           .02 / .04 / .06
shot_noise         lambda 300 / 120 / 60                     500 / 250 / 125             700 / 400 / 200
speckle_noise      sigma .05 / .10 / .15                     .05 / .10 / .15             .05 / .07 / .10
motion_blur        r 10, s 3, angle 4 (i - 30), 31 frames    r 14, s 3, 5 (i - 30)       r 6, s 1.8, 9 (i - 20), 21
zoom_blur          running mean of zooms 1 + 0.004 j         same                        same
snow               N(.05, .3), zoom 3, thr .5, r 14, s 4     N(.05, .28), 2, .5, 10, 2.5  N(.05, .3), 2, .5, 10, 2
                   angle 4 i - 150, blend .85
brightness         V + 0.02 (i - 15)                         same                        0.015 (i - 15)
translate          shift i - 20, 41 frames                   i - 15, 31 frames           i - 7, 16 frames
rotate             i - 15 degrees                            same                        same
tilt               phi = theta = i - 15 degrees              same                        0.75 (i - 15)
scale              (40 + 2.5 i) / 100                        same                        (70 + 2 i) / 100
gaussian_blur      sigma .25 + .035 i, truncate 6            .35 + .014 i, truncate 7    .3 + .015 i, truncate 7
spatter            N(.65, .27), s 3.7, thr .69, [.05 .1 .15 .7]  N(.6, .25), 1.75, .7, [.2 .8]  N(.6, .265), ...
shear              i - 15 degrees                            same                        same
=================  ========================================  ==========================  ==========================

Noise sequences have 31 frames (frame 0 clean). Spatter uses water intensity 0.6 everywhere.

With ``quantize=True`` (default) tilt and zoom blur reproduce the original's 8-bit arithmetic: OpenCV's fixed-point
``warpPerspective`` (1/32-pixel positions, rounded output) and PIL's truncated zooms averaged in float32 (bit-exact
on real photos). Known differences from the released ImageNet-P files: frames are H.264 encoded only with ``h264=True``
(:mod:`~robust_train.sequences.h264`; libx264 of today, not the 2018 build); Tiny-ImageNet-P
motion blur is blurred at full resolution and then resized only when the larger source is given (quirk 19, see
:class:`MotionBlurSequence`).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor
from typing_extensions import override

from ..functional import sequences as FS
from ..functional.rng import stream_id
from .base import SEQUENCES, PerturbationSequence

__all__ = [
    "BrightnessSequence",
    "GaussianBlurSequence",
    "GaussianNoiseSequence",
    "MotionBlurSequence",
    "RotateSequence",
    "ScaleSequence",
    "ShearSequence",
    "ShotNoiseSequence",
    "SnowSequence",
    "SpatterSequence",
    "SpeckleNoiseSequence",
    "TiltSequence",
    "TranslateSequence",
    "ZoomBlurSequence",
]


def _i(n: int) -> Tensor:
    return torch.arange(n, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------ noise
class _NoiseSequence(PerturbationSequence):
    noise = True
    random = True
    kind: ClassVar[str] = ""
    strengths: ClassVar[dict[str, tuple[float, float, float]]] = {}

    @override
    def num_frames(self, preset: str) -> int:
        return 31

    @override
    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        strength = self.strengths[preset][self.difficulty - 1]
        return FS.noise_sequence(x, self.kind, strength, seed, self.num_frames(preset), self.crop)


@SEQUENCES.register(family="noise")
class GaussianNoiseSequence(_NoiseSequence):
    """Clean frame then 30 copies with additive Gaussian noise (sigma by preset and difficulty)."""

    name = "gaussian_noise"
    kind = "gaussian"
    strengths = {"imagenet": (0.03, 0.05, 0.08), "tinyimagenet": (0.025, 0.05, 0.075), "cifar": (0.02, 0.04, 0.06)}


@SEQUENCES.register(family="noise")
class ShotNoiseSequence(_NoiseSequence):
    """Clean frame then 30 Poisson-noise copies (photon scale lambda by preset and difficulty)."""

    name = "shot_noise"
    kind = "shot"
    strengths = {
        "imagenet": (300.0, 120.0, 60.0),
        "tinyimagenet": (500.0, 250.0, 125.0),
        "cifar": (700.0, 400.0, 200.0),
    }


@SEQUENCES.register(family="noise")
class SpeckleNoiseSequence(_NoiseSequence):
    """Clean frame then 30 speckle-noise copies (validation type)."""

    name = "speckle_noise"
    kind = "speckle"
    strengths = {"imagenet": (0.05, 0.10, 0.15), "tinyimagenet": (0.05, 0.10, 0.15), "cifar": (0.05, 0.07, 0.10)}


# ------------------------------------------------------------------------------------------------ blur / weather
@SEQUENCES.register(family="blur")
class MotionBlurSequence(PerturbationSequence):
    """ImageMagick motion blur whose angle sweeps over the frames.

    Tiny-ImageNet-P (quirk 19) blurred the full-resolution bounding-box crop (radius 14, sigma 3) and only then
    applied ``Resize(64)`` (shorter side 64, no centre crop). With ``preset="tinyimagenet"``, no ``crop`` and an
    input larger than 64 px, that is what happens here: frames are ``(64, 64 W / H)`` (64 x 64 for square sources).
    A 64-px input is blurred at 64 px with the same radius and sigma, several times stronger than the released
    frames (mean |frame - clean| 2.6-4.7x that of the full-resolution pipeline on the scikit-image photos): pass the
    larger source (and ``preset="tinyimagenet"``; ``"auto"`` would pick the size's own preset) for comparable numbers.
    """

    name = "motion_blur"
    table: ClassVar[dict[str, tuple[float, float, int, float, int]]] = {
        # radius, sigma, frames, degrees per frame, index offset
        "imagenet": (10.0, 3.0, 31, 4.0, 30),
        "tinyimagenet": (14.0, 3.0, 31, 5.0, 30),
        "cifar": (6.0, 1.8, 21, 9.0, 20),
    }

    #: Tiny-ImageNet-P's frame size: larger sources are blurred at full resolution, then resized to it.
    tiny_size: ClassVar[int] = 64

    def _full_resolution(self, x: Tensor) -> bool:
        return self.preset == "tinyimagenet" and self.crop is None and min(x.shape[-2:]) > self.tiny_size

    @override
    def resolve_preset(self, x: Tensor) -> str:
        if self._full_resolution(x):
            return "tinyimagenet"  # any source size: the frames are resized to 64 px
        return super().resolve_preset(x)

    @override
    def num_frames(self, preset: str) -> int:
        return self.table[preset][2]

    @override
    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        r, s, t, step, off = self.table[preset]
        resize = self.tiny_size if preset == "tinyimagenet" and self._full_resolution(x) else None
        return FS.motion_blur_sequence(x, r, s, (_i(t) - off) * step, self.crop, resize=resize)


@SEQUENCES.register(family="blur")
class ZoomBlurSequence(PerturbationSequence):
    """Running average of centre zooms 1, 1.004, ..., 1.12."""

    name = "zoom_blur"

    @override
    def num_frames(self, preset: str) -> int:
        return 31

    @override
    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        return FS.zoom_blur_sequence(x, 1.0 + 0.004 * _i(31), self.crop, emulate_uint8=self.quantize)


@SEQUENCES.register(family="blur")
class GaussianBlurSequence(PerturbationSequence):
    """Gaussian blur with a sigma growing over the frames (validation type)."""

    name = "gaussian_blur"
    table: ClassVar[dict[str, tuple[float, float, float]]] = {
        # sigma at frame 0, increment per frame, truncate
        "imagenet": (0.25, 0.035, 6.0),
        "tinyimagenet": (0.35, 0.014, 7.0),
        "cifar": (0.3, 0.015, 7.0),
    }

    @override
    def num_frames(self, preset: str) -> int:
        return 31

    @override
    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        s0, ds, trunc = self.table[preset]
        return FS.gaussian_blur_sequence(x, s0 + ds * _i(31), trunc, self.crop)


@SEQUENCES.register(family="weather")
class SnowSequence(PerturbationSequence):
    """One snow layer per image, motion-blurred at an angle sweeping from -150 to -30 degrees."""

    name = "snow"
    random = True
    table: ClassVar[dict[str, tuple[float, ...]]] = {
        # loc, scale, zoom, threshold, radius, sigma, blend
        "imagenet": (0.05, 0.3, 3.0, 0.5, 14.0, 4.0, 0.85),
        "tinyimagenet": (0.05, 0.28, 2.0, 0.5, 10.0, 2.5, 0.85),
        "cifar": (0.05, 0.3, 2.0, 0.5, 10.0, 2.0, 0.85),
    }

    @override
    def num_frames(self, preset: str) -> int:
        return 31

    @override
    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        loc, scale, zoom, thr, r, s, blend = self.table[preset]
        return FS.snow_sequence(x, seed, loc, scale, zoom, thr, r, s, blend, 4.0 * _i(31) - 150.0, self.crop)


@SEQUENCES.register(family="weather")
class BrightnessSequence(PerturbationSequence):
    """HSV value shifted from darker to brighter over the frames."""

    name = "brightness"
    step: ClassVar[dict[str, float]] = {"imagenet": 0.02, "tinyimagenet": 0.02, "cifar": 0.015}

    @override
    def num_frames(self, preset: str) -> int:
        return 31

    @override
    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        return FS.brightness_sequence(x, (_i(31) - 15.0) * self.step[preset], self.crop)


@SEQUENCES.register(family="weather")
class SpatterSequence(PerturbationSequence):
    """Water drops running down the image (validation type)."""

    name = "spatter"
    random = True
    table: ClassVar[dict[str, tuple[float, float, float, float, tuple[float, ...]]]] = {
        # loc, scale, sigma, threshold, column kernel
        "imagenet": (0.65, 0.27, 3.7, 0.69, (0.05, 0.1, 0.15, 0.7)),
        "tinyimagenet": (0.6, 0.25, 1.75, 0.7, (0.2, 0.8)),
        "cifar": (0.6, 0.265, 1.75, 0.7, (0.2, 0.8)),
    }
    intensity: ClassVar[float] = 0.6

    @override
    def num_frames(self, preset: str) -> int:
        return 31

    @override
    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        loc, scale, sigma, thr, kernel = self.table[preset]
        stream = stream_id("sequence/spatter/liquid")
        return FS.spatter_sequence(x, seed, loc, scale, sigma, thr, self.intensity, kernel, 31, stream, self.crop)


# ------------------------------------------------------------------------------------------------ geometric
@SEQUENCES.register(family="geometric")
class TranslateSequence(PerturbationSequence):
    """Horizontal shift, one pixel per frame, nearest neighbour."""

    name = "translate"
    table: ClassVar[dict[str, tuple[int, int]]] = {"imagenet": (41, 20), "tinyimagenet": (31, 15), "cifar": (16, 7)}

    @override
    def num_frames(self, preset: str) -> int:
        return self.table[preset][0]

    @override
    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        t, off = self.table[preset]
        return FS.translate_sequence(x, _i(t) - off, self.crop)


@SEQUENCES.register(family="geometric")
class RotateSequence(PerturbationSequence):
    """Rotation from -15 to 15 degrees (torchvision 0.2 affine, bilinear)."""

    name = "rotate"

    @override
    def num_frames(self, preset: str) -> int:
        return 31

    @override
    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        return FS.affine_sequence(x, angle=_i(31) - 15.0, crop=self.crop)


@SEQUENCES.register(family="geometric")
class ShearSequence(PerturbationSequence):
    """Shear from -15 to 15 degrees (validation type)."""

    name = "shear"

    @override
    def num_frames(self, preset: str) -> int:
        return 31

    @override
    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        return FS.affine_sequence(x, shear=_i(31) - 15.0, crop=self.crop)


@SEQUENCES.register(family="geometric")
class ScaleSequence(PerturbationSequence):
    """Zoom out to zoom in: scale 0.40 .. 1.15 (CIFAR 0.70 .. 1.30)."""

    name = "scale"
    table: ClassVar[dict[str, tuple[float, float]]] = {
        "imagenet": (0.40, 0.025),
        "tinyimagenet": (0.40, 0.025),
        "cifar": (0.70, 0.02),
    }

    @override
    def num_frames(self, preset: str) -> int:
        return 31

    @override
    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        s0, ds = self.table[preset]
        return FS.affine_sequence(x, scale=(s0 * 100 + ds * 100 * _i(31)) / 100.0, crop=self.crop)


@SEQUENCES.register(family="geometric")
class TiltSequence(PerturbationSequence):
    """3-D tilt about both axes (perspective warp), phi = theta from -15 to 15 degrees (CIFAR +-11.25)."""

    name = "tilt"
    step: ClassVar[dict[str, float]] = {"imagenet": 1.0, "tinyimagenet": 1.0, "cifar": 0.75}

    @override
    def num_frames(self, preset: str) -> int:
        return 31

    @override
    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        a = (_i(31) - 15.0) * self.step[preset]
        return FS.tilt_sequence(x, a, a, self.crop, emulate_uint8=self.quantize)
