"""``PerturbationStability``: flip probability, top-5 and zipf distance per perturbation, mFR / mT5D (ImageNet-P)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from ..errors import ArgumentTypeError, IncompleteMetricWarning
from . import functional as MF
from .baselines import Baseline, resolve_baseline

__all__ = ["P_BENCHMARK_ORDER", "P_EXTRA", "P_SUITES", "PerturbationStability"]

#: The 10 ImageNet-P test perturbations and the 4 validation ones (spec 6.1).
P_BENCHMARK_ORDER: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "motion_blur",
    "zoom_blur",
    "snow",
    "brightness",
    "translate",
    "rotate",
    "tilt",
    "scale",
)
P_EXTRA: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "shear")
#: Named perturbation suites.
P_SUITES: dict[str, tuple[str, ...]] = {
    "p10": P_BENCHMARK_ORDER,
    "p14": P_BENCHMARK_ORDER + P_EXTRA,
    "p_extra": P_EXTRA,
}


class PerturbationStability(Metric):
    """Prediction stability on perturbation sequences.

    Args:
        perturbations: perturbation names in report order; names containing ``"noise"`` are compared with the clean
            first frame, the others frame to frame (:func:`~robust_train.metrics.functional.frame_pairs`).
        difficulty: 1, 2 or 3: frame stride for non-noise perturbations (noise sequences encode their difficulty
            in the noise strength, so their comparison ignores it).
        baseline: ``None``, a baseline JSON path or a :class:`~robust_train.metrics.baselines.Baseline` holding
            ``fp`` and ``t5d`` for every perturbation (needed for FR / mFR / mT5D; AlexNet ImageNet-P values are
            not published: compute them with ``robust-eval``).
        mean_perturbations: perturbations averaged into the means; default: those among the 10 test ones, or all.
        **kwargs: :class:`torchmetrics.Metric` options.

    ``compute()`` returns ``fp``, ``t5d``, ``zipf`` (P,), the unnormalised means ``mean_fp`` / ``mean_t5d`` and, with a
    baseline, ``fr`` / ``t5d_ratio`` (P,) and ``mfr`` / ``mt5d``.

    Example:
        >>> m = PerturbationStability(["rotate"])
        >>> m.update(torch.tensor([[[2., 1.], [1., 2.], [1., 2.]]]), "rotate")
        >>> float(m.compute()["fp"])
        0.5
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        perturbations: Sequence[str],
        difficulty: int = 1,
        baseline: str | os.PathLike[str] | Baseline | None = None,
        mean_perturbations: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(perturbations, str):
            raise ArgumentTypeError(
                f"perturbations: expected a list of names, got the string {perturbations!r} (use [{perturbations!r}])"
            )
        self.perturbations = [str(p) for p in perturbations]
        if not self.perturbations or len(set(self.perturbations)) != len(self.perturbations):
            raise ValueError(f"expected distinct perturbation names, got {list(perturbations)}")
        if isinstance(difficulty, bool) or not isinstance(difficulty, int) or difficulty < 1:
            raise ValueError(f"difficulty must be a positive int (1, 2 or 3), got {difficulty!r}")
        self.difficulty = difficulty
        if mean_perturbations is None:
            mean_perturbations = [p for p in self.perturbations if p in P_BENCHMARK_ORDER] or self.perturbations
        unknown = [p for p in mean_perturbations if p not in self.perturbations]
        if unknown:
            raise ValueError(f"mean_perturbations {unknown} are not among {self.perturbations}")
        self.mean_perturbations = list(mean_perturbations)
        self.baseline = resolve_baseline(baseline)
        self._base: tuple[Tensor, Tensor] | None = None
        if self.baseline is not None:
            self._base = self.baseline.stability_table(self.perturbations, difficulty)
        p = len(self.perturbations)
        self.add_state("flips", torch.zeros(p, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("pairs", torch.zeros(p, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("t5d_sum", torch.zeros(p, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("zipf_sum", torch.zeros(p, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, perturbation: str) -> None:
        """Add N sequences of one perturbation.

        Args:
            logits: (N, T, K) float logits for every frame.
            perturbation: its name.
        """
        try:
            i = self.perturbations.index(perturbation)
        except ValueError:
            raise ValueError(f"unknown perturbation {perturbation!r}; tracking {self.perturbations}") from None
        noise = MF.is_noise_perturbation(perturbation)
        MF._check_sequence_logits(logits)
        flips, pairs = MF._flip_update(logits.argmax(-1), noise, self.difficulty)
        t5d, _ = MF._t5d_update(logits, noise, self.difficulty)
        zipf, _ = MF._zipf_update(logits, noise, self.difficulty)
        self.flips[i] += flips.to(self.flips.device)
        self.pairs[i] += pairs.to(self.pairs.device)
        self.t5d_sum[i] += t5d.to(self.t5d_sum.device)
        self.zipf_sum[i] += zipf.to(self.zipf_sum.device)

    def compute(self) -> dict[str, Tensor]:
        """See the class docstring."""
        pairs = self.pairs.double()
        never = [p for p, n in zip(self.perturbations, self.pairs.tolist(), strict=True) if n == 0]
        if never:
            warnings.warn(
                f"PerturbationStability: no sequence was seen for {never}: their FP / T5D / zipf and the means over "
                "them are NaN",
                IncompleteMetricWarning,
                stacklevel=2,
            )
        out = {"fp": self.flips.double() / pairs, "t5d": self.t5d_sum / pairs, "zipf": self.zipf_sum / pairs}
        rows = [self.perturbations.index(p) for p in self.mean_perturbations]
        out["mean_fp"] = out["fp"][rows].mean()
        out["mean_t5d"] = out["t5d"][rows].mean()
        if self._base is not None:
            base_fp, base_t5d = (t.to(pairs.device) for t in self._base)
            out["fr"] = MF.flip_rate(out["fp"], base_fp)
            out["t5d_ratio"] = MF.flip_rate(out["t5d"], base_t5d)
            out["mfr"] = out["fr"][rows].mean()
            out["mt5d"] = out["t5d_ratio"][rows].mean()
        return out

    def flat(self, result: dict[str, Tensor] | None = None, prefix: str = "") -> dict[str, float]:
        """Flat ``{key: float}`` for loggers; every key is present (NaN where nothing was seen, with a warning).

        Keys: ``p/<name>/fp``, ``p/<name>/t5d``, ``p/<name>/zipf``, ``p/<name>/fr``, ``mfp``, ``mt5d_unnorm``,
        ``mfr``, ``mt5d``.
        """
        r = self.compute() if result is None else result
        out: dict[str, float] = {}
        for i, p in enumerate(self.perturbations):
            for key in ("fp", "t5d", "zipf", "fr", "t5d_ratio"):
                if key in r:
                    out[f"{prefix}p/{p}/{key}"] = float(r[key].reshape(-1)[i])  # torchmetrics squeezes 1-element
        for key, name in {"mean_fp": "mfp", "mean_t5d": "mt5d_unnorm", "mfr": "mfr", "mt5d": "mt5d"}.items():
            if key in r:
                out[f"{prefix}{name}"] = float(r[key])
        return out
