"""The CSV logger keeps working when fit and test run in different (spawned) copies of it, as with ddp_spawn."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

from robust_train.utils.loggers import CSVLogger


def _fit_then_test_in_copies(cls, tmp_path: Path) -> Path:
    logger = cls(save_dir=str(tmp_path), name="csv")
    logger.log_hyperparams({"lr": 0.1})  # the main process creates the writer before spawning
    fit_copy = pickle.loads(pickle.dumps(logger))
    fit_copy.log_metrics({"val/acc": 0.5, "train/loss": 1.0}, step=10)
    fit_copy.save()
    test_copy = pickle.loads(pickle.dumps(logger))  # knows nothing of the columns written while fitting
    test_copy.log_metrics({"test/acc": 0.6}, step=11)
    test_copy.save()
    return Path(logger.log_dir) / "metrics.csv"


def test_csv_logger_across_spawned_copies(tmp_path: Path) -> None:
    # Lightning's own CSVLogger raises "dict contains fields not in fieldnames" here (lightning 2.6)
    path = _fit_then_test_in_copies(CSVLogger, tmp_path)
    rows = list(csv.DictReader(path.open()))
    assert set(rows[0]) == {"step", "val/acc", "train/loss", "test/acc"}
    assert rows[0]["val/acc"] == "0.5" and rows[1]["test/acc"] == "0.6"
