"""The training methods inside the real pipeline: RobustClassifier + Hydra configs + robust-report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from robust_train.augment import AdversarialAugment, AugMix
from robust_train.cli import CONFIG_DIR, report
from robust_train.cli.train import fit_and_test
from robust_train.losses import JsdCrossEntropy, LogitPairingLoss
from robust_train.models import RobustClassifier
from robust_train.perturbations import PGD

CONF = Path(CONFIG_DIR)


def compose_cfg(config_name: str, overrides: list[str], tmp_path: Path):
    """Compose ``conf/<config_name>.yaml`` with Hydra's runtime paths filled in and every output under tmp_path."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.root_dir = cfg.paths.work_dir = str(tmp_path)
        cfg.paths.output_dir = cfg.hydra.runtime.output_dir = str(tmp_path / "out")
        cfg.paths.log_dir = str(tmp_path / "logs")
    return cfg


def shrink(cfg):
    """CPU, one process, 1-2 batches per loop, no workers, no progress bars."""
    with open_dict(cfg):
        cfg.trainer.update(
            accelerator="cpu",
            devices=1,
            max_epochs=1,
            limit_train_batches=2,
            limit_val_batches=1,
            limit_test_batches=1,
            log_every_n_steps=1,
            enable_model_summary=False,
            enable_progress_bar=False,
        )
        cfg.data.update(num_workers=0, pin_memory=False)
        if cfg.get("callbacks"):
            cfg.callbacks.pop("rich_progress_bar", None)
            cfg.callbacks.pop("model_summary", None)
    return cfg


pytestmark = pytest.mark.filterwarnings("ignore:corruptions not registered", "ignore:.*does not have many workers")
ROOT = Path(__file__).resolve().parents[2]


def _net() -> torch.nn.Module:
    import timm

    return timm.create_model("resnet8_cifar", num_classes=10)


def test_robust_classifier_applies_views_and_restores_mode():
    m = RobustClassifier(_net(), train_augment=AugMix(jsd=True, seed=0), loss=JsdCrossEntropy(), num_classes=10)
    m.train()
    x, y = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), torch.arange(4)

    class _T:  # the two trainer attributes on_after_batch_transfer reads
        training = True

    m._trainer = _T()  # type: ignore[assignment]
    views, yy, *_ = m.on_after_batch_transfer((x, y), 0)
    assert views.shape == (12, 3, 32, 32) and torch.equal(views[:4], x.float() / 255)
    loss, preds, _ = m.model_step((views, yy))
    assert torch.isfinite(loss) and preds.shape == (4,)
    alp = RobustClassifier(
        _net(), train_augment=AdversarialAugment(PGD(steps=2), seed=0), loss=LogitPairingLoss(), num_classes=10
    )
    alp.train()
    alp._trainer = _T()  # type: ignore[assignment]
    views, yy, *_ = alp.on_after_batch_transfer((x, y), 0)
    assert views.shape == (8, 3, 32, 32) and (views[4:] - views[:4]).abs().max() <= 8 / 255 + 1e-6
    assert alp.training and all(mod.training for mod in alp.net.modules())  # eval mode only during the attack
    assert torch.isfinite(alp.model_step((views, yy))[0])


@pytest.mark.parametrize(
    ("augment", "loss"),
    [
        ("augmix_jsd", "jsd"),
        ("alp", "alp"),
        pytest.param("augmix", "ce", marks=pytest.mark.slow),
        pytest.param("pixmix", "ce", marks=pytest.mark.slow),
        pytest.param("corrupt", "ce", marks=pytest.mark.slow),
        pytest.param("gaussian_noise", "ce", marks=pytest.mark.slow),
        pytest.param("none", "clp", marks=pytest.mark.slow),
    ],
)
def test_fast_dev_run_with_method(augment, loss, tmp_path):
    overrides = ["data=synthetic", "debug=fdr", f"augment={augment}", f"loss={loss}"]
    if augment == "alp":
        overrides.append("augment.attack.steps=2")
    metrics, objects = fit_and_test(shrink(compose_cfg("train", overrides, tmp_path)))
    assert torch.isfinite(metrics["train/loss"]) and 0 <= float(metrics["test/acc"]) <= 1
    assert type(objects["model"].train_augment).__name__ != "NoneType" or augment == "none"


def test_fast_dev_run_with_stylize(tmp_path):
    from PIL import Image

    styles = tmp_path / "styles"
    styles.mkdir()
    for i in range(2):
        Image.effect_noise((40, 40), 60 + 40 * i).convert("RGB").save(styles / f"s{i}.png")
    overrides = [
        "data=synthetic",
        "debug=fdr",
        "augment=stylize",
        f"augment.style_dir={styles}",
        "augment.pretrained=false",
        "augment.style_size=32",
        "augment.min_encoder_size=32",
    ]
    metrics, _ = fit_and_test(shrink(compose_cfg("train", overrides, tmp_path)))
    assert torch.isfinite(metrics["train/loss"])


def test_short_runs_then_report(tmp_path):
    for name, overrides in (("baseline", []), ("augmix_jsd", ["augment=augmix_jsd", "loss=jsd"])):
        cfg = shrink(compose_cfg("train", ["data=synthetic", "logger=csv", *overrides], tmp_path / name))
        with open_dict(cfg):
            cfg.data.num_train = 128
            cfg.callbacks = None
            cfg.hydra.job.num = 0  # the logged config resolves hydra.sweep.subdir
        fit_and_test(cfg)
    runs = report.collect_runs(tmp_path)
    assert sorted(r.name for r in runs) == ["augmix_jsd/out", "baseline/out"]
    cols, rows = report.summary_rows(runs)
    assert cols[:2] == ["run", "clean_err"] and all(0 <= r["clean_err"] <= 100 for r in rows)
    paths = report.write_report(runs, tmp_path / "report")
    assert "baseline/out" in paths["markdown"].read_text()


@pytest.mark.slow
def test_sweep_of_two_experiments_fast_dev_run(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "robust_train.cli.train",
        "-m",
        "experiment=fmnist_ablation_augmix_jsd,fmnist_ablation_alp",
        "data=synthetic",
        "++trainer.fast_dev_run=true",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.sweep.dir={sweep}",
        "callbacks=none",
        "eval=none",
    ]
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p.parent.parent.name for p in sweep.rglob(".hydra/config.yaml"))
    assert jobs == ["0", "1"]
