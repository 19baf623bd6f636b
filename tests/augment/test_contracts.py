"""Contracts every batch augmentation keeps (``augment/base.py``): bitwise replay from ``last_params``, a seeded module
repeats its draws, another seed draws differently, and without a seed the global generator decides."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
import torch

from robust_train.augment import AugMix, BatchAugment, Noise2Net, PixMix, Prime
from tests._helpers import seeded_images

FACTORIES: dict[str, Callable[..., BatchAugment]] = {
    "augmix_jsd": partial(AugMix, jsd=True),
    "augmix_pil": partial(AugMix, jsd=True, pil_exact=True, all_ops=True),
    "pixmix_jsd": partial(PixMix, jsd=True),
    "prime_cifar_jsd": partial(Prime, preset="cifar", jsd=True),
    "prime_imagenet_jsd": partial(Prime, preset="imagenet", jsd=True),
    "noise2net": partial(Noise2Net, p=1.0),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_replay_and_seed(name: str) -> None:
    make = FACTORIES[name]
    x = seeded_images(4)
    aug = make(seed=5)
    out = aug(x)
    assert out.shape == (aug.num_splits * x.shape[0], *x.shape[1:])
    assert torch.equal(aug(x, params=aug.last_params), out)  # replay
    assert torch.equal(make(seed=5)(x), out)  # same seed, same draws
    assert not torch.equal(make(seed=6)(x), out)
    torch.manual_seed(3)
    a = make()(x)
    torch.manual_seed(3)
    assert torch.equal(make()(x), a)  # the global generator when no seed
