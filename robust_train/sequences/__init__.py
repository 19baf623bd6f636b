"""ImageNet-P perturbation sequences (layer 2), registered in :data:`SEQUENCES`."""

from __future__ import annotations

from . import types  # noqa: F401  (registers)
from .api import create_sequence, list_sequences, perturb_sequence
from .base import SEQUENCES, PerturbationSequence

__all__ = ["SEQUENCES", "PerturbationSequence", "create_sequence", "list_sequences", "perturb_sequence"]
