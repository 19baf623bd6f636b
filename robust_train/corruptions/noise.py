"""Noise corruptions (modules): Gaussian, shot, impulse and speckle noise (spec 2.1-2.4).

Each module stores only the per-sample int64 ``seed`` in its :class:`Params`; the noise field is hashed from
``(seed, stream, element index)`` on the image's device inside :meth:`apply`, with ``stream = self.stream("noise")``
(precomputed in :mod:`robust_train.functional.noise`, e.g. ``GAUSSIAN_STREAM``, so tracing never calls ``zlib``).
Replaying ``params`` therefore reproduces the exact noise on any device and in any batch. Severity tables are copied
from the original generators (``make_imagenet_c.py``, ``make_tinyimagenet_c.py``, ``make_cifar_c.py``); fractional
severities interpolate them linearly (for shot noise that is linear in ``lam``).
"""

from __future__ import annotations

from torch import Tensor

from ..functional import _dispatch
from ..functional import noise as F
from .base import Corruption, Severity, SeverityTable
from .execution import CpuPolicy
from .params import Params
from .suites import register_corruption

__all__ = ["GaussianNoise", "ImpulseNoise", "ShotNoise", "SpeckleNoise"]


class _KernelBackendMixin(Corruption):
    """Adds the ``backend`` setting (``"auto" | "torch" | "kernel"``) of the fused hash-noise op."""

    def __init__(self, severity: Severity = 3, *args, backend: str = "auto", **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(severity, *args, **kwargs)
        _dispatch.check_backend(backend)
        self.backend = backend

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, backend={self.backend!r}"


@register_corruption
class GaussianNoise(_KernelBackendMixin):
    """Additive Gaussian noise on every pixel and channel, ``clip(x + sigma z, 0, 1)`` (spec 2.1).

    Severity table (noise std ``sigma`` in [0, 1] units):

    ===  ========  ============  =====
    s    imagenet  tinyimagenet  cifar
    ===  ========  ============  =====
    1    0.08      0.04          0.04
    2    0.12      0.08          0.06
    3    0.18      0.12          0.08
    4    0.26      0.15          0.09
    5    0.38      0.18          0.10
    ===  ========  ============  =====

    Gradient: exact (identity inside the clip, zero where the output clips). ``backend`` selects the torch
    reference or the Triton kernel (:mod:`robust_train.functional._dispatch`).

    Example:
        >>> import torch
        >>> GaussianNoise(severity=2)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "gaussian_noise"
    cpu = CpuPolicy(unchunked_when_fused=True)
    family = "noise"
    gradient = "exact"
    table = SeverityTable(
        ("sigma",),
        imagenet=[(0.08,), (0.12,), (0.18,), (0.26,), (0.38,)],
        tinyimagenet=[(0.04,), (0.08,), (0.12,), (0.15,), (0.18,)],
        cifar=[(0.04,), (0.06,), (0.08,), (0.09,), (0.10,)],
    )

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Noise from ``params["seed"]`` at the table arguments of ``params["severity"]`` (float, before 8 bit)."""
        a = self.args(params, self.resolve_preset(x))
        return F.gaussian_noise(x, a["sigma"], params["seed"], stream=F.GAUSSIAN_STREAM, backend=self.backend)


@register_corruption
class ShotNoise(Corruption):
    """Poisson (photon) noise, ``clip(Poisson(lam x) / lam, 0, 1)`` per pixel and channel (spec 2.2).

    Severity table (photon scale ``lam``; smaller = noisier):

    ===  ========  ============  =====
    s    imagenet  tinyimagenet  cifar
    ===  ========  ============  =====
    1    60        250           500
    2    25        100           250
    3    12        50            100
    4    5         30            75
    5    3         15            50
    ===  ========  ============  =====

    Samples come from :func:`robust_train.functional.noise.poisson_table_sample` for photon scales up to
    :data:`~robust_train.functional.noise.POISSON_TABLE_MAX` (Walker alias tables of the integer part of the mean
    plus inversion of the fractional part; exact in distribution to float32 precision, one fused loop when fusion
    is on) and from :func:`robust_train.functional.noise.poisson` (inversion below mean 10, Hörmann's PTRS above)
    for larger ones; the choice is per sample. Gradient: surrogate, ``d out / d x = 1``
    where ``k / lam <= 1`` (reparameterised: ``E[k / lam] = x``), 0 where clipped.

    Example:
        >>> import torch
        >>> ShotNoise(severity=2)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "shot_noise"
    cpu = CpuPolicy(unchunked_when_fused=True)
    family = "noise"
    gradient = "surrogate"
    table = SeverityTable(
        ("lam",),
        imagenet=[(60,), (25,), (12,), (5,), (3,)],
        tinyimagenet=[(250,), (100,), (50,), (30,), (15,)],
        cifar=[(500,), (250,), (100,), (75,), (50,)],
    )

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Noise from ``params["seed"]`` at the table arguments of ``params["severity"]`` (float, before 8 bit)."""
        a = self.args(params, self.resolve_preset(x))
        return F.shot_noise(x, a["lam"], params["seed"], stream=F.SHOT_STREAM)


@register_corruption
class ImpulseNoise(Corruption):
    """Salt-and-pepper noise, every channel independently (skimage ``random_noise('s&p')``, spec 2.3).

    Severity table (``amount`` = probability that an element is replaced, half by 0 and half by 1):

    ===  ========  ============  =====
    s    imagenet  tinyimagenet  cifar
    ===  ========  ============  =====
    1    0.03      0.01          0.01
    2    0.06      0.02          0.02
    3    0.09      0.05          0.03
    4    0.17      0.08          0.05
    5    0.27      0.14          0.07
    ===  ========  ============  =====

    Quirk 13 reproduced: channels are hit independently (coloured specks); a pixel has at least one replaced
    channel with probability ``1 - (1 - amount)**3``. Gradient: exact given the field (identity on untouched
    elements, zero on replaced ones), i.e. straight through the untouched pixels.

    Example:
        >>> import torch
        >>> ImpulseNoise(severity=2)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "impulse_noise"
    cpu = CpuPolicy(unchunked_when_fused=True)
    family = "noise"
    gradient = "exact"
    table = SeverityTable(
        ("amount",),
        imagenet=[(0.03,), (0.06,), (0.09,), (0.17,), (0.27,)],
        tinyimagenet=[(0.01,), (0.02,), (0.05,), (0.08,), (0.14,)],
        cifar=[(0.01,), (0.02,), (0.03,), (0.05,), (0.07,)],
    )

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Noise from ``params["seed"]`` at the table arguments of ``params["severity"]`` (float, before 8 bit)."""
        a = self.args(params, self.resolve_preset(x))
        return F.impulse_noise(x, a["amount"], params["seed"], stream=F.IMPULSE_STREAM)


@register_corruption
class SpeckleNoise(_KernelBackendMixin):
    """Multiplicative Gaussian noise, ``clip(x + x (sigma z), 0, 1)`` (spec 2.4, an "extra" corruption).

    Severity table (std ``sigma`` of the multiplicative noise):

    ===  ========  ============  =====
    s    imagenet  tinyimagenet  cifar
    ===  ========  ============  =====
    1    0.15      0.15          0.06
    2    0.20      0.20          0.10
    3    0.35      0.25          0.12
    4    0.45      0.30          0.16
    5    0.60      0.35          0.20
    ===  ========  ============  =====

    Gradient: exact (``1 + sigma z`` inside the clip, zero where the output clips).

    Example:
        >>> import torch
        >>> SpeckleNoise(severity=2)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "speckle_noise"
    cpu = CpuPolicy(unchunked_when_fused=True)
    family = "noise"
    gradient = "exact"
    table = SeverityTable(
        ("sigma",),
        imagenet=[(0.15,), (0.20,), (0.35,), (0.45,), (0.60,)],
        tinyimagenet=[(0.15,), (0.20,), (0.25,), (0.30,), (0.35,)],
        cifar=[(0.06,), (0.10,), (0.12,), (0.16,), (0.20,)],
    )

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Noise from ``params["seed"]`` at the table arguments of ``params["severity"]`` (float, before 8 bit)."""
        a = self.args(params, self.resolve_preset(x))
        return F.speckle_noise(x, a["sigma"], params["seed"], stream=F.SPECKLE_STREAM, backend=self.backend)
