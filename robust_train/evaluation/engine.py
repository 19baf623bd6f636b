"""The evaluation engine: corrupt (or perturb) batches with replayable parameters, run a model, update the metrics.

The functions here know nothing about Lightning: a model is any ``forward(x01) -> logits`` callable taking float
images in [0, 1] of shape (B, 3, H, W) (``RobustClassifier.forward_normalized`` normalises on the device). The
callbacks and ``robust-eval`` call them on their share of a fixed, seeded subset of the evaluation set:

* positions ``suite.subset(len(dataset))`` are split across processes as ``positions[rank::world_size]``;
* every corrupted image depends only on ``(suite.seed, corruption, severity, dataset index)``
  (``Corruption.params_for_indices``), every sequence on ``(suite.seed, perturbation, dataset index)``;
* the metrics hold integer counts (and per-pair sums) reduced with ``"sum"``; ``metric.compute()`` synchronises
  under DDP. The numbers are therefore identical for any batch size and any number of processes.

Order of work: the process's images are read in chunks of at most :data:`CHUNK_BYTES` (one chunk for CIFAR- and
Fashion-MNIST-sized sets), and each corruption (perturbation) runs over a whole chunk before the next starts, so
corruptions finish one after another: each gets a log line with its error and time
(:class:`~robust_train.evaluation.progress.ProgressReporter`; a progress bar on interactive terminals). The order
changes nothing in the numbers (the metrics are sums of per-image counts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..corruptions.api import create_corruption
from ..corruptions.base import Corruption
from ..metrics.corruption_error import CorruptionErrors
from ..metrics.stability import PerturbationStability
from ..sequences.api import create_sequence
from ..sequences.base import PerturbationSequence
from .progress import ProgressReporter, format_seconds
from .suite import EvalSuite

__all__ = [
    "CHUNK_BYTES",
    "Forward",
    "SuiteRunner",
    "evaluate_released",
    "evaluate_suite",
    "make_metric",
    "shard",
    "to_unit",
]

Forward = Callable[[Tensor], Tensor]

#: bytes of clean images (as read from the dataset) held in memory at once while every corruption runs over them
CHUNK_BYTES = 512 * 2**20


def to_unit(x: Tensor, device: torch.device | str | None = None) -> Tensor:
    """uint8 or float images (B, C, H, W) -> float32 in [0, 1] with 3 channels (grey replicated), on ``device``.

    Example:
        >>> to_unit(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)).shape
        torch.Size([1, 3, 2, 2])
    """
    x = x.to(device) if device is not None else x
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    if x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    return x.contiguous()


def shard(positions: Sequence[int], rank: int = 0, world_size: int = 1) -> list[int]:
    """This process's share of the evaluated positions (``positions[rank::world_size]``).

    Example:
        >>> shard(range(5), 1, 2)
        [1, 3]
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    return list(positions)[rank::world_size]


def _collate_ragged(batch: list[Any]) -> Any:
    """``default_collate``, except that images of different sizes stay a list (context images keep their aspect)."""
    from torch.utils.data import default_collate

    shapes = {tuple(item[0].shape) for item in batch}
    if len(shapes) == 1:
        return default_collate(batch)
    rest = default_collate([item[1:] for item in batch])
    return [item[0] for item in batch], *rest


def _same_size_groups(x: Tensor | list[Tensor], *others: Tensor) -> Iterator[tuple[Tensor, ...]]:
    """Split a (possibly ragged) batch into stacked groups of equal image size (host-side shapes only)."""
    if isinstance(x, Tensor):
        yield (x, *others)
        return
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, xi in enumerate(x):
        groups.setdefault(tuple(xi.shape), []).append(i)
    for members in groups.values():
        sel = torch.tensor(members)
        yield (torch.stack([x[i] for i in members]), *(o[sel] for o in others))


def _batches(
    dataset: Dataset, positions: Sequence[int], batch_size: int, num_workers: int, ragged: bool = False
) -> Iterator[Any]:
    if not positions:
        return iter(())
    collate = _collate_ragged if ragged else None
    loader = DataLoader(
        _Indexed(dataset), batch_size=batch_size, num_workers=num_workers, sampler=list(positions), collate_fn=collate
    )
    return iter(loader)


