"""Run helpers for the entry points: config checks, warnings, the task wrapper and metric retrieval."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import wraps
from importlib.util import find_spec
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..data.base import DatasetNotFoundError
from ..models import UnknownModelError
from .pylogger import RankedLogger
from .rich_utils import print_config_tree

__all__ = ["USER_ERRORS", "ConfigError", "extras", "get_metric_value", "log_hyperparameters", "task_wrapper"]

log = RankedLogger(__name__)


class ConfigError(ValueError):
    """The composed config is unusable (a missing group, a missing required value)."""


#: Mistakes in the command line or the config: reported as one message, without a traceback, by the entry points.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, UnknownModelError, DatasetNotFoundError)


def extras(cfg: DictConfig) -> None:
    """Optional start-of-run utilities controlled by ``cfg.extras``: silence warnings, print the config tree."""
    if not cfg.get("extras"):
        return
    if cfg.extras.get("ignore_warnings"):
        log.info("Disabling python warnings (extras.ignore_warnings=True)")
        warnings.filterwarnings("ignore")
    if cfg.extras.get("print_config"):
        print_config_tree(cfg, resolve=True, save_to_file=True)


def task_wrapper(task_func: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Wrap a task so that loggers are closed and the output folder is logged even when it fails.

    A failing task re-raises (so multiruns and CI see the failure).
    """

    @wraps(task_func)
    def wrap(cfg: DictConfig) -> Any:
        try:
            return task_func(cfg)
        except USER_ERRORS as err:
            log.error(f"{type(err).__name__}: {err}")
            raise
        except Exception:
            log.exception("")
            raise
        finally:
            log.info(f"Output dir: {cfg.paths.output_dir}")
            if find_spec("wandb"):  # pragma: no cover - optional
                import wandb

                if wandb.run:
                    wandb.finish()

    return wrap


def get_metric_value(metric_dict: dict[str, Any], metric_name: str | None) -> float | None:
    """Return ``metric_dict[metric_name]`` as a float (``None`` when no name is given).

    Raises:
        KeyError: the metric was not logged; the message lists the logged metrics.
    """
    if not metric_name:
        log.info("Metric name is None! Skipping metric value retrieval...")
        return None
    if metric_name not in metric_dict:
        raise KeyError(
            f"metric {metric_name!r} was not logged; logged metrics: {sorted(metric_dict)}. "
            "Check optimized_metric in the hparams_search config."
        )
    value = metric_dict[metric_name]
    return float(value.item() if hasattr(value, "item") else value)


def log_hyperparameters(loggers: list, cfg: DictConfig) -> None:
    """Send the resolved config (without Hydra's own ``hydra`` node) to every logger."""
    if not loggers:
        return
    keys = [k for k in cfg if k != "hydra"]
    container = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)
    for logger in loggers:
        logger.log_hyperparams(container)
