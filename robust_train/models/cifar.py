"""CIFAR-resolution (32x32) classifiers, registered with timm so that ``timm.create_model`` builds them.

These are the architectures used in the corruption-robustness literature at CIFAR scale (the AugMix paper's
table: AllConvNet, DenseNet-40-12, WRN-40-2, ResNeXt-29), a ResNet-18 with a CIFAR stem, and a small fast ResNet
(``resnet8_cifar``) that trains Fashion-MNIST to ~92% in a few CPU minutes, used by the default ``make train`` job.

Every entrypoint takes the usual timm keywords ``num_classes``, ``in_chans`` and ``drop_rate`` (dropout before the
classifier). There are no pretrained weights: ``pretrained=True`` raises. Each net carries a timm ``pretrained_cfg``
for CIFAR inputs (3x32x32, CIFAR-10 mean/std, bilinear, crop_pct 1), so ``timm.data.resolve_data_config(model=net)``
gives the CIFAR pipeline rather than timm's 224 px ImageNet default. ``import robust_train`` registers the nets.

Example:
    >>> import timm, torch
    >>> import robust_train.models  # registers the nets
    >>> net = timm.create_model("resnet8_cifar", num_classes=10, in_chans=3)
    >>> net(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import generate_default_cfgs, get_pretrained_cfg, register_model
from torch import Tensor, nn

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_MODELS",
    "CIFAR_STD",
    "AllConvNet",
    "CifarDenseNet",
    "CifarResNeXt",
    "CifarResNet",
    "WideResNet",
    "allconv_cifar",
    "densenet40_12_cifar",
    "resnet18_cifar",
    "resnet8_cifar",
    "resnext29_4x32d_cifar",
    "wrn40_2_cifar",
]

# keywords timm's create_model passes to every entrypoint; ours have no pretrained weights to use them with
_TIMM_META = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "pretrained_model_args")

#: CIFAR-10 training-set channel statistics (as ``conf/data/cifar10.yaml``), the nets' default data config
CIFAR_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)


def _cifar_cfg(first_conv: str) -> dict[str, Any]:
    """The timm data config of a CIFAR-resolution net (no weights: ``url`` / ``hf_hub_id`` empty)."""
    return {
        "url": "",
        "num_classes": 10,
        "input_size": (3, 32, 32),
        "pool_size": None,
        "crop_pct": 1.0,
        "crop_mode": "center",
        "interpolation": "bilinear",
        "fixed_input_size": False,
        "mean": CIFAR_MEAN,
        "std": CIFAR_STD,
        "first_conv": first_conv,
        "classifier": "fc",
        "license": "apache-2.0",
    }


# read by timm's register_model (module attribute ``default_cfgs``): one default cfg per entrypoint name
default_cfgs = generate_default_cfgs(
    {
        "resnet8_cifar": _cifar_cfg("stem.0.0"),
        "resnet18_cifar": _cifar_cfg("stem.0.0"),
        "wrn40_2_cifar": _cifar_cfg("stem"),
        "resnext29_4x32d_cifar": _cifar_cfg("stem.0.0"),
        "densenet40_12_cifar": _cifar_cfg("stem"),
        "allconv_cifar": _cifar_cfg("features.0"),
    }
)


class _Classifier(nn.Module):
    """Common head and timm-style classifier API shared by the nets below."""

    num_classes: int
    num_features: int
    drop_rate: float
    fc: nn.Module

    def _init_head(self, num_features: int, num_classes: int, drop_rate: float) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_features = num_features
        self.num_classes = num_classes
        self.drop_rate = float(drop_rate)
        self.fc = nn.Linear(num_features, num_classes)

    def get_classifier(self) -> nn.Module:
        """Return the final linear layer (timm API)."""
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` (timm API)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:  # pragma: no cover - overridden
        """Return the final feature map, shape (B, num_features, h, w)."""
        raise NotImplementedError

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global-average-pool the feature map and apply dropout and the classifier."""
        x = x.mean(dim=(2, 3))
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (B, num_classes), for images of shape (B, in_chans, H, W)."""
        return self.forward_head(self.forward_features(x))

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


# ------------------------------------------------------------------------------------------------- ResNet (post-act)
class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride)
        self.conv2 = _conv_bn(cout, cout, 3, 1)
        self.shortcut = _conv_bn(cin, cout, 1, stride) if (stride != 1 or cin != cout) else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.conv1(x), inplace=True)
        return F.relu(self.conv2(out) + self.shortcut(x), inplace=True)


class CifarResNet(_Classifier):
    """ResNet with basic blocks and a 3x3 stride-1 stem (no max-pool), as used for 32x32 inputs.

    Args:
        layers: number of basic blocks per stage.
        widths: output channels per stage; stages after the first halve the resolution.
        num_classes: classifier outputs.
        in_chans: input channels.
        stem_width: channels of the stem convolution (default ``widths[0]``).
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        layers: Sequence[int] = (2, 2, 2, 2),
        widths: Sequence[int] = (64, 128, 256, 512),
        num_classes: int = 10,
        in_chans: int = 3,
        stem_width: int | None = None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"layers and widths must have the same length, got {len(layers)} and {len(widths)}")
        stem_width = stem_width or widths[0]
        self.stem = nn.Sequential(_conv_bn(in_chans, stem_width, 3, 1), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        cin = stem_width
        for i, (n, w) in enumerate(zip(layers, widths, strict=True)):
            for j in range(n):
                blocks.append(_BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
        self.stages = nn.Sequential(*blocks)
        self._init_head(cin, num_classes, drop_rate)
        self._init_weights()

    def forward_features(self, x: Tensor) -> Tensor:
        """Return the final feature map, shape (B, num_features, H/2^(stages-1), W/2^(stages-1))."""
        return self.stages(self.stem(x))


# ------------------------------------------------------------------------------------------ Wide ResNet (pre-act)
class _PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if (stride != 1 or cin != cout) else None

    def forward(self, x: Tensor) -> Tensor:
        o = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        o = F.relu(self.bn2(o))
        if self.dropout > 0:
            o = F.dropout(o, p=self.dropout, training=self.training)
        return self.conv2(o) + skip


class WideResNet(_Classifier):
    """Wide ResNet WRN-depth-k (Zagoruyko & Komodakis 2016), pre-activation blocks, three stages.

    Args:
        depth: total depth, ``6n + 4``.
        widen_factor: channel multiplier k (stage widths 16k, 32k, 64k).
        num_classes: classifier outputs.
        in_chans: input channels.
        block_dropout: dropout between the two convolutions of each block.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        depth: int = 40,
        widen_factor: int = 2,
        num_classes: int = 10,
        in_chans: int = 3,
        block_dropout: float = 0.0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.stem = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        cin = 16
        for i, w in enumerate(widths):
            for j in range(n):
                blocks.append(_PreActBlock(cin, w, 2 if (i > 0 and j == 0) else 1, block_dropout))
                cin = w
        self.stages = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self._init_head(cin, num_classes, drop_rate)
        self._init_weights()

    def forward_features(self, x: Tensor) -> Tensor:
        """Return the final (post-BN-ReLU) feature map, shape (B, 64k, H/4, W/4)."""
        return F.relu(self.bn(self.stages(self.stem(x))))


# ---------------------------------------------------------------------------------------------------- ResNeXt-29
class _ResNeXtBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, cardinality: int, group_width: int) -> None:
        super().__init__()
        d = cardinality * group_width
        self.reduce = _conv_bn(cin, d, 1)
        self.grouped = _conv_bn(d, d, 3, stride, groups=cardinality)
        self.expand = _conv_bn(d, cout, 1)
        self.shortcut = _conv_bn(cin, cout, 1, stride) if (stride != 1 or cin != cout) else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        o = F.relu(self.reduce(x), inplace=True)
        o = F.relu(self.grouped(o), inplace=True)
        return F.relu(self.expand(o) + self.shortcut(x), inplace=True)


class CifarResNeXt(_Classifier):
    """ResNeXt-29 for CIFAR (Xie et al. 2017): three stages of bottleneck blocks with grouped 3x3 convolutions.

    Args:
        depth: total depth, ``9n + 2``.
        cardinality: number of groups.
        base_width: channels per group in the first stage (doubled per stage).
        widen_factor: stage output widths are ``64 * widen_factor * 2**i``.
        num_classes: classifier outputs.
        in_chans: input channels.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        depth: int = 29,
        cardinality: int = 4,
        base_width: int = 32,
        widen_factor: int = 4,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 2) % 9 != 0:
            raise ValueError(f"ResNeXt depth must be 9n+2, got {depth}")
        n = (depth - 2) // 9
        self.stem = nn.Sequential(_conv_bn(in_chans, 64, 3, 1), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        cin = 64
        for i in range(3):
            cout = 64 * widen_factor * 2**i
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(_ResNeXtBlock(cin, cout, stride, cardinality, base_width * 2**i))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self._init_head(cin, num_classes, drop_rate)
        self._init_weights()

    def forward_features(self, x: Tensor) -> Tensor:
        """Return the final feature map, shape (B, 1024, H/4, W/4) for the default widths."""
        return self.stages(self.stem(x))


# --------------------------------------------------------------------------------------------------- DenseNet-40
class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bottleneck: bool) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        c = cin
        if bottleneck:
            mods += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, 4 * growth, 1, bias=False)]
            c = 4 * growth
        mods += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, growth, 3, 1, 1, bias=False)]
        self.body = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.body(x)], dim=1)


