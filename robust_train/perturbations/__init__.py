"""Adversarial perturbations (layer 2): ``attack(model, x, y) -> delta`` and pure ``apply(x, delta)``."""

from __future__ import annotations

from .fgsm import FGSM
from .pgd import PERTURBATIONS, PGD, Attack, eval_mode_of
from .projections import clamp_to_image, lp_norm, project, project_l2, project_linf

__all__ = [
    "FGSM",
    "PERTURBATIONS",
    "PGD",
    "Attack",
    "clamp_to_image",
    "eval_mode_of",
    "lp_norm",
    "project",
    "project_l2",
    "project_linf",
]
