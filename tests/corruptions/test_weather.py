"""Weather corruptions (brightness, fog, frost, spatter, snow) and the colour helpers.

Parity strategy (see the report): deterministic parts are compared bit for bit against the original (``imagenet_c``)
or against short NumPy transcriptions of the spec built from the original's own building blocks (OpenCV, scikit-image,
Wand/ImageMagick, ``imagenet_c.clipped_zoom``), fed the same random fields; the full random corruptions are compared
with the original on distribution statistics.
"""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pytest
import torch

from robust_train.corruptions.weather import Brightness, Fog, Frost, Snow, Spatter
from robust_train.functional import _assets as A
from robust_train.functional import blur as B
from robust_train.functional import color as C
from robust_train.functional import weather as W
from robust_train.functional.rng import combine_seeds, field_normal, field_uniform

from .._helpers import PHOTOS, RunIf, photo_at, to_tensor, to_uint8
from .._reference import imagenet_c
from .common import CommonCorruptionTests, natural_batch

cv2 = pytest.importorskip("cv2")
needs_skimage = RunIf(modules=("skimage",))
SIZES = {"imagenet": 224, "tinyimagenet": 64, "cifar": 32}


def _normal(seed: int, size: int) -> torch.Tensor:
    return field_normal(torch.tensor([seed]), (size, size), 4242, dtype=torch.float64)


