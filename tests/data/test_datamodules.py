"""DataModules read fixture files written by the tests: CIFAR pickles, image-folder trees, Fashion-MNIST IDX."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robust_train.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DatasetNotFoundError,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    SyntheticDataModule,
    find_fashion_mnist,
    read_idx,
    seeded_split,
)


# ------------------------------------------------------------------------------------------------------ fixtures
def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _fmnist(root: Path, n_train: int = 50, n_test: int = 20, gz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    out = []
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        _write_idx(root / f"{split}-images-idx3-ubyte{ext}", images)
        _write_idx(root / f"{split}-labels-idx1-ubyte{ext}", labels)
        out.append(images)
    return out[0], out[1]


def _cifar(root: Path, num_classes: int, n_per_batch: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(num_classes)
    if num_classes == 10:
        folder = root / "cifar-10-batches-py"
        names = {f"data_batch_{i}": "train" for i in range(1, 6)} | {"test_batch": "test"}
        key, meta, meta_key = "labels", "batches.meta", "label_names"
    else:
        folder = root / "cifar-100-python"
        names = {"train": "train", "test": "test"}
        key, meta, meta_key = "fine_labels", "meta", "fine_label_names"
    folder.mkdir(parents=True)
    arrays: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for name, split in names.items():
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, num_classes, size=n_per_batch))
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, key: labels, "filenames": [f"{i}.png" for i in range(n_per_batch)]}, f)
        arrays[split].append(data)
    with open(folder / meta, "wb") as f:
        pickle.dump({meta_key: [f"class_{i}" for i in range(num_classes)]}, f)
    return {k: np.concatenate(v) for k, v in arrays.items()}


def _png(path: Path, size: tuple[int, int], value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)


def _imagenet_tree(root: Path, classes=("n001", "n002", "n003"), n_train: int = 4, n_val: int = 2) -> Path:
    for k, c in enumerate(classes):
        for i in range(n_train):
            _png(root / "train" / c / f"{c}_{i}.JPEG", (300, 260), 10 * k + i)
        for i in range(n_val):
            _png(root / "val" / c / f"val_{c}_{i}.png", (280, 256), 100 + 10 * k + i)
    return root


def _tiny_tree(root: Path, classes=("n01", "n02"), n_train: int = 5, n_val: int = 3) -> Path:
    lines = []
    for k, c in enumerate(classes):
        for i in range(n_train):
            _png(root / "train" / c / "images" / f"{c}_{i}.JPEG", (64, 64), 20 * k + i)
        for i in range(n_val):
            fname = f"val_{k * n_val + i}.JPEG"
            _png(root / "val" / "images" / fname, (64, 64), 200 + k)
            lines.append(f"{fname}\t{c}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (root / "wnids.txt").write_text("\n".join(classes) + "\n")
    return root


def _all_samples(ds) -> list[tuple[torch.Tensor, int, int]]:
    return [(x, int(y), int(i)) for x, y, i in (ds[j] for j in range(len(ds)))]


# ------------------------------------------------------------------------------------------------- Fashion-MNIST
def test_read_idx_roundtrip(tmp_path: Path) -> None:
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        _write_idx(tmp_path / name, a)
        np.testing.assert_array_equal(read_idx(tmp_path / name), a)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="unsigned-byte IDX"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 5) + b"abc")
    with pytest.raises(ValueError, match="holds 3"):
        read_idx(tmp_path / "short")


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_user_root(tmp_path: Path, gz: bool) -> None:
    train_images, test_images = _fmnist(tmp_path / "fm", gz=gz)
    dm = FashionMNISTDataModule(data_dir=tmp_path / "fm", system_dir=None, batch_size=8, val_size=10)
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.data_train), len(dm.data_val), len(dm.data_test)) == (40, 10, 20)
    x, y, idx = dm.data_test[3]
    assert x.dtype == torch.uint8 and x.shape == (3, 32, 32)
    # zero padding 28 -> 32, grey replicated to 3 channels, label and index carried
    assert torch.equal(x[:, 2:30, 2:30], torch.from_numpy(test_images[3]).expand(3, 28, 28))
    assert x[:, :2].sum() == 0 and x[:, :, 30:].sum() == 0
    assert (int(y), idx) == (3, 3)
    # validation samples keep their training-file index and show that exact image
    xv, yv, iv = dm.data_val[0]
    assert torch.equal(xv[0, 2:30, 2:30], torch.from_numpy(train_images[iv]))
    assert int(yv) == iv % 10
    xb, yb, ib = next(iter(dm.train_dataloader()))
    assert xb.shape == (8, 3, 32, 32) and xb.dtype == torch.uint8 and ib.shape == (8,)


def test_fashion_mnist_search_order(tmp_path: Path) -> None:
    _fmnist(tmp_path / "sys")
    _fmnist(tmp_path / "user" / "FashionMNIST" / "raw")
    found = find_fashion_mnist(tmp_path / "user", system_dir=tmp_path / "sys")
    assert found["train_images"].parent == tmp_path / "sys"
    found = find_fashion_mnist(tmp_path / "user", system_dir=tmp_path / "nowhere")
    assert found["train_images"].parent == tmp_path / "user" / "FashionMNIST" / "raw"


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path: Path) -> None:
    dm = FashionMNISTDataModule(data_dir=tmp_path / "empty", system_dir=tmp_path / "none", download=False)
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist") as err:
        dm.prepare_data()
    assert str(tmp_path / "empty") in str(err.value)


def test_fashion_mnist_mismatched_files(tmp_path: Path) -> None:
    _fmnist(tmp_path / "fm")
    _write_idx(tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))
    dm = FashionMNISTDataModule(data_dir=tmp_path / "fm", system_dir=None, val_size=5)
    with pytest.raises(ValueError, match="do not match"):
        dm.setup("fit")


def test_fashion_mnist_rejects_wrong_settings() -> None:
    with pytest.raises(ValueError, match="10 classes"):
        FashionMNISTDataModule(num_classes=5)
    with pytest.raises(ValueError, match="image_size"):
        FashionMNISTDataModule(image_size=64)


# ---------------------------------------------------------------------------------------------------------- CIFAR
@pytest.mark.parametrize("num_classes", [10, 100])
def test_cifar_pickles(tmp_path: Path, num_classes: int) -> None:
    arrays = _cifar(tmp_path, num_classes)
    cls = CIFAR10DataModule if num_classes == 10 else CIFAR100DataModule
    dm = cls(data_dir=tmp_path, batch_size=4, val_size=0.25, train_crop_padding=0, train_flip=False)
    dm.prepare_data()
    dm.setup("fit")
    n_train = arrays["train"].shape[0]
    assert len(dm.data_train) + len(dm.data_val) == n_train
    assert len(dm.data_test) == arrays["test"].shape[0]
    x, y, i = dm.data_test[5]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8 and i == 5
    assert torch.equal(x, torch.from_numpy(arrays["test"][5].reshape(3, 32, 32)))
    assert dm.num_classes == num_classes and len(dm.classes) == num_classes
    # training transform: crop + flip keep shape and dtype
    folder = "cifar-10-batches-py" if num_classes == 10 else "cifar-100-python"
    dm2 = cls(data_dir=tmp_path / folder, batch_size=4, val_size=2)  # data_dir may be the batches folder itself
    dm2.setup("fit")
    xt, _, _ = dm2.data_train[0]
    assert xt.shape == (3, 32, 32) and xt.dtype == torch.uint8


def test_cifar_missing_and_bad_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        CIFAR10DataModule(data_dir=tmp_path).prepare_data()
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": np.zeros((2, 100), dtype=np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"\(N, 3072\)"):
        CIFAR10DataModule(data_dir=tmp_path, val_size=1).setup("fit")
    with pytest.raises(ValueError, match="100 classes"):
        CIFAR100DataModule(num_classes=10)


# ---------------------------------------------------------------------------------------------------- ImageFolder
def test_imagefolder_imagenet_layout(tmp_path: Path) -> None:
    root = _imagenet_tree(tmp_path / "in")
    dm = ImageFolderDataModule(data_dir=root, num_classes=3, image_size=224, batch_size=2, val_size=3)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.resolved_layout() == "imagenet" and dm.classes == ["n001", "n002", "n003"]
    assert len(dm.data_train) == 9 and len(dm.data_val) == 3 and len(dm.data_test) == 6
    x, y, i = dm.data_test[2]
    assert x.shape == (3, 224, 224) and x.dtype == torch.uint8
    assert (int(y), i) == (1, 2)
    assert int(x[0, 100, 100]) == 110  # val_n002_0: constant 110, unchanged by Resize(256) + CenterCrop(224)
    xt, _, _ = dm.data_train[0]
    assert xt.shape == (3, 224, 224)
    xb, yb, ib = next(iter(dm.val_dataloader()))
    assert xb.shape == (2, 3, 224, 224) and ib.dtype == torch.int64


def test_imagefolder_tiny_layout(tmp_path: Path) -> None:
    root = _tiny_tree(tmp_path / "tiny")
    dm = ImageFolderDataModule(data_dir=root, num_classes=2, image_size=64, batch_size=2, val_size=2)
    dm.setup("fit")
    assert dm.resolved_layout() == "tiny"
    assert len(dm.data_test) == 6 and len(dm.data_train) + len(dm.data_val) == 10
    labels = [y for _, y, _ in _all_samples(dm.data_test)]
    assert labels == [0, 0, 0, 1, 1, 1]
    x, y, i = dm.data_test[4]
    assert x.shape == (3, 64, 64) and int(x[0, 0, 0]) == 201 and i == 4


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        ImageFolderDataModule(data_dir=tmp_path / "nope").prepare_data()
    root = _imagenet_tree(tmp_path / "in")
    with pytest.raises(ValueError, match="found 3 classes"):
        ImageFolderDataModule(data_dir=root, num_classes=1000, val_size=1).setup("fit")
    (root / "val" / "n999").mkdir()
    with pytest.raises(DatasetNotFoundError, match="n999"):
        ImageFolderDataModule(data_dir=root, num_classes=3, val_size=1).setup("fit")
    tiny = _tiny_tree(tmp_path / "tiny")
    (tiny / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn77\t0\t0\t1\t1\n")
    with pytest.raises(DatasetNotFoundError, match="n77"):
        ImageFolderDataModule(data_dir=tiny, num_classes=2, image_size=64, val_size=1).setup("fit")
    with pytest.raises(ValueError, match="layout"):
        ImageFolderDataModule(data_dir=tiny, layout="coco")


# ----------------------------------------------------------------------------------------- split, indices, batch
def test_seeded_split_reproducible() -> None:
    a = seeded_split(100, 0.2, seed=3)
    assert a == seeded_split(100, 0.2, seed=3)
    assert a != seeded_split(100, 0.2, seed=4)
    tr, va = a
    assert len(va) == 20 and sorted(tr + va) == list(range(100))
    assert seeded_split(100, 7, seed=0)[1].__len__() == 7
    with pytest.raises(ValueError, match="val_size"):
        seeded_split(10, 10, seed=0)


def test_synthetic_split_and_indices_are_reproducible() -> None:
    def make():
        dm = SyntheticDataModule(num_train=60, num_test=20, batch_size=10, val_size=12, split_seed=5)
        dm.setup("fit")
        return dm

    a, b = make(), make()
    va = _all_samples(a.eval_dataset("val"))
    vb = _all_samples(b.eval_dataset("val"))
    assert [s[2] for s in va] == [s[2] for s in vb]
    assert all(torch.equal(p[0], q[0]) for p, q in zip(va, vb, strict=True))
    train_idx = {int(i) for _, _, idx in a.train_dataloader() for i in idx}
    val_idx = {s[2] for s in va}
    assert not train_idx & val_idx and len(val_idx) == 12
    assert [s[2] for s in _all_samples(a.eval_dataset("test"))] == list(range(20))
    with pytest.raises(ValueError, match="stage"):
        a.eval_dataset("train")


def test_batch_size_divided_per_device() -> None:
    class _T:  # a stand-in trainer: only world_size is read
        world_size = 4

    dm = SyntheticDataModule(num_train=40, num_test=8, batch_size=16, eval_batch_size=8, val_size=8)
    dm.trainer = _T()  # type: ignore[assignment]
    dm.setup("fit")
    assert (dm.batch_size_per_device, dm.eval_batch_size_per_device) == (4, 2)
    assert next(iter(dm.train_dataloader()))[0].shape[0] == 4
    dm.batch_size = 18
    with pytest.raises(RuntimeError, match="not divisible"):
        dm.setup("fit")


def test_datamodule_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        SyntheticDataModule(batch_size=0)
    with pytest.raises(ValueError, match="mean and std"):
        SyntheticDataModule(mean=(0.5,), std=(0.5, 0.5))
