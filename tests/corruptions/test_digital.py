"""Digital corruptions: contract tests plus parity with the original (``imagenet_c``) and the libraries it calls.

Default (fast) subset: every severity at 32/64 px on one photo and one or two severities at 224 px; the ``slow``
tests run every photo, severity and preset.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from robust_train.corruptions import Params
from robust_train.corruptions.digital import Contrast, ElasticTransform, JpegCompression, Pixelate, Saturate
from robust_train.functional import digital as F

from .._helpers import PHOTOS, photo_at, to_tensor, to_uint8
from .._reference import imagenet_c
from ._scipy10 import map_coordinates_scipy10_reflect
from .common import CommonCorruptionTests, natural_batch

PRESET_SIZE = {"imagenet": 224, "tinyimagenet": 64, "cifar": 32}


def _agree(a: np.ndarray, b: np.ndarray, tol: int = 1) -> float:
    """Fraction of 8-bit values that agree within ``tol`` levels."""
    return float((np.abs(a.astype(np.int64) - b.astype(np.int64)) <= tol).mean())


def _pil_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _table_row(cls, preset: str, severity: int) -> list[float]:
    return cls.table.values(preset)[severity - 1].tolist()


# ============================================================================================ contract tests


class TestContrast(CommonCorruptionTests):
    corruption_cls = Contrast

    def call_functional(self, op, x, params):
        return F.contrast(x, op.args(params, op.resolve_preset(x))["factor"])


class TestSaturate(CommonCorruptionTests):
    corruption_cls = Saturate
    monotone = False  # s1-2 desaturate, s3-5 oversaturate (spec 2.15, quirk 5)

    def call_functional(self, op, x, params):
        a = op.args(params, op.resolve_preset(x))
        return F.saturate(x, a["multiplier"], a["offset"])


class TestJpegCompression(CommonCorruptionTests):
    corruption_cls = JpegCompression

    def call_functional(self, op, x, params):
        return F.jpeg_compression(x, torch.round(op.args(params, op.resolve_preset(x))["quality"]))


class TestPixelate(CommonCorruptionTests):
    corruption_cls = Pixelate

    def call_functional(self, op, x, params):
        return F.pixelate(x, op.args(params, op.resolve_preset(x))["factor"])


class TestElasticTransform(CommonCorruptionTests):
    corruption_cls = ElasticTransform
    monotone = False  # ImageNet s2 >> s3; Tiny/CIFAR s1 is a strong affine-only warp (spec quirks 4, 18)

    def call_functional(self, op, x, params):
        preset = op.resolve_preset(x)
        a = op.args(params, preset)
        return F.elastic_transform(x, a["alpha"], a["sigma"], op.offsets(params, preset), params["seed"])


# ============================================================================================ saturate


def _saturate_reference(img: np.ndarray, mult: float, offset: float) -> np.ndarray:
    """Spec 2.15 with scikit-image's HSV conversion (the original's code path for any preset)."""
    import skimage.color

    x = skimage.color.rgb2hsv(img / 255.0)
    x[:, :, 1] = np.clip(x[:, :, 1] * mult + offset, 0, 1)
    return np.uint8(np.clip(skimage.color.hsv2rgb(x), 0, 1) * 255)


def _run_saturate(img: np.ndarray, severity: int, preset: str) -> np.ndarray:
    """Float64 output truncated exactly as the original's ``np.uint8`` (the module's ``truncate_uint8`` adds a tiny
    epsilon, which maps the original's ``k - 1 ulp`` artefacts to ``k``: 1-3% of saturate's values)."""
    op = Saturate(severity=severity, preset=preset, quantize=False)
    return np.uint8(op(to_tensor(img, dtype=torch.float64))[0].permute(1, 2, 0).numpy() * 255)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("preset", ["cifar", "tinyimagenet"])
def test_saturate_matches_reference_small(preset: str, severity: int) -> None:
    img = photo_at("coffee", PRESET_SIZE[preset])
    ref = _saturate_reference(img, *_table_row(Saturate, preset, severity))
    assert _agree(_run_saturate(img, severity, preset), ref) >= 0.99
    assert _agree(_run_saturate(img, severity, preset), ref, tol=0) >= 0.999


@pytest.mark.parametrize("severity", [1, 5])
def test_saturate_matches_original_224(severity: int) -> None:
    img = photo_at("astronaut", 224)
    ref = np.uint8(imagenet_c().saturate(img, severity))
    assert _agree(_run_saturate(img, severity, "imagenet"), ref, tol=0) >= 0.999


@pytest.mark.slow
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("photo", PHOTOS)
def test_saturate_matches_original_all(photo: str, severity: int) -> None:
    img = photo_at(photo, 224)
    ref = np.uint8(imagenet_c().saturate(img, severity))
    out = _run_saturate(img, severity, "imagenet")
    assert _agree(out, ref) >= 0.99 and _agree(out, ref, tol=0) >= 0.999
    for preset in ("tinyimagenet", "cifar"):
        small = photo_at(photo, PRESET_SIZE[preset])
        ref = _saturate_reference(small, *_table_row(Saturate, preset, severity))
        assert _agree(_run_saturate(small, severity, preset), ref) >= 0.99


def test_saturate_grey_offset_tints_red() -> None:
    """Hue is 0 (red) where max == min, so the offset of s4/s5 tints grey pixels red, as in the original."""
    grey = torch.full((1, 3, 4, 4), 0.5)
    out = F.saturate(grey, torch.tensor([5.0]), torch.tensor([0.1]))
    assert out[0, 0].min() > out[0, 1].max() and torch.allclose(out[0, 1], out[0, 2])


def test_saturate_bad_args() -> None:
    with pytest.raises(ValueError, match="multiplier"):
        F.saturate(torch.rand(1, 3, 4, 4), torch.tensor([-1.0]), 0.0)
    with pytest.raises(ValueError, match="offset"):
        F.saturate(torch.rand(2, 3, 4, 4), 1.0, torch.zeros(3))


# ============================================================================================ JPEG


def _run_jpeg(img: np.ndarray, severity: int, preset: str, **kw) -> np.ndarray:
    op = JpegCompression(severity=severity, preset=preset, **kw)
    return to_uint8(op(to_tensor(img)))


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("preset", ["cifar", "tinyimagenet"])
def test_jpeg_matches_pil_small(preset: str, severity: int) -> None:
    img = photo_at("chelsea", PRESET_SIZE[preset])
    q = int(_table_row(JpegCompression, preset, severity)[0])
    assert np.array_equal(_run_jpeg(img, severity, preset), _pil_jpeg(img, q))


@pytest.mark.parametrize("severity", [1, 5])
def test_jpeg_matches_original_224(severity: int) -> None:
    from PIL import Image

    img = photo_at("rocket", 224)
    ref = np.asarray(imagenet_c().jpeg_compression(Image.fromarray(img), severity))
    assert np.array_equal(_run_jpeg(img, severity, "imagenet"), ref)


@pytest.mark.slow
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("photo", PHOTOS)
def test_jpeg_matches_original_all(photo: str, severity: int) -> None:
    from PIL import Image

    img = photo_at(photo, 224)
    ref = np.asarray(imagenet_c().jpeg_compression(Image.fromarray(img), severity))
    assert np.array_equal(_run_jpeg(img, severity, "imagenet"), ref)
    for preset in ("tinyimagenet", "cifar"):
        small = photo_at(photo, PRESET_SIZE[preset])
        q = int(_table_row(JpegCompression, preset, severity)[0])
        assert np.array_equal(_run_jpeg(small, severity, preset), _pil_jpeg(small, q))


def test_jpeg_per_sample_quality_and_odd_sizes() -> None:
    imgs = [photo_at(p, 37)[:, :29] for p in PHOTOS]  # 37 x 29: not a multiple of the 16-px MCU
    x = torch.cat([to_tensor(np.ascontiguousarray(i)) for i in imgs])
    qualities = [7, 35, 80, 100]
    out = F.jpeg_compression(x, torch.tensor(qualities))
    for i, (img, q) in enumerate(zip(imgs, qualities, strict=True)):
        assert np.array_equal(to_uint8(out[i : i + 1]), _pil_jpeg(np.ascontiguousarray(img), q))


def test_torchvision_codec_equals_pil() -> None:
    """torchvision's libjpeg writes the same bytes as PIL (4:2:0, same tables) and decodes bit-identically."""
    from PIL import Image
    from torchvision.io import decode_jpeg, encode_jpeg

    img = photo_at("coffee", 64)
    for q in (10, 50, 85):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=q)
        tv = encode_jpeg(torch.from_numpy(img).permute(2, 0, 1).contiguous(), quality=q)
        assert tv.numpy().tobytes() == buf.getvalue()
        decoded = decode_jpeg(tv).permute(1, 2, 0).numpy()
        assert np.array_equal(decoded, np.asarray(Image.open(buf)))


