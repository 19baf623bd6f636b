"""Replay invariance of every corruption (issue #10): a sample's output depends only on its image and parameters.

Batch vs single images vs a permuted batch vs non-contiguous views (a transposed view, channels_last) must give
bit-identical samples, at the CIFAR and Tiny-ImageNet presets, with the evaluation parameters of each sample.
"""

from __future__ import annotations

import pytest
import torch

import robust_train as rt


def _photos(size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    base = torch.rand(4, 3, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    x = x + 0.1 * torch.rand(4, 3, size, size, generator=g)  # smooth content plus texture
    return torch.floor(x.clamp(0, 1) * 255) / 255


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("name", rt.list_corruptions("c19"))
def test_sample_independent_of_batch_position_and_layout(name: str, size: int) -> None:
    x = _photos(size)
    op = rt.create_corruption(name, severity=(1.0, 5.0))
    params = op.params_for_indices(torch.arange(4), seed=11)
    with torch.no_grad():
        full = op(x, params=params)
        singles = torch.cat([op(x[i : i + 1], params=params.index(torch.tensor([i]))) for i in range(4)])
        perm = torch.tensor([2, 0, 3, 1])
        permuted = op(x[perm], params=params.index(perm))
        transposed = op(x.transpose(-1, -2).contiguous().transpose(-1, -2), params=params)
        channels_last = op(x.contiguous(memory_format=torch.channels_last), params=params)
    assert torch.equal(singles, full), (singles != full).sum()
    assert torch.equal(permuted, full[perm]), (permuted != full[perm]).sum()
    assert torch.equal(transposed, full), (transposed != full).sum()
    assert torch.equal(channels_last, full), (channels_last != full).sum()
