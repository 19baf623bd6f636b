"""Cluster configs: submitit launchers (local, SLURM), multi-node trainer; a 2-job sweep through submitit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from .conftest import compose_cfg


@pytest.fixture(autouse=True)
def _needs_submitit_plugin() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'robust-train[cluster]'")


def test_slurm_launcher_follows_the_trainer(tmp_path: Path) -> None:
    cfg = compose_cfg(
        "train",
        [
            "hydra/launcher=cluster_slurm",
            "trainer=ddp_multinode",
            "trainer.num_nodes=3",
            "hydra.launcher.partition=gpu",
        ],
        tmp_path,
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert OmegaConf.select(cfg, "hydra.launcher.nodes") == 3
    assert OmegaConf.select(cfg, "hydra.launcher.tasks_per_node") == 4  # one task per GPU (Lightning on SLURM)
    assert OmegaConf.select(cfg, "hydra.launcher.gpus_per_node") == 4
    assert OmegaConf.select(cfg, "hydra.launcher.name") == "train" and launcher.partition == "gpu"
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.accelerator == "gpu"


def test_local_launcher_and_ddp_devices(tmp_path: Path) -> None:
    cfg = compose_cfg("train", ["hydra/launcher=cluster_local", "trainer=ddp", "trainer.devices=8"], tmp_path)
    assert cfg.hydra.launcher._target_.endswith("LocalLauncher") and cfg.hydra.launcher.gpus_per_node == 0
    assert cfg.trainer.devices == 8 and cfg.trainer.num_nodes == 1
    assert compose_cfg("train", ["trainer=ddp"], tmp_path).trainer.devices == "auto"


@pytest.mark.slow
def test_submitit_local_two_job_sweep(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "robust_train.cli.train",
        "-m",
        "hydra/launcher=cluster_local",
        "data=synthetic",
        "++trainer.fast_dev_run=true",
        "model.optimizer.lr=0.05,0.1",
        "callbacks=none",
        "logger=none",
        "eval=none",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p.parent.parent.name for p in sweep.rglob(".hydra/config.yaml"))
    assert jobs == ["0", "1"]
    lrs = sorted(OmegaConf.load(sweep / j / ".hydra" / "config.yaml").model.optimizer.lr for j in jobs)
    assert lrs == [0.05, 0.1]
    # each job ran in a submitit worker process, with its own submitit log
    logs = list((sweep / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2, logs
    for j in jobs:
        assert "Starting testing!" in (sweep / j / "train.log").read_text()