class CifarDenseNet(_Classifier):
    """DenseNet for CIFAR (Huang et al. 2017). Defaults: DenseNet-40, k=12, no bottleneck, no compression.

    That is the standard DenseNet-40-12 used in the AugMix CIFAR experiments; ``bottleneck=True, reduction=0.5``
    gives the DenseNet-BC variant.

    Args:
        depth: total depth; dense blocks hold ``(depth - 4) // 3`` layers (halved for bottleneck layers).
        growth_rate: channels added per layer (k).
        bottleneck: use 1x1 bottleneck layers (BC).
        reduction: channel compression at transitions (1.0 = none).
        num_classes: classifier outputs.
        in_chans: input channels.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        depth: int = 40,
        growth_rate: int = 12,
        bottleneck: bool = False,
        reduction: float = 1.0,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 3 != 0:
            raise ValueError(f"DenseNet depth must be 3n+4, got {depth}")
        n = (depth - 4) // 3 // (2 if bottleneck else 1)
        c = 2 * growth_rate
        self.stem = nn.Conv2d(in_chans, c, 3, 1, 1, bias=False)
        mods: list[nn.Module] = []
        for i in range(3):
            for _ in range(n):
                mods.append(_DenseLayer(c, growth_rate, bottleneck))
                c += growth_rate
            if i < 2:
                cout = int(c * reduction)
                mods += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, cout, 1, bias=False), nn.AvgPool2d(2)]
                c = cout
        self.stages = nn.Sequential(*mods)
        self.bn = nn.BatchNorm2d(c)
        self._init_head(c, num_classes, drop_rate)
        self._init_weights()

    def forward_features(self, x: Tensor) -> Tensor:
        """Return the final (post-BN-ReLU) feature map, shape (B, num_features, H/4, W/4)."""
        return F.relu(self.bn(self.stages(self.stem(x))))


# ---------------------------------------------------------------------------------------------------- AllConvNet
class AllConvNet(_Classifier):
    """All-convolutional net (Springenberg et al. 2015) in the CIFAR variant used by AugMix (GELU, batch norm).

    Args:
        width: channels of the first stage (the second uses ``2 * width``).
        num_classes: classifier outputs.
        in_chans: input channels.
        drop_rate: dropout before the classifier.
    """

    def __init__(self, width: int = 96, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> None:
        super().__init__()
        w1, w2 = width, 2 * width

        def cbg(cin: int, cout: int, k: int = 3, stride: int = 1, padding: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.GELU()]

        self.features = nn.Sequential(
            *cbg(in_chans, w1),
            *cbg(w1, w1),
            *cbg(w1, w1, stride=2),
            nn.Dropout(0.5),
            *cbg(w1, w2),
            *cbg(w2, w2),
            *cbg(w2, w2, stride=2),
            nn.Dropout(0.5),
            *cbg(w2, w2, padding=0),
            *cbg(w2, w2, k=1, padding=0),
            *cbg(w2, w2, k=1, padding=0),
        )
        self._init_head(w2, num_classes, drop_rate)
        self._init_weights()

    def forward_features(self, x: Tensor) -> Tensor:
        """Return the final feature map, shape (B, 2 * width, H/4 - 2, W/4 - 2)."""
        return self.features(x)


# -------------------------------------------------------------------------------------------------- entrypoints
def _build(cls: Callable[..., nn.Module], name: str, pretrained: bool, defaults: dict[str, Any], kwargs: dict) -> Any:
    if pretrained:
        raise ValueError(
            f"{name} has no pretrained weights (robust_train never downloads weights); use pretrained=False"
        )
    given, overlay = kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay")
    for k in _TIMM_META:
        kwargs.pop(k, None)
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    model = cls(**{**defaults, **kwargs})
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    # what timm's build_model_with_cfg does for its own nets: the resolved data config on the model
    if isinstance(given, dict):
        cfg = dict(given)
    elif given is not None and hasattr(given, "to_dict"):
        cfg = given.to_dict()
    else:
        registered = get_pretrained_cfg(name)
        cfg = registered.to_dict() if registered is not None else _cifar_cfg("")
    cfg.update(overlay or {})
    cfg["architecture"], cfg["num_classes"] = name, model.num_classes
    model.pretrained_cfg = cfg
    model.default_cfg = cfg  # the older timm name
    return model


@register_model
def resnet8_cifar(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """Small fast ResNet-8 (one basic block per stage, widths 32-64-128): the CPU default (~0.9 M params)."""
    return _build(CifarResNet, "resnet8_cifar", pretrained, {"layers": (1, 1, 1), "widths": (32, 64, 128)}, kwargs)


@register_model
def resnet18_cifar(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """ResNet-18 with a CIFAR stem (3x3 stride-1 conv, no max-pool), 11 M params."""
    return _build(CifarResNet, "resnet18_cifar", pretrained, {}, kwargs)


@register_model
def wrn40_2_cifar(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-40-2 (2.2 M params), the AugMix / ImageNet-C CIFAR baseline."""
    return _build(WideResNet, "wrn40_2_cifar", pretrained, {"depth": 40, "widen_factor": 2}, kwargs)


