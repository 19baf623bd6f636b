from __future__ import annotations

import numpy as np
import pytest
import torch

from robust_train.functional import sequences as FS
from robust_train.sequences import SEQUENCES, create_sequence, list_sequences, perturb_sequence
from tests._helpers import photo_at, to_tensor

ALL = list_sequences("p14")
NOISE = [n for n in ALL if "noise" in n]
SIZES = {"cifar": 32, "tinyimagenet": 64, "imagenet": 64}  # imagenet tables at 64 px keep the tests small
FRAMES = {
    ("translate", "imagenet"): 41,
    ("translate", "tinyimagenet"): 31,
    ("translate", "cifar"): 16,
    ("motion_blur", "cifar"): 21,
}


def _images(size: int, b: int = 2) -> torch.Tensor:
    return torch.cat([to_tensor(photo_at(n, size)) for n in ("astronaut", "chelsea", "coffee")[:b]])


def _change(frames: torch.Tensor, noise: bool, d: int) -> float:
    """Mean absolute frame difference over the pairs the metrics compare at difficulty d."""
    from robust_train.metrics.functional import frame_pairs

    ref, cmp = frame_pairs(frames.shape[1], noise, d)
    return float((frames[:, cmp] - frames[:, ref]).abs().mean())


def test_registry_holds_the_14_types():
    assert sorted(SEQUENCES.list()) == sorted(ALL) and len(ALL) == 14
    assert list_sequences("p10")[:2] == ["gaussian_noise", "shot_noise"]
    with pytest.raises(ValueError, match="unknown perturbation_sequence"):
        create_sequence("rotat")


def _check_type(name: str, preset: str, size: int | None = None) -> None:
    size = size or SIZES[preset]
    x = _images(size)
    op = create_sequence(name, preset=preset)
    params = op.params_for_indices([5, 9], seed=1)
    y = op(x, params)
    t = FRAMES.get((name, preset), 31)
    assert y.shape == (2, t, 3, size, size) and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert torch.equal(y * 255, torch.round(y * 255))  # 8-bit frames
    # replay and batch independence: sample 9 alone gives the same frames
    assert torch.equal(op(x, params=op.last_params), y)
    assert torch.equal(op(x[1:], op.params_for_indices([9], seed=1))[0], y[1])
    if op.noise:
        assert torch.equal(y[:, 0], x)  # frame 0 is the clean image
        changes = [_change(create_sequence(name, preset=preset, difficulty=d)(x, params), True, 1) for d in (1, 2, 3)]
    else:
        changes = [_change(y, False, d) for d in (1, 2, 3)]
    assert changes[0] > 0 and changes[0] < changes[1] < changes[2], changes


@pytest.mark.parametrize("name", ALL)
def test_every_type_cifar_preset(name):
    _check_type(name, "cifar", size=16)  # the CIFAR tables on 16 px images keep the default suite fast


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["cifar", "tinyimagenet", "imagenet"])
@pytest.mark.parametrize("name", ALL)
def test_every_type_other_presets(name, preset):
    _check_type(name, preset)


@pytest.mark.parametrize("name", ["rotate", "translate", "snow", "gaussian_noise"])
def test_other_presets_fast_subset(name):
    _check_type(name, "tinyimagenet", size=32)


def test_perturb_sequence_api_and_seeds():
    x = _images(32)
    a = perturb_sequence(x, "gaussian_noise", seed=3)
    assert torch.equal(a, perturb_sequence(x, "gaussian_noise", seed=3))
    assert not torch.equal(a, perturb_sequence(x, "gaussian_noise", seed=4))
    s = torch.tensor([11, 11])
    b = perturb_sequence(torch.cat([x[:1], x[:1]]), "shot_noise", seed=s)
    assert torch.equal(b[0], b[1])  # equal seeds, equal images -> equal sequences
    # deterministic types ignore the seed
    assert torch.equal(perturb_sequence(x, "rotate", seed=1), perturb_sequence(x, "rotate", seed=2))
    with pytest.raises(ValueError, match="difficulty"):
        perturb_sequence(x, "rotate", difficulty=4)
    with pytest.raises(ValueError, match="one seed per sample"):
        perturb_sequence(x, "snow", seed=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="preset"):
        perturb_sequence(x, "rotate", preset="imagenet")  # 32 px is far from 224


def test_crop_moves_context_into_view():
    big = _images(48, b=1)
    frames = perturb_sequence(big, "translate", crop=32, preset="cifar")
    assert frames.shape == (1, 16, 3, 32, 32)
    # content from outside the crop, not black, enters: shift +8 px reads columns 8 .. 39 - 8 of the big image
    top, left = 8, 8
    assert torch.equal(frames[0, 7], big[0, :, top : top + 32, left : left + 32])  # shift 0
    assert torch.equal(frames[0, 15, :, :, :], big[0, :, top : top + 32, left - 8 : left + 24])
    # photometric types crop first
    bright = perturb_sequence(big, "brightness", crop=32, preset="cifar")
    assert bright.shape == (1, 31, 3, 32, 32)


