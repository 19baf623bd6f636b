from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robust_train.corruptions.suites import BENCHMARK_ORDER, EXTRA
from robust_train.metrics import functional as MF
from robust_train.metrics.baselines import ALEXNET_CLEAN_ERROR, ALEXNET_IMAGENET_C_ERRORS

# Published "Average" column of the AlexNet table (spec 7.1): an independent check of the per-severity data.
PUBLISHED_AVERAGES = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
    "speckle_noise": 0.845388,
    "gaussian_blur": 0.787108,
    "spatter": 0.717512,
    "saturate": 0.658248,
}


def test_alexnet_table_matches_published_averages():
    assert set(ALEXNET_IMAGENET_C_ERRORS) == set(BENCHMARK_ORDER) | set(EXTRA)
    for name, avg in PUBLISHED_AVERAGES.items():
        assert sum(ALEXNET_IMAGENET_C_ERRORS[name]) / 5 == pytest.approx(avg, abs=2e-6), name
    assert ALEXNET_CLEAN_ERROR == pytest.approx(0.43478)


def test_corruption_error_hand_computed_alexnet_normalisation():
    errors = torch.tensor([[0.2, 0.3, 0.4, 0.5, 0.6]], dtype=torch.float64)
    base = MF.alexnet_errors(["gaussian_noise"])
    # sum of gaussian_noise AlexNet errors = 0.69528 + 0.82542 + 0.93554 + 0.98138 + 0.99452 = 4.43214
    assert MF.corruption_error(errors, base).item() == pytest.approx(2.0 / 4.43214, rel=1e-12)
    # severity subset: normalise by the same severities only
    sub = MF.corruption_error(torch.tensor([0.2, 0.6]), MF.alexnet_errors(["gaussian_noise"], [1, 5])[0])
    assert sub.item() == pytest.approx(0.8 / (0.69528 + 0.99452), rel=1e-6)


def test_mce_of_alexnet_itself_is_one_and_halving_gives_half():
    base = MF.alexnet_errors(BENCHMARK_ORDER)
    assert MF.mean_corruption_error(base, base).item() == pytest.approx(1.0)
    assert MF.mean_corruption_error(base / 2, base).item() == pytest.approx(0.5)
    # mCE is a mean of per-corruption ratios, not a ratio of means
    errors = torch.tensor([[0.1, 0.1], [0.5, 0.5]], dtype=torch.float64)
    baseline = torch.tensor([[0.2, 0.2], [0.5, 0.5]], dtype=torch.float64)
    assert MF.mean_corruption_error(errors, baseline).item() == pytest.approx((0.5 + 1.0) / 2)


def test_relative_mce_hand_computed():
    errors = torch.tensor([[0.3, 0.5], [0.2, 0.2]], dtype=torch.float64)
    baseline = torch.tensor([[0.6, 0.8], [0.5, 0.7]], dtype=torch.float64)
    # c0: (0.2 + 0.4) / (0.2 + 0.4) = 1 ; c1: (0.1 + 0.1) / (0.1 + 0.3) = 0.5
    rel = MF.relative_corruption_error(errors, 0.1, baseline, 0.4)
    assert rel.tolist() == pytest.approx([1.0, 0.5])
    assert MF.relative_mean_corruption_error(errors, 0.1, baseline, 0.4).item() == pytest.approx(0.75)


def test_unnormalized_mean_and_auc():
    e = torch.tensor([[0.1, 0.2, 0.3], [0.3, 0.4, 0.5]])
    assert MF.unnormalized_mean_error(e).item() == pytest.approx(0.3)
    # trapezoid: ((0.1+0.2)/2 + (0.2+0.3)/2) / 2 = 0.2
    assert MF.severity_auc(e[0]).item() == pytest.approx(0.2)


def test_top1_error_accepts_indices_and_logits():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert MF.top1_error(logits, torch.tensor([0, 0, 0])).item() == pytest.approx(1 / 3)
    assert MF.top1_error(torch.tensor([0, 1, 0]), torch.tensor([0, 0, 0])).item() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="same N"):
        MF.top1_error(torch.tensor([0, 1]), torch.tensor([0]))


def test_table_shape_mismatch_raises():
    with pytest.raises(ValueError, match="equal shape"):
        MF.corruption_error(torch.rand(2, 5), torch.rand(2, 4))
    with pytest.raises(ValueError, match="no error for"):
        MF.alexnet_errors(["not_a_corruption"])


