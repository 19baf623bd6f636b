"""Fast gradient sign method (Goodfellow et al. 2015) and its random-start variant (Wong et al. 2020).

FGSM is one PGD step: ``delta = eps * sign(grad)`` from zero (``random_start=False``, the default), or from a
uniform random start with step ``1.25 eps`` followed by the projection ("fast adversarial training").
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from .pgd import PERTURBATIONS, PGD

__all__ = ["FGSM"]


@PERTURBATIONS.register("fgsm")
class FGSM(PGD):
    """Single-step attack.

    Args:
        eps: budget (L-inf default 8/255).
        step_size: step; default ``eps`` without random start, ``1.25 * eps`` with it.
        random_start: start from ``U(-eps, eps)`` (Wong et al.).
        norm: ``"linf"`` or ``"l2"``.
        loss: loss to maximise (default summed cross-entropy).
        eval_mode: attack with the model in eval mode.
        seed: seed of the random-start generator.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        >>> FGSM(eps=4 / 255).attack(net, torch.rand(2, 3, 8, 8), torch.tensor([0, 1])).shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(
        self,
        eps: float = 8 / 255,
        step_size: float | None = None,
        random_start: bool = False,
        norm: str = "linf",
        loss: Callable[[Tensor, Tensor], Tensor] | None = None,
        eval_mode: bool = True,
        seed: int | None = None,
    ) -> None:
        if step_size is None:
            step_size = 1.25 * float(eps) if random_start else float(eps)
        super().__init__(
            eps=eps,
            step_size=step_size,
            steps=1,
            random_start=random_start,
            norm=norm,
            loss=loss,
            eval_mode=eval_mode,
            seed=seed,
        )
