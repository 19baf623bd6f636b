"""``robust-eval``: evaluate a checkpoint with the Hydra config ``conf/eval.yaml``.

:func:`evaluate` builds the same objects as training (data, model, callbacks, loggers, trainer) and runs
``trainer.test`` with every callback the config lists: the ``callbacks`` group plus the ``eval`` group, which is where
evaluation suites plug in (``eval=clean`` logs clean accuracy only; corruption suites add their callbacks there).

Examples::

    robust-eval ckpt_path=logs/train/runs/<date>/checkpoints/best.ckpt
    robust-eval ckpt_path=... eval=c15                        # model, data, precision: the training run's

The model, data and trainer precision come from the training run's composed config (stored in the checkpoint, or
``.hydra/config.yaml`` of its run folder) unless the command line sets them (``data=...``, ``model...``,
``trainer=...``, ``experiment=...``); a chosen value that differs from the training run's is warned about.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig

from ..errors import report_user_error
from ..utils import (
    USER_ERRORS,
    ConfigError,
    check_checkpoint_file,
    extras,
    log_hyperparameters,
    print_summary,
    task_wrapper,
)
from ..utils.builders import build_run
from ..utils.pylogger import RankedLogger
from ..utils.run_config import apply_run_config, command_line_overrides, load_run_config
from . import CONFIG_DIR, user_error_types

__all__ = ["evaluate", "main"]

log = RankedLogger(__name__)

# expected with our design: batches are converted and augmented on the device by the LightningModule
warnings.filterwarnings("ignore", message=r".*overridden `on_after_batch_transfer` in `LightningModule`.*")


@task_wrapper
def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test the checkpoint ``cfg.ckpt_path`` on ``cfg.data``'s test set with the configured callbacks.

    Args:
        cfg: a config composed from ``conf/eval.yaml``.

    Returns:
        ``(metric_dict, object_dict)``: the metrics logged during testing and the objects built.

    Raises:
        ConfigError: ``ckpt_path`` is not set or does not exist.
    """
    start = time.perf_counter()
    ckpt_path = cfg.get("ckpt_path")
    net = cfg.model.get("net") or {}
    weights_in_net = bool(net.get("pretrained") or net.get("checkpoint_path"))  # timm / torchvision weights files
    if not ckpt_path and not weights_in_net:
        raise ConfigError(
            "robust-eval needs a checkpoint: pass ckpt_path=/path/to/model.ckpt, or ckpt_path=null with a net that "
            "loads its own weights (+model.net.checkpoint_path=/path/to/state_dict.pth)"
        )
    if ckpt_path:
        check_checkpoint_file(ckpt_path)
        run_cfg, source = load_run_config(ckpt_path)
        if run_cfg is not None:
            apply_run_config(cfg, run_cfg, command_line_overrides(cfg), source)
        else:
            log.info(f"No training-run config found for {ckpt_path}: model/data/precision from the eval config")
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    run = build_run(cfg)
    trainer = run.trainer
    assert trainer is not None
    log_hyperparameters(run.loggers, cfg)
    log.info("Starting testing!")
    trainer.test(model=run.model, datamodule=run.datamodule, ckpt_path=ckpt_path or None, weights_only=False)
    metric_dict = dict(trainer.callback_metrics)
    info = {
        "checkpoint": ckpt_path or net.get("checkpoint_path") or f"pretrained {net.get('model_name')}",
        "log dir": cfg.paths.output_dir,
        "wall time": f"{time.perf_counter() - start:.1f} s",
    }
    print_summary("robust-eval summary", {k: v for k, v in metric_dict.items() if k.startswith("test/")}, info)
    return metric_dict, run.as_dict()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval.yaml")
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``robust-eval``: config mistakes end with one message and exit status 2."""
    extras(cfg)
    try:
        evaluate(cfg)
    except (*USER_ERRORS, *user_error_types()) as err:
        sys.exit(report_user_error("robust-eval", err))


if __name__ == "__main__":
    main()
