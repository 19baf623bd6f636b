"""Self-describing checkpoints: plain ``load_from_checkpoint``, and ``robust-eval`` following the training run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict

from robust_train.cli.eval import evaluate
from robust_train.cli.train import fit_and_test
from robust_train.models import RobustClassifier
from robust_train.models.lit_classifier import CHECKPOINT_KEY
from robust_train.utils.run_config import apply_run_config, load_run_config

from .conftest import compose_cfg, shrink

# not the eval.yaml defaults (fashion_mnist, 10 classes, 32-true): robust-eval must take these from the checkpoint
TRAIN_OVERRIDES = ["data=synthetic", "data.num_classes=5", "trainer.precision=bf16-mixed", "+model.net.drop_rate=0.1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, RobustClassifier]:
    tmp = tmp_path_factory.mktemp("train")
    cfg = shrink(compose_cfg("train", TRAIN_OVERRIDES, tmp))
    with open_dict(cfg):
        cfg.trainer.limit_test_batches = 2
    metrics, objects = fit_and_test(cfg)
    GlobalHydra.instance().clear()
    ckpt = objects["trainer"].checkpoint_callback.best_model_path
    assert ckpt and Path(ckpt).is_file()
    return ckpt, {k: float(v) for k, v in metrics.items()}, objects["model"]


def test_plain_load_from_checkpoint(trained: tuple[str, dict, RobustClassifier]) -> None:
    ckpt, _, _ = trained
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)  # nothing but builtins and tensors pickled
    hp = raw["hyper_parameters"]
    assert hp["net"] == {
        "model_name": "resnet8_cifar",
        "pretrained": False,
        "num_classes": 5,
        "in_chans": 3,
        "drop_rate": 0.1,
    }
    assert "optimizer" not in hp and "scheduler" not in hp
    model = RobustClassifier.load_from_checkpoint(ckpt, map_location="cpu")
    assert model.num_classes == 5 and model.net.drop_rate == 0.1
    assert model.hparams.mean == [0.5, 0.5, 0.5]
    sd = raw["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    cfg = OmegaConf.create(model.run_config)
    assert cfg.data._target_.endswith("SyntheticDataModule") and cfg.trainer.precision == "bf16-mixed"
    model.eval()
    x = torch.rand(3, 3, 32, 32)
    assert model(x).shape == (3, 5)


def test_robust_eval_follows_the_training_run(trained: tuple[str, dict, RobustClassifier], tmp_path: Path) -> None:
    ckpt, metrics, _ = trained
    ecfg = shrink(compose_cfg("eval", [f"ckpt_path={ckpt}"], tmp_path))  # eval.yaml defaults: fashion_mnist, 32-true
    with open_dict(ecfg):
        ecfg.trainer.limit_test_batches = 2
    emetrics, objects = evaluate(ecfg)
    GlobalHydra.instance().clear()
    assert objects["cfg"].data.num_classes == 5 and objects["trainer"].precision == "bf16-mixed"
    assert type(objects["datamodule"]).__name__ == "SyntheticDataModule"
    # the end-of-training test accuracy, exactly
    assert float(emetrics["test/acc"]) == metrics["test/acc"]
    assert float(emetrics["test/loss"]) == metrics["test/loss"]


def test_overrides_win_and_mismatches_warn(trained: tuple[str, dict, RobustClassifier], tmp_path: Path) -> None:
    ckpt, _, _ = trained
    run_cfg, source = load_run_config(ckpt)
    assert run_cfg is not None and ckpt in source
    overrides = ["ckpt_path=x", "data=fashion_mnist", "trainer.precision=32-true"]
    ecfg = compose_cfg("eval", overrides, tmp_path)
    warnings = apply_run_config(ecfg, run_cfg, overrides, source)
    assert ecfg.data._target_.endswith("FashionMNISTDataModule") and ecfg.trainer.precision == "32-true"
    assert ecfg.model.net.drop_rate == 0.1  # not overridden: from the training run
    assert len(warnings) == 2 and warnings[0].startswith("data:") and warnings[1].startswith("trainer.precision:")
    same = ["ckpt_path=x", "data=synthetic", "data.num_classes=5"]
    ecfg = compose_cfg("eval", same, tmp_path)
    assert apply_run_config(ecfg, run_cfg, same, source) == []  # chosen but equal to the training run's: silent
    GlobalHydra.instance().clear()


def test_run_config_from_the_hydra_folder(trained: tuple[str, dict, RobustClassifier], tmp_path: Path) -> None:
    ckpt, _, _ = trained
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    raw.pop(CHECKPOINT_KEY)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".hydra").mkdir()
    torch.save(raw, run / "checkpoints" / "old.ckpt")
    assert load_run_config(run / "checkpoints" / "old.ckpt") == (None, "")
    (run / ".hydra" / "config.yaml").write_text("data:\n  _target_: x.Y\n  num_classes: 7\n")
    cfg, source = load_run_config(run / "checkpoints" / "old.ckpt")
    assert cfg.data.num_classes == 7 and source.endswith(".hydra/config.yaml")


def test_module_net_without_spec_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="net: expected an nn.Module or a spec"):
        RobustClassifier(mean=[0.5] * 3, std=[0.25] * 3)