def _dqt_tables(data: bytes) -> dict[int, np.ndarray]:
    """Quantisation tables of a baseline JPEG file, natural order."""
    zigzag = np.array(
        [
            0,
            1,
            8,
            16,
            9,
            2,
            3,
            10,
            17,
            24,
            32,
            25,
            18,
            11,
            4,
            5,
            12,
            19,
            26,
            33,
            40,
            48,
            41,
            34,
            27,
            20,
            13,
            6,
            7,
            14,
            21,
            28,
            35,
            42,
            49,
            56,
            57,
            50,
            43,
            36,
            29,
            22,
            15,
            23,
            30,
            37,
            44,
            51,
            58,
            59,
            52,
            45,
            38,
            31,
            39,
            46,
            53,
            60,
            61,
            54,
            47,
            55,
            62,
            63,
        ]
    )
    tables, i = {}, 2
    while i < len(data) - 4:
        marker, length = data[i + 1], data[i + 2] * 256 + data[i + 3]
        if marker == 0xDB:
            seg = data[i + 4 : i + 2 + length]
            for j in range(0, len(seg), 65):
                nat = np.zeros(64, dtype=np.int64)
                nat[zigzag] = np.frombuffer(seg[j + 1 : j + 65], dtype=np.uint8)
                tables[seg[j] & 15] = nat.reshape(8, 8)
        if marker == 0xDA:
            break
        i += 2 + length
    return tables


