"""Shared pieces of the DataModules: indexed datasets, in-memory uint8 tensors, the seeded split, loaders.

Every dataset here yields ``(x, y, index)``:

* ``x`` is a ``uint8`` tensor of shape ``(C, H, W)`` (decoded and cropped in the DataLoader worker; conversion to
  float in [0, 1], GPU augmentation and normalisation happen on the device, in the LightningModule),
* ``y`` is the ``int64`` class label,
* ``index`` is the sample's position **in the underlying file set** (the full training set for train/val, the test
  set for test). A validation sample keeps its training-set index after the seeded split, so an index names the same
  image whatever the split, batch size, shuffling or world size; evaluation callbacks derive replayable corruption
  parameters from it (``Corruption.params_for_indices``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset, random_split

from ..errors import RobustTrainError

__all__ = [
    "DatasetNotFoundError",
    "ImageClassificationDataModule",
    "TensorImageDataset",
    "random_crop_flip",
    "seeded_split",
]


class DatasetNotFoundError(RobustTrainError, FileNotFoundError):
    """A dataset's files are missing or not laid out as expected; the message says how to get them."""


def random_crop_flip(x: Tensor, padding: int, flip: bool, generator: torch.Generator | None = None) -> Tensor:
    """Zero-pad by ``padding`` and take a random crop of the original size; optionally flip left-right at p=0.5.

    Args:
        x: one image, shape (C, H, W), any dtype.
        padding: pixels of zero padding on every side before cropping (0 disables the crop).
        flip: whether to flip horizontally with probability 0.5.
        generator: optional random generator (default: torch's global one, seeded per worker by Lightning).

    Returns:
        The cropped (and possibly flipped) image, shape (C, H, W), same dtype.

    Example:
        >>> random_crop_flip(torch.zeros(3, 8, 8, dtype=torch.uint8), padding=2, flip=True).shape
        torch.Size([3, 8, 8])
    """
    if padding > 0:
        c, h, w = x.shape
        i, j = torch.randint(0, 2 * padding + 1, (2,), generator=generator).tolist()
        padded = x.new_zeros((c, h + 2 * padding, w + 2 * padding))
        padded[:, padding : padding + h, padding : padding + w] = x
        x = padded[:, i : i + h, j : j + w]
    if flip and bool(torch.rand((), generator=generator) < 0.5):
        x = x.flip(-1)
    return x.contiguous()


