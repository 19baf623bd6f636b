"""Every config under conf/ composes, resolves and instantiates."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import hydra
import pytest
import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from robust_train.data import ImageClassificationDataModule
from robust_train.models import RobustClassifier, UnknownModelError
from robust_train.utils import ConfigError, instantiate_callbacks, instantiate_loggers
from robust_train.utils.builders import build_model, build_run, check_config

from .conftest import compose_cfg, group_options

GPU_TRAINERS = {"gpu", "ddp", "ddp_multinode"}
# optional packages of logger options (the configs compose without them)
LOGGER_PACKAGES = {"wandb": "wandb", "mlflow": "mlflow"}


def _resolve(cfg: DictConfig) -> None:
    OmegaConf.resolve(cfg)  # raises on broken interpolations


@pytest.mark.parametrize("root", ["train", "eval"])
def test_root_configs_compose(root: str, tmp_path: Path) -> None:
    overrides = ["ckpt_path=x.ckpt"] if root == "eval" else []
    cfg = compose_cfg(root, overrides, tmp_path)
    _resolve(cfg)
    assert cfg.task_name == root
    for group in ("data", "model", "trainer", "paths"):
        assert group in cfg, f"{root}.yaml lacks the {group} group"
    assert cfg.model.net._target_ == "timm.create_model"
    assert cfg.model.net.pretrained is False
    if root == "train":
        assert cfg.optimized_metric == "val/acc_best"


@pytest.mark.parametrize("name", group_options("data"))
def test_data_configs(name: str, tmp_path: Path) -> None:
    cfg = compose_cfg("train", [f"data={name}"], tmp_path)
    _resolve(cfg)
    dm = hydra.utils.instantiate(cfg.data)
    assert isinstance(dm, LightningDataModule) and isinstance(dm, ImageClassificationDataModule)
    assert dm.num_classes == cfg.data.num_classes and dm.image_size == cfg.data.image_size
    assert len(dm.mean) == len(dm.std) == 3
    # the model's interpolations follow the data group
    assert cfg.model.net.num_classes == dm.num_classes and list(cfg.model.mean) == list(dm.mean)


@pytest.mark.parametrize("name", group_options("model"))
def test_model_configs(name: str, tmp_path: Path) -> None:
    cfg = compose_cfg("train", [f"model={name}", "data=synthetic", "data.num_classes=7"], tmp_path)
    _resolve(cfg)
    model = build_model(cfg)
    assert isinstance(model, RobustClassifier)
    with torch.no_grad():  # ImageNet nets accept 32x32 too (global pooling)
        out = model.eval()(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 7)
    opt = cfg.model.optimizer
    assert opt._partial_ and cfg.model.scheduler._partial_


@pytest.mark.parametrize("name", group_options("trainer"))
def test_trainer_configs(name: str, tmp_path: Path) -> None:
    cfg = compose_cfg("train", [f"trainer={name}"], tmp_path)
    _resolve(cfg)
    if name in GPU_TRAINERS and not torch.cuda.is_available():
        assert cfg.trainer.accelerator == "gpu"
        pytest.skip("GPU trainer configs instantiate only with CUDA (composition checked)")
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert isinstance(trainer, Trainer)
    if name == "ddp_sim":
        assert trainer.num_devices == 2 and type(trainer.strategy).__name__ == "DDPStrategy"


@pytest.mark.parametrize("name", group_options("callbacks"))
def test_callback_configs(name: str, tmp_path: Path) -> None:
    cfg = compose_cfg("train", [f"callbacks={name}"], tmp_path)
    _resolve(cfg)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    assert all(isinstance(c, Callback) for c in callbacks)
    expected = {k for k, v in (cfg.get("callbacks") or {}).items() if v is not None}
    assert len(callbacks) == len(expected)


@pytest.mark.parametrize("name", group_options("logger"))
def test_logger_configs(name: str, tmp_path: Path) -> None:
    cfg = compose_cfg("train", [f"logger={name}"], tmp_path)
    _resolve(cfg)
    if "tensorboard" in OmegaConf.to_yaml(cfg.get("logger") or {}):
        if not (importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")):
            pytest.skip("tensorboard/tensorboardX not installed")
    for key, package in LOGGER_PACKAGES.items():
        if key in (cfg.get("logger") or {}):
            assert cfg.logger[key]._target_.startswith("lightning.pytorch.loggers.")
            if importlib.util.find_spec(package) is None:
                pytest.skip(f"{package} not installed (optional; the config composes and resolves)")
    loggers = instantiate_loggers(cfg.get("logger"))
    assert all(isinstance(lg, Logger) for lg in loggers)
    assert len(loggers) == len(cfg.get("logger") or {})


@pytest.mark.parametrize("group", ["debug", "experiment", "augment", "loss", "eval", "hparams_search"])
def test_other_groups_compose(group: str, tmp_path: Path) -> None:
    names = group_options(group)
    assert names, f"conf/{group}/ has no options"
    for name in names:
        cfg = compose_cfg("train", [f"{group}={name}"], tmp_path)
        _resolve(cfg)
        check_config(cfg)
        if group in ("augment", "loss"):
            node = cfg.get(group)
            if node and "_target_" in node:
                assert isinstance(hydra.utils.instantiate(node), torch.nn.Module)


@pytest.mark.parametrize("name", group_options("experiment"))
def test_experiments_build(name: str, tmp_path: Path) -> None:
    cfg = compose_cfg("train", [f"experiment={name}", "data=synthetic"], tmp_path)
    _resolve(cfg)
    assert cfg.tags and cfg.seed is not None
    run = build_run(cfg, with_trainer=False)
    assert isinstance(run.model, RobustClassifier)


def test_unknown_model_name_is_one_clear_error(tmp_path: Path) -> None:
    cfg = compose_cfg("train", ["model.net.model_name=resnet8_cifra"], tmp_path)
    with pytest.raises(UnknownModelError, match="unknown model 'resnet8_cifra'") as err:
        build_model(cfg)
    msg = str(err.value)
    assert "resnet8_cifar" in msg and "wrn40_2_cifar" in msg


def test_missing_group_is_one_clear_error(tmp_path: Path) -> None:
    cfg = compose_cfg("train", [], tmp_path)
    cfg.data = None
    with pytest.raises(ConfigError, match="config group .data."):
        check_config(cfg)
