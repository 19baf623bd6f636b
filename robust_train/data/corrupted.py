"""Datasets for the released corruption / perturbation benchmarks (and for our own exports of them).

Layouts (spec sections 1.2, 3 and 6):

* **CIFAR-10-C / CIFAR-100-C** (``"cifar_c"``): ``<root>/<corruption>.npy`` uint8 (5N, H, W, 3), severities 1..5
  concatenated, plus ``<root>/labels.npy`` with the N test labels repeated 5 times (N labels are accepted too).
* **ImageNet-C / Tiny-ImageNet-C** (``"imagenet_c"``): ``<root>/<corruption>/<severity>/<wnid>/<file>.JPEG``,
  optionally grouped in category folders ``<root>/{noise,blur,weather,digital,extra}/<corruption>/...``.
* **CIFAR-10-P** (``"cifar_p"``): ``<root>/<perturbation>.npy`` uint8 (N, T, H, W, 3); noise perturbations at
  difficulty 2 and 3 are separate files ``<name>_2.npy`` / ``<name>_3.npy``; labels (``labels.npy``) are optional
  because flip metrics do not need them.
* **ImageNet-P / Tiny-ImageNet-P** (``"imagenet_p"``): ``<root>/<perturbation>[_d]/<wnid>/<name>.mp4`` H.264 videos,
  decoded with PyAV.

Every dataset yields ``(x, y, index)`` like the rest of :mod:`robust_train.data`: ``x`` uint8 ``(C, H, W)`` (or
``(T, C, H, W)`` for sequences), ``y`` the int64 label (-1 when unknown), ``index`` the position of the source image
in the clean set, so on-the-fly and released evaluations line up.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import BadFileError, RobustTrainError

__all__ = [
    "CATEGORY_FOLDERS",
    "CifarCDataset",
    "CifarPDataset",
    "CorruptedImageFolder",
    "ImageNetPDataset",
    "ReleasedData",
    "ReleasedDataError",
    "ReleasedFileError",
    "detect_layout",
    "open_released",
    "read_video",
]

CATEGORY_FOLDERS: tuple[str, ...] = ("noise", "blur", "weather", "digital", "extra")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
LAYOUTS: tuple[str, ...] = ("cifar_c", "imagenet_c", "cifar_p", "imagenet_p")


class ReleasedDataError(RobustTrainError, ValueError):
    """A released-data root is incomplete or inconsistent; the message lists every problem found."""


class ReleasedFileError(ReleasedDataError, BadFileError):
    """One file of a released-data root is unreadable (truncated, empty, text, pickled, not an image / video)."""


def _load_npy(path: Path, mmap: bool = True) -> np.ndarray:
    """``np.load`` with errors that name the file (NumPy's say neither which file nor what was expected)."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        size = path.stat().st_size if path.is_file() else 0
        what = "empty file" if size == 0 else f"{type(e).__name__}: {e}"
        raise ReleasedFileError(
            f"{path}: not a readable .npy array ({what}); expected a uint8 NumPy array saved with np.save "
            "(truncated, text or pickled files cannot be used)"
        ) from None


def _problems(root: Path, what: str, problems: list[str]) -> None:
    if problems:
        shown = problems[:40] + ([f"... and {len(problems) - 40} more"] if len(problems) > 40 else [])
        raise ReleasedDataError(f"{what} at {str(root)!r} is incomplete:\n  - " + "\n  - ".join(shown))


def _npy_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    arr = _load_npy(path)
    return tuple(arr.shape), arr.dtype


def _hwc_to_chw(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.array(a, copy=True)).movedim(-1, -3).contiguous()


# ------------------------------------------------------------------------------------------------ CIFAR-10-C
class CifarCDataset(Dataset):
    """One corruption and severity of CIFAR-10-C / CIFAR-100-C (``.npy`` layout).

    Args:
        root: folder holding ``<corruption>.npy`` and ``labels.npy``.
        corruption: corruption name (file stem).
        severity: 1..5.
        transform: optional per-sample callable on the uint8 ``(C, H, W)`` image.

    Raises:
        ReleasedDataError: missing files, a row count not divisible by 5, or labels that do not match.

    Example:
        >>> import tempfile; d = tempfile.mkdtemp()
        >>> np.save(f"{d}/fog.npy", np.zeros((10, 4, 4, 3), np.uint8)); np.save(f"{d}/labels.npy", np.arange(10) % 2)
        >>> x, y, i = CifarCDataset(d, "fog", 2)[1]
        >>> tuple(x.shape), int(y), i
        ((3, 4, 4), 1, 1)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        corruption: str,
        severity: int,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.root = Path(root)
        if int(severity) not in (1, 2, 3, 4, 5):
            raise ValueError(f"severity must be 1..5, got {severity!r}")
        self.corruption, self.severity, self.transform = corruption, int(severity), transform
        n, labels = _check_cifar_c(self.root, [corruption])
        self.n = n
        self.labels = torch.from_numpy(np.array(labels[:n], dtype=np.int64))
        self._path = self.root / f"{corruption}.npy"
        self._data: np.ndarray | None = None

    def _array(self) -> np.ndarray:
        if self._data is None:  # opened lazily so the dataset pickles cheaply into DataLoader workers
            self._data = _load_npy(self._path)
        return self._data

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} images")
        x = _hwc_to_chw(self._array()[(self.severity - 1) * self.n + index])
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[index], index


def _check_cifar_c(root: Path, corruptions: Sequence[str]) -> tuple[int, np.ndarray]:
    """Validate a CIFAR-C root for ``corruptions``; returns (images per severity, labels)."""
    problems: list[str] = []
    if not root.is_dir():
        raise ReleasedDataError(f"released-data root {str(root)!r} does not exist or is not a folder")
    label_path = root / "labels.npy"
    labels = _load_npy(label_path) if label_path.is_file() else None
    if labels is None:
        problems.append("labels.npy (missing)")
    shapes: dict[str, tuple[int, ...]] = {}
    for c in corruptions:
        p = root / f"{c}.npy"
        if not p.is_file():
            problems.append(f"{c}.npy (missing)")
            continue
        shape, dtype = _npy_shape(p)
        if len(shape) != 4 or shape[-1] != 3 or dtype != np.uint8:
            problems.append(f"{c}.npy: expected uint8 (5N, H, W, 3), got {dtype} {shape}")
        elif shape[0] % 5:
            problems.append(f"{c}.npy: {shape[0]} rows is not 5 severities x N images")
        else:
            shapes[c] = shape
    rows = {s[0] for s in shapes.values()}
    if len(rows) > 1:
        problems.append(
            "corruption files disagree on the row count: " + ", ".join(f"{c}={s[0]}" for c, s in shapes.items())
        )
    if labels is not None and rows and len(rows) == 1:
        total = rows.pop()
        if labels.ndim != 1 or labels.shape[0] not in (total, total // 5):
            problems.append(
                f"labels.npy has shape {tuple(labels.shape)} but the corruption files hold {total} rows "
                f"({total // 5} images x 5 severities): expected {total} or {total // 5} labels"
            )
        elif labels.shape[0] == total and not np.array_equal(labels[: total // 5], labels[total // 5 : 2 * total // 5]):
            problems.append("labels.npy is not the test labels repeated 5 times (severity blocks disagree)")
        n = total // 5
    else:
        n = 0
    _problems(root, "CIFAR-C data", problems)
    return n, np.asarray(labels)


# ------------------------------------------------------------------------------------------------ ImageNet-C
def _find_named_dir(root: Path, name: str) -> Path | None:
    direct = root / name
    if direct.is_dir():
        return direct
    for cat in CATEGORY_FOLDERS:
        p = root / cat / name
        if p.is_dir():
            return p
    return None


def _list_images(folder: Path) -> list[str]:
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))


def _decode_image(path: Path) -> Tensor:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return _hwc_to_chw(np.asarray(img.convert("RGB")))
    except (OSError, SyntaxError, ValueError) as e:  # PIL: truncated / not an image (its messages omit the path)
        raise ReleasedFileError(
            f"{path}: cannot decode the image ({type(e).__name__}: {e}); the file is truncated or not an image"
        ) from None


class CorruptedImageFolder(Dataset):
    """One corruption and severity of an ImageNet-C style JPEG tree.

    Args:
        root: the benchmark root (``<root>/<corruption>/<severity>/<wnid>/...``, category folders allowed).
        corruption: corruption name.
        severity: 1..5.
        classes: class folder names in label order (default: the sorted folder names, as ``ImageFolder`` does).
        transform: optional per-sample callable on the decoded uint8 ``(3, H, W)`` image.

    Samples are sorted by (class, file name); ``index`` is that position, identical for every corruption and
    severity of a complete tree.

    Raises:
        ReleasedDataError: the corruption / severity folder is missing or holds class folders not in ``classes``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        corruption: str,
        severity: int,
        classes: Sequence[str] | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.root = Path(root)
        base = _find_named_dir(self.root, corruption)
        folder = None if base is None else base / str(int(severity))
        if folder is None or not folder.is_dir():
            raise ReleasedDataError(
                f"ImageNet-C data at {str(self.root)!r} is incomplete:\n  - {corruption}/{severity} (missing)"
            )
        found = sorted(d.name for d in folder.iterdir() if d.is_dir())
        self.classes = list(classes) if classes is not None else found
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise ReleasedDataError(
                f"{folder}: class folders {unknown[:10]} are not among the {len(self.classes)} classes"
            )
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = [(folder / c / f, self.class_to_idx[c]) for c in found for f in _list_images(folder / c)]
        if not self.samples:
            raise ReleasedDataError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.corruption, self.severity, self.transform = corruption, int(severity), transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        path, y = self.samples[index]
        x = _decode_image(path)
        if self.transform is not None:
            x = self.transform(x)
        return x, torch.tensor(y, dtype=torch.long), index


def _check_imagenet_c(root: Path, corruptions: Sequence[str], severities: Sequence[int]) -> list[str]:
    """Validate a JPEG tree; returns the class list."""
    if not root.is_dir():
        raise ReleasedDataError(f"released-data root {str(root)!r} does not exist or is not a folder")
    problems: list[str] = []
    class_sets: dict[str, tuple[str, ...]] = {}
    counts: dict[str, int] = {}
    for c in corruptions:
        base = _find_named_dir(root, c)
        if base is None:
            problems.append(f"{c}/ (missing corruption folder)")
            continue
        for s in severities:
            folder = base / str(s)
            if not folder.is_dir():
                problems.append(f"{c}/{s}/ (missing severity folder)")
                continue
            classes = tuple(sorted(d.name for d in folder.iterdir() if d.is_dir()))
            class_sets[f"{c}/{s}"] = classes
            counts[f"{c}/{s}"] = sum(len(_list_images(folder / k)) for k in classes)
    if class_sets:
        ref_key = max(class_sets, key=lambda k: len(class_sets[k]))
        ref = set(class_sets[ref_key])
        for k, cs in class_sets.items():
            missing = sorted(ref - set(cs))
            if missing:
                problems.append(f"{k}: {len(missing)} class folder(s) missing, e.g. {missing[:5]}")
        # the count most folders agree on: one extra (or missing) file blames its own folder, not the others
        ref_n = Counter(counts.values()).most_common(1)[0][0]
        for k, n in counts.items():
            if n != ref_n:
                problems.append(f"{k}: {n} images where other folders hold {ref_n}")
    _problems(root, "ImageNet-C data", problems)
    return sorted(set().union(*class_sets.values())) if class_sets else []


# ------------------------------------------------------------------------------------------------ sequences
def _p_stem(name: str, difficulty: int) -> str:
    """File / folder stem of a perturbation: noise types at difficulty 2-3 have a ``_d`` suffix."""
    if int(difficulty) not in (1, 2, 3):
        raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
    return f"{name}_{difficulty}" if "noise" in name and difficulty > 1 else name


class CifarPDataset(Dataset):
    """One perturbation of CIFAR-10-P / CIFAR-100-P (``.npy`` sequences).

    Args:
        root: folder with ``<perturbation>[_d].npy`` files of shape (N, T, H, W, 3) uint8.
        perturbation: name.
        difficulty: 1-3 (selects ``_2`` / ``_3`` files for noise perturbations).
        transform: optional callable on the uint8 ``(T, C, H, W)`` sequence.

    Yields ``(frames uint8 (T, 3, H, W), y, index)`` with ``y`` from ``labels.npy`` when present, else -1.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        perturbation: str,
        difficulty: int = 1,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.root = Path(root)
        self.perturbation, self.difficulty, self.transform = perturbation, int(difficulty), transform
        self.n, self.labels = _check_cifar_p(self.root, [perturbation], self.difficulty)
        self._path = self.root / f"{_p_stem(perturbation, self.difficulty)}.npy"
        self._data: np.ndarray | None = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        if self._data is None:
            self._data = _load_npy(self._path)
        x = _hwc_to_chw(self._data[index])
        if self.transform is not None:
            x = self.transform(x)
        y = -1 if self.labels is None else int(self.labels[index])
        return x, torch.tensor(y, dtype=torch.long), index


def _check_cifar_p(root: Path, perturbations: Sequence[str], difficulty: int) -> tuple[int, Tensor | None]:
    if not root.is_dir():
        raise ReleasedDataError(f"released-data root {str(root)!r} does not exist or is not a folder")
    problems: list[str] = []
    sizes: dict[str, int] = {}
    for p in perturbations:
        path = root / f"{_p_stem(p, difficulty)}.npy"
        if not path.is_file():
            problems.append(f"{path.name} (missing)")
            continue
        shape, dtype = _npy_shape(path)
        if len(shape) != 5 or shape[-1] != 3 or dtype != np.uint8 or shape[1] < 2:
            problems.append(f"{path.name}: expected uint8 (N, T>=2, H, W, 3), got {dtype} {shape}")
        else:
            sizes[p] = shape[0]
    if len(set(sizes.values())) > 1:
        problems.append("sequence files disagree on N: " + ", ".join(f"{k}={v}" for k, v in sizes.items()))
    labels = None
    if (root / "labels.npy").is_file():
        lab = _load_npy(root / "labels.npy", mmap=False)
        n = next(iter(sizes.values()), lab.shape[0])
        if lab.ndim != 1 or lab.shape[0] != n:
            problems.append(f"labels.npy has shape {tuple(lab.shape)}, expected ({n},)")
        labels = torch.from_numpy(lab.astype(np.int64))
    _problems(root, "CIFAR-P data", problems)
    return next(iter(sizes.values()), 0), labels


def read_video(path: str | os.PathLike[str]) -> Tensor:
    """Decode every frame of a video with PyAV.

    Args:
        path: an ``.mp4`` (any container / codec FFmpeg reads).

    Returns:
        uint8 tensor (T, 3, H, W), RGB.

    Raises:
        ImportError: PyAV (``av``) is not installed.
        ReleasedFileError: the file is truncated (fewer frames than its header announces), holds no video frames or
            is not a video (a :class:`ReleasedDataError` and a :class:`~robust_train.errors.BadFileError`).
    """
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a test dependency
        raise ImportError("reading ImageNet-P videos needs PyAV: pip install av") from e
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ReleasedFileError(f"{path}: holds no video stream")
            expected = int(container.streams.video[0].frames or 0)  # 0: the container does not say
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
        if expected and len(frames) < expected:  # a cut file decodes its first frames without an error
            raise ReleasedFileError(f"{path}: truncated video, {len(frames)} of {expected} frames decode")
    except ReleasedFileError:
        raise
    except (av.FFmpegError, IndexError, ValueError, OSError) as e:  # truncated / not a video: name the file
        raise ReleasedFileError(
            f"{path}: cannot decode the video ({type(e).__name__}: {e}); truncated or not a video file"
        ) from None
    if not frames:
        raise ReleasedFileError(f"{path}: no video frames")
    return _hwc_to_chw(np.stack(frames))


class ImageNetPDataset(Dataset):
    """One perturbation of ImageNet-P / Tiny-ImageNet-P (``<root>/<perturbation>[_d]/<wnid>/*.mp4``).

    Args:
        root: benchmark root.
        perturbation: name.
        difficulty: 1-3 (``_2`` / ``_3`` folders for noise perturbations).
        classes: class folder names in label order (default: sorted folder names).
        transform: optional callable on the uint8 ``(T, 3, H, W)`` sequence.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        perturbation: str,
        difficulty: int = 1,
        classes: Sequence[str] | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.root = Path(root)
        stem = _p_stem(perturbation, difficulty)
        folder = _find_named_dir(self.root, stem)
        if folder is None:
            raise ReleasedDataError(f"ImageNet-P data at {str(self.root)!r} is incomplete:\n  - {stem}/ (missing)")
        found = sorted(d.name for d in folder.iterdir() if d.is_dir())
        self.classes = list(classes) if classes is not None else found
        idx = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted(set(found) - set(idx))
        if unknown:
            raise ReleasedDataError(f"{folder}: class folders {unknown[:10]} are not among the {len(idx)} classes")
        self.samples = [
            (folder / c / f, idx[c]) for c in found for f in sorted(os.listdir(folder / c)) if f.endswith(".mp4")
        ]
        if not self.samples:
            raise ReleasedDataError(f"{folder} holds no .mp4 sequences")
        self.perturbation, self.difficulty, self.transform = perturbation, int(difficulty), transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        path, y = self.samples[index]
        x = read_video(path)
        if self.transform is not None:
            x = self.transform(x)
        return x, torch.tensor(y, dtype=torch.long), index


# ------------------------------------------------------------------------------------------------ roots
def detect_layout(root: str | os.PathLike[str]) -> str:
    """Guess the layout of a released-data root: ``"cifar_c"``, ``"imagenet_c"``, ``"cifar_p"`` or ``"imagenet_p"``.

    Raises:
        ReleasedDataError: the folder does not exist or matches no layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise ReleasedDataError(f"released-data root {str(root)!r} does not exist or is not a folder")
    npys = sorted(p for p in root.glob("*.npy") if p.name != "labels.npy")
    if npys:
        # (N, T, H, W, 3) sequences are CIFAR-P; anything else is CIFAR-C, whose check then reports a bad shape
        return "cifar_p" if len(_npy_shape(npys[0])[0]) == 5 else "cifar_c"
    if (root / "labels.npy").is_file():  # labels but no corruption files: report them as missing
        return "cifar_c"
    candidates = [d for d in root.iterdir() if d.is_dir()]
    for d in list(candidates):
        if d.name in CATEGORY_FOLDERS:
            candidates.extend(x for x in d.iterdir() if x.is_dir())
    for d in candidates:
        subs = [x for x in d.iterdir() if x.is_dir()]
        if any(x.name in ("1", "2", "3", "4", "5") for x in subs):
            return "imagenet_c"
        if any(f.suffix == ".mp4" for x in subs for f in x.iterdir()):
            return "imagenet_p"
    raise ReleasedDataError(
        f"{str(root)!r} matches no known layout: expected <corruption>.npy + labels.npy (CIFAR-C), "
        "<corruption>/<severity>/<class>/*.JPEG (ImageNet-C), <perturbation>.npy sequences (CIFAR-P) or "
        "<perturbation>/<class>/*.mp4 (ImageNet-P)"
    )


class ReleasedData:
    """A validated released-data root: builds the per-(name, severity) datasets of an evaluation.

    Args:
        root: benchmark root.
        names: corruptions (C layouts) or perturbations (P layouts) that must be present.
        severities: severities that must be present (C layouts).
        layout: one of ``"cifar_c"``, ``"imagenet_c"``, ``"cifar_p"``, ``"imagenet_p"`` or ``"auto"``.
        difficulty: ImageNet-P difficulty (P layouts).
        classes: class folder names in label order for the folder layouts (default: sorted names found).

    Raises:
        ReleasedDataError: anything missing or inconsistent, every problem listed in one message.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        names: Sequence[str],
        severities: Sequence[int] = (1, 2, 3, 4, 5),
        layout: str = "auto",
        difficulty: int = 1,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.layout = detect_layout(self.root) if layout == "auto" else layout
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; expected 'auto' or one of {list(LAYOUTS)}")
        self.names, self.severities, self.difficulty = list(names), [int(s) for s in severities], int(difficulty)
        self.kind = "c" if self.layout.endswith("_c") else "p"
        self.classes = list(classes) if classes is not None else None
        if self.layout == "cifar_c":
            self.num_images, _ = _check_cifar_c(self.root, self.names)
        elif self.layout == "imagenet_c":
            found = _check_imagenet_c(self.root, self.names, self.severities)
            self.classes = self.classes or found
        elif self.layout == "cifar_p":
            self.num_images, _ = _check_cifar_p(self.root, self.names, self.difficulty)
        else:
            missing = [
                f"{_p_stem(n, self.difficulty)}/ (missing)"
                for n in self.names
                if _find_named_dir(self.root, _p_stem(n, self.difficulty)) is None
            ]
            _problems(self.root, "ImageNet-P data", missing)

    def dataset(
        self, name: str, severity: int | None = None, transform: Callable[[Tensor], Tensor] | None = None
    ) -> Dataset:
        """The dataset of one corruption and severity (C) or one perturbation (P)."""
        if self.layout == "cifar_c":
            return CifarCDataset(self.root, name, int(severity or 0), transform)
        if self.layout == "imagenet_c":
            return CorruptedImageFolder(self.root, name, int(severity or 0), self.classes, transform)
        if self.layout == "cifar_p":
            return CifarPDataset(self.root, name, self.difficulty, transform)
        return ImageNetPDataset(self.root, name, self.difficulty, self.classes, transform)


def open_released(
    root: str | os.PathLike[str],
    names: Sequence[str],
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    layout: str = "auto",
    difficulty: int = 1,
) -> ReleasedData:
    """Validate ``root`` and return a :class:`ReleasedData` (see there)."""
    return ReleasedData(root, names, severities, layout, difficulty)
