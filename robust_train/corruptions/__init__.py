"""Corruption modules (layer 2): one class per ImageNet-C corruption, registered in :data:`CORRUPTIONS`."""

from __future__ import annotations

from . import blur, digital, noise, weather  # noqa: F401  (registers)
from .api import corrupt, create_corruption
from .base import NATIVE_SIZE, PRESETS, Corruption, SeverityTable, resolve_preset
from .params import Params
from .suites import BENCHMARK_ORDER, CORRUPTIONS, EXTRA, SUITES, list_corruptions

__all__ = [
    "BENCHMARK_ORDER",
    "CORRUPTIONS",
    "Corruption",
    "EXTRA",
    "NATIVE_SIZE",
    "PRESETS",
    "Params",
    "SUITES",
    "SeverityTable",
    "corrupt",
    "create_corruption",
    "list_corruptions",
    "resolve_preset",
]
