"""Training-time augmentations (layer 2): AugMix, PRIME, PixMix, Noise2Net, stylization, corruption, adversarial.

Every module follows the splits contract of :mod:`robust_train.augment.base`.
"""

from __future__ import annotations

from .alp import AdversarialAugment
from .augmix import AugMix
from .base import BatchAugment
from .compose import Compose
from .corruption_train import CorruptionAugment, GaussianNoiseAugment, resolve_corruption_names
from .noise2net import Noise2Net
from .ops import AUGMENT_OPS, AugmentOp, list_augment_ops
from .pixmix import FractalMixingSet, ImageFolderMixingSet, MixingSet, PixMix
from .prime import Prime
from .stylize import Stylize

__all__ = [
    "AUGMENT_OPS",
    "AdversarialAugment",
    "AugMix",
    "AugmentOp",
    "BatchAugment",
    "Compose",
    "CorruptionAugment",
    "FractalMixingSet",
    "GaussianNoiseAugment",
    "Noise2Net",
    "Prime",
    "ImageFolderMixingSet",
    "MixingSet",
    "PixMix",
    "Stylize",
    "list_augment_ops",
    "resolve_corruption_names",
]
