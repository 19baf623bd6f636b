"""``EvalSuite``: what a corrupted (ImageNet-C style) or perturbed (ImageNet-P style) evaluation runs.

The YAML files in ``robust_train/conf/eval/`` are the canonical suites; each one instantiates this dataclass
(``_target_``), so a suite can equally be built in Python:

>>> s = EvalSuite(name="mini", corruptions=["contrast", "fog"], severities=[1, 5], num_images=100)
>>> s.names, s.kind
(['contrast', 'fog'], 'c')
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..corruptions.base import resolve_preset
from ..corruptions.suites import SUITES
from ..metrics.baselines import Baseline
from ..metrics.stability import P_SUITES

__all__ = ["EvalSuite", "P_SUITES", "load_suite", "resolve_names", "suite_config_dir", "suite_files"]


def resolve_names(names: str | Sequence[str], kind: str) -> list[str]:
    """A suite name (``"c15"``, ``"p10"``, ...) or an explicit list -> list of names.

    Example:
        >>> resolve_names("p10", "p")[:3]
        ['gaussian_noise', 'shot_noise', 'motion_blur']
    """
    table = SUITES if kind == "c" else P_SUITES
    if isinstance(names, str):
        if names not in table:
            raise ValueError(f"unknown {kind}-suite {names!r}; expected a list of names or one of {sorted(table)}")
        return list(table[names])
    out = [str(n) for n in names]
    if not out or len(set(out)) != len(out):
        raise ValueError(f"expected a non-empty list of distinct names, got {list(names)}")
    return out


@dataclass
class EvalSuite:
    """A named, replayable robustness evaluation.

    Args:
        name: suite name (used in file names and reports).
        kind: ``"c"`` (corruptions x severities, top-1 error, CE / mCE) or ``"p"`` (perturbation sequences,
            flip probability, top-5 distance, FR / mFR / mT5D).
        corruptions: names, or a named list (``"c15"``, ``"c19"`` for kind c; ``"p10"``, ``"p14"`` for kind p).
        severities: corruption severities 1-5 (kind c).
        preset: ``"auto"`` (from the image size), ``"imagenet"``, ``"tinyimagenet"`` or ``"cifar"``.
        num_images: evaluate a fixed subset of this many images (chosen by ``seed``); ``None`` = all.
        seed: evaluation seed: picks the subset and every corruption parameter (with the sample index).
        emulate_release: reproduce the released files. Kind c: ImageNet-C / Tiny-ImageNet-C's JPEG round trip at
            ``jpeg_quality``. Kind p: ImageNet-P / Tiny-ImageNet-P's H.264 videos (libx264 ``-preset veryslow``,
            ``-tune grain`` for noise types, CRF 20 for the others, yuv444p; PyAV, CPU, 0.6-4 s per 31-frame
            224-px sequence and core, :mod:`robust_train.sequences.h264`). ImageNet and Tiny-ImageNet presets
            only: CIFAR-10-C / -P are stored as raw uint8. Corrupted images and sequence frames are always
            truncated to 8 bit as the originals were.
        jpeg_quality: quality of the emulated JPEG files (the originals used 85).
        context: kind p: generate the sequences from the data module's uncropped context image and centre-crop
            the frames to the evaluated size, as ImageNet-P was made (``Resize(256)`` image, ``crop=224``; see
            ``eval_context`` of the data modules). Without a context (the data module offers none, or ``False``)
            the evaluated images themselves are perturbed and black borders enter where the original showed
            content (tilt's perspective also differs). Kind c ignores it.
        difficulty: ImageNet-P difficulty 1-3 (noise strength for noise sequences, frame stride otherwise).
        baseline: normaliser: ``"alexnet"`` (published ImageNet-C table, kind c), a baseline JSON path, or
            ``None``.
        clean: also measure the clean error (needed for relative mCE).
        batch_size: images per forward pass (kind p: sequences per chunk).
        description: free text.
    """

    name: str
    kind: str = "c"
    corruptions: str | list[str] = "c15"
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    preset: str = "auto"
    num_images: int | None = None
    seed: int = 0
    emulate_release: bool = False
    jpeg_quality: int = 85
    context: bool = True
    difficulty: int = 1
    baseline: str | None = "alexnet"
    clean: bool = True
    batch_size: int = 128
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("c", "p"):
            raise ValueError(f"kind must be 'c' (corruptions) or 'p' (perturbation sequences), got {self.kind!r}")
        if not isinstance(self.corruptions, str):
            self.corruptions = [str(c) for c in self.corruptions]
        self.names = resolve_names(self.corruptions, self.kind)
        self.severities = [int(s) for s in self.severities]
        if self.kind == "c" and (not self.severities or any(s not in (1, 2, 3, 4, 5) for s in self.severities)):
            raise ValueError(f"severities must be ints in 1..5, got {self.severities}")
        if self.preset != "auto" and self.preset not in ("imagenet", "tinyimagenet", "cifar"):
            raise ValueError(f"unknown preset {self.preset!r}; expected 'auto', 'imagenet', 'tinyimagenet' or 'cifar'")
        if self.num_images is not None and int(self.num_images) < 1:
            raise ValueError(f"num_images must be a positive int or None, got {self.num_images!r}")
        if int(self.difficulty) not in (1, 2, 3):
            raise ValueError(f"difficulty must be 1, 2 or 3, got {self.difficulty!r}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size!r}")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality!r}")
        self.num_images = None if self.num_images is None else int(self.num_images)
        self.difficulty, self.batch_size, self.seed = int(self.difficulty), int(self.batch_size), int(self.seed)
        self.context = bool(self.context)
        if self.kind == "p" and self.baseline == "alexnet":
            # Published AlexNet numbers exist for ImageNet-C only; ImageNet-P needs a user-computed baseline file.
            self.baseline = None

    # ------------------------------------------------------------------------------------------------ helpers
    def subset(self, n_total: int) -> list[int]:
        """Positions ``0 <= p < n_total`` of the evaluated images: all, or a seeded random subset (sorted).

        Example:
            >>> EvalSuite("s", num_images=3, seed=1).subset(10) == EvalSuite("s", num_images=3, seed=1).subset(10)
            True
        """
        if n_total < 1:
            raise ValueError("the evaluation dataset is empty")
        if self.num_images is None or self.num_images >= n_total:
            return list(range(n_total))
        perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(self.seed))
        return sorted(perm[: self.num_images].tolist())

    def preset_for(self, height: int, width: int) -> str:
        """The preset used for images of this size (:func:`~robust_train.corruptions.base.resolve_preset`)."""
        return resolve_preset(self.preset, height, width)

    def release_jpeg_quality(self, preset: str) -> int | None:
        """JPEG quality of the emulated release for a resolved preset, or ``None`` (no JPEG)."""
        if not self.emulate_release or self.kind != "c" or preset == "cifar":
            return None
        return self.jpeg_quality

    def release_h264(self, preset: str) -> bool:
        """Whether kind-p sequences of a resolved preset go through the released videos' H.264 round trip."""
        return self.emulate_release and self.kind == "p" and preset != "cifar"

    def load_baseline(self) -> Baseline | None:
        """The baseline object (``None`` when unset)."""
        from ..metrics.baselines import resolve_baseline

        return resolve_baseline(self.baseline)

    def to_dict(self) -> dict[str, Any]:
        """Plain fields (for JSON reports and the export manifest)."""
        d = asdict(self)
        d["names"] = list(self.names)
        return d

    def fingerprint(self) -> str:
        """Short hash of every field that changes the evaluated images (not batch size or description)."""
        d = self.to_dict()
        for k in ("batch_size", "description", "baseline", "clean", "name"):
            d.pop(k, None)
        if self.kind == "c":
            d.pop("context", None)  # kind c ignores it: fingerprints of corruption suites are unchanged
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _find_suite_node(node: Any) -> dict[str, Any] | None:
    if isinstance(node, dict):
        if str(node.get("_target_", "")).endswith("EvalSuite"):
            return node
        for v in node.values():
            found = _find_suite_node(v)
            if found is not None:
                return found
    return None


def suite_config_dir() -> Path:
    """``robust_train/conf/eval``: the packaged suites' YAML files (user suites: :func:`suite_files`)."""
    from ..cli import CONFIG_DIR

    return Path(CONFIG_DIR) / "eval"


def suite_files() -> dict[str, Path]:
    """Every ``eval/<name>.yaml`` on the config search path (user config folders first, then the packaged ones)."""
    from ..cli import find_config_files

    return find_config_files("eval")


def load_suite(name_or_path: str | os.PathLike[str], **overrides: Any) -> EvalSuite:
    """Build the :class:`EvalSuite` of an ``eval/<name>.yaml`` config (or any YAML path) without Hydra.

    Names are looked up like Hydra does: in the user config folders (``./conf/eval``, ``ROBUST_TRAIN_CONFIG_DIR``)
    first, then in the packaged ``robust_train/conf/eval``. The file may hold the suite at top level or nested (for
    example inside its evaluation callback); the first mapping whose ``_target_`` is ``EvalSuite`` is used.

    Args:
        name_or_path: suite name (``"c15"``) or path to a YAML file.
        **overrides: field values replacing the file's (``num_images=50``).

    Raises:
        FileNotFoundError: no such suite (the message lists the available ones).
        ValueError: the file holds no ``EvalSuite`` node.
    """
    import yaml

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        files = suite_files()
        if str(name_or_path) not in files:
            raise FileNotFoundError(f"no evaluation suite {str(name_or_path)!r}; available: {sorted(files)}")
        path = files[str(name_or_path)]
    if not path.is_file():
        raise FileNotFoundError(f"no evaluation suite file {str(path)!r}")
    with open(path) as f:
        node = _find_suite_node(yaml.safe_load(f) or {})
    if node is None:
        raise ValueError(f"{path} holds no node with _target_: robust_train.evaluation.EvalSuite")
    fields = {k: v for k, v in node.items() if k != "_target_"}
    fields.update(overrides)
    return EvalSuite(**fields)