@pytest.mark.parametrize("quality", [1, 7, 25, 50, 51, 85, 100])
def test_jpeg_quant_tables_match_libjpeg(quality: int) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(photo_at("coffee", 16)).save(buf, format="JPEG", quality=quality)
    tables = _dqt_tables(buf.getvalue())
    ours = F.jpeg_quant_tables(torch.tensor([quality]))[0].numpy()
    assert np.array_equal(ours[0], tables[0]) and np.array_equal(ours[1], tables[1])


def test_jpeg_surrogate_approximates_codec_and_passes_gradients() -> None:
    x = natural_batch(64)
    q = torch.tensor([10, 60])
    exact = F.jpeg_compression(x, q)
    sur = F.jpeg_surrogate(x, q)
    err = (sur - exact).abs().mean()
    change = (exact - x).abs().mean()
    assert err < 0.35 * change, (float(err), float(change))
    xg = x.clone().requires_grad_(True)
    out = F.jpeg_compression(xg, q)
    assert torch.equal(out.detach(), exact)  # the forward value is the codec's, bit for bit
    (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().mean() > 0.05


def test_jpeg_roundtrip_q85_as_released_data() -> None:
    img = photo_at("astronaut", 64)
    op = Contrast(severity=3, jpeg_quality=85)
    x = to_tensor(img)
    out = op(x, op.params_for_indices(torch.arange(1)))
    plain = to_uint8(Contrast(severity=3)(x, op.params_for_indices(torch.arange(1))))
    assert np.array_equal(to_uint8(out), _pil_jpeg(plain, 85))
    assert np.array_equal(to_uint8(F.jpeg_roundtrip(x, torch.tensor([85]))), _pil_jpeg(img, 85))


def test_jpeg_bad_args() -> None:
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="quality"):
        F.jpeg_compression(x, torch.tensor([0, 50]))
    with pytest.raises(ValueError, match="quality"):
        F.jpeg_compression(x, torch.tensor([50, 50, 50]))
    with pytest.raises(ValueError, match="codec"):
        F.jpeg_compression(x, 50, codec="gpu")
    with pytest.raises(ValueError, match="codec"):
        JpegCompression(codec="nvjpeg")
    assert "codec='cpu'" in repr(JpegCompression(codec="cpu"))


# ============================================================================================ pixelate


def _pil_pixelate(img: np.ndarray, factor: float, horizontal_first: bool = False) -> np.ndarray:
    """The original: PIL BOX resize to int(S * c) and back. ``horizontal_first`` composes two single-axis resizes
    (Pillow <= 12's pass order; Pillow 13 runs the height pass first for tall images)."""
    from PIL import Image

    h, w = img.shape[:2]
    sh, sw = int(h * factor), int(w * factor)
    pil = Image.fromarray(img)
    if horizontal_first:
        small = pil.resize((sw, h), Image.BOX).resize((sw, sh), Image.BOX)
    else:
        small = pil.resize((sw, sh), Image.BOX)
    return np.asarray(small.resize((w, h), Image.BOX))


def _run_pixelate(img: np.ndarray, severity: float, preset: str) -> np.ndarray:
    op = Pixelate(severity=severity, preset=preset)
    return to_uint8(op(to_tensor(img)))


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("preset", ["cifar", "tinyimagenet"])
def test_pixelate_matches_pil_small(preset: str, severity: int) -> None:
    img = photo_at("astronaut", PRESET_SIZE[preset])
    c = _table_row(Pixelate, preset, severity)[0]
    assert np.array_equal(_run_pixelate(img, severity, preset), _pil_pixelate(img, c))


