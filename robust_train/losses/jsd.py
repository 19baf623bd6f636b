"""AugMix's JSD consistency loss and the plain split-aware cross-entropy (the "no JSD" variant)."""

from __future__ import annotations

from torch import Tensor, nn

from ..functional.checks import check_range
from . import functional as LF

__all__ = ["JsdCrossEntropy", "SplitCrossEntropy"]


class SplitCrossEntropy(nn.Module):
    """Cross-entropy that understands the splits contract.

    With ``num_splits == 1`` it is plain cross-entropy. With several splits (e.g. AugMix views without the JSD
    term) it averages the cross-entropy over every split (labels repeated), or uses the clean split only when
    ``clean_only``.

    Args:
        smoothing: label smoothing in [0, 1).
        clean_only: use the first (clean) split only.

    Example:
        >>> import torch
        >>> SplitCrossEntropy()(torch.randn(6, 10), torch.tensor([1, 2]), num_splits=3).shape
        torch.Size([])
    """

    def __init__(self, smoothing: float = 0.0, clean_only: bool = False) -> None:
        super().__init__()
        check_range(float(smoothing), 0.0, 0.999, "smoothing")
        self.smoothing = float(smoothing)
        self.clean_only = bool(clean_only)

    def forward(self, logits: Tensor, target: Tensor, num_splits: int = 1) -> Tensor:
        """Args: logits (num_splits * B, K); target (B,) or (num_splits * B,); num_splits. Returns a scalar."""
        return LF.split_cross_entropy(logits, target, num_splits, self.clean_only, self.smoothing)

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return f"smoothing={self.smoothing}, clean_only={self.clean_only}"


class JsdCrossEntropy(nn.Module):
    """Cross-entropy on the clean split plus ``alpha`` x the Jensen-Shannon divergence across all splits.

    The AugMix objective (Hendrycks et al. 2020): ``CE(p_clean, y) + alpha * JS(p_clean, p_aug1, p_aug2)`` with the
    mixture clamped to ``[1e-7, 1]`` before the log (:func:`~robust_train.losses.functional.jensen_shannon`).
    In eval mode (validation / test, single split) it is the plain cross-entropy.

    Args:
        num_splits: default number of views (AugMix: 3); ``forward(..., num_splits=n)`` overrides it.
        alpha: weight of the consistency term (AugMix: 12).
        smoothing: label smoothing of the clean cross-entropy.

    Example:
        >>> import torch
        >>> JsdCrossEntropy()(torch.randn(6, 10), torch.tensor([1, 2])).shape
        torch.Size([])
    """

    def __init__(self, num_splits: int = 3, alpha: float = 12.0, smoothing: float = 0.0) -> None:
        super().__init__()
        if int(num_splits) < 2:
            raise ValueError(f"num_splits: the JSD loss needs >= 2 splits (clean + augmented), got {num_splits}")
        if float(alpha) < 0:
            raise ValueError(f"alpha: expected >= 0, got {alpha}")
        check_range(float(smoothing), 0.0, 0.999, "smoothing")
        self.num_splits = int(num_splits)
        self.alpha = float(alpha)
        self.smoothing = float(smoothing)

    def forward(self, logits: Tensor, target: Tensor, num_splits: int | None = None) -> Tensor:
        """Args: logits (num_splits * B, K) ``[clean, aug...]``; target (B,) or (num_splits * B,). Returns a scalar.

        In eval mode (validation / test batches, which are not augmented) it is plain cross-entropy on the given
        logits: one split unless ``num_splits`` is passed explicitly (then the mean cross-entropy over the splits,
        labels repeated); the constructor's ``num_splits`` applies to training batches only.

        Raises:
            ValueError: a single split in training mode (the augmentation is not producing views; use ``jsd=True``).
        """
        if not self.training:
            return LF.split_cross_entropy(
                logits, target, 1 if num_splits is None else int(num_splits), smoothing=self.smoothing
            )
        n = self.num_splits if num_splits is None else int(num_splits)
        if n < 2:
            raise ValueError(
                "JsdCrossEntropy got num_splits=1: the augmentation must return [clean, aug_1, aug_2] views "
                "(e.g. AugMix(jsd=True)); use SplitCrossEntropy for a single view"
            )
        return LF.jsd_cross_entropy(logits, target, n, self.alpha, self.smoothing)

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return f"num_splits={self.num_splits}, alpha={self.alpha}, smoothing={self.smoothing}"
