"""The command-line entry points as a user runs them: multiruns over experiments, Optuna sweeps, DDP on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import group_options

# experiments that need files a test machine does not have (style images, VGG weights)
NEEDS_EXTERNAL_FILES = ("*stylized*",)

FAST = [
    "++trainer.fast_dev_run=true",
    "++trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
    "~callbacks.rich_progress_bar",
    "logger=none",
    "data.num_workers=0",
    "++data.persistent_workers=false",
    "++data.pin_memory=false",
]


def run_cli(module: str, args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROJECT_ROOT": str(cwd), "HYDRA_FULL_ERROR": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{module} {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def _job_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("logs/train/multiruns/*/*/train.log"))


def test_cli_multirun_over_experiments(tmp_path: Path) -> None:
    """The two default experiments, as one `-m` multirun through `python -m robust_train.cli.train`."""
    proc = run_cli(
        "robust_train.cli.train", ["-m", "experiment=fmnist_default,synthetic_smoke", "data=synthetic", *FAST], tmp_path
    )
    jobs = _job_dirs(tmp_path)
    assert len(jobs) == 2
    overrides = sorted((job / ".hydra" / "overrides.yaml").read_text() for job in jobs)
    assert "experiment=fmnist_default" in overrides[0] and "experiment=synthetic_smoke" in overrides[1]
    assert proc.stdout.count("robust-train summary") == 2  # each job trained, tested and printed its summary


@pytest.mark.slow
def test_cli_multirun_glob_all_experiments(tmp_path: Path) -> None:
    """`experiment=glob(*)` with fast_dev_run on synthetic data: every experiment's recipe builds and steps."""
    exclude = ",".join(NEEDS_EXTERNAL_FILES)
    run_cli(
        "robust_train.cli.train",
        ["-m", f"experiment=glob(*,exclude=[{exclude}])", "data=synthetic", *FAST],
        tmp_path,
        timeout=3600,
    )
    n_expected = len([e for e in group_options("experiment") if "stylized" not in e])
    assert len(_job_dirs(tmp_path)) == n_expected


@pytest.mark.slow
def test_optuna_sweep_three_trials(tmp_path: Path) -> None:
    run_cli(
        "robust_train.cli.train",
        [
            "hparams_search=fmnist_optuna",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.n_startup_trials=2",
            "data=synthetic",
            *FAST,
        ],
        tmp_path,
    )
    results = list(tmp_path.glob("logs/train/multiruns/*/optimization_results.yaml"))
    assert len(results) == 1 and "best_value" in results[0].read_text()
    assert len(_job_dirs(tmp_path)) == 3


@pytest.mark.slow
def test_ddp_sim_two_cpu_processes(tmp_path: Path) -> None:
    """`trainer=ddp_sim`: 2 spawned CPU processes (gloo); batch size divided per device; test after fit."""
    proc = run_cli(
        "robust_train.cli.train",
        [
            "trainer=ddp_sim",
            "data=synthetic",
            "data.batch_size=32",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=3",
            "+trainer.limit_val_batches=2",
            "+trainer.limit_test_batches=2",
            "++trainer.enable_progress_bar=false",
            "~callbacks.rich_progress_bar",
            "~callbacks.model_summary",
        ],
        tmp_path,
    )
    runs = list(tmp_path.glob("logs/train/runs/*/checkpoints/last.ckpt"))
    assert len(runs) == 1
    assert "test/acc" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_cli_unknown_model_fails_with_clear_message(tmp_path: Path) -> None:
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "robust_train.cli.train", "model.net.model_name=wrn40_2", "data=synthetic", *FAST],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2
    assert "robust-train: error: unknown model 'wrn40_2'" in proc.stderr and "wrn40_2_cifar" in proc.stderr
    assert "Traceback" not in proc.stderr