@pytest.mark.parametrize("severity", [1, 5])
def test_pixelate_matches_original_224(severity: int) -> None:
    from PIL import Image

    img = photo_at("chelsea", 224)
    ref = np.asarray(imagenet_c().pixelate(Image.fromarray(img), severity))
    assert np.array_equal(_run_pixelate(img, severity, "imagenet"), ref)


@pytest.mark.slow
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("photo", PHOTOS)
def test_pixelate_matches_original_all(photo: str, severity: int) -> None:
    from PIL import Image

    img = photo_at(photo, 224)
    ref = np.asarray(imagenet_c().pixelate(Image.fromarray(img), severity))
    assert np.array_equal(_run_pixelate(img, severity, "imagenet"), ref)
    for preset in ("tinyimagenet", "cifar"):
        small = photo_at(photo, PRESET_SIZE[preset])
        c = _table_row(Pixelate, preset, severity)[0]
        assert np.array_equal(_run_pixelate(small, severity, preset), _pil_pixelate(small, c))


def test_pixelate_non_square_and_per_sample_sizes() -> None:
    wide = np.ascontiguousarray(photo_at("rocket", 90)[:41])  # 41 x 90: PIL's own pass order is width first here
    tall = np.ascontiguousarray(photo_at("coffee", 90)[:, :33])  # 90 x 33
    factors = [0.95, 0.6, 0.37]
    xw = to_tensor(wide).repeat(3, 1, 1, 1)
    xt = to_tensor(tall).repeat(3, 1, 1, 1)
    out_w = F.pixelate(xw, torch.tensor(factors, dtype=torch.float64))
    out_t = F.pixelate(xt, torch.tensor(factors, dtype=torch.float64))
    for i, c in enumerate(factors):
        assert np.array_equal(to_uint8(out_w[i : i + 1]), _pil_pixelate(wide, c))
        assert np.array_equal(to_uint8(out_t[i : i + 1]), _pil_pixelate(tall, c, horizontal_first=True))
        assert torch.equal(out_w[i : i + 1], F.pixelate(xw[:1], c))  # batch-independent


def test_pixelate_long_windows() -> None:
    """Strong downscales (20-50 taps per window: cumulative-sum path) and int(S * c) in float64 (300 * 0.02 = 6)."""
    img = np.ascontiguousarray(photo_at("astronaut", 300)[:, :290])
    for c in (0.05, 0.02):
        assert np.array_equal(to_uint8(F.pixelate(to_tensor(img), c)), _pil_pixelate(img, c))


def test_pixelate_rounding_shortcut_is_pillows_fixed_point() -> None:
    """``floor((sum + bias) / count)`` equals Pillow's ``(sum * k + 2**21) >> 22`` for every 8-bit box sum."""
    for count in range(1, 128):
        k = int(0.5 + (1.0 / count) * (1 << 22))
        sums = torch.arange(255 * count + 1, dtype=torch.int64)
        ref = ((sums * k + (1 << 21)) >> 22).clamp(0, 255).to(torch.float32)
        bias = torch.tensor([count / 2 - (0.0 if k * count >= 1 << 22 else 0.25)])
        ours = F._round_pass(
            sums.to(torch.float32), torch.tensor([float(count)]), bias, torch.tensor([float(k)]), count
        )
        assert torch.equal(ours, ref), count


def test_pixelate_continuous_severity_uses_interpolated_factor() -> None:
    img = photo_at("chelsea", 64)
    c = 0.5 * (0.8 + 0.7)  # tinyimagenet s2 = 0.8, s3 = 0.7
    assert np.array_equal(_run_pixelate(img, 2.5, "tinyimagenet"), _pil_pixelate(img, c))


def test_pixelate_straight_through_gradient() -> None:
    x = natural_batch(32).requires_grad_(True)
    F.pixelate(x, torch.tensor([1.0, 0.5])).sum().backward()
    # factor 1: identity map, so the straight-through gradient is exactly 1 everywhere
    assert torch.allclose(x.grad[0], torch.ones_like(x.grad[0]))
    # factor 0.5: each output covers a 2x2 box; the sum of outputs sees each input 4 times at weight 1/4
    assert torch.allclose(x.grad[1], torch.ones_like(x.grad[1]))


def test_pixelate_bad_args() -> None:
    with pytest.raises(ValueError, match="factor"):
        F.pixelate(torch.rand(1, 3, 8, 8), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="factor"):
        F.pixelate(torch.rand(1, 3, 8, 8), torch.tensor([1.5]))


# ============================================================================================ elastic transform


