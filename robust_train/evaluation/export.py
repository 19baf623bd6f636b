"""Write a corrupted copy of a dataset to disk in the released layouts (``robust-corrupt export``).

* ``layout="cifar_c"``: ``<out>/<corruption>.npy`` uint8 (5N, H, W, 3), severity-major, and ``<out>/labels.npy``
  (N labels repeated 5 times), exactly like CIFAR-10-C.
* ``layout="imagenet_c"``: ``<out>/<corruption>/<severity>/<class>/<file>.JPEG`` saved with PIL at quality 85,
  ``optimize=True`` (4:2:0), like ImageNet-C / Tiny-ImageNet-C.

Every corrupted image is the one on-the-fly evaluation sees: parameters come from
``Corruption.params_for_indices(dataset index, suite.seed)`` and the output is truncated to 8 bit.

Resumable and atomic: ``.npy`` files are filled through a memory map named ``.<name>.npy.partial`` whose progress
(rows written, in order) is recorded in ``.<name>.npy.progress`` after each flushed batch; the finished array is
renamed into place with ``os.replace``. JPEGs are written to a temporary name and renamed, so a file that exists is
complete and a re-run skips it. ``export_manifest.json`` pins the suite: resuming with different settings fails.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from ..corruptions.api import create_corruption
from ..corruptions.base import Corruption
from ..errors import ArgumentError, OutputPathError, RobustTrainError
from ._io import atomic_write, atomic_write_text, remove_orphaned_temporaries
from .engine import to_unit
from .progress import ProgressReporter, format_seconds
from .suite import EvalSuite

__all__ = ["EXPORT_LAYOUTS", "ExportError", "export_dataset", "source_file_name"]

EXPORT_LAYOUTS = ("cifar_c", "imagenet_c")
MANIFEST = "export_manifest.json"


class ExportError(RobustTrainError, RuntimeError):
    """The output folder holds an export made with different settings."""


def source_file_name(dataset: Dataset, position: int, index: int) -> str:
    """File name for an exported JPEG: the source file's stem when the dataset knows it, else the index.

    Unwraps ``torch.utils.data.Subset`` chains and looks for an ``ImageFolder``-style ``samples`` list.
    """
    ds, pos = dataset, position
    while isinstance(ds, Subset):
        pos = int(ds.indices[pos])
        ds = ds.dataset
    samples = getattr(ds, "samples", None)
    if isinstance(samples, Sequence) and 0 <= pos < len(samples):
        entry = samples[pos]
        path = entry[0] if isinstance(entry, (tuple, list)) else entry
        if isinstance(path, (str, os.PathLike)):
            return Path(path).stem + ".JPEG"
    return f"{index:08d}.JPEG"


def _class_names(dataset: Dataset) -> list[str] | None:
    ds = dataset
    while isinstance(ds, Subset):
        ds = ds.dataset
    classes = getattr(ds, "classes", None)
    return [str(c) for c in classes] if isinstance(classes, Sequence) and classes else None


def _sample(dataset: Dataset, position: int) -> tuple[Any, Any, int]:
    """``(x, y, index)`` of a dataset yielding ``(x, y, index)`` or ``(x, y)`` (index = position)."""
    sample = dataset[int(position)]
    if isinstance(sample, (tuple, list)) and len(sample) == 2:
        return sample[0], sample[1], int(position)
    if isinstance(sample, (tuple, list)) and len(sample) == 3:
        return sample[0], sample[1], int(sample[2])
    raise ValueError(f"export needs a dataset yielding (x, y) or (x, y, index), got {type(sample).__name__}")


def _load(dataset: Dataset, positions: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    xs, ys, idx = [], [], []
    for p in positions:
        x, y, i = _sample(dataset, p)
        xs.append(torch.as_tensor(x))
        ys.append(int(y))
        idx.append(int(i))
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long), torch.tensor(idx, dtype=torch.long)


def _to_uint8_hwc(x: Tensor) -> np.ndarray:
    # outputs are truncated to multiples of 1/255 already; rounding only removes float noise
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _chunks(seq: Sequence[int], size: int) -> Iterator[tuple[int, Sequence[int]]]:
    for lo in range(0, len(seq), size):
        yield lo, seq[lo : lo + size]


def _check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    path = out / MANIFEST
    if path.is_file():
        with open(path) as f:
            old = json.load(f)
        keys = ("layout", "fingerprint", "num_images", "positions_sha")
        diff = [k for k in keys if old.get(k) != manifest.get(k)]
        if diff:
            raise ExportError(
                f"{out} holds an export with different settings ({', '.join(diff)} differ: "
                f"{ {k: old.get(k) for k in diff} } vs { {k: manifest.get(k) for k in diff} }); "
                "use a new output folder or delete the old export"
            )
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True))


def export_dataset(
    dataset: Dataset,
    out_dir: str | os.PathLike[str],
    suite: EvalSuite,
    layout: str = "cifar_c",
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    progress: bool = True,
    classes: Sequence[str] | None = None,
) -> Path:
    """Corrupt ``dataset`` with every (corruption, severity) of ``suite`` and write the released layout.

    Args:
        dataset: yields ``(x, y, index)`` or ``(x, y)`` (index = position) with ``x`` uint8 or float in [0, 1], shape
            (C, H, W), C in {1, 3}.
        out_dir: output folder (created).
        suite: corruptions, severities, preset, ``num_images`` subset and ``seed`` (kind ``"c"``).
        layout: ``"cifar_c"`` (needs severities 1-5) or ``"imagenet_c"``.
        device: where the corruptions run.
        batch_size: images per corruption call (default ``suite.batch_size``).
        progress: show a progress bar (on interactive terminals only); a log line per finished corruption is
            always emitted (``robust_train.evaluation`` logger).
        classes: class folder names for ``imagenet_c`` (default: the dataset's ``classes`` or zero-padded labels).

    Returns:
        The output folder.

    Raises:
        ValueError: bad layout / suite combination, empty ``out_dir``, ``batch_size < 1``.
        ExportError: the folder holds an export with different settings.
        OutputPathError: the output path is a file or read-only, or the disk is (or becomes) too full; the export
            can be resumed after freeing space.
    """
    if layout not in EXPORT_LAYOUTS:
        raise ValueError(f"layout must be one of {list(EXPORT_LAYOUTS)}, got {layout!r}")
    if suite.kind != "c":
        raise ValueError("export writes corruption suites (kind 'c'); perturbation sequences are not exported")
    if layout == "cifar_c" and suite.severities != [1, 2, 3, 4, 5]:
        raise ValueError(f"the cifar_c layout stores severities 1-5 in one array; the suite has {suite.severities}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ArgumentError(f"batch_size: expected a positive int, got {batch_size!r}")
    out = _prepare_output(out_dir)
    positions = suite.subset(len(dataset))  # type: ignore[arg-type]
    manifest = {
        "layout": layout,
        "suite": suite.to_dict(),
        "fingerprint": suite.fingerprint(),
        "num_images": len(positions),
        "positions_sha": _sha(positions),
    }
    try:
        _check_manifest(out, manifest)
    except PermissionError as e:
        raise OutputPathError(f"cannot write to the output folder {out}: permission denied") from e
    remove_orphaned_temporaries(out)  # temporary files of an earlier, killed run
    bs = int(batch_size or suite.batch_size)
    ops: dict[tuple[str, int], Corruption] = {}

    def corrupt(name: str, severity: int, x: Tensor, idx: Tensor) -> Tensor:
        preset = suite.preset_for(int(x.shape[-2]), int(x.shape[-1]))
        key = (name, severity)
        if key not in ops:
            ops[key] = create_corruption(name, severity=severity, preset=preset, quantize=True)
        op = ops[key]
        return op(x, op.params_for_indices(idx, suite.seed))

    total = len(positions) * len(suite.names) * len(suite.severities)
    bar = ProgressReporter(total, f"export {suite.name}", bar=progress)
    try:
        _check_free_space(dataset, out, suite, positions, layout)
        if layout == "cifar_c":
            _export_cifar(dataset, out, suite, positions, bs, torch.device(device), corrupt, bar)
        else:
            names = list(classes) if classes is not None else _class_names(dataset)
            _export_folder(dataset, out, suite, positions, bs, torch.device(device), corrupt, bar, names)
    except OSError as e:
        if isinstance(e, RobustTrainError) or e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
            raise
        why = "no space left on the device" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "permission denied"
        raise OutputPathError(
            f"export to {out} failed: {why} ({e.filename or out}); free space or choose another --out, then re-run "
            "to resume"
        ) from e
    finally:
        bar.close()
    return out


def _prepare_output(out_dir: str | os.PathLike[str]) -> Path:
    """Create the output folder, with clear errors for an empty path, a file in the way or a read-only parent."""
    if not isinstance(out_dir, (str, os.PathLike)) or not os.fspath(out_dir).strip():
        raise ArgumentError(f"out_dir: expected a folder path, got {out_dir!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"output path {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:  # a parent is a file
        parent = next((p for p in out.parents if p.exists() and not p.is_dir()), e.filename)
        raise OutputPathError(f"cannot create the output folder {out}: {parent} is a file") from e
    except PermissionError as e:
        raise OutputPathError(f"cannot create the output folder {out}: permission denied ({e.filename})") from e
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write to the output folder {out}: permission denied")
    return out


def _needed_bytes(dataset: Dataset, out: Path, suite: EvalSuite, positions: Sequence[int], layout: str) -> int:
    """Bytes the export still has to write (exact for ``cifar_c``; a low estimate of JPEG sizes for ``imagenet_c``)."""
    x = torch.as_tensor(dataset[int(positions[0])][0])
    per_image = int(x.shape[-2]) * int(x.shape[-1]) * 3
    n = len(positions)
    if layout == "cifar_c":
        todo = 0
        for name in suite.names:
            if (out / f"{name}.npy").is_file():
                continue
            partial = out / f".{name}.npy.partial"
            size = 5 * n * per_image + 128
            todo += size - (partial.stat().st_blocks * 512 if partial.is_file() else 0)
        return max(todo, 0)
    # JPEG q85 of a corrupted photo: rarely below 1/20 of the raw size; a lower bound, not a promise
    return len(suite.names) * len(suite.severities) * n * per_image // 20


def _check_free_space(dataset: Dataset, out: Path, suite: EvalSuite, positions: Sequence[int], layout: str) -> None:
    need = _needed_bytes(dataset, out, suite, positions, layout)
    free = shutil.disk_usage(out).free
    if need > free:
        raise OutputPathError(
            f"not enough free space in {out}: the export needs about {_human(need)}, {_human(free)} are free"
        )


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _allocate(path: Path, nbytes: int) -> None:
    """Reserve ``nbytes`` of disk for ``path`` so that writing through a memory map cannot hit a full disk.

    A sparse file behind a memory map turns ENOSPC into SIGBUS; after this, the writes only touch allocated blocks.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            os.posix_fallocate(fd, 0, nbytes)
            return
        except AttributeError:  # no posix_fallocate on this platform
            pass
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise OSError(e.errno, e.strerror, str(path)) from e
        # fallback: write the zeros of every block that is still a hole (reads of the existing bytes keep them)
        block = 1 << 22
        with os.fdopen(os.dup(fd), "r+b") as f:
            for off in range(0, nbytes, block):
                f.seek(off)
                chunk = f.read(min(block, nbytes - off))
                if not any(chunk):
                    f.seek(off)
                    f.write(bytes(min(block, nbytes - off)))
            f.flush()
            os.fsync(f.fileno())
    finally:
        os.close(fd)


def _sha(positions: Sequence[int]) -> str:
    import hashlib

    return hashlib.sha1(np.asarray(positions, dtype=np.int64).tobytes()).hexdigest()[:16]


def _export_cifar(dataset, out, suite, positions, bs, device, corrupt, bar) -> None:  # noqa: ANN001
    n = len(positions)
    labels_path = out / "labels.npy"
    first = None
    if not labels_path.is_file():
        ys = [int(_sample(dataset, p)[1]) for p in positions]
        labels = np.tile(np.asarray(ys, dtype=np.uint8 if max(ys) < 256 else np.int64), 5)
        atomic_write(labels_path, lambda f: np.save(f, labels))
    for name in suite.names:
        final = out / f"{name}.npy"
        if final.is_file():
            bar.advance(5 * n, f"{name} (done)")
            bar.item_done(f"{name}: already exported ({final})")
            continue
        start = time.perf_counter()
        partial = out / f".{name}.npy.partial"
        prog = out / f".{name}.npy.progress"
        done = int(prog.read_text()) if (prog.is_file() and partial.is_file()) else 0
        if first is None:
            first = _load(dataset, positions[:1])[0]
        h, w = int(first.shape[-2]), int(first.shape[-1])
        shape = (5 * n, h, w, 3)
        if not (done and partial.is_file()):
            del_mm = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)  # header + sparse body
            del del_mm
        try:
            _allocate(partial, partial.stat().st_size)  # a full disk is an OSError here, never a SIGBUS in the loop
        except OSError:
            if not done:  # nothing written yet: give back whatever the failed allocation took
                partial.unlink(missing_ok=True)
            raise
        mm = np.lib.format.open_memmap(partial, mode="r+", dtype=np.uint8, shape=shape)
        bar.advance(done, name)
        for s in suite.severities:
            for lo, chunk in _chunks(positions, bs):
                row = (s - 1) * n + lo
                if row + len(chunk) <= done:
                    continue
                x, _, idx = _load(dataset, chunk)
                y = corrupt(name, s, to_unit(x, device), idx)
                mm[row : row + len(chunk)] = _to_uint8_hwc(y)
                mm.flush()
                atomic_write_text(prog, str(row + len(chunk)))
                bar.advance(len(chunk), f"{name} s{s}")
        del mm
        os.replace(partial, final)
        prog.unlink(missing_ok=True)
        bar.item_done(
            f"{name}: {5 * n} images written to {final.name} in {format_seconds(time.perf_counter() - start)}"
        )


