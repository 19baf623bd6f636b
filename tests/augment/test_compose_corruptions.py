"""``augment.Compose`` takes corruption modules as stages, next to training augmentations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robust_train import create_corruption
from robust_train.augment import AugMix, Compose, GaussianNoiseAugment


def test_corruption_stage_equals_the_corruption_and_replays() -> None:
    x = torch.rand(4, 3, 32, 32)
    fog = create_corruption("fog", severity=(1.0, 5.0), seed=3)
    aug = Compose([fog, GaussianNoiseAugment(p=1.0, seed=0)])
    out = aug(x)
    assert out.shape == x.shape and aug.num_splits == 1 and not aug.needs_model
    (name0, p0), (name1, _) = aug.last_params
    assert (name0, name1) == ("Fog", "GaussianNoiseAugment")
    # the corruption stage is the corruption module applied with the recorded params
    noise_only = Compose([GaussianNoiseAugment(p=1.0, seed=0)])
    assert torch.equal(out, noise_only(fog(x, params=p0)))
    assert torch.equal(aug(x, params=aug.last_params), out)  # the whole chain replays
    assert not torch.equal(aug(x), out)  # fresh draws differ


def test_corruption_then_multi_view_stage() -> None:
    x = torch.rand(2, 3, 32, 32)
    aug = Compose([create_corruption("contrast", severity=2, p=1.0), AugMix(jsd=True, seed=0)])
    out = aug(x)
    assert out.shape == (6, 3, 32, 32) and aug.num_splits == 3
    # the clean view of AugMix is the corrupted batch
    assert torch.equal(out[:2], create_corruption("contrast", severity=2)(x, params=aug.last_params[0][1]))


def test_rejects_other_modules_by_name() -> None:
    with pytest.raises(TypeError, match="expected BatchAugment or Corruption stages.*got Identity"):
        Compose([nn.Identity()])
