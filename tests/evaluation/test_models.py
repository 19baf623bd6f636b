from __future__ import annotations

import pytest
import torch
import torchvision

from robust_train.evaluation.models import torchvision_net


def test_torchvision_net_loads_a_local_state_dict(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.squeezenet1_1(num_classes=7).eval()  # small; AlexNet itself is 230 MB
    torch.save(ref.state_dict(), tmp_path / "net.pth")
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "wrapped.pth")
    x = torch.rand(2, 3, 64, 64)
    for f in ("net.pth", "wrapped.pth"):
        net = torchvision_net("squeezenet1_1", num_classes=7, checkpoint_path=tmp_path / f)
        assert torch.equal(net(x), ref(x))
    with pytest.raises(ValueError, match="does not fit"):
        torchvision_net("squeezenet1_1", num_classes=10, checkpoint_path=tmp_path / "net.pth")
    with pytest.raises(FileNotFoundError):
        torchvision_net("alexnet", checkpoint_path=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="close matches"):
        torchvision_net("alexnett")
    with pytest.raises(ValueError, match="download"):
        torchvision_net("alexnet", pretrained=True)
