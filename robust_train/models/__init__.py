"""Models (layer 3): CIFAR-resolution nets registered with timm, and the ``RobustClassifier`` LightningModule.

Importing this package (which ``import robust_train`` arranges as soon as timm is imported) registers the nets of
:mod:`robust_train.models.cifar` with timm, with CIFAR data configs, so that
``timm.create_model("wrn40_2_cifar", num_classes=10)`` works (the Hydra ``model/`` configs target
``timm.create_model``). ImageNet nets (``resnet50``, ``densenet121``, ``resnext50_32x4d``...) come straight from
timm. ``RobustClassifier`` (Lightning) is imported on first access, so registering the nets does not import
Lightning.
"""

from __future__ import annotations

import difflib
from typing import Any

import timm
from torch import nn

from ..errors import RobustTrainError
from .cifar import CIFAR_MODELS, AllConvNet, CifarDenseNet, CifarResNet, CifarResNeXt, WideResNet

__all__ = [
    "CIFAR_MODELS",
    "AllConvNet",
    "CifarDenseNet",
    "CifarResNeXt",
    "CifarResNet",
    "RobustClassifier",
    "UnknownModelError",
    "WideResNet",
    "check_model_name",
    "create_model",
]


def __getattr__(name: str) -> Any:
    if name == "RobustClassifier":  # lazily: importing Lightning is not needed to register the nets
        from .lit_classifier import RobustClassifier

        return RobustClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class UnknownModelError(RobustTrainError, ValueError):
    """A model name that neither robust_train nor timm knows."""


def check_model_name(name: str) -> str:
    """Return ``name`` if timm can build it, else raise one clear error with the closest names.

    Args:
        name: a timm model name (ours end in ``_cifar``).

    Raises:
        UnknownModelError: the name is unknown; the message lists close matches and our CIFAR nets.

    Example:
        >>> check_model_name("resnet8_cifar")
        'resnet8_cifar'
    """
    if not isinstance(name, str) or not name:
        raise UnknownModelError(f"model name must be a non-empty string, got {name!r}")
    if timm.is_model(name):
        return name
    close = difflib.get_close_matches(name, timm.list_models(), n=6, cutoff=0.6)
    raise UnknownModelError(
        f"unknown model {name!r}. Close matches: {close or 'none'}. CIFAR nets (32x32): {list(CIFAR_MODELS)}; "
        "ImageNet nets: any timm name, e.g. ['resnet50', 'densenet121', 'resnext50_32x4d'] "
        "(see timm.list_models())."
    )


def create_model(model_name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with a readable error for unknown names and no pretrained downloads by default.

    Args:
        model_name: timm model name.
        **kwargs: passed to ``timm.create_model`` (``num_classes``, ``in_chans``, ``drop_rate``...).

    Returns:
        The network.

    Example:
        >>> create_model("resnet8_cifar", num_classes=3).num_classes
        3
    """
    kwargs.setdefault("pretrained", False)
    return timm.create_model(check_model_name(model_name), **kwargs)
