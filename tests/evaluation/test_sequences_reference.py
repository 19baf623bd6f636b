"""ImageNet-P sequences against transcriptions of the original generators on real photos (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robust_train.sequences import create_sequence
from tests._helpers import photo_at

from ._p_reference import (
    affine_reference,
    center_crop,
    opencv_fixed_point_warp,
    resize_short,
    tilt_matrix,
    tilt_reference,
    tiny_motion_blur_reference,
    zoom_blur_reference,
)

# preset -> (photo size, crop); the ImageNet preset works on the Resize(256) context and crops 224
CASES = {"imagenet": (None, 224), "tinyimagenet": (64, None), "cifar": (32, None)}
PHOTOS = ("astronaut", "chelsea", "coffee")


def _photo(name: str, preset: str) -> np.ndarray:
    size, _ = CASES[preset]
    return resize_short(name) if size is None else photo_at(name, size)


def _ours(name: str, img: np.ndarray, preset: str, **kw) -> np.ndarray:
    x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    y = create_sequence(name, preset=preset, crop=CASES[preset][1], **kw)(x)
    return np.floor(y[0].permute(0, 2, 3, 1).double().numpy() * 255 + 1e-6).astype(np.int64)


def _agreement(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    d = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
    return float((d == 0).mean()), float((d <= 1).mean())


def test_fixed_point_transcription_is_opencvs_fixed_point_remap():
    """The transcription equals OpenCV's own fixed-point bilinear path (``remap`` with 16-bit maps).

    OpenCV >= 5 computes ``warpPerspective`` in float; ``remap`` with ``CV_16SC2`` maps still runs the 1/32-pixel
    table interpolation that OpenCV 2.x-4.x's ``warpPerspective`` used. Maps built in float32 (as ``convertMaps``
    takes them) differ from the double positions in a few rounding ties.
    """
    cv2 = pytest.importorskip("cv2")
    img = resize_short("chelsea")
    h, w = img.shape[:2]
    for deg in (-15.0, 4.0, 15.0):
        mat = tilt_matrix(h, w, deg)
        mi = np.linalg.inv(mat)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        wz = mi[2, 0] * xs + mi[2, 1] * ys + mi[2, 2]
        mx = ((mi[0, 0] * xs + mi[0, 1] * ys + mi[0, 2]) / wz).astype(np.float32)
        my = ((mi[1, 0] * xs + mi[1, 1] * ys + mi[1, 2]) / wz).astype(np.float32)
        m1, m2 = cv2.convertMaps(mx, my, cv2.CV_16SC2)
        ocv = cv2.remap(img, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        exact, within = _agreement(opencv_fixed_point_warp(img, mat), ocv)
        assert exact >= 0.9999 and within >= 0.99995, (deg, exact, within)


@pytest.mark.parametrize("preset", ["cifar", "tinyimagenet", pytest.param("imagenet", marks=pytest.mark.slow)])
def test_tilt_is_exact_with_opencvs_rounding(preset):
    step = 0.75 if preset == "cifar" else 1.0
    for photo in PHOTOS:
        img = _photo(photo, preset)
        exact, within = _agreement(_ours("tilt", img, preset), tilt_reference(img, CASES[preset][1], step))
        assert exact >= 0.999 and within >= 0.99, (preset, photo, exact, within)


@pytest.mark.parametrize("preset", ["cifar", "tinyimagenet", pytest.param("imagenet", marks=pytest.mark.slow)])
def test_zoom_blur_is_exact_with_per_zoom_truncation(preset):
    for photo in PHOTOS:
        img = _photo(photo, preset)
        exact, within = _agreement(_ours("zoom_blur", img, preset), zoom_blur_reference(img, CASES[preset][1]))
        assert exact >= 0.999 and within >= 0.99, (preset, photo, exact, within)


def test_unquantised_tilt_and_zoom_keep_the_float_path():
    """``quantize=False`` returns the float frames (no 8-bit emulation), close to the 8-bit ones."""
    img = _photo("coffee", "cifar")
    x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    for name in ("tilt", "zoom_blur"):
        f = create_sequence(name, preset="cifar", quantize=False)(x)
        q = create_sequence(name, preset="cifar")(x)
        assert not torch.equal(f * 255, torch.round(f * 255))  # off the 8-bit grid
        d = (f - q).abs() * 255
        # zoom: truncations of truncated means (< 2 levels); tilt: rounding and 1/32-pixel positions at edges
        assert float(d.mean()) < 1.0 and float(d.max()) < 8.0, (name, float(d.mean()), float(d.max()))


# ------------------------------------------------------------------------------ Tiny-ImageNet-P motion blur (quirk 19)
def _tiny_motion_blur_check(img: np.ndarray) -> None:
    ref = tiny_motion_blur_reference(img)
    x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    ours = create_sequence("motion_blur", preset="tinyimagenet")(x)
    assert ours.shape[-2:] == ref.shape[1:3] and min(ours.shape[-2:]) == 64
    exact, within = _agreement(np.floor(ours[0].permute(0, 2, 3, 1).double().numpy() * 255 + 1e-6), ref)
    # PIL resamples in two 8-bit passes (horizontal, then vertical), ours in float: ~7% of values one level apart
    assert within >= 0.99 and exact >= 0.85, (exact, within)


def test_tiny_motion_blur_from_a_larger_source_matches_the_original():
    pytest.importorskip("wand.image")
    _tiny_motion_blur_check(resize_short("chelsea", 144))  # a 144 x 216 source -> 64 x 96 frames


@pytest.mark.slow
@pytest.mark.parametrize("photo", PHOTOS)
def test_tiny_motion_blur_full_resolution_photos(photo):
    pytest.importorskip("wand.image")
    from tests._helpers import photo_uint8

    _tiny_motion_blur_check(photo_uint8(photo))


def test_tiny_motion_blur_64px_input_blurs_at_64px():
    """A 64-px input keeps its size and is blurred at 64 px: much stronger than the full-resolution pipeline."""
    src = resize_short("coffee", 144)
    small = center_crop(resize_short("coffee", 64), 64)
    op = create_sequence("motion_blur", preset="tinyimagenet")
    full = op(torch.from_numpy(src).permute(2, 0, 1).unsqueeze(0).float() / 255.0)[0]
    low = op(torch.from_numpy(small).permute(2, 0, 1).unsqueeze(0).float() / 255.0)[0]
    assert low.shape[-2:] == (64, 64) and full.shape[-2:] == (64, 96)
    clean = torch.from_numpy(small).permute(2, 0, 1).float() / 255.0
    change_full = float((full[..., 16:80] - clean).abs().mean())  # the 64 x 64 centre of the 64 x 96 frames
    change_low = float((low - clean).abs().mean())
    # the kernel is fixed in source pixels, so the ratio grows with the source: 1.7x from 144 px, 2.4x from ImageNet
    assert change_low > 1.4 * change_full, (change_low, change_full)
    with pytest.raises(ValueError, match="crop or resize"):
        from robust_train.functional.sequences import motion_blur_sequence

        motion_blur_sequence(torch.rand(1, 3, 80, 80), 14.0, 3.0, [0.0], crop=64, resize=64)


# ------------------------------------------------------------------------------ geometric types in the 256 context
_I = np.arange(31.0)
AFFINE_VALUES = {
    "translate": list(np.arange(41.0) - 20),
    "rotate": list(_I - 15),
    "scale": list((40 + 2.5 * _I) / 100),
    "shear": list(_I - 15),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(AFFINE_VALUES))
def test_geometric_types_from_the_256_context_match_the_original(name):
    """ImageNet preset: ``perturb_sequence(x256, crop=224)`` against PIL's transform of the Resize(256) image + crop."""
    for photo in PHOTOS:
        img = resize_short(photo)
        x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float() / 255.0
        from robust_train.sequences import perturb_sequence

        ours = perturb_sequence(x, name, crop=224, preset="imagenet")
        got = np.floor(ours[0].permute(0, 2, 3, 1).double().numpy() * 255 + 1e-6)
        exact, within = _agreement(got, affine_reference(img, 224, name, AFFINE_VALUES[name]))
        assert within >= 0.99 and exact >= 0.98, (name, photo, exact, within)
