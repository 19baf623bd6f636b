"""Lightning callbacks (layer 3): corrupted and perturbed evaluation at epoch end."""

from __future__ import annotations

from .corruption_eval import CorruptionEvalCallback, SuiteEvalCallback
from .perturbation_eval import PerturbationEvalCallback

__all__ = ["CorruptionEvalCallback", "PerturbationEvalCallback", "SuiteEvalCallback"]
