"""Run helpers for the entry points: config checks, warnings, the task wrapper and metric retrieval."""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Callable
from functools import wraps
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from ..data.base import DatasetNotFoundError
from ..errors import BadFileError, RobustTrainError
from ..models import UnknownModelError
from .pylogger import RankedLogger
from .rich_utils import print_config_tree

__all__ = [
    "USER_ERRORS",
    "ConfigError",
    "check_checkpoint_file",
    "check_trainer_config",
    "extras",
    "get_metric_value",
    "log_hyperparameters",
    "task_wrapper",
]

log = RankedLogger(__name__)


class ConfigError(RobustTrainError, ValueError):
    """The composed config is unusable (a missing group, a missing required value, a value of the wrong type)."""


#: Mistakes in the command line or the config: reported as one message, without a traceback, by the entry points.
USER_ERRORS: tuple[type[Exception], ...] = (RobustTrainError, ConfigError, UnknownModelError, DatasetNotFoundError)


def check_checkpoint_file(path: str | os.PathLike[str], name: str = "ckpt_path") -> None:
    """Fail early, naming the file, on a checkpoint that is missing, a folder, empty, truncated or not a checkpoint.

    ``torch.save`` writes a zip archive; a complete one is recognised from its end record without reading it. Anything
    else is loaded once to see whether it is a legacy (pickle) checkpoint.

    Raises:
        ConfigError: the path does not exist or is a folder.
        BadFileError: the file is not a readable PyTorch checkpoint.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(
            f"{name}: {str(path)!r} is a folder; expected a checkpoint file (e.g. .../checkpoints/last.ckpt)"
        )
    if not p.exists():
        raise ConfigError(f"{name}: checkpoint {str(path)!r} does not exist")
    if p.stat().st_size == 0:
        raise BadFileError(f"{name}: checkpoint {str(path)!r} is empty")
    if zipfile.is_zipfile(p):
        return
    import torch

    try:
        torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any failure means the same thing to the user
        raise BadFileError(
            f"{name}: {str(path)!r} is not a readable PyTorch checkpoint (truncated or another format): "
            f"{type(e).__name__}: {e}"
        ) from None


#: Trainer options that must be integers (or null) and those that may be int or float.
_TRAINER_INTS = (
    "max_epochs",
    "min_epochs",
    "max_steps",
    "min_steps",
    "num_nodes",
    "accumulate_grad_batches",
    "check_val_every_n_epoch",
    "log_every_n_steps",
    "num_sanity_val_steps",
)
_TRAINER_NUMBERS = (
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "val_check_interval",
    "overfit_batches",
    "gradient_clip_val",
)


def check_trainer_config(trainer: Any) -> None:
    """Check the types of the trainer's numeric options (``trainer.max_epochs=abc`` must not slip through).

    Raises:
        ConfigError: an option has the wrong type; the message names ``trainer.<key>``.
    """
    if not isinstance(trainer, DictConfig):
        return
    for key in (*_TRAINER_INTS, *_TRAINER_NUMBERS, "fast_dev_run"):
        if key not in trainer:
            continue
        v = trainer.get(key)
        if v is None:
            continue
        if key == "fast_dev_run":
            ok = isinstance(v, (bool, int))
            want = "a bool or an int"
        elif key in _TRAINER_INTS:
            ok = isinstance(v, int) and not isinstance(v, bool)
            want = "an int"
        else:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            want = "an int or a float"
        if not ok:
            raise ConfigError(f"trainer.{key}: expected {want}, got {type(v).__name__} {v!r}")


def extras(cfg: DictConfig) -> None:
    """Optional start-of-run utilities controlled by ``cfg.extras``: silence warnings, print the config tree."""
    if not cfg.get("extras"):
        return
    if cfg.extras.get("ignore_warnings"):
        log.info("Disabling python warnings (extras.ignore_warnings=True)")
        warnings.filterwarnings("ignore")
    if cfg.extras.get("print_config"):
        print_config_tree(cfg, resolve=True, save_to_file=True)


def _user_cause(err: InstantiationException) -> ConfigError | None:
    """The user error behind Hydra's wrapper (a constructor rejecting a config value), as one ``ConfigError``."""
    cause = err.__cause__
    if not isinstance(cause, USER_ERRORS):
        return None
    key = str(err).rsplit("full_key: ", 1)[-1].strip() if "full_key: " in str(err) else ""
    return ConfigError(f"{key}: {cause}" if key else str(cause))


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
        except InstantiationException as err:
            user = _user_cause(err)
            if user is None:
                log.exception("")
                raise
            log.error(f"{type(user).__name__}: {user}")
            raise user from None
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
