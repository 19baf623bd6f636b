"""The CPU reference regime: ``imagecorruptions`` per image (uint8 NumPy/OpenCV/PIL) in a pool of processes.

The reference is loaded through ``tests/_reference.py`` (its shims for NumPy 2 / current scikit-image), so the
benchmark and the parity tests run the very same code. Every worker is single-threaded (OpenMP/MKL/OpenBLAS
threads = 1, ``cv2.setNumThreads(1)``); ``N`` workers share ``N`` cores, the usual way to run a per-image CPU
library on a multi-core machine (e.g. DataLoader workers).

Only the standard library is imported at module level; NumPy and the reference are imported in the workers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.common import ROOT, summarize_times

__all__ = [
    "REFERENCE_PACKAGES",
    "SINGLE_THREAD_ENV",
    "ReferenceUnavailable",
    "ReferencePool",
    "load_reference",
    "memory_setup",
]

#: Distributions whose versions are recorded in the metadata of a reference run.
REFERENCE_PACKAGES: tuple[str, ...] = ("imagecorruptions", "opencv-python", "scikit-image", "scipy", "Pillow")
#: Environment of every reference worker: one thread per process.
SINGLE_THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}


class ReferenceUnavailable(RuntimeError):
    """The reference package (or one of its dependencies) cannot be loaded."""


def load_reference() -> Any:
    """The ``imagecorruptions`` package, loaded with the shims of ``tests/_reference.py``.

    Raises:
        ReferenceUnavailable: the package or a dependency is missing (the reason is in the message).
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import pytest

    from tests import _reference

    try:
        _reference.imagecorruptions()
    except pytest.skip.Exception as err:
        raise ReferenceUnavailable(str(err)) from None
    import imagecorruptions

    return imagecorruptions


def _single_thread_libs() -> None:
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - the reference itself needs cv2
        pass


# ---------------------------------------------------------------------------------------------------- pool workers
_WORKER: dict[str, Any] = {}


def _init_worker(images: Mapping[int, Sequence[Any]]) -> None:
    _single_thread_libs()
    _WORKER["images"] = images
    try:
        _WORKER["ref"] = load_reference()
    except ReferenceUnavailable as err:
        _WORKER["error"] = str(err)


def _run_one(task: tuple[str, int, int, int, int]) -> tuple[float, tuple[int, ...]]:
    """Corrupt one image in a worker; returns (seconds spent in the reference call, output shape)."""
    import numpy as np

    name, severity, size, index, seed = task
    ref = _WORKER.get("ref")
    if ref is None:
        raise ReferenceUnavailable(_WORKER.get("error", "reference not loaded"))
    images = _WORKER["images"][size]
    img = images[index % len(images)]
    np.random.seed(seed)
    t0 = time.perf_counter()
    out = ref.corrupt(img, severity=severity, corruption_name=name)
    dt = time.perf_counter() - t0
    return dt, tuple(np.shape(out))


class ReferencePool:
    """A ``spawn`` process pool of single-threaded reference workers, kept alive for a whole benchmark run.

    Args:
        processes: number of worker processes (use the number of cores the torch side gets).
        images: ``{size: [uint8 (size, size, 3) arrays]}``; image ``i`` of a pass is ``images[size][i % len]``.

    Example:
        >>> with ReferencePool(2, {32: [img]}) as pool:  # doctest: +SKIP
        ...     pool.time("contrast", 3, 32, n_images=8)["per_image_s"]
    """

    def __init__(self, processes: int, images: Mapping[int, Sequence[Any]]) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.processes = int(processes)
        saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
        os.environ.update(SINGLE_THREAD_ENV)  # inherited by the spawned workers before they import anything
        try:
            self._pool = mp.get_context("spawn").Pool(self.processes, initializer=_init_worker, initargs=(images,))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def __enter__(self) -> ReferencePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers."""
        self._pool.terminate()
        self._pool.join()

    def time(
        self,
        name: str,
        severity: int,
        size: int,
        n_images: int,
        *,
        seed: int = 0,
        min_time: float = 1.0,
        max_passes: int = 10,
    ) -> dict[str, Any]:
        """Time the reference on ``n_images`` images spread over the pool.

        One warm-up pass of ``processes`` images is not timed (imports, OpenCV initialisation). Then passes over
        ``n_images`` images (seeds ``seed + i``) repeat until ``min_time`` seconds or ``max_passes`` passes. Each
        pass gives a per-image time = pass wall time / ``n_images`` (dispatch and inter-process overhead
        included; only the output shape travels back, which favours the reference).

        Returns:
            ``status`` (``"ok"`` or ``"error: ..."``); when ok: ``per_image_s`` (median over passes), ``iqr_s``,
            ``passes``, ``images``, ``processes``, ``worker_s_per_image`` (mean time inside the reference call,
            i.e. single-core time per image) and ``times_s`` (per-image time of each pass).
        """
        tasks = [(name, int(severity), int(size), i, int(seed) + i) for i in range(int(n_images))]
        try:
            self._pool.map(_run_one, tasks[: self.processes], chunksize=1)
            per_image: list[float] = []
            inside: list[float] = []
            total = 0.0
            while not per_image or (total < min_time and len(per_image) < max_passes):
                t0 = time.perf_counter()
                out = self._pool.map(_run_one, tasks, chunksize=1)
                wall = time.perf_counter() - t0
                total += wall
                per_image.append(wall / len(tasks))
                inside.extend(dt for dt, _ in out)
        except Exception as err:  # noqa: BLE001 - any failure of the reference is reported, not raised
            return {"status": f"error: {type(err).__name__}: {err}"}
        s = summarize_times(per_image)
        return {
            "status": "ok",
            "per_image_s": s["median_s"],
            "iqr_s": s["iqr_s"],
            "passes": s["runs"],
            "images": len(tasks),
            "processes": self.processes,
            "worker_s_per_image": statistics.fmean(inside),
            "times_s": s["times_s"],
        }


# ---------------------------------------------------------------------------------------------------- memory probe
def memory_setup(name: str, severity: int, size: int, seed: int = 0) -> Any:
    """Set-up for :func:`benchmarks.common.peak_memory_subprocess`: one reference call on one image.

    Loads the reference and the first benchmark photo at ``size``, runs the call once (warm-up), and returns the
    call to measure.
    """
    import numpy as np

    _single_thread_libs()
    ref = load_reference()
    from tests._helpers import PHOTOS, photo_at

    img = photo_at(PHOTOS[0], int(size))

    def run() -> Any:
        np.random.seed(seed)
        return ref.corrupt(img, severity=int(severity), corruption_name=name)

    run()
    return run
