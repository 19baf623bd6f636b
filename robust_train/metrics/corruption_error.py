"""``CorruptionErrors``: per-corruption, per-severity top-1 errors with CE / mCE / relative mCE (ImageNet-C).

State is integer counts summed across processes (``dist_reduce_fx="sum"``), so the result is exactly the same for
any batch size and any number of DDP processes.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from ..corruptions.suites import BENCHMARK_ORDER
from ..errors import ArgumentTypeError, IncompleteMetricWarning
from ..functional.checks import check_int
from . import functional as MF
from .baselines import Baseline, resolve_baseline

__all__ = ["CorruptionErrors"]


class CorruptionErrors(Metric):
    """Top-1 errors on corrupted copies of a dataset, reduced to CE, mCE, relative mCE and the unnormalised mean.

    Args:
        corruptions: corruption names, in report order.
        severities: evaluated severities (ints 1-5).
        baseline: ``"alexnet"`` (published ImageNet-C table), a path to a baseline JSON file, a
            :class:`~robust_train.metrics.baselines.Baseline`, or ``None`` (no CE / mCE, only errors and the
            unnormalised mean).
        mce_corruptions: corruptions averaged into mCE and the unnormalised mean; default: those of ``corruptions``
            that are among the 15 benchmark corruptions, or all of them when none is.
        **kwargs: :class:`torchmetrics.Metric` options.

    ``compute()`` returns a dict of float64 tensors:

    * ``error`` (C, S): top-1 error per corruption and severity (NaN where nothing was seen);
    * ``mean_error``: mean of ``error`` over the ``mce_corruptions`` rows (CIFAR-10-C convention, **not** an mCE);
    * ``ce`` (C,), ``mce``: baseline-normalised corruption errors (mCE over ``mce_corruptions``), when a baseline
      is set; with a severity subset, CE sums over the evaluated severities only;
    * ``clean_error`` and, with a baseline that has a clean error, ``relative_ce`` (C,) and ``relative_mce``
      (when clean samples were seen, ``update(..., corruption=None)``).

    Example:
        >>> m = CorruptionErrors(["fog"], severities=[1, 2], baseline=None)
        >>> m.update(torch.tensor([0, 1]), torch.tensor([0, 0]), "fog", 1)
        >>> m.update(torch.tensor([1, 1]), torch.tensor([0, 0]), "fog", 2)
        >>> m.compute()["error"].tolist()
        [[0.5, 1.0]]
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        corruptions: Sequence[str],
        severities: Sequence[int] = (1, 2, 3, 4, 5),
        baseline: str | os.PathLike[str] | Baseline | None = "alexnet",
        mce_corruptions: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(corruptions, str):
            raise ArgumentTypeError(
                f"corruptions: expected a list of names, got the string {corruptions!r} (use [{corruptions!r}])"
            )
        self.corruptions = [str(c) for c in corruptions]
        if isinstance(severities, (int, str)):
            raise ArgumentTypeError(f"severities: expected a list of ints in 1..5, got {severities!r}")
        self.severities = [check_int(s, "severities", 1, 5) for s in severities]
        if not self.corruptions:
            raise ValueError("CorruptionErrors needs at least one corruption name")
        if len(set(self.corruptions)) != len(self.corruptions):
            raise ValueError(f"duplicate corruption names in {self.corruptions}")
        if (
            not self.severities
            or any(s < 1 or s > 5 for s in self.severities)
            or len(set(self.severities)) != len(self.severities)
        ):
            raise ValueError(f"severities must be distinct ints in 1..5, got {list(severities)}")
        if mce_corruptions is None:
            mce_corruptions = [c for c in self.corruptions if c in BENCHMARK_ORDER] or self.corruptions
        unknown = [c for c in mce_corruptions if c not in self.corruptions]
        if unknown:
            raise ValueError(f"mce_corruptions {unknown} are not among the evaluated corruptions {self.corruptions}")
        self.mce_corruptions = list(mce_corruptions)
        self.baseline = resolve_baseline(baseline)
        self._base_table: Tensor | None = None
        if self.baseline is not None:
            self._base_table = self.baseline.error_table(self.corruptions, self.severities)
        c, s = len(self.corruptions), len(self.severities)
        self.add_state("wrong", torch.zeros(c, s, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(c, s, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("clean_wrong", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("clean_total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def _cell(self, corruption: str, severity: int) -> tuple[int, int]:
        try:
            ci = self.corruptions.index(corruption)
        except ValueError:
            raise ValueError(f"unknown corruption {corruption!r}; this metric tracks {self.corruptions}") from None
        severity = check_int(severity, "severity", 1, 5)  # 1.7 is not severity 1
        try:
            si = self.severities.index(severity)
        except ValueError:
            raise ValueError(f"severity {severity} is not tracked; this metric tracks {self.severities}") from None
        return ci, si

    def update(self, preds: Tensor, target: Tensor, corruption: str | None = None, severity: int | None = None) -> None:
        """Add a batch.

        Args:
            preds: (N,) class indices or (N, K) logits.
            target: (N,) class indices.
            corruption: corruption name, or ``None`` for clean images.
            severity: severity of the batch (required with a corruption).
        """
        wrong, total = MF._error_update(preds, target)
        if corruption is None:
            self.clean_wrong += wrong.to(self.clean_wrong.device)
            self.clean_total += total.to(self.clean_total.device)
            return
        if severity is None:
            raise ValueError(f"severity is required for corruption {corruption!r}")
        ci, si = self._cell(corruption, severity)
        self.wrong[ci, si] += wrong.to(self.wrong.device)
        self.total[ci, si] += total.to(self.total.device)

    def compute(self) -> dict[str, Tensor]:
        """See the class docstring."""
        error = self.wrong.double() / self.total.double()
        rows = [self.corruptions.index(c) for c in self.mce_corruptions]
        empty = (self.total == 0).nonzero().tolist()
        if empty:
            cells = [f"{self.corruptions[c]}/s{self.severities[s]}" for c, s in empty]
            shown = ", ".join(cells[:10]) + (f" and {len(cells) - 10} more" if len(cells) > 10 else "")
            warnings.warn(
                f"CorruptionErrors: no sample was seen for {len(cells)} of {self.total.numel()} "
                f"(corruption, severity) cells ({shown}): their errors and every mean over them (CE, mCE, "
                "mean_error) are NaN",
                IncompleteMetricWarning,
                stacklevel=2,
            )
        out: dict[str, Tensor] = {"error": error, "mean_error": MF.unnormalized_mean_error(error[rows])}
        clean = self.clean_wrong.double() / self.clean_total.double()
        if self.clean_total > 0:
            out["clean_error"] = clean
        if self._base_table is not None:
            base = self._base_table.to(error.device)
            out["ce"] = MF.corruption_error(error, base)
            out["mce"] = out["ce"][rows].mean()
            if self.clean_total > 0 and self.baseline is not None and self.baseline.clean_error is not None:
                out["relative_ce"] = MF.relative_corruption_error(error, clean, base, self.baseline.clean_error)
                out["relative_mce"] = out["relative_ce"][rows].mean()
        return out

    def flat(self, result: dict[str, Tensor] | None = None, prefix: str = "") -> dict[str, float]:
        """Flat ``{key: float}`` for loggers; every key is present, NaN where nothing was seen.

        A never-updated cell makes :meth:`compute` warn; its key (and ``mce``) stays in the log as NaN rather than
        silently disappearing.

        Keys: ``c/<name>/s<k>/err``, ``c/<name>/err``, ``c/<name>/ce``, ``mce``, ``mce_unnorm`` (the unnormalised
        mean error), ``rel_mce``, ``clean_err``.

        Example:
            >>> m = CorruptionErrors(["fog"], severities=[1], baseline=None)
            >>> m.update(torch.tensor([0, 1]), torch.tensor([0, 0]), "fog", 1)
            >>> m.flat(prefix="val/")
            {'val/c/fog/s1/err': 0.5, 'val/c/fog/err': 0.5, 'val/mce_unnorm': 0.5}
        """
        r = self.compute() if result is None else result
        error = r["error"].reshape(len(self.corruptions), len(self.severities))  # torchmetrics squeezes 1-element
        out: dict[str, float] = {}
        for ci, c in enumerate(self.corruptions):
            for si, s in enumerate(self.severities):
                out[f"{prefix}c/{c}/s{s}/err"] = float(error[ci, si])
            out[f"{prefix}c/{c}/err"] = float(error[ci].mean())
            if "ce" in r:
                out[f"{prefix}c/{c}/ce"] = float(r["ce"].reshape(-1)[ci])
        names = {"mce": "mce", "mean_error": "mce_unnorm", "relative_mce": "rel_mce", "clean_error": "clean_err"}
        for key, name in names.items():
            if key in r:
                out[f"{prefix}{name}"] = float(r[key])
        return out
