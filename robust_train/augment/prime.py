"""PRIME (Modas et al., "PRIME: A few primitives can boost robustness to common corruptions", ECCV 2022), batched.

Three families of max-entropy primitives (maths in :mod:`robust_train.functional.prime`), each drawn with a random
strength per sample and per chain step: random smooth diffeomorphisms, random smooth colour transforms and random
filters. They are mixed as AugMix mixes its ops: ``width`` chains of depth 1-3, each step drawing one primitive
uniformly; Dirichlet(``alpha``) weights over the chains and a Beta(``alpha``, ``alpha``) weight ``m`` of the mix
against the clean image, ``(1 - m) x + m sum_i w_i chain_i``. With ``jsd=True`` the output is
``[x, prime_1(x), prime_2(x)]`` for :class:`~robust_train.losses.JsdCrossEntropy` (the reference's loss:
cross-entropy on the clean split + 12 x JS divergence, ``lightning/systems/augmentation.py``).

Per-sample draws (the reference's ``stochastic=True`` modules, ``train.py`` lines 141-169):

==========  ==========================================================================================================
diffeo      ``cutmax' ~ U{cut_min + 1, ..., cut_max}``, ``cut = cut_min + floor(Beta(1/2, 1/2) (cutmax' + 1 -
            cut_min))``; temperature ``u ~ Beta(1/2, 1/2)`` in the allowed range ``[T1, max(T1, alpha T2)]``
            (``s = r = 1`` of the reference's Beta parametrisation ``Beta(s - s / (r + 1), s / (r + 1))``)
color       ``cut ~ U{1, ..., color_cut}``, ``T ~ U(0, color_temperature)``; with a bandwidth ``F``: lowest frequency
            ``k0 ~ U{1, ..., cut}`` and frequencies ``k0 .. min(k0 + F, cut + 1) - 1``, else ``1 .. cut``
filter      kernel size uniform over ``filter_sizes``, ``sigma ~ U(0, filter_sigma)``
==========  ==========================================================================================================

Presets (defaults verified in the reference repository github.com/amodas/PRIME-augmentations at commit 0290f6b):

===============================  ==================  ==================  ============================================
setting                          ``"cifar"``         ``"imagenet"``      source
===============================  ==================  ==================  ============================================
diffeo cut_min / cut_max         2 / 100             2 / 500             ``config/cifar10_cfg.py`` l. 49-55,
                                                                         ``config/imagenet_cfg.py`` l. 51-57
diffeo alpha                     1.0                 1.0                 same lines
color cut / T / bandwidth        100 / 0.01 / none   500 / 0.05 / 20     ``cifar10_cfg.py`` l. 57-59,
                                                                         ``imagenet_cfg.py`` l. 59-61 (``max_freqs``)
filter size / sigma              3 / 4.0             3 / 4.0             ``cifar10_cfg.py`` l. 61-62,
                                                                         ``imagenet_cfg.py`` l. 63-64
width / depth / max depth        3 / 1-3 / 3         3 / 1-3 / 3         ``augmix.mixture_*``; ``train.py`` l. 164-169
JSD                              yes                 no                  ``augmix.no_jsd`` (``cifar100_cfg.py`` too)
===============================  ==================  ==================  ============================================

The stochastic filter's size candidates are ``range(kernel_size, kernel_size + 2, 2)``, i.e. only ``kernel_size``
(``utils/rand_filter.py`` l. 14), so both presets use 3 x 3 kernels; ``filter_sizes`` may list several odd sizes,
and every kernel of a batch is padded to the largest (one grouped convolution).

Differences from the reference, all deliberate:

* Every draw is per sample (the reference draws one diffeomorphism field, one cut-off and one filter sigma per batch
  and primitive; colour coefficients and filter taps are per sample there too).
* The filter's identity tap is at the kernel centre. The reference puts it at index ``ceil(k / 2)`` (row and column 2
  of a 3 x 3 kernel, ``utils/rand_filter.py`` l. 31), which adds a one-pixel diagonal shift to every filtered image.
* Non-square images are allowed: each axis has its own sine basis and its displacement is scaled by its own length
  (the reference asserts square images); the temperature range uses the width, as the reference uses the last dim.
* A fixed ``depth`` runs exactly ``depth`` steps (the reference still draws a random depth mask for fixed depths).
* Mixing happens on ``[0, 1]`` images, before normalisation (the mix is affine: the same images after normalising).

Costs: every chain step evaluates all enabled primitives on every chain and keeps the drawn one (as the reference's
``PRIMEAugModule`` does), so a view costs ``width x max_depth x len(primitives)`` primitive calls on ``B`` images.
The diffeomorphism draws ``2 min(cut_max, W - 2) min(cut_max, H - 2)`` normal coefficients per image and step
(frequencies the pixel grid cannot tell apart are folded together, :func:`~robust_train.functional.prime.smooth_diffeo`)
and builds a ``cut_max x cut_max`` mode-variance map per image (10 k floats for CIFAR, 250 k, about 1 MB, for
ImageNet); the colour transform takes ``2 F`` passes over the image (``F`` = 100 for CIFAR, 20 for ImageNet).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..corruptions.params import Params
from ..functional import prime as PF
from ..functional.checks import check_range
from .augmix import ChainMix, sample_beta

__all__ = ["PRESETS", "Prime"]

#: Published defaults per preset (sources in the module docstring).
PRESETS: dict[str, dict[str, Any]] = {
    "cifar": {
        "diffeo_cut": (2, 100),
        "diffeo_alpha": 1.0,
        "color_cut": 100,
        "color_temperature": 0.01,
        "color_bandwidth": None,
        "filter_sizes": (3,),
        "filter_sigma": 4.0,
    },
    "imagenet": {
        "diffeo_cut": (2, 500),
        "diffeo_alpha": 1.0,
        "color_cut": 500,
        "color_temperature": 0.05,
        "color_bandwidth": 20,
        "filter_sizes": (3,),
        "filter_sigma": 4.0,
    },
}


class Prime(ChainMix):
    """PRIME as a batched, replayable module (settings and sources in the module docstring).

    Args:
        preset: ``"cifar"`` or ``"imagenet"``: the published primitive strengths; the arguments below override them.
        width: number of chains (paper: 3).
        depth: steps per chain; ``-1`` draws 1-3 per chain (paper default).
        alpha: Dirichlet and Beta concentration (the reference: 1).
        primitives: enabled families, a non-empty subset of ``("diffeo", "color", "filter")`` (reference:
            all three, ``enable_aug``).
        diffeo_cut: ``(cut_min, cut_max)`` of the diffeomorphism cut-off (cut_min >= 2).
        diffeo_alpha: scale of the largest diffeomorphism temperature.
        color_cut: largest colour frequency.
        color_temperature: largest colour coefficient variance.
        color_bandwidth: frequencies per colour transform (``None``: all up to the drawn cut-off).
        filter_sizes: odd kernel sizes to draw from.
        filter_sigma: largest filter tap standard deviation.
        jsd: return ``[clean, aug_1, ..., aug_n]`` for the JSD consistency loss.
        num_views: augmented views per sample when ``jsd`` (paper: 2).
        p: probability that a sample is augmented (others are returned clean in every view).
        seed: seed of the module's own generator; ``None`` uses the global generator.

    Params (leading dim B; ``V = num_views`` if ``jsd`` else 1, ``W = width``, ``D = depth`` or 3):
        ``apply`` (B,) bool, ``weights`` (B, V, W) Dirichlet, ``skip`` (B, V) Beta, ``depth`` (B, V, W) int64,
        ``op`` (B, V, W, D) int64 index into :attr:`primitives`, ``seed`` (B, V, W, D) int64 seeds of the random
        fields, and per step ``diffeo_cut`` / ``color_cut`` / ``color_first`` / ``filter_size`` (int64),
        ``diffeo_u`` / ``color_temp`` / ``filter_sigma`` (float64), all (B, V, W, D).

    Shape:
        - Input: (B, C, H, W), float in [0, 1], H, W >= 3.
        - Output: (B, C, H, W), or ((1 + num_views) B, C, H, W) with ``jsd=True``.

    Example:
        >>> aug = Prime(jsd=True, seed=0)
        >>> aug(torch.rand(4, 3, 16, 16)).shape
        torch.Size([12, 3, 16, 16])
        >>> aug.last_params["op"].shape
        torch.Size([4, 2, 3, 3])
    """

    def __init__(
        self,
        preset: str = "cifar",
        width: int = 3,
        depth: int = -1,
        alpha: float = 1.0,
        primitives: Sequence[str] = PF.PRIMITIVES,
        diffeo_cut: Sequence[int] | None = None,
        diffeo_alpha: float | None = None,
        color_cut: int | None = None,
        color_temperature: float | None = None,
        color_bandwidth: int | None = None,
        filter_sizes: Sequence[int] | None = None,
        filter_sigma: float | None = None,
        jsd: bool = False,
        num_views: int = 2,
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(width, depth, alpha, jsd, num_views, p, seed)
        if preset not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {preset!r}")
        d = PRESETS[preset]
        names = tuple(primitives)
        if not names or any(n not in PF.PRIMITIVES for n in names) or len(set(names)) != len(names):
            raise ValueError(f"primitives: expected distinct names from {list(PF.PRIMITIVES)}, got {list(names)}")
        cut = tuple(d["diffeo_cut"] if diffeo_cut is None else diffeo_cut)
        if len(cut) != 2 or not 2 <= int(cut[0]) < int(cut[1]):
            raise ValueError(f"diffeo_cut: expected (cut_min, cut_max) with 2 <= cut_min < cut_max, got {cut}")
        d_alpha = float(d["diffeo_alpha"] if diffeo_alpha is None else diffeo_alpha)
        if not d_alpha > 0:
            raise ValueError(f"diffeo_alpha: expected a positive scale, got {d_alpha}")
        c_cut = int(d["color_cut"] if color_cut is None else color_cut)
        if c_cut < 1:
            raise ValueError(f"color_cut: expected a positive frequency, got {c_cut}")
        c_temp = float(d["color_temperature"] if color_temperature is None else color_temperature)
        if not c_temp >= 0:
            raise ValueError(f"color_temperature: expected a non-negative variance, got {c_temp}")
        band = d["color_bandwidth"] if color_bandwidth is None else color_bandwidth
        if band is not None and int(band) < 1:
            raise ValueError(f"color_bandwidth: expected a positive frequency count or None, got {band}")
        sizes = tuple(int(s) for s in (d["filter_sizes"] if filter_sizes is None else filter_sizes))
        if not sizes or any(s < 1 or s % 2 == 0 for s in sizes):
            raise ValueError(f"filter_sizes: expected positive odd kernel sizes, got {list(sizes)}")
        f_sigma = float(d["filter_sigma"] if filter_sigma is None else filter_sigma)
        check_range(f_sigma, 0.0, float("inf"), "filter_sigma")
        self.preset = preset
        self.primitives: tuple[str, ...] = names
        self.diffeo_cut = (int(cut[0]), int(cut[1]))
        self.diffeo_alpha = d_alpha
        self.color_cut = c_cut
        self.color_temperature = c_temp
        self.color_bandwidth = None if band is None else int(band)
        self.filter_sizes = sizes
        self.filter_sigma = f_sigma

    @property
    def num_freqs(self) -> int:
        """Colour frequencies evaluated per sample: the bandwidth, or the largest cut-off without one."""
        return self.color_bandwidth if self.color_bandwidth is not None else self.color_cut

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw every PRIME choice for a batch (CPU; float64 where it matters)."""
        g = self._gen(generator)
        b, v, w, d = batch_size, self.views, self.width, self.max_depth
        s = (b, v, w, d)

        def uniform(shape: tuple[int, ...]) -> Tensor:
            return torch.rand(shape, generator=g, dtype=torch.float64)

        def integers(lo: Tensor | int, hi: Tensor | int) -> Tensor:  # uniform on {lo, ..., hi} per element
            return (lo + torch.floor(uniform(s) * (hi - lo + 1))).to(torch.int64)

        params = self.sample_mix(b, g)
        params["op"] = torch.randint(0, len(self.primitives), s, generator=g, dtype=torch.int64)
        params["seed"] = torch.randint(-(2**62), 2**62, s, generator=g, dtype=torch.int64)
        cut_min, cut_max = self.diffeo_cut
        top = integers(cut_min + 1, cut_max)
        cut = cut_min + torch.floor(sample_beta(s, 0.5, g) * (top + 1 - cut_min)).to(torch.int64)
        params["diffeo_cut"] = torch.minimum(cut, top)
        params["diffeo_u"] = sample_beta(s, 0.5, g)
        c_cut = integers(1, self.color_cut)
        params["color_cut"] = c_cut
        params["color_temp"] = uniform(s) * self.color_temperature
        params["color_first"] = (
            integers(1, c_cut) if self.color_bandwidth is not None else torch.ones(s, dtype=torch.int64)
        )
        pick = torch.randint(0, len(self.filter_sizes), s, generator=g, dtype=torch.int64)
        params["filter_size"] = torch.tensor(self.filter_sizes, dtype=torch.int64)[pick]
        params["filter_sigma"] = uniform(s) * self.filter_sigma
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Mix every view; returns ``[x, views...]`` with ``jsd`` else the single view."""
        b, _, h, w_px = x.shape
        if h < 3 or w_px < 3:
            raise ValueError(f"x: PRIME needs images of at least 3 x 3 pixels, got {h} x {w_px}")
        v, width = (int(n) for n in params["weights"].shape[1:])

        def chains(t: Tensor) -> Tensor:  # (B, V, W, ...) -> (W * V * B, ...): chain-major, then view-major
            return t.permute(2, 1, 0, *range(3, t.dim())).reshape(width * v * b, *t.shape[3:])

        temp = PF.diffeo_temperature(params["diffeo_cut"], params["diffeo_u"], w_px, self.diffeo_alpha)
        out = PF.prime_chains(
            x.repeat(width * v, 1, 1, 1),
            self.primitives,
            chains(params["op"]),
            chains(params["depth"].unsqueeze(-1)).view(-1),
            chains(params["seed"]),
            chains(params["diffeo_cut"]),
            chains(temp),
            chains(params["color_cut"]),
            chains(params["color_temp"]),
            chains(params["color_first"]),
            chains(params["filter_size"]),
            chains(params["filter_sigma"]),
            max_cut=self.diffeo_cut[1],
            num_freqs=self.num_freqs,
            max_size=max(self.filter_sizes),
        )
        out = out.view(width, v * b, *x.shape[1:]).transpose(0, 1)  # (V * B, W, C, H, W)
        xr = x.repeat(v, 1, 1, 1)
        flat = lambda t: t.transpose(0, 1).reshape(v * b, *t.shape[2:])  # noqa: E731  (B, V, ...) -> (V * B, ...)
        mixed = PF.prime_mix(xr, out, flat(params["weights"]), flat(params["skip"]))
        return self.assemble(x, mixed, params)

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return (
            f"preset={self.preset!r}, width={self.width}, depth={self.depth}, alpha={self.alpha}, "
            f"primitives={list(self.primitives)}, diffeo_cut={self.diffeo_cut}, diffeo_alpha={self.diffeo_alpha}, "
            f"color_cut={self.color_cut}, color_temperature={self.color_temperature}, "
            f"color_bandwidth={self.color_bandwidth}, filter_sizes={list(self.filter_sizes)}, "
            f"filter_sigma={self.filter_sigma}, jsd={self.jsd}, num_views={self.num_views}, p={self.p}"
        )
