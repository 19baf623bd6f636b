"""Batched AugMix (Hendrycks et al., ICLR 2020) on the device.

Per sample and per augmented view: ``width`` chains; chain ``i`` applies ``depth_i`` ops (fixed, or uniform in
{1, 2, 3} when ``depth=-1``), each op chosen uniformly from the op list with its own level ``U(0.1, severity)`` and
sign; the chains are mixed with Dirichlet(``alpha``) weights and the mix is blended with the clean image with a
Beta(``alpha``, ``alpha``) weight ``m``: ``(1 - m) x + m sum_i w_i chain_i``. All draws are :class:`Params` (CPU,
float64), so a call replays exactly (``aug(x, params=aug.last_params)``) and a seeded module repeats its draws.

Ops come from :data:`~robust_train.augment.ops.AUGMENT_OPS`: the paper's 9 ops by default (autocontrast, equalize,
posterize, rotate, solarize, shear x/y, translate x/y); ``all_ops=True`` adds color, contrast, brightness and
sharpness, which overlap ImageNet-C test corruptions (the paper excludes them for that reason).

With ``jsd=True`` the output is ``[x, augmix_1(x), augmix_2(x)]`` concatenated along the batch (``num_splits = 3``),
for :class:`~robust_train.losses.JsdCrossEntropy`; otherwise just the AugMix batch (the "AugMix without JSD" variant).
The reference code mixes after normalisation; AugMix's mix is affine, so mixing ``[0, 1]`` images and normalising
afterwards is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from ..corruptions.params import Params
from ..functional import augment_ops as AF
from ..functional.checks import check_range
from .base import BatchAugment
from .ops import AUGMENT_OPS, list_augment_ops

__all__ = ["AugMix", "ChainMix", "sample_beta", "sample_dirichlet"]


def sample_dirichlet(shape: tuple[int, ...], alpha: float, generator: torch.Generator | None) -> Tensor:
    """Symmetric Dirichlet(alpha) draws over the last dim of ``shape`` (CPU, float64; rows sum to one).

    Example:
        >>> w = sample_dirichlet((4, 3), 1.0, torch.Generator().manual_seed(0))
        >>> w.shape, bool(torch.allclose(w.sum(-1), torch.ones(4, dtype=torch.float64)))
        (torch.Size([4, 3]), True)
    """
    g = torch._standard_gamma(torch.full(shape, float(alpha), dtype=torch.float64), generator=generator)
    s = g.sum(-1, keepdim=True)
    # Tiny alphas can underflow every gamma of a row; fall back to a uniform row rather than NaN.
    return torch.where(s > 0, g / s.clamp_min(1e-300), torch.full_like(g, 1.0 / shape[-1]))


def sample_beta(
    shape: tuple[int, ...], alpha: float, generator: torch.Generator | None, beta: float | None = None
) -> Tensor:
    """Beta(alpha, beta) draws (CPU, float64; ``beta=None``: Beta(alpha, alpha)) as ``G_a / (G_a + G_b)``.

    Example:
        >>> sample_beta((5,), 1.0, torch.Generator().manual_seed(0)).shape
        torch.Size([5])
        >>> x = sample_beta((4,), 3.0, torch.Generator().manual_seed(0), beta=1.0)
        >>> bool(((x > 0) & (x < 1)).all())
        True
    """
    a_, b_ = float(alpha), float(alpha if beta is None else beta)
    a = torch._standard_gamma(torch.full(shape, a_, dtype=torch.float64), generator=generator)
    b = torch._standard_gamma(torch.full(shape, b_, dtype=torch.float64), generator=generator)
    s = a + b
    # tiny parameters can underflow both gammas: fall back to the mean rather than NaN
    return torch.where(s > 0, a / s.clamp_min(1e-300), torch.full_like(a, a_ / (a_ + b_)))


class ChainMix(BatchAugment):
    """Base of the mixed-chain augmentations (AugMix, PRIME).

    ``width`` chains of random depth per view, mixed with Dirichlet(``alpha``) weights and a Beta(``alpha``,
    ``alpha``) skip weight, with the optional JSD views. Holds the shared settings, their validation, the draws of
    the mix (:meth:`sample_mix`: ``apply``, ``weights``, ``skip``, ``depth``, in that order) and the final assembly
    (:meth:`assemble`); subclasses draw and apply their ops.
    """

    #: Longest chain when ``depth=-1`` (the depth is then uniform in 1..3, as in both papers' code).
    max_random_depth: ClassVar[int] = 3

    def __init__(
        self, width: int, depth: int, alpha: float, jsd: bool, num_views: int, p: float, seed: int | None
    ) -> None:
        super().__init__(p=p, seed=seed)
        if int(width) < 1:
            raise ValueError(f"width: expected a positive number of chains, got {width}")
        if int(depth) == 0 or int(depth) < -1:
            raise ValueError(f"depth: expected -1 (random 1-3) or a positive chain length, got {depth}")
        if not float(alpha) > 0:
            raise ValueError(f"alpha: expected a positive concentration, got {alpha}")
        if int(num_views) < 1:
            raise ValueError(f"num_views: expected >= 1 augmented views, got {num_views}")
        self.width = int(width)
        self.depth = int(depth)
        self.alpha = float(alpha)
        self.jsd = bool(jsd)
        self.num_views = int(num_views)

    @property
    def num_splits(self) -> int:
        """``1 + num_views`` with ``jsd``, else 1."""
        return 1 + self.num_views if self.jsd else 1

    @property
    def views(self) -> int:
        """Augmented views per sample: ``num_views`` with ``jsd``, else 1."""
        return self.num_views if self.jsd else 1

    @property
    def max_depth(self) -> int:
        """Length of the per-chain step axis of the params (``depth``, or :attr:`max_random_depth`)."""
        return self.depth if self.depth > 0 else self.max_random_depth

    def sample_mix(self, batch_size: int, generator: torch.Generator | None) -> Params:
        """Draw ``apply`` (B,), ``weights`` (B, V, width), ``skip`` (B, V) and ``depth`` (B, V, width) on the CPU."""
        b, v, w = batch_size, self.views, self.width
        params = super().sample_params(b, generator)
        params["weights"] = sample_dirichlet((b, v, w), self.alpha, generator)
        params["skip"] = sample_beta((b, v), self.alpha, generator)
        if self.depth > 0:
            params["depth"] = torch.full((b, v, w), self.depth, dtype=torch.int64)
        else:
            params["depth"] = torch.randint(
                1, self.max_random_depth + 1, (b, v, w), generator=generator, dtype=torch.int64
            )
        return params

    def assemble(self, x: Tensor, mixed: Tensor, params: Params) -> Tensor:
        """Gate the (V B) mixed views per sample and return ``[x, views...]`` with ``jsd``, else the single view."""
        v = int(params["weights"].shape[1])
        mixed = self.gate(params["apply"].repeat(v), mixed, x.repeat(v, 1, 1, 1))
        return torch.cat([x, mixed]) if self.jsd else mixed


class AugMix(ChainMix):
    """AugMix as a batched, replayable module.

    Args:
        severity: op severity on AugMix's 1-10 scale (paper: 3 on CIFAR, 1 on ImageNet).
        width: number of chains ``k`` (paper: 3).
        depth: ops per chain; ``-1`` draws 1-3 per chain (paper default).
        alpha: Dirichlet and Beta concentration (paper: 1).
        all_ops: also use color, contrast, brightness, sharpness (they overlap ImageNet-C test corruptions).
        ops: explicit op names (registry keys); overrides ``all_ops``.
        jsd: return ``[clean, aug_1, ..., aug_n]`` for the JSD consistency loss.
        num_views: augmented views per sample when ``jsd`` (paper: 2).
        p: probability that a sample is augmented (others are returned clean in every view).
        seed: seed of the module's own generator (replayable runs); ``None`` uses the global generator.
        pil_exact: run the chains as the reference code does, with PIL on 8-bit images: the image is rounded to
            8-bit levels, every op step is Pillow's integer/float32 arithmetic (bit-exact on the parity photos,
            ``benchmarks/results/augmix_pil_parity.md``), the chains are mixed in float. ``False``: float ops without
            rounding between steps (smoother, slightly different at the image border and in the blend ops).

    Params (leading dim B; ``V = num_views`` if ``jsd`` else 1, ``D = depth`` or 3):
        ``apply`` (B,) bool, ``severity`` (B,), ``weights`` (B, V, width) Dirichlet, ``skip`` (B, V) Beta,
        ``depth`` (B, V, width) int64, ``op`` (B, V, width, D) int64 index into :attr:`ops`, ``level`` and
        ``sign`` (B, V, width, D) float64.

    Shape:
        - Input: (B, C, H, W), float in [0, 1].
        - Output: (B, C, H, W), or ((1 + num_views) B, C, H, W) with ``jsd=True``.

    Example:
        >>> aug = AugMix(jsd=True, seed=0)
        >>> aug(torch.rand(4, 3, 16, 16)).shape
        torch.Size([12, 3, 16, 16])
        >>> aug.last_params["weights"].shape
        torch.Size([4, 2, 3])
    """

    def __init__(
        self,
        severity: float = 3.0,
        width: int = 3,
        depth: int = -1,
        alpha: float = 1.0,
        all_ops: bool = False,
        ops: Sequence[str] | None = None,
        jsd: bool = False,
        num_views: int = 2,
        p: float = 1.0,
        seed: int | None = None,
        pil_exact: bool = False,
    ) -> None:
        super().__init__(width, depth, alpha, jsd, num_views, p, seed)
        check_range(float(severity), 1.0, 10.0, "severity")
        names = list(ops) if ops is not None else list_augment_ops(all_ops)
        if not names:
            raise ValueError("ops: expected at least one augment op")
        for n in names:
            AUGMENT_OPS.get(n)
            if n not in AF.OP_SPECS:
                raise ValueError(f"augment op {n!r} is registered but has no functional spec in OP_SPECS")
        self.severity = float(severity)
        self.all_ops = bool(all_ops)
        self.ops: tuple[str, ...] = tuple(names)
        self.pil_exact = bool(pil_exact)

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw every AugMix choice for a batch (CPU)."""
        g = self._gen(generator)
        b, v, w, d = batch_size, self.views, self.width, self.max_depth
        params = self.sample_mix(b, g)
        params["severity"] = torch.full((b,), self.severity, dtype=torch.float64)
        params["op"] = torch.randint(0, len(self.ops), (b, v, w, d), generator=g, dtype=torch.int64)
        params["level"] = 0.1 + (self.severity - 0.1) * torch.rand((b, v, w, d), generator=g, dtype=torch.float64)
        params["sign"] = torch.where(torch.rand((b, v, w, d), generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0).to(
            torch.float64
        )
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Mix every view; returns ``[x, views...]`` with ``jsd`` else the single view."""
        b = x.shape[0]
        v = int(params["weights"].shape[1])

        def flat(t: Tensor) -> Tensor:  # (B, V, ...) -> (V * B, ...), view-major
            return t.transpose(0, 1).reshape(v * b, *t.shape[2:])

        xr = x.repeat(v, 1, 1, 1)
        out = AF.augmix(
            xr,
            self.ops,
            flat(params["op"]),
            flat(params["level"]),
            flat(params["sign"]),
            flat(params["depth"]),
            flat(params["weights"]),
            flat(params["skip"]),
            pil_exact=self.pil_exact,
        )
        return self.assemble(x, out, params)

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return (
            f"severity={self.severity}, width={self.width}, depth={self.depth}, alpha={self.alpha}, "
            f"ops={list(self.ops)}, jsd={self.jsd}, num_views={self.num_views}, p={self.p}, pil_exact={self.pil_exact}"
        )
