"""Adversarial and clean logit pairing losses (Kannan, Kurakin and Goodfellow 2018)."""

from __future__ import annotations

from torch import Tensor, nn

from ..functional.checks import check_range
from . import functional as LF

__all__ = ["CleanLogitPairingLoss", "LogitPairingLoss"]


class LogitPairingLoss(nn.Module):
    """ALP on ``[clean, adversarial]`` logits: weighted CEs plus ``lam`` x the mean squared logit difference.

    Pair it with :class:`~robust_train.augment.AdversarialAugment` (``include_clean=True``), which returns the clean
    batch followed by its PGD counterpart. ``lam=0`` is plain (mixed-batch) PGD adversarial training; with an
    adversarial-only batch (``include_clean=False``, one split) the loss is the cross-entropy on the adversarial
    examples (Madry et al.).

    Args:
        lam: pairing weight (ALP on ImageNet: 0.5).
        clean_weight: weight of the clean cross-entropy.
        adv_weight: weight of the adversarial cross-entropy.
        smoothing: label smoothing.

    Example:
        >>> import torch
        >>> LogitPairingLoss()(torch.randn(4, 10), torch.tensor([1, 2]), num_splits=2).shape
        torch.Size([])
    """

    def __init__(
        self, lam: float = 0.5, clean_weight: float = 1.0, adv_weight: float = 1.0, smoothing: float = 0.0
    ) -> None:
        super().__init__()
        for v, n in ((lam, "lam"), (clean_weight, "clean_weight"), (adv_weight, "adv_weight")):
            if float(v) < 0:
                raise ValueError(f"{n}: expected >= 0, got {v}")
        check_range(float(smoothing), 0.0, 0.999, "smoothing")
        self.lam = float(lam)
        self.clean_weight = float(clean_weight)
        self.adv_weight = float(adv_weight)
        self.smoothing = float(smoothing)

    def forward(self, logits: Tensor, target: Tensor, num_splits: int = 2) -> Tensor:
        """Args: logits (num_splits * B, K); target (B,) or (num_splits * B,); num_splits 2 (or 1). Returns a scalar.

        In eval mode (validation / test batches, not attacked) a single split gives plain cross-entropy.

        Raises:
            ValueError: ``num_splits`` other than 1 or 2, or pairing requested on a single split in training mode.
        """
        if num_splits == 1:
            if not self.training:
                return LF.split_cross_entropy(logits, target, 1, smoothing=self.smoothing)
            if self.lam:
                raise ValueError(
                    "LogitPairingLoss got one split but lam > 0: pairing needs [clean, adversarial] views "
                    "(AdversarialAugment(include_clean=True)); use lam=0 for adversarial-only training"
                )
            return LF.split_cross_entropy(logits, target, 1, smoothing=self.smoothing) * self.adv_weight
        if num_splits != 2:
            raise ValueError(f"LogitPairingLoss expects 2 splits [clean, adversarial], got num_splits={num_splits}")
        return LF.logit_pairing(logits, target, self.lam, self.clean_weight, self.adv_weight, self.smoothing)

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return (
            f"lam={self.lam}, clean_weight={self.clean_weight}, adv_weight={self.adv_weight}, "
            f"smoothing={self.smoothing}"
        )


class CleanLogitPairingLoss(nn.Module):
    """Clean logit pairing: CE plus ``lam`` x the MSE between the logits of random pairs of clean examples.

    Args:
        lam: pairing weight.
        smoothing: label smoothing.

    Example:
        >>> import torch
        >>> CleanLogitPairingLoss()(torch.randn(4, 10), torch.tensor([1, 2, 3, 4])).shape
        torch.Size([])
    """

    def __init__(self, lam: float = 0.5, smoothing: float = 0.0) -> None:
        super().__init__()
        if float(lam) < 0:
            raise ValueError(f"lam: expected >= 0, got {lam}")
        check_range(float(smoothing), 0.0, 0.999, "smoothing")
        self.lam = float(lam)
        self.smoothing = float(smoothing)

    def forward(self, logits: Tensor, target: Tensor, num_splits: int = 1) -> Tensor:
        """Args: logits (B, K) of clean images; target (B,). Returns a scalar (plain cross-entropy in eval mode)."""
        if not self.training:
            return LF.split_cross_entropy(logits, target, num_splits, smoothing=self.smoothing)
        if num_splits != 1:
            raise ValueError(f"CleanLogitPairingLoss expects one clean split, got num_splits={num_splits}")
        return LF.clean_logit_pairing(logits, target, self.lam, self.smoothing)

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return f"lam={self.lam}, smoothing={self.smoothing}"
