"""Fashion-MNIST, the embedded default dataset, fed as 3-channel 32x32 images.

Where the files come from, in order:

1. ``system_dir`` (default ``/usr/share/datasets/fashion-mnist``, Debian package ``dataset-fashion-mnist``);
2. the user-given ``data_dir`` (also its ``FashionMNIST/raw`` and ``fashion-mnist`` sub-folders, as torchvision and
   the upstream repository lay them out);
3. torchvision's downloader into ``data_dir``, when ``download=True`` and the network allows it;
4. otherwise a :class:`DatasetNotFoundError` that says how to get the data.

The four IDX files may be gzipped (``*-ubyte.gz``) or not. Their checksums are not checked (Debian re-gzips them, so
torchvision's MD5s do not match); the IDX headers and sizes are.

Images: the 28x28 grey images are zero-padded by 2 pixels on every side to 32x32 and the grey channel is replicated to
3 channels, so that CIFAR-resolution corruptions and models apply unchanged. ``mean``/``std`` below are those of the
padded training images.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from .base import (
    DatasetNotFoundError,
    ImageClassificationDataModule,
    TensorImageDataset,
    _WithTransform,
    random_crop_flip,
)

__all__ = ["FASHION_MNIST_FILES", "SYSTEM_DIR", "FashionMNISTDataModule", "find_fashion_mnist", "read_idx"]

SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
HOW_TO_GET = (
    "Install the Debian package (sudo apt-get install dataset-fashion-mnist, files land in "
    f"{SYSTEM_DIR}), or put the four IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) in data.data_dir, or allow data.download=true "
    "on a machine with network access."
)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes into a NumPy array.

    Args:
        path: file path; ``.gz`` files are decompressed.

    Returns:
        uint8 array whose shape is given by the header (``(N,)`` labels, ``(N, 28, 28)`` images).

    Raises:
        ValueError: the header is not an unsigned-byte IDX header or the size does not match it.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:  # type: ignore[operator]
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (expected magic 0x0000 08 nn, got {data[:4].hex()})")
    ndim = data[3]
    if ndim < 1 or len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape))
    if len(data) - offset != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes) but the file holds {len(data) - offset}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _files_in(folder: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in FASHION_MNIST_FILES.items():
        for cand in (folder / stem, folder / f"{stem}.gz"):
            if cand.is_file():
                found[key] = cand
                break
        else:
            return None
    return found


def find_fashion_mnist(
    data_dir: str | os.PathLike | None = None, system_dir: str | os.PathLike | None = SYSTEM_DIR, download: bool = False
) -> dict[str, Path]:
    """Locate the four Fashion-MNIST IDX files (see the module docstring for the search order).

    Args:
        data_dir: user-given root; also searched under ``FashionMNIST/raw`` and ``fashion-mnist``.
        system_dir: system-wide copy (Debian package); ``None`` skips it.
        download: try torchvision's downloader into ``data_dir`` when nothing is found.

    Returns:
        Mapping ``train_images``/``train_labels``/``test_images``/``test_labels`` -> path.

    Raises:
        DatasetNotFoundError: nothing found (and download disabled or failed); the message says how to get the data.
    """
    folders: list[Path] = []
    if system_dir:
        folders.append(Path(system_dir))
    if data_dir:
        root = Path(data_dir).expanduser()
        folders += [root, root / "FashionMNIST" / "raw", root / "fashion-mnist"]
    for folder in folders:
        found = _files_in(folder)
        if found is not None:
            return found
    error = None
    if download and data_dir:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(Path(data_dir).expanduser()), train=True, download=True)
            FashionMNIST(str(Path(data_dir).expanduser()), train=False, download=True)
            found = _files_in(Path(data_dir).expanduser() / "FashionMNIST" / "raw")
            if found is not None:
                return found
        except Exception as err:  # network errors come in many types
            error = err
    searched = ", ".join(str(f) for f in folders) or "(no folder given)"
    tail = f" Download failed: {error}." if error is not None else ""
    raise DatasetNotFoundError(f"Fashion-MNIST not found (searched {searched}).{tail} {HOW_TO_GET}")


@functools.lru_cache(maxsize=4)
def _load_padded(images_path: str, labels_path: str, pad: int) -> tuple[Tensor, Tensor]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"Fashion-MNIST files do not match: images {images.shape} ({images_path}), labels {labels.shape} "
            f"({labels_path}); expected (N, 28, 28) images and (N,) labels"
        )
    x = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, 28, 28)
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    return x.contiguous(), torch.from_numpy(labels.astype(np.int64))


class FashionMNISTDataModule(ImageClassificationDataModule):
    """Fashion-MNIST (10 classes; 60,000 train / 10,000 test), as uint8 (3, 32, 32) images.

    Args:
        data_dir: user-given root, searched after ``system_dir``.
        system_dir: system-wide copy (Debian's ``dataset-fashion-mnist``); ``None`` to skip.
        download: allow torchvision's downloader into ``data_dir`` as a last resort.
        train_crop_padding: random-crop padding for training images (0 = no crop), applied in the workers.
        train_flip: random horizontal flips for training images.
        **kwargs: :class:`~robust_train.data.base.ImageClassificationDataModule` arguments (batch size, split...).

    Example:
        >>> dm = FashionMNISTDataModule(batch_size=64)
        >>> dm.num_classes, dm.image_size, dm.in_chans
        (10, 32, 3)
    """

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        system_dir: str | os.PathLike | None = SYSTEM_DIR,
        download: bool = False,
        train_crop_padding: int = 0,
        train_flip: bool = False,
        num_classes: int = 10,
        image_size: int = 32,
        mean: Sequence[float] = (0.2190, 0.2190, 0.2190),
        std: Sequence[float] = (0.3318, 0.3318, 0.3318),
        **kwargs,
    ) -> None:
        if num_classes != 10:
            raise ValueError(f"Fashion-MNIST has 10 classes, got num_classes={num_classes}")
        if image_size not in (28, 32):
            raise ValueError(f"Fashion-MNIST image_size must be 32 (zero-padded) or 28 (raw), got {image_size}")
        super().__init__(
            data_dir=data_dir, num_classes=num_classes, image_size=image_size, mean=mean, std=std, **kwargs
        )
        self.system_dir = system_dir
        self.download = download
        self.train_crop_padding = int(train_crop_padding)
        self.train_flip = bool(train_flip)
        self.classes = CLASSES

    def prepare_data(self) -> None:
        """Locate (or download) the files once, on the main process."""
        find_fashion_mnist(self.data_dir, self.system_dir, self.download)

    def load(self) -> tuple[Dataset, Dataset, Dataset]:
        """Read the IDX files into memory (uint8, zero-padded to ``image_size``)."""
        files = find_fashion_mnist(self.data_dir, self.system_dir, download=False)
        pad = (self.image_size - 28) // 2
        xtr, ytr = _load_padded(str(files["train_images"]), str(files["train_labels"]), pad)
        xte, yte = _load_padded(str(files["test_images"]), str(files["test_labels"]), pad)
        for name, y in (("train", ytr), ("test", yte)):
            if int(y.max()) >= self.num_classes:
                raise ValueError(f"Fashion-MNIST {name} labels go up to {int(y.max())}, expected < {self.num_classes}")
        train_tf = None
        if self.train_crop_padding or self.train_flip:
            train_tf = functools.partial(random_crop_flip, padding=self.train_crop_padding, flip=self.train_flip)
        base = TensorImageDataset(xtr, ytr, channels=self.in_chans)
        return _WithTransform(base, train_tf), base, TensorImageDataset(xte, yte, channels=self.in_chans)
