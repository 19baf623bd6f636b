"""Download-free random images for pipeline tests and CI (``data=synthetic``).

Each class has a fixed random low-frequency pattern; a sample is its class pattern plus per-sample noise, quantised
to uint8. The classes are therefore learnable (a few steps lift accuracy above chance), and everything is a function
of ``seed``: the same configuration always yields the same tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from .base import ImageClassificationDataModule, TensorImageDataset

__all__ = ["SyntheticDataModule", "make_synthetic"]


def make_synthetic(
    n: int,
    num_classes: int,
    image_size: int,
    channels: int,
    seed: int,
    noise: float = 0.15,
    noise_seed: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Generate ``n`` labelled images.

    Args:
        n: number of samples.
        num_classes: number of classes; labels cycle ``0, 1, ..., num_classes - 1``.
        image_size: side length.
        channels: image channels.
        seed: seed of the class patterns and the noise.
        noise: standard deviation of the per-sample noise (in [0, 1] units).
        noise_seed: seed of the noise (default ``seed + 1``); class patterns depend on ``seed`` only.

    Returns:
        ``(images, labels)``: uint8 (n, channels, image_size, image_size) and int64 (n,).

    Example:
        >>> x, y = make_synthetic(6, 3, 8, 3, seed=0)
        >>> tuple(x.shape), x.dtype, y.tolist()
        ((6, 3, 8, 8), torch.uint8, [0, 1, 2, 0, 1, 2])
    """
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, channels, 4, 4, generator=g)
    patterns = F.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)
    labels = torch.arange(n) % num_classes
    g_noise = torch.Generator().manual_seed(seed + 1 if noise_seed is None else noise_seed)
    x = patterns[labels] + noise * torch.randn(n, channels, image_size, image_size, generator=g_noise)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8), labels


class SyntheticDataModule(ImageClassificationDataModule):
    """Random learnable images, no files needed.

    Args:
        num_train: training-file samples (split into train/val by ``val_size``).
        num_test: test samples.
        num_classes: number of classes.
        image_size: side length.
        seed: data seed (the test set uses ``seed + 100``).
        **kwargs: :class:`~robust_train.data.base.ImageClassificationDataModule` arguments.

    Example:
        >>> dm = SyntheticDataModule(num_train=40, num_test=10, batch_size=8, val_size=8)
        >>> dm.setup("fit")
        >>> x, y, idx = next(iter(dm.train_dataloader()))
        >>> tuple(x.shape), x.dtype, tuple(idx.shape)
        ((8, 3, 32, 32), torch.uint8, (8,))
    """

    def __init__(
        self,
        num_train: int = 512,
        num_test: int = 256,
        num_classes: int = 10,
        image_size: int = 32,
        seed: int = 0,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.25, 0.25, 0.25),
        **kwargs,
    ) -> None:
        if num_train < 2 or num_test < 1:
            raise ValueError(f"need num_train >= 2 and num_test >= 1, got {num_train} and {num_test}")
        super().__init__(num_classes=num_classes, image_size=image_size, mean=mean, std=std, **kwargs)
        self.num_train = int(num_train)
        self.num_test = int(num_test)
        self.seed = int(seed)

    def load(self) -> tuple[Dataset, Dataset, Dataset]:
        """Generate the tensors."""
        c, s, k = self.in_chans, self.image_size, self.num_classes
        xtr, ytr = make_synthetic(self.num_train, k, s, c, self.seed)
        # same class patterns, fresh noise for the test set
        xte, yte = make_synthetic(self.num_test, k, s, c, self.seed, noise_seed=self.seed + 100)
        base = TensorImageDataset(xtr, ytr)
        return base, base, TensorImageDataset(xte, yte)