def _fixed_point_positions(m: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV 3.4 ``warpAffine`` source positions: inverse map, per-term rounding to 1/1024 px, floor to 1/32 px."""
    import cv2

    inv = cv2.invertAffineTransform(m)
    xs, ys = np.arange(w), np.arange(h)
    adelta, bdelta = np.rint(inv[0, 0] * xs * 1024), np.rint(inv[1, 0] * xs * 1024)
    x0 = np.rint((inv[0, 1] * ys + inv[0, 2]) * 1024) + 16
    y0 = np.rint((inv[1, 1] * ys + inv[1, 2]) * 1024) + 16
    cols = np.floor((x0[:, None] + adelta[None, :]) / 32) / 32
    rows = np.floor((y0[:, None] + bdelta[None, :]) / 32) / 32
    return rows, cols


def _elastic_reference(
    img: np.ndarray,
    alpha: float,
    sigma: float,
    offsets: np.ndarray,
    noise: np.ndarray,
    fixed_point: bool = True,
    reflect_rule: str = "scipy_1.0",
) -> np.ndarray:
    """The original algorithm (spec 2.18) around cv2 / skimage / scipy, fed with given random draws.

    ``reflect_rule="scipy_1.0"``: the final ``map_coordinates`` is the NumPy transcription of SciPy 1.0's (the
    released data's); ``"scipy_1.6"``: the installed SciPy's."""
    import cv2
    from scipy.ndimage import map_coordinates
    from skimage.filters import gaussian

    image = np.array(img, dtype=np.float32) / 255.0
    shape = image.shape
    center = np.float32(shape[:2]) // 2
    q = min(shape[:2]) // 3
    pts1 = np.float32([center + q, [center[0] + q, center[1] - q], center - q])
    pts2 = pts1 + offsets.astype(np.float32)
    m = cv2.getAffineTransform(pts1, pts2)
    if fixed_point:  # the original's OpenCV 3.4: positions on the 1/32 grid (cv2.remap at exact positions)
        rows, cols = _fixed_point_positions(m, *shape[:2])
        image = cv2.remap(
            image,
            cols.astype(np.float32),
            rows.astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
    else:
        image = cv2.warpAffine(image, m, shape[:2][::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx = (gaussian(noise[0], sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)[..., None]
    dy = (gaussian(noise[1], sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)[..., None]
    x, y, z = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    idx = np.reshape(y + dy, (-1, 1)), np.reshape(x + dx, (-1, 1)), np.reshape(z, (-1, 1))
    if reflect_rule == "scipy_1.0":
        warped = map_coordinates_scipy10_reflect(image, np.stack([i[:, 0] for i in idx]))
    else:
        warped = map_coordinates(image, idx, order=1, mode="reflect")
    out = np.clip(warped.reshape(shape), 0, 1) * 255
    return out


def _elastic_pair(
    img: np.ndarray, severity: int, preset: str, seed: int, fixed_point: bool = True, reflect_rule: str = "scipy_1.0"
):
    """Our module output and the reference transcription fed with the module's own draws (raw float [0, 255])."""
    op = ElasticTransform(
        severity=severity, preset=preset, quantize=False, opencv_fixed_point=fixed_point, reflect_rule=reflect_rule
    )
    params = op.params_for_indices(torch.tensor([seed]), seed=7)
    x = to_tensor(img)
    out = op(x, params)[0].permute(1, 2, 0).double().numpy() * 255
    h, w = img.shape[:2]
    noise = (field_uniform_for(op, params, h, w) * 2 - 1)[0].numpy()
    alpha, sigma, _ = _table_row(ElasticTransform, preset, severity)
    offsets = op.offsets(params, preset)[0].numpy()
    ref = _elastic_reference(img, alpha, sigma, offsets, noise, fixed_point, reflect_rule)
    return out, ref


def field_uniform_for(op: ElasticTransform, params: Params, h: int, w: int) -> torch.Tensor:
    from robust_train.functional.rng import field_uniform

    return field_uniform(params["seed"], (2, h, w), op.stream("field"), dtype=torch.float64)


def _check_elastic(out: np.ndarray, ref: np.ndarray) -> None:
    assert np.abs(out - ref).max() < 0.01  # float32 round-off of the reference, in 8-bit levels
    assert _agree(np.uint8(out + 1e-6), np.uint8(ref), tol=0) >= 0.99
    assert _agree(np.uint8(out + 1e-6), np.uint8(ref), tol=1) == 1.0


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("preset", ["cifar", "tinyimagenet"])
def test_elastic_matches_transcription_small(preset: str, severity: int) -> None:
    out, ref = _elastic_pair(photo_at("astronaut", PRESET_SIZE[preset]), severity, preset, seed=severity)
    _check_elastic(out, ref)


@pytest.mark.parametrize("severity", [2, 3])
def test_elastic_matches_transcription_224(severity: int) -> None:
    out, ref = _elastic_pair(photo_at("coffee", 224), severity, "imagenet", seed=1)
    _check_elastic(out, ref)


@pytest.mark.parametrize("preset", ["cifar", "imagenet"])
def test_elastic_float_positions_match_current_opencv(preset: str) -> None:
    """``opencv_fixed_point=False`` reproduces today's cv2.warpAffine (OpenCV >= 4.11 float positions)."""
    out, ref = _elastic_pair(photo_at("rocket", PRESET_SIZE[preset]), 1, preset, seed=3, fixed_point=False)
    assert np.abs(out - ref).max() < 0.05
    assert _agree(np.uint8(out + 1e-6), np.uint8(ref), tol=1) == 1.0


@pytest.mark.parametrize("preset", ["cifar", "tinyimagenet"])
def test_elastic_scipy16_rule_matches_installed_scipy(preset: str) -> None:
    """``reflect_rule="scipy_1.6"`` is today's ``map_coordinates(mode='reflect')`` (half-sample symmetric)."""
    for severity in (2, 5):
        img = photo_at("chelsea", PRESET_SIZE[preset])
        _check_elastic(*_elastic_pair(img, severity, preset, seed=severity, reflect_rule="scipy_1.6"))


def test_scipy10_transcription_differs_from_installed_scipy_only_beside_the_grid() -> None:
    """The transcription equals today's SciPy inside the grid and beyond one pixel outside it; in between it is
    SciPy 1.0's rule (taps folded reflect-101)."""
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(0)
    img = rng.random((7, 9))
    inside = np.stack([rng.uniform(0, 6, 500), rng.uniform(0, 8, 500)])
    assert np.array_equal(map_coordinates_scipy10_reflect(img, inside), map_coordinates(img, inside, order=1))
    far = np.stack([rng.uniform(-5.9, -1, 500), rng.uniform(9, 16.9, 500)])
    assert np.allclose(map_coordinates_scipy10_reflect(img, far), map_coordinates(img, far, order=1, mode="reflect"))
    line = np.arange(8.0)
    got = map_coordinates_scipy10_reflect(line, np.array([[-0.3, 7.3, -1.0, 8.0]]))
    assert np.allclose(got, [0.3 * 0 + 0.7 * 1, 0.7 * 7 + 0.3 * 6, 0.0, 7.0])


def test_elastic_reflect_rules_differ_only_where_positions_leave_the_grid() -> None:
    x = to_tensor(photo_at("astronaut", 32))
    outs = {}
    for rule in ("scipy_1.0", "scipy_1.6"):
        op = ElasticTransform(severity=5, preset="cifar", quantize=False, reflect_rule=rule)
        outs[rule] = op(x, op.params_for_indices(torch.tensor([4]), seed=2))
    diff = (outs["scipy_1.0"] - outs["scipy_1.6"]).abs()[0].amax(0)
    ring = torch.ones_like(diff, dtype=torch.bool)
    ring[2:-2, 2:-2] = False
    assert float(diff.max()) > 10 / 255  # the rules matter
    assert bool((diff > 0).any()) and float((diff > 0).float().mean()) < 0.15
    assert float((diff > 0)[ring].float().sum()) >= 0.9 * float((diff > 0).float().sum())  # near the border
    with pytest.raises(ValueError, match="reflect_rule"):
        ElasticTransform(reflect_rule="scipy")


@pytest.mark.slow
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("photo", PHOTOS)
def test_elastic_matches_transcription_all(photo: str, severity: int) -> None:
    for preset, size in PRESET_SIZE.items():
        for seed in range(2):
            out, ref = _elastic_pair(photo_at(photo, size), severity, preset, seed=seed)
            _check_elastic(out, ref)


def test_elastic_displacement_huge_kernel_matches_skimage() -> None:
    """sigma 170.8 -> radius 512 on a 32-px field (repeated half-sample reflection), and the small-kernel path."""
    from skimage.filters import gaussian

    g = torch.Generator().manual_seed(0)
    noise = torch.rand(2, 2, 32, 24, generator=g, dtype=torch.float64) * 2 - 1
    for sigma in (170.8, 9.0, 1.5):
        disp = F.elastic_displacement(noise, torch.tensor([2.0, 3.0]), torch.tensor([sigma, sigma]))
        for b, a in enumerate((2.0, 3.0)):
            for ch in range(2):
                ref = (gaussian(noise[b, ch].numpy(), sigma, mode="reflect", truncate=3) * a).astype(np.float32)
                np.testing.assert_allclose(disp[b, ch].numpy(), ref, rtol=1e-5, atol=1e-6)


def test_elastic_quirks_in_table() -> None:
    """ImageNet constants are 244 * k (not 224 * k); Tiny/CIFAR severity 1 has alpha = sigma = 0 (affine only)."""
    t = ElasticTransform.table
    assert t.values("imagenet")[0].tolist() == [244 * 2, 244 * 0.7, 244 * 0.1]
    assert t.values("imagenet")[4].tolist() == [244 * 0.12, 244 * 0.01, 244 * 0.02]
    for preset in ("tinyimagenet", "cifar"):
        assert t.values(preset)[0, :2].tolist() == [0.0, 0.0]
    x = natural_batch(32)
    op = ElasticTransform(severity=1, preset="cifar", quantize=False)
    params = op.params_for_indices(torch.arange(2))
    rows, cols = F.elastic_affine_coords(op.offsets(params, "cifar"), 32, 32)
    warp_only = F._bilinear(x, rows, cols, "mirror").clamp(0, 1)
    torch.testing.assert_close(op(x, params), warp_only, atol=1e-6, rtol=0)


def test_elastic_identity_without_perturbation() -> None:
    x = natural_batch(32)
    out = F.elastic_transform(x, 0.0, 0.0, torch.zeros(2, 3, 2), torch.tensor([1, 2]))
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_elastic_non_square() -> None:
    x = natural_batch(64)[:, :, :40]  # 40 x 64
    op = ElasticTransform(severity=3, preset="tinyimagenet")
    out = op(x)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    rows, cols = F.elastic_affine_coords(torch.zeros(1, 3, 2), 40, 64)
    assert torch.equal(rows[0], torch.arange(40.0, dtype=torch.float64).view(-1, 1).expand(40, 64))
    assert torch.equal(cols[0], torch.arange(64.0, dtype=torch.float64).view(1, -1).expand(40, 64))


def test_elastic_bad_args() -> None:
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="seed"):
        F.elastic_transform(x, 1.0, 1.0, torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match="offsets"):
        F.elastic_transform(x, 1.0, 1.0, torch.zeros(2, 2, 2), torch.arange(2))
    with pytest.raises(ValueError, match="noise"):
        F.elastic_transform(x, 1.0, 1.0, torch.zeros(2, 3, 2), noise=torch.zeros(2, 2, 8, 9))
    with pytest.raises(ValueError, match=">= 0"):
        F.elastic_transform(x, -1.0, 1.0, torch.zeros(2, 3, 2), torch.arange(2))


