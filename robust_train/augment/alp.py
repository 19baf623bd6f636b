"""Adversarial views for adversarial training and adversarial logit pairing (Kannan et al. 2018).

:class:`AdversarialAugment` runs an attack from :mod:`robust_train.perturbations` (PGD by default) against the
current network and returns ``[clean, adversarial]`` (``num_splits = 2``, for
:class:`~robust_train.losses.LogitPairingLoss`) or only the adversarial batch (``include_clean=False``, Madry et al.'s
adversarial-only training with plain cross-entropy).

It needs the network and the labels: ``aug(x, y=y, model=f)`` where ``f`` maps ``[0, 1]`` images to logits
(in the Lightning module: its normalised forward). The model's mode during the attack is the attack's
``eval_mode`` setting (see :mod:`robust_train.perturbations.pgd`); every submodule's mode is restored afterwards.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..corruptions.params import Params
from ..perturbations.pgd import PGD, Attack
from .base import BatchAugment, ModelFn

__all__ = ["AdversarialAugment"]


class AdversarialAugment(BatchAugment):
    """Adversarial examples as a training augmentation.

    Args:
        attack: the perturbation (default ``PGD()``: L-inf 8/255, step 2/255, 10 steps, random start).
        include_clean: return ``[clean, adversarial]`` (two splits) instead of the adversarial batch only.
        p: probability that a sample is attacked (the others get ``delta = 0``).
        seed: seed of the module's generator (apply flags and random-start seeds).

    Params: ``apply`` (B,) bool and ``seed`` (B,) int64 (random start); replaying them against the same network
    weights reproduces the adversarial batch.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        >>> aug = AdversarialAugment(PGD(steps=2), seed=0)
        >>> aug(torch.rand(2, 3, 8, 8), y=torch.tensor([0, 1]), model=net).shape
        torch.Size([4, 3, 8, 8])
    """

    needs_model = True

    def __init__(
        self, attack: Attack | None = None, include_clean: bool = True, p: float = 1.0, seed: int | None = None
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.attack = attack if attack is not None else PGD()
        if not isinstance(self.attack, Attack):
            raise TypeError(f"attack: expected a robust_train.perturbations.Attack, got {type(self.attack).__name__}")
        self.include_clean = bool(include_clean)

    @property
    def num_splits(self) -> int:
        """2 with ``include_clean`` (``[clean, adversarial]``), else 1."""
        return 2 if self.include_clean else 1

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw ``apply`` flags and random-start seeds (CPU)."""
        g = self._gen(generator)
        params = super().sample_params(batch_size, g)
        params["seed"] = torch.randint(-(2**62), 2**62, (batch_size,), generator=g, dtype=torch.int64)
        return params

    def forward(
        self,
        x: Tensor,
        params: Params | None = None,
        *,
        y: Tensor | None = None,
        model: ModelFn | None = None,
    ) -> Tensor:
        """Attack ``model`` around ``x``; returns ``[x, x_adv]`` or ``x_adv``.

        Args:
            x: images, shape (B, C, H, W), float in [0, 1].
            params: replay parameters (``self.last_params``).
            y: labels, shape (B,). Required.
            model: ``[0, 1]`` images -> logits. Required.

        Raises:
            ValueError: ``model`` or ``y`` missing.
        """
        if model is None or y is None:
            raise ValueError(
                "AdversarialAugment needs the network and the labels: call aug(x, y=y, model=f) with f mapping "
                "[0, 1] images to logits (RobustClassifier passes both to augments whose forward takes y and model)"
            )
        self.check_input(x)
        params = Params.for_batch(params, x.shape[0], self.sample_params)
        self.last_params = params
        delta = self.attack.attack(model, x, y, params["seed"])
        delta = self.gate(params["apply"], delta, torch.zeros_like(delta))
        x_adv = self.attack.apply(x.detach(), delta)
        return torch.cat([x, x_adv]) if self.include_clean else x_adv

    def apply(self, x: Tensor, params: Params) -> Tensor:  # pragma: no cover - needs the model
        """Not available without a model; use ``forward(x, params, y=..., model=...)``."""
        raise TypeError("AdversarialAugment.apply needs the model; call forward(x, params, y=y, model=f)")

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return f"include_clean={self.include_clean}, p={self.p}"
