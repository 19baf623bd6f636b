"""End-to-end runs on the CPU: fast dev runs, a short real run, train -> eval on one checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from robust_train.cli.eval import evaluate
from robust_train.cli.train import fit_and_test, train

from .conftest import compose_cfg, shrink


def test_fdr_synthetic(tmp_path: Path) -> None:
    cfg = shrink(compose_cfg("train", ["data=synthetic", "debug=fdr"], tmp_path))
    metrics, objects = fit_and_test(cfg)
    assert {"train/loss", "val/acc", "val/acc_best", "test/acc", "test/loss"} <= set(metrics)
    assert torch.isfinite(metrics["train/loss"])
    assert objects["trainer"].fast_dev_run


def test_fdr_fashion_mnist_fixture(tmp_path: Path, fmnist_dir: Path) -> None:
    cfg = shrink(
        compose_cfg(
            "train",
            [
                "debug=fdr",
                f"data.data_dir={fmnist_dir}",
                "data.system_dir=null",
                "data.val_size=16",
                "data.batch_size=8",
            ],
            tmp_path,
        )
    )
    metrics, objects = fit_and_test(cfg)
    dm = objects["datamodule"]
    assert len(dm.data_train) == 80 and len(dm.data_test) == 32
    assert 0.0 <= float(metrics["test/acc"]) <= 1.0


def test_short_run_learns_and_returns_optimized_metric(tmp_path: Path) -> None:
    cfg = shrink(compose_cfg("train", ["data=synthetic", "logger=csv"], tmp_path))
    with open_dict(cfg):
        cfg.trainer.max_epochs = 3
        cfg.trainer.limit_train_batches = 1.0
        cfg.trainer.limit_val_batches = 1.0
        cfg.trainer.limit_test_batches = 1.0
    value = train(cfg)
    assert value is not None and value > 0.5  # 10 classes: chance is 0.1
    assert (Path(cfg.paths.output_dir) / "csv" / "version_0" / "metrics.csv").is_file()


def test_train_then_eval_same_checkpoint(tmp_path: Path) -> None:
    cfg = shrink(compose_cfg("train", ["data=synthetic"], tmp_path))
    with open_dict(cfg):
        cfg.trainer.limit_test_batches = 2
    metrics, objects = fit_and_test(cfg)
    ckpt = objects["trainer"].checkpoint_callback.best_model_path
    assert ckpt and Path(ckpt).is_file()

    ecfg = shrink(compose_cfg("eval", ["data=synthetic", f"ckpt_path={ckpt}"], tmp_path / "eval"))
    with open_dict(ecfg):
        ecfg.trainer.limit_test_batches = 2
    emetrics, eobjects = evaluate(ecfg)
    # same checkpoint, same data: identical test accuracy and loss
    assert float(emetrics["test/acc"]) == pytest.approx(float(metrics["test/acc"]))
    assert float(emetrics["test/loss"]) == pytest.approx(float(metrics["test/loss"]), rel=1e-5)
    # and the weights really came from the checkpoint
    sd = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    for k, v in eobjects["model"].state_dict().items():
        if k in sd:
            assert torch.equal(v, sd[k]), k


def test_eval_requires_existing_checkpoint(tmp_path: Path) -> None:
    cfg = shrink(compose_cfg("eval", ["data=synthetic", f"ckpt_path={tmp_path / 'missing.ckpt'}"], tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        evaluate(cfg)


def test_missing_dataset_is_one_clear_error(tmp_path: Path) -> None:
    cfg = shrink(compose_cfg("train", [f"data.data_dir={tmp_path / 'none'}", "data.system_dir=null"], tmp_path))
    from robust_train.data import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fit_and_test(cfg)
