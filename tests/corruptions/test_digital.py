from __future__ import annotations

import numpy as np
import pytest
import torch

from robust_train.corruptions.digital import Contrast
from robust_train.functional import digital as F

from .._helpers import PHOTOS, photo_at, to_tensor, to_uint8
from .._reference import imagenet_c
from .common import CommonCorruptionTests


class TestContrast(CommonCorruptionTests):
    corruption_cls = Contrast

    def call_functional(self, op, x, params):
        return F.contrast(x, op.args(params, op.resolve_preset(x))["factor"])


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("photo", PHOTOS)
def test_contrast_matches_original_224(photo: str, severity: int) -> None:
    ref_mod = imagenet_c()
    img = photo_at(photo, 224)
    ref = np.uint8(ref_mod.contrast(img, severity))
    out = to_uint8(Contrast(severity=severity, preset="imagenet")(to_tensor(img, dtype=torch.float64)))
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert (diff <= 1).mean() >= 0.99
