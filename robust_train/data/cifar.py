"""CIFAR-10 / CIFAR-100 from the standard Python-pickle layout in a local root (no checksum checks).

Expected layout (what the official tarballs unpack to)::

    <data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    <data_dir>/cifar-100-python/{train, test, meta}

``data_dir`` may also point straight at the ``cifar-10-batches-py`` / ``cifar-100-python`` folder. With
``download=True`` torchvision's downloader fetches the tarball into ``data_dir`` when the network allows.
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .base import (
    DatasetNotFoundError,
    ImageClassificationDataModule,
    TensorImageDataset,
    _WithTransform,
    random_crop_flip,
)

__all__ = ["CIFAR10DataModule", "CIFAR100DataModule", "CIFARDataModule", "read_cifar"]

_LAYOUT = {
    10: {"folder": "cifar-10-batches-py", "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
         "label_key": "labels", "meta": "batches.meta", "names_key": "label_names"},
    100: {"folder": "cifar-100-python", "train": ["train"], "test": ["test"], "label_key": "fine_labels",
          "meta": "meta", "names_key": "fine_label_names"},
}  # fmt: skip


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="latin1")
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a pickled dict (CIFAR batch), got {type(d).__name__}")
    return d


def _find_root(data_dir: str | os.PathLike | None, num_classes: int) -> Path:
    lay = _LAYOUT[num_classes]
    if data_dir is None:
        raise DatasetNotFoundError(f"CIFAR-{num_classes}: data.data_dir is not set")
    root = Path(data_dir).expanduser()
    for cand in (root / lay["folder"], root):
        if all((cand / f).is_file() for f in lay["train"] + lay["test"]):
            return cand
    missing = [f for f in lay["train"] + lay["test"] if not (root / lay["folder"] / f).is_file()]
    raise DatasetNotFoundError(
        f"CIFAR-{num_classes} not found under {root}: expected {root / lay['folder']}/ holding "
        f"{lay['train'] + lay['test']} (missing {missing}). Unpack the official python tarball there, or set "
        "data.download=true on a machine with network access."
    )


@functools.lru_cache(maxsize=4)
def read_cifar(folder: str, num_classes: int, split: str) -> tuple[Tensor, Tensor]:
    """Read one CIFAR split from the pickle layout.

    Args:
        folder: the ``cifar-10-batches-py`` or ``cifar-100-python`` folder.
        num_classes: 10 or 100.
        split: ``"train"`` or ``"test"``.

    Returns:
        ``(images, labels)``: uint8 (N, 3, 32, 32) and int64 (N,).

    Raises:
        ValueError: a batch file lacks the ``data``/label entries or has the wrong size.
    """
    lay = _LAYOUT[num_classes]
    xs, ys = [], []
    for name in lay[split]:
        path = Path(folder) / name
        d = _unpickle(path)
        if "data" not in d or lay["label_key"] not in d:
            raise ValueError(f"{path}: expected keys 'data' and {lay['label_key']!r}, got {sorted(d)}")
        data = np.asarray(d["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{path}: 'data' must have shape (N, 3072), got {data.shape}")
        labels = np.asarray(d[lay["label_key"]], dtype=np.int64)
        if labels.shape != (data.shape[0],):
            raise ValueError(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    x = torch.from_numpy(np.concatenate(xs))
    y = torch.from_numpy(np.concatenate(ys))
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"CIFAR-{num_classes} {split} labels out of range [0, {num_classes}): {int(y.max())}")
    return x, y


class CIFARDataModule(ImageClassificationDataModule):
    """CIFAR-10 or CIFAR-100 as uint8 (3, 32, 32) images; random crop (padding 4) and flips for training.

    Args:
        data_dir: root holding ``cifar-10-batches-py`` / ``cifar-100-python`` (or that folder itself).
        num_classes: 10 or 100.
        download: allow torchvision's downloader into ``data_dir``.
        train_crop_padding: random-crop padding for training images (0 = none).
        train_flip: random horizontal flips for training images.
        **kwargs: :class:`~robust_train.data.base.ImageClassificationDataModule` arguments.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        num_classes: int = 10,
        download: bool = False,
        train_crop_padding: int = 4,
        train_flip: bool = True,
        image_size: int = 32,
        mean: Sequence[float] = (0.4914, 0.4822, 0.4465),
        std: Sequence[float] = (0.2470, 0.2435, 0.2616),
        **kwargs,
    ) -> None:
        if num_classes not in _LAYOUT:
            raise ValueError(f"CIFAR num_classes must be 10 or 100, got {num_classes}")
        if image_size != 32:
            raise ValueError(f"CIFAR images are 32x32, got image_size={image_size}")
        super().__init__(
            data_dir=data_dir, num_classes=num_classes, image_size=image_size, mean=mean, std=std, **kwargs
        )
        self.download = download
        self.train_crop_padding = int(train_crop_padding)
        self.train_flip = bool(train_flip)

    def prepare_data(self) -> None:
        """Check the files exist (downloading them first when allowed)."""
        if self.download and self.data_dir:
            try:
                _find_root(self.data_dir, self.num_classes)
            except DatasetNotFoundError:
                from torchvision.datasets import CIFAR10, CIFAR100

                cls = CIFAR10 if self.num_classes == 10 else CIFAR100
                cls(self.data_dir, train=True, download=True)
        _find_root(self.data_dir, self.num_classes)

    @property
    def classes(self) -> list[str]:
        """Class names from the ``meta`` file."""
        folder = _find_root(self.data_dir, self.num_classes)
        lay = _LAYOUT[self.num_classes]
        return list(_unpickle(folder / lay["meta"])[lay["names_key"]])

    def load(self) -> tuple[Dataset, Dataset, Dataset]:
        """Read the pickle batches into memory."""
        folder = str(_find_root(self.data_dir, self.num_classes))
        xtr, ytr = read_cifar(folder, self.num_classes, "train")
        xte, yte = read_cifar(folder, self.num_classes, "test")
        train_tf = None
        if self.train_crop_padding or self.train_flip:
            train_tf = functools.partial(random_crop_flip, padding=self.train_crop_padding, flip=self.train_flip)
        base = TensorImageDataset(xtr, ytr)
        return _WithTransform(base, train_tf), base, TensorImageDataset(xte, yte)


class CIFAR10DataModule(CIFARDataModule):
    """CIFAR-10 (see :class:`CIFARDataModule`)."""

    def __init__(self, data_dir: str | os.PathLike | None = None, num_classes: int = 10, **kwargs) -> None:
        if num_classes != 10:
            raise ValueError(f"CIFAR-10 has 10 classes, got num_classes={num_classes}")
        super().__init__(data_dir=data_dir, num_classes=10, **kwargs)


class CIFAR100DataModule(CIFARDataModule):
    """CIFAR-100 with fine labels (see :class:`CIFARDataModule`)."""

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        num_classes: int = 100,
        mean: Sequence[float] = (0.5071, 0.4865, 0.4409),
        std: Sequence[float] = (0.2673, 0.2564, 0.2762),
        **kwargs,
    ) -> None:
        if num_classes != 100:
            raise ValueError(f"CIFAR-100 has 100 classes, got num_classes={num_classes}")
        super().__init__(data_dir=data_dir, num_classes=100, mean=mean, std=std, **kwargs)
