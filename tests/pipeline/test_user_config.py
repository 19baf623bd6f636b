"""Packaged configs (robust_train/conf) with user config folders in front of them (./conf, ROBUST_TRAIN_CONFIG_DIR)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import HydraException

from robust_train.cli import CONFIG_DIR, config_dirs, find_config_files
from robust_train.evaluation import load_suite

from .conftest import compose_cfg

EXPERIMENT = "# @package _global_\ntags: [user_experiment]\ndata:\n  batch_size: 7\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_packaged_config_folder_is_inside_the_package() -> None:
    conf = Path(CONFIG_DIR)
    assert conf.parent.name == "robust_train" and (conf / "train.yaml").is_file() and (conf / "eval.yaml").is_file()
    assert not (conf.parent.parent / "conf").exists(), "a second copy of the configs at the repository root"


def test_cwd_conf_extends_and_overrides_packaged_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROBUST_TRAIN_CONFIG_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "conf" / "experiment" / "mine.yaml", EXPERIMENT)
    # same name as a packaged option: the user's file wins
    _write(
        tmp_path / "conf" / "data" / "synthetic.yaml",
        "_target_: robust_train.data.SyntheticDataModule\nnum_classes: 3\n",
    )
    _write(tmp_path / "conf" / "local" / "default.yaml", "# @package _global_\nseed: 4242\n")
    assert config_dirs()[0] == (tmp_path / "conf").resolve()
    cfg = compose_cfg("train", ["experiment=mine", "data=synthetic"])
    assert list(cfg.tags) == ["user_experiment"] and cfg.data.batch_size == 7
    assert cfg.data.num_classes == 3 and "image_size" not in cfg.data  # the packaged synthetic.yaml was not merged
    assert cfg.seed == 4242  # conf/local/default.yaml (machine settings)
    packaged = compose_cfg("train", ["data=fashion_mnist"])
    assert packaged.data._target_.endswith("FashionMNISTDataModule")  # the other options still come from the package


def test_env_config_dirs_and_their_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a / "eval" / "mini.yaml", "_target_: robust_train.evaluation.EvalSuite\nname: mini\ncorruptions: [fog]\n")
    _write(b / "eval" / "mini.yaml", "_target_: robust_train.evaluation.EvalSuite\nname: mini_b\ncorruptions: [snow]\n")
    monkeypatch.setenv("ROBUST_TRAIN_CONFIG_DIR", f"{a}:{b}")
    assert config_dirs()[:2] == [a.resolve(), b.resolve()]
    assert find_config_files("eval")["mini"] == a / "eval" / "mini.yaml"  # the first folder wins
    assert load_suite("mini").names == ["fog"] and "c15" in find_config_files("eval")
    cfg = compose_cfg("eval", ["eval=mini", "ckpt_path=x"])
    assert cfg.eval.name == "mini"
    monkeypatch.setenv("ROBUST_TRAIN_CONFIG_DIR", str(tmp_path / "missing"))
    with pytest.raises((NotADirectoryError, HydraException), match="ROBUST_TRAIN_CONFIG_DIR"):
        compose_cfg("train", [])
