"""Functional AugMix ops against PIL (the reference code's backend), the level table, grouping and the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robust_train.augment import AUGMENT_OPS, list_augment_ops
from robust_train.functional import augment_ops as AF

from .._helpers import photo_at, to_tensor

PIL = pytest.importorskip("PIL")  # identical 8-bit levels are compared with < 1e-3 DN (float32 rounding)
from PIL import Image, ImageEnhance, ImageOps  # noqa: E402


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return photo_at("astronaut", 48)


def _ref(img) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).unsqueeze(0).double() / 255.0


def _dn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.double().cpu() - b.double()).abs() * 255.0


# ------------------------------------------------------------------------------------------- PIL parity
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_posterize_matches_pil(photo, bits):
    x = to_tensor(photo)
    assert (
        _dn(AF.posterize(x, torch.tensor([bits])), _ref(ImageOps.posterize(Image.fromarray(photo), bits))).max() < 1e-3
    )


def test_posterize_zero_bits_is_black(photo):
    assert AF.posterize(to_tensor(photo), torch.tensor([0])).max() == 0


@pytest.mark.parametrize("threshold", [0, 50, 128, 231, 256])
def test_solarize_matches_pil(photo, threshold):
    x = to_tensor(photo)
    ref = _ref(ImageOps.solarize(Image.fromarray(photo), threshold))
    assert _dn(AF.solarize(x, torch.tensor([float(threshold)])), ref).max() < 1e-3


def test_equalize_matches_pil(photo):
    x = to_tensor(photo)
    assert _dn(AF.equalize(x), _ref(ImageOps.equalize(Image.fromarray(photo)))).max() < 1e-3


def test_autocontrast_matches_pil_within_one_level(photo):
    low = np.floor(photo / 255.0 * 0.5 * 255.0 + 40).astype(np.uint8)  # occupies [40, 167]
    ours = AF.autocontrast(to_tensor(low, dtype=torch.float64))
    d = _dn(ours, _ref(ImageOps.autocontrast(Image.fromarray(low))))
    assert d.max() <= 1.0 + 1e-6  # PIL truncates its lookup table; we keep the exact stretch
    assert ours.amin(dim=(-2, -1)).max() == 0 and ours.amax(dim=(-2, -1)).min() == 1


def test_autocontrast_flat_channel_unchanged():
    x = torch.full((1, 3, 4, 4), 0.3)
    assert torch.equal(AF.autocontrast(x), x)


@pytest.mark.parametrize("name", ["color", "contrast", "brightness", "sharpness"])
@pytest.mark.parametrize("factor", [0.1, 0.64, 1.9])
def test_enhance_ops_match_pil(photo, name, factor):
    x = to_tensor(photo, dtype=torch.float64)
    pil = Image.fromarray(photo)
    ref = _ref(getattr(ImageEnhance, name.capitalize())(pil).enhance(factor))
    d = _dn(getattr(AF, name)(x, torch.tensor([factor])), ref)
    assert d.max() <= 1.5  # PIL rounds the grey/mean/smoothed image and the blend to 8 bit
    assert d.mean() < 1.0


@pytest.mark.parametrize(
    ("name", "arg", "data"),
    [
        ("translate_x", 3.0, (1, 0, 3, 0, 1, 0)),
        ("translate_x", -7.0, (1, 0, -7, 0, 1, 0)),
        ("translate_y", 5.0, (1, 0, 0, 0, 1, 5)),
        ("translate_y", -2.0, (1, 0, 0, 0, 1, -2)),
    ],
)
def test_integer_translations_match_pil_exactly(photo, name, arg, data):
    x = to_tensor(photo, dtype=torch.float64)
    pil = Image.fromarray(photo)
    ref = _ref(pil.transform(pil.size, Image.AFFINE, data, resample=Image.BILINEAR))
    assert _dn(getattr(AF, name)(x, torch.tensor([arg])), ref).max() < 1e-3


@pytest.mark.parametrize(
    ("name", "arg"),
    [("rotate", 9.0), ("rotate", -30.0), ("shear_x", 0.09), ("shear_x", -0.3), ("shear_y", 0.21), ("shear_y", -0.06)],
)
def test_geometric_ops_match_pil_inside_the_image(photo, name, arg):
    x = to_tensor(photo, dtype=torch.float64)
    pil = Image.fromarray(photo)
    if name == "rotate":
        ref = pil.rotate(arg, resample=Image.BILINEAR)
    else:
        data = (1, arg, 0, 0, 1, 0) if name == "shear_x" else (1, 0, 0, arg, 1, 0)
        ref = pil.transform(pil.size, Image.AFFINE, data, resample=Image.BILINEAR)
    ours = getattr(AF, name)(x, torch.tensor([arg]))
    # Compare where the warp reads only from inside the source (PIL's edge handling differs on the last ring).
    inside = getattr(AF, name)(torch.ones(1, 1, *x.shape[-2:], dtype=torch.float64), torch.tensor([arg]))[0, 0] > 0.999
    assert inside.float().mean() > 0.5
    d = _dn(ours, _ref(ref))[0][:, inside]
    assert d.max() <= 1.0 + 1e-3  # PIL rounds the bilinear result to 8 bit


def test_rotate_90_is_exact_and_counter_clockwise():
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    out = AF.rotate(x, torch.tensor([90.0]))
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-9, rtol=0)


def test_affine_theta_identity_and_translation():
    theta = AF.affine_theta(AF.translate_x_matrix(torch.tensor([2.0])), 4, 8)
    # 2 pixels of an 8-wide image = 0.5 in normalised units
    torch.testing.assert_close(theta, torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]], dtype=torch.float64))


# ------------------------------------------------------------------------------------------- level table
def test_augmix_level_table():
    lv = torch.tensor([0.1, 3.0, 10.0])
    pos = torch.ones(3)
    assert AF.augmix_argument("posterize", lv, pos, 32, 32).tolist() == [4.0, 3.0, 0.0]
    assert AF.augmix_argument("solarize", lv, pos, 32, 32).tolist() == [254.0, 180.0, 0.0]
    assert AF.augmix_argument("rotate", lv, -pos, 32, 32).tolist() == [0.0, -9.0, -30.0]
    torch.testing.assert_close(
        AF.augmix_argument("shear_x", lv, pos, 32, 32), torch.tensor([0.003, 0.09, 0.3], dtype=torch.float64)
    )
    # IMAGE_SIZE / 3 of the reference: 32 -> int(level * 10.67 / 10); 224 -> int(level * 74.67 / 10)
    assert AF.augmix_argument("translate_x", lv, pos, 32, 32).tolist() == [0.0, 3.0, 10.0]
    assert AF.augmix_argument("translate_y", lv, pos, 224, 32).tolist() == [0.0, 22.0, 74.0]
    torch.testing.assert_close(
        AF.augmix_argument("color", lv, -pos, 32, 32), torch.tensor([0.118, 0.64, 1.9], dtype=torch.float64)
    )


def test_unknown_op_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown augment op 'rotat'"):
        AF.augmix_argument("rotat", torch.ones(1), torch.ones(1), 8, 8)


# ------------------------------------------------------------------------------------------- grouping
def test_apply_ops_equals_per_sample_application():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 3, 16, 16, generator=g)
    names = list(AF.AUGMIX_OPS_ALL)
    idx = torch.arange(12) % len(names)
    lv = torch.full((12,), 5.0, dtype=torch.float64)
    sign = torch.where(torch.arange(12) % 2 == 0, 1.0, -1.0).double()
    arg = torch.stack(
        [AF.augmix_argument(names[i], lv[j : j + 1], sign[j : j + 1], 16, 16)[0] for j, i in enumerate(idx)]
    )
    active = torch.ones(12, dtype=torch.bool)
    active[5] = False
    out = AF.apply_ops(x, names, idx, arg, active)
    for j in range(12):
        spec = AF.OP_SPECS[names[int(idx[j])]]
        if not active[j]:
            expect = x[j : j + 1]
        elif spec.kind == "affine":
            expect = AF.warp_affine(x[j : j + 1], spec.matrix(arg[j : j + 1], 16, 16))
        else:
            expect = spec.fn(x[j : j + 1], arg[j : j + 1])
        torch.testing.assert_close(out[j : j + 1], expect, atol=1e-6, rtol=0)


def test_apply_ops_bad_index():
    with pytest.raises(ValueError, match="op_index"):
        AF.apply_ops(torch.rand(2, 3, 8, 8), ["rotate"], torch.tensor([0, 1]), torch.zeros(2))


@pytest.mark.parametrize("name", AF.AUGMIX_OPS_ALL)
def test_ops_keep_shape_dtype_range(name, device, dtype):
    x = torch.rand(3, 3, 12, 12, device=device, dtype=dtype)
    arg = AF.augmix_argument(name, torch.full((3,), 6.0), torch.tensor([1.0, -1.0, 1.0]), 12, 12)
    out = AF.apply_ops(x, [name], torch.zeros(3, dtype=torch.long), arg)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1


def test_functional_ops_reject_bad_input():
    with pytest.raises(ValueError, match="expected shape"):
        AF.autocontrast(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        AF.equalize(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="leading dim 2"):
        AF.brightness(torch.rand(2, 3, 8, 8), torch.ones(3))
    with pytest.raises(ValueError, match=r"matrix: expected shape \(2, 2, 3\)"):
        AF.warp_affine(torch.rand(2, 3, 8, 8), torch.zeros(2, 3, 3))


# ------------------------------------------------------------------------------------------- registry
def test_registry_lists_the_paper_ops():
    assert list_augment_ops() == list(AF.AUGMIX_OPS)
    assert list_augment_ops(all_ops=True) == list(AF.AUGMIX_OPS_ALL)
    assert AUGMENT_OPS.meta("rotate") == {"kind": "affine", "overlaps_eval": False}
    assert AUGMENT_OPS.list(overlaps_eval=True) == ["brightness", "color", "contrast", "sharpness"]


@pytest.mark.parametrize("name", AF.AUGMIX_OPS_ALL)
def test_op_module_matches_functional_and_replays(name):
    op = AUGMENT_OPS.create(name, severity=8, seed=3)
    x = torch.rand(6, 3, 16, 16)
    out = op(x)
    p = op.last_params
    assert torch.equal(op(x, params=p), out)
    arg = AF.augmix_argument(name, p["level"], p["sign"], 16, 16)
    torch.testing.assert_close(out, AF.apply_ops(x, [name], torch.zeros(6, dtype=torch.long), arg), atol=0, rtol=0)
    assert (p["level"] >= 0.1).all() and (p["level"] <= 8).all()
    assert p["level"].unique().numel() == 6  # per-sample draws


def test_op_module_p_zero_is_identity():
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(AUGMENT_OPS.create("solarize", p=0.0)(x), x)
