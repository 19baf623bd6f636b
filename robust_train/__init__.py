"""robust_train: GPU-native corruption robustness (ImageNet-C/P on the fly) for PyTorch and Lightning."""

from __future__ import annotations

from .corruptions import CORRUPTIONS, Corruption, Params, corrupt, create_corruption, list_corruptions
from .sequences import perturb_sequence

__version__ = "0.1.0"

__all__ = [
    "CORRUPTIONS",
    "Corruption",
    "Params",
    "__version__",
    "corrupt",
    "create_corruption",
    "list_corruptions",
    "perturb_sequence",
]
