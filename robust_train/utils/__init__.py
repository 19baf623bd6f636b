"""Entry-point utilities (layer 4 helpers): rank-zero logging, instantiators, rich output, run wrappers."""

from __future__ import annotations

from .instantiators import instantiate_callbacks, instantiate_loggers
from .pylogger import RankedLogger
from .rich_utils import print_config_tree, print_summary, summary_table
from .utils import (
    USER_ERRORS,
    ConfigError,
    check_checkpoint_file,
    check_trainer_config,
    extras,
    get_metric_value,
    log_hyperparameters,
    task_wrapper,
)

__all__ = [
    "USER_ERRORS",
    "ConfigError",
    "check_checkpoint_file",
    "check_trainer_config",
    "RankedLogger",
    "extras",
    "get_metric_value",
    "instantiate_callbacks",
    "instantiate_loggers",
    "log_hyperparameters",
    "print_config_tree",
    "print_summary",
    "summary_table",
    "task_wrapper",
]
