"""``import robust_train`` registers the CIFAR nets with timm, with CIFAR data configs (not timm's 224 px default)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import timm
import torch
from timm.data import resolve_data_config

import robust_train  # noqa: F401
from robust_train.models import CIFAR_MODELS
from robust_train.models.cifar import CIFAR_MEAN, CIFAR_STD


@pytest.mark.parametrize("order", ["robust_train, timm", "timm, robust_train"])
def test_import_robust_train_registers_without_lightning(order: str) -> None:
    code = (
        "import sys, robust_train; print('timm' in sys.modules, 'triton' in sys.modules); "
        f"import {order}; m = timm.create_model('wrn40_2_cifar', num_classes=3); "
        "print(m.num_classes, 'lightning' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    # robust_train itself imports neither timm nor triton; the nets are there as soon as timm is
    assert out.stdout.split() == ["False", "False", "3", "False"]


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_data_config_is_cifar(name: str) -> None:
    net = timm.create_model(name, num_classes=100)
    cfg = resolve_data_config(model=net)
    assert cfg["input_size"] == (3, 32, 32)
    assert cfg["interpolation"] == "bilinear" and cfg["crop_pct"] == 1.0
    assert cfg["mean"] == CIFAR_MEAN and cfg["std"] == CIFAR_STD
    assert net.pretrained_cfg["architecture"] == name and net.pretrained_cfg["num_classes"] == 100
    first = dict(net.named_modules())[net.pretrained_cfg["first_conv"]]
    assert isinstance(first, torch.nn.Conv2d) and first.in_channels == 3
    assert isinstance(net.get_classifier(), torch.nn.Linear)
    assert timm.models.get_pretrained_cfg(name).input_size == (3, 32, 32)


def test_pretrained_cfg_overlay_is_applied() -> None:
    net = timm.create_model("resnet8_cifar", pretrained_cfg_overlay={"mean": (0.5, 0.5, 0.5)})
    assert resolve_data_config(model=net)["mean"] == (0.5, 0.5, 0.5)