def _export_folder(dataset, out, suite, positions, bs, device, corrupt, bar, classes) -> None:  # noqa: ANN001
    from PIL import Image

    labels: dict[int, int] = {}
    names: dict[int, str] = {}
    for name in suite.names:
        start, written = time.perf_counter(), 0
        for s in suite.severities:
            folder = out / name / str(s)
            todo: list[int] = []
            for pos in positions:
                if pos not in labels:
                    _, y, i = _sample(dataset, pos)
                    labels[pos] = int(y)
                    names[pos] = source_file_name(dataset, int(pos), int(i))
                if not (folder / _class_dir(labels[pos], classes) / names[pos]).is_file():
                    todo.append(pos)
            bar.advance(len(positions) - len(todo), f"{name} s{s}")
            for _, chunk in _chunks(todo, bs):
                x, _, idx = _load(dataset, chunk)
                imgs = _to_uint8_hwc(corrupt(name, s, to_unit(x, device), idx))
                for pos, img in zip(chunk, imgs, strict=True):
                    path = folder / _class_dir(labels[pos], classes) / names[pos]
                    pil = Image.fromarray(img)
                    atomic_write(path, lambda f, im=pil: im.save(f, "JPEG", quality=85, optimize=True))
                bar.advance(len(chunk), f"{name} s{s}")
                written += len(chunk)
        bar.item_done(f"{name}: {written} images written in {format_seconds(time.perf_counter() - start)}")


def _class_dir(label: int, classes: Sequence[str] | None) -> str:
    if classes is not None and 0 <= label < len(classes):
        return str(classes[label])
    return f"{label:04d}"
