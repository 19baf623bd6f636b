"""Functional robustness metrics (spec section 7): CE / mCE, flip probability, top-5 / zipf distance, calibration.

Every function here is pure tensor maths; the :mod:`torchmetrics` classes in :mod:`.corruption_error`,
:mod:`.stability` and :mod:`.calibration` accumulate the sufficient statistics with the ``_update`` helpers below and
finish with the same ``_compute`` code, so class and function agree by construction.

Conventions: errors are fractions in [0, 1]; CE, mCE, FR and the T5D ratio are returned as fractions too
(multiply by 100 for the paper's percentages).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ..errors import ArgumentError, ArgumentTypeError, IncompleteMetricError, IncompleteMetricWarning
from .baselines import ALEXNET

__all__ = [
    "alexnet_errors",
    "corruption_error",
    "expected_calibration_error",
    "flip_probability",
    "flip_rate",
    "frame_pairs",
    "is_noise_perturbation",
    "mean_corruption_error",
    "mean_flip_rate",
    "mean_top5_distance",
    "relative_corruption_error",
    "relative_mean_corruption_error",
    "rms_calibration_error",
    "severity_auc",
    "top1_error",
    "top5_distance",
    "unnormalized_mean_error",
    "zipf_distance",
]


# ---------------------------------------------------------------------------------------------------- ImageNet-C
def _as_preds(preds: Tensor) -> Tensor:
    """Class indices from indices (..., ) or logits/probabilities (..., K)."""
    if preds.is_floating_point():
        return preds.argmax(-1)
    return preds


def top1_error(preds: Tensor, target: Tensor) -> Tensor:
    """Top-1 error.

    Args:
        preds: (N,) class indices or (N, K) logits / probabilities.
        target: (N,) class indices.

    Returns:
        Scalar float64 tensor in [0, 1] (NaN for N = 0).

    Example:
        >>> top1_error(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 0]))
        tensor(0.5000, dtype=torch.float64)
    """
    wrong, total = _error_update(preds, target)
    return wrong.double() / total


def _check_finite_logits(x: Tensor, name: str) -> None:
    """NaN / inf logits would be counted as predictions of one class by ``argmax``: refuse them."""
    if not isinstance(x, Tensor):
        raise ArgumentTypeError(f"{name}: expected a tensor, got {type(x).__name__}")
    if not x.is_floating_point() or not x.numel() or torch.compiler.is_compiling():
        return
    if x.device.type != "cpu":  # on a device the check must not stall the stream
        torch._assert_async(torch.isfinite(x).all(), f"{name}: contains NaN or infinite values")
    elif not bool(torch.isfinite(x).all()):
        what = "NaN" if bool(torch.isnan(x).any()) else "infinite values"
        raise ArgumentError(f"{name}: contains {what}; the model's outputs are not usable as predictions")


def _error_update(preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    _check_finite_logits(preds, "preds")
    p = _as_preds(preds)
    if p.dim() != 1 or target.dim() != 1 or p.shape[0] != target.shape[0]:
        raise ValueError(
            f"expected preds (N,) or (N, K) and target (N,) with the same N, got {tuple(preds.shape)} and "
            f"{tuple(target.shape)}"
        )
    return (p != target.to(p.device)).sum(), torch.tensor(p.shape[0], device=p.device)


def alexnet_errors(corruptions: Sequence[str], severities: Sequence[int] = (1, 2, 3, 4, 5)) -> Tensor:
    """The published AlexNet ImageNet-C errors as a (C, S) float64 tensor.

    Raises:
        ValueError: a corruption or severity has no published value.

    Example:
        >>> alexnet_errors(["fog", "contrast"], [1, 5]).tolist()
        [[0.67474, 0.945], [0.64548, 0.9927]]
    """
    return ALEXNET.error_table(corruptions, severities)


TableLike = Tensor | Mapping[str, Sequence[float] | Tensor]


def _as_tables(errors: TableLike, baseline: TableLike | None) -> tuple[Tensor, Tensor]:
    """(C, S) or (S,) tensors from tensors or ``{corruption: errors per severity}`` mappings aligned by name.

    With mappings, rows are matched by corruption name (the order of the keys does not matter) and the two tables must
    name the same corruptions; ``baseline=None`` takes the published AlexNet errors for severities 1-5.
    """
    if isinstance(errors, Mapping):
        names = list(errors)
        if baseline is None:
            baseline = {n: ALEXNET.error_table([n], [1, 2, 3, 4, 5])[0] for n in names}
        if not isinstance(baseline, Mapping):
            raise ArgumentTypeError("baseline: pass a {corruption: errors} mapping when errors is a mapping")
        if set(baseline) != set(names):
            missing, extra = sorted(set(names) - set(baseline)), sorted(set(baseline) - set(names))
            raise ArgumentError(
                f"errors and baseline name different corruptions: missing from baseline {missing}, "
                f"missing from errors {extra}"
            )
        e = torch.stack([torch.as_tensor(errors[n], dtype=torch.float64) for n in names])
        b = torch.stack([torch.as_tensor(baseline[n], dtype=torch.float64) for n in names])
        return e, b
    if baseline is None:
        raise ArgumentError("baseline: required with a tensor errors table (or pass {corruption: errors} mappings)")
    if isinstance(baseline, Mapping):
        raise ArgumentTypeError("baseline: a mapping baseline needs a {corruption: errors} mapping for errors")
    return torch.as_tensor(errors), torch.as_tensor(baseline)


def _check_fractions(t: Tensor, name: str) -> None:
    finite = t[~torch.isnan(t)] if t.is_floating_point() else t
    if finite.numel() and (float(finite.min()) < 0 or float(finite.max()) > 1):
        hint = " (percentages? divide by 100)" if float(finite.max()) <= 100 else ""
        raise ArgumentError(
            f"{name}: expected error rates as fractions in [0, 1], got values in "
            f"[{float(finite.min()):.4g}, {float(finite.max()):.4g}]{hint}"
        )


def _check_table(errors: Tensor, baseline: Tensor) -> None:
    if errors.dim() not in (1, 2) or errors.shape != baseline.shape:
        raise ArgumentError(
            f"expected errors and baseline of equal shape (C, S) or (S,), got {tuple(errors.shape)} and "
            f"{tuple(baseline.shape)}"
        )
    _check_fractions(errors, "errors")
    _check_fractions(baseline, "baseline")
    if bool(torch.isnan(baseline).any()):
        raise ArgumentError("baseline: contains NaN")
    zero = (baseline.double().sum(-1) == 0).reshape(-1)
    if bool(zero.any()):
        rows = zero.nonzero().reshape(-1).tolist()
        raise IncompleteMetricError(
            f"baseline: the baseline errors of row(s) {rows} sum to 0, so CE (error / baseline error) is undefined; "
            "use a baseline model with non-zero errors"
        )


def corruption_error(errors: TableLike, baseline: TableLike | None) -> Tensor:
    """Corruption Error CE_c = sum_s E_{s,c} / sum_s E^base_{s,c}.

    Args:
        errors: (C, S) or (S,) top-1 errors of the model as fractions in [0, 1], severities along the last axis; or a
            ``{corruption: errors per severity}`` mapping (rows are then matched to ``baseline`` by name).
        baseline: same shape, errors of the normalising model (AlexNet: :func:`alexnet_errors`); a mapping with the
            same corruption names; or ``None`` with a mapping ``errors`` for the AlexNet errors of severities 1-5.

    Raises:
        ArgumentError: shapes differ, values outside [0, 1] (percentages), mappings with different names.
        IncompleteMetricError: a baseline row sums to zero.

    Returns:
        (C,) or scalar float64 tensor.

    Example:
        >>> corruption_error(torch.tensor([[0.2, 0.4], [0.5, 0.5]]), torch.tensor([[0.4, 0.8], [0.5, 0.5]])).tolist()
        [0.5, 1.0]
    """
    errors, baseline = _as_tables(errors, baseline)
    _check_table(errors, baseline)
    return errors.double().sum(-1) / baseline.double().to(errors.device).sum(-1)


def mean_corruption_error(errors: TableLike, baseline: TableLike | None) -> Tensor:
    """mCE: mean of :func:`corruption_error` over the corruptions (pass the 15 benchmark ones for the paper's mCE).

    Tensor tables must list the corruptions in the same row order; pass ``{corruption: errors}`` mappings to have
    rows matched by name (``baseline=None``: AlexNet).

    Example:
        >>> mean_corruption_error(torch.tensor([[0.2, 0.4], [0.5, 0.5]]), torch.tensor([[0.4, 0.8], [0.5, 0.5]]))
        tensor(0.7500, dtype=torch.float64)
    """
    errors, baseline = _as_tables(errors, baseline)
    if errors.dim() != 2:
        raise ArgumentError(f"expected errors of shape (C, S), got {tuple(errors.shape)}")
    return corruption_error(errors, baseline).mean()


def relative_corruption_error(
    errors: Tensor, clean_error: Tensor | float, baseline: Tensor, baseline_clean_error: Tensor | float
) -> Tensor:
    """Relative CE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^base_{s,c} - E^base_clean).

    Example:
        >>> round(relative_corruption_error(torch.tensor([0.3, 0.5]), 0.1, torch.tensor([0.6, 0.8]), 0.4).item(), 6)
        1.0
    """
    _check_table(errors, baseline)
    clean = torch.as_tensor(clean_error, dtype=torch.float64, device=errors.device)
    base_clean = torch.as_tensor(baseline_clean_error, dtype=torch.float64, device=errors.device)
    num = (errors.double() - clean).sum(-1)
    den = (baseline.double().to(errors.device) - base_clean).sum(-1)
    return num / den


def relative_mean_corruption_error(
    errors: Tensor, clean_error: Tensor | float, baseline: Tensor, baseline_clean_error: Tensor | float
) -> Tensor:
    """Relative mCE: mean over corruptions of :func:`relative_corruption_error`."""
    if errors.dim() != 2:
        raise ValueError(f"expected errors of shape (C, S), got {tuple(errors.shape)}")
    return relative_corruption_error(errors, clean_error, baseline, baseline_clean_error).mean()


def unnormalized_mean_error(errors: Tensor) -> Tensor:
    """Mean top-1 error over every (corruption, severity) cell: the CIFAR-10-C / 100-C / Tiny-ImageNet-C number.

    This is **not** an mCE (no baseline); AugMix and later papers report it as "mean corruption error" in %.

    Example:
        >>> unnormalized_mean_error(torch.tensor([[0.1, 0.3], [0.2, 0.4]]))
        tensor(0.2500, dtype=torch.float64)
    """
    return errors.double().mean()


def severity_auc(errors: Tensor) -> Tensor:
    """Trapezoid area under the severity-error curve, divided by (S - 1) (unused helper of ImageNet-C ``test.py``).

    Args:
        errors: (..., S) errors with S >= 2.

    Example:
        >>> severity_auc(torch.tensor([0.0, 0.2, 0.4]))
        tensor(0.2000, dtype=torch.float64)
    """
    e = errors.double()
    if e.shape[-1] < 2:
        raise ValueError(f"severity_auc needs at least two severities, got shape {tuple(errors.shape)}")
    return ((e[..., 1:] + e[..., :-1]) / 2).sum(-1) / (e.shape[-1] - 1)


# ---------------------------------------------------------------------------------------------------- ImageNet-P
def is_noise_perturbation(name: str) -> bool:
    """Noise sequences (name contains ``"noise"``) compare every frame with the clean first frame.

    Example:
        >>> is_noise_perturbation("speckle_noise"), is_noise_perturbation("rotate")
        (True, False)
    """
    return "noise" in name


def frame_pairs(
    num_frames: int, noise: bool, difficulty: int = 1, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """Frame index pairs (reference, compared) used by FP / T5D / zipf (spec 7.3).

    Non-noise sequences compare frames ``j`` and ``j + d`` for every ``j`` (difficulty ``d`` = frame stride; the
    original walks the sub-sequences ``k, k+d, k+2d, ...`` for ``k < d``, which yields exactly these pairs).
    Noise sequences compare every frame ``j >= 1`` with the clean frame 0 whatever the difficulty (their difficulty
    selects the noise strength when the sequence is generated).

    Args:
        num_frames: T >= 2.
        noise: whether the perturbation is a noise type.
        difficulty: 1, 2 or 3 (any stride ``1 <= d < T`` is accepted).
        device: device of the returned indices.

    Returns:
        Two int64 tensors of equal length.

    Example:
        >>> [t.tolist() for t in frame_pairs(5, noise=False, difficulty=2)]
        [[0, 1, 2], [2, 3, 4]]
        >>> [t.tolist() for t in frame_pairs(4, noise=True, difficulty=3)]
        [[0, 0, 0], [1, 2, 3]]
    """
    if isinstance(difficulty, bool) or not isinstance(difficulty, int):
        raise TypeError(f"difficulty must be an int, got {type(difficulty).__name__}")
    if num_frames < 2:
        raise ValueError(f"a perturbation sequence needs at least 2 frames, got {num_frames}")
    if noise:
        cmp = torch.arange(1, num_frames, device=device)
        return torch.zeros_like(cmp), cmp
    if not 1 <= difficulty < num_frames:
        raise ValueError(f"difficulty (frame stride) must be in [1, {num_frames - 1}], got {difficulty}")
    ref = torch.arange(num_frames - difficulty, device=device)
    return ref, ref + difficulty


def _check_sequence_logits(logits: Tensor, name: str = "logits") -> None:
    if not isinstance(logits, Tensor) or logits.dim() != 3 or not logits.is_floating_point():
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"{name}: expected float logits of shape (N, T, K), got {got}")
    _check_finite_logits(logits, name)


def _flip_update(preds: Tensor, noise: bool, difficulty: int) -> tuple[Tensor, Tensor]:
    """Number of flips and number of compared pairs."""
    if preds.is_floating_point():
        _check_sequence_logits(preds, "preds")
        preds = preds.argmax(-1)
    if preds.dim() != 2:
        raise ValueError(f"preds: expected (N, T) class indices or (N, T, K) logits, got {tuple(preds.shape)}")
    ref, cmp = frame_pairs(preds.shape[1], noise, difficulty, preds.device)
    flips = (preds[:, ref] != preds[:, cmp]).sum()
    return flips, torch.tensor(preds.shape[0] * ref.numel(), device=preds.device)


def flip_probability(preds: Tensor, noise: bool, difficulty: int = 1) -> Tensor:
    """Flip probability of one perturbation over N sequences.

    Args:
        preds: (N, T) predicted classes or (N, T, K) logits.
        noise: noise perturbation (compare with frame 0) or not (compare frames ``j`` and ``j + difficulty``).
        difficulty: frame stride for non-noise perturbations.

    Returns:
        Scalar float64 in [0, 1].

    Example:
        >>> flip_probability(torch.tensor([[0, 1, 1, 0]]), noise=False)
        tensor(0.6667, dtype=torch.float64)
        >>> flip_probability(torch.tensor([[0, 1, 1, 0]]), noise=True)
        tensor(0.6667, dtype=torch.float64)
    """
    flips, pairs = _flip_update(preds, noise, difficulty)
    return flips.double() / pairs


def _ranks(logits: Tensor) -> tuple[Tensor, Tensor]:
    """``order[..., r]`` = class at rank r (0-based, descending logits, ties by index); ``rank`` = its inverse."""
    order = torch.argsort(-logits, dim=-1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order).contiguous())
    return order, rank


def _rank_displacement(logits: Tensor, noise: bool, difficulty: int, top: int | None) -> tuple[Tensor, Tensor]:
    """sigma(r) for the pairs: ranks (1-based) in the compared frame of the reference frame's top classes."""
    _check_sequence_logits(logits)
    order, rank = _ranks(logits)
    ref, cmp = frame_pairs(logits.shape[1], noise, difficulty, logits.device)
    k = logits.shape[-1] if top is None else min(top, logits.shape[-1])
    ref_classes = order[:, ref, :k]  # (N, P, k)
    sigma = torch.gather(rank[:, cmp], -1, ref_classes) + 1  # (N, P, k), 1-based
    r = torch.arange(1, k + 1, device=logits.device)
    return sigma, r


