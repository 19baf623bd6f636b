"""Composed-config fixtures for the pipeline tests (lightning-hydra-template style).

Configs are composed from the repository's ``conf/`` with ``initialize_config_dir`` + ``compose``, shrunk to a
download-free, CPU, few-batch run, and pointed at ``tmp_path`` for every output.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from robust_train.cli import CONFIG_DIR

CONF = Path(CONFIG_DIR)


def group_options(group: str) -> list[str]:
    """Names of the options of a config group (``conf/<group>/*.yaml``)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_cfg(config_name: str, overrides: list[str] | None = None, tmp_path: Path | None = None) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with ``overrides``, filling Hydra's runtime paths so it resolves."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides or [], return_hydra_config=True)
    if tmp_path is not None:
        with open_dict(cfg):
            cfg.paths.root_dir = str(tmp_path)
            cfg.paths.output_dir = str(tmp_path / "out")
            cfg.paths.log_dir = str(tmp_path / "logs")
            cfg.paths.work_dir = str(tmp_path)
            cfg.hydra.runtime.output_dir = str(tmp_path / "out")
    return cfg


def shrink(cfg: DictConfig) -> DictConfig:
    """Make a composed train/eval config cheap: CPU, one process, 1-2 batches per loop, no workers."""
    with open_dict(cfg):
        cfg.trainer.accelerator = "cpu"
        cfg.trainer.devices = 1
        cfg.trainer.max_epochs = 1
        cfg.trainer.limit_train_batches = 2
        cfg.trainer.limit_val_batches = 1
        cfg.trainer.limit_test_batches = 1
        cfg.trainer.log_every_n_steps = 1
        cfg.trainer.enable_model_summary = False
        cfg.data.num_workers = 0
        cfg.data.pin_memory = False
        cfg.data.persistent_workers = False
        if cfg.get("callbacks"):
            cfg.callbacks.pop("rich_progress_bar", None)
            cfg.callbacks.pop("model_summary", None)
        cfg.trainer.enable_progress_bar = False
    return cfg


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (the Fashion-MNIST format)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fashion_mnist(root: Path, n_train: int = 96, n_test: int = 32, seed: int = 0) -> Path:
    """Write a tiny, learnable Fashion-MNIST look-alike (four gzipped IDX files) under ``root``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for k in range(10):  # a bright bar whose row encodes the class
            images[labels == k, 2 + 2 * k : 4 + 2 * k, 4:24] = 250
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture
def fmnist_dir(tmp_path: Path) -> Path:
    """A folder with fixture Fashion-MNIST IDX files."""
    return write_fashion_mnist(tmp_path / "fmnist")


@pytest.fixture
def cfg_train(tmp_path: Path) -> Iterator[DictConfig]:
    """The default train config on synthetic data, shrunk, writing to ``tmp_path``."""
    cfg = shrink(compose_cfg("train", ["data=synthetic"], tmp_path))
    yield cfg
    GlobalHydra.instance().clear()


@pytest.fixture
def cfg_eval(tmp_path: Path) -> Iterator[DictConfig]:
    """The default eval config on synthetic data, shrunk, writing to ``tmp_path`` (``ckpt_path`` left to set)."""
    cfg = shrink(compose_cfg("eval", ["data=synthetic", "ckpt_path=."], tmp_path))
    yield cfg
    GlobalHydra.instance().clear()
