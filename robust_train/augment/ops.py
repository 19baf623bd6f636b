"""The AugMix operations as registered modules (:data:`AUGMENT_OPS`).

Each op is a :class:`~robust_train.augment.base.BatchAugment` that draws, per sample, an AugMix ``level ~ U(0.1,
severity)`` and a random sign, converts them with :func:`~robust_train.functional.augment_ops.augmix_argument` (the
AugMix severity table) and applies the functional op. AugMix itself does not call these modules (it applies its whole
chain through :func:`~robust_train.functional.augment_ops.augmix`), but it takes its op list from this registry, so
registering an op here makes it available to AugMix.

Registry metadata: ``kind`` (``"point"`` or ``"affine"``) and ``overlaps_eval`` (``True`` for color, contrast,
brightness and sharpness, which resemble ImageNet-C test corruptions; AugMix skips them unless ``all_ops=True``).

Example:
    >>> AUGMENT_OPS.list(overlaps_eval=False)
    ['autocontrast', 'equalize', 'posterize', 'rotate', 'shear_x', 'shear_y', 'solarize', 'translate_x', 'translate_y']
    >>> op = AUGMENT_OPS.create("rotate", severity=3, seed=0)
    >>> op(torch.rand(2, 3, 8, 8)).shape
    torch.Size([2, 3, 8, 8])
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ..corruptions.params import Params
from ..functional import augment_ops as AF
from ..functional.checks import check_range
from ..registry import Registry
from .base import BatchAugment

__all__ = [
    "AUGMENT_OPS",
    "AugmentOp",
    "AutoContrast",
    "Brightness",
    "Color",
    "Contrast",
    "Equalize",
    "Posterize",
    "Rotate",
    "Sharpness",
    "ShearX",
    "ShearY",
    "Solarize",
    "TranslateX",
    "TranslateY",
    "list_augment_ops",
]

AUGMENT_OPS: Registry = Registry("augment_op")


class AugmentOp(BatchAugment):
    """One AugMix operation with per-sample level and sign.

    Args:
        severity: AugMix op severity on its 1-10 scale; the level of a sample is ``U(0.1, severity)``.
        p: probability that a sample is augmented.
        seed: seed of the module's own generator.
        pil_exact: compute as PIL does on 8-bit images (the AugMix reference code):
            :mod:`robust_train.functional.augment_ops_pil`. ``False``: the float op.

    Params: ``apply`` (B,) bool, ``level`` (B,) float64, ``sign`` (B,) float64 in {-1, 1}.
    """

    name: ClassVar[str] = ""

    def __init__(self, severity: float = 3.0, p: float = 1.0, seed: int | None = None, pil_exact: bool = False) -> None:
        super().__init__(p=p, seed=seed)
        check_range(float(severity), 1.0, 10.0, "severity")
        self.severity = float(severity)
        self.pil_exact = bool(pil_exact)

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw ``apply``, ``level`` and ``sign`` per sample (CPU, float64)."""
        g = self._gen(generator)
        params = super().sample_params(batch_size, g)
        u = torch.rand(batch_size, generator=g, dtype=torch.float64)
        params["level"] = 0.1 + (self.severity - 0.1) * u
        params["sign"] = torch.where(torch.rand(batch_size, generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0).to(
            torch.float64
        )
        return params

    def argument(self, params: Params, height: int, width: int) -> Tensor:
        """The op argument per sample (AugMix table), float64 (B,)."""
        return AF.augmix_argument(self.name, params["level"], params["sign"], height, width)

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Apply the op to the samples flagged in ``params["apply"]``."""
        arg = self.argument(params, int(x.shape[-2]), int(x.shape[-1]))
        idx = torch.zeros(x.shape[0], dtype=torch.int64)
        return AF.apply_ops(x, [self.name], idx, arg, params["apply"], pil_exact=self.pil_exact)

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return f"severity={self.severity}, p={self.p}, pil_exact={self.pil_exact}"


def _op(name: str, doc: str) -> type[AugmentOp]:
    spec = AF.OP_SPECS[name]
    cls_name = "".join(part.capitalize() for part in name.split("_")).replace("Autocontrast", "AutoContrast")
    cls = type(cls_name, (AugmentOp,), {"name": name, "__doc__": doc, "__module__": __name__})
    return AUGMENT_OPS.register(kind=spec.kind, overlaps_eval=spec.overlaps_eval)(cls)


AutoContrast = _op(
    "autocontrast",
    "Stretch each channel to [0, 1] (:func:`~robust_train.functional.augment_ops.autocontrast`).",
)
Equalize = _op(
    "equalize",
    "Histogram equalisation per channel (:func:`~robust_train.functional.augment_ops.equalize`).",
)
Posterize = _op(
    "posterize",
    "Keep ``4 - int(0.4 level)`` bits (:func:`~robust_train.functional.augment_ops.posterize`).",
)
Solarize = _op(
    "solarize",
    "Invert levels >= ``256 - int(25.6 level)`` (:func:`~robust_train.functional.augment_ops.solarize`).",
)
Rotate = _op(
    "rotate",
    "Rotate by ``sign * int(3 level)`` degrees (:func:`~robust_train.functional.augment_ops.rotate`).",
)
ShearX = _op("shear_x", "Shear x by ``sign * 0.03 level`` (:func:`~robust_train.functional.augment_ops.shear_x`).")
ShearY = _op("shear_y", "Shear y by ``sign * 0.03 level`` (:func:`~robust_train.functional.augment_ops.shear_y`).")
TranslateX = _op(
    "translate_x",
    "Translate x by ``sign * int(level W / 30)`` px (:func:`~robust_train.functional.augment_ops.translate_x`).",
)
TranslateY = _op(
    "translate_y",
    "Translate y by ``sign * int(level H / 30)`` px (:func:`~robust_train.functional.augment_ops.translate_y`).",
)
Color = _op(
    "color",
    "Saturation blend, factor ``0.18 level + 0.1`` (:func:`~robust_train.functional.augment_ops.color`).",
)
Contrast = _op(
    "contrast",
    "Contrast blend, factor ``0.18 level + 0.1`` (:func:`~robust_train.functional.augment_ops.contrast`).",
)
Brightness = _op(
    "brightness",
    "Brightness blend, factor ``0.18 level + 0.1`` (:func:`~robust_train.functional.augment_ops.brightness`).",
)
Sharpness = _op(
    "sharpness",
    "Sharpness blend, factor ``0.18 level + 0.1`` (:func:`~robust_train.functional.augment_ops.sharpness`).",
)


def list_augment_ops(all_ops: bool = False) -> list[str]:
    """AugMix op names in the paper's order: the 9 default ops, plus the 4 blend ops when ``all_ops``.

    Ops registered later are appended (sorted) after the built-in ones; a new op needs both an entry in
    :data:`~robust_train.functional.augment_ops.OP_SPECS` (its maths) and a registered class here.

    Example:
        >>> list_augment_ops()[:3]
        ['autocontrast', 'equalize', 'posterize']
        >>> len(list_augment_ops(all_ops=True))
        13
    """
    names = [n for n in AF.AUGMIX_OPS_ALL if n in AUGMENT_OPS]
    names += [n for n in AUGMENT_OPS.list() if n not in names and n in AF.OP_SPECS]
    if not all_ops:
        names = [n for n in names if not AUGMENT_OPS.meta(n).get("overlaps_eval", False)]
    return names