def _original_with_our_draws(
    monkeypatch: pytest.MonkeyPatch,
    img: np.ndarray,
    severity: int,
    offsets: np.ndarray,
    noise: np.ndarray,
    scipy10: bool = False,
) -> np.ndarray:
    """``imagenet_c.elastic_transform`` itself, with ``np.random.uniform`` replaced by our draws, in call order
    (and, with ``scipy10``, its ``map_coordinates`` by the SciPy 1.0 transcription)."""
    ref_mod = imagenet_c()
    draws = [offsets, noise[0], noise[1]]
    if scipy10:

        def old_map_coordinates(image, coords, order, mode):
            assert order == 1 and mode == "reflect"
            return map_coordinates_scipy10_reflect(image, np.stack([np.ravel(c) for c in coords]))

        monkeypatch.setattr(ref_mod, "map_coordinates", old_map_coordinates)

    def fake_uniform(low, high, size=None):
        value = draws.pop(0)
        assert value.shape == tuple(np.atleast_1d(size)) and np.all((value >= low) & (value <= high))
        return value

    monkeypatch.setattr(np.random, "uniform", fake_uniform)
    out = ref_mod.elastic_transform(img, severity)
    monkeypatch.undo()
    assert not draws
    return out


def _check_against_original(monkeypatch: pytest.MonkeyPatch, photo: str, severity: int, index: int) -> None:
    """Our op against the original code run on the installed SciPy (``reflect_rule="scipy_1.6"``) and, with its
    ``map_coordinates`` replaced by the SciPy 1.0 transcription, against our default rule."""
    img = photo_at(photo, 224)
    for fixed_point, rule in ((False, "scipy_1.6"), (True, "scipy_1.6"), (True, "scipy_1.0")):
        op = ElasticTransform(
            severity=severity, preset="imagenet", quantize=False, opencv_fixed_point=fixed_point, reflect_rule=rule
        )
        params = op.params_for_indices(torch.tensor([index]), seed=severity)
        out = op(to_tensor(img), params)[0].permute(1, 2, 0).double().numpy() * 255
        noise = (field_uniform_for(op, params, 224, 224) * 2 - 1)[0].numpy()
        offsets = op.offsets(params, "imagenet")[0].numpy()
        ref = _original_with_our_draws(monkeypatch, img, severity, offsets, noise, scipy10=rule == "scipy_1.0")
        diff = np.abs(out - ref)
        if not fixed_point:  # today's OpenCV computes float positions: same maths up to float32 round-off
            assert diff.max() < 0.05 and _agree(np.uint8(out + 1e-6), np.uint8(ref), tol=0) >= 0.99
            assert _agree(np.uint8(out + 1e-6), np.uint8(ref), tol=1) >= 0.999
        else:  # the pinned OpenCV 3.4's 1/32-px positions (our default) move values by a fraction of a level
            assert diff.mean() < 0.15 and diff.max() < 3.0
            assert _agree(np.uint8(out + 1e-6), np.uint8(ref), tol=1) >= 0.995