# ------------------------------------------------------------------------------------------------ flips
def test_flip_probability_noise_vs_other_rule():
    preds = torch.tensor([[0, 1, 1, 1, 1]])
    # consecutive frames: one flip among 4 pairs; vs the clean frame: every later frame differs
    assert MF.flip_probability(preds, noise=False).item() == pytest.approx(1 / 4)
    assert MF.flip_probability(preds, noise=True).item() == pytest.approx(1.0)
    preds = torch.tensor([[3, 3, 5, 3, 3]])
    assert MF.flip_probability(preds, noise=False).item() == pytest.approx(2 / 4)
    assert MF.flip_probability(preds, noise=True).item() == pytest.approx(1 / 4)


def test_flip_probability_difficulty_striding():
    preds = torch.tensor([[0, 1, 1, 1, 1]])
    # d=2: pairs (0,2) (1,3) (2,4) -> one flip in three; d=3: (0,3) (1,4) -> one in two
    assert MF.flip_probability(preds, noise=False, difficulty=2).item() == pytest.approx(1 / 3)
    assert MF.flip_probability(preds, noise=False, difficulty=3).item() == pytest.approx(1 / 2)
    # noise sequences ignore the stride (difficulty is in the data)
    assert MF.flip_probability(preds, noise=True, difficulty=3).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="difficulty"):
        MF.flip_probability(preds, noise=False, difficulty=5)


def _reference_flip_prob(preds: np.ndarray, noise: bool, difficulty: int) -> float:
    """Loop form of spec 7.3 (per-sequence mean over strided sub-sequences, then mean over sequences)."""
    step = 1 if noise else difficulty
    total = 0.0
    for vid in preds:
        res = []
        for k in range(step):
            prev = vid[k]
            for p in vid[k::step][1:]:
                res.append(int(prev != p))
                if not noise:
                    prev = p
        total += np.mean(res) / len(preds)
    return total


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_flip_probability_matches_loop_reference(noise, difficulty):
    g = torch.Generator().manual_seed(difficulty + 10 * noise)
    preds = torch.randint(0, 3, (7, 31), generator=g)
    expected = _reference_flip_prob(preds.numpy(), noise, difficulty)
    assert MF.flip_probability(preds, noise, difficulty).item() == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------------------------------------ top-5 / zipf
def _seq(*frames):
    return torch.tensor([frames], dtype=torch.float64)


def test_top5_distance_hand_computed():
    k = 10
    a = torch.arange(k, 0, -1).double()  # class 0 ranked first, class 9 last
    assert MF.top5_distance(_seq(a.tolist(), a.tolist()), noise=False).item() == 0.0
    b = a.clone()
    b[0], b[1] = a[1], a[0]  # swap ranks 1 and 2 -> |2-1| + |1-2|
    assert MF.top5_distance(_seq(a.tolist(), b.tolist()), noise=False).item() == 2.0
    c = a.clone()
    c[0] = -1.0  # top class falls to rank 10: min(10, 6) - 1 = 5; ranks 2..5 move up by one: 4
    assert MF.top5_distance(_seq(a.tolist(), c.tolist()), noise=False).item() == 9.0
    # changes below rank 6 do not count
    d = a.clone()
    d[7], d[8] = a[8], a[7]
    assert MF.top5_distance(_seq(a.tolist(), d.tolist()), noise=False).item() == 0.0
    # noise: frames 1 and 2 are compared with frame 0 (2 and 9), not with each other
    seq = _seq(a.tolist(), b.tolist(), c.tolist())
    assert MF.top5_distance(seq, noise=True).item() == pytest.approx((2 + 9) / 2)
    # consecutive: (a, b) = 2, (b, c): class 0 (rank 2 in b) -> 10: |6-2| = 4; class 1 stays 1; ranks 3..5 -> 2..4: 3
    assert MF.top5_distance(seq, noise=False).item() == pytest.approx((2 + 7) / 2)


def test_zipf_distance_hand_computed():
    # two classes swapped: r=1 -> sigma 2: 1*|1 - 1/2| ; r=2 -> sigma 1: 1/2*|1/2 - 1|  => 0.75
    assert MF.zipf_distance(_seq([2.0, 1.0], [1.0, 2.0]), noise=False).item() == pytest.approx(0.75)
    assert MF.zipf_distance(_seq([2.0, 1.0], [3.0, 1.0]), noise=False).item() == 0.0


def _reference_rank_dist(logits: np.ndarray, noise: bool, difficulty: int, mode: str) -> float:
    """Spec 7.3 with scipy ordinal ranks, loop form."""
    from scipy.stats import rankdata

    k = logits.shape[-1]
    step = 1 if noise else difficulty
    recip = 1.0 / np.arange(1, k + 1)

    def dist(sigma):
        if mode == "top5":
            return float(np.abs(np.minimum(sigma[:5], 6) - np.arange(1, 6)).sum())
        return float(np.sum(recip * np.abs(recip - 1.0 / sigma)))

    total = 0.0
    for vid in logits:
        ranks = [rankdata(-f, method="ordinal") for f in vid]
        res = []
        for s in range(step):
            inv = np.argsort(ranks[s])
            for r in ranks[s::step][1:]:
                res.append(dist(r[inv]))
                if not noise:
                    inv = np.argsort(r)
        total += np.mean(res) / len(logits)
    return total


