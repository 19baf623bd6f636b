"""The built wheel works outside the checkout: configs and kernels ship inside the package (slow).

Builds the wheel, installs it with ``--no-deps`` into a fresh virtual environment that sees the system's packages
(torch, Lightning, ... are not downloaded again), and runs the four CLIs from an empty folder as a new user would:
``robust-train data=synthetic debug=fdr``, a short training run, ``robust-eval`` on its checkpoint (same test
accuracy), ``robust-corrupt export`` and ``robust-corrupt preview``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


def _metric(text: str, key: str) -> str:
    values = re.findall(rf"{re.escape(key)}\s*│\s*([0-9.]+)", text)
    assert values, f"{key} not in output:\n{text[-3000:]}"
    return values[-1]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PROJECT_ROOT", "ROBUST_TRAIN_CONFIG_DIR")}
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", HYDRA_FULL_ERROR="1")
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp), str(ROOT)],
        tmp,
        env,
    )
    wheel = next(tmp.glob("robust_train-*.whl"))
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(tmp / "venv")], tmp, env)
    bin_dir = tmp / "venv" / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp, env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return bin_dir, env


def test_cli_from_the_wheel(venv: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    bin_dir, env = venv
    work = tmp_path / "user"
    work.mkdir()
    where = _run([str(bin_dir / "python"), "-c", "import robust_train; print(robust_train.__file__)"], work, env)
    assert str(bin_dir.parent) in where and str(ROOT) not in where, where  # the installed copy, not the checkout
    conf = _run(
        [str(bin_dir / "python"), "-c", "from robust_train.cli import CONFIG_DIR; print(CONFIG_DIR)"], work, env
    ).strip()
    assert conf.startswith(str(bin_dir.parent)) and Path(conf, "train.yaml").is_file()
    kernels = _run(
        [str(bin_dir / "python"), "-c", "from robust_train.functional import _dispatch as d; print(d.kernels_dir())"],
        work,
        env,
    ).strip()
    assert Path(kernels, "hash_noise.py").is_file()

    _run([str(bin_dir / "robust-train"), "--help"], work, env)
    _run([str(bin_dir / "robust-train"), "data=synthetic", "debug=fdr"], work, env)
    limits = ["+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=2"]
    train = _run([str(bin_dir / "robust-train"), "data=synthetic", "trainer.max_epochs=1", *limits], work, env)
    ckpt = next((work / "logs" / "train" / "runs").rglob("epoch_*.ckpt"))
    evaluate = _run([str(bin_dir / "robust-eval"), f"ckpt_path={ckpt}", "+trainer.limit_test_batches=2"], work, env)
    assert _metric(evaluate, "test/acc") == _metric(train, "test/acc")  # eval took data/model from the checkpoint

    unknown = subprocess.run(
        [str(bin_dir / "robust-corrupt"), "export", "--data", "synthetic", "--suite", "nope", "--out", "x"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert unknown.returncode != 0 and "'c15_fast'" in unknown.stderr  # the packaged suites are listed
    out = _run(
        [
            str(bin_dir / "robust-corrupt"),
            "export",
            "--data",
            "synthetic",
            "--suite",
            "c15_fast",
            "--corruptions",
            "contrast,fog",
            "--severities",
            "1,2,3,4,5",
            "--num-images",
            "8",
            "--out",
            str(work / "synthetic-c"),
        ],
        work,
        env,
    )
    assert "wrote c15_fast" in out and (work / "synthetic-c" / "fog.npy").is_file()

    from PIL import Image

    Image.new("RGB", (48, 40), (120, 60, 200)).save(work / "photo.png")
    out = _run(
        [
            str(bin_dir / "robust-corrupt"),
            "preview",
            "photo.png",
            "--out",
            "grid.png",
            "--corruptions",
            "contrast,fog",
            "--severities",
            "1,3",
        ],
        work,
        env,
    )
    assert (work / "grid.png").is_file() and "wrote" in out