def test_elastic_matches_original_code_given_our_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    _check_against_original(monkeypatch, "chelsea", 3, 0)


@pytest.mark.slow
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("photo", PHOTOS)
def test_elastic_matches_original_code_given_our_draws_all(
    monkeypatch: pytest.MonkeyPatch, photo: str, severity: int
) -> None:
    for index in range(3):
        _check_against_original(monkeypatch, photo, severity, index)


def _change_stats(clean: np.ndarray, out: np.ndarray) -> np.ndarray:
    d = out.astype(np.float64) - clean.astype(np.float64)
    return np.array([np.abs(d).mean(), d.std(), (np.abs(d) > 16).mean(), out.astype(np.float64).std()])


@pytest.mark.slow
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_elastic_statistics_match_original_224(severity: int) -> None:
    """Independent draws (our samplers vs NumPy's): mean |change|, std of the change, fraction of large changes and
    output contrast, averaged over the 4 photos (96 original runs and 384 of ours per photo), agree within 3% (6% for
    the rare-event fraction). The per-draw CV of mean |change| is 0.10-0.16, so the standard error of the
    difference is about 1%."""
    ref_mod = imagenet_c()
    n_ref, n_ours, chunk = 96, 384, 64
    ours, theirs = [], []
    for p_i, photo in enumerate(PHOTOS):
        img = photo_at(photo, 224)
        op = ElasticTransform(severity=severity, preset="imagenet")
        x = to_tensor(img).repeat(chunk, 1, 1, 1)
        for start in range(0, n_ours, chunk):
            idx = torch.arange(start, start + chunk) + 10_000 * p_i
            out = op(x, op.params_for_indices(idx, seed=severity))
            ours.extend(_change_stats(img, to_uint8(out[i : i + 1])) for i in range(chunk))
        for i in range(n_ref):
            np.random.seed(10_000 * severity + 1000 * p_i + i)
            theirs.append(_change_stats(img, np.uint8(ref_mod.elastic_transform(img, severity))))
    a, b = np.mean(ours, 0), np.mean(theirs, 0)
    rel = np.abs(a - b) / np.abs(b)
    assert (rel[[0, 1, 3]] < 0.03).all() and rel[2] < 0.06, (a, b, rel)