class TensorImageDataset(Dataset):
    """Images held in memory as one uint8 tensor; yields ``(x, y, index)``.

    Args:
        images: shape (N, C, H, W), uint8.
        labels: shape (N,), integer class labels.
        transform: optional per-sample callable ``(C, H, W) uint8 -> (C', H', W') uint8`` (crop/flip only).
        channels: if given and the images have one channel, replicate it to this many channels (a view, no copy).

    Example:
        >>> ds = TensorImageDataset(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.arange(4), channels=3)
        >>> x, y, i = ds[2]
        >>> tuple(x.shape), int(y), i
        ((3, 8, 8), 2, 2)
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        transform: Callable[[Tensor], Tensor] | None = None,
        channels: int | None = None,
    ) -> None:
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise ValueError(
                f"images must be a uint8 tensor of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.long()
        self.transform = transform
        self.channels = channels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        x = self.images[index]
        if self.channels is not None and x.shape[0] == 1 and self.channels != 1:
            x = x.expand(self.channels, -1, -1)
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[index], index


class _WithTransform(Dataset):
    """A view of an indexed dataset with a different per-sample transform (train vs eval on the same file set)."""

    def __init__(self, base: TensorImageDataset, transform: Callable[[Tensor], Tensor] | None) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        x, y, i = self.base[index]
        return (self.transform(x) if self.transform is not None else x), y, i


def seeded_split(n: int, val_size: int | float, seed: int) -> tuple[list[int], list[int]]:
    """Split ``range(n)`` into train and validation indices with a fixed ``torch.Generator``.

    Args:
        n: number of samples.
        val_size: validation samples, as a count (int) or a fraction of ``n`` (float in [0, 1)).
        seed: generator seed; the same ``(n, val_size, seed)`` always gives the same split.

    Returns:
        ``(train_indices, val_indices)``, both sorted.

    Raises:
        ValueError: ``val_size`` is negative or leaves no training samples.

    Example:
        >>> tr, va = seeded_split(10, 0.2, seed=0)
        >>> len(tr), len(va)
        (8, 2)
    """
    n_val = round(val_size * n) if isinstance(val_size, float) else int(val_size)
    if n_val < 0 or n_val >= n:
        raise ValueError(f"val_size must give between 0 and {n - 1} validation samples out of {n}, got {val_size!r}")
    tr, va = random_split(range(n), [n - n_val, n_val], generator=torch.Generator().manual_seed(seed))
    return sorted(tr.indices), sorted(va.indices)


class ImageClassificationDataModule(LightningDataModule):
    """Base DataModule: seeded train/val split, per-device batch size, ``(x, y, index)`` samples, eval datasets.

    Subclasses implement :meth:`load` returning ``(train_set, train_eval_set, test_set)``: the training file set
    with training transforms, the same file set with evaluation transforms (used for validation samples), and the
    test set. All three yield ``(x, y, index)``.

    Args:
        data_dir: root folder of the data files.
        batch_size: global batch size; divided by the number of devices (must divide evenly).
        eval_batch_size: global batch size for validation/test (default: ``batch_size``).
        num_workers: DataLoader worker processes.
        pin_memory: pin host memory for faster host-to-device copies.
        persistent_workers: keep workers alive between epochs (only when ``num_workers > 0``).
        val_size: validation samples held out of the training set, a count or a fraction.
        split_seed: seed of the train/val split.
        num_classes: expected number of classes (checked against the data where the dataset fixes it).
        image_size: side length of the images handed to the model.
        mean: per-channel mean of [0, 1] images, used by the LightningModule's on-device normalisation.
        std: per-channel standard deviation of [0, 1] images.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        val_size: int | float = 0.1,
        split_seed: int = 0,
        num_classes: int = 10,
        image_size: int = 32,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
    ) -> None:
        super().__init__()
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have one value per channel, got {list(mean)} and {list(std)}")
        if any(float(s) <= 0 for s in std):
            raise ValueError(f"std must be positive, got {list(std)}")
        self.data_dir = None if data_dir is None else os.fspath(os.path.expanduser(str(data_dir)))
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.batch_size_per_device = self.batch_size
        self.eval_batch_size_per_device = self.eval_batch_size
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self.val_size = val_size
        self.split_seed = int(split_seed)
        self.num_classes = int(num_classes)
        self.image_size = int(image_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.data_train: Dataset | None = None
        self.data_val: Dataset | None = None
        self.data_test: Dataset | None = None

    # ----------------------------------------------------------------------------------------------- to override
    def load(self) -> tuple[Dataset, Dataset, Dataset]:
        """Return ``(train_set, train_eval_set, test_set)``; see the class docstring."""
        raise NotImplementedError

    @property
    def in_chans(self) -> int:
        """Number of image channels handed to the model."""
        return len(self.mean)

    # ------------------------------------------------------------------------------------------------ lifecycle
    def _divide_batch_size(self) -> None:
        world = self.trainer.world_size if self.trainer is not None else 1
        for name in ("batch_size", "eval_batch_size"):
            total = getattr(self, name)
            if total % world != 0:
                raise RuntimeError(f"{name} ({total}) is not divisible by the number of devices ({world})")
            setattr(self, f"{name}_per_device", total // world)

    def setup(self, stage: str | None = None) -> None:
        """Load the files once and split train/val with the fixed generator (``split_seed``)."""
        self._divide_batch_size()
        if self.data_train is not None:
            return
        train_set, train_eval_set, test_set = self.load()
        tr, va = seeded_split(len(train_set), self.val_size, self.split_seed)  # type: ignore[arg-type]
        self.data_train = Subset(train_set, tr)
        self.data_val = Subset(train_eval_set, va)
        self.data_test = test_set

    def eval_dataset(self, stage: str = "test") -> Dataset:
        """The dataset evaluated at ``stage`` (``"val"``/``"validate"`` or ``"test"``), for evaluation callbacks.

        Samples are ``(x uint8 (C, H, W), y, index)`` with evaluation transforms only.

        Raises:
            ValueError: unknown stage.
        """
        if self.data_train is None:
            self.setup(stage)
        if stage in ("val", "validate", "validation", "fit"):
            return self.data_val  # type: ignore[return-value]
        if stage in ("test", "predict"):
            return self.data_test  # type: ignore[return-value]
        raise ValueError(f"stage must be 'val' or 'test', got {stage!r}")

    def eval_context(self, stage: str = "test") -> tuple[Dataset, int] | None:
        """The larger *context* images of :meth:`eval_dataset` and the crop that gives the evaluated images.

        ImageNet-P was generated from the ``Resize(256)`` image (geometric perturbations move content in from
        outside the final ``CenterCrop(224)``). Data modules that can hand out such an uncropped image return
        ``(dataset, crop)``: same samples and indices as ``eval_dataset(stage)``, ``x`` the uncropped image (sizes
        may differ between samples), and ``crop`` the centre-crop size of the evaluated images. ``None`` (this
        default): no context is available; perturbation suites then use :meth:`eval_dataset` as it is.
        """
        return None

    def _loader(self, ds: Dataset | None, train: bool) -> DataLoader:
        if ds is None:
            raise RuntimeError("call setup() before requesting a dataloader")
        return DataLoader(
            ds,
            batch_size=self.batch_size_per_device if train else self.eval_batch_size_per_device,
            shuffle=train,
            drop_last=train,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches ``(x uint8 (B, C, H, W), y (B,), index (B,))``; the last partial batch drops."""
        return self._loader(self.data_train, train=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in file order."""
        return self._loader(self.data_val, train=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches in file order."""
        return self._loader(self.data_test, train=False)

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save: the split is a function of ``split_seed``."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore (see :meth:`state_dict`)."""

    def extra_info(self) -> dict[str, Any]:
        """Sizes and settings for the end-of-run summary."""
        return {
            "train": len(self.data_train) if self.data_train is not None else None,  # type: ignore[arg-type]
            "val": len(self.data_val) if self.data_val is not None else None,  # type: ignore[arg-type]
            "test": len(self.data_test) if self.data_test is not None else None,  # type: ignore[arg-type]
            "batch_size": self.batch_size,
        }
