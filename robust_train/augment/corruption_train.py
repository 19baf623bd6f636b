"""Training on common corruptions, and Gaussian-noise augmentation (the simple baseline).

:class:`CorruptionAugment` gives every sample one corruption drawn uniformly from a training list and a severity drawn
uniformly from a float range, using the corruption modules of :mod:`robust_train.corruptions`
(``create_corruption(name, severity=..., preset=...)``). Samples are grouped by corruption, so each corruption runs
once per batch on its samples. The evaluation suite (``"c15"`` by default) is **held out**: with ``hold_out=True``
its members are removed from the training list (with a warning naming them if you listed any); with
``hold_out=False`` overlapping corruptions are kept and a warning says the evaluation is then not on unseen
corruptions.

Params: ``apply`` (B,) bool, ``corruption`` (B,) int64 index into :attr:`CorruptionAugment.names`, ``severity``
(B,) float64, ``seed`` (B,) int64 (each corruption derives its own random draws from the seed, so a call replays).

:class:`GaussianNoiseAugment` adds ``N(0, sigma^2)`` noise with a per-sample ``sigma`` (Gaussian data augmentation,
e.g. Rusak et al. 2020); it is its own op, independent of the registry's ``gaussian_noise`` test corruption, and by
design overlaps that test corruption (it is the baseline that corruption-robust training methods are compared with).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..corruptions.api import create_corruption
from ..corruptions.params import Params
from ..corruptions.suites import CORRUPTIONS, SUITES, check_suite_name
from ..functional.checks import check_range
from ..functional.rng import field_normal, stream_id
from .base import BatchAugment

__all__ = ["CorruptionAugment", "GaussianNoiseAugment", "resolve_corruption_names"]

SeverityRange = float | int | tuple[float, float] | Sequence[float]


def _expand(spec: str | Sequence[str] | None) -> tuple[list[str], set[str]]:
    """Names from a suite name, a list of names/suites, or ``None`` (every registered corruption).

    Returns the names in order and the subset that was listed explicitly (not through a suite).
    """
    if spec is None:
        return CORRUPTIONS.list(), set()
    items = [spec] if isinstance(spec, str) else list(spec)
    names: list[str] = []
    explicit: set[str] = set()
    for it in items:
        if it in SUITES:
            names += [n for n in SUITES[it] if n not in names]
        else:
            explicit.add(it)
            if it not in names:
                names.append(it)
    return names, explicit


def resolve_corruption_names(
    corruptions: str | Sequence[str] | None, eval_suite: str | Sequence[str] | None = "c15", hold_out: bool = True
) -> list[str]:
    """The training corruption list after holding out the evaluation suite.

    Args:
        corruptions: a suite name (``"extra"``), a list of names and/or suites, or ``None`` for every registered
            corruption. Suite members that are not registered (yet) are skipped with a warning.
        eval_suite: the evaluation suite (name or list), or ``None``.
        hold_out: remove evaluation corruptions from the training list (else keep them and warn).

    Returns:
        Registered corruption names, in the given order.

    Raises:
        ValueError: an explicitly listed name is not registered, or nothing is left to train on.

    Example:
        >>> resolve_corruption_names(["contrast"], eval_suite=None)
        ['contrast']
    """
    names, explicit = _expand(corruptions)
    for n in names:
        if n in explicit:
            CORRUPTIONS.get(n)  # unknown explicit name: ValueError with close matches
    missing = [n for n in names if n not in CORRUPTIONS]
    if missing:
        warnings.warn(f"corruptions not registered (yet), skipped: {missing}", stacklevel=3)
        names = [n for n in names if n in CORRUPTIONS]
    if isinstance(eval_suite, str):
        check_suite_name(eval_suite, "eval_suite")  # a typo would silently hold out nothing
    elif eval_suite is not None:
        for n in eval_suite:
            if n not in SUITES:
                CORRUPTIONS.get(n)  # unknown name: ArgumentError with close matches
    held = _expand(eval_suite)[0] if eval_suite is not None else []
    overlap = [n for n in names if n in held]
    if overlap:
        if hold_out:
            if corruptions is not None:
                warnings.warn(
                    f"training corruptions {overlap} are in the evaluation suite {eval_suite!r} and were held out "
                    "(pass hold_out=False to train on them)",
                    stacklevel=3,
                )
            names = [n for n in names if n not in held]
        else:
            warnings.warn(
                f"training corruptions {overlap} overlap the evaluation suite {eval_suite!r}: corruption errors on "
                "them no longer measure robustness to unseen corruptions",
                stacklevel=3,
            )
    if not names:
        raise ValueError(
            f"no training corruption left (corruptions={corruptions!r}, eval_suite={eval_suite!r}, "
            f"hold_out={hold_out}); registered: {CORRUPTIONS.list()}"
        )
    return names


def _severity_bounds(severity: SeverityRange, lo: float, hi: float, name: str) -> tuple[float, float]:
    if isinstance(severity, (int, float)) and not isinstance(severity, bool):
        check_range(float(severity), lo, hi, name)
        return float(severity), float(severity)
    s = list(severity)  # type: ignore[arg-type]
    if len(s) != 2:
        raise ValueError(f"{name}: expected a number or a (low, high) range, got {severity!r}")
    a, b = float(s[0]), float(s[1])
    check_range(a, lo, hi, f"{name} low")
    check_range(b, lo, hi, f"{name} high")
    if a > b:
        raise ValueError(f"{name}: expected low <= high, got {severity!r}")
    return a, b


class CorruptionAugment(BatchAugment):
    """One random corruption per sample, from a training list that holds out the evaluation suite.

    Args:
        corruptions: suite name, list of names/suites, or ``None`` (every registered corruption); default ``None``.
        severity: a number in [1, 5] or a ``(low, high)`` float range sampled uniformly per sample.
        p: probability that a sample is corrupted.
        eval_suite: the evaluation suite to hold out (``"c15"``), or ``None``.
        hold_out: remove evaluation corruptions from the training list (module docstring).
        preset: corruption parameter preset (``"auto"`` picks from the image size).
        seed: seed of the module's generator.
        **options: extra constructor options for every corruption (e.g. ``quantize=False``).

    Shape:
        (B, C, H, W) -> (B, C, H, W), C in {1, 3}; one-channel images are corrupted as grey RGB and converted back
        with the channel mean.

    Example:
        >>> aug = CorruptionAugment(["contrast"], severity=(1.0, 5.0), eval_suite=None, seed=0)
        >>> aug(torch.rand(4, 3, 32, 32)).shape
        torch.Size([4, 3, 32, 32])
    """

    channels = (1, 3)

    def __init__(
        self,
        corruptions: str | Sequence[str] | None = None,
        severity: SeverityRange = (1.0, 5.0),
        p: float = 1.0,
        eval_suite: str | Sequence[str] | None = "c15",
        hold_out: bool = True,
        preset: str = "auto",
        seed: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.severity_range = _severity_bounds(severity, 1.0, 5.0, "severity")
        self.names: tuple[str, ...] = tuple(resolve_corruption_names(corruptions, eval_suite, hold_out))
        self.eval_suite = eval_suite
        self.hold_out = bool(hold_out)
        self.preset = preset
        lo, hi = self.severity_range
        sev_arg: Any = (lo, hi) if lo != hi else lo
        self.ops = nn.ModuleList([create_corruption(n, severity=sev_arg, preset=preset, **options) for n in self.names])

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw corruption index, severity and seed per sample (CPU)."""
        g = self._gen(generator)
        params = super().sample_params(batch_size, g)
        lo, hi = self.severity_range
        params["corruption"] = torch.randint(0, len(self.names), (batch_size,), generator=g, dtype=torch.int64)
        params["severity"] = lo + (hi - lo) * torch.rand(batch_size, generator=g, dtype=torch.float64)
        params["seed"] = torch.randint(-(2**62), 2**62, (batch_size,), generator=g, dtype=torch.int64)
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Corrupt each flagged sample with its corruption (grouped by corruption)."""
        grey = x.shape[1] == 1
        xc = x.expand(-1, 3, -1, -1) if grey else x
        out = xc.clone()
        corr = params["corruption"].to("cpu", torch.int64)
        act = params["apply"].to("cpu", torch.bool)
        for k, op in enumerate(self.ops):
            sel = torch.nonzero(act & (corr == k)).view(-1)
            if not sel.numel():
                continue
            sub = op.make_params(
                params["seed"].cpu()[sel],
                params["severity"].cpu()[sel],
                apply=torch.ones(sel.numel(), dtype=torch.bool),
            )
            dsel = sel.to(x.device)
            out[dsel] = op(xc[dsel], sub).to(out.dtype)
        return out.mean(dim=1, keepdim=True) if grey else out

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return (
            f"names={list(self.names)}, severity={self.severity_range}, p={self.p}, eval_suite={self.eval_suite!r}, "
            f"hold_out={self.hold_out}, preset={self.preset!r}"
        )


class GaussianNoiseAugment(BatchAugment):
    """Additive Gaussian noise with a per-sample standard deviation, clipped to [0, 1].

    Args:
        sigma: a standard deviation (in [0, 1] pixel units) or a ``(low, high)`` range sampled uniformly per sample.
        p: probability that a sample gets noise (Gaussian augmentation is usually applied to half the batch).
        seed: seed of the module's generator.

    Params: ``apply`` (B,) bool, ``sigma`` (B,) float64, ``seed`` (B,) int64 (the noise field is a counter-based hash
    of the seed, computed on the image's device).

    Example:
        >>> GaussianNoiseAugment(sigma=(0.0, 0.1), p=0.5, seed=0)(torch.rand(4, 3, 8, 8)).shape
        torch.Size([4, 3, 8, 8])
    """

    def __init__(self, sigma: SeverityRange = (0.0, 0.1), p: float = 0.5, seed: int | None = None) -> None:
        super().__init__(p=p, seed=seed)
        self.sigma_range = _severity_bounds(sigma, 0.0, 1.0, "sigma")

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw ``apply``, ``sigma`` and ``seed`` per sample (CPU)."""
        g = self._gen(generator)
        params = super().sample_params(batch_size, g)
        lo, hi = self.sigma_range
        params["sigma"] = lo + (hi - lo) * torch.rand(batch_size, generator=g, dtype=torch.float64)
        params["seed"] = torch.randint(-(2**62), 2**62, (batch_size,), generator=g, dtype=torch.int64)
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """``clamp(x + sigma * z)`` for flagged samples."""
        z = field_normal(
            params["seed"].to(x.device),
            tuple(x.shape[1:]),
            stream_id("augment/gaussian_noise"),
            dtype=x.dtype,
            device=x.device,
        )
        sigma = params["sigma"].to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
        return self.gate(params["apply"], (x + sigma * z).clamp(0.0, 1.0), x)

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return f"sigma={self.sigma_range}, p={self.p}"
