"""JSD consistency loss, split-aware cross-entropy and logit pairing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robust_train.losses import CleanLogitPairingLoss, JsdCrossEntropy, LogitPairingLoss, SplitCrossEntropy
from robust_train.losses import functional as LF


def test_jsd_zero_for_identical_predictions():
    z = torch.randn(4, 10)
    assert float(LF.jensen_shannon(z.repeat(3, 1), 3)) == pytest.approx(0.0, abs=1e-6)
    y = torch.randint(0, 10, (4,))
    loss = JsdCrossEntropy()(z.repeat(3, 1), y)
    torch.testing.assert_close(loss, F.cross_entropy(z, y), atol=1e-5, rtol=0)


def test_jsd_hand_computed_two_class_example():
    # p1 = (1, 0), p2 = (0, 1) in the limit: JS = log 2 for two splits (natural log)
    z = torch.tensor([[30.0, -30.0], [-30.0, 30.0]])
    assert float(LF.jensen_shannon(z, 2)) == pytest.approx(math.log(2), abs=1e-5)
    # three splits with explicit softmaxes
    z3 = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [0.5, 0.5, 0.5]])
    p = z3.softmax(1)
    m = p.mean(0)
    expect = sum(float((pi * (pi / m).log()).sum()) for pi in p) / 3
    assert float(LF.jensen_shannon(z3, 3)) == pytest.approx(expect, rel=1e-5)


def test_jsd_properties():
    z = torch.randn(15, 7)
    js = LF.jensen_shannon(z, 3)
    assert js > 0
    perm = torch.cat([z[5:10], z[10:], z[:5]])
    torch.testing.assert_close(LF.jensen_shannon(perm, 3), js)  # symmetric in the splits
    assert js <= math.log(3) + 1e-6  # bounded by log(num_splits)


def test_jsd_matches_timm():
    timm_loss = pytest.importorskip("timm.loss")
    g = torch.Generator().manual_seed(0)
    z = torch.randn(12, 10, generator=g)
    y = torch.randint(0, 10, (4,), generator=g)
    for smoothing in (0.0, 0.1):
        ref = timm_loss.JsdCrossEntropy(num_splits=3, alpha=12, smoothing=smoothing)(z, y)
        ours = JsdCrossEntropy(num_splits=3, alpha=12, smoothing=smoothing)(z, y)
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_jsd_target_forms_and_gradients():
    z = torch.randn(6, 5, requires_grad=True)
    y = torch.tensor([1, 3])
    a = JsdCrossEntropy()(z, y)
    b = JsdCrossEntropy()(z, y.repeat(3))
    torch.testing.assert_close(a, b)
    a.backward()
    assert torch.isfinite(z.grad).all() and z.grad[2:].abs().sum() > 0  # the JS term reaches the augmented splits


def test_jsd_errors():
    with pytest.raises(ValueError, match="not divisible"):
        JsdCrossEntropy()(torch.randn(7, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="AugMix\\(jsd=True\\)"):
        JsdCrossEntropy()(torch.randn(6, 3), torch.zeros(6, dtype=torch.long), num_splits=1)
    with pytest.raises(ValueError, match="labels"):
        JsdCrossEntropy()(torch.randn(6, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="num_splits"):
        JsdCrossEntropy(num_splits=1)


def test_split_cross_entropy():
    z = torch.randn(6, 4)
    y = torch.tensor([0, 3])
    torch.testing.assert_close(SplitCrossEntropy()(z[:2], y), F.cross_entropy(z[:2], y))
    torch.testing.assert_close(SplitCrossEntropy()(z, y, num_splits=3), F.cross_entropy(z, y.repeat(3)))
    torch.testing.assert_close(SplitCrossEntropy(clean_only=True)(z, y, num_splits=3), F.cross_entropy(z[:2], y))


def test_logit_pairing_terms():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (4,), generator=g)
    ce_c, ce_a = F.cross_entropy(z[:4], y), F.cross_entropy(z[4:], y)
    mse = ((z[:4] - z[4:]) ** 2).mean()
    torch.testing.assert_close(LogitPairingLoss(lam=0.0)(z, y), ce_c + ce_a)  # plain mixed PGD training
    torch.testing.assert_close(LogitPairingLoss(lam=0.5)(z, y), ce_c + ce_a + 0.5 * mse)
    torch.testing.assert_close(LogitPairingLoss(lam=0.0, clean_weight=0.0)(z, y), ce_a)
    torch.testing.assert_close(LogitPairingLoss(lam=0.0)(z[4:], y, num_splits=1), ce_a)
    same = z[:4].repeat(2, 1)
    torch.testing.assert_close(LogitPairingLoss(lam=3.0)(same, y), 2 * F.cross_entropy(z[:4], y))


def test_logit_pairing_errors():
    with pytest.raises(ValueError, match="pairing needs"):
        LogitPairingLoss(lam=0.5)(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), num_splits=1)
    with pytest.raises(ValueError, match="2 splits"):
        LogitPairingLoss()(torch.randn(6, 3), torch.zeros(2, dtype=torch.long), num_splits=3)
    with pytest.raises(ValueError, match="lam"):
        LogitPairingLoss(lam=-1)


def test_clean_logit_pairing():
    z = torch.randn(5, 3)
    y = torch.tensor([0, 1, 2, 0, 1])
    expect = F.cross_entropy(z, y) + 0.5 * ((z[:2] - z[2:4]) ** 2).mean()
    torch.testing.assert_close(CleanLogitPairingLoss(lam=0.5)(z, y), expect)
    with pytest.raises(ValueError, match="at least 2"):
        CleanLogitPairingLoss()(z[:1], y[:1])
    with pytest.raises(ValueError, match="one clean split"):
        CleanLogitPairingLoss()(z[:4], y[:2], num_splits=2)


def test_eval_mode_is_plain_cross_entropy():
    z = torch.randn(4, 5)
    y = torch.tensor([0, 1, 2, 3])
    ce = F.cross_entropy(z, y)
    for loss in (JsdCrossEntropy(), LogitPairingLoss(lam=0.5), CleanLogitPairingLoss(lam=0.5)):
        torch.testing.assert_close(loss.eval()(z, y, num_splits=1), ce)
    assert not torch.allclose(CleanLogitPairingLoss(lam=0.5).train()(z, y), ce)