class _Indexed(Dataset):
    """``(x, y, index)`` samples from datasets yielding ``(x, y, index)`` or ``(x, y)`` (index = position)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, position: int) -> tuple[Any, Any, int]:
        sample = self.dataset[position]
        if not isinstance(sample, (tuple, list)) or len(sample) not in (2, 3):
            raise ValueError(
                f"evaluation datasets must yield (x, y) or (x, y, index), got {type(sample).__name__}"
                + (f" of length {len(sample)}" if isinstance(sample, (tuple, list)) else "")
                + f" at position {position}"
            )
        if len(sample) == 2:
            return sample[0], sample[1], position
        return sample[0], sample[1], sample[2]


def _chunked(batches: Iterable[Any], limit: int) -> Iterator[list[Any]]:
    """Group batches ``(x, y, index)`` into lists holding at most ``limit`` bytes of images (at least one batch)."""
    chunk: list[Any] = []
    size = 0
    for b in batches:
        chunk.append(b)
        xs = b[0] if isinstance(b[0], list) else [b[0]]  # ragged context batches are lists of images
        size += sum(x.numel() * x.element_size() for x in xs)
        if size >= limit:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def make_metric(suite: EvalSuite, names: Sequence[str] | None = None) -> CorruptionErrors | PerturbationStability:
    """The metric object of a suite (``CorruptionErrors`` for kind c, ``PerturbationStability`` for kind p)."""
    names = list(names) if names is not None else suite.names
    if suite.kind == "c":
        return CorruptionErrors(names, suite.severities, baseline=suite.load_baseline())
    return PerturbationStability(names, difficulty=suite.difficulty, baseline=suite.load_baseline())


class SuiteRunner:
    """Builds and caches the corruption / sequence modules of a suite and feeds batches through a model.

    Args:
        suite: the evaluation suite.
    """

    def __init__(self, suite: EvalSuite) -> None:
        self.suite = suite
        self._corruptions: dict[tuple[str, str], Corruption] = {}
        self._sequences: dict[tuple[str, str, int | None], PerturbationSequence] = {}

    def corruption(self, name: str, preset: str) -> Corruption:
        """The (cached) module of one corruption, for every severity: 8-bit output, JPEG when emulating the release.

        Severities are chosen per call (``params_for_indices(..., severity=s)``): one module per corruption.
        """
        key = (name, preset)
        if key not in self._corruptions:
            self._corruptions[key] = create_corruption(
                name,
                preset=preset,
                quantize=True,
                jpeg_quality=self.suite.release_jpeg_quality(preset),
            )
        return self._corruptions[key]

    def sequence(self, name: str, preset: str, crop: int | None = None) -> PerturbationSequence:
        """The (cached) sequence module of one perturbation type (frames centre-cropped to ``crop`` if given)."""
        key = (name, preset, crop)
        if key not in self._sequences:
            self._sequences[key] = create_sequence(
                name,
                preset=preset,
                difficulty=self.suite.difficulty,
                crop=crop,
                h264=self.suite.release_h264(preset),
            )
        return self._sequences[key]

    @torch.no_grad()
    def update_corruptions(
        self, forward: Forward, x: Tensor, y: Tensor, index: Tensor, metric: CorruptionErrors
    ) -> None:
        """Clean (if the suite asks) and every (corruption, severity) of one batch.

        Args:
            forward: model on [0, 1] images.
            x: (B, 3, H, W) float images in [0, 1] on the model's device.
            y: (B,) labels.
            index: (B,) dataset indices (replay keys).
            metric: updated in place.
        """
        y = y.to(x.device)
        if self.suite.clean:
            metric.update(forward(x), y)
        for name in metric.corruptions:
            for s in metric.severities:
                self.update_corruption(forward, x, y, index, metric, name, s)

    @torch.no_grad()
    def update_corruption(
        self, forward: Forward, x: Tensor, y: Tensor, index: Tensor, metric: CorruptionErrors, name: str, severity: int
    ) -> None:
        """One (corruption, severity) of one batch (arguments as :meth:`update_corruptions`)."""
        op = self.corruption(name, self.suite.preset_for(int(x.shape[-2]), int(x.shape[-1])))
        xc = op(x, op.params_for_indices(index, self.suite.seed, severity=severity))
        metric.update(forward(xc), y.to(x.device), name, severity)

    @torch.no_grad()
    def update_sequences(
        self, forward: Forward, x: Tensor, index: Tensor, metric: PerturbationStability, crop: int | None = None
    ) -> None:
        """Every perturbation type of one batch: frames -> logits (B, T, K) -> metric.

        ``crop``: ``x`` is the context image (ImageNet-P: ``Resize(256)``); frames are centre-cropped to ``crop``
        and the preset follows the crop size.
        """
        for name in metric.perturbations:
            self.update_sequence(forward, x, index, metric, name, crop)

    @torch.no_grad()
    def update_sequence(
        self,
        forward: Forward,
        x: Tensor,
        index: Tensor,
        metric: PerturbationStability,
        name: str,
        crop: int | None = None,
    ) -> None:
        """One perturbation type of one batch (``crop`` as in :meth:`update_sequences`)."""
        h, w = (crop, crop) if crop is not None else (int(x.shape[-2]), int(x.shape[-1]))
        op = self.sequence(name, self.suite.preset_for(h, w), crop)
        frames = op(x, op.params_for_indices(index, self.suite.seed))
        metric.update(sequence_logits(forward, frames, self.suite.batch_size), name)


def sequence_logits(forward: Forward, frames: Tensor, chunk: int) -> Tensor:
    """Logits of every frame: (B, T, 3, H, W) -> (B, T, K), ``chunk`` frames per forward pass."""
    b, t = frames.shape[:2]
    flat = frames.reshape(b * t, *frames.shape[2:])
    out = torch.cat([forward(flat[i : i + chunk]) for i in range(0, b * t, chunk)])
    return out.reshape(b, t, -1).float()


def _local_error(metric: CorruptionErrors | PerturbationStability, i: int) -> tuple[str, float]:
    """This process's error of corruption ``i`` (or flip probability of perturbation ``i``), for progress lines."""
    if isinstance(metric, CorruptionErrors):
        wrong, total = int(metric.wrong[i].sum()), int(metric.total[i].sum())
        return "error", wrong / max(total, 1)
    return "flip probability", int(metric.flips[i]) / max(int(metric.pairs[i]), 1)


