"""Loggers with fixes the stock ones lack."""

from __future__ import annotations

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as _CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

__all__ = ["CSVLogger"]


class _ContinuingWriter(ExperimentWriter):
    """An ``ExperimentWriter`` that keeps the columns already in ``metrics.csv`` when it starts with none.

    With ``ddp_spawn`` (``trainer=ddp_sim``) fitting and testing run in two different spawned processes, each with a
    copy of the logger made before fitting; the testing copy does not know the columns the fitting copy wrote, and
    the stock writer then fails re-writing the header ("dict contains fields not in fieldnames").
    """

    def _record_new_keys(self) -> set[str]:
        if not self.metrics_keys and self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys.extend(header)
        return super()._record_new_keys()


class CSVLogger(_CSVLogger):
    """Lightning's ``CSVLogger`` that also works across ``ddp_spawn`` fit -> test (see ``_ContinuingWriter``).

    Args are those of :class:`lightning.pytorch.loggers.CSVLogger`.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The experiment writer (created on first use)."""
        if self._experiment is not None:
            return self._experiment
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment
