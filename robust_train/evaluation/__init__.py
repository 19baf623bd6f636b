"""Robustness evaluation (layer 3): suites, the evaluation engine, released-data runs, reports and exports.

Nothing here imports Lightning; the Lightning callbacks in :mod:`robust_train.callbacks` and ``robust-eval`` build
on these functions.
"""

from __future__ import annotations

from .suite import P_SUITES, EvalSuite, load_suite, resolve_names

__all__ = ["EvalSuite", "P_SUITES", "load_suite", "resolve_names"]