@pytest.mark.parametrize("noise,difficulty", [(False, 1), (False, 2), (True, 1), (False, 3)])
def test_rank_distances_match_scipy_reference_with_ties(noise, difficulty):
    pytest.importorskip("scipy")
    g = torch.Generator().manual_seed(3)
    logits = torch.randint(0, 4, (5, 9, 12), generator=g).double()  # many ties: ordinal rank breaks them by index
    for mode, fn in (("top5", MF.top5_distance), ("zipf", MF.zipf_distance)):
        expected = _reference_rank_dist(logits.numpy(), noise, difficulty, mode)
        assert fn(logits, noise, difficulty).item() == pytest.approx(expected, rel=1e-10), mode


def test_flip_rate_and_means():
    assert MF.flip_rate(torch.tensor([0.1, 0.3]), torch.tensor([0.2, 0.2])).tolist() == pytest.approx([0.5, 1.5])
    assert MF.mean_flip_rate(torch.tensor([0.1, 0.3]), torch.tensor([0.2, 0.2])).item() == pytest.approx(1.0)
    assert MF.mean_top5_distance(torch.tensor([1.0, 4.0]), torch.tensor([2.0, 2.0])).item() == pytest.approx(1.25)


def test_sequence_input_validation():
    with pytest.raises(ValueError, match=r"\(N, T, K\)"):
        MF.top5_distance(torch.rand(3, 4), noise=False)
    with pytest.raises(ValueError, match="at least 2 frames"):
        MF.flip_probability(torch.zeros(2, 1, dtype=torch.long), noise=False)
    with pytest.raises(TypeError, match="difficulty"):
        MF.frame_pairs(5, False, 1.5)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ calibration
def test_ece_hand_computed():
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    target = torch.tensor([0, 1, 0, 0])
    # bin (0.9, 1]: conf 0.95, acc 0.5 -> gap 0.45 ; bin (0.5, 0.6]: conf 0.55, acc 1 -> gap 0.45
    assert MF.expected_calibration_error(probs, target, n_bins=10).item() == pytest.approx(0.45)
    assert MF.expected_calibration_error(probs, target, n_bins=10, norm="max").item() == pytest.approx(0.45)
    assert MF.expected_calibration_error(probs, target, n_bins=1).item() == pytest.approx(abs(0.75 - 0.75))


def test_ece_matches_torchmetrics():
    from torchmetrics.functional.classification import multiclass_calibration_error

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 5, generator=g) * 2
    target = torch.randint(0, 5, (500,), generator=g)
    probs = logits.softmax(-1)
    for norm in ("l1", "l2", "max"):
        ours = MF.expected_calibration_error(probs, target, n_bins=15, norm=norm).item()
        ref = multiclass_calibration_error(probs, target, num_classes=5, n_bins=15, norm=norm).item()
        assert ours == pytest.approx(ref, abs=1e-5), norm
    # logits are soft-maxed
    assert MF.expected_calibration_error(logits, target).item() == pytest.approx(
        MF.expected_calibration_error(probs, target).item(), abs=1e-6
    )


def test_rms_calibration_hand_computed_and_last_bin_rule():
    probs = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1], [0.95, 0.05]])
    target = torch.tensor([1, 1, 0, 0, 1])
    # bins of 2 sorted by confidence: [0.6, 0.7] acc 0 ; [0.8, 0.9, 0.95] (remainder joins) acc 2/3
    g0 = 0.65 - 0.0
    g1 = (0.8 + 0.9 + 0.95) / 3 - 2 / 3
    full = math.sqrt(2 / 5 * g0**2 + 3 / 5 * g1**2)
    assert MF.rms_calibration_error(probs, target, bin_size=2, skip_last_bin=False).item() == pytest.approx(full)
    # the original never adds its last bin but still divides by N
    assert MF.rms_calibration_error(probs, target, bin_size=2).item() == pytest.approx(math.sqrt(2 / 5 * g0**2))
    with pytest.raises(ValueError, match="bin_size"):
        MF.rms_calibration_error(probs, target, bin_size=0)


def test_perfectly_calibrated_is_zero():
    # 10 samples at confidence 0.8 with 8 correct
    probs = torch.tensor([[0.8, 0.2]] * 10)
    target = torch.tensor([0] * 8 + [1] * 2)
    assert MF.expected_calibration_error(probs, target).item() == pytest.approx(0.0, abs=1e-6)
    assert MF.rms_calibration_error(probs, target, bin_size=10, skip_last_bin=False).item() == pytest.approx(
        0.0, abs=1e-6
    )
