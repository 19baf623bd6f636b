"""Digital corruptions: contrast, ... (spec sections 2.14-2.17)."""

from __future__ import annotations

from torch import Tensor

from ..functional import digital as F
from .base import Corruption, SeverityTable
from .params import Params
from .suites import CORRUPTIONS

__all__ = ["Contrast"]


@CORRUPTIONS.register(family="digital")
class Contrast(Corruption):
    """Reduce contrast around each channel's spatial mean (deterministic, exact gradient).

    Severity table (contrast factor c; spec 2.14):

    ===  ========  ============  =====
    s    imagenet  tinyimagenet  cifar
    ===  ========  ============  =====
    1    0.4       0.4           0.75
    2    0.3       0.3           0.5
    3    0.2       0.2           0.4
    4    0.1       0.1           0.3
    5    0.05      0.05          0.15
    ===  ========  ============  =====

    Example:
        >>> import torch
        >>> Contrast(severity=2)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    name = "contrast"
    family = "digital"
    table = SeverityTable(
        ("factor",),
        imagenet=[(0.4,), (0.3,), (0.2,), (0.1,), (0.05,)],
        tinyimagenet=[(0.4,), (0.3,), (0.2,), (0.1,), (0.05,)],
        cifar=[(0.75,), (0.5,), (0.4,), (0.3,), (0.15,)],
    )

    def apply(self, x: Tensor, params: Params) -> Tensor:
        a = self.args(params, self.resolve_preset(x))
        return F.contrast(x, a["factor"])
