"""The augment/loss config options and the training-method experiments compose and instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from robust_train.augment import (
    AdversarialAugment,
    AugMix,
    CorruptionAugment,
    FractalMixingSet,
    GaussianNoiseAugment,
    ImageFolderMixingSet,
    Noise2Net,
    PixMix,
    Prime,
    Stylize,
)
from robust_train.cli import CONFIG_DIR
from robust_train.losses import CleanLogitPairingLoss, JsdCrossEntropy, LogitPairingLoss

CONF = Path(CONFIG_DIR)
OURS = {
    "augmix": AugMix,
    "augmix_jsd": AugMix,
    "stylize": Stylize,
    "alp": AdversarialAugment,
    "corrupt": CorruptionAugment,
    "gaussian_noise": GaussianNoiseAugment,
    "prime": Prime,
    "prime_jsd": Prime,
    "noise2net": Noise2Net,
    "pixmix": PixMix,
}
LOSSES = {"jsd": JsdCrossEntropy, "alp": LogitPairingLoss, "clp": CleanLogitPairingLoss}
EXPERIMENTS = sorted(
    p.stem
    for p in (CONF / "experiment").glob("*.yaml")
    if p.stem.split("_")[0] in ("cifar10", "cifar100", "imagenet", "tiny", "fmnist") and p.stem != "fmnist_default"
)

pytestmark = pytest.mark.filterwarnings("ignore:corruptions not registered")


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train.yaml", overrides=overrides)


@pytest.mark.parametrize("name", sorted(OURS))
def test_augment_options_instantiate(name):
    aug = instantiate(_compose([f"augment={name}"]).augment)
    assert isinstance(aug, OURS[name])
    if name in ("augmix_jsd", "prime_jsd"):
        assert aug.num_splits == 3
    if name == "alp":
        assert aug.num_splits == 2 and abs(aug.attack.eps - 8 / 255) < 1e-6
    if name not in ("stylize", "alp"):  # stylize needs weights files, alp a model
        assert aug(torch.rand(2, 3, 32, 32)).shape[0] == 2 * aug.num_splits


def test_pixmix_config_fractals_by_default_and_a_folder_by_one_key(tmp_path):
    from PIL import Image

    aug = instantiate(_compose(["augment=pixmix"]).augment)
    assert isinstance(aug.mixing_set, FractalMixingSet) and (aug.k, aug.beta, aug.aug_severity) == (4, 3.0, 3.0)
    Image.new("RGB", (40, 36), (10, 200, 30)).save(tmp_path / "pic.png")
    aug = instantiate(_compose(["augment=pixmix", f"augment.mixing_set.root={tmp_path}"]).augment)
    assert isinstance(aug.mixing_set, ImageFolderMixingSet) and len(aug.mixing_set) == 1
    assert aug(torch.rand(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    cfg = _compose(["experiment=imagenet_pixmix_resnet50"])
    assert (cfg.augment.beta, cfg.augment.aug_severity) == (4.0, 1.0)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_options_instantiate(name):
    assert isinstance(instantiate(_compose([f"loss={name}"]).loss), LOSSES[name])


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiments_compose_with_matching_augment_and_loss(name):
    cfg = _compose([f"experiment={name}"])
    aug = instantiate(cfg.augment) if cfg.get("augment") and "_target_" in cfg.augment else None
    loss = instantiate(cfg.loss)
    splits = 1 if aug is None else aug.num_splits
    if isinstance(loss, JsdCrossEntropy):
        assert splits == loss.num_splits == 3
    if isinstance(loss, LogitPairingLoss) and loss.lam > 0:
        assert splits == 2
    if splits > 1:
        assert isinstance(loss, (JsdCrossEntropy, LogitPairingLoss))
    assert cfg.trainer.max_epochs >= 1 and cfg.tags
