"""``robust-train``: train (and test) a classifier from the Hydra config ``conf/train.yaml``.

Examples::

    robust-train                                   # Fashion-MNIST, small ResNet, CPU (the `make train` job)
    robust-train experiment=fmnist_default trainer=gpu
    robust-train data=synthetic debug=fdr          # download-free smoke run
    robust-train -m experiment='glob(*)' ++trainer.fast_dev_run=true
    robust-train hparams_search=fmnist_optuna      # Optuna sweep over optimized_metric
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig

from ..errors import report_user_error
from ..utils import (
    USER_ERRORS,
    check_checkpoint_file,
    extras,
    get_metric_value,
    log_hyperparameters,
    print_summary,
    task_wrapper,
)
from ..utils.builders import build_run
from ..utils.pylogger import RankedLogger
from . import CONFIG_DIR, user_error_types

__all__ = ["fit_and_test", "main", "set_threads", "train"]

log = RankedLogger(__name__)

# expected with our design: batches are converted and augmented on the device by the LightningModule
warnings.filterwarnings("ignore", message=r".*overridden `on_after_batch_transfer` in `LightningModule`.*")


def set_threads(threads: int | str | None) -> int:
    """Set torch's intra-op thread count: an int, ``None`` (torch's default), or ``"auto"``.

    ``"auto"`` uses every core unless the machine is already busy (1-minute load average >= number of cores), in
    which case it uses one thread: on an oversubscribed CPU, threads that must meet at every operator barrier wait
    for each other and a multi-threaded step runs several times slower than a single-threaded one.

    Returns:
        The thread count in effect.
    """
    if threads is None:
        return torch.get_num_threads()
    if threads == "auto":
        cores = os.cpu_count() or 1
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        threads = 1 if load >= cores else cores
        log.info(f"threads=auto: load average {load:.1f} on {cores} cores -> {threads} torch thread(s)")
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, 'auto' or null, got {threads!r}")
    torch.set_num_threads(threads)
    return threads


def _summary_info(trainer: L.Trainer, cfg: DictConfig, seconds: float) -> dict[str, Any]:
    ckpt = getattr(trainer, "checkpoint_callback", None)
    return {
        "best checkpoint": (getattr(ckpt, "best_model_path", "") or "-") if ckpt is not None else "-",
        "log dir": cfg.paths.output_dir,
        "epochs": trainer.current_epoch,
        "wall time": f"{seconds:.1f} s",
        "torch threads": torch.get_num_threads(),
    }


@task_wrapper
def fit_and_test(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train on ``cfg.data`` (when ``cfg.train``), then test the best checkpoint (when ``cfg.test``).

    Args:
        cfg: a config composed from ``conf/train.yaml``.

    Returns:
        ``(metric_dict, object_dict)``: every metric logged (``train/*``, ``val/*``, ``test/*``...) and the objects
        built (``cfg``, ``datamodule``, ``model``, ``callbacks``, ``logger``, ``trainer``).
    """
    start = time.perf_counter()
    set_threads(cfg.get("threads"))
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    if cfg.get("ckpt_path"):
        check_checkpoint_file(cfg.ckpt_path)
    run = build_run(cfg)
    trainer, model, datamodule = run.trainer, run.model, run.datamodule
    assert trainer is not None
    object_dict = run.as_dict()
    log_hyperparameters(run.loggers, cfg)

    if cfg.get("train"):
        log.info("Starting training!")
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=False)
    train_metrics = dict(trainer.callback_metrics)

    if cfg.get("test"):
        log.info("Starting testing!")
        ckpt_path = None
        if trainer.checkpoint_callback is not None and not trainer.fast_dev_run:
            ckpt_path = trainer.checkpoint_callback.best_model_path or None  # type: ignore[union-attr]
        if ckpt_path is None:
            log.warning("No best checkpoint found: testing the current weights.")
        trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
        log.info(f"Best ckpt path: {ckpt_path}")
    metric_dict = {**train_metrics, **trainer.callback_metrics}

    shown = {k: metric_dict.get(k) for k in ("val/acc", "val/acc_best", "test/acc", "test/loss") if k in metric_dict}
    shown.update({k: v for k, v in metric_dict.items() if k.startswith("test/") and k not in shown})
    print_summary("robust-train summary", shown, _summary_info(trainer, cfg, time.perf_counter() - start))
    return metric_dict, object_dict


def train(cfg: DictConfig) -> float | None:
    """Run :func:`fit_and_test` and return the value of ``cfg.optimized_metric`` (for sweeps); ``None`` if unset."""
    extras(cfg)
    metric_dict, _ = fit_and_test(cfg)
    return get_metric_value(metric_dict, cfg.get("optimized_metric"))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point of ``robust-train``: config mistakes end with one message and exit status 2."""
    try:
        return train(cfg)
    except (*USER_ERRORS, *user_error_types()) as err:
        sys.exit(report_user_error("robust-train", err))


if __name__ == "__main__":
    main()
