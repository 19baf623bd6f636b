"""CIFAR nets registered with timm, and the RobustClassifier contracts (augment views, split-aware losses)."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import Tensor, nn

from robust_train.models import CIFAR_MODELS, RobustClassifier, UnknownModelError, check_model_name, create_model


@pytest.mark.parametrize("name", CIFAR_MODELS)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_cifar_models_build_through_timm(name: str, in_chans: int) -> None:
    net = timm.create_model(name, num_classes=7, in_chans=in_chans, pretrained=False)
    net.eval()
    with torch.no_grad():
        out = net(torch.rand(2, in_chans, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert net.num_classes == 7 and net.get_classifier().out_features == 7
    net.reset_classifier(4)
    with torch.no_grad():
        assert net(torch.rand(1, in_chans, 32, 32)).shape == (1, 4)


def test_cifar_models_param_counts() -> None:
    counts = {n: sum(p.numel() for p in timm.create_model(n).parameters()) / 1e6 for n in CIFAR_MODELS}
    # published sizes (CIFAR-10 heads): WRN-40-2 2.2M, ResNeXt-29 4x32d 6.8M, DenseNet-40-12 1.0M, ResNet-18 11.2M
    assert counts["wrn40_2_cifar"] == pytest.approx(2.24, abs=0.05)
    assert counts["resnext29_4x32d_cifar"] == pytest.approx(6.8, abs=0.1)
    assert counts["densenet40_12_cifar"] == pytest.approx(1.06, abs=0.05)
    assert counts["resnet18_cifar"] == pytest.approx(11.17, abs=0.05)


def test_model_errors() -> None:
    with pytest.raises(UnknownModelError, match="Close matches: \\['wrn40_2_cifar'"):
        check_model_name("wrn40-2_cifar")
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("resnet8_cifar", pretrained=True)
    with pytest.raises(TypeError):
        timm.create_model("resnet8_cifar", widht=3)
    assert create_model("resnet50", num_classes=3).num_classes == 3


class _TwoViews(nn.Module):
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, 1.0 - x


class _SplitLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[tuple[int, ...], tuple[int, ...], int]] = []

    def forward(self, logits: Tensor, y: Tensor, num_splits: int = 1) -> Tensor:
        self.seen.append((tuple(logits.shape), tuple(y.shape), num_splits))
        return nn.functional.cross_entropy(logits[: y.shape[0]], y)


class _FakeTrainer:
    training = True


def _module(**kw) -> RobustClassifier:
    net = timm.create_model("resnet8_cifar", num_classes=5)
    return RobustClassifier(net, mean=[0.2, 0.3, 0.4], std=[0.5, 0.6, 0.7], **kw)


def test_forward_normalizes_on_device() -> None:
    m = _module().eval()
    x = torch.rand(3, 3, 32, 32)
    expected = m.net(
        (x - torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.6, 0.7]).view(1, 3, 1, 1)
    )
    with torch.no_grad():
        torch.testing.assert_close(m.forward_normalized(x), expected)
        torch.testing.assert_close(m(x), expected)
        torch.testing.assert_close(
            m.forward_normalized((x * 255).round().to(torch.uint8)), m(((x * 255).round()) / 255)
        )
    with pytest.raises(ValueError, match="expected images of shape"):
        m.normalize(torch.rand(2, 1, 32, 32))


def test_augment_views_and_split_loss_contract() -> None:
    loss = _SplitLoss()
    m = _module(train_augment=_TwoViews(), loss=loss)
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 3])
    m._trainer = _FakeTrainer()  # type: ignore[assignment]
    xb, yb, idx = m.on_after_batch_transfer((x, y, torch.arange(4)), 0)
    assert xb.shape == (8, 3, 32, 32) and xb.dtype == torch.float32
    torch.testing.assert_close(xb[:4], x.float() / 255)
    torch.testing.assert_close(xb[4:], 1 - x.float() / 255)
    out, preds, targets = m.model_step((xb, yb, idx))
    assert loss.seen[-1] == ((8, 5), (4,), 2)
    assert preds.shape == (4,) and torch.equal(targets, y)
    # not training: no augmentation, only the conversion to [0, 1]
    _FakeTrainer.training = False
    try:
        xe, _, _ = m.on_after_batch_transfer((x, y, torch.arange(4)), 0)
    finally:
        _FakeTrainer.training = True
    assert xe.shape == (4, 3, 32, 32)


def test_plain_loss_gets_repeated_labels() -> None:
    seen = {}

    class _CE(nn.CrossEntropyLoss):
        def forward(self, logits: Tensor, target: Tensor) -> Tensor:
            seen["shapes"] = (tuple(logits.shape), tuple(target.shape))
            return super().forward(logits, target)

    m = _module(loss=_CE())
    x = torch.rand(6, 3, 32, 32)
    y = torch.arange(3)
    loss, _, _ = m.model_step((x, y, torch.arange(3)))
    assert seen["shapes"] == ((6, 5), (6,))
    assert loss.ndim == 0
    with pytest.raises(ValueError, match="not a multiple"):
        m.model_step((torch.rand(5, 3, 32, 32), y, y))


def test_augment_receives_labels_and_model_when_declared() -> None:
    got = {}

    class _Adv(nn.Module):
        def forward(self, x: Tensor, y: Tensor | None = None, model=None) -> Tensor:
            got["y"], got["logits"] = y, model(x)
            return x

    m = _module(train_augment=_Adv())
    m._trainer = _FakeTrainer()  # type: ignore[assignment]
    y = torch.tensor([1, 2])
    m.on_after_batch_transfer((torch.rand(2, 3, 32, 32), y, torch.arange(2)), 0)
    assert torch.equal(got["y"], y) and got["logits"].shape == (2, 5)


def test_constructor_errors() -> None:
    net = timm.create_model("resnet8_cifar", num_classes=5)
    with pytest.raises(ValueError, match="scheduler_interval"):
        RobustClassifier(net, scheduler_interval="batch")
    with pytest.raises(ValueError, match="one value per channel"):
        RobustClassifier(net, mean=[0.5], std=[0.5, 0.5])
