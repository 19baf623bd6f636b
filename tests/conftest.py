"""Shared fixtures: ``device`` / ``dtype`` parametrisation (kornia style) and reference-package shims."""

from __future__ import annotations

import os

import pytest
import torch

# Under pytest-xdist every worker is a process of its own: one intra-op thread each, or two workers with two threads
# each oversubscribe a 2-core machine badly (torch ops then stall for milliseconds each).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

DEVICES = ("cpu", "cuda")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default=None, help="cpu | cuda | all (env RT_TEST_DEVICE; default cpu)")
    parser.addoption("--dtype", default=None, help="float32 | float64 | float16 | bfloat16 | all (env RT_TEST_DTYPE)")


def _values(config: pytest.Config, opt: str, env: str, default: str, allowed: tuple[str, ...]) -> list[str]:
    raw = config.getoption(opt) or os.environ.get(env) or default
    vals = list(allowed) if raw == "all" else [v.strip() for v in raw.split(",")]
    bad = [v for v in vals if v not in allowed]
    if bad:
        raise pytest.UsageError(f"{opt}: unknown value(s) {bad}; expected one of {list(allowed)} or 'all'")
    return vals


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" in metafunc.fixturenames:
        devs = _values(metafunc.config, "--device", "RT_TEST_DEVICE", "cpu", DEVICES)
        params = [
            pytest.param(d, marks=pytest.mark.skipif(d == "cuda" and not torch.cuda.is_available(), reason="no CUDA"))
            for d in devs
        ]
        metafunc.parametrize("device", params)
    if "dtype" in metafunc.fixturenames:
        names = _values(metafunc.config, "--dtype", "RT_TEST_DTYPE", "float32", tuple(DTYPES))
        metafunc.parametrize("dtype", [DTYPES[n] for n in names], ids=names)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)
