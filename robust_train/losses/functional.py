"""Functional twins of the training losses (layer 1 maths; the modules in this package are thin wrappers).

Splits contract: ``logits`` holds ``num_splits`` equal views concatenated along the batch, ``[clean, aug_1, ...]``
(STYLE.md section 5). ``target`` may hold the labels of the clean split only (B,) or of every split (num_splits * B,),
in which case the splits must carry the same labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "clean_logit_pairing",
    "jensen_shannon",
    "jsd_cross_entropy",
    "logit_pairing",
    "split_cross_entropy",
    "split_logits",
    "split_targets",
]


def split_logits(logits: Tensor, num_splits: int) -> tuple[Tensor, ...]:
    """Split ``(num_splits * B, K)`` logits into ``num_splits`` chunks of ``(B, K)``.

    Raises:
        ValueError: not 2-D, ``num_splits < 1`` or a batch that ``num_splits`` does not divide.

    Example:
        >>> [t.shape[0] for t in split_logits(torch.zeros(6, 10), 3)]
        [2, 2, 2]
    """
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        raise ValueError(f"logits: expected a (N, num_classes) tensor, got {getattr(logits, 'shape', type(logits))}")
    n = int(num_splits)
    if n < 1:
        raise ValueError(f"num_splits: expected >= 1, got {num_splits}")
    if logits.shape[0] % n:
        raise ValueError(f"logits: batch {logits.shape[0]} is not divisible by num_splits={n}")
    return torch.split(logits, logits.shape[0] // n)


def split_targets(target: Tensor, batch: int, num_splits: int) -> Tensor:
    """Labels of one split, shape (B,), from clean-only (B,) or all-split (num_splits * B,) labels.

    Example:
        >>> split_targets(torch.tensor([1, 2, 1, 2]), 2, 2).tolist()
        [1, 2]
    """
    if target.dim() < 1 or target.shape[0] not in (batch, batch * num_splits):
        raise ValueError(
            f"target: expected {batch} (clean split) or {batch * num_splits} (all splits) labels, "
            f"got shape {tuple(target.shape)}"
        )
    return target[:batch]


def split_cross_entropy(
    logits: Tensor, target: Tensor, num_splits: int = 1, clean_only: bool = False, smoothing: float = 0.0
) -> Tensor:
    """Cross-entropy over every split (labels repeated), or over the clean split only.

    Args:
        logits: (num_splits * B, K).
        target: (B,) or (num_splits * B,) class indices.
        num_splits: views in the batch.
        clean_only: use the first split only.
        smoothing: label smoothing.

    Returns:
        Scalar mean loss.

    Example:
        >>> split_cross_entropy(torch.zeros(4, 10), torch.tensor([1, 2]), num_splits=2).shape
        torch.Size([])
    """
    parts = split_logits(logits, num_splits)
    y = split_targets(target, parts[0].shape[0], num_splits)
    if clean_only:
        return F.cross_entropy(parts[0], y, label_smoothing=smoothing)
    return F.cross_entropy(logits, y.repeat(num_splits), label_smoothing=smoothing)


def jensen_shannon(logits: Tensor, num_splits: int, eps: float = 1e-7) -> Tensor:
    """Generalised Jensen-Shannon divergence between the softmax predictions of the splits.

    ``JS = (1/n) sum_i KL(p_i || M)`` with the mixture ``M = clamp(mean_i p_i, eps, 1)`` (the clamp keeps the log
    finite, as in AugMix and timm), summed over classes and averaged over the batch.

    Args:
        logits: (num_splits * B, K).
        num_splits: number of views ``n``.
        eps: lower clamp of the mixture.

    Returns:
        Scalar, >= 0 up to the clamp; exactly 0 for identical predictions.

    Example:
        >>> bool(jensen_shannon(torch.randn(2, 5).repeat(3, 1), 3).abs() < 1e-6)
        True
    """
    parts = split_logits(logits, num_splits)
    probs = torch.stack([F.softmax(p, dim=1) for p in parts])  # (n, B, K)
    log_m = probs.mean(0).clamp(eps, 1.0).log()
    kl = torch.xlogy(probs, probs) - probs * log_m.unsqueeze(0)  # (n, B, K)
    return kl.sum(-1).mean(-1).mean(0)


def jsd_cross_entropy(
    logits: Tensor, target: Tensor, num_splits: int = 3, alpha: float = 12.0, smoothing: float = 0.0
) -> Tensor:
    """AugMix loss: cross-entropy on the clean split plus ``alpha`` times the Jensen-Shannon consistency term.

    Args:
        logits: ``[clean, aug_1, ...]`` logits, (num_splits * B, K).
        target: (B,) or (num_splits * B,) labels.
        num_splits: views in the batch (AugMix: 3).
        alpha: weight of the consistency term (AugMix: 12).
        smoothing: label smoothing of the clean cross-entropy.

    Returns:
        Scalar loss.

    Example:
        >>> jsd_cross_entropy(torch.randn(6, 10), torch.tensor([1, 2]), 3).shape
        torch.Size([])
    """
    ce = split_cross_entropy(logits, target, num_splits, clean_only=True, smoothing=smoothing)
    return ce + alpha * jensen_shannon(logits, num_splits)


def logit_pairing(
    logits: Tensor,
    target: Tensor,
    lam: float = 0.5,
    clean_weight: float = 1.0,
    adv_weight: float = 1.0,
    smoothing: float = 0.0,
) -> Tensor:
    """Adversarial logit pairing (Kannan et al. 2018) on ``[clean, adversarial]`` logits.

    ``clean_weight * CE(clean) + adv_weight * CE(adv) + lam * mean((z_clean - z_adv)^2)``; the pairing term is the
    mean over batch and classes (mean squared error of the logits). ``lam=0`` is plain mixed-batch PGD adversarial
    training; ``clean_weight=0, lam=0`` is Madry et al.'s adversarial-only objective.

    Args:
        logits: (2B, K), clean then adversarial.
        target: (B,) or (2B,) labels.
        lam: pairing weight.
        clean_weight: weight of the clean cross-entropy.
        adv_weight: weight of the adversarial cross-entropy.
        smoothing: label smoothing.

    Returns:
        Scalar loss.

    Example:
        >>> logit_pairing(torch.randn(4, 10), torch.tensor([1, 2])).shape
        torch.Size([])
    """
    clean, adv = split_logits(logits, 2)
    y = split_targets(target, clean.shape[0], 2)
    loss = logits.new_zeros(())
    if clean_weight:
        loss = loss + clean_weight * F.cross_entropy(clean, y, label_smoothing=smoothing)
    if adv_weight:
        loss = loss + adv_weight * F.cross_entropy(adv, y, label_smoothing=smoothing)
    if lam:
        loss = loss + lam * F.mse_loss(clean, adv)
    return loss


def clean_logit_pairing(logits: Tensor, target: Tensor, lam: float = 0.5, smoothing: float = 0.0) -> Tensor:
    """Clean logit pairing (Kannan et al. 2018): CE plus ``lam`` times the MSE between the logits of random pairs.

    Sample ``i`` of the first half of the batch is paired with sample ``i`` of the second half (the loader shuffles,
    so these are random pairs of clean examples); an odd last sample is left unpaired.

    Args:
        logits: (B, K), B >= 2.
        target: (B,) labels.
        lam: pairing weight.
        smoothing: label smoothing.

    Returns:
        Scalar loss.

    Example:
        >>> clean_logit_pairing(torch.randn(4, 10), torch.tensor([1, 2, 3, 4])).shape
        torch.Size([])
    """
    (z,) = split_logits(logits, 1)
    if target.shape[0] != z.shape[0]:
        raise ValueError(f"target: expected {z.shape[0]} labels, got shape {tuple(target.shape)}")
    if z.shape[0] < 2:
        raise ValueError(f"clean logit pairing needs a batch of at least 2, got {z.shape[0]}")
    half = z.shape[0] // 2
    loss = F.cross_entropy(z, target, label_smoothing=smoothing)
    return loss + lam * F.mse_loss(z[:half], z[half : 2 * half])
