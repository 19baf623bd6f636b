"""Every method trains a tiny network for a few CPU steps: finite loss that goes down; composition works."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robust_train.augment import (
    AdversarialAugment,
    AugMix,
    Compose,
    CorruptionAugment,
    GaussianNoiseAugment,
    Stylize,
)
from robust_train.corruptions import CORRUPTIONS
from robust_train.losses import CleanLogitPairingLoss, JsdCrossEntropy, LogitPairingLoss, SplitCrossEntropy
from robust_train.perturbations import PGD

pytestmark = pytest.mark.filterwarnings("ignore:corruptions not registered", "ignore:training corruptions")


def _patterns(n: int, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four easy classes: horizontal stripes, vertical stripes, checkerboard, centred blob (plus noise)."""
    g = torch.Generator().manual_seed(seed)
    i = torch.arange(size).float()
    yy, xx = torch.meshgrid(i, i, indexing="ij")
    protos = torch.stack(
        [
            (yy // 2 % 2),
            (xx // 2 % 2),
            ((yy // 2 + xx // 2) % 2),
            (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 4) ** 2).float(),
        ]
    )
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.2 + 0.6 * protos[y].unsqueeze(1).expand(-1, 3, -1, -1)
    x = (x + 0.1 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    return x, y


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 4),
    )


def _train(augment: nn.Module | None, loss: nn.Module, steps: int = 16, batch: int = 16) -> list[float]:
    """The RobustClassifier data flow: views = augment(x, y=, model=); loss(net(views), y, num_splits)."""
    net = _net().train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x_all, y_all = _patterns(steps * batch)
    losses = []
    for s in range(steps):
        x, y = x_all[s * batch : (s + 1) * batch], y_all[s * batch : (s + 1) * batch]
        views = x if augment is None else augment(x, y=y, model=net)
        num_splits = views.shape[0] // batch
        value = loss(net(views), y, num_splits=num_splits)
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(float(value.detach()))
    return losses


def _check(losses: list[float]) -> None:
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.8 * first, losses


def _corruptions() -> list[str]:
    names = [n for n in ("contrast", "brightness", "fog") if n in CORRUPTIONS]
    if not names:
        pytest.skip("no corruption registered")
    return names


@pytest.mark.parametrize(
    "method",
    ["baseline", "augmix", "augmix_jsd", "corruption", "gaussian_noise", "alp", "pgd_at", "clp", "stylize", "compose"],
)
def test_method_trains(method):
    ce = SplitCrossEntropy()
    table = {
        "baseline": lambda: (None, ce),
        "augmix": lambda: (AugMix(seed=0), ce),
        "augmix_jsd": lambda: (AugMix(jsd=True, seed=0), JsdCrossEntropy()),
        "corruption": lambda: (CorruptionAugment(_corruptions(), severity=(1.0, 3.0), eval_suite=None, seed=0), ce),
        "gaussian_noise": lambda: (GaussianNoiseAugment(sigma=(0.0, 0.1), seed=0), ce),
        "alp": lambda: (AdversarialAugment(PGD(eps=2 / 255, step_size=1 / 255, steps=2), seed=0), LogitPairingLoss()),
        "pgd_at": lambda: (
            AdversarialAugment(PGD(eps=2 / 255, step_size=1 / 255, steps=2), seed=0),
            LogitPairingLoss(lam=0.0),
        ),
        "clp": lambda: (None, CleanLogitPairingLoss(lam=0.1)),
        "stylize": lambda: (
            Stylize(styles=_patterns(3, seed=9)[0], pretrained=False, p=0.5, min_encoder_size=16, seed=0),
            ce,
        ),
        "compose": lambda: (Compose([GaussianNoiseAugment(seed=0), AugMix(jsd=True, seed=0)]), JsdCrossEntropy()),
    }
    augment, loss = table[method]()
    _check(_train(augment, loss))


def test_compose_replay_and_splits():
    x, y = _patterns(4)
    net = _net().eval()
    aug = Compose([None, GaussianNoiseAugment(p=1.0, seed=0), AdversarialAugment(PGD(steps=1), seed=0)])
    out = aug(x, y=y, model=net)
    assert aug.num_splits == 2 and aug.needs_model and out.shape == (8, 3, 16, 16)
    assert [n for n, _ in aug.last_params] == ["GaussianNoiseAugment", "AdversarialAugment"]
    assert torch.equal(aug(x, params=aug.last_params, y=y, model=net), out)
    nested = Compose([AugMix(jsd=True, seed=0), GaussianNoiseAugment(p=1.0, seed=0)])
    assert nested(x).shape == (12, 3, 16, 16) and nested.num_splits == 3
    with pytest.raises(TypeError, match="BatchAugment"):
        Compose([nn.Identity()])
