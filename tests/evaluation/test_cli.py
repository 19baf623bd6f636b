from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from robust_train.cli import CONFIG_DIR
from robust_train.cli.corrupt import main as corrupt_main
from robust_train.data.corrupted import CifarCDataset


def _compose(name: str, overrides: list[str], tmp_path: Path) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "out")
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.work_dir = str(tmp_path)
        del cfg["hydra"]  # the loggers resolve the whole config; Hydra's own node needs a running app
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_model_summary = False
        cfg.callbacks.pop("rich_progress_bar", None)
    return cfg


def test_eval_suites_compose_and_instantiate(tmp_path):
    from hydra.utils import instantiate

    from robust_train.callbacks import CorruptionEvalCallback, PerturbationEvalCallback

    for suite, cls in (
        ("c15", CorruptionEvalCallback),
        ("c19", CorruptionEvalCallback),
        ("c15_fast", CorruptionEvalCallback),
        ("p10", PerturbationEvalCallback),
        ("p14", PerturbationEvalCallback),
        ("p10_fast", PerturbationEvalCallback),
    ):
        cfg = _compose("eval", [f"eval={suite}", "ckpt_path=x"], tmp_path)
        (node,) = cfg.eval.values()
        cb = instantiate(node)
        assert isinstance(cb, cls) and cb.suite.name == suite


def test_robust_corrupt_export_from_a_data_config(tmp_path, capsys):
    out = tmp_path / "synthetic-c"
    rc = corrupt_main(
        [
            "export",
            "--data",
            "synthetic",
            "--corruptions",
            "contrast,fog",
            "--num-images",
            "6",
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "data.num_test=20",
        ]
    )
    assert rc == 0 and "wrote" in capsys.readouterr().out
    ds = CifarCDataset(out, "fog", 5)
    assert len(ds) == 6 and ds[0][0].shape == (3, 32, 32)
    assert np.load(out / "labels.npy").shape == (30,)
    rc = corrupt_main(["export", "--data", "synthetic", "--suite", "no_such_suite", "--out", str(out)])
    assert rc == 2 and "available" in capsys.readouterr().err
    assert corrupt_main(["list", "--pattern", "*blur*"]) == 0
    listed = capsys.readouterr().out
    assert "motion_blur" in listed and "perturbation sequences" in listed


def test_robust_eval_with_a_weights_file_and_released_root(tmp_path):
    """robust-eval on a timm net loading a plain state dict (no Lightning checkpoint), then on released files."""
    import timm

    import robust_train.models  # noqa: F401  (registers the CIFAR nets with timm)
    from robust_train.cli.eval import evaluate

    net = timm.create_model("resnet8_cifar", num_classes=10)
    torch.save(net.state_dict(), tmp_path / "sd.pth")
    common = [
        "data=synthetic",
        "data.num_test=24",
        "ckpt_path=null",
        f"+model.net.checkpoint_path={tmp_path / 'sd.pth'}",
        "eval=c15",
        "eval.corruption_eval.suite.num_images=8",
        "eval.corruption_eval.suite.corruptions=[contrast,fog]",
        "trainer=cpu",
        "logger=csv",
        "+trainer.limit_test_batches=1",
    ]
    metrics, _ = evaluate(_compose("eval", common, tmp_path))
    for key in ("test/mce", "test/mce_unnorm", "test/c/fog/s3/err", "test/clean_err"):
        assert key in metrics, key
    doc = json.loads((tmp_path / "out" / "c15" / "test.json").read_text())
    assert set(doc["rows"]) == {"contrast", "fog"} and (tmp_path / "out" / "c15" / "test_vs_alexnet.png").is_file()
    with pytest.raises(ValueError, match="needs a checkpoint"):
        evaluate(_compose("eval", ["data=synthetic", "ckpt_path=null"], tmp_path))
    # the released-data path: a missing corruption file is reported by name
    np.save(tmp_path / "labels.npy", np.zeros(10, np.uint8))
    cfg = _compose("eval", [*common, f"eval.corruption_eval.released_root={tmp_path}"], tmp_path)
    with pytest.raises(Exception, match=r"contrast.npy \(missing\)"):
        evaluate(cfg)


@pytest.mark.slow
def test_robust_eval_ddp_sim_matches_one_process(tmp_path):
    """The same weights evaluated with trainer=ddp_sim (2 CPU processes) and trainer=cpu: identical suite numbers."""
    import timm

    import robust_train.models  # noqa: F401
    from robust_train.cli.eval import evaluate

    torch.manual_seed(0)
    torch.save(timm.create_model("resnet8_cifar", num_classes=10).state_dict(), tmp_path / "sd.pth")
    common = [
        "data=synthetic",
        "data.num_test=40",
        "data.eval_batch_size=8",
        "ckpt_path=null",
        f"+model.net.checkpoint_path={tmp_path / 'sd.pth'}",
        "eval=c15_fast",
        "eval.corruption_eval.suite.num_images=10",
        "eval.corruption_eval.suite.batch_size=3",
        "eval.corruption_eval.suite.corruptions=[contrast,gaussian_noise,pixelate]",
        "logger=none",
    ]
    results = {}
    for trainer in ("cpu", "ddp_sim"):
        out = tmp_path / trainer
        out.mkdir()
        cfg = _compose("eval", [*common, f"trainer={trainer}"], out)
        evaluate(cfg)
        hist = json.loads((out / "out" / "c15_fast" / "test_history.json").read_text())[0]
        results[trainer] = hist
    assert results["cpu"]["world_size"] == 1 and results["ddp_sim"]["world_size"] == 2
    a, b = results["cpu"]["metrics"], results["ddp_sim"]["metrics"]
    assert a.keys() == b.keys() and "test/mce" in a
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-12), k