@register_model
def resnext29_4x32d_cifar(pretrained: bool = False, **kwargs: Any) -> CifarResNeXt:
    """ResNeXt-29 with cardinality 4 and base width 32 (6.8 M params), as in the AugMix experiments."""
    return _build(CifarResNeXt, "resnext29_4x32d_cifar", pretrained, {"cardinality": 4, "base_width": 32}, kwargs)


@register_model
def densenet40_12_cifar(pretrained: bool = False, **kwargs: Any) -> CifarDenseNet:
    """DenseNet-40 with growth rate 12, no bottleneck or compression (1.0 M params)."""
    return _build(CifarDenseNet, "densenet40_12_cifar", pretrained, {}, kwargs)


@register_model
def allconv_cifar(pretrained: bool = False, **kwargs: Any) -> AllConvNet:
    """AllConvNet (1.4 M params) in the AugMix CIFAR variant."""
    return _build(AllConvNet, "allconv_cifar", pretrained, {}, kwargs)


#: Names of the CIFAR-resolution nets this module registers with timm.
CIFAR_MODELS: tuple[str, ...] = (
    "allconv_cifar",
    "densenet40_12_cifar",
    "resnet18_cifar",
    "resnet8_cifar",
    "resnext29_4x32d_cifar",
    "wrn40_2_cifar",
)