def _t5d_update(logits: Tensor, noise: bool, difficulty: int) -> tuple[Tensor, Tensor]:
    sigma, r = _rank_displacement(logits, noise, difficulty, top=5)
    d = (sigma.clamp(max=6) - r).abs().sum(-1)  # (N, P)
    return d.sum().double(), torch.tensor(d.numel(), device=logits.device)


def _zipf_update(logits: Tensor, noise: bool, difficulty: int) -> tuple[Tensor, Tensor]:
    sigma, r = _rank_displacement(logits.double(), noise, difficulty, top=None)
    recip = 1.0 / r.double()
    d = (recip * (recip - 1.0 / sigma.double()).abs()).sum(-1)
    return d.sum(), torch.tensor(d.numel(), device=logits.device)


def top5_distance(logits: Tensor, noise: bool, difficulty: int = 1) -> Tensor:
    """Mean top-5 distance d(a, b) = sum_{r=1..5} |min(sigma(r), 6) - r| over the frame pairs (spec 7.3).

    ``sigma(r)`` is the rank in frame b of the class ranked r in the reference frame a.

    Args:
        logits: (N, T, K) float logits (K >= 1; ranks are taken over all K classes).
        noise: noise perturbation or not (:func:`frame_pairs`).
        difficulty: frame stride for non-noise perturbations.

    Returns:
        Scalar float64 >= 0.

    Example:
        >>> a = torch.tensor([5., 4, 3, 2, 1, 0, -1]); b = torch.tensor([4., 5, 3, 2, 1, 0, -1])
        >>> top5_distance(torch.stack([a, b])[None], noise=False)
        tensor(2., dtype=torch.float64)
    """
    s, n = _t5d_update(logits, noise, difficulty)
    return s / n


