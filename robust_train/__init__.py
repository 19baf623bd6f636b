"""robust_train: GPU-native corruption robustness (ImageNet-C/P on the fly) for PyTorch and Lightning."""

from __future__ import annotations

from ._timm_hook import install as _install_timm_hook
from .corruptions import CORRUPTIONS, Corruption, Params, corrupt, create_corruption, list_corruptions
from .functional._fused import fusion, get_fusion, set_fusion
from .sequences import perturb_sequence

__version__ = "0.1.0"

# the CIFAR nets are registered with timm as soon as timm is imported (robust_train itself does not import timm)
_install_timm_hook()

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
