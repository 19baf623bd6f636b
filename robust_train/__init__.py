"""robust_train: GPU-native corruption robustness (ImageNet-C/P on the fly) for PyTorch and Lightning."""

from __future__ import annotations

from .corruptions import CORRUPTIONS, Corruption, Params, corrupt, create_corruption, list_corruptions
from .functional._fused import fusion, get_fusion, set_fusion
from .models import cifar as _cifar_models  # noqa: F401  (registers the CIFAR nets with timm)
from .sequences import perturb_sequence

__version__ = "0.1.0"

__all__ = [
    "CORRUPTIONS",
    "Corruption",
    "Params",
    "__version__",
    "corrupt",
    "create_corruption",
    "fusion",
    "get_fusion",
    "list_corruptions",
    "perturb_sequence",
    "set_fusion",
]