def _on_grid_classes() -> list[type]:
    from robust_train.corruptions import CORRUPTIONS

    classes = [CORRUPTIONS.get(n) for n in CORRUPTIONS.list() if CORRUPTIONS.get(n).output_on_grid]
    assert {c.name for c in classes} >= {"jpeg_compression", "pixelate"}
    return classes


@pytest.mark.parametrize("cls", _on_grid_classes(), ids=lambda c: c.name)
@pytest.mark.parametrize("work_dtype", [torch.float32, torch.float64])
def test_output_on_grid_skips_an_identity_truncation(cls, work_dtype: torch.dtype) -> None:
    """``output_on_grid`` skips the 8-bit truncation: the output must already be a fixed point of it."""
    from robust_train.functional._common import truncate_uint8

    g = torch.Generator().manual_seed(5)
    for severity in (1, 3, 5, torch.tensor([1.0, 2.5, 4.75], dtype=torch.float64)):
        for preset, (h, w) in (("imagenet", (150, 201)), ("cifar", (37, 50))):  # non-square
            x = torch.rand(3, 3, h, w, generator=g, dtype=work_dtype)  # off the 8-bit grid
            op = cls(severity=severity, preset=preset)
            y = op(x)
            assert torch.equal(y, truncate_uint8(y)), (severity, preset)
            assert torch.equal(y * 255, torch.round(y * 255)), (severity, preset)
            assert torch.equal(cls(severity=severity, preset=preset, quantize=False)(x, op.last_params), y)
