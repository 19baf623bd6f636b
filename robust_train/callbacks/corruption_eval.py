"""``CorruptionEvalCallback``: corrupted evaluation (ImageNet-C style) at validation / test epoch end.

Runs an :class:`~robust_train.evaluation.EvalSuite` on a fixed, seeded subset of the validation (or test) set with
replayable parameters (``Corruption.params_for_indices(dataset index, seed)``): every process evaluates
``positions[rank::world_size]`` and the integer counts are summed, so the logged numbers are identical for any batch
size and any number of DDP processes. Logs ``<stage>/c/<name>/s<k>/err``, ``<stage>/c/<name>/err``, ``<stage>/mce``
(baseline-normalised; AlexNet by default), ``<stage>/mce_unnorm`` (the unnormalised mean error CIFAR-10-C papers
report), ``<stage>/rel_mce`` and ``<stage>/clean_err`` (clean error of the same subset), with standard errors
``<stage>/mce_unnorm_se`` / ``<stage>/clean_err_se`` and the subset size ``<stage>/c_num_images``; writes per-epoch
JSON / CSV and an error-vs-severity plot on rank 0. Tables and plot titles headline the unnormalised mean corruption
error unless the images are ImageNet's (preset ``imagenet``), where the AlexNet-normalised mCE is meaningful.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import Dataset

from ..evaluation import engine as E
from ..evaluation._io import atomic_write_text
from ..evaluation.report import print_table, result_table, standard_error, to_baseline, write_reports
from ..evaluation.suite import EvalSuite, load_suite

__all__ = ["CorruptionEvalCallback", "SuiteEvalCallback"]


class SuiteEvalCallback(Callback):
    """Shared machinery of the corruption and perturbation evaluation callbacks.

    Args:
        suite: an :class:`EvalSuite`, or the name of a ``conf/eval`` suite.
        every_n_epochs: run at the end of every n-th validation epoch; 0 disables validation-time evaluation.
        on_test: also run at the end of ``trainer.test`` (on the test set).
        released_root: at test time, evaluate this released-data root (CIFAR-10-C ``.npy``, ImageNet-C tree,
            CIFAR-10-P, ImageNet-P) instead of corrupting the test set on the fly.
        output_dir: where JSON / CSV / plots go (default: ``<trainer.log_dir>/<suite name>``).
        plots: write plots (per epoch at validation time).
        print_results: print a rich table after a test run.
        save_baseline: after a test run, write the measured numbers as a baseline JSON file here (compute
            AlexNet normalisers with a torchvision AlexNet checkpoint this way).
        num_workers: DataLoader workers for reading the evaluated images.
    """

    kind = "c"

    def __init__(
        self,
        suite: EvalSuite | str,
        every_n_epochs: int = 1,
        on_test: bool = True,
        released_root: str | None = None,
        output_dir: str | None = None,
        plots: bool = True,
        print_results: bool = True,
        save_baseline: str | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.suite = load_suite(suite) if isinstance(suite, str) else suite
        if self.suite.kind != self.kind:
            raise ValueError(
                f"{type(self).__name__} runs kind-{self.kind!r} suites, got suite {self.suite.name!r} of kind "
                f"{self.suite.kind!r}"
            )
        if int(every_n_epochs) < 0:
            raise ValueError(f"every_n_epochs must be >= 0, got {every_n_epochs}")
        self.every_n_epochs = int(every_n_epochs)
        self.on_test = bool(on_test)
        self.released_root = released_root
        self.output_dir = output_dir
        self.plots = bool(plots)
        self.print_results = bool(print_results)
        self.save_baseline = save_baseline
        self.num_workers = int(num_workers)
        self.history: list[dict[str, Any]] = []
        self.last_result: dict[str, float] = {}
        self._num_images: int | None = None  # images per cell of the last evaluation (all processes)
        self._imagenet = False

    # ------------------------------------------------------------------------------------------------ hooks
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Evaluate every ``every_n_epochs`` epochs (not during the sanity check)."""
        if trainer.sanity_checking or self.every_n_epochs == 0:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0:
            return
        self._run(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Evaluate the test set (or the released data) once."""
        if self.on_test:
            self._run(trainer, pl_module, "test")

    # ------------------------------------------------------------------------------------------------ work
    def _dataset(self, trainer: Trainer, stage: str) -> Dataset:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "eval_dataset"):
            raise RuntimeError(
                f"{type(self).__name__} needs a datamodule with eval_dataset(stage) yielding (x, y, index)"
            )
        return dm.eval_dataset(stage)

    @staticmethod
    def _forward(pl_module: LightningModule) -> E.Forward:
        return getattr(pl_module, "forward_normalized", pl_module)

    def _out_dir(self, trainer: Trainer) -> Path:
        if self.output_dir is not None:
            return Path(self.output_dir)
        base = trainer.log_dir or trainer.default_root_dir
        return Path(base) / self.suite.name

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> Any:
        model_fwd = self._forward(pl_module)
        forward_context = trainer.precision_plugin.forward_context

        def fwd(x: torch.Tensor) -> torch.Tensor:
            # the trainer's precision (e.g. bf16 autocast), as in validation_step; logits back in float32
            with forward_context():
                return model_fwd(x).float()

        dev = pl_module.device
        rank, world = trainer.global_rank, trainer.world_size
        if stage == "test" and self.released_root:
            from ..data.corrupted import ReleasedData

            released = ReleasedData(
                self.released_root, self.suite.names, self.suite.severities, difficulty=self.suite.difficulty
            )
            self._num_images, self._imagenet = None, self.suite.preset == "imagenet"
            return E.evaluate_released(fwd, released, self.suite, dev, rank, world, self.num_workers)
        ds, crop = self._dataset(trainer, stage), None
        self._num_images = len(self.suite.subset(len(ds)))  # type: ignore[arg-type]
        if self._num_images:
            shape = torch.as_tensor(ds[int(self.suite.subset(len(ds))[0])][0]).shape  # type: ignore[arg-type]
            self._imagenet = self.suite.preset_for(int(shape[-2]), int(shape[-1])) == "imagenet"
        if self.suite.kind == "p" and self.suite.context:
            context = getattr(trainer.datamodule, "eval_context", lambda s: None)(stage)
            if context is not None:  # ImageNet-P: sequences of the Resize(256) image, cropped to the model's size
                ds, crop = context
        return E.evaluate_suite(fwd, ds, self.suite, dev, rank, world, num_workers=self.num_workers, crop=crop)

    def _run(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        start = time.perf_counter()
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                metric = self._evaluate(trainer, pl_module, stage)
                result = metric.compute()  # sums the states of every process under DDP
        finally:
            pl_module.train(was_training)
        flat = metric.flat(result, prefix=f"{stage}/")
        if self.kind == "c" and self._num_images:
            n = self._num_images
            table = result_table(metric, result, n)["summary"]
            flat[f"{stage}/c_num_images"] = float(n)
            if "mean_error_se" in table:
                flat[f"{stage}/mce_unnorm_se"] = table["mean_error_se"]
            if "clean_error" in result:
                flat[f"{stage}/clean_err_se"] = standard_error(float(result["clean_error"]), n)
        self.last_result = flat
        pl_module.log_dict({k: float(v) for k, v in flat.items()}, sync_dist=False)
        seconds = time.perf_counter() - start
        entry = {
            "stage": stage,
            "epoch": int(trainer.current_epoch),
            "seconds": seconds,
            "world_size": int(trainer.world_size),
            "metrics": flat,
        }
        self.history.append(entry)
        self._write(trainer, pl_module, stage, metric, result, entry)

    @rank_zero_only
    def _write(
        self, trainer: Trainer, pl_module: LightningModule, stage: str, metric: Any, result: Any, entry: dict[str, Any]
    ) -> None:
        out = self._out_dir(trainer)
        out.mkdir(parents=True, exist_ok=True)
        source = self.released_root if (stage == "test" and self.released_root) else "on-the-fly"
        extra = {"stage": stage, "epoch": entry["epoch"], "seconds": entry["seconds"], "data": source}
        stem = f"{stage}_epoch{entry['epoch']:03d}" if stage == "val" else "test"
        write_reports(
            out,
            self.suite,
            metric,
            result,
            extra,
            plots=self.plots,
            stem=stem,
            num_images=self._num_images if self.kind == "c" else None,
            imagenet=self._imagenet,
        )
        atomic_write_text(
            out / f"{stage}_history.json", json.dumps([h for h in self.history if h["stage"] == stage], indent=2)
        )
        if stage == "test":
            if self.print_results:
                n = self._num_images if self.kind == "c" else None
                print_table(
                    result_table(metric, result, n), title=f"{self.suite.name} ({source})", imagenet=self._imagenet
                )
            if self.save_baseline:
                meta = {"suite": self.suite.to_dict(), "data": source, "model": type(pl_module).__name__}
                name = Path(self.save_baseline).stem
                to_baseline(name, metric, result, meta).save(self.save_baseline)


class CorruptionEvalCallback(SuiteEvalCallback):
    """Corrupted evaluation with CE / mCE (kind-c suites); see the module docstring and :class:`SuiteEvalCallback`.

    Example:
        >>> from robust_train.evaluation import EvalSuite
        >>> cb = CorruptionEvalCallback(EvalSuite("mini", corruptions=["contrast"], num_images=64), every_n_epochs=2)
        >>> cb.suite.num_images, cb.every_n_epochs
        (64, 2)
    """

    kind = "c"
