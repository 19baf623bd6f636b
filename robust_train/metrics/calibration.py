"""Calibration metrics: binned ECE (sum states) and AugMix's adaptive-bin RMS calibration error (cat states)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from . import functional as MF

__all__ = ["ExpectedCalibrationError", "RMSCalibrationError"]


class ExpectedCalibrationError(Metric):
    """Equal-width-bin calibration error (:func:`~robust_train.metrics.functional.expected_calibration_error`).

    The state is three (n_bins,) sums, reduced with ``"sum"`` across processes.

    Args:
        n_bins: number of confidence bins.
        norm: ``"l1"`` (ECE), ``"l2"`` or ``"max"`` (MCE).
        **kwargs: :class:`torchmetrics.Metric` options.

    Example:
        >>> m = ExpectedCalibrationError(n_bins=10)
        >>> m.update(torch.tensor([[0.9, 0.1], [0.9, 0.1]]), torch.tensor([0, 1]))
        >>> round(m.compute().item(), 4)
        0.4
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, n_bins: int = 15, norm: str = "l1", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if norm not in ("l1", "l2", "max"):
            raise ValueError(f"norm must be 'l1', 'l2' or 'max', got {norm!r}")
        if int(n_bins) < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        self.n_bins, self.norm = int(n_bins), norm
        for name in ("conf_sum", "acc_sum", "count"):
            self.add_state(name, torch.zeros(self.n_bins, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: Tensor, target: Tensor) -> None:
        """Add (N, K) probabilities (or logits) and (N,) targets."""
        c, a, n = MF._ece_update(probs, target, self.n_bins)
        self.conf_sum += c.to(self.conf_sum.device)
        self.acc_sum += a.to(self.acc_sum.device)
        self.count += n.to(self.count.device)

    def compute(self) -> Tensor:
        """The calibration error (float64 scalar); NaN with an ``IncompleteMetricWarning`` when no sample was seen."""
        return MF._ece_compute(self.conf_sum, self.acc_sum, self.count, self.norm)


class RMSCalibrationError(Metric):
    """AugMix's adaptive-bin RMS calibration error (:func:`~robust_train.metrics.functional.rms_calibration_error`).

    Equal-mass bins need the global sort, so confidences and correctness are kept (``"cat"`` reduction).

    Args:
        bin_size: samples per bin (AugMix: 100).
        skip_last_bin: replicate the original's omission of the last bin.
        **kwargs: :class:`torchmetrics.Metric` options.

    Example:
        >>> m = RMSCalibrationError(bin_size=2, skip_last_bin=False)
        >>> m.update(torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]]), torch.tensor([0, 0, 1, 1]))
        >>> m.compute().shape
        torch.Size([])
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, bin_size: int = 100, skip_last_bin: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(bin_size) < 1:
            raise ValueError(f"bin_size must be >= 1, got {bin_size}")
        self.bin_size, self.skip_last_bin = int(bin_size), bool(skip_last_bin)
        self.add_state("confidence", [], dist_reduce_fx="cat")
        self.add_state("correct", [], dist_reduce_fx="cat")

    def update(self, probs: Tensor, target: Tensor) -> None:
        """Add (N, K) probabilities (or logits) and (N,) targets."""
        conf, correct = MF._confidences(probs, target)
        self.confidence.append(conf)
        self.correct.append(correct)

    def compute(self) -> Tensor:
        """The RMS calibration error (float64 scalar); NaN with an ``IncompleteMetricWarning`` for no samples."""
        if not self.confidence:
            empty = torch.zeros(0, dtype=torch.float64)
            return MF._rms_compute(empty, empty, self.bin_size, self.skip_last_bin)
        return MF._rms_compute(
            dim_zero_cat(self.confidence), dim_zero_cat(self.correct), self.bin_size, self.skip_last_bin
        )
