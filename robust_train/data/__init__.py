"""Lightning DataModules (layer 3). Samples are ``(x uint8 (C, H, W), y, index)``; see :mod:`robust_train.data.base`."""

from __future__ import annotations

from .base import DatasetNotFoundError, ImageClassificationDataModule, TensorImageDataset, seeded_split
from .cifar import CIFAR10DataModule, CIFAR100DataModule, CIFARDataModule
from .fashion_mnist import FashionMNISTDataModule, find_fashion_mnist, read_idx
from .imagefolder import ImageFolderDataModule
from .synthetic import SyntheticDataModule

__all__ = [
    "CIFAR100DataModule",
    "CIFAR10DataModule",
    "CIFARDataModule",
    "DatasetNotFoundError",
    "FashionMNISTDataModule",
    "ImageClassificationDataModule",
    "ImageFolderDataModule",
    "SyntheticDataModule",
    "TensorImageDataset",
    "find_fashion_mnist",
    "read_idx",
    "seeded_split",
]