# ------------------------------------------------------------------------------------------- parity with the libraries
def _tv02_inverse(w: int, h: int, angle: float, scale: float, shear: float) -> list[float]:
    """Inverse of T C RSS C^-1 (torchvision 0.2 affine, spec quirk 21) by numeric inversion of the forward map."""
    a, s = np.deg2rad(angle), np.deg2rad(shear)
    cx, cy = w * 0.5 + 0.5, h * 0.5 + 0.5
    c = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1.0]])
    rss = np.array(
        [[np.cos(a) * scale, -np.sin(a + s) * scale, 0], [np.sin(a) * scale, np.cos(a + s) * scale, 0], [0, 0, 1]]
    )
    inv = np.linalg.inv(c @ rss @ np.linalg.inv(c))
    return inv[:2].reshape(-1).tolist()


@pytest.mark.parametrize(
    "kind,values", [("angle", [-15.0, -4.0, 7.0]), ("scale", [0.4, 0.8, 1.15]), ("shear", [-15.0, 3.0, 11.0])]
)
def test_affine_matches_pil_transform(kind, values):
    from PIL import Image

    img = photo_at("astronaut", 48)
    ours = FS.affine_sequence(to_tensor(img, dtype=torch.float64), **{kind: torch.tensor(values)})
    ours8 = torch.floor(ours[0] * 255 + 1e-6).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for t, v in enumerate(values):
        args = {"angle": 0.0, "scale": 1.0, "shear": 0.0, kind: v}
        ref = np.asarray(
            Image.fromarray(img).transform(
                (48, 48), Image.AFFINE, _tv02_inverse(48, 48, **args), resample=Image.BILINEAR
            )
        )
        diff = np.abs(ours8[t].astype(int) - ref.astype(int))
        assert diff.max() <= 1, (kind, v, diff.max())
        assert (diff > 0).mean() < 0.05, (kind, v, (diff > 0).mean())  # truncation of values within 1e-6 of an integer


def test_translate_matches_pil_nearest_exactly():
    from PIL import Image

    img = photo_at("coffee", 32)
    ours = FS.translate_sequence(to_tensor(img, dtype=torch.float64), torch.tensor([-7.0, 0.0, 8.0]))
    for t, shift in enumerate((-7, 0, 8)):
        ref = np.asarray(
            Image.fromarray(img).transform((32, 32), Image.AFFINE, [1, 0, -shift, 0, 1, 0], resample=Image.NEAREST)
        )
        got = torch.round(ours[0, t] * 255).to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(got, ref), shift


def test_tilt_matches_opencv_warp_perspective():
    cv2 = pytest.importorskip("cv2")
    img = photo_at("chelsea", 40)
    angles = torch.tensor([-15.0, -6.0, 0.0, 9.0])
    ours = FS.tilt_sequence(to_tensor(img, dtype=torch.float64), angles, angles)
    homs = FS.tilt_homography(40, 40, angles, angles)
    for t in range(4):
        ref = cv2.warpPerspective(
            img, homs[t].numpy(), (40, 40), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        got = (ours[0, t] * 255).permute(1, 2, 0).numpy()
        diff = np.abs(got - ref.astype(np.float64))
        # OpenCV interpolates with 1/32-pixel fixed-point weights and rounds to uint8; ours is float: max 0.5 DN seen
        assert diff.max() <= 1.0 and diff.mean() < 0.35, (t, diff.max(), diff.mean())


def test_tilt_neutral_frame_is_a_slight_zoom_out():
    h = w = 224
    hom = FS.tilt_homography(h, w, torch.zeros(1), torch.zeros(1))[0]
    f = np.hypot(w, h)
    s = f / (f + 1)  # quirk 20: ~0.997
    u = torch.tensor([10.0, 200.0, 1.0], dtype=torch.float64)
    p = hom @ u
    assert (p[:2] / p[2]).tolist() == pytest.approx([s * (10 - 112) + 112, s * (200 - 112) + 112])


def test_spatter_layers_match_numpy_convolve_same():
    g = torch.Generator().manual_seed(0)
    layer = torch.rand(1, 12, 3, generator=g, dtype=torch.float64)
    for kernel in ([0.05, 0.1, 0.15, 0.7], [0.2, 0.8]):
        frames = FS.spatter_layers(layer, kernel, 4)
        ref = layer[0].numpy()
        for t in range(4):
            assert np.allclose(frames[0, t].numpy(), ref), (kernel, t)
            ref = np.stack([np.convolve(ref[:, j], kernel, "same") for j in range(3)], 1)


def test_gaussian_blur_sequence_matches_skimage():
    skf = pytest.importorskip("skimage.filters")
    img = photo_at("rocket", 32)
    x = to_tensor(img, dtype=torch.float64)
    sig = torch.tensor([0.3, 0.75])
    ours = FS.gaussian_blur_sequence(x, sig, truncate=7.0)
    for t in range(2):
        ref = skf.gaussian(img / 255.0, sigma=float(sig[t]), truncate=7.0, channel_axis=-1, mode="nearest")
        assert np.allclose(ours[0, t].permute(1, 2, 0).numpy(), ref, atol=1e-10)


def test_motion_blur_sequence_frames_use_their_angles():
    from robust_train.functional.blur import motion_blur

    x = _images(32)
    seq = create_sequence("motion_blur", preset="cifar")(x)
    for t in (0, 10, 20):
        ref = motion_blur(x, 6.0, 1.8, float((t - 20) * 9))
        assert torch.equal(seq[:, t], ref), t