def _exact_fraction(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


# ================================================================================================ colour helpers
def _tricky_rgb(seed: int = 0, n: int = 48) -> np.ndarray:
    """8-bit-valued RGB with every kind of tie (grey, R=G max, G=B max, R=B max, black, white)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (n, n, 3)).astype(np.float64) / 255
    a[:6] = a[:6, :, :1]
    a[6:12, :, 1] = a[6:12, :, 0]
    a[12:18, :, 2] = a[12:18, :, 1]
    a[18:24, :, 2] = a[18:24, :, 0]
    a[24:26] = 0.0
    a[26:28] = 1.0
    return a


@needs_skimage
def test_rgb_to_hsv_matches_skimage_exactly() -> None:
    from skimage.color import rgb2hsv

    a = _tricky_rgb()
    out = C.rgb_to_hsv(torch.from_numpy(a).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(out, rgb2hsv(a))


@needs_skimage
def test_hsv_to_rgb_matches_skimage_exactly() -> None:
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(_tricky_rgb(1))
    hsv[:3, :, 0] = np.linspace(0, 1, hsv.shape[1])  # every sextant incl. hue 1.0
    out = C.hsv_to_rgb(torch.from_numpy(hsv).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(out, hsv2rgb(hsv))


def test_rgb_to_grey_matches_opencv_exactly() -> None:
    a = (_tricky_rgb(2, 64)).astype(np.float32)
    out = C.rgb_to_grey(torch.from_numpy(a).permute(2, 0, 1)[None])[0, 0].numpy()
    np.testing.assert_array_equal(out, cv2.cvtColor(a, cv2.COLOR_RGB2GRAY))


def test_hsv_tie_rule_blue_over_green_over_red() -> None:
    x = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]).t().reshape(1, 3, 1, 3)
    h = C.rgb_to_hsv(x)[0, 0, 0]
    # R=G max -> green formula 2 + (b - r)/d = 1 -> 1/6; G=B -> blue formula 4 + (r - g)/d = 3 -> 1/2;
    # R=B -> blue formula 4 + (r - g) / d = 5 -> 5/6
    torch.testing.assert_close(h, torch.tensor([1 / 6, 1 / 2, 5 / 6]))


def test_hsv_gradients_finite_at_ties() -> None:
    x = torch.tensor(_tricky_rgb(3, 8)).permute(2, 0, 1)[None].requires_grad_(True)
    C.hsv_to_rgb(C.rgb_to_hsv(x)).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_color_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        C.rgb_to_hsv(torch.rand(2, 4, 3, 3))
    with pytest.raises(TypeError, match="floating"):
        C.hsv_to_rgb(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        C.rgb_to_grey(torch.rand(3, 4, 4))


# ================================================================================================ brightness
class TestBrightness(CommonCorruptionTests):
    corruption_cls = Brightness

    def call_functional(self, op, x, params):
        return W.brightness(x, op.args(params, op.resolve_preset(x))["value"])


def _check_brightness_224(severity: int, photos: tuple[str, ...]) -> None:
    ref = imagenet_c()
    for photo in photos:
        img = photo_at(photo, 224)
        expected = np.uint8(ref.brightness(img, severity))
        out = to_uint8(Brightness(severity=severity, preset="imagenet")(to_tensor(img)))
        assert _exact_fraction(out, expected) == 1.0


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_brightness_bit_exact_vs_original_224(severity: int) -> None:
    # s2 (c = 0.2) is the case with many exact-integer ties (k / 255 + 0.2 -> k + 51 DN)
    _check_brightness_224(severity, PHOTOS[1:2])


@pytest.mark.slow
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_brightness_bit_exact_vs_original_224_all_photos(severity: int) -> None:
    _check_brightness_224(severity, PHOTOS)


@needs_skimage
@pytest.mark.parametrize("preset", ["tinyimagenet", "cifar"])
def test_brightness_bit_exact_vs_transcription(preset: str) -> None:
    from skimage.color import hsv2rgb, rgb2hsv

    size = SIZES[preset]
    for photo in PHOTOS:
        img = photo_at(photo, size)
        for severity in range(1, 6):
            c = float(Brightness.table.values(preset)[severity - 1, 0])
            hsv = rgb2hsv(img / 255.0)
            hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
            expected = np.uint8(np.clip(hsv2rgb(hsv), 0, 1) * 255)
            out = to_uint8(Brightness(severity=severity, preset=preset)(to_tensor(img)))
            assert _exact_fraction(out, expected) == 1.0, (photo, severity)


def test_brightness_exact_path_matches_float_path() -> None:
    x = natural_batch(32)
    fast = W.brightness(x, torch.tensor([0.2, 0.3]))
    exact = W.brightness(x, torch.tensor([0.2, 0.3]), quantize=True)
    assert (exact * 255 - torch.floor(exact * 255 + 1e-3)).abs().max() < 1e-4  # 8-bit values
    assert (exact - fast).abs().max() <= 1 / 255 + 1e-6


# ================================================================================================ fog
class TestFog(CommonCorruptionTests):
    corruption_cls = Fog

    def call_functional(self, op, x, params):
        a = op.args(params, op.resolve_preset(x))
        return W.fog(x, a["strength"], a["wibbledecay"], params["seed"], stream=op.stream("plasma"))


def _np_plasma(u: np.ndarray, decay: float) -> np.ndarray:
    """Spec H3 in NumPy: diamond-square on a wrapping grid; point (i, j) uses u[i, j] in uniform(-w, w)."""
    n = u.shape[0]
    grid = np.zeros((n, n))
    wib = 100.0
    step = n
    while step >= 2:
        half = step // 2
        corners = grid[::step, ::step]
        total = corners + np.roll(corners, -1, axis=0)
        total = total + np.roll(total, -1, axis=1)
        grid[half::step, half::step] = total / 4 + wib * (-wib + 2 * wib * u[half::step, half::step])
        centres = grid[half::step, half::step]
        across = (centres + np.roll(centres, 1, axis=0)) + (corners + np.roll(corners, -1, axis=1))
        grid[::step, half::step] = across / 4 + wib * (-wib + 2 * wib * u[::step, half::step])
        down = (centres + np.roll(centres, 1, axis=1)) + (corners + np.roll(corners, -1, axis=0))
        grid[half::step, ::step] = down / 4 + wib * (-wib + 2 * wib * u[half::step, ::step])
        step //= 2
        wib /= decay
    grid = grid - grid.min()
    return grid / grid.max()


@pytest.mark.parametrize("size,decay", [(2, 2.0), (8, 3.0), (32, 1.75), (64, 2.5), (256, 1.4)])
def test_plasma_bit_exact_vs_numpy(size: int, decay: float) -> None:
    u = field_uniform(torch.tensor([3, 4]), (size, size), 17, dtype=torch.float64)
    out = W.plasma_fractal(u, decay)
    for i in range(2):
        np.testing.assert_array_equal(out[i].numpy(), _np_plasma(u[i].numpy(), decay))
    assert out.amin() == 0 and out.amax() == 1


def _check_fog(preset: str, severities: list[int], photos: tuple[str, ...]) -> None:
    size = SIZES[preset]
    side = {224: 256, 64: 64, 32: 32}[size]
    for photo in photos:
        img = photo_at(photo, size)
        for severity in severities:
            c, decay = Fog.table.values(preset)[severity - 1].tolist()
            u = field_uniform(torch.tensor([severity]), (side, side), 99, dtype=torch.float64)
            x = img / 255.0
            top = x.max()
            foggy = x + c * _np_plasma(u[0].numpy(), decay)[:size, :size, None]
            expected = np.uint8(np.clip(foggy * top / (top + c), 0, 1) * 255)
            out = to_uint8(W.fog(to_tensor(img), c, decay, uniform=u, quantize=True))
            assert _exact_fraction(out, expected) == 1.0, (photo, severity)


@pytest.mark.parametrize("preset", ["tinyimagenet", "cifar"])
def test_fog_bit_exact_given_uniforms(preset: str) -> None:
    _check_fog(preset, [1, 2, 3, 4, 5], PHOTOS)


def test_fog_bit_exact_given_uniforms_224() -> None:
    _check_fog("imagenet", [2, 5], PHOTOS[:1])


@pytest.mark.slow
def test_fog_bit_exact_given_uniforms_224_full() -> None:
    _check_fog("imagenet", [1, 2, 3, 4, 5], PHOTOS)


def test_fog_map_size_and_nonsquare() -> None:
    assert [W.fog_map_size(s, s) for s in (224, 64, 32, 5)] == [256, 64, 32, 8]
    assert W.fog_map_size(40, 130) == 256
    x = torch.rand(2, 3, 40, 70)
    out = Fog(severity=3)(x)
    assert out.shape == x.shape
    # top-left crop: the map of a 40x70 image is the top-left block of the same 128-map
    u = field_uniform(torch.tensor([1]), (128, 128), 5, dtype=torch.float64)
    a = W.fog(x[:1], 1.0, 2.0, uniform=u)
    fmap = W.plasma_fractal(u, 2.0)[:, None, :40, :70].float()
    m = x[:1].amax()
    torch.testing.assert_close(a, ((x[:1] + fmap) * m / (m + 1.0)).clamp(0, 1))


def _plasma_stats(maps: np.ndarray, crop: int) -> np.ndarray:
    m = maps[:, :crop, :crop]
    return np.stack(
        [
            m.mean((1, 2)),
            m.std((1, 2)),
            np.abs(np.diff(m, axis=1)).mean((1, 2)),
            np.abs(np.diff(m, axis=2)).mean((1, 2)),
            np.percentile(m.reshape(len(m), -1), 90, axis=1),
        ],
        1,
    )


def _check_plasma_stats(side: int, crop: int, decay: float, n: int) -> None:
    ref = imagenet_c()
    np.random.seed(0)
    expected = _plasma_stats(np.stack([ref.plasma_fractal(side, decay) for _ in range(n)]), crop)
    u = field_uniform(combine_seeds(7, torch.arange(n)), (side, side), 99, dtype=torch.float64)
    ours = _plasma_stats(W.plasma_fractal(u, decay).numpy(), crop)
    rel = np.abs(ours.mean(0) - expected.mean(0)) / np.abs(expected.mean(0))
    se = np.sqrt(ours.var(0) / n + expected.var(0) / n) / np.abs(expected.mean(0))
    assert (rel[:2] < 0.03).all(), rel  # mean and spread of the map within 3 %
    assert (rel < 4 * se + 0.005).all(), (rel, se)  # every statistic within 4 standard errors


@pytest.mark.parametrize("side,decay", [(32, 3.0), (64, 1.75)])
def test_plasma_statistics_vs_original(side: int, decay: float) -> None:
    _check_plasma_stats(side, side, decay, 300)


@pytest.mark.slow
@pytest.mark.parametrize("decay", [2.0, 1.7, 1.5, 1.4])
def test_plasma_statistics_vs_original_256(decay: float) -> None:
    _check_plasma_stats(256, 224, decay, 300)


def _change_stats(out: np.ndarray, img: np.ndarray) -> np.ndarray:
    d = out.astype(np.float64) - img.astype(np.float64)
    return np.array([out.mean(), d.std(), np.abs(d).mean(), (d != 0).mean()])


def _compare_with_original(name: str, cls, severity: int, n: int, size: int = 224) -> None:
    """Mean output, spread of the change, mean absolute change and fraction of changed pixels, averaged over the
    photos and ``n`` seeds each, agree within 3 % -- or within 3 standard errors where the per-image variance is
    larger than that (e.g. spatter severity 1: a handful of drops per image)."""
    ref = imagenet_c()
    ours, theirs = [], []
    op = cls(severity=severity, preset="imagenet")
    for k, photo in enumerate(PHOTOS):
        img = photo_at(photo, size)
        for seed in range(n):
            np.random.seed(1000 * k + seed)
            theirs.append(_change_stats(np.uint8(getattr(ref, name)(img, severity)), img))
        out = op(to_tensor(img).repeat(n, 1, 1, 1), op.params_for_indices(torch.arange(n) + 1000 * k, seed=5))
        for i in range(n):
            ours.append(_change_stats(to_uint8(out[i : i + 1]), img))
    ours_a, theirs_a = np.array(ours), np.array(theirs)
    ours_m, theirs_m = ours_a.mean(0), theirs_a.mean(0)
    rel = np.abs(ours_m - theirs_m) / np.abs(theirs_m)
    se = np.sqrt(ours_a.var(0) / len(ours_a) + theirs_a.var(0) / len(theirs_a)) / np.abs(theirs_m)
    assert (rel < np.maximum(0.03, 3 * se)).all(), (name, severity, ours_m, theirs_m, rel, se)


@pytest.mark.slow
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_fog_statistics_vs_original_224(severity: int) -> None:
    _compare_with_original("fog", Fog, severity, 40)


# ================================================================================================ frost
class TestFrost(CommonCorruptionTests):
    corruption_cls = Frost
    # The table lowers the image weight while raising the frost weight, so the mean absolute change is not monotone
    # even for a fixed texture and crop (e.g. CIFAR s3 (0.9, 0.4) -> s4 (0.85, 0.4)); test_frost_table_blend checks
    # the blend itself.
    monotone = False

    def call_functional(self, op, x, params):
        preset = op.resolve_preset(x)
        a = op.args(params, preset)
        scale = W.FROST_SCALE[preset]
        top, left = W.frost_offsets(
            params["texture"], params["crop_u"][:, 0], params["crop_u"][:, 1], scale, x.shape[-2], x.shape[-1]
        )
        return W.frost(x, a["image_weight"], a["frost_weight"], params["texture"], top, left, scale=scale)


def test_frost_textures_decode_like_cv2_imread() -> None:
    folder = A.frost_dir()
    for i, name in enumerate(A.FROST_FILES):
        expected = cv2.imread(f"{folder}/{name}")[..., ::-1]
        np.testing.assert_array_equal(A.load_frost(i).permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize("factor", [0.3, 0.2])
def test_frost_resize_bit_exact_vs_cv2(factor: float) -> None:
    folder = A.frost_dir()
    for i, name in enumerate(A.FROST_FILES):
        expected = cv2.resize(cv2.imread(f"{folder}/{name}"), (0, 0), fx=factor, fy=factor)[..., ::-1]
        out = A.cv_resize_linear_uint8(A.load_frost(i), factor).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(out, expected)
    sizes = A.frost_sizes(factor)
    assert sizes[:5] == (
        [(180, 270), (94, 168), (94, 168), (105, 158), (148, 198)]
        if factor == 0.3
        else [(120, 180), (63, 112), (63, 112), (70, 105), (99, 132)]
    )


def _check_frost_224(photos: tuple[str, ...]) -> None:
    """Replay the original's own draws (idx, then the two offsets from NumPy's global RNG) through our op."""
    ref = imagenet_c()
    folder = A.frost_dir()
    for k, photo in enumerate(photos):
        img = photo_at(photo, 224)
        for severity in range(1, 6):
            seed = 10 * k + severity
            np.random.seed(seed)
            expected = np.uint8(ref.frost(img, severity))
            np.random.seed(seed)
            idx = np.random.randint(5)
            tex = cv2.imread(f"{folder}/{A.FROST_FILES[idx]}")
            top = np.random.randint(0, tex.shape[0] - 224)
            left = np.random.randint(0, tex.shape[1] - 224)
            a, b = Frost.table.values("imagenet")[severity - 1].tolist()
            out = W.frost(
                to_tensor(img), a, b, torch.tensor([idx]), torch.tensor([top]), torch.tensor([left]), quantize=True
            )
            assert _exact_fraction(to_uint8(out), expected) == 1.0, (photo, severity)


def test_frost_bit_exact_vs_original_224() -> None:
    _check_frost_224(PHOTOS[:1])


@pytest.mark.slow
def test_frost_bit_exact_vs_original_224_all_photos() -> None:
    _check_frost_224(PHOTOS)


@pytest.mark.parametrize("preset", ["tinyimagenet", "cifar"])
def test_frost_bit_exact_vs_transcription(preset: str) -> None:
    size, factor = SIZES[preset], W.FROST_SCALE[preset]
    folder = A.frost_dir()
    rng = np.random.RandomState(0)
    for photo in PHOTOS:
        img = photo_at(photo, size)
        for severity in range(1, 6):
            idx = rng.randint(5)
            tex = cv2.resize(cv2.imread(f"{folder}/{A.FROST_FILES[idx]}"), (0, 0), fx=factor, fy=factor)
            top, left = rng.randint(0, tex.shape[0] - size), rng.randint(0, tex.shape[1] - size)
            a, b = Frost.table.values(preset)[severity - 1].tolist()
            crop = tex[top : top + size, left : left + size, ::-1]
            expected = np.uint8(np.clip(a * img + b * crop, 0, 255))
            out = W.frost(
                to_tensor(img),
                a,
                b,
                torch.tensor([idx]),
                torch.tensor([top]),
                torch.tensor([left]),
                scale=factor,
                quantize=True,
            )
            assert _exact_fraction(to_uint8(out), expected) == 1.0, (photo, severity)


def test_frost_draws_reproduce_quirk3() -> None:
    op = Frost()
    p = op.params_for_indices(torch.arange(4000), seed=0)
    counts = torch.bincount(p["texture"], minlength=6)
    assert counts[5] == 0 and (counts[:5] > 700).all()  # frost6.jpg is never used; the other five uniformly
    p6 = Frost(include_frost6=True).params_for_indices(torch.arange(4000), seed=0)
    assert torch.bincount(p6["texture"], minlength=6)[5] > 550
    assert "include_frost6=True" in repr(Frost(include_frost6=True))
    # offsets: floor(u * (H_f - H)) -- the last valid position is excluded, as NumPy's randint(0, H_f - H)
    idx = torch.zeros(3, dtype=torch.int64)
    u = torch.tensor([0.0, 0.5, 1.0 - 1e-12], dtype=torch.float64)
    top, left = W.frost_offsets(idx, u, u, 1.0, 224, 224)
    assert top.tolist() == [0, 188, 599 - 224] and left.tolist() == [0, 338, 899 - 224]


def test_frost_table_blend() -> None:
    x = natural_batch(32)
    z = torch.zeros(2, dtype=torch.int64)
    tex = W.frost(torch.zeros_like(x), 0.0, 1.0, z, z, z, scale=0.2)  # the texture crop itself
    out = W.frost(x, 0.85, 0.4, z, z, z, scale=0.2)
    torch.testing.assert_close(out, (0.85 * x + 0.4 * tex).clamp(0, 1), atol=1e-6, rtol=0)


def test_frost_large_and_nonsquare_images() -> None:
    x = torch.rand(1, 3, 400, 240)  # taller than frost2-4 at the ImageNet preset: those get upscaled
    op = Frost(severity=3, preset="imagenet")
    out = op(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    _, sizes = A.frost_stack(1.0, 400, 240)
    assert (sizes[:, 0] > 400).all() and (sizes[:, 1] > 240).all()
    assert sizes[0].tolist() == [600, 900]  # large enough textures are left alone
    assert Frost(severity=2)(torch.rand(1, 3, 40, 90)).shape == (1, 3, 40, 90)


def test_frost_bad_offsets_and_index() -> None:
    x = torch.rand(1, 3, 32, 32)
    one = torch.ones(1, dtype=torch.int64)
    with pytest.raises(ValueError, match="offsets"):
        W.frost(x, 1.0, 0.3, one, one * 1000, one, scale=0.2)
    with pytest.raises(ValueError, match="index"):
        W.frost(x, 1.0, 0.3, one * 6, one, one, scale=0.2)
    with pytest.raises(TypeError, match="integer"):
        W.frost(x, 1.0, 0.3, one.float(), one, one, scale=0.2)


def test_frost_missing_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "imagecorruptions" else real(name, *a)
    )
    with pytest.raises(RuntimeError, match="pip install imagecorruptions"):
        A.frost_dir()


# ================================================================================================ spatter
class TestSpatter(CommonCorruptionTests):
    corruption_cls = Spatter
    # Severities 1-3 are water, 4-5 mud: the mean change is not monotone across the switch (e.g. CIFAR s3 > s4).
    monotone = False

    def call_functional(self, op, x, params):
        a = op.args(params, op.resolve_preset(x))
        return W.spatter(
            x,
            a["loc"],
            a["scale"],
            a["sigma"],
            a["threshold"],
            a["intensity"],
            a["mud"] > 0.5,
            params["seed"],
            stream=op.stream("liquid"),
        )


def _liquid8(seed: int, size: int, loc: float, scale: float, sigma: float, threshold: float) -> np.ndarray:
    from skimage.filters import gaussian

    layer = gaussian(loc + scale * _normal(seed, size)[0].numpy(), sigma=sigma)
    layer[layer < threshold] = 0
    return (layer * 255).astype(np.uint8)


def _layers() -> list[np.ndarray]:
    """8-bit liquid layers for every water parameterisation, plus blurred random images."""
    out = []
    for preset, size in SIZES.items():
        if preset == "imagenet":
            size = 96
        for row in Spatter.table.values(preset).tolist()[:3]:
            out += [_liquid8(s, size, *row[:4]) for s in range(2)]
    rng = np.random.default_rng(0)
    out += [cv2.GaussianBlur(rng.integers(0, 256, (40, 56)).astype(np.uint8), (5, 5), 1.2) for _ in range(3)]
    out += [rng.integers(0, 4, (30, 20)).astype(np.uint8) * 60]
    return out


@needs_skimage
def test_canny_bit_exact_vs_opencv() -> None:
    for layer in _layers():
        expected = cv2.Canny(layer, 50, 150) > 0
        np.testing.assert_array_equal(W.canny(torch.from_numpy(layer)[None], 50, 150)[0].numpy(), expected)


@needs_skimage
def test_chamfer_distance_vs_opencv() -> None:
    worst = 0.0
    for layer in _layers():
        edges = cv2.Canny(layer, 50, 150)
        expected = np.minimum(cv2.distanceTransform(255 - edges, cv2.DIST_L2, 5), 20)
        out = W.chamfer_distance(torch.from_numpy(edges > 0)[None])[0].numpy()
        worst = max(worst, float(np.abs(out - expected).max()))
        # after the 3x3 mean and the uint8 cast (all the pipeline uses) the maps are identical
        np.testing.assert_array_equal(
            cv2.blur(out, (3, 3)).astype(np.uint8), cv2.blur(expected, (3, 3)).astype(np.uint8)
        )
    assert worst < 5e-6
    empty = W.chamfer_distance(torch.zeros(1, 6, 7, dtype=torch.bool))
    assert (empty == 20).all()


@needs_skimage
def test_opencv_blocks_bit_exact() -> None:
    kernel = ((-2, -1, 0), (-1, 1, 1), (0, 1, 2))
    for layer in _layers():
        d = np.minimum(cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5), 20)
        blurred = cv2.blur(d, (3, 3))
        np.testing.assert_array_equal(W.box_blur3(torch.from_numpy(d)[None])[0].numpy(), blurred)
        u8 = blurred.astype(np.uint8)
        eq = cv2.equalizeHist(u8)
        np.testing.assert_array_equal(W.equalize_hist(torch.from_numpy(u8)[None])[0].numpy(), eq)
        emb = cv2.filter2D(eq, cv2.CV_8U, np.array(kernel))
        np.testing.assert_array_equal(W.filter3x3_u8(torch.from_numpy(eq)[None], kernel)[0].numpy(), emb)
        np.testing.assert_array_equal(
            W.box_blur3(torch.from_numpy(emb)[None], integer=True)[0].numpy(), cv2.blur(emb, (3, 3))
        )
    const = np.full((5, 6), 7, np.uint8)
    np.testing.assert_array_equal(W.equalize_hist(torch.from_numpy(const)[None])[0].numpy(), cv2.equalizeHist(const))


def _np_spatter(img: np.ndarray, row: list[float], z: np.ndarray) -> np.ndarray:
    """Spec 2.19 in NumPy/OpenCV/scikit-image, fed the normal field ``z``. Mud mask blurred in float64 like the
    original's scikit-image 0.13 (current versions keep float32)."""
    from skimage.filters import gaussian

    loc, scale, sigma, threshold, p4, mud = row
    x = img.astype(np.float32) / 255.0
    layer = gaussian(loc + scale * z, sigma=sigma)
    layer[layer < threshold] = 0
    if not mud:
        l8 = (layer * 255).astype(np.uint8)
        dist = cv2.distanceTransform(255 - cv2.Canny(l8, 50, 150), cv2.DIST_L2, 5)
        dist = cv2.blur(np.minimum(dist, 20), (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        water = l8 * dist
        water = water / water.max() * p4
        tint = np.array([175, 238, 238], np.float32) / np.float32(255)
        return np.clip(x + water[..., None] * tint, 0, 1) * 255
    blob = gaussian((layer > threshold).astype(np.float64), sigma=p4)
    blob[blob < 0.8] = 0
    brown = np.array([63, 42, 20], np.float32) / np.float32(255)
    x *= 1 - blob[..., None]
    return np.clip(x + (brown * blob[..., None]).astype(np.float32), 0, 1) * 255


@needs_skimage
@pytest.mark.parametrize("preset", ["imagenet", "tinyimagenet", "cifar"])
def test_spatter_bit_exact_given_noise(preset: str) -> None:
    size = SIZES[preset]
    photos = PHOTOS[:1] if preset == "imagenet" else PHOTOS
    for photo in photos:
        img = photo_at(photo, size)
        for severity in range(1, 6):
            row = Spatter.table.values(preset)[severity - 1].tolist()
            z = _normal(31 * severity + len(photo), size)
            expected = np.uint8(_np_spatter(img, row, z[0].numpy()))
            out = W.spatter(to_tensor(img), *row[:5], bool(row[5]), noise=z, quantize=True)
            assert _exact_fraction(to_uint8(out), expected) == 1.0, (photo, severity)


@needs_skimage
def test_spatter_wraps_uint8_like_the_original() -> None:
    """Quirk 11: values of the liquid layer above 1 wrap modulo 256 in np.uint8 (happens at TI/CF severity 3)."""
    row = Spatter.table.values("tinyimagenet")[2].tolist()
    img = photo_at("astronaut", 64)
    for seed in range(200):
        z = _normal(seed, 64)
        layer = B.gaussian_nearest(
            (row[0] + row[1] * z).unsqueeze(1), torch.tensor([row[2]], dtype=torch.float64)
        ).squeeze(1)
        if layer.max() > 256 / 255:
            break
    else:  # pragma: no cover
        pytest.fail("no wrapping layer found")
    expected = np.uint8(_np_spatter(img, row, z[0].numpy()))
    out = W.spatter(to_tensor(img), *row[:5], False, noise=z, quantize=True)
    np.testing.assert_array_equal(to_uint8(out), expected)


def test_spatter_without_water_leaves_image_unchanged() -> None:
    """Quirk 11 decision: the original returns NaN when the thresholded layer is empty; we return the image."""
    x = natural_batch(32)
    out = W.spatter(x, 0.65, 0.3, 1.0, 5.0, 0.6, False, torch.tensor([1, 2]))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, x)


def test_spatter_branch_switch_for_fractional_severity() -> None:
    op = Spatter(preset="cifar")
    p = op.make_params(torch.tensor([1, 2, 3]), torch.tensor([3.2, 3.6, 4.5]))
    a = op.args(p, "cifar")
    table = Spatter.table.values("cifar")
    assert a["mud"].tolist() == [0.0, 1.0, 1.0]
    torch.testing.assert_close(a["intensity"][:2], torch.stack([table[2, 4], table[3, 4]]))
    torch.testing.assert_close(a["sigma"][2], (table[3, 2] + table[4, 2]) / 2)
    out = op(natural_batch(32)[:1].repeat(3, 1, 1, 1), p)
    assert torch.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_spatter_statistics_vs_original_224(severity: int) -> None:
    _compare_with_original("spatter", Spatter, severity, 40)


# ================================================================================================ snow
class TestSnow(CommonCorruptionTests):
    corruption_cls = Snow
    monotone = False  # quirk 5: snow severities are not monotone

    def call_functional(self, op, x, params):
        a = op.args(params, op.resolve_preset(x))
        return W.snow(
            x,
            a["loc"],
            a["scale"],
            a["zoom"],
            a["threshold"],
            a["radius"],
            a["sigma"],
            a["blend"],
            params["angle"],
            params["seed"],
            stream=op.stream("layer"),
        )


def _np_snow(img: np.ndarray, row: list[float], z: np.ndarray, angle: float) -> np.ndarray:
    """Spec 2.10 built from the original's clipped_zoom and ImageMagick (Wand) motion blur, fed ``z`` and ``angle``."""
    from PIL import Image

    ref = imagenet_c()
    loc, scale, zoom, threshold, radius, sigma, blend = row
    x = img.astype(np.float32) / 255.0
    flakes = ref.clipped_zoom((loc + scale * z)[..., None], zoom)[..., 0]
    flakes[flakes < threshold] = 0
    buf = io.BytesIO()
    Image.fromarray((np.clip(flakes, 0, 1) * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    wand = ref.MotionImage(blob=buf.getvalue())
    wand.motion_blur(radius=radius, sigma=sigma, angle=angle)
    flakes = cv2.imdecode(np.frombuffer(wand.make_blob(), np.uint8), cv2.IMREAD_UNCHANGED)[..., None] / 255.0
    grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    scene = blend * x + (1 - blend) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(scene + flakes + flakes[::-1, ::-1], 0, 1) * 255


def _check_snow(preset: str, severities: list[int], photos: tuple[str, ...]) -> None:
    size = SIZES[preset]
    for photo in photos:
        img = photo_at(photo, size)
        for severity in severities:
            row = Snow.table.values(preset)[severity - 1].tolist()
            z = _normal(7 * severity + len(photo), size)
            angle = -135.0 + 90.0 * ((0.37 * severity + 0.11 * len(photo)) % 1.0)
            expected = np.uint8(_np_snow(img, row, z[0].numpy(), angle))
            out = W.snow(to_tensor(img), *row, angle, noise=z, quantize=True)
            assert _exact_fraction(to_uint8(out), expected) == 1.0, (photo, severity)


@pytest.mark.parametrize("preset", ["tinyimagenet", "cifar"])
def test_snow_bit_exact_given_noise_small(preset: str) -> None:
    _check_snow(preset, [1, 2, 3, 4, 5], PHOTOS[:2])


def test_snow_bit_exact_given_noise_224() -> None:
    _check_snow("imagenet", [3], PHOTOS[:1])


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["imagenet", "tinyimagenet", "cifar"])
def test_snow_bit_exact_given_noise_full(preset: str) -> None:
    _check_snow(preset, [1, 2, 3, 4, 5], PHOTOS)


def test_snow_angle_draws() -> None:
    p = Snow().params_for_indices(torch.arange(2000), seed=0)
    a = p["angle"]
    assert a.min() >= -135 and a.max() < -45
    assert abs(float(a.mean()) + 90) < 2 and abs(float(a.std()) - 90 / 12**0.5) < 1.5


def test_snow_nonsquare() -> None:
    x = torch.rand(2, 3, 48, 80)
    assert Snow(severity=4)(x).shape == x.shape


@pytest.mark.slow
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_snow_statistics_vs_original_224(severity: int) -> None:
    _compare_with_original("snow", Snow, severity, 40)


# ================================================================================================ all
@pytest.mark.parametrize("cls", [Brightness, Fog, Frost, Spatter, Snow])
def test_exact_output_is_idempotent_under_base_truncation(cls) -> None:
    """The bit-exact 8-bit output (quantize=True) survives the base class's own truncation unchanged."""
    x = natural_batch(32)
    op = cls(severity=3)
    p = op.params_for_indices(torch.arange(2), seed=0)
    out = op(x, p)
    k = out * 255
    assert (k - torch.round(k)).abs().max() < 1e-4
    unq = cls(severity=3, quantize=False)(x, p)
    assert (out - unq).abs().max() <= 1 / 255 + 1e-5


@pytest.mark.parametrize("cls", [Brightness, Fog, Frost, Spatter, Snow])
def test_gradients_reach_input_float32(cls) -> None:
    x = natural_batch(32).requires_grad_(True)
    op = cls(severity=2)
    op(x, op.params_for_indices(torch.arange(2), seed=0)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_functional_bad_arguments() -> None:
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="exactly one"):
        W.fog(x, 1.0, 2.0)
    with pytest.raises(ValueError, match="uniform"):
        W.fog(x, 1.0, 2.0, uniform=torch.rand(2, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="power of two"):
        W.plasma_fractal(torch.rand(1, 12, 12), 2.0)
    with pytest.raises(ValueError, match="strength"):
        W.fog(x, torch.tensor([1.0, 2.0, 3.0]), 2.0, torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="seed"):
        W.spatter(x, 0.65, 0.3, 1.0, 0.69, 0.6, False, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="blend"):
        W.snow(x, 0.1, 0.2, 1.0, 0.6, 8.0, 3.0, 1.5, -90.0, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="shape"):
        W.canny(torch.zeros(2, 3, 4, 4), 50, 150)


# ================================================================================================ fused exact paths
# With fusion on, the quantised ops run fused float64 kernels (no float32 fast path, no tie refinement): the same
# reference-parity checks must hold bit for bit with those kernels.
@pytest.fixture
def fused_on():
    from robust_train import fusion

    with fusion("on"):
        yield


@pytest.mark.parametrize("size,decay", [(32, 1.75), (256, 1.4)])
def test_plasma_fused_bit_exact_vs_numpy(fused_on: None, size: int, decay: float) -> None:
    u = field_uniform(torch.tensor([5, 6]), (size, size), 17, dtype=torch.float64)
    out = W.plasma_fractal(u, torch.tensor([decay, decay + 0.5], dtype=torch.float64))
    for i in range(2):
        np.testing.assert_array_equal(out[i].numpy(), _np_plasma(u[i].numpy(), decay + 0.5 * i))


def test_fog_fused_bit_exact_given_uniforms(fused_on: None) -> None:
    _check_fog("tinyimagenet", [1, 3, 5], PHOTOS)
    _check_fog("imagenet", [2], PHOTOS[:1])


def test_brightness_fused_bit_exact_vs_original(fused_on: None) -> None:
    _check_brightness_224(2, PHOTOS[1:2])  # the case with many exact-integer ties


def test_frost_fused_bit_exact_vs_original(fused_on: None) -> None:
    _check_frost_224(PHOTOS[:1])


@needs_skimage
def test_spatter_fused_bit_exact_given_noise(fused_on: None) -> None:
    test_spatter_bit_exact_given_noise("tinyimagenet")  # water (s1-s3) and mud (s4-s5)


def test_spatter_fused_mixed_batch_matches_eager() -> None:
    from robust_train import fusion

    x = torch.cat((natural_batch(48), natural_batch(48)[:1]))
    intensity = torch.tensor([0.5, 1.5, 0.6], dtype=torch.float64)
    args = (0.65, 0.3, 1.0, 0.66, intensity, torch.tensor([False, True, False]))
    seed = torch.tensor([3, 4, 5])
    with fusion("off"):
        eager = W.spatter(x, *args, seed, quantize=True)
    with fusion("on"):
        fused = W.spatter(x, *args, seed, quantize=True)
    assert torch.equal(eager, fused)
    assert not torch.equal(eager[1], x[1])  # the mud sample changed


def test_canny_and_chamfer_match_opencv_under_fusion(fused_on: None) -> None:
    test_canny_bit_exact_vs_opencv()
    test_chamfer_distance_vs_opencv()


def test_canny_and_chamfer_fused_equal_eager() -> None:
    """The fused Canny (Sobel and NMS kernels in float arithmetic) and chamfer steps (one kernel per min-plus step,
    two ping-pong buffers) give the eager integer / in-place versions' results exactly: random 8-bit images (smooth
    and rough, so every NMS direction and the zero-derivative sign cases occur), tiny and thin sizes included."""
    from robust_train import fusion

    g = torch.Generator().manual_seed(7)
    sizes = [(1, 9), (9, 1), (2, 2), (3, 40), (37, 41), (64, 23)]
    for i, (h, w) in enumerate(sizes * 2):
        img = torch.randint(0, 256, (3, h, w), generator=g).float()
        if i % 2 and min(h, w) >= 3:
            img = torch.round(torch.nn.functional.avg_pool2d(img.unsqueeze(1), 3, 1, 1).squeeze(1))
        with fusion("off"):
            edges = W.canny(img, 50, 150)
            dist = W.chamfer_distance(edges)
        with fusion("on"):
            assert torch.equal(W.canny(img, 50, 150), edges), (h, w)
            assert torch.equal(W.chamfer_distance(edges), dist), (h, w)
        assert bool(edges.any()) or min(h, w) < 3


def test_snow_fused_bit_exact_given_noise(fused_on: None) -> None:
    _check_snow("cifar", [1, 3, 5], PHOTOS[:2])
    _check_snow("imagenet", [3], PHOTOS[:1])


@needs_skimage
def test_spatter_fused_wraps_uint8_like_the_original(fused_on: None) -> None:
    test_spatter_wraps_uint8_like_the_original()  # the wrap test is a tensor select in the fused layer kernel
