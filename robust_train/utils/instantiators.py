"""Build callbacks and loggers from their Hydra config groups."""

from __future__ import annotations

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from .pylogger import RankedLogger

__all__ = ["instantiate_callbacks", "instantiate_loggers"]

log = RankedLogger(__name__)


def _instantiate_group(cfg: DictConfig | None, kind: str, base: type) -> list:
    out: list = []
    if not cfg:
        return out
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"the {kind} config must be a mapping of name -> config, got {type(cfg).__name__}")
    for name, conf in cfg.items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            log.info(f"Instantiating {kind} <{conf._target_}>")
            obj = hydra.utils.instantiate(conf)
            if not isinstance(obj, base):
                raise TypeError(f"{kind} {name!r} built a {type(obj).__name__}, expected a {base.__name__}")
            out.append(obj)
    return out


def instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    """Instantiate every entry of the ``callbacks`` group that has a ``_target_`` (``null`` entries are skipped)."""
    return _instantiate_group(callbacks_cfg, "callback", Callback)


def instantiate_loggers(logger_cfg: DictConfig | None) -> list[Logger]:
    """Instantiate every entry of the ``logger`` group that has a ``_target_``."""
    return _instantiate_group(logger_cfg, "logger", Logger)
