"""Training losses (layer 2) that follow the splits contract: ``loss(logits, target, num_splits)``."""

from __future__ import annotations

from . import functional
from .jsd import JsdCrossEntropy, SplitCrossEntropy
from .logit_pairing import CleanLogitPairingLoss, LogitPairingLoss

__all__ = [
    "CleanLogitPairingLoss",
    "JsdCrossEntropy",
    "LogitPairingLoss",
    "SplitCrossEntropy",
    "functional",
]
