"""Build the objects of a run (DataModule, model, callbacks, loggers, trainer) from a composed config.

Shared by ``robust-train`` and ``robust-eval`` so that both read the config groups the same way:

* ``data``: a DataModule; ``model``: a ``RobustClassifier`` whose ``net`` targets ``timm.create_model`` (passed to
  the model as a plain spec, so checkpoints describe their net; the composed config is attached as YAML text);
* ``augment`` / ``loss``: optional top-level groups, instantiated separately and passed to the model as
  ``train_augment`` / ``loss`` (a group option without ``_target_``, such as ``augment/none.yaml``, means none);
* ``callbacks`` and ``eval``: mappings ``name -> callback config``; ``eval`` holds the evaluation callbacks
  (corruption suites), the rest are the usual training callbacks;
* ``logger``: mapping ``name -> logger config``; ``trainer``: the Lightning ``Trainer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hydra
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf, open_dict

from ..models import check_model_name
from ..models.lit_classifier import net_spec_from_config
from .instantiators import instantiate_callbacks, instantiate_loggers
from .pylogger import RankedLogger
from .utils import ConfigError, check_trainer_config

__all__ = ["Run", "build_datamodule", "build_model", "build_run", "check_config"]

log = RankedLogger(__name__)


@dataclass
class Run:
    """Everything a run needs, built from the config."""

    cfg: DictConfig
    datamodule: LightningDataModule
    model: LightningModule
    callbacks: list[Callback] = field(default_factory=list)
    loggers: list[Logger] = field(default_factory=list)
    trainer: Trainer | None = None

    def as_dict(self) -> dict[str, Any]:
        """The objects by name (for hyper-parameter logging and tests)."""
        return {
            "cfg": self.cfg,
            "datamodule": self.datamodule,
            "model": self.model,
            "callbacks": self.callbacks,
            "logger": self.loggers,
            "trainer": self.trainer,
        }


def check_config(cfg: DictConfig) -> None:
    """Fail early, with one clear message, on mistakes that would otherwise surface deep in instantiation.

    Raises:
        ConfigError: a required group is missing.
        UnknownModelError: the model name is unknown (the message lists close matches).
    """
    for group in ("data", "model", "trainer"):
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"config group {group!r} must be selected and have a _target_ (got {node!r})")
    check_trainer_config(cfg.trainer)
    net = cfg.model.get("net")
    if isinstance(net, DictConfig) and str(net.get("_target_", "")).endswith("create_model"):
        check_model_name(net.get("model_name"))


def _optional(node: Any, what: str) -> Any:
    if isinstance(node, DictConfig) and "_target_" in node:
        log.info(f"Instantiating {what} <{node._target_}>")
        return hydra.utils.instantiate(node)
    return None


def build_datamodule(cfg: DictConfig) -> LightningDataModule:
    """Instantiate ``cfg.data``."""
    log.info(f"Instantiating datamodule <{cfg.data._target_}>")
    return hydra.utils.instantiate(cfg.data)


def build_model(cfg: DictConfig) -> LightningModule:
    """Instantiate ``cfg.model`` with the ``augment`` and ``loss`` groups plugged in."""
    check_config(cfg)
    overrides: dict[str, Any] = {}
    augment = _optional(cfg.get("augment"), "train augmentation")
    if augment is not None:
        overrides["train_augment"] = augment
    loss = _optional(cfg.get("loss"), "loss")
    if loss is not None:
        overrides["loss"] = loss
    log.info(f"Instantiating model <{cfg.model._target_}> (net: {cfg.model.get('net', {}).get('model_name', '?')})")
    model_cfg = cfg.model
    spec = net_spec_from_config(cfg.model.get("net"))
    if spec is not None:  # a plain spec instead of a module: the checkpoint's hyper-parameters then describe the net
        model_cfg = cfg.model.copy()
        with open_dict(model_cfg):
            del model_cfg["net"]
        overrides["net"] = spec
    model = hydra.utils.instantiate(model_cfg, **overrides)
    if hasattr(model, "run_config"):
        keys = [k for k in cfg.keys() if k != "hydra"]
        model.run_config = OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, keys))
    return model


def build_run(cfg: DictConfig, with_trainer: bool = True) -> Run:
    """Build DataModule, model, callbacks (``callbacks`` then ``eval``), loggers and trainer."""
    check_config(cfg)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg)
    callbacks = instantiate_callbacks(cfg.get("callbacks")) + instantiate_callbacks(cfg.get("eval"))
    loggers = instantiate_loggers(cfg.get("logger"))
    if not loggers:  # LearningRateMonitor refuses to run without a logger
        dropped = [c for c in callbacks if isinstance(c, LearningRateMonitor)]
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
        if dropped:
            log.info("No logger configured: dropping the LearningRateMonitor callback")
    run = Run(cfg, datamodule, model, callbacks, loggers)
    if with_trainer:
        log.info(f"Instantiating trainer <{cfg.trainer._target_}>")
        run.trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return run
