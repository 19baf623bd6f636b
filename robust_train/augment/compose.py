"""Chaining augmentations: ``Compose([Stylize(p=0.5), AugMix(jsd=True)])``.

Each stage sees the output of the previous one. A stage that returns several views (``num_splits > 1``) multiplies the
batch; later stages then process every view (labels are repeated for stages that need them), and the composed
``num_splits`` is the product of the stages'. Put view-producing stages (AugMix with JSD, adversarial views) last
unless later stages should also change the clean view. Like kornia's containers, ``last_params`` is a list of
``(name, params)`` entries, one per stage, and ``forward(x, params=...)`` replays the whole chain.

Stages are training augmentations (:class:`~robust_train.augment.base.BatchAugment`) or corruption modules
(:class:`~robust_train.corruptions.Corruption`, e.g. ``create_corruption("fog", severity=(1, 3), p=0.5)``): one
composition for both families. A corruption stage returns one view; under ``torch.distributed`` its training draws
come from a per-rank generator, as the augmentations' do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ..corruptions.base import Corruption
from .base import BatchAugment, ModelFn

__all__ = ["Compose"]


class Compose(BatchAugment):
    """Apply augmentations in sequence.

    Args:
        augments: the stages (:class:`~robust_train.augment.base.BatchAugment` or
            :class:`~robust_train.corruptions.Corruption` modules); ``None`` entries are skipped (handy for optional
            config slots).

    Example:
        >>> import torch
        >>> from robust_train.augment import AugMix, GaussianNoiseAugment
        >>> aug = Compose([GaussianNoiseAugment(p=1.0, seed=0), AugMix(jsd=True, seed=0)])
        >>> aug(torch.rand(2, 3, 16, 16)).shape, aug.num_splits
        (torch.Size([6, 3, 16, 16]), 3)
        >>> from robust_train import create_corruption
        >>> aug = Compose([create_corruption("fog", severity=(1, 3), p=0.5), AugMix(seed=0)])
        >>> aug(torch.rand(2, 3, 32, 32)).shape, [name for name, _ in aug.last_params]
        (torch.Size([2, 3, 32, 32]), ['Fog', 'AugMix'])
    """

    def __init__(self, augments: Sequence[nn.Module | None]) -> None:
        super().__init__(p=1.0, seed=None)
        stages = [a for a in augments if a is not None]
        for a in stages:
            if not isinstance(a, (BatchAugment, Corruption)):
                raise TypeError(
                    f"Compose: expected BatchAugment or Corruption stages (or None), got {type(a).__name__}"
                )
        self.augments = nn.ModuleList(stages)

    @property
    def num_splits(self) -> int:
        """Product of the stages' ``num_splits``."""
        return math.prod(int(getattr(a, "num_splits", 1)) for a in self.augments)

    @property
    def needs_model(self) -> bool:  # type: ignore[override]
        """Whether any stage needs the network and labels."""
        return any(getattr(a, "needs_model", False) for a in self.augments)

    def forward(
        self,
        x: Tensor,
        params: list[tuple[str, Any]] | None = None,
        *,
        y: Tensor | None = None,
        model: ModelFn | None = None,
    ) -> Tensor:
        """Run every stage; ``params`` is a previous ``last_params`` list to replay.

        Args:
            x: images, shape (B, C, H, W), float in [0, 1].
            params: ``[(name, params), ...]`` per stage, or ``None``.
            y: labels, shape (B,) (passed, repeated per view, to stages that need them).
            model: ``[0, 1]`` images -> logits, for stages that need it.

        Returns:
            Images, shape (num_splits * B, C, H, W).
        """
        if params is not None and len(params) != len(self.augments):
            raise ValueError(f"params: expected {len(self.augments)} (name, params) entries, got {len(params)}")
        record: list[tuple[str, Any]] = []
        batch = x.shape[0]
        for i, aug in enumerate(self.augments):
            p = params[i][1] if params is not None else None
            reps = x.shape[0] // batch
            yy = None if y is None else (y.repeat(reps) if reps > 1 else y)
            if isinstance(aug, Corruption):
                g = self._gen(None)  # a per-rank generator under torch.distributed, else None (the stage's own draws)
                if p is None and g is not None:
                    p = aug.sample_params(x.shape[0], g)
                x = aug(x, p)
            else:
                x = aug(x, p, y=yy, model=model)
            record.append((type(aug).__name__, aug.last_params))
        self.last_params = record
        return x

    def apply(self, x: Tensor, params: Any) -> Tensor:  # pragma: no cover - forward does the work
        """Replay a recorded chain (``params`` as in :attr:`last_params`)."""
        return self.forward(x, params)
