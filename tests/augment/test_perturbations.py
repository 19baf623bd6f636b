"""PGD / FGSM, projections and the adversarial augmentation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robust_train.augment import AdversarialAugment
from robust_train.perturbations import FGSM, PERTURBATIONS, PGD, Attack, lp_norm, project_l2, project_linf


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 5)
    )


def _data(b: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, 3, 8, 8, generator=g), torch.randint(0, 5, (b,), generator=g)


def _loss(net, x, y) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(net(x), y))


def test_pgd_increases_loss_and_respects_budget():
    net = _net().eval()
    x, y = _data()
    eps = 8 / 255
    delta = PGD(eps=eps, step_size=2 / 255, steps=10, seed=0).attack(net, x, y)
    assert delta.abs().max() <= eps + 1e-6
    x_adv = Attack.apply(x, delta)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    noise = (torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) * 2 - 1) * eps
    clean, rand, adv = _loss(net, x, y), _loss(net, (x + noise).clamp(0, 1), y), _loss(net, x_adv, y)
    assert adv > clean + 0.05 and adv > rand + 0.05
    more = PGD(eps=eps, step_size=2 / 255, steps=20, seed=0).attack(net, x, y)
    assert _loss(net, Attack.apply(x, more), y) >= adv - 1e-3


def test_pgd_l2_budget_and_fgsm():
    net = _net().eval()
    x, y = _data()
    d = PGD(eps=0.5, step_size=0.1, steps=5, norm="l2", seed=0).attack(net, x, y)
    assert lp_norm(d, "l2").max() <= 0.5 + 1e-5
    assert _loss(net, x + d, y) > _loss(net, x, y)
    f = FGSM(eps=4 / 255).attack(net, x, y)
    assert f.abs().max() <= 4 / 255 + 1e-6 and _loss(net, Attack.apply(x, f), y) > _loss(net, x, y)
    assert FGSM(eps=4 / 255, random_start=True).step_size == pytest.approx(5 / 255)
    assert PERTURBATIONS.list() == ["fgsm", "pgd"]


def test_pgd_deterministic_from_seeds_and_restores_modes():
    net = _net().train()
    net[1].eval()  # mixed modes must come back exactly
    x, y = _data(4)
    seeds = torch.tensor([1, 2, 3, 4])
    running = net[1].running_mean.clone()
    a = PGD(steps=3).attack(net, x, y, seeds)
    b = PGD(steps=3).attack(net, x, y, seeds)
    assert torch.equal(a, b)
    assert net.training and not net[1].training and net[0].training
    assert torch.equal(net[1].running_mean, running)  # eval mode: no BN statistics updated by the attack
    assert all(p.grad is None for p in net.parameters())  # gradients only w.r.t. delta
    net2 = _net().train()
    rm = net2[1].running_mean.clone()
    PGD(steps=2, eval_mode=False).attack(net2, x, y, seeds)
    assert not torch.equal(net2[1].running_mean, rm)  # train-mode attack updates BN statistics


def test_random_start_differs_per_sample():
    x = torch.full((4, 3, 8, 8), 0.5)
    d = PGD(steps=0, seed=0).attack(lambda t: t.flatten(1)[:, :5], x, torch.zeros(4, dtype=torch.long))
    assert d.abs().max() <= 8 / 255 and torch.unique(d.flatten(1), dim=0).shape[0] == 4
    assert torch.equal(PGD(steps=0, random_start=False).attack(lambda t: t.flatten(1), x, torch.zeros(4).long()), 0 * d)


def test_projections():
    d = torch.randn(3, 2, 4, 4)
    assert project_linf(d, 0.1).abs().max() <= 0.1
    eps = torch.tensor([0.5, 1.0, 100.0])
    p = project_l2(d, eps)
    assert (lp_norm(p, "l2") <= eps + 1e-5).all()
    assert torch.equal(p[2], d[2])  # inside the ball: unchanged
    with pytest.raises(ValueError, match="eps"):
        project_linf(d, torch.ones(2))


def test_bad_attack_arguments():
    with pytest.raises(ValueError, match="norm"):
        PGD(norm="l1")
    with pytest.raises(ValueError, match="eps"):
        PGD(eps=-1)
    with pytest.raises(ValueError, match="labels"):
        PGD().attack(_net(), torch.rand(2, 3, 8, 8), torch.zeros(3, dtype=torch.long))


def test_adversarial_augment_splits_and_replay():
    net = _net().eval()
    x, y = _data(6)
    aug = AdversarialAugment(PGD(steps=3), seed=0)
    out = aug(x, y=y, model=net)
    assert aug.num_splits == 2 and aug.needs_model and out.shape == (12, 3, 8, 8)
    assert torch.equal(out[:6], x)
    assert (out[6:] - x).abs().max() <= 8 / 255 + 1e-6 and not torch.equal(out[6:], x)
    assert torch.equal(aug(x, params=aug.last_params, y=y, model=net), out)
    only = AdversarialAugment(PGD(steps=1), include_clean=False, seed=0)
    assert only.num_splits == 1 and only(x, y=y, model=net).shape == x.shape
    none = AdversarialAugment(PGD(steps=2), p=0.0, seed=0)
    assert torch.equal(none(x, y=y, model=net)[6:], x)
    with pytest.raises(ValueError, match="needs the network and the labels"):
        aug(x)
    with pytest.raises(TypeError, match="Attack"):
        AdversarialAugment(attack="pgd")  # type: ignore[arg-type]
