"""Inputs as torchvision users pass them (issue #13 item 3): (C, H, W), uint8, grey, tv_tensors, memory formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import robust_train as rt

from .common import natural_batch

NAMES = ["gaussian_noise", "motion_blur", "fog", "contrast", "pixelate", "jpeg_compression"]


def _reference(name: str, x: torch.Tensor, params: rt.Params) -> torch.Tensor:
    return rt.create_corruption(name, severity=3)(x, params=params)


@pytest.mark.parametrize("name", NAMES)
def test_unbatched_uint8_and_channels_last_give_the_float_batch_pixels(name: str) -> None:
    x = natural_batch(32)  # (2, 3, 32, 32) float on the 8-bit grid
    op = rt.create_corruption(name, severity=3)
    params = op.params_for_indices(torch.arange(2), seed=4)
    ref = op(x, params=params)
    one = op(x[1], params=params.index(torch.tensor([1])))
    assert one.shape == (3, 32, 32) and torch.equal(one, ref[1])
    u8 = op((x * 255).round().to(torch.uint8), params=params)
    assert u8.dtype == torch.uint8 and torch.equal(u8, (ref * 255).round().to(torch.uint8))
    cl = op(x.contiguous(memory_format=torch.channels_last), params=params)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, ref)


def test_grey_is_replicated_to_rgb_as_the_original_did() -> None:
    x = natural_batch(32)[:, :1]
    op = rt.create_corruption("fog", severity=2)
    params = op.params_for_indices(torch.arange(2), seed=1)
    out = op(x, params=params)
    assert out.shape == (2, 3, 32, 32)
    assert torch.equal(out, op(x.expand(-1, 3, -1, -1).contiguous(), params=params))


def test_tv_tensor_type_is_kept() -> None:
    tv_tensors = pytest.importorskip("torchvision.tv_tensors")
    x = tv_tensors.Image(natural_batch(32)[0])
    out = rt.create_corruption("contrast", severity=4)(x)
    assert isinstance(out, tv_tensors.Image) and out.shape == (3, 32, 32)


def test_v2_pipeline_on_pil_images_equals_the_float_path() -> None:
    v2 = pytest.importorskip("torchvision.transforms.v2")
    x = natural_batch(32)[0]
    pil = Image.fromarray((x * 255).round().byte().permute(1, 2, 0).numpy())
    op = rt.create_corruption("gaussian_noise", severity=3, seed=0)
    params = op.params_for_indices(torch.arange(1), seed=2)

    class Fixed(torch.nn.Module):  # the module with replayed parameters, as a v2 transform
        def forward(self, img: torch.Tensor) -> torch.Tensor:
            return op(img, params=params)

    out = v2.Compose([v2.PILToTensor(), Fixed()])(pil)
    ref = op(x.unsqueeze(0), params=params)[0]
    assert out.dtype == torch.uint8 and out.shape == (3, 32, 32)
    assert np.array_equal(out.numpy(), (ref * 255).round().byte().numpy())


def test_bad_forms_name_what_came() -> None:
    op = rt.create_corruption("contrast")
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3"):
        op(torch.rand(2, 2, 32, 32))
    with pytest.raises(TypeError, match="uint8"):
        op(torch.ones(3, 32, 32, dtype=torch.int64))
    with pytest.raises(ValueError, match="shape"):
        op(torch.rand(1, 1, 3, 32, 32))


def test_family_suites_come_from_the_registry() -> None:
    """Family suites are derived from each class's ``family``: a plug-in joins its family, a bad family is refused."""
    from robust_train.corruptions.suites import CORRUPTIONS, FAMILIES, SUITES, register_corruption

    for fam in FAMILIES:
        assert SUITES[fam] and all(CORRUPTIONS.get(n).family == fam for n in SUITES[fam])
    assert sorted(n for fam in FAMILIES for n in SUITES[fam]) == sorted(SUITES["c19"])

    class PlugInBlur:
        name = "zz_plugin_blur"
        family = "blur"

    register_corruption(PlugInBlur)
    try:
        assert SUITES["blur"][-1] == "zz_plugin_blur"
        assert "zz_plugin_blur" not in SUITES["c19"]
    finally:
        CORRUPTIONS._entries.pop("zz_plugin_blur")
        CORRUPTIONS._meta.pop("zz_plugin_blur")

    class NoFamily:
        name = "zz_no_family"
        family = "sound"

    with pytest.raises(ValueError, match="family: expected one of"):
        register_corruption(NoFamily)
