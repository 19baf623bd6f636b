"""Robustness metrics (layer 2): torchmetrics classes with functional twins in :mod:`.functional`."""

from __future__ import annotations

from .baselines import ALEXNET, ALEXNET_CLEAN_ERROR, ALEXNET_IMAGENET_C_ERRORS, Baseline, resolve_baseline
from .calibration import ExpectedCalibrationError, RMSCalibrationError
from .corruption_error import CorruptionErrors
from .stability import P_BENCHMARK_ORDER, P_EXTRA, PerturbationStability

__all__ = [
    "ALEXNET",
    "ALEXNET_CLEAN_ERROR",
    "ALEXNET_IMAGENET_C_ERRORS",
    "Baseline",
    "CorruptionErrors",
    "ExpectedCalibrationError",
    "P_BENCHMARK_ORDER",
    "P_EXTRA",
    "PerturbationStability",
    "RMSCalibrationError",
    "resolve_baseline",
]