def evaluate_suite(
    forward: Forward,
    dataset: Dataset,
    suite: EvalSuite,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
    metric: CorruptionErrors | PerturbationStability | None = None,
    num_workers: int = 0,
    progress: Callable[[int], None] | None = None,
    crop: int | None = None,
    show_progress: bool = True,
) -> CorruptionErrors | PerturbationStability:
    """One process's pass over its share of the suite's subset: corrupted images (kind c) or sequences (kind p).

    Args:
        forward: model on [0, 1] images.
        dataset: yields ``(x, y, index)`` or ``(x, y)`` (the index is then the position), ``x`` uint8 or float
            (C, H, W).
        suite: the suite.
        device: device of the model.
        rank: this process's rank.
        world_size: number of processes.
        metric: metric to update (a fresh :func:`make_metric` on ``device`` when ``None``).
        num_workers: DataLoader workers.
        progress: called with the number of image evaluations done (images x cells) after each batch.
        crop: kind p: ``dataset`` holds context images (sizes may differ; ``eval_context`` of the data modules)
            and the frames are centre-cropped to ``crop``.
        show_progress: draw a progress bar on interactive terminals (rank 0); the per-corruption log lines
            (``robust_train.evaluation`` logger, rank 0) are always emitted.

    Returns:
        The metric (call ``compute()``: under DDP it sums the states of every process).
    """
    if crop is not None and suite.kind != "p":
        raise ValueError(f"crop: context images are for perturbation suites (kind 'p'), got kind {suite.kind!r}")
    metric = metric if metric is not None else make_metric(suite).to(device)
    runner = SuiteRunner(suite)
    # kind p: images per generation step such that about batch_size frames are in flight
    size = suite.batch_size if suite.kind == "c" else max(1, suite.batch_size // 31)
    mine = shard(suite.subset(len(dataset)), rank, world_size)  # type: ignore[arg-type]
    if suite.kind == "c":
        items = list(metric.corruptions)  # type: ignore[union-attr]
        cells = len(metric.severities) * len(items) + int(suite.clean)  # type: ignore[union-attr]
    else:
        items = list(metric.perturbations)  # type: ignore[union-attr]
        cells = len(items)
    share = f" (process {rank} of {world_size}: its share)" if world_size > 1 else ""
    reporter = ProgressReporter(cells * len(mine), suite.name, bar=show_progress and rank == 0, log_items=rank == 0)
    timings = dict.fromkeys(items, 0.0)
    done = 0
    try:
        for chunk in _chunked(_batches(dataset, mine, size, num_workers, ragged=crop is not None), CHUNK_BYTES):
            done += sum(len(b[2]) for b in chunk)
            if suite.kind == "c" and suite.clean:
                for x, y, idx in chunk:
                    metric.update(forward(to_unit(x, device)), y.to(device))  # type: ignore[call-arg]
                    _advance(reporter, progress, len(idx), "clean")
            for i, name in enumerate(items):
                start = time.perf_counter()
                for x, y, idx in chunk:
                    if suite.kind == "c":
                        xu = to_unit(x, device)
                        for s in metric.severities:  # type: ignore[union-attr]
                            runner.update_corruption(forward, xu, y, idx, metric, name, s)  # type: ignore[arg-type]
                            _advance(reporter, progress, len(idx), name)
                    else:
                        for xg, ig in _same_size_groups(x, idx):
                            xg = to_unit(xg, device)
                            runner.update_sequence(forward, xg, ig, metric, name, crop)  # type: ignore[arg-type]
                        _advance(reporter, progress, len(idx), name)
                timings[name] += time.perf_counter() - start
                what, value = _local_error(metric, i)
                so_far = "" if done == len(mine) else f" so far (images read: {done} of {len(mine)})"
                reporter.item_done(
                    f"{name} ({i + 1}/{len(items)}) {what} {100 * value:.2f}% on {done} images{so_far}{share}, "
                    f"{format_seconds(timings[name])}"
                )
    finally:
        reporter.close()
    return metric


def _advance(reporter: ProgressReporter, progress: Callable[[int], None] | None, n: int, label: str) -> None:
    reporter.advance(n, label)
    if progress is not None:
        progress(n)


@torch.no_grad()
def evaluate_released(
    forward: Forward,
    released: Any,
    suite: EvalSuite,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> CorruptionErrors | PerturbationStability:
    """Evaluate released benchmark files (:class:`robust_train.data.corrupted.ReleasedData`) with the same metrics.

    Every file is evaluated in full (``suite.num_images`` is ignored: the released sets are fixed); the suite gives
    names, severities, difficulty, baseline and batch size. Clean error is not available from released data.
    """
    metric = make_metric(suite, released.names).to(device)
    reporter = ProgressReporter(0, f"{suite.name} (released)", bar=False, log_items=rank == 0)
    if released.kind == "c":
        for i, name in enumerate(released.names):
            start = time.perf_counter()
            for s in suite.severities:
                ds = released.dataset(name, s)
                for x, y, _ in _batches(ds, shard(range(len(ds)), rank, world_size), suite.batch_size, num_workers):
                    metric.update(forward(to_unit(x, device)), y.to(device), name, s)
                    if progress is not None:
                        progress(len(y))
            what, value = _local_error(metric, i)
            reporter.item_done(
                f"{name} ({i + 1}/{len(released.names)}) {what} {100 * value:.2f}%, "
                f"{format_seconds(time.perf_counter() - start)}"
            )
    else:
        chunk = max(1, suite.batch_size // 31)
        for i, name in enumerate(released.names):
            start = time.perf_counter()
            ds = released.dataset(name)
            for x, _, _ in _batches(ds, shard(range(len(ds)), rank, world_size), chunk, num_workers):
                metric.update(sequence_logits(forward, to_unit(x, device), suite.batch_size), name)
                if progress is not None:
                    progress(len(x))
            what, value = _local_error(metric, i)
            reporter.item_done(
                f"{name} ({i + 1}/{len(released.names)}) {what} {100 * value:.2f}%, "
                f"{format_seconds(time.perf_counter() - start)}"
            )
    return metric
