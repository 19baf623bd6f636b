"""Baseline (normaliser) errors for CE / mCE / FR / T5D, and JSON baseline files.

The AlexNet ImageNet-C table below is data, not code: per-corruption, per-severity top-1 errors of torchvision's
AlexNet (weights ``alexnet-owt-4df8aa71``) on the *released* ImageNet-C JPEGs, as published in the README of
``hendrycks/robustness`` (table added in commit ``76d9393``, 2019-10-10, removed in ``5aa129e``), also quoted in
robustness issue #10; the 15 benchmark averages are hard-coded in ``google-research/augmix/imagenet.py``.
Copied from section 7.1 of ``shared/spec/imagenet_c_p.md``.

No AlexNet numbers exist for ImageNet-P (only an external spreadsheet), for regenerated ImageNet-C, or for any
other dataset. Users compute them: ``robust-eval`` on a torchvision AlexNet checkpoint they supply writes a
baseline JSON file (:meth:`Baseline.save`), which later evaluations load with ``baseline=<path>``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "ALEXNET",
    "ALEXNET_CLEAN_ERROR",
    "ALEXNET_IMAGENET_C_ERRORS",
    "BASELINE_FORMAT",
    "Baseline",
    "resolve_baseline",
]

#: AlexNet top-1 error on released ImageNet-C, per corruption, severities 1..5 (source: module docstring).
ALEXNET_IMAGENET_C_ERRORS: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
    "speckle_noise": (0.66192, 0.74440, 0.90246, 0.94548, 0.97268),
    "gaussian_blur": (0.54732, 0.70444, 0.82574, 0.89864, 0.95940),
    "spatter": (0.47196, 0.62194, 0.75052, 0.84132, 0.90182),
    "saturate": (0.59342, 0.65514, 0.51174, 0.70834, 0.82260),
}

#: AlexNet clean top-1 error on the ImageNet validation set: torchvision documents 56.522% top-1 accuracy for
#: ``alexnet-owt-4df8aa71`` (the paper rounds to 43.5%).
ALEXNET_CLEAN_ERROR: float = 1.0 - 0.56522

BASELINE_FORMAT = "robust_train.baseline/1"


@dataclass
class Baseline:
    """Normalising errors of a reference model (AlexNet by convention).

    Args:
        name: model name, for reports.
        errors: corruption -> {severity: top-1 error in [0, 1]} (ImageNet-C style).
        clean_error: clean top-1 error, for relative CE; ``None`` when unknown.
        fp: perturbation -> flip probability (ImageNet-P style).
        t5d: perturbation -> mean top-5 distance.
        difficulty: ImageNet-P difficulty the ``fp`` / ``t5d`` values were measured at.
        meta: free-form provenance (data, suite, preset, seed, checkpoint, ...).

    Example:
        >>> b = Baseline("toy", errors={"fog": {1: 0.5, 2: 0.6}})
        >>> b.error_table(["fog"], [1, 2]).tolist()
        [[0.5, 0.6]]
    """

    name: str
    errors: dict[str, dict[int, float]] = field(default_factory=dict)
    clean_error: float | None = None
    fp: dict[str, float] = field(default_factory=dict)
    t5d: dict[str, float] = field(default_factory=dict)
    difficulty: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.errors = {str(c): {int(s): float(v) for s, v in row.items()} for c, row in self.errors.items()}
        self.fp = {str(k): float(v) for k, v in self.fp.items()}
        self.t5d = {str(k): float(v) for k, v in self.t5d.items()}
        for c, row in self.errors.items():
            for s, v in row.items():
                if not (0.0 <= v <= 1.0) or math.isnan(v):
                    raise ValueError(f"baseline {self.name!r}: error of {c} severity {s} must be in [0, 1], got {v}")

    def error_table(self, corruptions: Sequence[str], severities: Sequence[int]) -> Tensor:
        """Errors as a (C, S) float64 tensor.

        Raises:
            ValueError: some (corruption, severity) has no baseline value; the message lists all of them.
        """
        missing = [f"{c}/s{s}" for c in corruptions for s in severities if int(s) not in self.errors.get(c, {})]
        if missing:
            raise ValueError(
                f"baseline {self.name!r} has no error for {', '.join(missing)}; it covers "
                f"{sorted(self.errors) or 'no corruptions'}"
            )
        return torch.tensor([[self.errors[c][int(s)] for s in severities] for c in corruptions], dtype=torch.float64)

    def stability_table(self, perturbations: Sequence[str], difficulty: int) -> tuple[Tensor, Tensor]:
        """``(fp, t5d)`` as two (P,) float64 tensors.

        Raises:
            ValueError: missing perturbations, or the baseline was measured at another difficulty.
        """
        if self.difficulty is not None and int(self.difficulty) != int(difficulty):
            raise ValueError(
                f"baseline {self.name!r} was measured at difficulty {self.difficulty}, evaluation uses {difficulty}"
            )
        missing = [p for p in perturbations if p not in self.fp or p not in self.t5d]
        if missing:
            raise ValueError(
                f"baseline {self.name!r} has no flip probability / top-5 distance for {', '.join(missing)}; "
                f"it covers {sorted(self.fp) or 'no perturbations'} (ImageNet-P baselines are not published: "
                "compute one with robust-eval on an AlexNet checkpoint and pass the JSON file)"
            )
        fp = torch.tensor([self.fp[p] for p in perturbations], dtype=torch.float64)
        t5d = torch.tensor([self.t5d[p] for p in perturbations], dtype=torch.float64)
        return fp, t5d

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation (severity keys become strings)."""
        return {
            "format": BASELINE_FORMAT,
            "name": self.name,
            "errors": {c: {str(s): v for s, v in sorted(row.items())} for c, row in self.errors.items()},
            "clean_error": self.clean_error,
            "fp": dict(self.fp),
            "t5d": dict(self.t5d),
            "difficulty": self.difficulty,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: not a baseline dictionary.
        """
        if data.get("format") != BASELINE_FORMAT:
            raise ValueError(
                f"not a robust_train baseline: expected format {BASELINE_FORMAT!r}, got {data.get('format')!r}"
            )
        return cls(
            name=str(data.get("name", "baseline")),
            errors={c: {int(s): v for s, v in row.items()} for c, row in (data.get("errors") or {}).items()},
            clean_error=data.get("clean_error"),
            fp=data.get("fp") or {},
            t5d=data.get("t5d") or {},
            difficulty=data.get("difficulty"),
            meta=data.get("meta") or {},
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the baseline as JSON (atomically: temporary file, then ``os.replace``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Baseline:
        """Read a JSON file written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a baseline.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"baseline file {str(path)!r} does not exist")
        with open(path) as f:
            return cls.from_dict(json.load(f))


#: The published AlexNet ImageNet-C baseline (normaliser of the standard mCE).
ALEXNET = Baseline(
    "alexnet",
    errors={c: dict(enumerate(v, start=1)) for c, v in ALEXNET_IMAGENET_C_ERRORS.items()},
    clean_error=ALEXNET_CLEAN_ERROR,
    meta={"source": "hendrycks/robustness README (commit 76d9393), released ImageNet-C JPEGs"},
)


def resolve_baseline(spec: str | os.PathLike[str] | Baseline | None) -> Baseline | None:
    """``"alexnet"`` -> :data:`ALEXNET`; a path -> :meth:`Baseline.load`; a ``Baseline`` or ``None`` unchanged.

    Example:
        >>> resolve_baseline("alexnet").name
        'alexnet'
    """
    if spec is None or isinstance(spec, Baseline):
        return spec
    if str(spec) == "alexnet":
        return ALEXNET
    return Baseline.load(spec)
