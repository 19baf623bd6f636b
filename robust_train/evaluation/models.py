r"""Networks for evaluation runs that are not trained here: torchvision models with a local weights file.

``robust-eval`` normalises ImageNet-P (and regenerated ImageNet-C) results with AlexNet numbers that must be
measured, not invented: point this factory at torchvision's AlexNet checkpoint (``alexnet-owt-7be5be79.pth`` /
``alexnet-owt-4df8aa71.pth``, downloaded by the user) and let the evaluation callback save a baseline file::

    robust-eval model=resnet50 ckpt_path=null data=imagefolder data.data_dir=/data/imagenet \\
        model.net._target_=robust_train.evaluation.models.torchvision_net model.net.model_name=alexnet \\
        +model.net.checkpoint_path=/weights/alexnet-owt-7be5be79.pth \\
        eval=p10 eval.perturbation_eval.save_baseline=alexnet_p.json

The signature mirrors ``timm.create_model`` so the ``model/`` configs' ``net`` node works unchanged.
"""

from __future__ import annotations

import os

import torch
from torch import nn

__all__ = ["torchvision_net"]


def torchvision_net(
    model_name: str,
    pretrained: bool = False,
    num_classes: int = 1000,
    in_chans: int = 3,
    checkpoint_path: str | os.PathLike[str] | None = None,
    **kwargs: object,
) -> nn.Module:
    """Build ``torchvision.models.<model_name>`` (random init) and load a local state dict.

    Args:
        model_name: a torchvision classification model (``"alexnet"``, ``"resnet50"``, ...).
        pretrained: must be false: weights are never downloaded; pass ``checkpoint_path``.
        num_classes: output classes (1000 for ImageNet checkpoints).
        in_chans: input channels; torchvision models take 3.
        checkpoint_path: a ``.pth`` file holding the model's ``state_dict`` (optionally under ``"state_dict"``).
        **kwargs: further constructor arguments of the torchvision model.

    Returns:
        The network in eval mode.

    Raises:
        ValueError: unknown model, ``pretrained=True``, ``in_chans != 3``, or a state dict that does not fit.
        FileNotFoundError: ``checkpoint_path`` does not exist.

    Example:
        >>> torchvision_net("alexnet", num_classes=10)(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if model_name not in names:
        import difflib

        close = difflib.get_close_matches(model_name, names, n=3)
        raise ValueError(f"unknown torchvision model {model_name!r}; close matches: {close}")
    if pretrained:
        raise ValueError("pretrained=True would download weights; download them yourself and pass checkpoint_path=")
    if in_chans != 3:
        raise ValueError(f"torchvision models take 3 input channels, got in_chans={in_chans}")
    if checkpoint_path is not None and not os.path.isfile(checkpoint_path):
        raise FileNotFoundError(f"checkpoint_path {str(checkpoint_path)!r} does not exist")
    net = torchvision.models.get_model(model_name, weights=None, num_classes=num_classes, **kwargs)
    if checkpoint_path is not None:
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(
                f"{checkpoint_path} does not fit torchvision {model_name} ({num_classes} classes): {e}"
            ) from e
    return net.eval()