def zipf_distance(logits: Tensor, noise: bool, difficulty: int = 1) -> Tensor:
    """Mean zipf distance sum_{r=1..K} (1/r) |1/r - 1/sigma(r)| over the frame pairs (an extra of ``test.py``).

    Example:
        >>> a = torch.tensor([[2., 1.], [1., 2.]])[None]
        >>> zipf_distance(a, noise=False)
        tensor(0.7500, dtype=torch.float64)
    """
    s, n = _zipf_update(logits, noise, difficulty)
    return s / n


def flip_rate(fp: Tensor | float, baseline_fp: Tensor | float) -> Tensor:
    """Flip Rate FR = FP / FP^baseline (elementwise).

    Example:
        >>> flip_rate(torch.tensor([0.1, 0.2]), torch.tensor([0.2, 0.2])).tolist()
        [0.5, 1.0]
    """
    fp = torch.as_tensor(fp, dtype=torch.float64)
    return fp / torch.as_tensor(baseline_fp, dtype=torch.float64, device=fp.device)


def mean_flip_rate(fp: Tensor, baseline_fp: Tensor) -> Tensor:
    """mFR: mean over perturbations of :func:`flip_rate` (pass the 10 test perturbations for the paper's mFR)."""
    return flip_rate(fp, baseline_fp).mean()


