"""CPU cache blocking in the execution layer (``corruptions/execution.py``): chunking never changes a sample."""

from __future__ import annotations

import pytest
import torch

import robust_train
from robust_train.corruptions import CORRUPTIONS
from robust_train.corruptions.execution import CpuPolicy

from .common import natural_batch


@pytest.mark.parametrize("name", ["gaussian_noise", "contrast", "gaussian_blur", "pixelate"])
@pytest.mark.parametrize("mode", ["off", "on"])
def test_chunked_equals_whole_batch(name: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = CORRUPTIONS.get(name)
    x = torch.cat([natural_batch(32)] * 3)  # 6 images of 12 KB: 4 KB chunks give one image per chunk
    with robust_train.fusion(mode):
        op = cls(severity=3)
        whole = op(x)
        monkeypatch.setattr(cls, "cpu", CpuPolicy(chunk_bytes=4096, host_threads=cls.cpu.host_threads))
        chunked = op(x, op.last_params)
    assert torch.equal(whole, chunked)


def test_unchunked_when_fused_flags() -> None:
    """Only corruptions whose CPU path is fully fused skip the cache blocking (and only with fusion on)."""
    flagged = {n for n in CORRUPTIONS.list() if CORRUPTIONS.get(n).cpu.unchunked_when_fused}
    assert {"gaussian_noise", "impulse_noise", "contrast", "frost"} <= flagged
    assert not flagged & {"defocus_blur", "gaussian_blur", "motion_blur", "spatter", "elastic_transform"}
    never = {n for n in CORRUPTIONS.list() if CORRUPTIONS.get(n).cpu.chunk_bytes is None}
    assert never == {"jpeg_compression", "pixelate"}
