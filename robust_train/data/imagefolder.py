"""Image-folder datasets: ImageNet and Tiny-ImageNet layouts, decoded and cropped in the DataLoader workers.

Layouts (``layout="auto"`` tells them apart by the presence of ``val/val_annotations.txt``)::

    ImageNet:       <root>/train/<wnid>/*.JPEG         <root>/val/<wnid>/*.JPEG
    Tiny-ImageNet:  <root>/train/<wnid>/images/*.JPEG  <root>/val/images/*.JPEG + <root>/val/val_annotations.txt

The class list is the sorted list of training folders (``wnids``). The ``val`` folder is the test set; validation
samples are held out of ``train`` with the seeded split. Transforms:

* ImageNet (``image_size=224``): train ``RandomResizedCrop(224)`` + flip; eval ``Resize(256)`` (shorter side, PIL
  bilinear with antialiasing) + ``CenterCrop(224)``, as ImageNet-C was made.
* Tiny-ImageNet (``image_size=64``): train random crop with padding 4 + flip; eval ``Resize((64, 64))``.

Workers return uint8 (3, image_size, image_size) tensors. For ImageNet-P evaluation the ImageNet layout also hands
out the uncropped ``Resize(256)`` images (:meth:`ImageFolderDataModule.eval_context`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, Subset
from torchvision import transforms as T

from .base import DatasetNotFoundError, ImageClassificationDataModule

__all__ = ["IMG_EXTENSIONS", "ImageFolderDataModule", "IndexedImageFiles", "scan_imagenet", "scan_tiny_imagenet"]

IMG_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)


def _class_dirs(train: Path) -> list[str]:
    if not train.is_dir():
        raise DatasetNotFoundError(f"expected a training folder with one sub-folder per class at {train}")
    classes = sorted(d.name for d in train.iterdir() if d.is_dir())
    if not classes:
        raise DatasetNotFoundError(f"{train} has no class sub-folders (expected <root>/train/<class>/...)")
    return classes


def scan_imagenet(root: Path, split: str, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """List ``(path, label)`` for ``<root>/<split>/<class>/*``, sorted by class then file name.

    Raises:
        DatasetNotFoundError: the split folder is missing, has unknown class folders, or holds no images.
    """
    folder = root / split
    if not folder.is_dir():
        raise DatasetNotFoundError(f"ImageNet layout: missing folder {folder} (expected {folder}/<class>/*.JPEG)")
    index = {c: i for i, c in enumerate(classes)}
    samples: list[tuple[Path, int]] = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        if d.name not in index:
            raise DatasetNotFoundError(f"{d}: class folder {d.name!r} is not among the {len(classes)} train classes")
        samples += [(p, index[d.name]) for p in _images_in(d)]
    if not samples:
        raise DatasetNotFoundError(f"no images ({', '.join(IMG_EXTENSIONS)}) under {folder}/<class>/")
    return samples


def scan_tiny_imagenet(root: Path, split: str, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """List ``(path, label)`` for the Tiny-ImageNet layout (``train/<wnid>/images`` or ``val/images`` + annotations).

    Raises:
        DatasetNotFoundError: a folder or the annotation file is missing, malformed, or names unknown classes.
    """
    index = {c: i for i, c in enumerate(classes)}
    samples: list[tuple[Path, int]] = []
    if split == "train":
        for c in classes:
            d = root / "train" / c / "images"
            if not d.is_dir():
                raise DatasetNotFoundError(f"Tiny-ImageNet layout: missing folder {d}")
            samples += [(p, index[c]) for p in _images_in(d)]
    else:
        ann = root / split / "val_annotations.txt"
        img_dir = root / split / "images"
        if not ann.is_file() or not img_dir.is_dir():
            raise DatasetNotFoundError(f"Tiny-ImageNet layout: expected {img_dir}/ and {ann}")
        for n, line in enumerate(ann.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2:
                raise DatasetNotFoundError(f"{ann}:{n}: expected '<file>\\t<wnid>[\\t<bbox>...]', got {line!r}")
            fname, wnid = parts[0].strip(), parts[1].strip()
            if wnid not in index:
                raise DatasetNotFoundError(f"{ann}:{n}: class {wnid!r} is not among the {len(classes)} train classes")
            path = img_dir / fname
            if not path.is_file():
                raise DatasetNotFoundError(f"{ann}:{n}: image {path} does not exist")
            samples.append((path, index[wnid]))
        samples.sort(key=lambda s: s[0].name)
    if not samples:
        raise DatasetNotFoundError(f"Tiny-ImageNet layout: no images found for split {split!r} under {root}")
    return samples


class IndexedImageFiles(Dataset):
    """Image files with labels; decodes to RGB, applies a PIL transform, yields ``(uint8 (3, H, W), y, index)``.

    Args:
        samples: ``(path, label)`` pairs; a sample's index is its position in this list.
        transform: PIL-image transform (resize/crop/flip only); its output is converted to a uint8 tensor.
    """

    def __init__(self, samples: Sequence[tuple[Path, int]], transform: Callable | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        path, label = self.samples[index]
        with Image.open(path) as img:
            img = img.convert("RGB")
            if self.transform is not None:
                img = self.transform(img)
            x = T.functional.pil_to_tensor(img)
        return x, torch.tensor(label, dtype=torch.long), index


class ImageFolderDataModule(ImageClassificationDataModule):
    """ImageNet or Tiny-ImageNet from an image-folder tree (see the module docstring for layouts and transforms).

    Args:
        data_dir: dataset root (holding ``train/`` and ``val/``).
        layout: ``"auto"``, ``"imagenet"`` or ``"tiny"``.
        image_size: crop size handed to the model (224 ImageNet, 64 Tiny-ImageNet).
        eval_resize: shorter-side resize before the eval centre crop (default ``round(image_size * 256 / 224)``
            for the ImageNet layout; Tiny-ImageNet resizes straight to ``image_size``).
        num_classes: expected number of class folders; checked against the data.
        train_split: training folder name.
        test_split: folder used as the test set.
        **kwargs: :class:`~robust_train.data.base.ImageClassificationDataModule` arguments.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        layout: str = "auto",
        image_size: int = 224,
        eval_resize: int | None = None,
        num_classes: int = 1000,
        train_split: str = "train",
        test_split: str = "val",
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        **kwargs,
    ) -> None:
        if layout not in ("auto", "imagenet", "tiny"):
            raise ValueError(f"layout must be 'auto', 'imagenet' or 'tiny', got {layout!r}")
        super().__init__(
            data_dir=data_dir, num_classes=num_classes, image_size=image_size, mean=mean, std=std, **kwargs
        )
        self.layout = layout
        self.eval_resize = eval_resize
        self.train_split = train_split
        self.test_split = test_split
        self.classes: list[str] = []

    def _root(self) -> Path:
        if not self.data_dir:
            raise DatasetNotFoundError("imagefolder: data.data_dir is not set (expected <root>/train and <root>/val)")
        root = Path(self.data_dir)
        if not root.is_dir():
            raise DatasetNotFoundError(f"imagefolder: data_dir {root} does not exist")
        return root

    def resolved_layout(self) -> str:
        """``"tiny"`` or ``"imagenet"``, detecting the layout when ``layout="auto"``."""
        if self.layout != "auto":
            return self.layout
        return "tiny" if (self._root() / self.test_split / "val_annotations.txt").is_file() else "imagenet"

    def transforms(self) -> tuple[Callable, Callable]:
        """PIL transforms ``(train, eval)`` for the resolved layout."""
        s = self.image_size
        if self.resolved_layout() == "tiny":
            train = T.Compose([T.Resize((s, s)), T.RandomCrop(s, padding=s // 16), T.RandomHorizontalFlip()])
            return train, T.Resize((s, s))
        resize = self.eval_resize or round(s * 256 / 224)
        train = T.Compose([T.RandomResizedCrop(s), T.RandomHorizontalFlip()])
        return train, T.Compose([T.Resize(resize), T.CenterCrop(s)])

    def eval_context(self, stage: str = "test") -> tuple[Dataset, int] | None:
        """ImageNet layout: the ``Resize(eval_resize)`` image without the centre crop, and ``crop = image_size``.

        The perturbation suites generate ImageNet-P sequences from it with ``crop=image_size``, as the original
        (``Resize(256)``, perturb, ``CenterCrop(224)``). Images keep their aspect ratio, so sizes differ between
        samples. Tiny-ImageNet layout: ``None`` (its evaluation images are resized without a crop).
        """
        if self.resolved_layout() == "tiny":
            return None
        ds = self.eval_dataset(stage)
        context = T.Resize(self.eval_resize or round(self.image_size * 256 / 224))
        if isinstance(ds, Subset):
            base = ds.dataset
            assert isinstance(base, IndexedImageFiles)
            return Subset(IndexedImageFiles(base.samples, context), ds.indices), self.image_size
        assert isinstance(ds, IndexedImageFiles)
        return IndexedImageFiles(ds.samples, context), self.image_size

    def prepare_data(self) -> None:
        """Check that the folders exist (nothing is downloaded)."""
        root = self._root()
        _class_dirs(root / self.train_split)
        if not (root / self.test_split).is_dir():
            raise DatasetNotFoundError(f"imagefolder: missing test folder {root / self.test_split}")

    def load(self) -> tuple[Dataset, Dataset, Dataset]:
        """Scan the tree and build the three datasets."""
        root = self._root()
        layout = self.resolved_layout()
        self.classes = _class_dirs(root / self.train_split)
        if len(self.classes) != self.num_classes:
            raise ValueError(
                f"imagefolder: found {len(self.classes)} classes in {root / self.train_split}, but "
                f"num_classes={self.num_classes}; set data.num_classes={len(self.classes)}"
            )
        scan = scan_tiny_imagenet if layout == "tiny" else scan_imagenet
        train_samples = scan(root, self.train_split, self.classes)
        test_samples = scan(root, self.test_split, self.classes)
        train_tf, eval_tf = self.transforms()
        return (
            IndexedImageFiles(train_samples, train_tf),
            IndexedImageFiles(train_samples, eval_tf),
            IndexedImageFiles(test_samples, eval_tf),
        )