def mean_top5_distance(t5d: Tensor, baseline_t5d: Tensor) -> Tensor:
    """mT5D: mean over perturbations of T5D / T5D^baseline.

    Example:
        >>> mean_top5_distance(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0]))
        tensor(1., dtype=torch.float64)
    """
    return flip_rate(t5d, baseline_t5d).mean()


# ---------------------------------------------------------------------------------------------------- calibration
def _confidences(probs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(confidence, correct) from (N, K) probabilities or logits (softmax applied when not probabilities)."""
    if probs.dim() != 2 or target.dim() != 1 or probs.shape[0] != target.shape[0]:
        raise ValueError(
            f"expected probs (N, K) and target (N,) with the same N, got {tuple(probs.shape)} and {tuple(target.shape)}"
        )
    _check_finite_logits(probs, "probs")
    if probs.shape[1] == 0:
        raise ArgumentError(f"probs: expected at least one class, got shape {tuple(probs.shape)}")
    p = probs.double()
    if p.shape[0] == 0:  # an empty batch (a DDP rank with an empty shard) adds nothing
        return p.new_zeros(0), p.new_zeros(0)
    # probabilities or logits, decided on the device (a tensor select, no host read)
    is_prob = (p.min() >= 0) & (p.max() <= 1) & ((p.sum(-1) - 1.0).abs() <= 1e-4 + 1e-5).all()
    p = torch.where(is_prob, p, p.softmax(-1))
    conf, pred = p.max(-1)
    return conf, (pred == target.to(pred.device)).double()


def _ece_update(probs: Tensor, target: Tensor, n_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-bin sums of confidence, correctness and counts; bins (i/n, (i+1)/n], confidence 0 in the first bin."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf, correct = _confidences(probs, target)
    idx = (torch.ceil(conf * n_bins) - 1).clamp(0, n_bins - 1).long()
    zeros = torch.zeros(n_bins, dtype=torch.float64, device=conf.device)
    return (
        zeros.index_add(0, idx, conf),
        zeros.index_add(0, idx, correct),
        zeros.index_add(0, idx, torch.ones_like(conf)),
    )


def _ece_compute(conf_sum: Tensor, acc_sum: Tensor, count: Tensor, norm: str) -> Tensor:
    total = count.sum()
    if float(total) == 0:
        warnings.warn(
            "calibration error of no samples is undefined: returning NaN (no update, or only empty batches)",
            IncompleteMetricWarning,
            stacklevel=3,
        )
        return torch.tensor(float("nan"), dtype=torch.float64, device=count.device)
    nz = count > 0
    gap = (conf_sum[nz] / count[nz] - acc_sum[nz] / count[nz]).abs()
    w = count[nz] / total
    if norm == "l1":
        return (w * gap).sum()
    if norm == "l2":
        return (w * gap**2).sum().sqrt()
    if norm == "max":
        return gap.max() if gap.numel() else torch.tensor(0.0, dtype=torch.float64)
    raise ValueError(f"norm must be 'l1', 'l2' or 'max', got {norm!r}")


def expected_calibration_error(probs: Tensor, target: Tensor, n_bins: int = 15, norm: str = "l1") -> Tensor:
    """Expected calibration error with ``n_bins`` equal-width confidence bins (Guo et al. 2017).

    ECE = sum_b (n_b / N) |mean confidence_b - accuracy_b| (``norm="l1"``); ``"l2"`` takes the root of the weighted
    mean squared gap, ``"max"`` the largest gap (MCE).

    Args:
        probs: (N, K) class probabilities (logits are accepted and soft-maxed).
        target: (N,) class indices.
        n_bins: number of bins of (0, 1].
        norm: ``"l1"``, ``"l2"`` or ``"max"``.

    Returns:
        Scalar float64 in [0, 1]; NaN (with an :class:`~robust_train.errors.IncompleteMetricWarning`) for no samples.

    Raises:
        ArgumentError: NaN / infinite ``probs``, or shapes that do not match.

    Example:
        >>> probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
        >>> round(expected_calibration_error(probs, torch.tensor([0, 1, 0, 0]), n_bins=10).item(), 6)
        0.4
    """
    return _ece_compute(*_ece_update(probs, target, n_bins), norm)


def rms_calibration_error(probs: Tensor, target: Tensor, bin_size: int = 100, skip_last_bin: bool = True) -> Tensor:
    """RMS calibration error with adaptive (equal-mass) bins, as reported by AugMix (Hendrycks et al.).

    Samples are sorted by confidence and cut into bins of ``bin_size`` consecutive samples (the remainder joins the
    last bin); RMS = sqrt(sum_b (n_b / N) (mean confidence_b - accuracy_b)^2). The original ``calib_err`` helper of
    the AugMix / outlier-exposure code loops over ``range(len(bins) - 1)`` and so never adds the last (most
    confident) bin, while still dividing by all N samples; ``skip_last_bin=True`` (default) reproduces that,
    ``False`` gives the textbook definition. Fewer than ``bin_size`` samples make a single bin.

    Args:
        probs: (N, K) probabilities (logits are soft-maxed).
        target: (N,) class indices.
        bin_size: target number of samples per bin (AugMix: 100).
        skip_last_bin: replicate the original's omission of the last bin.

    Returns:
        Scalar float64.

    Example:
        >>> probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
        >>> round(rms_calibration_error(probs, torch.tensor([0, 0, 1, 1]), bin_size=2, skip_last_bin=False).item(), 4)
        0.4717
    """
    conf, correct = _confidences(probs, target)
    return _rms_compute(conf, correct, bin_size, skip_last_bin)


def _rms_compute(conf: Tensor, correct: Tensor, bin_size: int, skip_last_bin: bool) -> Tensor:
    if bin_size < 1:
        raise ValueError(f"bin_size must be >= 1, got {bin_size}")
    n = conf.numel()
    if n == 0:
        warnings.warn(
            "calibration error of no samples is undefined: returning NaN (no update, or only empty batches)",
            IncompleteMetricWarning,
            stacklevel=3,
        )
        return torch.tensor(float("nan"), dtype=torch.float64)
    order = torch.argsort(conf, stable=True)
    conf, correct = conf[order], correct[order]
    n_bins = max(n // bin_size, 1)
    bin_idx = (torch.arange(n, device=conf.device) // bin_size).clamp(max=n_bins - 1)
    zeros = torch.zeros(n_bins, dtype=torch.float64, device=conf.device)
    cnt = zeros.index_add(0, bin_idx, torch.ones_like(conf))
    gap = (zeros.index_add(0, bin_idx, conf) - zeros.index_add(0, bin_idx, correct)) / cnt
    terms = cnt / n * gap**2
    if skip_last_bin:
        terms = terms[:-1]
    return terms.sum().sqrt()
